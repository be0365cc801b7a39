/*
 * connections.c - making client transports (Python: base_events
 * BaseEventLoop.create_connection with _connect_sock, staggered.py's
 * staggered_race for Happy Eyeballs, _interleave_addrinfos,
 * _ensure_resolved / _ipaddr_info; create_datagram_endpoint;
 * connect_accepted_socket; unix_events create_unix_connection).
 *
 * One connection engine serves every stream connect: a heap-allocated
 * "connector" holds the attempts (one non-blocking socket each), started in
 * address order.  Without Happy Eyeballs the next attempt starts when the
 * previous one failed; with it, also when happy_eyeballs_delay has passed
 * since the last start, so several race and the first to connect wins (the
 * others are closed).  Only the failure of the attempt started last starts
 * the next one early, as in staggered_race.  The calling task waits on one
 * future that any attempt's writability or the stagger timer completes.
 * The connector is a loop resource: if the loop is closed while the task
 * waits, its sockets are closed.  Cancelling the task closes every socket
 * it opened.
 */
#include <arpa/inet.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "selector_events.h"

/* ---- resolution ---------------------------------------------------------------- */

typedef asyncio__addr_t addr_t;
typedef asyncio__addrs_t addrs_t;

static void addrs_free(addrs_t *a) {
  if (a->v) asyncio__free(a->v, a->n * sizeof *a->v);
  a->v = NULL;
  a->n = 0;
}

/*
 * _ipaddr_info: a numeric host needs no resolver (and no thread); returns 1
 * with one address, 0 if host is not numeric.
 */
static int numeric_addr(const char *host, int port, int family, int socktype, int proto,
                        addrs_t *out) {
  addr_t a;
  memset(&a, 0, sizeof a);
  if (!host) return 0;
  /* As _ipaddr_info: only for TCP / UDP, whose protocol follows from the
   * socket type (a stream socket asked for with IPPROTO_UDP gets TCP, as in
   * Python); anything else goes to getaddrinfo. */
  if (proto != 0 && proto != IPPROTO_TCP && proto != IPPROTO_UDP) return 0;
  if (socktype == SOCK_STREAM)
    proto = IPPROTO_TCP;
  else if (socktype == SOCK_DGRAM)
    proto = IPPROTO_UDP;
  else
    return 0;
  struct sockaddr_in *in = (struct sockaddr_in *)&a.sa;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a.sa;
  if ((family == AF_UNSPEC || family == AF_INET) && inet_pton(AF_INET, host, &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    a.len = sizeof *in;
  } else if ((family == AF_UNSPEC || family == AF_INET6) && !strchr(host, '%') &&
             inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    a.len = sizeof *in6;
  } else {
    return 0;
  }
  a.family = a.sa.ss_family;
  a.socktype = socktype;
  a.protocol = proto;
  out->v = asyncio__alloc(sizeof a);
  if (!out->v) return -ENOMEM;
  out->v[0] = a;
  out->n = 1;
  return 1;
}

int (*asyncio__resolve_hook)(const char *host, int port, int family, int socktype,
                             asyncio__addrs_t *out);

/* _ensure_resolved: numeric fast path, else asyncio_getaddrinfo (suspends). */
static int resolve(const char *host, int port, int family, int socktype, int proto, int flags,
                   addrs_t *out) {
  out->v = NULL;
  out->n = 0;
  int rc = numeric_addr(host, port, family, socktype, proto, out);
  if (rc) return rc < 0 ? rc : 0;
  if (asyncio__resolve_hook) {
    rc = asyncio__resolve_hook(host, port, family, socktype, out);
    if (rc) return rc < 0 ? rc : 0;
  }
  char serv[16];
  snprintf(serv, sizeof serv, "%d", port);
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = family;
  hints.ai_socktype = socktype;
  hints.ai_protocol = proto;
  hints.ai_flags = flags | AI_NUMERICSERV;
  rc = asyncio_getaddrinfo(host, serv, &hints, &res);
  if (rc) return rc;
  size_t n = 0;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
    if (ai->ai_addrlen <= sizeof(struct sockaddr_storage)) n++;
  if (!n) {
    asyncio_freeaddrinfo(res);
    return ASYNCIO_EGAI_NONAME; /* "getaddrinfo() returned empty list" */
  }
  out->v = asyncio__alloc(n * sizeof *out->v);
  if (!out->v) {
    asyncio_freeaddrinfo(res);
    return -ENOMEM;
  }
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    if (ai->ai_addrlen > sizeof(struct sockaddr_storage)) continue;
    addr_t *a = &out->v[out->n++];
    memset(a, 0, sizeof *a);
    a->family = ai->ai_family;
    a->socktype = ai->ai_socktype ? ai->ai_socktype : socktype;
    a->protocol = ai->ai_protocol;
    a->len = ai->ai_addrlen;
    memcpy(&a->sa, ai->ai_addr, ai->ai_addrlen);
  }
  asyncio_freeaddrinfo(res);
  return 0;
}

int asyncio__resolve(const char *host, int port, int family, int socktype, int proto, int flags,
                     asyncio__addrs_t *out) {
  return resolve(host, port, family, socktype, proto, flags, out);
}

void asyncio__addrs_free(asyncio__addrs_t *a) { addrs_free(a); }

/*
 * _interleave_addrinfos: the first `first_count` addresses of the first
 * family, then one of each family in turn.  In place; returns 0 or -ENOMEM.
 */
static int interleave(addrs_t *a, int first_count) {
  if (a->n < 2) return 0;
  addr_t *out = asyncio__alloc(a->n * sizeof *out);
  uint8_t *used = asyncio__calloc(a->n);
  if (!out || !used) {
    if (out) asyncio__free(out, a->n * sizeof *out);
    if (used) asyncio__free(used, a->n);
    return -ENOMEM;
  }
  int fams[8];
  int nf = 0;
  for (size_t i = 0; i < a->n; i++) {
    int seen = 0;
    for (int j = 0; j < nf; j++) seen |= fams[j] == a->v[i].family;
    if (!seen && nf < 8) fams[nf++] = a->v[i].family;
  }
  size_t k = 0;
  for (size_t i = 0; i < a->n && (int)k < first_count - 1; i++)
    if (a->v[i].family == fams[0]) {
      out[k++] = a->v[i];
      used[i] = 1;
    }
  while (k < a->n) {
    size_t before = k;
    for (int j = 0; j < nf; j++)
      for (size_t i = 0; i < a->n; i++)
        if (!used[i] && a->v[i].family == fams[j]) {
          out[k++] = a->v[i];
          used[i] = 1;
          break;
        }
    if (k == before) { /* families beyond the 8 we track: keep their order */
      for (size_t i = 0; i < a->n; i++)
        if (!used[i]) {
          out[k++] = a->v[i];
          used[i] = 1;
        }
    }
  }
  memcpy(a->v, out, a->n * sizeof *out);
  asyncio__free(out, a->n * sizeof *out);
  asyncio__free(used, a->n);
  return 0;
}

/* ---- the connect engine ------------------------------------------------------------ */

typedef struct connector connector_t;

typedef struct attempt {
  connector_t *c;
  int fd;
  int err;
  uint8_t state; /* 0 idle, 1 connecting, 2 failed, 3 connected */
  uint8_t ready; /* writability seen */
} attempt_t;

struct connector {
  asyncio__res_t res;
  asyncio_loop_t *loop;
  asyncio_future_t *wake; /* what the task waits on, or NULL */
  asyncio_handle_t timer;
  uint8_t timer_fired;
  attempt_t *att;
  size_t n;
  addrs_t remote, local; /* resolved here, so a destroyed task leaks nothing */
  uint8_t borrowed;      /* remote.v is the caller's (not freed) */
};

static void wake_task(connector_t *c) {
  if (c->wake && !asyncio_future_done(c->wake)) asyncio_future_set_result(c->wake, 0, NULL);
}

static void connect_ready(int fd, void *arg) {
  attempt_t *a = arg;
  asyncio_loop_remove_writer(a->c->loop, fd);
  a->ready = 1;
  wake_task(a->c);
}

static void stagger_timer(void *arg) {
  connector_t *c = arg;
  c->timer = ASYNCIO_HANDLE_NONE;
  c->timer_fired = 1;
  wake_task(c);
}

static void attempt_close(connector_t *c, attempt_t *a) {
  if (a->fd < 0) return;
  if (a->state == 1) asyncio_loop_remove_writer(c->loop, a->fd);
  close(a->fd);
  a->fd = -1;
}

/* The loop closed while the task waited: the task is gone, so free it all here. */
static void connector_destroy(asyncio__res_t *r) {
  connector_t *c = (connector_t *)r;
  asyncio__res_unlink(c->loop, r);
  for (size_t i = 0; i < c->n; i++)
    if (c->att[i].fd >= 0) close(c->att[i].fd);
  if (c->wake) asyncio__future_unref(c->wake);
  if (c->att) asyncio__free(c->att, c->n * sizeof *c->att);
  if (!c->borrowed) addrs_free(&c->remote);
  addrs_free(&c->local);
  asyncio__free(c, sizeof *c);
}

static void connector_free(connector_t *c) {
  asyncio__res_unlink(c->loop, &c->res);
  for (size_t i = 0; i < c->n; i++) attempt_close(c, &c->att[i]);
  if (c->att) asyncio__free(c->att, c->n * sizeof *c->att);
  if (!c->borrowed) addrs_free(&c->remote);
  addrs_free(&c->local);
  asyncio__free(c, sizeof *c);
}

/* A connector registered with the loop, before resolution starts. */
static int connector_new(asyncio_loop_t *loop, connector_t **out) {
  asyncio__net_t *net;
  int rc = asyncio__net_get(loop, &net);
  if (rc) return rc;
  connector_t *c = asyncio__calloc(sizeof *c);
  if (!c) return -ENOMEM;
  c->loop = loop;
  c->res.destroy = connector_destroy;
  asyncio__res_link(loop, &c->res);
  *out = c;
  return 0;
}

/* _connect_sock up to the connect() call.  1 connected, 0 in progress, < 0 failed. */
static int attempt_start(connector_t *c, attempt_t *a, const addr_t *ra, const addrs_t *local) {
  int fd = socket(ra->family, ra->socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ra->protocol);
  if (fd < 0) return -errno;
  a->fd = fd;
  if (local && local->n) {
    int bound = 0, err = -EADDRNOTAVAIL; /* "no matching local address with family" */
    for (size_t i = 0; i < local->n && !bound; i++) {
      if (local->v[i].family != ra->family) continue;
      if (bind(fd, (const struct sockaddr *)&local->v[i].sa, local->v[i].len) == 0)
        bound = 1;
      else
        err = -errno;
    }
    if (!bound) return err;
  }
  for (;;) {
    if (connect(fd, (const struct sockaddr *)&ra->sa, ra->len) == 0) return 1;
    if (errno != EINTR) break;
  }
  int e = errno;
  if (e != EINPROGRESS && e != EAGAIN) return -e;
  int rc = asyncio_loop_add_writer(c->loop, fd, connect_ready, a);
  if (rc < 0) return rc;
  a->state = 1;
  return 0;
}

/*
 * Runs the attempts (staggered_race when delay > 0).  Returns the connected
 * socket (>= 0), or an error: -ECANCELED, or the attempts' combined error.
 * errs/nerr collect the failures in start order (errs may be NULL when
 * errs_cap is 0).
 */
static int connect_race(connector_t *c, double delay, int *errs, size_t errs_cap,
                        size_t *nerr_out) {
  asyncio_loop_t *loop = c->loop;
  const addrs_t *remote = &c->remote, *local = &c->local;
  int rc;
  c->att = asyncio__calloc(remote->n * sizeof *c->att);
  if (!c->att) return -ENOMEM;
  c->n = remote->n;
  for (size_t i = 0; i < c->n; i++) {
    c->att[i].c = c;
    c->att[i].fd = -1;
  }

  size_t next = 0, running = 0, nerr = 0;
  int winner = -1, first_err = 0, mixed = 0, start_now = 1;
  double deadline = 0;
  rc = 0;
  for (;;) {
    /* Start attempts: the first, then one per failure or per expired delay. */
    while (winner < 0 && next < c->n && (running == 0 || start_now)) {
      start_now = 0;
      attempt_t *a = &c->att[next];
      int r = attempt_start(c, a, &remote->v[next], local);
      next++;
      if (r == 1) {
        a->state = 3;
        winner = (int)(a - c->att);
      } else if (r == 0) {
        running++;
        deadline = asyncio_loop_time(loop) + delay;
      } else {
        a->state = 2;
        a->err = r;
        attempt_close(c, a);
        nerr++;
        if (!first_err) first_err = r;
        else if (r != first_err) mixed = 1;
        /*
         * It failed before it could run (bind, or a connect the kernel
         * refused at once): as staggered_race, the next one need not wait
         * out the delay.  Other attempts may still be running here, after a
         * failure started this one, so running == 0 alone would not do.
         */
        start_now = 1;
      }
    }
    if (winner >= 0 || running == 0) break;
    /* Wait for an attempt to finish, or for the stagger delay. */
    rc = asyncio_future_new(&c->wake, loop);
    if (rc) break;
    c->timer_fired = 0;
    if (delay > 0 && next < c->n) {
      rc = asyncio_loop_call_at(loop, deadline, stagger_timer, c, &c->timer);
      if (rc) {
        asyncio__future_unref(c->wake);
        c->wake = NULL;
        break;
      }
    }
    rc = asyncio_await(c->wake, NULL);
    asyncio_handle_cancel(c->timer);
    c->timer = ASYNCIO_HANDLE_NONE;
    asyncio__future_unref(c->wake);
    c->wake = NULL;
    if (rc < 0) break; /* -ECANCELED */
    for (size_t i = 0; i < next && winner < 0; i++) {
      attempt_t *a = &c->att[i];
      if (a->state != 1 || !a->ready) continue;
      a->ready = 0;
      int soerr = 0;
      socklen_t sl = sizeof soerr;
      if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) soerr = errno;
      running--;
      if (soerr == 0) {
        a->state = 3;
        winner = (int)i;
      } else {
        a->state = 2;
        a->err = -soerr;
        close(a->fd);
        a->fd = -1;
        nerr++;
        if (!first_err) first_err = -soerr;
        else if (-soerr != first_err) mixed = 1;
        /*
         * As staggered_race: only the failure of the attempt started last
         * starts the next one at once.  An older one failing changes
         * nothing; the next still waits for the last one or its delay.
         */
        if (i + 1 == next) start_now = 1;
      }
    }
    if (c->timer_fired) start_now = 1;
  }
  if (nerr_out) *nerr_out = nerr;
  /* By attempt, not by when each failed (a later one may fail first), as
   * Python's list of exceptions. */
  for (size_t i = 0, k = 0; i < c->n && k < errs_cap; i++)
    if (c->att[i].state == 2) errs[k++] = c->att[i].err;
  int fd = -1;
  if (winner >= 0) {
    attempt_t *a = &c->att[winner];
    fd = a->fd;
    if (a->state == 1) asyncio_loop_remove_writer(loop, fd);
    a->fd = -1; /* handed over */
  }
  for (size_t i = 0; i < c->n; i++) attempt_close(c, &c->att[i]); /* the losers */
  if (fd >= 0) return fd;
  if (rc < 0) return rc;
  if (!nerr) return ASYNCIO_EGAI_NONAME;
  return mixed ? ASYNCIO_EEXCEPTIONGROUP : first_err;
}

/* ---- create_connection ------------------------------------------------------------------ */

static int check_task_loop(asyncio_loop_t *loop) {
  int rc = asyncio__check_thread(loop);
  if (rc) return rc;
  if (asyncio__running_loop != loop || !loop->current) return ASYNCIO_ENOTASK;
  return 0;
}

/*
 * dest (nullable): a datagram socket's default destination, when it is left
 * unconnected.  tls (nullable): TLS over a stream socket.
 */
static int wrap_socket(asyncio_loop_t *loop, int fd, int kind, const addr_t *dest,
                       const asyncio__tls_params_t *tls, asyncio_protocol_factory_fn factory,
                       void *factory_arg, asyncio_transport_t **transport, void **instance) {
  int taken = 0;
  int rc = tls ? asyncio__tls_make_and_wait(loop, fd, tls, factory, factory_arg, transport,
                                            instance, &taken)
               : asyncio__transport_make_and_wait_to(
                     loop, fd, kind, factory, factory_arg,
                     dest ? (const struct sockaddr *)&dest->sa : NULL, dest ? dest->len : 0,
                     transport, instance, &taken);
  if (rc < 0 && !taken) close(fd);
  return rc;
}

static int check_sock_type(int fd, int type) {
  int t = 0;
  socklen_t sl = sizeof t;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &sl) < 0) return errno == EBADF ? -EBADF : -ENOTSOCK;
  return t == type ? 0 : -EINVAL;
}

/*
 * A connected stream socket the caller gives (sock=, connect_accepted_socket):
 * checked, made non-blocking and wrapped.  family is 0 (any) or the one the
 * socket must have: create_unix_connection(sock=) wants AF_UNIX (Python's
 * ValueError 'A UNIX Domain Stream Socket was expected').  The caller keeps
 * it on any error before the transport exists.
 */
static int wrap_given_sock(asyncio_loop_t *loop, int sock, int family,
                           const asyncio__tls_params_t *tls,
                           asyncio_protocol_factory_fn factory, void *factory_arg,
                           asyncio_transport_t **transport, void **instance) {
  int rc = check_sock_type(sock, SOCK_STREAM);
  if (rc) return rc;
  if (family) {
    /* getsockname, not SO_DOMAIN: emulators (qemu-user) may not know the latter. */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(sock, (struct sockaddr *)&ss, &sl) < 0) return -errno;
    if (ss.ss_family != family) return -EINVAL;
  }
  rc = asyncio__set_nonblock(sock);
  if (rc) return rc;
  int taken = 0;
  if (tls)
    return asyncio__tls_make_and_wait(loop, sock, tls, factory, factory_arg, transport, instance,
                                      &taken);
  return asyncio__transport_make_and_wait(loop, sock, ASYNCIO__TK_SOCKET, factory, factory_arg,
                                          transport, instance, &taken);
}

/* ssl_verify_code is cleared first, so that no failure, of any kind, leaves an old value. */
static void clear_verify_code(const asyncio_connection_options_t *o) {
  if (o && o->ssl_verify_code) *o->ssl_verify_code = 0; /* X509_V_OK */
}

/*
 * The ssl= arguments of create_connection / create_unix_connection
 * (base_events' checks): *p is filled when TLS is asked for, and *use set.
 * host is the name to check when server_hostname is not given.
 */
static int tls_params(const asyncio_connection_options_t *o, const char *host,
                      asyncio__tls_params_t *p, int *use) {
  *use = 0;
  if (!o) return 0;
  if (o->ssl && o->ssl_default) return -EINVAL; /* one context or the other */
  if (!o->ssl && !o->ssl_default) {
    /* 'server_hostname is only meaningful with ssl', and the timeouts alike. */
    if (o->server_hostname || o->ssl_handshake_timeout != 0 || o->ssl_shutdown_timeout != 0)
      return -EINVAL;
    return 0;
  }
  if (!(o->ssl_handshake_timeout >= 0) || !(o->ssl_shutdown_timeout >= 0)) return -EINVAL;
  const char *name = o->server_hostname ? o->server_hostname : host;
  /* 'You must set server_hostname when using ssl without a host' */
  if (!name) return -EINVAL;
  memset(p, 0, sizeof *p);
  p->ctx = o->ssl; /* NULL for ssl_default: the loop's, once the caller is known to be its task */
  p->server_hostname = name;
  p->handshake_timeout = o->ssl_handshake_timeout;
  p->shutdown_timeout = o->ssl_shutdown_timeout;
  p->verify_code = o->ssl_verify_code;
  *use = 1;
  return 0;
}

ASYNCIO_API int asyncio_loop_create_connection(asyncio_loop_t *loop,
                                               asyncio_protocol_factory_fn factory,
                                               void *factory_arg, const char *host, int port,
                                               const asyncio_connection_options_t *o,
                                               asyncio_transport_t **transport, void **instance) {
  if (transport) *transport = NULL;
  clear_verify_code(o);
  if (!loop || !factory || !transport) return -EINVAL;
  int use_sock = o && o->use_sock;
  /*
   * Python: 'host/port and sock can not be specified at the same time'.
   * Port 0 stands for port=None here, as create_server(sock=) has it.
   */
  if (use_sock ? (host != NULL || port != 0) : (port < 0 || port > 65535)) return -EINVAL;
  /*
   * The options that are used (sock= ignores them, as Python does): a
   * local port outside 0..65535 (the numeric fast path would bind it
   * truncated to 16 bits) or without local_host (it would silently mean
   * nothing; Python binds (None, port) to a loopback address), a NaN delay
   * (it would silently mean "off"), an interleave count below 0.
   */
  if (!use_sock && o &&
      ((o->local_host && (o->local_port < 0 || o->local_port > 65535)) ||
       (!o->local_host && o->local_port) || isnan(o->happy_eyeballs_delay) ||
       o->interleave < 0))
    return -EINVAL;
  asyncio__tls_params_t tp;
  int use_tls;
  int rc = tls_params(o, host, &tp, &use_tls);
  if (rc) return rc;
  if (use_sock && o->sock < 0) return -EBADF; /* as connect_accepted_socket */
  if (o && o->nerrors) *o->nerrors = 0;
  rc = check_task_loop(loop);
  if (rc) return rc;
  if (use_tls && !tp.ctx && (rc = asyncio__tls_default_ctx(loop, &tp.ctx)) < 0) return rc;
  if (use_sock)
    return wrap_given_sock(loop, o->sock, 0, use_tls ? &tp : NULL, factory, factory_arg,
                           transport, instance);
  int family = o ? o->family : 0, proto = o ? o->proto : 0, flags = o ? o->flags : 0;
  connector_t *c;
  rc = connector_new(loop, &c);
  if (rc) return rc;
  rc = resolve(host, port, family, SOCK_STREAM, proto, flags, &c->remote);
  if (rc == 0 && o && o->local_host)
    rc = resolve(o->local_host, o->local_port, family, SOCK_STREAM, proto, flags | AI_PASSIVE,
                 &c->local);
  double delay = o && o->happy_eyeballs_delay > 0 ? o->happy_eyeballs_delay : 0;
  int il = o ? o->interleave : 0;
  if (il <= 0 && delay > 0) il = 1;
  if (rc == 0 && il > 0) rc = interleave(&c->remote, il);
  int fd = rc ? rc
              : connect_race(c, delay, o ? o->errors : NULL, o && o->errors ? o->errors_cap : 0,
                             o ? o->nerrors : NULL);
  connector_free(c);
  if (fd < 0) return fd;
  return wrap_socket(loop, fd, ASYNCIO__TK_SOCKET, NULL, use_tls ? &tp : NULL, factory,
                     factory_arg, transport, instance);
}

ASYNCIO_API int asyncio_loop_connect_accepted_socket(asyncio_loop_t *loop,
                                                     asyncio_protocol_factory_fn factory,
                                                     void *factory_arg, int sock,
                                                     const asyncio_connection_options_t *o,
                                                     asyncio_transport_t **transport,
                                                     void **instance) {
  if (transport) *transport = NULL;
  clear_verify_code(o);
  if (!loop || !factory || !transport) return -EINVAL;
  /* The keywords are ssl= and its timeouts; this end is the TLS server, which
   * needs a context with its certificate: ssl=True is Python's ValueError. */
  if (o && (o->server_hostname || o->ssl_default)) return -EINVAL;
  asyncio__tls_params_t tp;
  int use_tls;
  int rc = tls_params(o, "", &tp, &use_tls);
  if (rc) return rc;
  tp.server_side = 1;
  tp.server_hostname = NULL;
  if (sock < 0) return -EBADF;
  rc = check_task_loop(loop);
  if (rc) return rc;
  return wrap_given_sock(loop, sock, 0, use_tls ? &tp : NULL, factory, factory_arg, transport,
                         instance);
}

ASYNCIO_API int asyncio_loop_create_unix_connection(asyncio_loop_t *loop,
                                                    asyncio_protocol_factory_fn factory,
                                                    void *factory_arg, const char *path,
                                                    const asyncio_connection_options_t *o,
                                                    asyncio_transport_t **transport,
                                                    void **instance) {
  if (transport) *transport = NULL;
  clear_verify_code(o);
  if (!loop || !factory || !transport) return -EINVAL;
  int use_sock = o && o->use_sock;
  if (use_sock ? path != NULL : !path) return -EINVAL;
  asyncio__tls_params_t tp;
  int use_tls;
  int rc = tls_params(o, NULL, &tp, &use_tls); /* no host: server_hostname it must be */
  if (rc) return rc;
  if (use_sock && o->sock < 0) return -EBADF;
  rc = check_task_loop(loop);
  if (rc) return rc;
  if (use_tls && !tp.ctx && (rc = asyncio__tls_default_ctx(loop, &tp.ctx)) < 0) return rc;
  if (use_sock)
    return wrap_given_sock(loop, o->sock, AF_UNIX, use_tls ? &tp : NULL, factory, factory_arg,
                           transport, instance);
  addr_t a;
  memset(&a, 0, sizeof a);
  rc = asyncio__unix_addr(path, &a.sa, &a.len);
  if (rc) return rc;
  a.family = AF_UNIX;
  a.socktype = SOCK_STREAM;
  connector_t *c;
  rc = connector_new(loop, &c);
  if (rc) return rc;
  c->remote.v = &a;
  c->remote.n = 1;
  c->borrowed = 1;
  int fd = connect_race(c, 0, NULL, 0, NULL);
  connector_free(c);
  if (fd < 0) return fd;
  return wrap_socket(loop, fd, ASYNCIO__TK_SOCKET, NULL, use_tls ? &tp : NULL, factory,
                     factory_arg, transport, instance);
}

/* ---- create_datagram_endpoint ---------------------------------------------------------------- */

static int dgram_socket(const addr_t *l, const addr_t *r, int family, int proto,
                        const asyncio_datagram_options_t *o) {
  int fam = l ? l->family : r ? r->family : family;
  int pr = l ? l->protocol : r ? r->protocol : proto;
  int fd = socket(fam, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, pr);
  if (fd < 0) return -errno;
  int one = 1;
  if (o->reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) goto fail;
  if (o->allow_broadcast && setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) < 0)
    goto fail;
  if (l && bind(fd, (const struct sockaddr *)&l->sa, l->len) < 0) goto fail;
  if (r && !o->allow_broadcast) {
    /*
     * UDP connect completes at once: no readiness wait needed.  With
     * allow_broadcast Python leaves the socket unconnected (a connected one
     * would drop replies from anyone but r); r is the default destination.
     */
    while (connect(fd, (const struct sockaddr *)&r->sa, r->len) < 0)
      if (errno != EINTR) goto fail;
  }
  return fd;
fail:;
  int e = -errno;
  close(fd);
  return e;
}

/*
 * create_datagram_endpoint(family=AF_UNIX, local_addr=path, remote_addr=path):
 * the "hosts" are socket paths ('@' = abstract namespace) and need no
 * resolution.  As Python, a stale socket file at the local path is removed
 * before binding, and the file is left behind on close.
 */
static int unix_datagram_endpoint(asyncio_loop_t *loop, asyncio_protocol_factory_fn factory,
                                  void *factory_arg, const asyncio_datagram_options_t *o,
                                  asyncio_transport_t **transport, void **instance) {
  if (o->local_port || o->remote_port || o->flags) return -EINVAL; /* paths have no ports */
  addr_t la, ra;
  memset(&la, 0, sizeof la);
  memset(&ra, 0, sizeof ra);
  int rc;
  if (o->local_host && (rc = asyncio__unix_addr(o->local_host, &la.sa, &la.len))) return rc;
  if (o->remote_host && (rc = asyncio__unix_addr(o->remote_host, &ra.sa, &ra.len))) return rc;
  rc = check_task_loop(loop);
  if (rc) return rc;
  la.family = ra.family = AF_UNIX;
  la.socktype = ra.socktype = SOCK_DGRAM;
  la.protocol = ra.protocol = o->proto;
  if (o->local_host && o->local_host[0] != '@') {
    /* Only a socket: a regular file at the path is never removed (bind fails). */
    struct stat st;
    if (stat(o->local_host, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(o->local_host);
  }
  int fd = dgram_socket(o->local_host ? &la : NULL, o->remote_host ? &ra : NULL, AF_UNIX,
                        o->proto, o);
  if (fd < 0) return fd;
  return wrap_socket(loop, fd, ASYNCIO__TK_DATAGRAM,
                     o->remote_host && o->allow_broadcast ? &ra : NULL, NULL, factory,
                     factory_arg, transport, instance);
}

ASYNCIO_API int asyncio_loop_create_datagram_endpoint(asyncio_loop_t *loop,
                                                      asyncio_protocol_factory_fn factory,
                                                      void *factory_arg,
                                                      const asyncio_datagram_options_t *o,
                                                      asyncio_transport_t **transport,
                                                      void **instance) {
  if (transport) *transport = NULL;
  if (!loop || !factory || !transport || !o) return -EINVAL;
  if (o->use_sock) {
    /* Python: "socket modifier keyword arguments can not be used" (flags
     * among them); a port is half of local_addr / remote_addr. */
    if (o->local_host || o->remote_host || o->local_port || o->remote_port || o->family ||
        o->proto || o->flags || o->reuse_port || o->allow_broadcast)
      return -EINVAL;
    if (o->sock < 0) return -EBADF;
  } else if (!o->local_host && !o->remote_host && !o->family) {
    return -EINVAL; /* "unexpected address family" */
  }
  if ((o->local_host && (o->local_port < 0 || o->local_port > 65535)) ||
      (o->remote_host && (o->remote_port < 0 || o->remote_port > 65535)))
    return -EINVAL;
  /* A port without its host would silently mean nothing (Python resolves
   * (None, port) to the loopback addresses): refused instead. */
  if ((!o->local_host && o->local_port) || (!o->remote_host && o->remote_port)) return -EINVAL;
  if (!o->use_sock && o->family == AF_UNIX)
    return unix_datagram_endpoint(loop, factory, factory_arg, o, transport, instance);
  int rc = check_task_loop(loop);
  if (rc) return rc;
  if (o->use_sock) {
    rc = check_sock_type(o->sock, SOCK_DGRAM);
    if (rc) return rc;
    rc = asyncio__set_nonblock(o->sock);
    if (rc) return rc;
    int taken = 0;
    return asyncio__transport_make_and_wait(loop, o->sock, ASYNCIO__TK_DATAGRAM, factory,
                                            factory_arg, transport, instance, &taken);
  }
  connector_t *c; /* holds the resolved addresses across the suspensions */
  rc = connector_new(loop, &c);
  if (rc) return rc;
  addrs_t *local = &c->local, *remote = &c->remote;
  if (o->local_host)
    rc = resolve(o->local_host, o->local_port, o->family, SOCK_DGRAM, o->proto,
                 o->flags | AI_PASSIVE, local);
  if (rc == 0 && o->remote_host)
    rc = resolve(o->remote_host, o->remote_port, o->family, SOCK_DGRAM, o->proto, o->flags,
                 remote);
  if (rc) {
    connector_free(c);
    return rc;
  }
  /* Pairs of (local, remote) of one family, in resolution order. */
  int fd = -1, err = 0;
  const addr_t *r_addr = NULL; /* the remote address of the pair that worked */
  if (!o->local_host && !o->remote_host) {
    fd = dgram_socket(NULL, NULL, o->family, o->proto, o);
    if (fd < 0) err = fd;
  } else if (!o->local_host || !o->remote_host) {
    addrs_t *one = o->local_host ? local : remote;
    for (size_t i = 0; i < one->n && fd < 0; i++) {
      fd = o->local_host ? dgram_socket(&one->v[i], NULL, 0, 0, o)
                         : dgram_socket(NULL, &one->v[i], 0, 0, o);
      if (fd < 0 && !err) err = fd;
      if (fd >= 0 && !o->local_host) r_addr = &one->v[i];
    }
  } else {
    for (size_t i = 0; i < local->n && fd < 0; i++)
      for (size_t j = 0; j < remote->n && fd < 0; j++) {
        if (local->v[i].family != remote->v[j].family) continue;
        fd = dgram_socket(&local->v[i], &remote->v[j], 0, 0, o);
        if (fd < 0 && !err) err = fd;
        if (fd >= 0) r_addr = &remote->v[j];
      }
    if (fd < 0 && !err) err = -EADDRNOTAVAIL; /* "can not get address information" */
  }
  addr_t dest; /* copied out: the connector's addresses go now */
  if (r_addr) dest = *r_addr;
  connector_free(c);
  if (fd < 0) return err ? err : -EADDRNOTAVAIL;
  return wrap_socket(loop, fd, ASYNCIO__TK_DATAGRAM,
                     r_addr && o->allow_broadcast ? &dest : NULL, NULL, factory, factory_arg,
                     transport, instance);
}
