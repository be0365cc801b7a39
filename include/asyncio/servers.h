/*
 * asyncio/servers.h - listening servers (Python: asyncio.Server and
 * loop.create_server in base_events, loop.create_unix_server in
 * unix_events).
 *
 * A server owns its listening sockets and knows the transports it accepted
 * (its clients).  The caller owns the server: asyncio_server_close() stops
 * listening, asyncio_server_free() closes and frees it.  Clients outlive
 * the server's close (as in Python); freeing the server detaches them.
 *
 * All calls are loop-thread only: made from a thread other than the one
 * running the loop, they return ASYNCIO_EWRONGTHREAD (the queries
 * is_serving, sockets and get_loop only read, and do not check).  -EINVAL
 * reports a NULL server.  When the loop is closed with the server still
 * open, the server is closed with it (listening sockets closed, clients
 * detached, nothing called back); the caller must still free it, close()
 * returns 0, the queries answer as for a closed server (get_loop() NULL),
 * and the other calls return ASYNCIO_ECLOSED.
 */
#ifndef ASYNCIO_SERVERS_H
#define ASYNCIO_SERVERS_H

#include <stdbool.h>
#include <stddef.h>

#include "events.h"
#include "protocols.h"
#include "transports.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct asyncio_server asyncio_server_t;

/* Options for create_server / create_unix_server; NULL = Python's defaults. */
typedef struct asyncio_server_options {
  /*
   * Several hosts (host=[...]): a NULL-terminated array used when the host
   * argument is NULL.  Both NULL means every interface (host=None).
   */
  const char *const *hosts;
  int family; /* 0 = AF_UNSPEC */
  int flags;  /* getaddrinfo flags; AI_PASSIVE is always added */
  int backlog; /* listen() backlog and accepts per readiness; 0 = 100 */
  /* SO_REUSEADDR (reuse_address=): 0 = default (on for TCP on Unix), > 0 on, < 0 off. */
  int reuse_address;
  bool reuse_port; /* SO_REUSEPORT; refused: setsockopt's error (Python: ValueError) */
  /* SO_KEEPALIVE on each accepted socket (3.13 sets it on the listening ones). */
  bool keep_alive;
  /* start_serving=: 0 = default (start at once), > 0 start, < 0 wait for start_serving(). */
  int start_serving;
  /*
   * An existing bound stream socket to listen on (sock=), with use_sock.
   * create_server then wants host and hosts NULL and port 0, and
   * create_unix_server a NULL path (else -EINVAL: Python's ValueError).
   * The server owns it from success on; on error the caller keeps it.
   */
  int sock;
  bool use_sock;
  /*
   * Seconds to stop accepting after accept() failed for lack of
   * descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM);
   * 0 = CPython's ACCEPT_RETRY_DELAY, 1 s.  Negative or NaN: -EINVAL.
   */
  double accept_retry_delay;
  /*
   * create_unix_server: remove the socket file on close if it is still the
   * one the server bound (cleanup_socket=, 3.13): 0 = default (on), < 0
   * off.  With sock= it is the file the given socket is bound to, as in
   * Python.  A stale socket file is removed before binding either way.
   */
  int cleanup_socket;
  /*
   * TLS (ssl=, asyncio/sslproto.h): an OpenSSL server context (SSL_CTX *,
   * with its certificate and key loaded); NULL = plain.  Each accepted
   * connection does the handshake before the factory is called (a failed
   * one never calls it).  The timeouts are seconds (with ssl only, else
   * -EINVAL); 0 = 60 s / 30 s; negative or NaN: -EINVAL.
   */
  struct ssl_ctx_st *ssl;
  double ssl_handshake_timeout;
  double ssl_shutdown_timeout;
} asyncio_server_options_t;

/*
 * Opens a TCP server (loop.create_server(protocol_factory, host, port, *,
 * family, flags, sock, backlog, reuse_address, reuse_port, keep_alive,
 * start_serving)).  host NULL: options->hosts, or every interface; each
 * resolved address gets its own socket (IPv6 ones with IPV6_V6ONLY); port 0
 * picks a free port per socket.  Each accepted connection calls the factory
 * and gets a transport with TCP_NODELAY.  Suspends the calling task
 * (resolution, then one loop iteration when start_serving, as Python's
 * sleep(0)).  Stores the server in *server (owned by the caller; NULL on
 * error).  Returns 0; -EINVAL (NULL loop, factory or server; port outside
 * 0..65535; a negative backlog; a negative or NaN accept_retry_delay; with
 * use_sock: a host, hosts, a port, or a socket that is not SOCK_STREAM);
 * -EBADF / -ENOTSOCK (use_sock with a negative descriptor or one that is not
 * open / not a socket, as create_connection); ASYNCIO_ENOTASK (not called from a task of loop);
 * ASYNCIO_ECLOSED (loop closed); ASYNCIO_EWRONGTHREAD; -ECANCELED;
 * ASYNCIO_EGAI_*; -EADDRINUSE and other socket/bind/listen errors (every
 * socket opened so far is closed; -EAFNOSUPPORT when the system supports
 * none of the resolved families); -ENOMEM.
 */
int asyncio_loop_create_server(asyncio_loop_t *loop, asyncio_protocol_factory_fn factory,
                               void *factory_arg, const char *host, int port,
                               const asyncio_server_options_t *options,
                               asyncio_server_t **server);

/*
 * Opens a Unix stream server on path (loop.create_unix_server(
 * protocol_factory, path, *, sock, backlog, start_serving, cleanup_socket)).
 * A path starting with '@' is in the abstract namespace (no file).  A
 * stale socket file at path is removed first (any other file there makes
 * bind fail with -EADDRINUSE); on close the file is removed if it is still
 * ours, unless cleanup_socket is off (Python 3.13; with sock=, the file the
 * socket is bound to, if any).  Suspends as
 * create_server.  Returns as create_server, and -ENAMETOOLONG; -EINVAL also
 * for an empty path, for both or neither of path and use_sock, and for a
 * sock that is not an AF_UNIX stream socket.
 */
int asyncio_loop_create_unix_server(asyncio_loop_t *loop, asyncio_protocol_factory_fn factory,
                                    void *factory_arg, const char *path,
                                    const asyncio_server_options_t *options,
                                    asyncio_server_t **server);

/*
 * Stops listening and closes the listening sockets (Server.close()).
 * Accepted connections stay open.  A serve_forever() in progress returns 0.
 * Idempotent.  Does not suspend.  Returns 0, -EINVAL, ASYNCIO_EWRONGTHREAD.
 */
int asyncio_server_close(asyncio_server_t *server);

/*
 * Closes every accepted transport (Server.close_clients(), 3.13).  Returns
 * 0, -EINVAL, ASYNCIO_ECLOSED, ASYNCIO_EWRONGTHREAD.
 */
int asyncio_server_close_clients(asyncio_server_t *server);

/* Aborts every accepted transport (Server.abort_clients(), 3.13).  Returns as close_clients. */
int asyncio_server_abort_clients(asyncio_server_t *server);

/* Server.is_serving(): accepting connections now.  false for NULL. */
bool asyncio_server_is_serving(const asyncio_server_t *server);

/*
 * Starts accepting (Server.start_serving()); idempotent.  Suspends for one
 * loop iteration, as Python's sleep(0).  Returns 0, -EINVAL (NULL, or
 * called from a task of another loop), ASYNCIO_EINVALIDSTATE (closed),
 * ASYNCIO_ENOTASK (not called from a task), ASYNCIO_ECLOSED, ASYNCIO_EWRONGTHREAD,
 * -ECANCELED, listen()'s error (e.g. -EINVAL for a connected socket given
 * with use_sock), -ENOMEM.
 */
int asyncio_server_start_serving(asyncio_server_t *server);

/*
 * Serves until the server is closed or the calling task is cancelled
 * (Server.serve_forever()).  Suspends.  On cancellation it closes the
 * server, waits for wait_closed() and returns -ECANCELED.  When
 * asyncio_server_close() ends it, it waits for wait_closed() too and returns
 * 0 (Python raises CancelledError there; C tells the two apart).
 * Returns ASYNCIO_EINVALIDSTATE if the server is closed or already served
 * forever by another task (Python's RuntimeError); else as start_serving,
 * and as wait_closed after the close.
 */
int asyncio_server_serve_forever(asyncio_server_t *server);

/*
 * Waits until the server is closed and every accepted connection has ended
 * (Server.wait_closed(), 3.12.1 semantics).  Returns at once if that is
 * already so.  Suspends; a cancelled wait keeps nothing behind (Python's
 * server keeps its future until close), so it may be polled under a
 * timeout.  Returns 0, -EINVAL (NULL, or called from a task of another
 * loop), ASYNCIO_ENOTASK (not called from a task), ASYNCIO_ECLOSED, ASYNCIO_EWRONGTHREAD,
 * -ECANCELED, -ENOMEM.
 */
int asyncio_server_wait_closed(asyncio_server_t *server);

/*
 * The listening sockets (Server.sockets): stores up to cap descriptors
 * (borrowed) in fds and returns how many there are (0 once closed); fds
 * may be NULL when cap is 0.  -EINVAL for a NULL server or NULL fds with
 * cap > 0.
 */
int asyncio_server_sockets(const asyncio_server_t *server, int *fds, size_t cap);

/* Server.get_loop(); NULL for NULL and after the loop was closed. */
asyncio_loop_t *asyncio_server_get_loop(const asyncio_server_t *server);

/*
 * Closes the server if needed and frees it; its clients live on, detached.
 * A connection still in its TLS handshake (ssl=) is aborted: it would call
 * the factory after the free, and never does.
 * Returns 0, -EINVAL, ASYNCIO_EWRONGTHREAD, or -EBUSY (nothing freed)
 * while a task waits in serve_forever or wait_closed.  Works after the loop
 * was closed.
 */
int asyncio_server_free(asyncio_server_t *server);

#ifdef __cplusplus
}
#endif
#endif
