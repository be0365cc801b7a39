/*
 * asyncio/protocols.h - protocols (Python: asyncio.protocols).
 *
 * A protocol is what a transport calls when something happens on its
 * connection.  In Python it is an object with methods; here it is a table of
 * callbacks (asyncio_protocol_t, usually a static const) plus one user
 * pointer, the protocol instance, passed to every callback.  Any callback may
 * be NULL: it then does what the Python base class does (nothing; for
 * eof_received, "close the transport").
 *
 * Which kind of protocol a table is, is decided by which callbacks it fills:
 *   - Protocol:          data_received (and eof_received);
 *   - BufferedProtocol:  get_buffer + buffer_updated (they win over
 *                        data_received when both are set);
 *   - DatagramProtocol:  datagram_received + error_received;
 *   - SubprocessProtocol: the pipe_* and process_exited slots (with
 *                        connection_made / connection_lost and
 *                        pause_writing / resume_writing for stdin), for
 *                        subprocess transports (asyncio/subprocess.h).
 *
 * Call order (as Python documents it): connection_made exactly once, then
 * data (data_received or get_buffer/buffer_updated) any number of times,
 * then at most one eof_received, then connection_lost exactly once.  For
 * datagram transports, datagram_received / error_received come between
 * connection_made and connection_lost; for subprocess transports, the
 * pipe_* callbacks and process_exited do (asyncio_loop_subprocess_exec
 * has the details).  pause_writing / resume_writing
 * alternate, starting with pause_writing.
 *
 * Callbacks run on the loop thread, from the ready queue or from inside a
 * transport call made by the protocol itself (write() may call
 * pause_writing, as in Python).  They are plain functions: they must not
 * suspend (start a task for that).  Data pointers passed to a callback are
 * borrowed for the duration of the call only.
 *
 * Lifetime: connection_lost is the transport's last call into the protocol.
 * After it returns the transport is freed, so the protocol must forget its
 * transport pointer there; it may also free its own instance there.
 */
#ifndef ASYNCIO_PROTOCOLS_H
#define ASYNCIO_PROTOCOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct asyncio_transport asyncio_transport_t;

typedef struct asyncio_protocol {
  /* ---- BaseProtocol ---- */

  /* The connection is up (BaseProtocol.connection_made(transport)). */
  void (*connection_made)(asyncio_transport_t *transport, void *protocol);

  /*
   * The connection is closed (BaseProtocol.connection_lost(exc)): error is 0
   * for a regular close or EOF (exc=None), otherwise the negative errno that
   * ended it (-ECONNRESET, -EPIPE, ...).  The last call; the transport is
   * freed when it returns.
   */
  void (*connection_lost)(asyncio_transport_t *transport, int error, void *protocol);

  /*
   * The transport's write buffer went over the high-water mark
   * (BaseProtocol.pause_writing()); resume_writing when it drained to the
   * low-water mark.  Both are advisory, as in Python: writes are still
   * accepted and buffered while paused.
   */
  void (*pause_writing)(asyncio_transport_t *transport, void *protocol);
  void (*resume_writing)(asyncio_transport_t *transport, void *protocol);

  /* ---- Protocol (streaming) ---- */

  /* Received bytes (Protocol.data_received(data)); data is borrowed. */
  void (*data_received)(asyncio_transport_t *transport, const void *data, size_t n,
                        void *protocol);

  /*
   * The peer sent EOF (Protocol.eof_received()).  Return true to keep the
   * transport open (half-closed: it can still write, then the protocol
   * closes it); false (or a NULL callback) closes it, as Python does when
   * the method returns a false value.  Read pipes ignore the value.
   */
  bool (*eof_received)(asyncio_transport_t *transport, void *protocol);

  /* ---- BufferedProtocol ---- */

  /*
   * BufferedProtocol.get_buffer(sizehint): store a writable buffer in *buf and
   * its size (> 0) in *len, and return 0.  sizehint is -1 (no hint), as in
   * CPython's selector transports.  A negative return, or an empty buffer,
   * is a fatal error for the transport (reported to the exception handler,
   * then connection_lost with that error, -ENOBUFS for an empty buffer).
   */
  int (*get_buffer)(asyncio_transport_t *transport, ssize_t sizehint, void **buf, size_t *len,
                    void *protocol);

  /* BufferedProtocol.buffer_updated(nbytes): nbytes were written to the buffer. */
  void (*buffer_updated)(asyncio_transport_t *transport, size_t nbytes, void *protocol);

  /* ---- DatagramProtocol ---- */

  /*
   * A datagram arrived (DatagramProtocol.datagram_received(data, addr)).
   * data and addr are borrowed; addr is NULL (addrlen 0) when the sender has
   * no address (an unnamed Unix socket).
   */
  void (*datagram_received)(asyncio_transport_t *transport, const void *data, size_t n,
                            const struct sockaddr *addr, socklen_t addrlen, void *protocol);

  /*
   * A send or receive failed (DatagramProtocol.error_received(exc)), e.g.
   * -ECONNREFUSED on a connected UDP socket whose peer is gone.  The
   * transport stays open.
   */
  void (*error_received)(asyncio_transport_t *transport, int error, void *protocol);

  /*
   * ---- SubprocessProtocol (asyncio_loop_subprocess_exec / _shell) ----
   * transport is the subprocess transport, never a pipe's.
   */

  /* The child wrote to stdout (fd 1) or stderr (fd 2) (pipe_data_received(fd, data)). */
  void (*pipe_data_received)(asyncio_transport_t *transport, int fd, const void *data, size_t n,
                             void *protocol);
  /*
   * The pipe of fd (0, 1 or 2) is closed (pipe_connection_lost(fd, exc)):
   * error 0 for EOF or a clean close, else the pipe's error.  The pipe
   * transport is freed when it returns.
   */
  void (*pipe_connection_lost)(asyncio_transport_t *transport, int fd, int error,
                               void *protocol);
  /* The child exited and was reaped (process_exited()); get_returncode is set. */
  void (*process_exited)(asyncio_transport_t *transport, void *protocol);
} asyncio_protocol_t;

/*
 * A protocol factory (Python's protocol_factory callable): called once per
 * connection, before connection_made, with the factory's argument.  It
 * stores the callback table in *protocol (required) and the instance pointer
 * in *instance, and returns 0; a negative return refuses the connection
 * (the socket is closed and no callback is made: create_connection returns
 * that error, a server reports it to the exception handler).  Returning 0
 * without a table refuses it the same way, with -EINVAL.
 */
typedef int (*asyncio_protocol_factory_fn)(void *factory_arg, const asyncio_protocol_t **protocol,
                                           void **instance);

#ifdef __cplusplus
}
#endif
#endif
