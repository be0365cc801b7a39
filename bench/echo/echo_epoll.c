/*
 * echo_epoll.c - the floor of the TCP echo benchmark (issue 5,
 * docs/bench.md): a hand-written single-threaded epoll echo server with no
 * library in between.
 *
 *   echo_epoll [--tls CERT.pem KEY.pem]
 *                       listens on 127.0.0.1, a port the system picks,
 *                       prints "port N" and serves until killed
 *
 * Level-triggered, as our loop is.  Per readiness of a connection: one recv
 * into one 64 KiB buffer, one send of what it returned.  No second recv to
 * find EAGAIN (level-triggered epoll reports the rest next time), no
 * epoll_ctl in steady state (EPOLLOUT is registered only while a send came
 * up short, which 64-byte messages never do).  Accepts drain the backlog with
 * accept4 until EAGAIN, which only happens while the load generator connects.
 *
 * With --tls it is the floor of the TLS echo benchmark (bench/run_tls.sh):
 * OpenSSL straight on the non-blocking socket (SSL_set_fd), the handshake
 * (SSL_accept) driven by readiness, then per readiness SSL_read until
 * OpenSSL holds nothing more (read-ahead, so usually one recv for every
 * record waiting) and one SSL_write of all of it, in partial-write mode: a
 * short or waiting write keeps the rest and waits for EPOLLOUT as above
 * (SSL_write is repeated with the same bytes, moved into the connection's
 * buffer).  No close_notify: a connection ends with its socket.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
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
  SSL *ssl;       /* --tls only */
  int handshake;  /* --tls: SSL_accept not done yet */
  size_t pend, off; /* unsent tail of the last recv, only after a short send */
  char *out;
} conn_t;

static char buf[BUF];

static void drop(int ep, conn_t *c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  SSL_free(c->ssl);
  close(c->fd);
  free(c->out);
  free(c);
}

/*
 * One send, or one SSL_write: bytes taken, or -1 with errno (EAGAIN when it
 * must wait for the socket; a TLS write must then be repeated with the same
 * bytes, which SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER lets live elsewhere).
 */
static ssize_t put(conn_t *c, const char *p, size_t n) {
  if (!c->ssl) return send(c->fd, p, n, MSG_NOSIGNAL);
  int w = SSL_write(c->ssl, p, (int)n);
  if (w > 0) return w;
  int e = SSL_get_error(c->ssl, w);
  errno = e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? EAGAIN : EPROTO;
  ERR_clear_error();
  return -1;
}

static void on_data(int ep, conn_t *c);

/* Sends the pending tail; returns -1 on a fatal error. */
static int push(int ep, conn_t *c) {
  while (c->pend) {
    ssize_t w = put(c, c->out + c->off, c->pend);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return 0;
      return -1;
    }
    c->off += (size_t)w;
    c->pend -= (size_t)w;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) return -1;
  /* Records OpenSSL read ahead while this waited: epoll will not report them. */
  if (c->ssl && SSL_has_pending(c->ssl)) on_data(ep, c);
  return 0;
}

/*
 * Reads what a readiness brings into buf: one recv, or SSL_read until
 * OpenSSL has nothing buffered (or buf is full: the rest stays pending and
 * push() comes back for it).  Returns the bytes, 0 at the end, -1 with errno.
 */
static ssize_t get(conn_t *c) {
  if (!c->ssl) return recv(c->fd, buf, sizeof buf, 0);
  size_t got = 0;
  while (got < sizeof buf) {
    int r = SSL_read(c->ssl, buf + got, (int)(sizeof buf - got));
    if (r > 0) {
      got += (size_t)r;
      if (!SSL_has_pending(c->ssl)) break;
      continue;
    }
    int e = SSL_get_error(c->ssl, r);
    ERR_clear_error();
    if (got) break;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      errno = EAGAIN;
      return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    errno = EPROTO;
    return -1;
  }
  return (ssize_t)got;
}

/* Drives SSL_accept on readiness: the interest it waits for, or -1 when the handshake failed. */
static int handshake(int ep, conn_t *c) {
  int r = SSL_accept(c->ssl);
  uint32_t want = EPOLLIN;
  if (r == 1) {
    c->handshake = 0;
  } else {
    int e = SSL_get_error(c->ssl, r);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_WRITE) want = EPOLLOUT;
    else if (e != SSL_ERROR_WANT_READ) return -1;
  }
  struct epoll_event ev = {.events = want, .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) return -1;
  /* The first records may have come with the client's Finished. */
  if (!c->handshake && SSL_has_pending(c->ssl)) on_data(ep, c);
  return 0;
}

static void on_data(int ep, conn_t *c) {
  ssize_t n, w;
  do {
    n = get(c);
    if (n <= 0) {
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
      drop(ep, c);
      return;
    }
    w = put(c, buf, (size_t)n);
    /* A full buffer left records inside OpenSSL: epoll will not report them. */
  } while (w == n && c->ssl && SSL_has_pending(c->ssl));
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

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  SSL_CTX *ctx = NULL;
  if (argc == 4 && strcmp(argv[1], "--tls") == 0) {
    ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, argv[2]) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, argv[3], SSL_FILETYPE_PEM) != 1) {
      ERR_print_errors_fp(stderr);
      return 1;
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1);
  } else if (argc != 1) {
    fprintf(stderr, "usage: echo_epoll [--tls CERT.pem KEY.pem]\n");
    return 2;
  }
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
          if (ctx) {
            nc->ssl = SSL_new(ctx);
            if (!nc->ssl || !SSL_set_fd(nc->ssl, fd)) {
              SSL_free(nc->ssl);
              close(fd);
              free(nc);
              continue;
            }
            SSL_set_accept_state(nc->ssl);
            nc->handshake = 1;
          }
          struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
          if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            SSL_free(nc->ssl);
            close(fd);
            free(nc);
          }
        }
        continue;
      }
      if (c->handshake) {
        if (handshake(ep, c) < 0) drop(ep, c);
      } else if (c->pend) {
        if (push(ep, c) < 0) drop(ep, c);
      } else {
        on_data(ep, c);
      }
    }
  }
}
