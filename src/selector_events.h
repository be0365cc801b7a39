/*
 * selector_events.h - what selector_events.c (the transports) shares with
 * connections.c, servers.c and unix_events.c.  Internal.
 */
#ifndef ASYNCIO_SELECTOR_EVENTS_H
#define ASYNCIO_SELECTOR_EVENTS_H

#include <sys/socket.h>

#include <asyncio/protocols.h>
#include <asyncio/servers.h>
#include <asyncio/transports.h>

#include "internal.h"

/*
 * Something the loop must clean up if it is closed while the thing is
 * still open: transports, servers, connection attempts whose task was
 * destroyed.  destroy() closes descriptors and frees memory without calling
 * anyone back, and unlinks the resource.
 */
typedef struct asyncio__res {
  struct asyncio__res *prev, *next;
  void (*destroy)(struct asyncio__res *res);
} asyncio__res_t;

/* Per-loop networking state, made on first use; loop->net. */
typedef struct asyncio__net {
  asyncio__res_t *head;
  char *rbuf; /* the shared receive buffer (CPython's max_size recv) */
  struct tls_bufs *tls; /* sslproto.c's plaintext and ciphertext buffers, or NULL */
  struct ssl_ctx_st *default_ctx; /* ssl_default's context, made on first use, or NULL */
} asyncio__net_t;

#define ASYNCIO__RECV_SIZE ((size_t)256 * 1024)

int asyncio__net_get(asyncio_loop_t *loop, asyncio__net_t **out);
void asyncio__res_link(asyncio_loop_t *loop, asyncio__res_t *res);
void asyncio__res_unlink(asyncio_loop_t *loop, asyncio__res_t *res);

/*
 * servers.c: fn(arg) runs once, when the server stops for good (freed, or
 * its loop closed): what the factory argument needs freeing then (the
 * streams' start_server context).  NULL fn clears it.
 */
void asyncio__server_on_destroy(asyncio_server_t *server, void (*fn)(void *arg), void *arg);

enum {
  ASYNCIO__TK_SOCKET = 0, /* stream socket: _SelectorSocketTransport */
  ASYNCIO__TK_DATAGRAM,   /* _SelectorDatagramTransport */
  ASYNCIO__TK_READ_PIPE,  /* _UnixReadPipeTransport */
  ASYNCIO__TK_WRITE_PIPE, /* _UnixWritePipeTransport */
  ASYNCIO__TK_TLS,        /* sslproto._SSLProtocolTransport (sslproto.c) */
  ASYNCIO__TK_SUBPROCESS, /* base_subprocess.BaseSubprocessTransport (base_subprocess.c) */
};

/*
 * The transport object.  Shared with sslproto.c, whose app transports are
 * this struct too (kind ASYNCIO__TK_TLS, fd -1, no write buffer of their
 * own), and with base_subprocess.c, whose subprocess transports start with
 * it (kind ASYNCIO__TK_SUBPROCESS, fd -1): the public transport calls
 * dispatch on kind.
 */
typedef struct wchunk wchunk_t;
typedef struct dgram dgram_t;
struct asyncio_transport {
  /* A read, and a write that goes straight out, touch the first 64 bytes
   * only (the object starts on a line: asyncio__alloc_line). */
  asyncio_loop_t *loop;
  const asyncio_protocol_t *proto;
  void *inst;
  int fd;
  uint8_t kind;
  uint8_t is_socket;     /* send/recv with MSG_NOSIGNAL, else read/write */
  uint8_t closing;       /* close() called or closing for an error */
  uint8_t eof;           /* write_eof() called (stream sockets) */
  uint8_t paused;        /* pause_reading() */
  uint8_t proto_paused;  /* pause_writing() was called */
  uint8_t reader_on, writer_on;
  uint8_t started;       /* connection_made ran */
  uint8_t dead;          /* connection_lost ran; freed when unheld */
  uint8_t connected;     /* datagram: has a peer */
  uint8_t pipe_watch;    /* write pipe: watch for the reader going away (FIFO, socket) */
  uint32_t conn_lost;    /* connection_lost scheduled (+ ignored writes after) */
  int holds;
  struct asyncio__sf_ctl *sf; /* loop.sendfile in progress (on its task's stack), or NULL */
  /* stream write buffer */
  wchunk_t *whead, *wtail, *wspare;
  size_t wsize;          /* bytes buffered (datagrams: + DGRAM_HEADER each) */
  int lost_error;
  size_t high, low;
  /* datagram queue */
  dgram_t *dhead, *dtail;
  asyncio__res_t res;
  asyncio__handle_t *h_start, *h_lost; /* reserved; NULL once queued */
  asyncio_future_t *waiter;
  asyncio_server_t *server;
  asyncio_transport_t *snext, *sprev; /* the server's client list */
  struct sockaddr_storage sockname, peername;
  socklen_t socklen, peerlen;
  uint8_t peer_is_dest; /* datagram: peername is only the default destination, not connected */
  uint8_t read_eof;     /* stream socket: EOF was received; nothing more to read */
  struct asyncio__tls *tls; /* ASYNCIO__TK_TLS: the TLS state (sslproto.c) */
};


/*
 * Makes a transport on fd (already non-blocking): calls the factory, then
 * schedules connection_made, the start of reading, and waiter's result
 * (if non-NULL; the transport takes a reference).  On error nothing is
 * scheduled and the caller still owns fd.  peer (nullable) is the address
 * accept() returned.  If hold is set the caller gets a hold on the transport
 * (see asyncio__transport_unhold).
 */
int asyncio__transport_new(asyncio_loop_t *loop, int fd, int kind,
                           asyncio_protocol_factory_fn factory, void *factory_arg,
                           asyncio_server_t *server, asyncio_future_t *waiter,
                           const struct sockaddr *peer, socklen_t peerlen, int hold,
                           asyncio_transport_t **out);

/*
 * Drops a hold taken by asyncio__transport_new.  Returns 1 if the transport
 * was already lost (connection_lost ran): it is then freed here.
 */
int asyncio__transport_unhold(asyncio_transport_t *t);

/*
 * The common tail of the calls that make a transport from a task: makes
 * it with a waiter, awaits connection_made, and handles cancellation
 * (closes the transport) and a connection lost in between (-ENOTCONN).
 * On error the caller still owns fd only if *fd_taken is left 0.
 */
int asyncio__transport_make_and_wait(asyncio_loop_t *loop, int fd, int kind,
                                     asyncio_protocol_factory_fn factory, void *factory_arg,
                                     asyncio_transport_t **transport, void **instance,
                                     int *fd_taken);

/*
 * The same for a datagram socket left unconnected with a default
 * destination (create_datagram_endpoint with allow_broadcast and a remote
 * address: Python's _SelectorDatagramTransport(address=)).  sendto without
 * an address goes to dest, sendto to any other address is -EINVAL, and
 * get_peername stays -ENOTCONN; datagrams from anyone are received.  A NULL
 * dest, or a socket that is connected after all, is make_and_wait.
 */
int asyncio__transport_make_and_wait_to(asyncio_loop_t *loop, int fd, int kind,
                                        asyncio_protocol_factory_fn factory, void *factory_arg,
                                        const struct sockaddr *dest, socklen_t destlen,
                                        asyncio_transport_t **transport, void **instance,
                                        int *fd_taken);

/*
 * servers.c: makes a server over bound sockets (taken over only on
 * success), starts serving unless options say not to, and suspends one
 * iteration then (Python's sleep(0)).  unix_path (nullable, copied) is the
 * socket file to remove on close when options->cleanup_socket allows.
 */
int asyncio__server_new(asyncio_loop_t *loop, asyncio_protocol_factory_fn factory,
                        void *factory_arg, const int *fds, size_t nfds,
                        const asyncio_server_options_t *options, const char *unix_path,
                        asyncio_server_t **out);

/* servers.c: the ssl= options' checks (-EINVAL or 0). */
int asyncio__server_check_tls(const asyncio_server_options_t *o);

/* servers.c: a client transport is gone. */
void asyncio__server_detach(asyncio_server_t *server, asyncio_transport_t *t);

/* The server a transport belongs to (set by transport_new), and list links. */
asyncio_server_t **asyncio__transport_server_slot(asyncio_transport_t *t);
asyncio_transport_t **asyncio__transport_next_slot(asyncio_transport_t *t);
asyncio_transport_t **asyncio__transport_prev_slot(asyncio_transport_t *t);

/* connections.c: resolved addresses, copied out of getaddrinfo's list. */
typedef struct asyncio__addr {
  int family, socktype, protocol;
  socklen_t len;
  struct sockaddr_storage sa;
} asyncio__addr_t;

typedef struct asyncio__addrs {
  asyncio__addr_t *v;
  size_t n;
} asyncio__addrs_t;

/*
 * _ensure_resolved: a numeric host is converted directly (_ipaddr_info);
 * anything else goes through asyncio_getaddrinfo, which suspends.  A NULL
 * host with AI_PASSIVE means every interface.  Returns 0 (n >= 1) or an
 * error; free with asyncio__addrs_free.
 */
int asyncio__resolve(const char *host, int port, int family, int socktype, int proto, int flags,
                     asyncio__addrs_t *out);
void asyncio__addrs_free(asyncio__addrs_t *a);

/*
 * Tests only (a fake DNS, like the syscall hooks STYLE.md asks for): when
 * set, names that are not numeric go here first.  It returns 1 having
 * filled *out (allocated with asyncio__alloc), 0 to use the real resolver,
 * or an error.
 */
extern int (*asyncio__resolve_hook)(const char *host, int port, int family, int socktype,
                                    asyncio__addrs_t *out);

/*
 * The system calls the transports and the accept loop make, through a
 * table tests can patch to inject EINTR, EAGAIN, short writes or resets
 * (SQLite's overridable syscalls).  Loop thread only; restore what you
 * replace.
 */
typedef struct asyncio__sys {
  ssize_t (*recv)(int fd, void *buf, size_t n, int flags);
  ssize_t (*read)(int fd, void *buf, size_t n);
  ssize_t (*recvfrom)(int fd, void *buf, size_t n, int flags, struct sockaddr *addr,
                      socklen_t *addrlen);
  ssize_t (*send)(int fd, const void *buf, size_t n, int flags);
  ssize_t (*sendmsg)(int fd, const struct msghdr *msg, int flags);
  ssize_t (*sendto)(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr,
                    socklen_t addrlen);
  ssize_t (*write)(int fd, const void *buf, size_t n);
  ssize_t (*writev)(int fd, const struct iovec *iov, int iovcnt);
  int (*accept4)(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);
} asyncio__sys_t;

extern asyncio__sys_t asyncio__sys;

/*
 * sockets.c: the sendfile machinery loop.sendfile (selector_events.c)
 * shares with sock_sendfile.
 *
 * A control block lets a transport stop the task that sends on its behalf:
 * while the task waits, wait is the future it awaits (on its stack); the
 * transport sets stop (a negative error) and completes wait when the
 * connection goes, and the task returns stop when it wakes.  want_empty is
 * the transport's business (which condition wakes the task).
 */
typedef struct asyncio__sf_ctl {
  asyncio_future_t *wait;
  int stop;
  uint8_t want_empty;
} asyncio__sf_ctl_t;

/*
 * Suspends until fd is readable (or writable), or, with fd < 0, until
 * ctl->wait is completed.  The watch (if any) is removed before it returns.
 * Returns 0, ctl->stop if set when it wakes, -ECANCELED, -EBUSY (fd already
 * watched in that direction), add_reader's errors.
 */
int asyncio__sock_wait(asyncio_loop_t *loop, int fd, int write_side, asyncio__sf_ctl_t *ctl);

/*
 * sendfile(2) from a regular file to the stream socket sock, suspending
 * (asyncio__sock_wait with ctl, nullable) while the socket is full; *total
 * counts the bytes sent.  Returns 0, ASYNCIO_ESENDFILENOTAVAILABLE (not a
 * regular file, or sendfile(2) refused before anything was sent), errors.
 */
int asyncio__sock_sendfile_native(asyncio_loop_t *loop, int sock, int file_fd, off_t offset,
                                  size_t count, size_t *total, asyncio__sf_ctl_t *ctl);

/*
 * The fallback's reader: a block of ASYNCIO__SF_BLOCK bytes filled on the
 * default executor.  _new links it as a loop resource (freed at loop close
 * if its task is destroyed); _read suspends (a cancellation point) and
 * returns the bytes read, 0 at end of file, or an error; if the job still
 * has the block when the call returns (cancelled before the outcome came),
 * *b is set to NULL and the job frees it.  _free accepts NULL.
 */
#define ASYNCIO__SF_BLOCK ((size_t)256 * 1024) /* base_events: min(count, 256 KiB) */
typedef struct asyncio__sf_block asyncio__sf_block_t;
int asyncio__sf_block_new(asyncio_loop_t *loop, asyncio__sf_block_t **out);
ssize_t asyncio__sf_block_read(asyncio__sf_block_t **b, int fd, int seekable, off_t off,
                               size_t n);
const char *asyncio__sf_block_data(const asyncio__sf_block_t *b);
void asyncio__sf_block_free(asyncio__sf_block_t *b);

/* Sets O_NONBLOCK; returns 0 or -errno. */
int asyncio__set_nonblock(int fd);

/* unix_events.c: fills a sockaddr_un from a path ('@' = abstract). */
int asyncio__unix_addr(const char *path, struct sockaddr_storage *ss, socklen_t *len);

/* ---- TLS (sslproto.c) ---------------------------------------------------------------- */

struct ssl_ctx_st;
typedef struct asyncio__tls_params {
  struct ssl_ctx_st *ctx;
  int server_side;
  const char *server_hostname; /* client side; NULL or "" = no SNI, no name check */
  double handshake_timeout, shutdown_timeout; /* 0 = the defaults */
  long *verify_code; /* nullable: the creator's ssl_verify_code, written while it waits */
} asyncio__tls_params_t;

/*
 * As asyncio__transport_make_and_wait, with TLS: makes the socket transport
 * with the TLS layer as its protocol, waits for the handshake, and returns
 * the app transport.  The factory is the application's.
 */
int asyncio__tls_make_and_wait(asyncio_loop_t *loop, int fd, const asyncio__tls_params_t *p,
                               asyncio_protocol_factory_fn factory, void *factory_arg,
                               asyncio_transport_t **transport, void **instance, int *fd_taken);

/* servers.c: as asyncio__transport_new for an accepted socket; *under is the socket transport. */
int asyncio__tls_transport_new(asyncio_loop_t *loop, int fd, const asyncio__tls_params_t *p,
                               asyncio_protocol_factory_fn factory, void *factory_arg,
                               asyncio_server_t *server, const struct sockaddr *peer,
                               socklen_t peerlen, asyncio_transport_t **under);
/* servers.c, at asyncio_server_free: aborts `under` if its factory call is still to come. */
void asyncio__tls_server_gone(asyncio_transport_t *under);

/*
 * loop.start_tls, with a hook for StreamWriter.start_tls: swapped(arg, app)
 * runs once the app transport exists, before the handshake, so the stream
 * writes into it (and never to the socket underneath) from then on; app
 * stays valid until its protocol's connection_lost, which follows a failed
 * handshake too.
 */
int asyncio__tls_start(asyncio_loop_t *loop, asyncio_transport_t *t, struct ssl_ctx_st *ctx,
                       const asyncio_start_tls_options_t *o,
                       void (*swapped)(void *arg, asyncio_transport_t *app), void *swapped_arg,
                       asyncio_transport_t **out);

/* The app transport's side of the public calls (kind ASYNCIO__TK_TLS, checked by the caller). */
int asyncio__tls_close(asyncio_transport_t *app);
int asyncio__tls_abort(asyncio_transport_t *app);
int asyncio__tls_write(asyncio_transport_t *app, const struct iovec *iov, int iovcnt);
int asyncio__tls_pause_reading(asyncio_transport_t *app);
int asyncio__tls_resume_reading(asyncio_transport_t *app);
int asyncio__tls_get_fd(const asyncio_transport_t *app);
size_t asyncio__tls_get_write_buffer_size(const asyncio_transport_t *app);
void asyncio__tls_control_app_writing(asyncio_transport_t *app);
ssize_t asyncio__tls_get_read_buffer_size(const asyncio_transport_t *app);
int asyncio__tls_get_read_buffer_limits(const asyncio_transport_t *app, size_t *low,
                                        size_t *high);
int asyncio__tls_set_read_buffer_limits(asyncio_transport_t *app, size_t high, size_t low);
void asyncio__tls_force_close(asyncio_transport_t *app, int err);
void asyncio__tls_bufs_free(asyncio__net_t *net); /* loop close */
/* The loop's default client context (ssl_default), made on first use; borrowed. */
int asyncio__tls_default_ctx(asyncio_loop_t *loop, struct ssl_ctx_st **out);
#define ASYNCIO__TLS_WRITE_HIGH ((size_t)512 * 1024) /* FLOW_CONTROL_HIGH_WATER_SSL_WRITE */
#define ASYNCIO__TLS_READ_HIGH ((size_t)256 * 1024)  /* FLOW_CONTROL_HIGH_WATER_SSL_READ */

/* ---- subprocess transports (base_subprocess.c) ----------------------------------------- */

/* BaseSubprocessTransport.close() (kind ASYNCIO__TK_SUBPROCESS, checked by the caller). */
int asyncio__subprocess_close(asyncio_transport_t *t);

/* selector_events.c: _force_close(exc) for any transport. */
void asyncio__transport_force_close(asyncio_transport_t *t, int err);

/* selector_events.c: a sendfile waiting on t: stop it with err (< 0), or let it look again (0). */
void asyncio__transport_sf_notify(asyncio_transport_t *t, int err);

#endif
