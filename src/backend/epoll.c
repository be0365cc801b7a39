/*
 * backend/epoll.c - the epoll backend.
 *
 * Level-triggered, as asyncio's selector loop is.  The loop caches each
 * descriptor's registered mask, so a change costs exactly one epoll_ctl and
 * an unchanged interest costs none.  The event buffer grows when a poll fills
 * it, so a busy loop settles at one epoll_wait per iteration.
 */
#include "backend.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "../internal.h"

#define INITIAL_EVENTS 64
#define MAX_EVENTS 4096

int asyncio__backend_init(asyncio__backend_t *b) {
  b->name = "epoll";
  b->fd = epoll_create1(EPOLL_CLOEXEC);
  if (b->fd < 0) return -errno;
  b->nevents = INITIAL_EVENTS;
  b->events = asyncio__alloc(sizeof(struct epoll_event) * (size_t)b->nevents);
  if (!b->events) {
    close(b->fd);
    b->fd = -1;
    return -ENOMEM;
  }
  return 0;
}

void asyncio__backend_close(asyncio__backend_t *b) {
  if (b->fd >= 0) close(b->fd);
  b->fd = -1;
  asyncio__free(b->events, sizeof(struct epoll_event) * (size_t)b->nevents);
  b->events = NULL;
}

int asyncio__backend_modify(asyncio__backend_t *b, int fd, uint32_t old, uint32_t new_) {
  struct epoll_event ev = {0};
  int op;
  if (new_ == old) return 0;
  if (new_ == 0) {
    op = EPOLL_CTL_DEL;
  } else {
    op = old ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (new_ & ASYNCIO__EV_READ) ev.events |= EPOLLIN;
    if (new_ & ASYNCIO__EV_WRITE) ev.events |= EPOLLOUT;
  }
  ev.data.fd = fd;
  if (epoll_ctl(b->fd, op, fd, &ev) == 0) return 0;
  /* The user closed the descriptor before removing it: the kernel already
   * forgot it, which is what DEL wanted. */
  if (op == EPOLL_CTL_DEL && (errno == EBADF || errno == ENOENT)) return 0;
  /* A descriptor closed and reopened under the same number. */
  if (op == EPOLL_CTL_MOD && errno == ENOENT && epoll_ctl(b->fd, EPOLL_CTL_ADD, fd, &ev) == 0)
    return 0;
  return -errno;
}

int asyncio__backend_poll(asyncio__backend_t *b, int timeout_ms, asyncio__io_ready_fn ready,
                          void *loop) {
  struct epoll_event *evs = b->events;
  int n = epoll_wait(b->fd, evs, b->nevents, timeout_ms);
  if (n < 0) return errno == EINTR ? 0 : -errno;
  for (int i = 0; i < n; i++) {
    uint32_t e = evs[i].events, m = 0;
    /* As selectors.EpollSelector: errors and hang-ups wake both sides. */
    if (e & ~(uint32_t)EPOLLOUT) m |= ASYNCIO__EV_READ;
    if (e & ~(uint32_t)EPOLLIN) m |= ASYNCIO__EV_WRITE;
    ready(loop, evs[i].data.fd, m);
  }
  if (n == b->nevents && b->nevents < MAX_EVENTS) {
    size_t old = sizeof(struct epoll_event) * (size_t)b->nevents;
    void *bigger = asyncio__realloc(b->events, old, old * 2);
    if (bigger) {
      b->events = bigger;
      b->nevents *= 2;
    }
  }
  return n;
}
