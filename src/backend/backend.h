/*
 * backend/backend.h - the I/O backend interface (redis ae's aeApi*, in the
 * spirit of CPython's selectors).
 *
 * The loop core speaks only this interface: tell the backend which events
 * a descriptor wants (it keeps the previous mask, so it can choose ADD, MOD
 * or DEL without asking the kernel), and poll with a timeout, getting back
 * (fd, events) pairs.  epoll is the first backend; an io_uring one can slot
 * in behind the same calls (a poll-mode io_uring backend needs nothing more;
 * completion-based transports will add their own calls later).
 */
#ifndef ASYNCIO_BACKEND_H
#define ASYNCIO_BACKEND_H

#include <stdint.h>

#define ASYNCIO__EV_READ 1u
#define ASYNCIO__EV_WRITE 2u

typedef struct asyncio__backend {
  int fd;            /* epoll descriptor */
  void *events;      /* the event buffer */
  int nevents;
  const char *name;
} asyncio__backend_t;

typedef void (*asyncio__io_ready_fn)(void *loop, int fd, uint32_t events);

int asyncio__backend_init(asyncio__backend_t *b);
void asyncio__backend_close(asyncio__backend_t *b);
/* Changes fd's interest from `old` to `new` (masks of ASYNCIO__EV_*). */
int asyncio__backend_modify(asyncio__backend_t *b, int fd, uint32_t old, uint32_t new_);
/*
 * Waits up to timeout_ms (-1: forever, 0: poll) and reports ready
 * descriptors through ready(loop, fd, events).  Returns the number of events,
 * 0 on timeout or EINTR, or a negative errno.
 */
int asyncio__backend_poll(asyncio__backend_t *b, int timeout_ms, asyncio__io_ready_fn ready,
                          void *loop);

#endif
