/*
 * files.c - file I/O on the default executor (Python: the
 * asyncio.to_thread(open / os.read / os.write / os.stat ...) idiom and the
 * aiofiles package; asyncio has no file API because regular files are
 * always "ready" for epoll and would block the loop).
 *
 * Every call builds one request -- its arguments, a close-on-exec dup of the
 * caller's descriptor, a path copy and a data buffer in one allocation --
 * runs it with asyncio__run_in_executor and awaits it with
 * asyncio__await_job.  The worker touches only the request, never the
 * caller's memory or descriptor number, so a caller that is cancelled (or a
 * task destroyed by loop close) can go away while the worker is still
 * inside the system call.
 *
 * Ownership of a request, with the invariant that exactly one party frees it:
 *   - from submission until the outcome is delivered, the job: if it is not
 *     delivered (cancelled, dropped unrun, loop closed) the abandon hook
 *     releases it;
 *   - after delivery, the calling task, which takes what it wants (bytes,
 *     a descriptor, the file data) and releases the rest.
 * A task destroyed by loop close after its job was delivered but before it
 * resumed never takes the request back: the threads' close calls the abandon
 * hook for it too (asyncio__await_job), so that case needs nothing here.
 *
 * release() gives back whatever the caller did not take: the dup, an opened
 * descriptor nobody will see, read_all's buffer, and -- for close -- the
 * descriptor itself if no worker ran the close, so close always happens.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

enum { OP_OPEN, OP_READ, OP_PREAD, OP_WRITE, OP_PWRITE, OP_FSYNC, OP_CLOSE, OP_STAT, OP_UNLINK,
       OP_READ_ALL };

/* read_all's buffer: a header holding the allocation size, then the data. */
#define DATA_HDR ((size_t)alignof(max_align_t))

typedef struct file_req {
  asyncio_loop_t *loop;
  size_t size;          /* of this allocation */
  int op;
  int fd;               /* our dup (own_fd), or the descriptor to close */
  int own_fd;
  int flags;
  mode_t mode;
  off_t off;
  size_t n;             /* bytes for this job */
  char *path;           /* in the tail, or NULL */
  char *buf;            /* in the tail: up to ASYNCIO_FILE_CHUNK bytes */
  /* Written by the worker, read on the loop thread after delivery (the
   * threadsafe queue's lock orders them). */
  int ran;
  int rc;
  struct stat st;
  char *data;           /* read_all: the allocation (header first) */
  size_t len;
} file_req_t;

static void req_release(file_req_t *r) {
  if (r->op == OP_OPEN && r->ran && r->rc >= 0) close(r->rc); /* nobody got it */
  if (r->op == OP_CLOSE && !r->ran) close(r->fd);             /* close happens anyway */
  if (r->own_fd) close(r->fd);
  if (r->data) asyncio__free(r->data, *(size_t *)r->data);
  asyncio__free(r, r->size);
}

static void req_abandon(void *arg, int rc, void *value) {
  (void)rc;
  (void)value;
  req_release(arg);
}

/* A request with room for `cap` buffer bytes and a copy of `path`. */
static int req_new(asyncio_loop_t *loop, int op, const char *path, size_t cap,
                   file_req_t **out) {
  size_t pl = path ? strlen(path) + 1 : 0;
  size_t size = sizeof(file_req_t) + pl + cap;
  file_req_t *r = asyncio__alloc(size);
  if (!r) return -ENOMEM;
  memset(r, 0, sizeof *r);
  r->size = size;
  r->loop = loop;
  r->op = op;
  r->fd = -1;
  char *tail = (char *)(r + 1);
  if (path) r->path = memcpy(tail, path, pl);
  r->buf = tail + pl;
  *out = r;
  return 0;
}

/* The request works on its own descriptor: see the file comment. */
static int req_dup(file_req_t *r, int fd) {
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) return -errno;
  r->fd = d;
  r->own_fd = 1;
  return 0;
}

/* ---- the worker side --------------------------------------------------------- */

static int read_all_work(file_req_t *r) {
  int fd;
  do {
    fd = open(r->path, O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return -errno;
  struct stat st;
  size_t cap = 4096;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    if ((uintmax_t)st.st_size > SIZE_MAX - DATA_HDR - 2) {
      close(fd);
      return -EFBIG;
    }
    cap = (size_t)st.st_size + 1; /* one spare byte: the read that sees EOF */
  }
  int rc = 0;
  size_t len = 0;
  /* The allocator hook is called from this worker thread, as
   * call_soon_threadsafe calls it from other threads. */
  char *d = asyncio__alloc(DATA_HDR + cap + 1);
  if (!d) rc = -ENOMEM;
  while (rc == 0) {
    if (len == cap) {
      if (cap > (SIZE_MAX - DATA_HDR - 1) / 2) {
        rc = -EFBIG;
        break;
      }
      char *nd = asyncio__realloc(d, DATA_HDR + cap + 1, DATA_HDR + 2 * cap + 1);
      if (!nd) {
        rc = -ENOMEM;
        break;
      }
      d = nd;
      cap *= 2;
    }
    size_t want = cap - len < ASYNCIO_FILE_CHUNK ? cap - len : ASYNCIO_FILE_CHUNK;
    ssize_t k = read(fd, d + DATA_HDR + len, want);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) rc = -errno;
    if (k <= 0) break;
    len += (size_t)k;
  }
  close(fd);
  if (rc) {
    if (d) asyncio__free(d, DATA_HDR + cap + 1);
    return rc;
  }
  *(size_t *)d = DATA_HDR + cap + 1;
  d[DATA_HDR + len] = 0;
  r->data = d;
  r->len = len;
  return 0;
}

/* Writes all of r->buf[0..n), looping on short writes. */
static int write_all_work(file_req_t *r) {
  size_t done = 0;
  do {
    ssize_t k = r->op == OP_PWRITE
                    ? pwrite(r->fd, r->buf + done, r->n - done, r->off + (off_t)done)
                    : write(r->fd, r->buf + done, r->n - done);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return -errno;
    done += (size_t)k;
  } while (done < r->n);
  return (int)done;
}

static int file_do(file_req_t *r) {
  ssize_t k;
  switch (r->op) {
  case OP_OPEN:
    do {
      k = open(r->path, r->flags | O_CLOEXEC, r->mode);
    } while (k < 0 && errno == EINTR);
    break;
  case OP_READ:
  case OP_PREAD:
    do {
      k = r->op == OP_PREAD ? pread(r->fd, r->buf, r->n, r->off) : read(r->fd, r->buf, r->n);
    } while (k < 0 && errno == EINTR);
    break;
  case OP_WRITE:
  case OP_PWRITE:
    return write_all_work(r);
  case OP_FSYNC:
    k = fsync(r->fd);
    break;
  case OP_CLOSE:
    /* Linux frees the descriptor even when close fails: never retried. */
    k = close(r->fd);
    break;
  case OP_STAT:
    k = stat(r->path, &r->st);
    break;
  case OP_UNLINK:
    k = unlink(r->path);
    break;
  default: /* OP_READ_ALL */
    return read_all_work(r);
  }
  return k < 0 ? -errno : (int)k;
}

static int file_work(void *arg, void **value) {
  (void)value;
  file_req_t *r = arg;
  r->ran = 1;
  r->rc = file_do(r);
  return r->rc;
}

/* ---- the loop side ----------------------------------------------------------- */

/*
 * Runs the request and waits for it.  *owned tells whether the request is
 * still the caller's (to take from and release) or the abandon hook's.  A
 * delivered outcome the task could not take (cancelled after delivery)
 * still leaves the request with the caller, with r->rc the real outcome.
 */
static int req_run(file_req_t *r, int *owned) {
  asyncio_future_t *f;
  int rc = asyncio__run_in_executor(r->loop, NULL, file_work, r, req_abandon, &f);
  if (rc) {
    *owned = 1;
    return rc;
  }
  int delivered = 0;
  rc = asyncio__await_job(f, NULL, &delivered);
  *owned = delivered;
  if (!delivered && rc >= 0) rc = -ECANCELED;
  return rc;
}

static asyncio_loop_t *task_loop(void) {
  asyncio_loop_t *loop = asyncio__running_loop;
  return loop && loop->current ? loop : NULL;
}

ASYNCIO_API int asyncio_file_open(const char *path, int flags, mode_t mode) {
  if (!path) return -EINVAL;
  asyncio_loop_t *loop = task_loop();
  if (!loop) return ASYNCIO_ENOTASK;
  file_req_t *r;
  int rc = req_new(loop, OP_OPEN, path, 0, &r);
  if (rc) return rc;
  r->flags = flags;
  r->mode = mode;
  int owned;
  rc = req_run(r, &owned);
  if (owned) {
    if (rc >= 0) r->rc = -1; /* taken: release must not close it */
    req_release(r);
  }
  return rc;
}

static ssize_t file_read(int op, int fd, void *buf, size_t n, off_t off) {
  if ((!buf && n) || off < 0) return -EINVAL;
  if (fd < 0) return -EBADF;
  asyncio_loop_t *loop = task_loop();
  if (!loop) return ASYNCIO_ENOTASK;
  if (n > ASYNCIO_FILE_CHUNK) n = ASYNCIO_FILE_CHUNK; /* a short read, as read(2) may */
  file_req_t *r;
  int rc = req_new(loop, op, NULL, n, &r);
  if (rc) return rc;
  rc = req_dup(r, fd);
  if (rc == 0) {
    r->n = n;
    r->off = off;
    int owned;
    rc = req_run(r, &owned);
    if (!owned) return rc; /* the worker may still fill r->buf, not buf */
    if (rc > 0) memcpy(buf, r->buf, (size_t)rc);
  }
  req_release(r);
  return rc;
}

ASYNCIO_API ssize_t asyncio_file_read(int fd, void *buf, size_t n) {
  return file_read(OP_READ, fd, buf, n, 0);
}

ASYNCIO_API ssize_t asyncio_file_pread(int fd, void *buf, size_t n, off_t off) {
  return file_read(OP_PREAD, fd, buf, n, off);
}

static ssize_t file_write(int op, int fd, const void *buf, size_t n, off_t off) {
  if ((!buf && n) || off < 0 || n > (size_t)SSIZE_MAX) return -EINVAL;
  if (op == OP_PWRITE && n > (uintmax_t)INTMAX_MAX - (uintmax_t)off) return -EINVAL;
  if (fd < 0) return -EBADF;
  asyncio_loop_t *loop = task_loop();
  if (!loop) return ASYNCIO_ENOTASK;
  size_t cap = n < ASYNCIO_FILE_CHUNK ? n : ASYNCIO_FILE_CHUNK;
  file_req_t *r;
  int rc = req_new(loop, op, NULL, cap, &r);
  if (rc) return rc;
  rc = req_dup(r, fd);
  size_t done = 0;
  /* At least one job, so that a zero-byte write still checks the descriptor. */
  while (rc == 0) {
    r->n = n - done < cap ? n - done : cap;
    if (r->n) memcpy(r->buf, (const char *)buf + done, r->n);
    r->off = off + (off_t)done;
    int owned;
    rc = req_run(r, &owned);
    if (!owned) return rc; /* the job owns the copy it is writing */
    if (rc < 0) break;
    done += r->n;
    rc = 0;
    if (done == n) break;
  }
  req_release(r);
  return rc < 0 ? rc : (ssize_t)n;
}

ASYNCIO_API ssize_t asyncio_file_write(int fd, const void *buf, size_t n) {
  return file_write(OP_WRITE, fd, buf, n, 0);
}

ASYNCIO_API ssize_t asyncio_file_pwrite(int fd, const void *buf, size_t n, off_t off) {
  return file_write(OP_PWRITE, fd, buf, n, off);
}

ASYNCIO_API int asyncio_file_fsync(int fd) {
  if (fd < 0) return -EBADF;
  asyncio_loop_t *loop = task_loop();
  if (!loop) return ASYNCIO_ENOTASK;
  file_req_t *r;
  int rc = req_new(loop, OP_FSYNC, NULL, 0, &r);
  if (rc) return rc;
  rc = req_dup(r, fd);
  if (rc == 0) {
    int owned;
    rc = req_run(r, &owned);
    if (!owned) return rc;
  }
  req_release(r);
  return rc;
}

ASYNCIO_API int asyncio_file_close(int fd) {
  if (fd < 0) return -EBADF;
  asyncio_loop_t *loop = task_loop();
  if (!loop) return ASYNCIO_ENOTASK;
  file_req_t *r;
  int rc = req_new(loop, OP_CLOSE, NULL, 0, &r);
  if (rc) {
    close(fd); /* close happens anyway; the descriptor is gone */
    return rc;
  }
  r->fd = fd;
  int owned;
  rc = req_run(r, &owned);
  if (owned) req_release(r); /* closes fd if no worker did */
  return rc;
}

ASYNCIO_API int asyncio_file_stat(const char *path, struct stat *st) {
  if (!path || !st) return -EINVAL;
  asyncio_loop_t *loop = task_loop();
  if (!loop) return ASYNCIO_ENOTASK;
  file_req_t *r;
  int rc = req_new(loop, OP_STAT, path, 0, &r);
  if (rc) return rc;
  int owned;
  rc = req_run(r, &owned);
  if (!owned) return rc;
  if (rc == 0) *st = r->st;
  req_release(r);
  return rc;
}

ASYNCIO_API int asyncio_file_unlink(const char *path) {
  if (!path) return -EINVAL;
  asyncio_loop_t *loop = task_loop();
  if (!loop) return ASYNCIO_ENOTASK;
  file_req_t *r;
  int rc = req_new(loop, OP_UNLINK, path, 0, &r);
  if (rc) return rc;
  int owned;
  rc = req_run(r, &owned);
  if (owned) req_release(r);
  return rc;
}

ASYNCIO_API int asyncio_file_read_all(const char *path, char **data, size_t *len) {
  if (data) *data = NULL;
  if (len) *len = 0;
  if (!path || !data || !len) return -EINVAL;
  asyncio_loop_t *loop = task_loop();
  if (!loop) return ASYNCIO_ENOTASK;
  file_req_t *r;
  int rc = req_new(loop, OP_READ_ALL, path, 0, &r);
  if (rc) return rc;
  int owned;
  rc = req_run(r, &owned);
  if (!owned) return rc;
  if (rc == 0) {
    *data = r->data + DATA_HDR;
    *len = r->len;
    r->data = NULL; /* taken */
  }
  req_release(r);
  return rc;
}

ASYNCIO_API void asyncio_file_data_free(char *data) {
  if (!data) return;
  char *d = data - DATA_HDR;
  asyncio__free(d, *(size_t *)d);
}
