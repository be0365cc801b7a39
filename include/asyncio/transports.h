/*
 * asyncio/transports.h - transports and the loop calls that make them
 * (Python: asyncio.transports; loop.create_connection,
 * loop.create_datagram_endpoint, loop.connect_accepted_socket in
 * base_events; loop.create_unix_connection, loop.connect_read_pipe,
 * loop.connect_write_pipe in unix_events).
 *
 * A transport owns one file descriptor (a socket or a pipe) and talks to one
 * protocol (asyncio/protocols.h).  It is opaque and owned by the loop: it
 * lives from the call that made it until its protocol's connection_lost
 * callback has returned, and is freed then (so after close() or abort(),
 * and after any fatal error, the pointer stays valid until connection_lost;
 * calls made on it in between are accepted and ignored as Python ignores
 * them).  Every transport reaches connection_lost exactly once, scheduled
 * with call_soon, never from inside the call that caused it.
 *
 * Subprocess transports (asyncio_loop_subprocess_exec in
 * asyncio/subprocess.h) are transports too; which of the calls below work
 * on them, and which return -EOPNOTSUPP, is listed there.
 *
 * Transports that are still open when their loop is closed are closed
 * silently with it (no callback runs; the descriptor is closed and the
 * memory freed).
 *
 * All transport calls are loop-thread only and never suspend.  The calls
 * that make transports (create_connection, ...) suspend the calling task.
 * Every call below that returns an int also returns ASYNCIO_EWRONGTHREAD,
 * having done nothing, when it is made from another thread while the loop
 * runs (the accessors that return a value only read, and are not checked).
 * The calls that make transports return ASYNCIO_ENOTASK unless made from a
 * task of their loop, and ASYNCIO_ECLOSED once that loop is closed.
 */
#ifndef ASYNCIO_TRANSPORTS_H
#define ASYNCIO_TRANSPORTS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "events.h"
#include "protocols.h"
#include "sockets.h" /* asyncio_sendfile_options_t */

#ifdef __cplusplus
extern "C" {
#endif

struct ssl_ctx_st; /* OpenSSL's SSL_CTX (asyncio/sslproto.h) */

/* Default flow-control water marks (transports._FlowControlMixin). */
#define ASYNCIO_WRITE_HIGH_WATER ((size_t)64 * 1024)
#define ASYNCIO_WRITE_LOW_WATER ((size_t)16 * 1024)

/* ---- BaseTransport ------------------------------------------------------- */

/*
 * Closes the transport (BaseTransport.close()): stops reading; data already
 * buffered is still sent, then connection_lost(0) is scheduled.  Later calls
 * are no-ops.  Returns 0 or -EINVAL.
 */
int asyncio_transport_close(asyncio_transport_t *transport);

/*
 * True once close/abort/write_eof-on-a-pipe or an error started closing
 * (BaseTransport.is_closing()); true for a NULL transport.
 */
bool asyncio_transport_is_closing(const asyncio_transport_t *transport);

/*
 * Replaces the protocol (BaseTransport.set_protocol()); later callbacks go to
 * the new table and instance.  Returns 0 or -EINVAL.
 */
int asyncio_transport_set_protocol(asyncio_transport_t *transport,
                                   const asyncio_protocol_t *protocol, void *instance);

/*
 * The current protocol table (BaseTransport.get_protocol()); the instance is
 * stored in *instance if non-NULL.  NULL for a NULL transport.
 */
const asyncio_protocol_t *asyncio_transport_get_protocol(const asyncio_transport_t *transport,
                                                         void **instance);

/*
 * BaseTransport.get_extra_info(), as typed accessors since C has no dict:
 *   get_fd       - 'socket' / 'pipe': the descriptor (borrowed: the
 *                  transport closes it), or -EINVAL;
 *   get_peername - 'peername': copies the peer address into addr (at most
 *                  *addrlen bytes) and stores its full length in *addrlen;
 *                  returns 0, -ENOTCONN when there is none (pipes, an
 *                  unconnected datagram socket), -EINVAL;
 *   get_sockname - 'sockname': likewise for the local address.
 * Addresses are read once when the transport is made, as Python does.
 */
int asyncio_transport_get_fd(const asyncio_transport_t *transport);
int asyncio_transport_get_peername(const asyncio_transport_t *transport, struct sockaddr *addr,
                                   socklen_t *addrlen);
int asyncio_transport_get_sockname(const asyncio_transport_t *transport, struct sockaddr *addr,
                                   socklen_t *addrlen);

/* The loop the transport belongs to (C only; Python's transports keep _loop); NULL for NULL. */
asyncio_loop_t *asyncio_transport_get_loop(const asyncio_transport_t *transport);

/* ---- ReadTransport --------------------------------------------------------- */

/*
 * ReadTransport.is_reading(): not closing and not paused.  After an
 * eof_received that kept the transport open it is still true, as in
 * Python, although nothing more can be read.  False for a NULL transport.
 */
bool asyncio_transport_is_reading(const asyncio_transport_t *transport);

/*
 * ReadTransport.pause_reading() / resume_reading(): stop / restart calling
 * data_received.  Idempotent, as in Python 3.7+.  Once EOF was received,
 * resume_reading does not watch the socket again: CPython (3.11-3.13) does,
 * and calls eof_received a second time; the protocol contract says at most
 * once.  Returns 0, -EINVAL, or -EOPNOTSUPP on a write-only transport.
 */
int asyncio_transport_pause_reading(asyncio_transport_t *transport);
int asyncio_transport_resume_reading(asyncio_transport_t *transport);

/*
 * The read buffer of a TLS app transport (asyncio/sslproto.h; Python 3.11+:
 * _SSLProtocolTransport.get_read_buffer_size(), get_read_buffer_limits(),
 * set_read_buffer_limits(high=None, low=None)).  The buffer is Python's:
 * the ciphertext received from the socket and not yet decrypted, which
 * grows while the protocol is paused for reading (decrypted data goes
 * straight to data_received, nothing is kept).  When it reaches the
 * high-water mark the socket underneath stops being read (its kernel
 * buffer fills and TCP slows the peer down); once it is back at the
 * low-water mark, reading resumes.  One read of up to 256 KiB may go past
 * the mark.  Defaults: 256 KiB / 64 KiB (FLOW_CONTROL_HIGH_WATER_SSL_READ).
 *   get_read_buffer_size   - the bytes waiting; -EINVAL (NULL, or a
 *                            transport whose connection_lost has run),
 *                            -EOPNOTSUPP (not a TLS app transport: Python's
 *                            other transports have no such method);
 *   get_read_buffer_limits - stores (low, high) (each pointer nullable);
 *                            returns 0, -EINVAL, -EOPNOTSUPP;
 *   set_read_buffer_limits - a negative value means None, as for the
 *                            write limits: high None is 256 KiB, or 4*low
 *                            if low is given (SIZE_MAX when that does not
 *                            fit); low None is high/4.  The marks apply at
 *                            once: the socket may be paused or resumed
 *                            before this returns.  A high-water mark of 0
 *                            pauses it whenever the buffer is not empty
 *                            (Python's code pauses it even when empty, and
 *                            hangs).  Returns 0, -EINVAL (NULL, or
 *                            connection_lost has run; high < low, nothing
 *                            changes then: Python's ValueError),
 *                            -EOPNOTSUPP.  Python's ValueError for a
 *                            negative mark has no counterpart.
 * No call suspends or allocates.
 */
ssize_t asyncio_transport_get_read_buffer_size(const asyncio_transport_t *transport);
int asyncio_transport_get_read_buffer_limits(const asyncio_transport_t *transport, size_t *low,
                                             size_t *high);
int asyncio_transport_set_read_buffer_limits(asyncio_transport_t *transport, ssize_t high,
                                             ssize_t low);

/* ---- WriteTransport -------------------------------------------------------- */

/*
 * Writes bytes (WriteTransport.write(data)); never blocks or suspends.  The
 * bytes are sent at once if nothing is buffered; what the kernel does not
 * take is copied into the write buffer and sent when the descriptor is
 * writable.  If the buffer goes above the high-water mark, pause_writing is
 * called before this returns.  Send errors are not returned: they close the
 * transport and reach connection_lost, as in Python.
 * After close(), a socket transport still flushing its buffer takes more
 * data and sends it before closing, as Python's does.  Returns 0 (also when
 * the data is ignored because the connection was lost, or close() had
 * nothing left to send, or a pipe transport is closing, as Python ignores
 * it), -EINVAL (NULL transport, NULL data with n > 0, n above SSIZE_MAX:
 * no object is that large), -EPIPE after
 * write_eof() (Python's RuntimeError), -EBUSY while asyncio_loop_sendfile
 * runs on the transport (RuntimeError 'unable to write; sendfile is in
 * progress'), -EOPNOTSUPP on a read-only or
 * datagram transport, or -ENOMEM (nothing was sent or buffered, unless part
 * was already sent: then the transport is closed with -ENOMEM too).
 */
int asyncio_transport_write(asyncio_transport_t *transport, const void *data, size_t n);

/*
 * Writes several buffers in order (WriteTransport.writelines()), with one
 * writev when nothing is buffered.  Returns as asyncio_transport_write;
 * -EINVAL also for iovcnt < 0, a NULL iov with iovcnt > 0, a NULL
 * iov_base with a length, and lengths adding up to more than SSIZE_MAX
 * (writev(2)'s EINVAL).
 */
int asyncio_transport_writelines(asyncio_transport_t *transport, const struct iovec *iov,
                                 int iovcnt);

/*
 * Closes the write side after the buffered data (WriteTransport.write_eof()):
 * shutdown(SHUT_WR) on a socket, close on a write pipe.  No-op when closing
 * or already done.  An error from shutdown(2) (-ENOTCONN once the peer has
 * reset the connection) is not returned: Python raises it from write_eof,
 * or from the writability callback when the buffer drains; here the
 * broken connection shows up as the next read's error instead.  Returns
 * 0, -EINVAL, -EOPNOTSUPP when the transport cannot (can_write_eof() false).
 */
int asyncio_transport_write_eof(asyncio_transport_t *transport);

/* WriteTransport.can_write_eof(): true for stream sockets and write pipes; false for NULL. */
bool asyncio_transport_can_write_eof(const asyncio_transport_t *transport);

/*
 * Closes at once (BaseTransport/WriteTransport.abort()): buffered data is
 * dropped; connection_lost(0) is scheduled.  Returns 0 or -EINVAL.
 */
int asyncio_transport_abort(asyncio_transport_t *transport);

/*
 * Bytes waiting in the write buffer (WriteTransport.get_write_buffer_size()).
 * A datagram transport counts each queued datagram as its length plus 8
 * bytes of header, as Python 3.13 does (3.11 and 3.12 count the data only,
 * so a flood of empty datagrams never reached the high-water mark); the
 * water marks apply to that sum.  0 for a NULL transport.
 */
size_t asyncio_transport_get_write_buffer_size(const asyncio_transport_t *transport);

/*
 * WriteTransport.set_write_buffer_limits(high=None, low=None): a negative
 * value means None.  high None: 64 KiB, or 4*low if low is given (SIZE_MAX
 * when that does not fit); low None: high/4.  Returns 0, or -EINVAL unless
 * high >= low (nothing changes then).  May call pause_writing at once, never
 * resume_writing (only draining does), as in Python.
 */
int asyncio_transport_set_write_buffer_limits(asyncio_transport_t *transport, ssize_t high,
                                              ssize_t low);

/* WriteTransport.get_write_buffer_limits(): stores (low, high).  Returns 0 or -EINVAL. */
int asyncio_transport_get_write_buffer_limits(const asyncio_transport_t *transport, size_t *low,
                                              size_t *high);

/* ---- DatagramTransport --------------------------------------------------------- */

/*
 * Sends one datagram (DatagramTransport.sendto(data, addr)); addr NULL sends
 * to the connected peer, or to the remote address an allow_broadcast
 * endpoint was made with.  Never blocks: when the socket is full the datagram
 * is queued (a copy), and pause_writing is called once the queue is above
 * the high-water mark.  A datagram of 0 bytes is sent (Python 3.13; 3.11
 * and 3.12 drop it).  Send errors, also those of queued datagrams (an ICMP
 * port unreachable comes back as -ECONNREFUSED on a connected socket), go
 * to error_received and drop that one datagram; the transport stays open.
 * After close(), a datagram joins the queue while it is still being
 * flushed (Python's sendto does not check for closing); once the queue is
 * empty, or after abort() or connection_lost, it is ignored.
 * Returns 0 (also when ignored after close), -EINVAL (bad arguments: NULL
 * data with n > 0, an addrlen shorter than the address family field or
 * longer than struct sockaddr_storage, an addrlen without addr; an
 * address on a connected socket that is not its peer, as Python's
 * ValueError, likewise for an allow_broadcast endpoint's remote address;
 * no address on an unconnected one without it), -EOPNOTSUPP on a stream
 * transport, -EMSGSIZE for more than 65535 bytes on an IP socket (Python
 * hands it to the kernel, whose EMSGSIZE reaches error_received; an
 * AF_UNIX datagram is limited by the socket buffer only), -ENOMEM.
 */
int asyncio_transport_sendto(asyncio_transport_t *transport, const void *data, size_t n,
                             const struct sockaddr *addr, socklen_t addrlen);

/* ---- sendfile ------------------------------------------------------------------ */

/*
 * Sends `count` bytes of file_fd from `offset` through the transport
 * (loop.sendfile(transport, file, offset, count, *, fallback)); count 0
 * means to the end of the file.  Suspends the calling task (a cancellation
 * point, bounded by timeout scopes).
 *   - Stream socket transports, the native path: reading is paused, the
 *     bytes already in the write buffer are sent first (the task waits for
 *     the buffer to drain), then sendfile(2) writes straight to the socket,
 *     suspending while it is full; reading is resumed afterwards if it was
 *     on.  A file sendfile(2) cannot serve (not a regular file) goes to
 *     the fallback.
 *   - Write pipe transports, options->force_fallback, or no native path:
 *     blocks of 256 KiB are read on the default executor and written with
 *     the transport's write(), waiting while the protocol is paused for
 *     writing (the high-water mark) before each block.  The last block may
 *     still be buffered when the call returns, as in Python.  Unlike
 *     Python, the protocol's pause_writing / resume_writing still run.
 * While the call runs, asyncio_transport_write/writelines return -EBUSY.
 * *sent (nullable) gets the bytes sent (fallback: handed to the
 * transport), also on error and -ECANCELED; when it is not 0 and the file
 * is seekable, the file position is left at offset + *sent (Python's
 * file.seek).  Cancelled, the transport is left usable: reading resumed,
 * writes accepted again.  If the transport is closed, aborted or lost while
 * the call waits, the call returns the connection's error, or -EPIPE for a
 * local close; the transport stays allocated until the call has returned.
 * Returns 0; -EINVAL (NULL loop or transport, a closed transport, another
 * loop's transport, negative offset, no_fallback with force_fallback);
 * -EBADF (file_fd); ASYNCIO_ENOTASK; ASYNCIO_EWRONGTHREAD; -EOPNOTSUPP
 * (datagram or read pipe transport: Python's "sendfile is not
 * supported"); -EBUSY (a sendfile already runs on it); -EPIPE (the
 * transport is closing or write_eof() was called: RuntimeError 'Transport
 * is closing'); -ESPIPE (offset on an unseekable file);
 * ASYNCIO_ESENDFILENOTAVAILABLE (options->no_fallback and no native
 * path: write pipes, files sendfile(2) refuses); -ECANCELED; -ENOMEM;
 * ASYNCIO_ECLOSED / -EAGAIN when the fallback needs the default executor
 * and it was shut down / no worker thread could be started; the errors of
 * sendfile(2) and read(2) (-ECONNRESET, -EPIPE, -EIO, ...; a socket error
 * from sendfile(2) is not applied to the transport, as in Python: it shows
 * up on the next read or write).
 */
int asyncio_loop_sendfile(asyncio_loop_t *loop, asyncio_transport_t *transport, int file_fd,
                          off_t offset, size_t count, size_t *sent,
                          const asyncio_sendfile_options_t *options);

/* ---- making transports -------------------------------------------------------- */

/* Options for create_connection / create_unix_connection; NULL = Python's defaults. */
typedef struct asyncio_connection_options {
  /* Address family, protocol and getaddrinfo flags (family=, proto=, flags=); 0 = any. */
  int family;
  int proto;
  int flags;
  /*
   * Bind locally before connecting (local_addr=(host, port)); NULL host =
   * not used.  Resolved with family, proto and flags as host is.  Each
   * attempt binds to the first local address of its own family that works;
   * if every bind fails, the attempt fails with the last bind error (Python
   * words it 'error while attempting to bind on address ...'), and with
   * -EADDRNOTAVAIL when no local address has that family (Python: an
   * OSError without errno, 'no matching local address with family=...').
   * local_port must be in 0..65535 when local_host is set, and 0 when it
   * is not (-EINVAL; Python resolves (None, port) to a loopback address).
   */
  const char *local_host;
  int local_port;
  /*
   * An existing connected stream socket to wrap (sock=), used when use_sock
   * is true (the flag exists because a zeroed struct holds descriptor 0).
   * host must then be NULL and port 0 (port 0 stands for Python's None).
   * It is made non-blocking.  That it is connected is not checked (nor in
   * Python): an unconnected socket still becomes a transport, with
   * get_peername -ENOTCONN, and its first read ends it with
   * connection_lost(-ENOTCONN).  With use_sock the fields above and
   * happy_eyeballs_delay and interleave are not looked at (Python ignores
   * them with sock=).  Once the transport is made the transport owns it
   * (even if the call is then cancelled: connection_lost follows and
   * closes it); on any earlier error the caller keeps it.
   */
  int sock;
  bool use_sock;
  /*
   * Happy Eyeballs (RFC 8305, happy_eyeballs_delay=): seconds to wait for an
   * attempt before starting the next one in parallel; <= 0 = off (Python's
   * None: one attempt after another).  0.25 is the RFC's value.  The failure
   * of the attempt started last starts the next one at once (staggered_race).
   * NaN: -EINVAL.
   */
  double happy_eyeballs_delay;
  /*
   * Reorder addresses by family (interleave=): 0 = Python's default (1 when
   * happy_eyeballs_delay is set, else no reordering); n > 0 = that many
   * addresses of the first family first, then alternate; n < 0: -EINVAL.
   */
  int interleave;
  /*
   * Optional: the error of each failed attempt, in the order they were
   * started; *nerrors gets the number of attempts that failed (may exceed
   * errors_cap).  Python keeps them in the 'Multiple exceptions' message.
   * One error per attempt: where an attempt failed to bind several local
   * addresses, Python's list has each bind error, this only the last.
   */
  int *errors;
  size_t errors_cap;
  size_t *nerrors;
  /*
   * TLS (ssl=, asyncio/sslproto.h): an OpenSSL client context (SSL_CTX *);
   * NULL = plain TCP (unless ssl_default, below).  The call returns once
   * the handshake is done.
   */
  struct ssl_ctx_st *ssl;
  /*
   * server_hostname= (with TLS only, else -EINVAL): the name for SNI and the
   * certificate check; NULL = host (create_unix_connection and sock= have
   * no host: -EINVAL, Python's 'You must set server_hostname when using
   * ssl without a host'); "" = no SNI and no name check.
   */
  const char *server_hostname;
  /*
   * Seconds (with TLS only, else -EINVAL); 0 = 60 s / 30 s
   * (ASYNCIO_SSL_HANDSHAKE_TIMEOUT / _SHUTDOWN_TIMEOUT); negative or NaN:
   * -EINVAL.
   */
  double ssl_handshake_timeout;
  double ssl_shutdown_timeout;
  /*
   * Optional (C only; Python's ssl.SSLCertVerificationError.verify_code):
   * set to 0 (X509_V_OK) when the call starts, then, when it returns
   * ASYNCIO_ESSLCERTVERIFY, to OpenSSL's reason (SSL_get_verify_result: an
   * X509_V_ERR_* code, X509_V_ERR_HOSTNAME_MISMATCH / _IP_ADDRESS_MISMATCH
   * when the certificate does not match server_hostname).  Its text, Python's
   * verify_message, is X509_verify_cert_error_string(code).  With
   * connect_accepted_socket it reports the client certificate a server
   * context asked for (SSL_VERIFY_PEER); create_server has no caller to tell
   * per connection.  Written only while the call runs.
   */
  long *ssl_verify_code;
  /*
   * ssl=True: TLS with a default client context instead of `ssl`, the one
   * asyncio_ssl_create_default_context(ASYNCIO_SSL_PURPOSE_SERVER_AUTH,
   * NULL, NULL) makes (the system's trust store; OpenSSL's SSL_CERT_FILE and
   * SSL_CERT_DIR move it).  The loop makes it on first use and keeps it
   * until it closes; Python makes one per connection.  server_hostname and
   * the timeouts apply as with `ssl`.  With `ssl` also set, or in
   * connect_accepted_socket (a server side needs its certificate: Python's
   * ValueError): -EINVAL.
   */
  bool ssl_default;
} asyncio_connection_options_t;

/*
 * Opens a TCP connection (loop.create_connection(protocol_factory, host,
 * port, *, local_addr, sock, family, proto, flags, happy_eyeballs_delay,
 * interleave)).  Resolves host (asyncio_getaddrinfo), tries the addresses
 * in order (or races them with Happy Eyeballs), wraps the connected socket
 * in a transport with TCP_NODELAY, calls the factory, and returns after
 * connection_made has run.  A NULL host without use_sock is resolved as
 * getaddrinfo resolves it, to the loopback addresses (Python passes
 * host=None on the same way).  Suspends the calling task (a cancellation
 * point: cancelling closes every socket it opened; if the transport was
 * already made it is closed, and connection_lost follows).
 * Stores the transport in *transport and the protocol instance in
 * *instance (if non-NULL).  Returns 0; -EINVAL (bad arguments: NULL
 * loop, factory or transport, sock with a host or a port other than 0, a
 * sock that is not SOCK_STREAM, a port outside 0..65535, the options
 * refused above (local_port, happy_eyeballs_delay, interleave), a factory
 * that gives no protocol table); -EBADF (a negative or closed sock) /
 * -ENOTSOCK (a sock that is no socket); ASYNCIO_ENOTASK; ASYNCIO_ECLOSED;
 * ASYNCIO_EWRONGTHREAD; -ECANCELED; resolution errors
 * (asyncio_getaddrinfo's: ASYNCIO_EGAI_*, and ASYNCIO_ECLOSED / -EAGAIN
 * when the default executor it runs on was shut down / could start no
 * thread); -ENOMEM; the factory's error; when every attempt failed: their
 * error if all failed the same way (or only one was made), else
 * ASYNCIO_EEXCEPTIONGROUP (Python's OSError('Multiple exceptions: ...'));
 * the individual errors are in options->errors.  -EADDRNOTAVAIL when
 * local_host has no address of a family the remote has.  -ENOTCONN when
 * the connection was lost again before the call could return (the
 * protocol saw connection_made and connection_lost; *transport is NULL).
 */
int asyncio_loop_create_connection(asyncio_loop_t *loop, asyncio_protocol_factory_fn factory,
                                   void *factory_arg, const char *host, int port,
                                   const asyncio_connection_options_t *options,
                                   asyncio_transport_t **transport, void **instance);

/*
 * Wraps a connection accepted outside asyncio (loop.connect_accepted_socket(
 * protocol_factory, sock, *, ssl, ssl_handshake_timeout,
 * ssl_shutdown_timeout)).  options (NULL = defaults) is looked at for
 * those three only: with ssl (a server context) this end is the TLS server
 * and the call returns after the handshake; server_hostname must be NULL
 * (-EINVAL: the server side has none); the other fields are ignored.  The
 * socket is made non-blocking; on success the transport owns it, on error
 * the caller keeps it.  Suspends until connection_made has run.  Returns as
 * create_connection: -EBADF for a negative or closed descriptor, -ENOTSOCK
 * for one that is no socket, -EINVAL for a socket that is not SOCK_STREAM.
 */
int asyncio_loop_connect_accepted_socket(asyncio_loop_t *loop,
                                         asyncio_protocol_factory_fn factory, void *factory_arg,
                                         int sock, const asyncio_connection_options_t *options,
                                         asyncio_transport_t **transport, void **instance);

/*
 * Connects to a Unix stream socket (loop.create_unix_connection(
 * protocol_factory, path, *, sock)).  A path starting with '@' names the
 * Linux abstract namespace (Python writes it with a leading NUL).  options
 * may give sock (with use_sock; then path must be NULL), which must be an
 * AF_UNIX SOCK_STREAM socket (else -EINVAL, Python's ValueError 'A UNIX
 * Domain Stream Socket was expected'; the caller keeps it); the other
 * fields are ignored.  Neither path nor sock, or an empty path: -EINVAL;
 * a negative sock: -EBADF.  Suspends; returns as create_connection, and
 * -ENAMETOOLONG, and connect's errors for the path (-ENOENT,
 * -ECONNREFUSED, ...).
 */
int asyncio_loop_create_unix_connection(asyncio_loop_t *loop,
                                        asyncio_protocol_factory_fn factory, void *factory_arg,
                                        const char *path,
                                        const asyncio_connection_options_t *options,
                                        asyncio_transport_t **transport, void **instance);

/* Options for create_datagram_endpoint; NULL = Python's defaults. */
typedef struct asyncio_datagram_options {
  /* local_addr=(host, port): bind here; NULL host = no bind (unless family alone). */
  const char *local_host;
  int local_port;
  /*
   * remote_addr=(host, port): connect here; NULL host = unconnected.  With
   * allow_broadcast the socket is not connected (as Python): the address is
   * only where sendto without an address goes, any peer's datagrams are
   * received, and get_peername is -ENOTCONN (Python's peername None).
   */
  const char *remote_host;
  int remote_port;
  /*
   * 0 = from the addresses.  AF_UNIX: local_host / remote_host are socket
   * paths ('@' = the abstract namespace), the ports and flags must be 0, and
   * nothing is resolved (Python: family=AF_UNIX, local_addr=path,
   * remote_addr=path).
   */
  int family;
  int proto;
  int flags;
  bool reuse_port;      /* SO_REUSEPORT */
  bool allow_broadcast; /* SO_BROADCAST */
  /*
   * An existing datagram socket to wrap (sock=), with use_sock; owned as in
   * create_connection.  Every other field must then be 0 / NULL / false,
   * ports and flags included (-EINVAL: Python's "socket modifier keyword
   * arguments can not be used").
   */
  int sock;
  bool use_sock;
} asyncio_datagram_options_t;

/*
 * Makes a UDP endpoint (loop.create_datagram_endpoint(protocol_factory,
 * local_addr, remote_addr, *, family, proto, flags, reuse_port,
 * allow_broadcast, sock)).  options is required, and in it at least one
 * of local_host, remote_host, family or sock (-EINVAL); a port outside
 * 0..65535 with its host, or a port without its host, is -EINVAL (Python
 * resolves (None, port) to a loopback address); a negative sock -EBADF.  Suspends
 * (resolution, and until connection_made has run).  Returns as
 * create_connection (a sock= that is not SOCK_DGRAM is -EINVAL); when
 * several address pairs fail, the first error (as Python raises
 * exceptions[0]), socket(2)'s for a family it does not know.
 * With family AF_UNIX it makes a Unix datagram endpoint: a socket file
 * already at local_host is removed before binding (never another kind of
 * file: bind then fails with -EADDRINUSE) and, as in Python, left behind on
 * close; errors also -ENAMETOOLONG, and connect's (-ENOENT, -ECONNREFUSED)
 * for remote_host.
 */
int asyncio_loop_create_datagram_endpoint(asyncio_loop_t *loop,
                                          asyncio_protocol_factory_fn factory, void *factory_arg,
                                          const asyncio_datagram_options_t *options,
                                          asyncio_transport_t **transport, void **instance);

/*
 * Wraps the read end of a pipe, FIFO, socket or character device
 * (loop.connect_read_pipe(protocol_factory, pipe)).  The descriptor is made
 * non-blocking; on success the transport owns it (and closes it).  When the
 * factory refuses, the descriptor is left as it was, blocking or not.  EOF
 * calls eof_received, whose value is ignored, then connection_lost(0).
 * A read error ends it too: connection_lost gets the error, which is
 * also reported to the exception handler unless it is -EIO (Python's
 * "Fatal read error on pipe transport").
 * Suspends until connection_made has run.  Returns 0, -EINVAL (NULL loop,
 * factory or transport, a factory that gives no protocol table, a regular
 * file or directory: Python's ValueError), -EBADF (negative or closed, or
 * open for writing only: a check Python does not make), ASYNCIO_ENOTASK,
 * ASYNCIO_ECLOSED, ASYNCIO_EWRONGTHREAD, -ECANCELED, -ENOMEM, the
 * factory's error, -ENOTCONN when the transport was lost before the call
 * returned (a descriptor epoll refuses, such as /dev/null: the protocol
 * saw connection_made and connection_lost(-EPERM)).
 */
int asyncio_loop_connect_read_pipe(asyncio_loop_t *loop, asyncio_protocol_factory_fn factory,
                                   void *factory_arg, int fd, asyncio_transport_t **transport,
                                   void **instance);

/*
 * Wraps the write end of a pipe, FIFO, socket or character device
 * (loop.connect_write_pipe(protocol_factory, pipe)).  As connect_read_pipe
 * (-EBADF for a descriptor open for reading only).
 * When the reading side goes away, connection_lost gets -EPIPE if data was
 * still buffered, else 0 (the buffer is dropped).  On a socket, anything
 * readable counts as that, data included, as in Python; a character
 * device is not watched.  Writing to a pipe whose reader is gone raises
 * SIGPIPE; like the Python interpreter, this call sets SIGPIPE to SIG_IGN
 * if it still has its default disposition.
 */
int asyncio_loop_connect_write_pipe(asyncio_loop_t *loop, asyncio_protocol_factory_fn factory,
                                    void *factory_arg, int fd, asyncio_transport_t **transport,
                                    void **instance);

#ifdef __cplusplus
}
#endif
#endif
