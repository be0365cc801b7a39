/*
 * asyncio/streams.h - streams (Python: asyncio.streams): a StreamReader /
 * StreamWriter pair over a transport, for code that reads and writes in
 * tasks instead of reacting in protocol callbacks.
 *
 * A connection's reader and writer are two handles on one object.  Each is
 * freed on its own (asyncio_stream_reader_free, asyncio_stream_writer_free);
 * the object goes when both are.  Freeing the writer closes the transport
 * the way StreamWriter.close() does: data already accepted by write() is
 * still sent, then the socket is closed.  Freeing the reader while the
 * connection is open stops reading (data that arrives later is discarded).
 *
 * Flow control, as StreamReader: when more than 2 * `limit` bytes (64 KiB
 * by default) are buffered the reader pauses the transport, and resumes it
 * once the buffer is down to `limit` (or when a read waits for more);
 * readline / readuntil fail with ASYNCIO_ELIMITOVERRUN when the separator
 * is not within `limit` bytes.  The transport receives straight into the
 * reader's buffer, or into the caller's buffer while a read waits on an
 * empty one.
 *
 * Errors.  A connection error (-ECONNRESET, ...) is kept.  A later read
 * that the data received before the error can serve is served from it; one
 * that it cannot serve (readline or readuntil without a separator in it,
 * readexactly asking for more) returns the error and consumes nothing, so
 * read(n) still gets that data (Python's read raises at once, dropping it).
 * A read that is cancelled, or fails with an error, consumes nothing: bytes
 * it had taken go back in front of the buffer.  If there is no memory to
 * put them back, the stream fails instead of skipping them: the transport
 * is aborted and every later read and drain returns -ENOMEM.
 *
 * Every call that can suspend is a cancellation point and is bounded by the
 * ambient timeout scope (asyncio/timeouts.h): when the scope expires the
 * call returns -ECANCELED, which asyncio_timeout_exit() turns into
 * -ETIMEDOUT; the stream stays usable.  All calls are loop-thread
 * only; the suspending ones must be called from a task (else
 * ASYNCIO_ENOTASK).  Only one task may wait on a reader at a time: while
 * one does, every other read call on that reader returns
 * ASYNCIO_EINVALIDSTATE (Python's RuntimeError "... already waiting"), even
 * one the buffer could serve at once or read(0) (Python raises only when the
 * second call would itself have to wait).  Several tasks may wait in
 * drain() on one writer, and all wake together.
 *
 * Misuse.  -EINVAL reports a NULL handle or pointer, a handle freed while
 * the other handle of its pair still holds the object (once both are freed
 * the pointers are dangling, as after any _free), and a call that has to
 * wait made from a task of a loop other than the stream's.  A call made from
 * a thread other than the one running the stream's loop returns
 * ASYNCIO_EWRONGTHREAD; the queries (at_eof, buffered, partial,
 * get_peername, is_closing, transport, ...) only read, and do not check.
 * When the loop is closed, the handles the caller still holds are orphans:
 * the calls below return ASYNCIO_ECLOSED, except close() (0), the _free
 * calls (which must still be made) and the queries (as for a lost
 * connection).
 */
#ifndef ASYNCIO_STREAMS_H
#define ASYNCIO_STREAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "events.h"
#include "servers.h"
#include "sslproto.h"
#include "transports.h"

#ifdef __cplusplus
extern "C" {
#endif

/* streams._DEFAULT_LIMIT */
#define ASYNCIO_STREAM_LIMIT ((size_t)64 * 1024)

typedef struct asyncio_stream_reader asyncio_stream_reader_t;
typedef struct asyncio_stream_writer asyncio_stream_writer_t;

/* Options for open_connection / start_server and their Unix variants; NULL = defaults. */
typedef struct asyncio_stream_options {
  /*
   * The reader's buffer limit (limit=); 0 = ASYNCIO_STREAM_LIMIT, where
   * Python raises ValueError for limit <= 0.  Values above SIZE_MAX / 2
   * count as SIZE_MAX / 2 (no limit in practice).
   */
  size_t limit;
  /* open_connection / open_unix_connection: passed to create_connection (NULL = defaults). */
  const asyncio_connection_options_t *connection;
  /* start_server / start_unix_server: passed to create_server (NULL = defaults). */
  const asyncio_server_options_t *server;
} asyncio_stream_options_t;

/* ---- opening connections -------------------------------------------------- */

/*
 * asyncio.open_connection(host, port, limit=..., **kwds): create_connection
 * on the running loop, with a reader and a writer over the transport.
 * Suspends.  On success the caller owns *reader and *writer; on error the
 * non-NULL ones of them are set to NULL.  Returns 0 or
 * what asyncio_loop_create_connection returns (-ECONNREFUSED, ASYNCIO_EGAI_*,
 * -ECANCELED, also when a timeout scope expires, ...), ASYNCIO_ENOTASK,
 * -EINVAL (NULL out pointers).
 */
int asyncio_open_connection(const char *host, int port, const asyncio_stream_options_t *options,
                            asyncio_stream_reader_t **reader, asyncio_stream_writer_t **writer);

/*
 * asyncio.open_unix_connection(path, ...): as asyncio_open_connection, over
 * asyncio_loop_create_unix_connection.  path is NULL when
 * options->connection gives a socket (sock=).  Returns 0, what
 * create_unix_connection returns (-ENOENT, -ECONNREFUSED, -ENAMETOOLONG,
 * -ECANCELED, ...; -EINVAL for both or neither of path and sock),
 * ASYNCIO_ENOTASK, -EINVAL (NULL out pointers).
 */
int asyncio_open_unix_connection(const char *path, const asyncio_stream_options_t *options,
                                 asyncio_stream_reader_t **reader,
                                 asyncio_stream_writer_t **writer);

/*
 * The client_connected_cb of start_server: runs as a task of its own for
 * each accepted connection (Python wraps a coroutine callback in a task).
 * The handler owns nothing: when it returns, the library frees the reader
 * and the writer (closing the transport, buffered data still sent), unless
 * the handler took them over with asyncio_stream_detach() first (a handle
 * another task is still suspended on is left alone; such a stream is
 * freed at loop close).  A handler task still pending when the loop is
 * closed is destroyed and its reader and writer freed with it.  Its
 * return value is the task's outcome: an error nobody retrieves is reported
 * through the loop's exception handler ("Task exception was never
 * retrieved", as Python 3.11 logs it; 3.12 reports "Unhandled exception in
 * client_connected_cb" and closes the transport, which the library does on
 * any return).
 */
typedef int (*asyncio_stream_handler_fn)(asyncio_stream_reader_t *reader,
                                         asyncio_stream_writer_t *writer, void *arg);

/*
 * asyncio.start_server(client_connected_cb, host, port, limit=..., **kwds):
 * create_server on the running loop; each connection gets a reader, a
 * writer and a task running handler(reader, writer, arg).  Suspends.  The
 * caller owns *server (asyncio/servers.h: close, serve_forever, wait_closed,
 * free).  Closing the server does not stop the handlers (as in Python);
 * asyncio_server_close_clients() closes their connections.  Returns as
 * asyncio_loop_create_server.
 */
int asyncio_start_server(asyncio_stream_handler_fn handler, void *arg, const char *host, int port,
                         const asyncio_stream_options_t *options, asyncio_server_t **server);

/*
 * asyncio.start_unix_server(client_connected_cb, path, ...): as
 * asyncio_start_server, over asyncio_loop_create_unix_server.  path is
 * NULL when options->server gives a socket (sock=).  Returns as
 * create_unix_server (-EINVAL for both or neither of path and sock).
 */
int asyncio_start_unix_server(asyncio_stream_handler_fn handler, void *arg, const char *path,
                              const asyncio_stream_options_t *options, asyncio_server_t **server);

/*
 * Takes the reader and writer of a start_server handler over: the library
 * no longer frees them when the handler returns, the caller frees them
 * (e.g. after handing them to another task).  Idempotent.  Returns 0,
 * -EINVAL (also: not a start_server stream), ASYNCIO_ECLOSED,
 * ASYNCIO_EWRONGTHREAD.
 */
int asyncio_stream_detach(asyncio_stream_writer_t *writer);

/* ---- StreamReader ---------------------------------------------------------- */

/*
 * StreamReader.read(n): waits until at least one byte is buffered or EOF,
 * then copies up to n bytes into buf.  Returns the byte count (> 0), 0 at
 * EOF, 0 at once when n == 0 (but, as Python's read(0) raises it, the
 * connection's error if there is one and the buffer is empty), or a
 * negative error: the connection's error
 * (-ECONNRESET, ...) once the buffer is empty, -ECANCELED,
 * ASYNCIO_EINVALIDSTATE (another task is waiting on this reader), -EINVAL
 * (NULL buf with n > 0; see Misuse above), ASYNCIO_ENOTASK (it had to wait
 * outside a task), ASYNCIO_ECLOSED (the loop was closed),
 * ASYNCIO_EWRONGTHREAD.
 */
ssize_t asyncio_stream_read(asyncio_stream_reader_t *reader, void *buf, size_t n);

/*
 * StreamReader.read() / read(-1): reads until EOF.  *data gets a buffer the
 * caller owns (free it with asyncio_stream_free_data(*data, *len); it is
 * NUL-terminated for convenience), *len its length.  Not bounded by the
 * limit (as in Python).  Returns 0, a connection error (the bytes read so
 * far are dropped), -ENOMEM, or another error as read() (-ECANCELED,
 * ASYNCIO_ENOTASK, ...); after any error but a connection error the bytes
 * read so far go back to the reader: the call consumed nothing.
 */
int asyncio_stream_read_all(asyncio_stream_reader_t *reader, char **data, size_t *len);

/* Frees what asyncio_stream_read_all returned (len as it returned).  NULL-safe. */
void asyncio_stream_free_data(char *data, size_t len);

/*
 * StreamReader.readexactly(n): copies exactly n bytes into buf.  At EOF
 * before n bytes: ASYNCIO_EINCOMPLETEREAD, and the bytes that did arrive are
 * in buf, their count from asyncio_stream_partial() (IncompleteReadError.
 * partial; they are consumed).  Otherwise returns 0, or an error as read();
 * n == 0 returns at once, as read(0) does.
 */
int asyncio_stream_readexactly(asyncio_stream_reader_t *reader, void *buf, size_t n);

/*
 * StreamReader.readline(): readuntil("\n"), except that at EOF it returns
 * the partial line (possibly empty) instead of failing, and on a line
 * longer than the limit it discards the data it looked at (up to and
 * including the separator when it is in the buffer) and fails with
 * ASYNCIO_ELIMITOVERRUN (Python raises ValueError; ours keeps the
 * LimitOverrunError code).
 *
 * *line points into the reader's buffer (borrowed: valid until the next
 * call on this reader), includes the '\n' when there is one, and is not
 * NUL-terminated.  Returns the length (0 = EOF), or an error as read().
 */
ssize_t asyncio_stream_readline(asyncio_stream_reader_t *reader, const char **line);

/*
 * StreamReader.readuntil(separator): waits until the separator is in the
 * buffer and returns the data up to and including it (*out borrowed as for
 * readline).  Errors: at EOF first, ASYNCIO_EINCOMPLETEREAD with the whole
 * buffer consumed and retrievable with asyncio_stream_partial(); when the
 * separator is not found within `limit` bytes, ASYNCIO_ELIMITOVERRUN with
 * nothing consumed (asyncio_stream_overrun_consumed() tells how many bytes
 * were looked at, LimitOverrunError.consumed); -EINVAL for an empty
 * separator; else as read().  Returns the length (> 0).
 */
ssize_t asyncio_stream_readuntil(asyncio_stream_reader_t *reader, const void *sep, size_t seplen,
                                 const char **out);

/*
 * readuntil((sep1, sep2, ...)) (Python 3.13): the shortest match of any of
 * the nseps separators wins; of two ending at the same byte, the shorter
 * separator, whatever their order (its start is what LimitOverrun compares
 * with the limit).  As asyncio_stream_readuntil; -EINVAL also for nseps 0
 * or a NULL array (Python: ValueError for an empty tuple) and for any NULL
 * or empty separator.
 */
ssize_t asyncio_stream_readuntil_any(asyncio_stream_reader_t *reader, const void *const *seps,
                                     const size_t *seplens, size_t nseps, const char **out);

/*
 * After ASYNCIO_EINCOMPLETEREAD from readuntil: the partial bytes
 * (IncompleteReadError.partial), borrowed until the next call on the reader.
 * After readexactly: *data NULL, *len the count copied into the caller's
 * buffer.  Once the loop is closed the reader's buffer is gone: *data NULL,
 * *len 0 after readuntil.  Returns 0, or -EINVAL.
 */
int asyncio_stream_partial(const asyncio_stream_reader_t *reader, const char **data, size_t *len);

/* After ASYNCIO_ELIMITOVERRUN: LimitOverrunError.consumed.  0 for NULL. */
size_t asyncio_stream_overrun_consumed(const asyncio_stream_reader_t *reader);

/* StreamReader.at_eof(): EOF was received and the buffer is empty.  false for NULL. */
bool asyncio_stream_at_eof(const asyncio_stream_reader_t *reader);

/* Bytes in the reader's buffer now (len(reader._buffer)).  0 for NULL. */
size_t asyncio_stream_buffered(const asyncio_stream_reader_t *reader);

/*
 * `async for line in reader`:
 *
 *   const char *line;
 *   ssize_t n;
 *   ASYNCIO_STREAM_FOR_LINES(n, reader, &line) {
 *     use(line, n);
 *   }
 *   if (n < 0) return (int)n;
 *
 * Stops at EOF (n == 0) or on an error (n < 0).
 */
#define ASYNCIO_STREAM_FOR_LINES(n, reader, linep) \
  while (((n) = asyncio_stream_readline((reader), (linep))) > 0)

/*
 * Frees the reader handle (reading goes on; later data is discarded).
 * Returns 0, -EINVAL, -EBUSY while a task waits on it,
 * ASYNCIO_EWRONGTHREAD.  Works after the loop was closed.
 */
int asyncio_stream_reader_free(asyncio_stream_reader_t *reader);

/* ---- StreamWriter ---------------------------------------------------------- */

/*
 * StreamWriter.write(data): hands the bytes to the transport (copied when
 * they cannot be sent at once).  Never suspends; call drain() to wait for
 * the buffer to go down.  Returns 0; the connection's error if it is lost
 * (ASYNCIO_ECLOSED once close() was called, -EPIPE after write_eof, else
 * the error that ended it; ASYNCIO_ECLOSED also when someone else closed
 * the transport, e.g. asyncio_server_close_clients, and after loop close);
 * -EBUSY while asyncio_loop_sendfile runs on the transport (Python's
 * RuntimeError); -ENOMEM; -EINVAL; ASYNCIO_EWRONGTHREAD.
 */
int asyncio_stream_write(asyncio_stream_writer_t *writer, const void *data, size_t n);

/*
 * StreamWriter.writelines(data): as write, one buffer per iovec; -EINVAL
 * also for iovcnt > INT_MAX or an iovec with a NULL base and a length.
 */
int asyncio_stream_writelines(asyncio_stream_writer_t *writer, const struct iovec *iov,
                              size_t iovcnt);

/*
 * StreamWriter.drain(): waits until the transport's write buffer is at or
 * below its low-water mark (returns at once when it is not paused).  Also
 * yields once when the connection is closing, as Python does.  Returns 0,
 * the connection's error (-ECONNRESET, -EPIPE, ...; -ECONNRESET, Python's
 * "Connection lost", once the connection is gone even if it ended
 * cleanly), -ECANCELED, -EINVAL, ASYNCIO_ENOTASK (it had to wait outside a
 * task), ASYNCIO_ECLOSED, ASYNCIO_EWRONGTHREAD.
 */
int asyncio_stream_drain(asyncio_stream_writer_t *writer);

/*
 * StreamWriter.write_eof(): shuts the write side down after the buffered
 * data.  Returns 0 (also once the connection is closing or gone), -EINVAL,
 * ASYNCIO_ECLOSED, ASYNCIO_EWRONGTHREAD.  Every transport a stream runs on
 * (sockets, write pipes) can write EOF.
 */
int asyncio_stream_write_eof(asyncio_stream_writer_t *writer);
/* StreamWriter.can_write_eof(): false for NULL, once the connection is gone, after loop close. */
bool asyncio_stream_can_write_eof(const asyncio_stream_writer_t *writer);

/*
 * StreamWriter.close(): closes the transport (buffered data is still sent).
 * Idempotent.  The writer stays valid until freed.  Returns 0 (also after
 * loop close), -EINVAL, ASYNCIO_EWRONGTHREAD.
 */
int asyncio_stream_close(asyncio_stream_writer_t *writer);
/* StreamWriter.is_closing(): true also for NULL and after loop close. */
bool asyncio_stream_is_closing(const asyncio_stream_writer_t *writer);

/*
 * StreamWriter.wait_closed(): waits until the connection is fully closed
 * (connection_lost).  Returns 0, the error the connection ended with,
 * -ECANCELED, -EINVAL, ASYNCIO_ENOTASK (it had to wait outside a task),
 * ASYNCIO_ECLOSED, ASYNCIO_EWRONGTHREAD.
 */
int asyncio_stream_wait_closed(asyncio_stream_writer_t *writer);

/*
 * StreamWriter.start_tls(sslcontext, *, server_hostname,
 * ssl_handshake_timeout, ssl_shutdown_timeout): drains the writer, then
 * upgrades the connection to TLS (asyncio_loop_start_tls; a stream that
 * already speaks TLS gets a second layer over the first); afterwards the
 * reader and writer carry plaintext over the new app transport, which
 * asyncio_stream_transport returns.  This end is the TLS server when the
 * stream came from start_server (options->server_side is not looked at,
 * as Python derives it).  Bytes the reader had already buffered stay
 * there, read as plaintext.  Suspends.  Returns 0, the errors of drain and
 * of asyncio_loop_start_tls (-EINVAL also for a NULL writer or ctx, a lost
 * connection, a pipe), ASYNCIO_EINVALIDSTATE while a task waits on the
 * reader (its read would mix the two layers).
 */
int asyncio_stream_start_tls(asyncio_stream_writer_t *writer, struct ssl_ctx_st *ctx,
                             const asyncio_start_tls_options_t *options);

/*
 * StreamWriter.transport: the transport, or NULL once the connection is lost
 * (and for NULL, and after loop close).  For get_extra_info:
 * asyncio_transport_get_peername/sockname/fd on it.
 */
asyncio_transport_t *asyncio_stream_transport(const asyncio_stream_writer_t *writer);

/*
 * The writer's peer and local addresses (get_extra_info('peername' /
 * 'sockname')), as the connection had them when it was made: copies at most
 * *len bytes to addr and sets *len to the address's full length, as
 * getpeername(2).  Returns 0, -EINVAL (a NULL argument), -ENOTCONN (there
 * is none: a pipe, as a subprocess's stdin; Python's None).
 */
int asyncio_stream_get_peername(const asyncio_stream_writer_t *writer, struct sockaddr *addr,
                                socklen_t *len);
int asyncio_stream_get_sockname(const asyncio_stream_writer_t *writer, struct sockaddr *addr,
                                socklen_t *len);

/*
 * Frees the writer handle, closing the transport as close() does.
 * Returns 0, -EINVAL, -EBUSY while a task waits in drain / wait_closed,
 * ASYNCIO_EWRONGTHREAD.  Works after the loop was closed.
 */
int asyncio_stream_writer_free(asyncio_stream_writer_t *writer);

#ifdef __cplusplus
}
#endif
#endif
