/*
 * sockets.c - the loop's low-level socket calls (Python: the sock_* methods
 * of asyncio.selector_events.BaseSelectorEventLoop, sock_sendfile and its
 * fallback from asyncio.base_events, and the sendfile(2) path of
 * asyncio.unix_events).
 *
 * Every call follows one pattern: try the system call; on EAGAIN watch the
 * descriptor in one direction and suspend; retry when it is ready.  The wait
 * awaits a future that lives on the caller's stack and is never counted as a
 * loop object, so a wait allocates nothing (the loop's per-descriptor watch
 * is allocated once per descriptor number).  The readiness callback only
 * completes that future; the task then removes the watcher itself, whether it
 * woke because of readiness or because it was cancelled, so no watcher ever
 * outlives the call.  If the loop is closed while the task waits, close
 * unhooks the task from the future and drops the watch with the rest.
 *
 * Invariant: at most one sock_* wait per descriptor and direction, and none
 * while anyone else watches it (-EBUSY): the loop holds one callback per
 * descriptor and direction, and replacing it would strand the first waiter.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "selector_events.h" /* loop resources */

#define SENDFILE_CHUNK ((size_t)0x40000000)  /* per sendfile(2) call when count is 0 */

static asyncio_loop_t *task_loop(void) {
  asyncio_loop_t *loop = asyncio__running_loop;
  return loop && loop->current ? loop : NULL;
}

/* -EBADF, -EINVAL (blocking), or 0. */
static int check_nonblocking(int fd) {
  if (fd < 0) return -EBADF;
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return -errno;
  return (fl & O_NONBLOCK) ? 0 : -EINVAL;
}

static void io_wake(int fd, void *arg) {
  (void)fd;
  asyncio_future_t *f = arg;
  if (f->state == FUT_PENDING) asyncio__future_complete(f, FUT_FINISHED, 0, NULL, NULL);
}

/*
 * Suspends until fd is readable (or writable).  Returns 0, -ECANCELED,
 * -EBUSY (already watched in that direction) or add_reader's errors.
 * With a control block (loop.sendfile on a transport), the future is
 * published in ctl->wait while the task waits, so the transport can wake
 * it, and a ctl->stop set by then is returned instead of 0; fd < 0 then
 * waits for such a wake only, with no watch.
 */
int asyncio__sock_wait(asyncio_loop_t *loop, int fd, int write_side, asyncio__sf_ctl_t *ctl) {
  uint32_t bit = write_side ? ASYNCIO__EV_WRITE : ASYNCIO__EV_READ;
  if (fd >= 0 && fd < loop->nwatches && loop->watches[fd] && (loop->watches[fd]->registered & bit))
    return -EBUSY;
  struct asyncio_future f;
  memset(&f, 0, sizeof f);
  f.refcnt = 1; /* ours: never reaches zero, so it is never freed */
  f.loop = loop;
  int rc = 0;
  if (fd >= 0)
    rc = write_side ? asyncio_loop_add_writer(loop, fd, io_wake, &f)
                    : asyncio_loop_add_reader(loop, fd, io_wake, &f);
  if (rc) return rc;
  if (ctl) ctl->wait = &f;
  rc = asyncio_await(&f, NULL);
  if (ctl) ctl->wait = NULL;
  if (fd >= 0) {
    if (write_side)
      asyncio_loop_remove_writer(loop, fd);
    else
      asyncio_loop_remove_reader(loop, fd);
  }
  asyncio__strfree(f.msg); /* a cancellation message */
  asyncio__free(f.cbs, f.capcbs * sizeof *f.cbs);
  if (rc < 0) return rc;
  return ctl && ctl->stop ? ctl->stop : 0;
}

static int wait_fd(asyncio_loop_t *loop, int fd, int write_side) {
  return asyncio__sock_wait(loop, fd, write_side, NULL);
}

static int would_block(int e) { return e == EAGAIN || e == EWOULDBLOCK; }

/* connect(2) / SO_ERROR codes that mean "not decided yet": wait again. */
static int connect_pending(int e) {
  return e == EINPROGRESS || e == EALREADY || e == EINTR || would_block(e);
}

/* Checks shared by every call: in a task, a non-blocking descriptor. */
#define PROLOGUE(fd)                          \
  asyncio_loop_t *loop = task_loop();         \
  if (!loop) return ASYNCIO_ENOTASK;          \
  do {                                        \
    int prc__ = check_nonblocking(fd);        \
    if (prc__) return prc__;                  \
  } while (0)

/*
 * The data calls pass MSG_DONTWAIT instead: it makes that one call
 * non-blocking whatever the descriptor's mode, so they need no fcntl(2)
 * per call (a system call as dear as the recv itself) and a blocking socket
 * cannot stall the loop.  connect, accept and sendfile(2) have no such flag.
 */
#define PROLOGUE_DATA(fd)                     \
  asyncio_loop_t *loop = task_loop();         \
  if (!loop) return ASYNCIO_ENOTASK;          \
  if ((fd) < 0) return -EBADF

ASYNCIO_API ssize_t asyncio_sock_recv(int fd, void *buf, size_t n) {
  PROLOGUE_DATA(fd);
  if (!buf && n) return -EINVAL;
  for (;;) {
    ssize_t r = recv(fd, buf, n, MSG_DONTWAIT);
    if (r >= 0) return r;
    if (errno == EINTR) continue;
    if (!would_block(errno)) return -errno;
    int rc = wait_fd(loop, fd, 0);
    if (rc) return rc;
  }
}

ASYNCIO_API ssize_t asyncio_sock_recvfrom(int fd, void *buf, size_t n, struct sockaddr *addr,
                                          socklen_t *addrlen) {
  PROLOGUE_DATA(fd);
  if ((!buf && n) || (addr && !addrlen)) return -EINVAL;
  for (;;) {
    socklen_t len = addr ? *addrlen : 0;
    ssize_t r = recvfrom(fd, buf, n, MSG_DONTWAIT, addr, addr ? &len : NULL);
    if (r >= 0) {
      if (addr) *addrlen = len;
      return r;
    }
    if (errno == EINTR) continue;
    if (!would_block(errno)) return -errno;
    int rc = wait_fd(loop, fd, 0);
    if (rc) return rc;
  }
}

ASYNCIO_API int asyncio_sock_sendall(int fd, const void *buf, size_t n, size_t *sent) {
  if (sent) *sent = 0;
  PROLOGUE_DATA(fd);
  if (!buf && n) return -EINVAL;
  const char *p = buf;
  size_t pos = 0;
  int rc = 0;
  /*
   * At least one send(2), also for n == 0, as Python's first sock.send(data):
   * an empty sendall on a shut-down or reset socket reports -EPIPE /
   * -ECONNRESET instead of succeeding.  Would-block on an empty one is
   * success (Python: 0 sent == len(data)).
   */
  for (;;) {
    ssize_t w = send(fd, p + pos, n - pos, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w >= 0) {
      pos += (size_t)w;
      if (pos >= n) break;
      continue;
    }
    if (errno == EINTR) continue;
    if (!would_block(errno)) {
      rc = -errno;
      break;
    }
    if (n == 0) break;
    rc = wait_fd(loop, fd, 1);
    if (rc) break;
  }
  if (sent) *sent = pos;
  return rc;
}

ASYNCIO_API ssize_t asyncio_sock_sendto(int fd, const void *buf, size_t n,
                                        const struct sockaddr *addr, socklen_t addrlen) {
  PROLOGUE_DATA(fd);
  /* An address of length 0: a Unix socket's sendto(2) would quietly send to the peer. */
  if ((!buf && n) || (!addr && addrlen) || (addr && !addrlen)) return -EINVAL;
  for (;;) {
    ssize_t w = sendto(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT, addr, addrlen);
    if (w >= 0) return w;
    if (errno == EINTR) continue;
    if (!would_block(errno)) return -errno;
    int rc = wait_fd(loop, fd, 1);
    if (rc) return rc;
  }
}

ASYNCIO_API int asyncio_sock_connect(int fd, const struct sockaddr *addr, socklen_t addrlen) {
  PROLOGUE(fd);
  if (!addr || addrlen == 0) return -EINVAL;
  if (connect(fd, addr, addrlen) == 0) return 0;
  /*
   * EINTR: the connection goes on in the background (CPython issue 23618).
   * EALREADY: an earlier attempt still runs (a sock_connect that was
   * cancelled, say); Python's BlockingIOError covers it, so it too waits
   * for that attempt's outcome.
   */
  if (!connect_pending(errno)) return -errno;
  for (;;) {
    int rc = wait_fd(loop, fd, 1);
    if (rc) return rc;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return -errno;
    if (err == 0) return 0;
    if (!connect_pending(err)) return -err;
  }
}

ASYNCIO_API int asyncio_sock_accept(int fd, int *conn_fd, struct sockaddr *addr,
                                    socklen_t *addrlen) {
  if (conn_fd) *conn_fd = -1;
  PROLOGUE(fd);
  if (!conn_fd || (addr && !addrlen)) return -EINVAL;
  for (;;) {
    socklen_t len = addr ? *addrlen : 0;
    int c = accept4(fd, addr, addr ? &len : NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c >= 0) {
      if (addr) *addrlen = len;
      *conn_fd = c;
      return 0;
    }
    if (errno == EINTR) continue;
    if (!would_block(errno)) return -errno;
    int rc = wait_fd(loop, fd, 0);
    if (rc) return rc;
  }
}

/* ---- sendfile ------------------------------------------------------------------ */

/*
 * sendfile(2) has no MSG_NOSIGNAL: into a socket whose sending side is shut
 * down it raises SIGPIPE, whose default action kills the process (Python
 * never sees it: the interpreter ignores SIGPIPE at startup).  So SIGPIPE
 * is blocked in this thread around the call, and one the call raised is
 * taken back before the mask is restored: -EPIPE is all the caller sees,
 * and the process-wide disposition is left alone.  One the thread already
 * had pending (blocked by the application) is not ours and stays.  Two
 * sigprocmask calls per sendfile(2), which moves up to a socket buffer.
 */
static ssize_t sendfile_nosigpipe(int sock, int file_fd, off_t *off, size_t n) {
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  int had_one = 0;
  if (sigismember(&old, SIGPIPE)) {
    sigset_t pending;
    had_one = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
  }
  ssize_t w = sendfile(sock, file_fd, off, n);
  int e = errno;
  if (w < 0 && e == EPIPE && !had_one) {
    const struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = e;
  return w;
}

/*
 * unix_events._sock_sendfile_native: sendfile(2) from a regular file.
 * ASYNCIO_ESENDFILENOTAVAILABLE when it cannot be used and nothing was sent.
 * ctl (nullable): see asyncio__sock_wait.
 */
int asyncio__sock_sendfile_native(asyncio_loop_t *loop, int sock, int file_fd, off_t offset,
                                  size_t count, size_t *total, asyncio__sf_ctl_t *ctl) {
  struct stat st;
  if (fstat(file_fd, &st) < 0) return -errno;
  /* Anything but a regular file could block the loop inside sendfile(2). */
  if (!S_ISREG(st.st_mode)) return ASYNCIO_ESENDFILENOTAVAILABLE;
  /*
   * st_size is not consulted (Python sends nothing when it is 0): files of
   * /proc and /sys report 0 or a page and hold something else, and a file
   * may grow.  sendfile(2) says where the end is (0), or refuses such a
   * file (EINVAL), which sends it through the fallback.
   */
  for (;;) {
    size_t want = SENDFILE_CHUNK;
    if (count) {
      if (*total >= count) return 0;
      if (count - *total < want) want = count - *total;
    }
    off_t off = offset + (off_t)*total;
    ssize_t w = sendfile_nosigpipe(sock, file_fd, &off, want);
    if (w > 0) {
      *total += (size_t)w;
      continue;
    }
    if (w == 0) return 0; /* end of file */
    if (errno == EINTR) continue;
    if (would_block(errno)) {
      int rc = asyncio__sock_wait(loop, sock, 1, ctl);
      if (rc) return rc;
      continue;
    }
    int e = errno;
    if (*total == 0 && (e == EINVAL || e == ENOSYS || e == EOPNOTSUPP || e == ESPIPE ||
                        e == EOVERFLOW || e == ENOTSUP))
      return ASYNCIO_ESENDFILENOTAVAILABLE;
    return -e;
  }
}

/*
 * A fallback block.  Linked as a loop resource while the calling task owns
 * it, so a task destroyed by loop close (in sock_sendall, or waiting on a
 * transport's flow control) does not leak it; while a read job has it, it
 * is unlinked and the job's abandon hook frees it instead.
 */
struct asyncio__sf_block {
  asyncio__res_t res;
  asyncio_loop_t *loop;
  int fd;
  int seekable;
  off_t off;
  size_t n;
  char buf[];
};

static int read_block(void *arg, void **value) {
  (void)value;
  asyncio__sf_block_t *r = arg;
  ssize_t k;
  do {
    k = r->seekable ? pread(r->fd, r->buf, r->n, r->off) : read(r->fd, r->buf, r->n);
  } while (k < 0 && errno == EINTR);
  return k < 0 ? -errno : (int)k;
}

static void read_abandon(void *arg, int rc, void *value) {
  (void)rc;
  (void)value;
  asyncio__free(arg, sizeof(asyncio__sf_block_t) + ASYNCIO__SF_BLOCK);
}

static void block_destroy(asyncio__res_t *res) {
  asyncio__sf_block_t *r = (asyncio__sf_block_t *)res;
  asyncio__res_unlink(r->loop, res);
  asyncio__free(r, sizeof *r + ASYNCIO__SF_BLOCK);
}

int asyncio__sf_block_new(asyncio_loop_t *loop, asyncio__sf_block_t **out) {
  asyncio__net_t *net;
  int rc = asyncio__net_get(loop, &net);
  if (rc) return rc;
  asyncio__sf_block_t *r = asyncio__alloc(sizeof *r + ASYNCIO__SF_BLOCK);
  if (!r) return -ENOMEM;
  memset(&r->res, 0, sizeof r->res);
  r->res.destroy = block_destroy;
  r->loop = loop;
  asyncio__res_link(loop, &r->res);
  *out = r;
  return 0;
}

void asyncio__sf_block_free(asyncio__sf_block_t *b) {
  if (b) block_destroy(&b->res);
}

const char *asyncio__sf_block_data(const asyncio__sf_block_t *b) { return b->buf; }

ssize_t asyncio__sf_block_read(asyncio__sf_block_t **b, int fd, int seekable, off_t off,
                               size_t n) {
  asyncio__sf_block_t *r = *b;
  asyncio_loop_t *loop = r->loop;
  r->fd = fd;
  r->seekable = seekable;
  r->off = off;
  r->n = n < ASYNCIO__SF_BLOCK ? n : ASYNCIO__SF_BLOCK;
  asyncio__res_unlink(loop, &r->res);
  asyncio_future_t *f;
  int rc = asyncio__run_in_executor(loop, NULL, read_block, r, read_abandon, &f);
  if (rc) {
    asyncio__res_link(loop, &r->res);
    return rc;
  }
  int delivered = 0;
  rc = asyncio__await_job(f, NULL, &delivered);
  if (!delivered) {
    *b = NULL; /* the worker may still write into it: read_abandon frees it */
    return rc < 0 ? rc : -ECANCELED;
  }
  asyncio__res_link(loop, &r->res);
  return rc;
}

/* base_events._sock_sendfile_fallback: read on the executor, sock_sendall. */
static int sendfile_fallback(asyncio_loop_t *loop, int sock, int file_fd, off_t offset,
                             size_t count, int seekable, size_t *total) {
  if (!seekable && offset != 0) return -ESPIPE;
  asyncio__sf_block_t *r;
  int rc = asyncio__sf_block_new(loop, &r);
  if (rc) return rc;
  for (;;) {
    size_t want = ASYNCIO__SF_BLOCK;
    if (count) {
      if (*total >= count) break;
      if (count - *total < want) want = count - *total;
    }
    ssize_t k = asyncio__sf_block_read(&r, file_fd, seekable, offset + (off_t)*total, want);
    if (k <= 0) { /* error, cancelled, or end of file */
      rc = (int)k;
      break;
    }
    size_t part = 0;
    rc = asyncio_sock_sendall(sock, r->buf, (size_t)k, &part);
    *total += part;
    if (rc) break;
  }
  asyncio__sf_block_free(r);
  return rc < 0 ? rc : 0;
}

ASYNCIO_API int asyncio_sock_sendfile(int sock, int file_fd, off_t offset, size_t count,
                                      size_t *sent, const asyncio_sendfile_options_t *o) {
  if (sent) *sent = 0;
  PROLOGUE(sock);
  if (file_fd < 0) return -EBADF;
  if (offset < 0) return -EINVAL;
  if (o && o->no_fallback && o->force_fallback) return -EINVAL;
  int type = 0;
  socklen_t tl = sizeof type;
  if (getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &tl) < 0) return -errno;
  if (type != SOCK_STREAM) return -EINVAL; /* "only SOCK_STREAM type sockets are supported" */
  int seekable = lseek(file_fd, 0, SEEK_CUR) >= 0;
  size_t total = 0;
  int rc = ASYNCIO_ESENDFILENOTAVAILABLE;
  if (!(o && o->force_fallback))
    rc = asyncio__sock_sendfile_native(loop, sock, file_fd, offset, count, &total, NULL);
  if (rc == ASYNCIO_ESENDFILENOTAVAILABLE && !(o && o->no_fallback))
    rc = sendfile_fallback(loop, sock, file_fd, offset, count, seekable, &total);
  /* As Python: the file position ends after what was sent. */
  if (total > 0 && seekable) lseek(file_fd, offset + (off_t)total, SEEK_SET);
  if (sent) *sent = total;
  return rc;
}
