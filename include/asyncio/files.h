/*
 * asyncio/files.h - file I/O off the loop (Python: what programs do with
 * asyncio.to_thread(open/read/write/os.stat/...) or the aiofiles package;
 * asyncio itself has no file API because files are never "ready" for
 * epoll).
 *
 * Each call copies what it needs into a request, runs the blocking system
 * call on the loop's default executor (asyncio/threads.h) and suspends the
 * calling task until a worker thread is done: the loop never blocks on disk.
 * All of them must be called from a task (ASYNCIO_ENOTASK otherwise), and
 * all are suspension points.
 *
 * Cancellation (also a timeout scope expiring, and loop close) makes the call
 * return -ECANCELED at once.  A worker already inside the system call cannot
 * be interrupted; it finishes on buffers and a descriptor the request owns,
 * never on the caller's:
 *   - read/pread read into the request's buffer; the caller's buffer is only
 *     written when the call returns a byte count.  A cancelled read's bytes
 *     are lost, and for asyncio_file_read the file offset has still advanced
 *     by them (as an interrupted Python to_thread(f.read) leaves it).
 *   - write/pwrite copy the caller's bytes first (up to 1 MiB at a time); a
 *     cancelled write may still land the chunk in flight (and the chunks
 *     before it) in the file.
 *   - calls on a descriptor work on a close-on-exec dup(2) of it, made before
 *     the call suspends and closed when the worker is done, so closing `fd`
 *     right after a cancelled call is safe: the worker never touches a
 *     reused descriptor number.
 *   - an open that completes after its caller was cancelled has its
 *     descriptor closed; asyncio_file_close closes the descriptor whether or
 *     not it is cancelled.
 * Closing the loop waits for workers that are inside a system call.
 */
#ifndef ASYNCIO_FILES_H
#define ASYNCIO_FILES_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The most bytes one worker system call moves (larger calls are chunked). */
#define ASYNCIO_FILE_CHUNK ((size_t)1 << 20)

/*
 * open(path, flags, mode) on a worker thread (Python: open() / os.open()).
 * O_CLOEXEC is always added.  Suspends.  Returns the new descriptor, which
 * the caller owns (asyncio_file_close or close(2)), or -EINVAL (path NULL),
 * ASYNCIO_ENOTASK, -ECANCELED (a descriptor opened meanwhile is closed),
 * -ENOMEM, ASYNCIO_ECLOSED (default executor shut down), -EAGAIN (no worker
 * thread), or open(2)'s error (-ENOENT, -EACCES, -EISDIR, ...).
 */
int asyncio_file_open(const char *path, int flags, mode_t mode);

/*
 * read(2) on a worker thread (Python: f.read(n) / os.read(fd, n)).
 * Suspends.  Returns the bytes read (0 at end of file; possibly fewer than
 * n, and at most ASYNCIO_FILE_CHUNK), stored in buf; or -EINVAL (buf NULL
 * with n > 0), -EBADF, -EMFILE (no descriptor left for the dup), -EISDIR,
 * ASYNCIO_ENOTASK, -ECANCELED (buf untouched; see above), -ENOMEM,
 * ASYNCIO_ECLOSED, -EAGAIN, or read(2)'s error.  EINTR is retried.
 */
ssize_t asyncio_file_read(int fd, void *buf, size_t n);

/*
 * pread(2) at offset off (Python: os.pread); the file offset does not move.
 * As asyncio_file_read, plus -EINVAL for off < 0 and -ESPIPE for pipes.
 */
ssize_t asyncio_file_pread(int fd, void *buf, size_t n, off_t off);

/*
 * Writes all n bytes of buf at the file offset (Python: f.write(b) on a
 * buffered file), looping on short writes; each chunk of up to
 * ASYNCIO_FILE_CHUNK bytes is copied, so buf is the caller's again as soon
 * as the call returns.  Suspends.  Returns n, or -EINVAL (buf NULL with
 * n > 0), -EBADF, -EMFILE, ASYNCIO_ENOTASK, -ECANCELED, -ENOMEM,
 * ASYNCIO_ECLOSED, -EAGAIN, or write(2)'s error (-ENOSPC, -EPIPE, ...).  On
 * an error a prefix of buf may have been written.
 */
ssize_t asyncio_file_write(int fd, const void *buf, size_t n);

/*
 * As asyncio_file_write, at offset off with pwrite(2) (Python: os.pwrite,
 * looped); the file offset does not move.  Also -EINVAL for off < 0.
 */
ssize_t asyncio_file_pwrite(int fd, const void *buf, size_t n, off_t off);

/*
 * fsync(2) on a worker thread (Python: os.fsync).  Suspends.  Returns 0,
 * -EBADF, -EMFILE, -EINVAL (fd does not support syncing), -EIO,
 * ASYNCIO_ENOTASK, -ECANCELED (the sync still runs to completion), -ENOMEM,
 * ASYNCIO_ECLOSED, -EAGAIN.
 */
int asyncio_file_fsync(int fd);

/*
 * close(2) on a worker thread (Python: f.close() / os.close).  Suspends.
 * Inside a task with fd >= 0 the descriptor is always closed exactly once:
 * by the worker, or on the loop thread when the job cannot be submitted
 * (-ENOMEM, ASYNCIO_ECLOSED, -EAGAIN are then returned after closing) or is
 * cancelled before a worker took it (-ECANCELED).  Returns 0, close(2)'s
 * error (-EBADF, -EIO; the descriptor is gone anyway), -ECANCELED, or --
 * without closing anything -- -EBADF (fd < 0) and ASYNCIO_ENOTASK.
 */
int asyncio_file_close(int fd);

/*
 * stat(2) on a worker thread (Python: os.stat / aiofiles.os.stat).
 * Suspends.  Returns 0 and fills *st (written only on success), or -EINVAL
 * (path or st NULL), ASYNCIO_ENOTASK, -ECANCELED, -ENOMEM, ASYNCIO_ECLOSED,
 * -EAGAIN, or stat(2)'s error (-ENOENT, -ENOTDIR, -EACCES, ...).
 */
int asyncio_file_stat(const char *path, struct stat *st);

/*
 * unlink(2) on a worker thread (Python: os.unlink).  Suspends.  Returns 0,
 * or -EINVAL (path NULL), ASYNCIO_ENOTASK, -ECANCELED (the unlink may still
 * happen), -ENOMEM, ASYNCIO_ECLOSED, -EAGAIN, or unlink(2)'s error.
 */
int asyncio_file_unlink(const char *path);

/*
 * Reads a whole file (Python: pathlib.Path(path).read_bytes() in
 * to_thread): open, read to end of file and close, all on one worker.
 * Suspends.  Returns 0 and stores the contents in *data (followed by a NUL
 * byte not counted in *len) and their length in *len; the caller owns *data
 * and frees it with asyncio_file_data_free().  On error *data is NULL and
 * *len 0: -EINVAL (an argument NULL), ASYNCIO_ENOTASK, -ECANCELED (the
 * worker's buffer and descriptor are released when it is done), -ENOMEM,
 * ASYNCIO_ECLOSED, -EAGAIN, -EFBIG (larger than memory can address), or
 * open(2)'s and read(2)'s errors (-ENOENT, -EISDIR, ...).
 */
int asyncio_file_read_all(const char *path, char **data, size_t *len);

/* Frees what asyncio_file_read_all() returned.  NULL-safe. */
void asyncio_file_data_free(char *data);

#ifdef __cplusplus
}
#endif
#endif
