/*
 * asyncio/sockets.h - low-level socket calls (Python: loop.sock_recv,
 * sock_recv_into, sock_recvfrom, sock_recvfrom_into, sock_sendall,
 * sock_sendto, sock_connect, sock_accept, sock_sendfile in
 * asyncio.selector_events and asyncio.base_events).
 *
 * Each call acts on the running loop and must be made from a task.  It
 * tries the system call first; only if that would block does it watch the
 * descriptor (add_reader / add_writer) and suspend the calling task, and the
 * watcher is removed before the call returns.  So every call that has to
 * wait is a suspension point, and therefore a cancellation point (and bounded
 * by an enclosing timeout scope): cancelled, it returns -ECANCELED with its
 * watcher removed and the descriptor still usable.  A call that completes at
 * once does not suspend (as in Python, where the first try happens before
 * any await).  Waiting allocates nothing once the descriptor has been
 * watched before.
 *
 * The data calls (recv, recvfrom, sendall, sendto) make each system call
 * with MSG_DONTWAIT, so they never block the loop, even on a socket left
 * in blocking mode, and cost no fcntl(2) per call.  connect, accept and
 * sendfile need the socket in non-blocking mode, as Python says of all.
 *
 * Common errors: -EINVAL if connect / accept / sendfile get a socket not in
 * non-blocking mode (Python: "the socket must be non-blocking") or an
 * argument is bad (a NULL buffer with a length, an addr without addrlen);
 * -EBADF (a negative descriptor, or one that is not open); -ENOTSOCK (a
 * descriptor that is no socket); ASYNCIO_ENOTASK outside a task (from a
 * callback, or from a thread that runs no loop); -ENOMEM if the
 * descriptor's first wait cannot allocate its watch; -EBUSY if the call
 * would have to wait while something else (another task's sock_* call, a
 * transport, an add_reader callback) already watches the descriptor in the
 * same direction -- Python raises RuntimeError for a transport's
 * descriptor and otherwise silently replaces the first waiter's callback,
 * which then never wakes; and the negative errno of the system call.  SIGPIPE is never raised:
 * sends use MSG_NOSIGNAL and report -EPIPE (sendfile(2), which has no such
 * flag, runs with SIGPIPE blocked in the calling thread, and the signal it
 * raised is taken back; the process's disposition is not changed).
 */
#ifndef ASYNCIO_SOCKETS_H
#define ASYNCIO_SOCKETS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Receives up to n bytes into buf (loop.sock_recv / loop.sock_recv_into:
 * C has no bytes objects, so the caller's buffer serves both).  Suspends
 * until data or EOF arrives.  Returns the byte count (> 0), 0 at EOF (or
 * for n == 0), or an error (-ECONNRESET, -ECANCELED, ...).
 */
ssize_t asyncio_sock_recv(int fd, void *buf, size_t n);

/*
 * Receives one datagram (loop.sock_recvfrom / sock_recvfrom_into).  The
 * sender's address goes to addr/addrlen when addr is non-NULL (*addrlen in:
 * capacity, out: size).  Returns the byte count (a longer datagram is
 * truncated to n, as recvfrom(2)) or an error.
 */
ssize_t asyncio_sock_recvfrom(int fd, void *buf, size_t n, struct sockaddr *addr,
                              socklen_t *addrlen);

/*
 * Sends all n bytes (loop.sock_sendall), suspending while the socket buffer
 * is full.  Returns 0 once everything was handed to the kernel, or an error.
 * As in Python, n == 0 still makes one send(2), so a socket that is shut
 * down or reset reports -EPIPE / -ECONNRESET; it never suspends.
 * Python cannot tell how much went out before an error or a cancellation;
 * here *sent (if non-NULL) always receives the number of bytes written, also
 * when the call fails or returns -ECANCELED.
 */
int asyncio_sock_sendall(int fd, const void *buf, size_t n, size_t *sent);

/*
 * Sends one datagram to addr (loop.sock_sendto); suspends while the socket
 * cannot take it.  addr NULL with addrlen 0 sends to the connected peer (a
 * C convenience; Python requires an address).  Returns the byte count or
 * an error: -EINVAL also for an addr with addrlen 0 (a Unix socket's
 * sendto(2) would quietly send to its peer) and an addrlen without addr.
 */
ssize_t asyncio_sock_sendto(int fd, const void *buf, size_t n, const struct sockaddr *addr,
                            socklen_t addrlen);

/*
 * Connects fd to addr (loop.sock_connect; the address is already resolved:
 * use asyncio_getaddrinfo).  On EINPROGRESS it suspends until the socket is
 * writable and returns SO_ERROR's verdict.  Returns 0, -ECONNREFUSED,
 * -ETIMEDOUT, -ENETUNREACH, ...  Cancelled, it returns -ECANCELED and the
 * connection attempt goes on in the kernel (close the socket to stop it);
 * calling it again then (connect(2) says EALREADY) waits for that attempt's
 * outcome, as Python's does.  On a connected socket: -EISCONN (Linux
 * reports a connect that finished in the background once more as 0 first).
 */
int asyncio_sock_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);

/*
 * Accepts a connection on the listening socket fd (loop.sock_accept);
 * suspends until one arrives.  Returns 0 and stores the new socket in
 * *conn_fd -- non-blocking and close-on-exec, owned by the caller -- and the
 * peer's address in addr/addrlen if addr is non-NULL.  Returns an error
 * otherwise (-ECONNABORTED, -EMFILE, ...), with *conn_fd set to -1.
 */
int asyncio_sock_accept(int fd, int *conn_fd, struct sockaddr *addr, socklen_t *addrlen);

/* Options for asyncio_sock_sendfile; NULL means Python's defaults. */
typedef struct asyncio_sendfile_options {
  /* Python's fallback=False: fail with ASYNCIO_ESENDFILENOTAVAILABLE instead
   * of reading and sending when sendfile(2) cannot be used. */
  bool no_fallback;
  /* C only: skip sendfile(2) and use the read/send loop (for files whose
   * file system serves sendfile badly, and for tests). */
  bool force_fallback;
} asyncio_sendfile_options_t;

/*
 * Sends `count` bytes of file_fd, starting at `offset`, to the connected
 * stream socket `sock` (loop.sock_sendfile(sock, file, offset, count)).
 * count 0 means up to the end of the file (Python's None; Python refuses
 * 0).  Uses sendfile(2), suspending while the socket is full; if sendfile(2)
 * cannot serve the file (not a regular file, or refused with EINVAL,
 * ENOSYS, ... before anything was sent), it falls back to reading blocks of
 * 256 KiB on the default executor and sock_sendall-ing them, unless
 * options->no_fallback.  Other errors of sendfile(2) (-EPIPE, -ECONNRESET)
 * are returned as they are, where Python turns any error before the first
 * byte into SendfileNotAvailableError and lets the fallback meet it again.
 * The file's st_size is not trusted: a /proc file that reports 0 is sent
 * through the fallback (Python's count=None sends nothing of it).  As in Python, the
 * file's position is left at offset + bytes sent (when anything was sent
 * and the file is seekable).  *sent (if non-NULL) gets the bytes sent, also
 * on error and on -ECANCELED.  Returns 0, -EINVAL (not a non-blocking
 * SOCK_STREAM socket, negative offset, no_fallback with force_fallback),
 * -EBADF (sock or file_fd), -ENOTSOCK, ASYNCIO_ESENDFILENOTAVAILABLE,
 * -ESPIPE (an offset into a file that cannot seek, for the fallback),
 * -ECANCELED, -ENOMEM, ASYNCIO_ECLOSED / -EAGAIN (the fallback's default
 * executor was shut down / could start no thread), or the errors of
 * sock_sendall and read(2).
 */
int asyncio_sock_sendfile(int sock, int file_fd, off_t offset, size_t count, size_t *sent,
                          const asyncio_sendfile_options_t *options);

#ifdef __cplusplus
}
#endif
#endif
