/*
 * servers.c - listening servers (Python: base_events.Server,
 * BaseEventLoop.create_server; the accept loop of selector_events
 * _accept_connection / _start_serving / _stop_serving).
 *
 * A server holds its listening sockets ("listeners") and the transports it
 * accepted (its clients, an intrusive list through the transports).  The
 * accept loop takes up to `backlog` connections per readiness event.  When
 * accept() fails for lack of descriptors or memory the listener stops
 * reading and a timer re-adds it after accept_retry_delay, so a full
 * descriptor table costs one wakeup per delay, not a busy loop.
 * Invariants, as Python's: `closed` is Server._sockets is None; `woken` is
 * Server._waiters is None (closed and no clients left): from then on
 * wait_closed returns at once.  A connection counts in nclients from
 * before its factory runs (which may close the server) and leaves the list
 * in its connection_lost step (asyncio__server_detach).
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "selector_events.h"

typedef struct listener {
  asyncio_server_t *s;
  int fd;
  asyncio_handle_t retry;
  uint8_t reading;
} listener_t;

struct asyncio_server {
  asyncio__res_t res;
  asyncio_loop_t *loop;
  asyncio_protocol_factory_fn factory;
  void *factory_arg;
  listener_t *ls;
  size_t nls;
  int backlog;
  uint8_t serving, closed, woken, keep_alive, cleanup, orphan;
  /*
   * Not handed to the caller yet: create_server is suspended in its last
   * sleep(0).  If the loop closes then, the task is destroyed and nobody
   * would ever call asyncio_server_free, so server_destroy frees it all.
   */
  uint8_t unowned;
  double retry_delay;
  asyncio_transport_t *clients;
  size_t nclients;
  asyncio_future_t **waiters;
  size_t nwaiters, capwaiters;
  asyncio_future_t *forever;
  int busy; /* tasks in serve_forever / wait_closed, or the accept loop running */
  char *unix_path;
  dev_t dev;
  ino_t ino;
  void (*on_destroy)(void *arg); /* asyncio__server_on_destroy */
  void *on_destroy_arg;
  asyncio__tls_params_t tls; /* ssl=: tls.ctx is a reference of ours, or NULL */
};

#define ACCEPT_RETRY_DELAY 1.0

static void report(asyncio_loop_t *loop, const char *msg, int err) {
  asyncio_error_context_t c = {0};
  c.message = msg;
  c.error = err;
  asyncio_loop_call_exception_handler(loop, &c);
}

/* ---- clients ---------------------------------------------------------------------- */

static void wakeup(asyncio_server_t *s) {
  if (s->woken) return;
  s->woken = 1;
  for (size_t i = 0; i < s->nwaiters; i++) {
    asyncio_future_t *f = s->waiters[i];
    if (!asyncio_future_done(f)) asyncio_future_set_result(f, 0, NULL);
    asyncio__future_unref(f);
  }
  if (s->waiters) asyncio__free(s->waiters, s->capwaiters * sizeof *s->waiters);
  s->waiters = NULL;
  s->nwaiters = s->capwaiters = 0;
}

/* Links a client whose slot in nclients was taken before its factory ran (accept_ready). */
static void attach(asyncio_server_t *s, asyncio_transport_t *t) {
  *asyncio__transport_prev_slot(t) = NULL;
  *asyncio__transport_next_slot(t) = s->clients;
  if (s->clients) *asyncio__transport_prev_slot(s->clients) = t;
  s->clients = t;
}

void asyncio__server_detach(asyncio_server_t *s, asyncio_transport_t *t) {
  asyncio_transport_t *prev = *asyncio__transport_prev_slot(t);
  asyncio_transport_t *next = *asyncio__transport_next_slot(t);
  if (prev)
    *asyncio__transport_next_slot(prev) = next;
  else
    s->clients = next;
  if (next) *asyncio__transport_prev_slot(next) = prev;
  *asyncio__transport_server_slot(t) = NULL;
  s->nclients--;
  /* At loop close the server's own destroy releases the waiters. */
  if (s->nclients == 0 && s->closed && !s->loop->closed) wakeup(s);
}

static void detach_all(asyncio_server_t *s) {
  while (s->clients) {
    asyncio_transport_t *t = s->clients;
    s->clients = *asyncio__transport_next_slot(t);
    *asyncio__transport_server_slot(t) = NULL;
    *asyncio__transport_next_slot(t) = *asyncio__transport_prev_slot(t) = NULL;
  }
  s->nclients = 0;
}

/* ---- accepting ------------------------------------------------------------------- */

static void accept_ready(int fd, void *arg);

static int listener_on(listener_t *l) {
  if (l->reading) return 0;
  int rc = asyncio_loop_add_reader(l->s->loop, l->fd, accept_ready, l);
  if (rc == 0) l->reading = 1;
  return rc;
}

static void listener_off(listener_t *l) {
  if (!l->reading) return;
  l->reading = 0;
  asyncio_loop_remove_reader(l->s->loop, l->fd);
}

static void accept_retry(void *arg) {
  listener_t *l = arg;
  l->retry = ASYNCIO_HANDLE_NONE;
  if (l->s->serving && !l->s->closed) {
    int rc = listener_on(l);
    if (rc < 0) report(l->s->loop, "could not resume accepting connections", rc);
  }
}

static void accept_ready(int fd, void *arg) {
  listener_t *l = arg;
  asyncio_server_t *s = l->s;
  /* A factory may close the server (then stop) but not free it (-EBUSY meanwhile). */
  s->busy++;
  for (int i = 0; i < s->backlog && !s->closed; i++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int c = asyncio__sys.accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) {
      int e = errno;
      if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR || e == ECONNABORTED) break;
      if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
        /* Out of descriptors or memory: back off instead of spinning. */
        listener_off(l);
        if (asyncio_loop_call_later(s->loop, s->retry_delay, accept_retry, l, &l->retry) < 0) {
          /* No memory even for the timer: keep accepting rather than stop for good. */
          l->retry = ASYNCIO_HANDLE_NONE;
          (void)listener_on(l);
        }
        /* Last: a handler that closes the server then cancels the timer. */
        report(s->loop, "socket.accept() out of system resource", -e);
        break;
      }
      report(s->loop, "socket accept failed", -e);
      break;
    }
    if (s->keep_alive) {
      int one = 1;
      (void)setsockopt(c, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    }
    /*
     * The connection counts as active from here: the factory may close the
     * server, and wait_closed must still wait for the client it makes.
     */
    s->nclients++;
    asyncio_transport_t *t;
    int rc = s->tls.ctx ? asyncio__tls_transport_new(s->loop, c, &s->tls, s->factory,
                                                     s->factory_arg, s, (struct sockaddr *)&ss,
                                                     sl, &t)
                        : asyncio__transport_new(s->loop, c, ASYNCIO__TK_SOCKET, s->factory,
                                                 s->factory_arg, s, NULL, (struct sockaddr *)&ss,
                                                 sl, 0, &t);
    if (rc < 0) {
      close(c);
      if (--s->nclients == 0 && s->closed) wakeup(s);
      report(s->loop, "Error on transport creation for incoming connection", rc);
      continue;
    }
    attach(s, t);
  }
  s->busy--;
}

static int start_serving(asyncio_server_t *s) {
  if (s->serving) return 0;
  for (size_t i = 0; i < s->nls; i++) {
    if (listen(s->ls[i].fd, s->backlog) < 0) return -errno;
    int rc = listener_on(&s->ls[i]);
    if (rc < 0) return rc;
  }
  s->serving = 1;
  return 0;
}

/* ---- closing ------------------------------------------------------------------------- */

static void unlink_unix_path(asyncio_server_t *s) {
  if (!s->unix_path) return;
  struct stat st;
  /* Only if the file is still the socket we bound (Python 3.13 cleanup). */
  if (s->cleanup && stat(s->unix_path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == s->ino &&
      st.st_dev == s->dev)
    unlink(s->unix_path);
  asyncio__strfree(s->unix_path);
  s->unix_path = NULL;
}

ASYNCIO_API int asyncio_server_close(asyncio_server_t *s) {
  if (!s) return -EINVAL;
  if (s->closed) return 0;
  int rc = asyncio__check_thread(s->loop);
  if (rc) return rc;
  s->closed = 1;
  for (size_t i = 0; i < s->nls; i++) {
    listener_t *l = &s->ls[i];
    listener_off(l);
    asyncio_handle_cancel(l->retry);
    l->retry = ASYNCIO_HANDLE_NONE;
    close(l->fd);
    l->fd = -1;
  }
  unlink_unix_path(s);
  s->serving = 0;
  if (s->forever && !asyncio_future_done(s->forever))
    asyncio_future_set_result(s->forever, 0, NULL);
  if (s->nclients == 0) wakeup(s);
  return 0;
}

ASYNCIO_API int asyncio_server_close_clients(asyncio_server_t *s) {
  if (!s) return -EINVAL;
  if (s->orphan) return ASYNCIO_ECLOSED; /* the loop, and the clients with it, are gone */
  int rc = asyncio__check_thread(s->loop);
  if (rc) return rc;
  /* close() never unlinks synchronously (connection_lost comes later). */
  for (asyncio_transport_t *t = s->clients; t; t = *asyncio__transport_next_slot(t))
    asyncio_transport_close(t);
  return 0;
}

ASYNCIO_API int asyncio_server_abort_clients(asyncio_server_t *s) {
  if (!s) return -EINVAL;
  if (s->orphan) return ASYNCIO_ECLOSED;
  int rc = asyncio__check_thread(s->loop);
  if (rc) return rc;
  for (asyncio_transport_t *t = s->clients; t; t = *asyncio__transport_next_slot(t))
    asyncio_transport_abort(t);
  return 0;
}

static void tls_release(asyncio_server_t *s) {
  if (s->tls.ctx) SSL_CTX_free(s->tls.ctx);
  s->tls.ctx = NULL;
}

int asyncio__server_check_tls(const asyncio_server_options_t *o) {
  if (!o) return 0;
  if (!o->ssl) /* 'ssl_handshake_timeout is only meaningful with ssl' */
    return o->ssl_handshake_timeout != 0 || o->ssl_shutdown_timeout != 0 ? -EINVAL : 0;
  return o->ssl_handshake_timeout >= 0 && o->ssl_shutdown_timeout >= 0 ? 0 : -EINVAL;
}

/* The loop is closing under an open server: close silently, keep the struct for _free. */
static void server_destroy(asyncio__res_t *r) {
  asyncio_server_t *s = (asyncio_server_t *)r;
  asyncio__res_unlink(s->loop, r);
  tls_release(s);
  if (s->on_destroy) {
    void (*fn)(void *) = s->on_destroy;
    s->on_destroy = NULL;
    fn(s->on_destroy_arg);
  }
  for (size_t i = 0; i < s->nls; i++)
    if (s->ls[i].fd >= 0) {
      close(s->ls[i].fd);
      s->ls[i].fd = -1;
    }
  unlink_unix_path(s);
  detach_all(s);
  for (size_t i = 0; i < s->nwaiters; i++) asyncio__future_unref(s->waiters[i]);
  if (s->waiters) asyncio__free(s->waiters, s->capwaiters * sizeof *s->waiters);
  s->waiters = NULL;
  s->nwaiters = s->capwaiters = 0;
  s->closed = s->woken = s->orphan = 1;
  s->serving = 0;
  if (s->forever) asyncio__future_unref(s->forever);
  s->forever = NULL;
  s->busy = 0;
  if (s->unowned) {
    if (s->ls) asyncio__free(s->ls, s->nls * sizeof *s->ls);
    asyncio__free(s, sizeof *s);
  }
}

void asyncio__server_on_destroy(asyncio_server_t *s, void (*fn)(void *arg), void *arg) {
  s->on_destroy = fn;
  s->on_destroy_arg = arg;
}

ASYNCIO_API int asyncio_server_free(asyncio_server_t *s) {
  if (!s) return -EINVAL;
  if (!s->orphan) {
    int rc = asyncio__check_owner(s->loop);
    if (rc) return rc;
    if (s->busy) return -EBUSY;
    asyncio_server_close(s);
    /* abort() never unlinks synchronously (connection_lost comes later). */
    for (asyncio_transport_t *t = s->clients; t; t = *asyncio__transport_next_slot(t))
      asyncio__tls_server_gone(t);
    server_destroy(&s->res);
  }
  if (s->ls) asyncio__free(s->ls, s->nls * sizeof *s->ls);
  asyncio__free(s, sizeof *s);
  return 0;
}

/* ---- queries ------------------------------------------------------------------------ */

ASYNCIO_API bool asyncio_server_is_serving(const asyncio_server_t *s) { return s && s->serving; }

ASYNCIO_API int asyncio_server_sockets(const asyncio_server_t *s, int *fds, size_t cap) {
  if (!s || (cap && !fds)) return -EINVAL;
  if (s->closed) return 0;
  for (size_t i = 0; i < s->nls && i < cap; i++) fds[i] = s->ls[i].fd;
  return (int)s->nls;
}

ASYNCIO_API asyncio_loop_t *asyncio_server_get_loop(const asyncio_server_t *s) {
  return s && !s->orphan ? s->loop : NULL;
}

/* ---- suspending calls -------------------------------------------------------------------- */

static int check_task(asyncio_server_t *s) {
  if (!s) return -EINVAL;
  if (s->orphan) return ASYNCIO_ECLOSED; /* before s->loop: it may be freed */
  int rc = asyncio__check_thread(s->loop);
  if (rc) return rc;
  asyncio_loop_t *running = asyncio__running_loop;
  if (!running || !running->current) return ASYNCIO_ENOTASK;
  /* A task of another loop: the server is the wrong object here, as a
   * stream or a lock of another loop is (Python: RuntimeError). */
  if (running != s->loop) return -EINVAL;
  return 0;
}

ASYNCIO_API int asyncio_server_start_serving(asyncio_server_t *s) {
  int rc = check_task(s);
  if (rc) return rc;
  if (s->closed) return ASYNCIO_EINVALIDSTATE;
  rc = start_serving(s);
  if (rc) return rc;
  /* Python: skip one loop iteration so that all add_reader calls go through. */
  return asyncio_sleep(0);
}

ASYNCIO_API int asyncio_server_wait_closed(asyncio_server_t *s) {
  int rc = check_task(s);
  if (rc) return rc;
  if (s->woken) return 0;
  if (s->nwaiters == s->capwaiters) {
    size_t cap = s->capwaiters ? s->capwaiters * 2 : 4;
    void *p = asyncio__realloc(s->waiters, s->capwaiters * sizeof *s->waiters,
                               cap * sizeof *s->waiters);
    if (!p) return -ENOMEM;
    s->waiters = p;
    s->capwaiters = cap;
  }
  asyncio_future_t *f;
  rc = asyncio_future_new(&f, s->loop);
  if (rc) return rc;
  /*
   * Our reference goes to the list (wakeup or server_destroy drops it) and
   * asyncio_await holds its own while we wait, so a task destroyed by loop
   * close leaves no future behind.
   */
  s->waiters[s->nwaiters++] = f;
  s->busy++;
  rc = asyncio_await(f, NULL);
  if (!s->orphan) {
    s->busy--;
    /* Cancelled (a timeout, say): drop its entry, or a server polled with
     * timeouts would keep one future per poll until it closed (Python's
     * list does keep them).  Once woken the list is empty. */
    for (size_t i = 0; i < s->nwaiters; i++) {
      if (s->waiters[i] != f) continue;
      memmove(&s->waiters[i], &s->waiters[i + 1], (s->nwaiters - i - 1) * sizeof *s->waiters);
      s->nwaiters--;
      asyncio__future_unref(f);
      break;
    }
  }
  return rc;
}

ASYNCIO_API int asyncio_server_serve_forever(asyncio_server_t *s) {
  int rc = check_task(s);
  if (rc) return rc;
  if (s->forever || s->closed) return ASYNCIO_EINVALIDSTATE;
  rc = start_serving(s);
  if (rc) return rc;
  asyncio_future_t *f;
  rc = asyncio_future_new(&f, s->loop);
  if (rc) return rc;
  s->forever = f; /* our reference, which server_destroy drops if the loop closes meanwhile */
  s->busy++;
  rc = asyncio_await(f, NULL);
  if (s->orphan) return rc < 0 ? rc : -ECANCELED;
  s->busy--;
  s->forever = NULL;
  asyncio__future_unref(f);
  asyncio_server_close(s);
  int wrc = asyncio_server_wait_closed(s);
  if (rc < 0) return rc; /* cancelled: Python closes, waits, re-raises */
  return wrc;
}

/* ---- creation --------------------------------------------------------------------------- */

int asyncio__server_new(asyncio_loop_t *loop, asyncio_protocol_factory_fn factory,
                        void *factory_arg, const int *fds, size_t nfds,
                        const asyncio_server_options_t *o, const char *unix_path,
                        asyncio_server_t **out) {
  asyncio__net_t *net;
  int rc = asyncio__net_get(loop, &net);
  if (rc) return rc;
  asyncio_server_t *s = asyncio__calloc(sizeof *s);
  if (!s) return -ENOMEM;
  s->ls = asyncio__calloc(nfds * sizeof *s->ls);
  if (!s->ls || (unix_path && !(s->unix_path = asyncio__strdup(unix_path)))) {
    if (s->ls) asyncio__free(s->ls, nfds * sizeof *s->ls);
    asyncio__free(s, sizeof *s);
    return -ENOMEM;
  }
  s->loop = loop;
  s->factory = factory;
  s->factory_arg = factory_arg;
  s->nls = nfds;
  for (size_t i = 0; i < nfds; i++) {
    s->ls[i].s = s;
    s->ls[i].fd = fds[i];
  }
  s->backlog = o && o->backlog > 0 ? o->backlog : 100;
  s->keep_alive = o && o->keep_alive;
  s->retry_delay = o && o->accept_retry_delay > 0 ? o->accept_retry_delay : ACCEPT_RETRY_DELAY;
  s->cleanup = !(o && o->cleanup_socket < 0);
  if (o && o->ssl) {
    SSL_CTX_up_ref(o->ssl);
    s->tls.ctx = o->ssl;
    s->tls.server_side = 1;
    s->tls.handshake_timeout = o->ssl_handshake_timeout;
    s->tls.shutdown_timeout = o->ssl_shutdown_timeout;
  }
  if (s->unix_path) {
    struct stat st;
    if (stat(s->unix_path, &st) == 0) {
      s->dev = st.st_dev;
      s->ino = st.st_ino;
    }
  }
  s->res.destroy = server_destroy;
  s->unowned = 1;
  asyncio__res_link(loop, &s->res);
  if (!(o && o->start_serving < 0)) {
    rc = start_serving(s);
    if (rc == 0) rc = asyncio_sleep(0);
    if (rc < 0) {
      /* Hand the sockets back: the caller closes them. */
      for (size_t i = 0; i < s->nls; i++) {
        listener_off(&s->ls[i]);
        s->ls[i].fd = -1;
      }
      asyncio__strfree(s->unix_path);
      s->unix_path = NULL;
      s->nls = 0;
      tls_release(s);
      asyncio__res_unlink(loop, &s->res);
      asyncio__free(s->ls, nfds * sizeof *s->ls);
      asyncio__free(s, sizeof *s);
      return rc;
    }
  }
  s->unowned = 0;
  *out = s;
  return 0;
}

static int same_sockaddr(const asyncio__addr_t *a, const asyncio__addr_t *b) {
  return a->family == b->family && a->len == b->len && memcmp(&a->sa, &b->sa, a->len) == 0;
}

/* create_server's temporaries (see below). */
typedef struct creating {
  asyncio__res_t res;
  asyncio_loop_t *loop;
  asyncio__addrs_t all; /* distinct addresses of every host; allcap entries allocated */
  size_t allcap;
  asyncio__addrs_t one; /* the host being resolved */
  int *fds;             /* the listening sockets made so far; cap entries allocated */
  size_t nfds, cap;
  uint8_t handed;       /* fds belong to the server being made */
} creating_t;

static void creating_destroy(asyncio__res_t *r) {
  creating_t *cr = (creating_t *)r;
  asyncio__res_unlink(cr->loop, r);
  if (!cr->handed)
    for (size_t i = 0; i < cr->nfds; i++) close(cr->fds[i]);
  if (cr->fds) asyncio__free(cr->fds, cr->cap * sizeof *cr->fds);
  if (cr->all.v) asyncio__free(cr->all.v, cr->allcap * sizeof *cr->all.v);
  asyncio__addrs_free(&cr->one);
  asyncio__free(cr, sizeof *cr);
}

ASYNCIO_API int asyncio_loop_create_server(asyncio_loop_t *loop,
                                           asyncio_protocol_factory_fn factory,
                                           void *factory_arg, const char *host, int port,
                                           const asyncio_server_options_t *o,
                                           asyncio_server_t **server) {
  if (server) *server = NULL;
  if (!loop || !factory || !server) return -EINVAL;
  int use_sock = o && o->use_sock;
  /* With sock=, any host or port is Python's "host/port and sock" ValueError
   * (port 0 stands for port=None here). */
  if (use_sock ? (host || (o->hosts && o->hosts[0]) || port != 0) : (port < 0 || port > 65535))
    return -EINVAL;
  if (use_sock && o->sock < 0) return -EBADF; /* as create_connection(sock=) */
  /* A NaN delay is refused as call_later refuses it (it would silently mean the default). */
  if (o && (o->backlog < 0 || !(o->accept_retry_delay >= 0))) return -EINVAL;
  if (asyncio__server_check_tls(o)) return -EINVAL;
  int rc = asyncio__check_thread(loop);
  if (rc) return rc;
  if (asyncio__running_loop != loop || !loop->current) return ASYNCIO_ENOTASK;
  if (use_sock) {
    int type = 0;
    socklen_t sl = sizeof type;
    if (getsockopt(o->sock, SOL_SOCKET, SO_TYPE, &type, &sl) < 0)
      return errno == EBADF ? -EBADF : -ENOTSOCK; /* as create_connection(sock=) */
    if (type != SOCK_STREAM) return -EINVAL;
    rc = asyncio__set_nonblock(o->sock);
    if (rc) return rc;
    return asyncio__server_new(loop, factory, factory_arg, &o->sock, 1, o, NULL, server);
  }
  if (host && !*host) host = NULL; /* Python: '' means every interface, like None */
  const char *one[2] = {host, NULL};
  const char *const *hosts = host ? one : (o && o->hosts && o->hosts[0]) ? o->hosts : one;
  size_t nh = 0;
  while (hosts == one ? nh < 1 : hosts[nh] != NULL) nh++;
  int family = o ? o->family : 0;
  int flags = (o ? o->flags : 0) | AI_PASSIVE;
  /*
   * What create_server holds across its suspensions (the resolutions and the
   * final sleep(0)) is a loop resource, so a task destroyed by loop close
   * while it waits leaks nothing.
   */
  asyncio__net_t *net;
  rc = asyncio__net_get(loop, &net);
  if (rc) return rc;
  creating_t *cr = asyncio__calloc(sizeof *cr);
  if (!cr) return -ENOMEM;
  cr->loop = loop;
  cr->res.destroy = creating_destroy;
  asyncio__res_link(loop, &cr->res);
  /* Resolve every host; one socket per distinct address. */
  asyncio__addrs_t *all = &cr->all;
  for (size_t i = 0; i < nh && rc == 0; i++) {
    rc = asyncio__resolve(hosts[i], port, family, SOCK_STREAM, 0, flags, &cr->one);
    if (rc) break;
    asyncio__addrs_t *a = &cr->one;
    void *p = asyncio__realloc(all->v, cr->allcap * sizeof *all->v,
                               (cr->allcap + a->n) * sizeof *all->v);
    if (!p) {
      rc = -ENOMEM;
      break;
    }
    all->v = p;
    cr->allcap += a->n;
    for (size_t j = 0; j < a->n; j++) {
      int dup = 0;
      for (size_t k = 0; k < all->n && !dup; k++) dup = same_sockaddr(&all->v[k], &a->v[j]);
      if (!dup) all->v[all->n++] = a->v[j];
    }
    asyncio__addrs_free(a);
  }
  if (rc == 0) {
    cr->cap = all->n ? all->n : 1;
    cr->fds = asyncio__alloc(cr->cap * sizeof *cr->fds);
    if (!cr->fds) rc = -ENOMEM;
  }
  int reuse_addr = !(o && o->reuse_address < 0);
  for (size_t i = 0; rc == 0 && i < all->n; i++) {
    asyncio__addr_t *a = &all->v[i];
    int fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, a->protocol);
    if (fd < 0) {
      /* Python skips families the system does not support (EAFNOSUPPORT). */
      if (errno == EAFNOSUPPORT) continue;
      rc = -errno;
      break;
    }
    cr->fds[cr->nfds++] = fd;
    int on = 1;
    if (reuse_addr && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0) {
      rc = -errno;
      break;
    }
    if (o && o->reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) < 0) {
      rc = -errno;
      break;
    }
    /* Disable IPv4/IPv6 dual stack: the IPv4 address gets its own socket. */
    if (a->family == AF_INET6) (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    if (bind(fd, (const struct sockaddr *)&a->sa, a->len) < 0) {
      rc = -errno;
      break;
    }
  }
  if (rc == 0 && cr->nfds == 0) rc = -EAFNOSUPPORT;
  if (rc == 0) {
    /* The server owns the sockets while server_new waits, and again on success. */
    cr->handed = 1;
    rc = asyncio__server_new(loop, factory, factory_arg, cr->fds, cr->nfds, o, NULL, server);
    if (rc < 0) cr->handed = 0; /* handed back */
  }
  creating_destroy(&cr->res); /* closes the sockets unless handed over */
  return rc;
}
