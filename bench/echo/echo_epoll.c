/*
 * echo_epoll.c - the floor of the TCP echo benchmark (issue 5,
 * docs/bench.md): a hand-written single-threaded epoll echo server with no
 * library in between.
 *
 *   echo_epoll          listens on 127.0.0.1, a port the system picks,
 *                       prints "port N" and serves until killed
 *
 * Level-triggered, as our loop is.  Per readiness of a connection: one recv
 * into one 64 KiB buffer, one send of what it returned.  No second recv to
 * find EAGAIN (level-triggered epoll reports the rest next time), no
 * epoll_ctl in steady state (EPOLLOUT is registered only while a send came
 * up short, which 64-byte messages never do).  Accepts drain the backlog with
 * accept4 until EAGAIN, which only happens while the load generator connects.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF (64 * 1024)
#define MAXEV 1024

typedef struct conn {
  int fd;
  size_t pend, off; /* unsent tail of the last recv, only after a short send */
  char *out;
} conn_t;

static char buf[BUF];

static void drop(int ep, conn_t *c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c->out);
  free(c);
}

/* Sends the pending tail; returns -1 on a fatal error. */
static int push(int ep, conn_t *c) {
  while (c->pend) {
    ssize_t w = send(c->fd, c->out + c->off, c->pend, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return 0;
      return -1;
    }
    c->off += (size_t)w;
    c->pend -= (size_t)w;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void on_data(int ep, conn_t *c) {
  ssize_t n = recv(c->fd, buf, sizeof buf, 0);
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    drop(ep, c);
    return;
  }
  ssize_t w = send(c->fd, buf, (size_t)n, MSG_NOSIGNAL);
  if (w == n) return;
  if (w < 0) {
    if (errno != EAGAIN && errno != EINTR) {
      drop(ep, c);
      return;
    }
    w = 0;
  }
  /* Short send: keep the rest, stop reading until it is out. */
  c->out = realloc(c->out, (size_t)(n - w));
  if (!c->out) {
    drop(ep, c);
    return;
  }
  memcpy(c->out, buf + w, (size_t)(n - w));
  c->off = 0;
  c->pend = (size_t)(n - w);
  struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) drop(ep, c);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof sa;
  if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 4096) < 0 ||
      getsockname(ls, (struct sockaddr *)&sa, &sl) < 0) {
    perror("echo_epoll: listen");
    return 1;
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev) < 0) {
    perror("echo_epoll: epoll");
    return 1;
  }
  printf("port %d\n", ntohs(sa.sin_port));
  fflush(stdout);

  static struct epoll_event evs[MAXEV];
  for (;;) {
    int n = epoll_wait(ep, evs, MAXEV, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("echo_epoll: epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (!c) {
        int fd;
        while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          conn_t *nc = calloc(1, sizeof *nc);
          if (!nc) {
            close(fd);
            continue;
          }
          nc->fd = fd;
          struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
          if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(nc);
          }
        }
        continue;
      }
      if (c->pend) {
        if (push(ep, c) < 0) drop(ep, c);
      } else {
        on_data(ep, c);
      }
    }
  }
}
