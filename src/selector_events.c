/*
 * selector_events.c - readiness-based transports (Python:
 * asyncio.selector_events _SelectorTransport, _SelectorSocketTransport,
 * _SelectorDatagramTransport; the pipe transports of unix_events
 * _UnixReadPipeTransport / _UnixWritePipeTransport share this code; flow
 * control is transports._FlowControlMixin).
 *
 * One struct serves the four kinds: stream socket, datagram socket, read
 * pipe, write pipe.  The I/O discipline:
 *   - write() tries the system call first when nothing is buffered; only
 *     the rest is copied into the write buffer, and only then is the
 *     descriptor registered for writability (removed again once drained);
 *   - the write buffer is a list of chunks (64 KiB, or one chunk the size of
 *     a larger remainder), sent with one writev/sendmsg of up to 64 chunks;
 *     one drained chunk is kept as a spare, so a steady stream of writes
 *     allocates nothing;
 *   - reading interest stays registered while reading (no epoll_ctl per
 *     read); one recv per readiness event, into the loop's shared 256 KiB
 *     buffer (data_received borrows it) or into the BufferedProtocol's
 *     buffer.
 * Invariants: connection_lost runs exactly once, from the ready queue, via
 * a handle reserved when the transport was made (so it cannot fail for lack
 * of memory); conn_lost != 0 from the moment it is scheduled; the
 * descriptor is closed right after connection_lost returns, and the struct
 * is freed then (or when the last hold goes).  close() flushes the buffer
 * first; abort() and fatal errors drop it.
 *
 * loop.sendfile (base_events.sendfile, selector_events._sendfile_native)
 * holds the transport and publishes a control block in t->sf for its
 * duration: write() refuses data then; the connection going (any path
 * reaches schedule_connection_lost) stops the sendfile task; a drained
 * buffer wakes it; and the descriptor's close is left to the sendfile task
 * when connection_lost runs first, because that task may still have the
 * descriptor registered for writability.
 */
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "selector_events.h"

#define CHUNK_SIZE ((size_t)64 * 1024)
#define MAX_IOV 64
#define DGRAM_HEADER 8 /* CPython's _HEADER_SIZE: per-datagram buffer accounting */

struct wchunk {
  struct wchunk *next;
  size_t start, end, cap;
  char data[];
};

struct dgram {
  struct dgram *next;
  size_t len;
  socklen_t addrlen;
  struct sockaddr_storage addr;
  char data[];
};

#if UINTPTR_MAX == 0xffffffffffffffffu
_Static_assert(offsetof(asyncio_transport_t, whead) + sizeof(void *) <= 64,
               "asyncio_transport_t: a read and a direct write take one cache line");
#endif

/* Every mutating call: a live transport, from the loop's thread. */
static inline int check_t(const asyncio_transport_t *t) {
  if (UNLIKELY(!t || t->dead)) return -EINVAL;
  return asyncio__check_owner(t->loop);
}

asyncio__sys_t asyncio__sys = {recv, read, recvfrom, send, sendmsg, sendto, write, writev, accept4};
#define SYS asyncio__sys

/* ---- per-loop state and resources ------------------------------------------- */

int asyncio__net_get(asyncio_loop_t *loop, asyncio__net_t **out) {
  if (!loop->net) {
    asyncio__net_t *n = asyncio__calloc(sizeof *n);
    if (!n) return -ENOMEM;
    loop->net = n;
  }
  *out = loop->net;
  return 0;
}

void asyncio__res_link(asyncio_loop_t *loop, asyncio__res_t *r) {
  asyncio__net_t *n = loop->net; /* asyncio__net_get succeeded before */
  r->prev = NULL;
  r->next = n->head;
  if (n->head) n->head->prev = r;
  n->head = r;
}

void asyncio__res_unlink(asyncio_loop_t *loop, asyncio__res_t *r) {
  asyncio__net_t *n = loop->net;
  if (!n) return;
  if (r->prev)
    r->prev->next = r->next;
  else if (n->head == r)
    n->head = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
}

void asyncio__selector_events_close(asyncio_loop_t *loop) {
  asyncio__net_t *n = loop->net;
  while (n->head) n->head->destroy(n->head); /* each unlinks itself */
  if (n->rbuf) asyncio__free(n->rbuf, ASYNCIO__RECV_SIZE);
  asyncio__tls_bufs_free(n);
  asyncio__free(n, sizeof *n);
  loop->net = NULL;
}

int asyncio__set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return -errno;
  if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -errno;
  return 0;
}

/* ---- buffers ------------------------------------------------------------------ */

static void chunk_free(wchunk_t *c) { asyncio__free(c, sizeof *c + c->cap); }

static void wbuf_clear(asyncio_transport_t *t) {
  while (t->whead) {
    wchunk_t *c = t->whead;
    t->whead = c->next;
    chunk_free(c);
  }
  t->wtail = NULL;
  while (t->dhead) {
    dgram_t *d = t->dhead;
    t->dhead = d->next;
    asyncio__free(d, sizeof *d + d->len);
  }
  t->dtail = NULL;
  t->wsize = 0;
}

/* Appends bytes to the write buffer; all or nothing. */
static int wbuf_append(asyncio_transport_t *t, const struct iovec *iov, int iovcnt, size_t skip) {
  size_t total = 0;
  for (int i = 0; i < iovcnt; i++) total += iov[i].iov_len;
  total -= skip;
  if (!total) return 0;
  size_t room = t->wtail ? t->wtail->cap - t->wtail->end : 0;
  wchunk_t *extra = NULL;
  if (total > room) {
    size_t need = total - room;
    size_t cap = need > CHUNK_SIZE ? need : CHUNK_SIZE;
    if (t->wspare && t->wspare->cap >= need) {
      extra = t->wspare;
      t->wspare = NULL;
    } else {
      extra = asyncio__alloc(sizeof *extra + cap);
      if (!extra) return -ENOMEM;
      extra->cap = cap;
    }
    extra->next = NULL;
    extra->start = extra->end = 0;
  }
  for (int i = 0; i < iovcnt; i++) {
    const char *p = iov[i].iov_base;
    size_t len = iov[i].iov_len;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    p += skip;
    len -= skip;
    skip = 0;
    while (len) {
      wchunk_t *c = t->wtail;
      if (!c || c->end == c->cap) {
        if (t->wtail)
          t->wtail->next = extra;
        else
          t->whead = extra;
        t->wtail = c = extra;
        extra = NULL;
      }
      size_t k = c->cap - c->end < len ? c->cap - c->end : len;
      memcpy(c->data + c->end, p, k);
      c->end += k;
      p += k;
      len -= k;
    }
  }
  if (extra) { /* not needed after all (cannot happen, but stay exact) */
    if (!t->wspare)
      t->wspare = extra;
    else
      chunk_free(extra);
  }
  t->wsize += total;
  return 0;
}

/* Drops n sent bytes from the front; keeps one drained chunk as the spare. */
static void wbuf_consume(asyncio_transport_t *t, size_t n) {
  t->wsize -= n;
  while (n) {
    wchunk_t *c = t->whead;
    size_t avail = c->end - c->start;
    if (n < avail) {
      c->start += n;
      return;
    }
    n -= avail;
    t->whead = c->next;
    if (!t->whead) t->wtail = NULL;
    if (!t->wspare && c->cap == CHUNK_SIZE)
      t->wspare = c;
    else
      chunk_free(c);
  }
}

/* ---- flow control (transports._FlowControlMixin) ------------------------------ */

static void maybe_pause_protocol(asyncio_transport_t *t) {
  if (t->wsize <= t->high || t->proto_paused) return;
  t->proto_paused = 1;
  if (t->proto && t->proto->pause_writing) t->proto->pause_writing(t, t->inst);
}

static void maybe_resume_protocol(asyncio_transport_t *t) {
  if (!t->proto_paused || t->wsize > t->low) return;
  t->proto_paused = 0;
  if (t->proto && t->proto->resume_writing) t->proto->resume_writing(t, t->inst);
}

/* ---- registration -------------------------------------------------------------- */

static void read_ready(int fd, void *arg);
static void write_ready(int fd, void *arg);

static void reader_off(asyncio_transport_t *t) {
  if (!t->reader_on) return;
  t->reader_on = 0;
  asyncio_loop_remove_reader(t->loop, t->fd);
}

/* After EOF the reader stays off for good: watching again would only report
 * EOF a second time (CPython does; the protocol contract says at most once). */
static int reader_on(asyncio_transport_t *t) {
  if (t->reader_on || t->read_eof) return 0;
  int rc = asyncio_loop_add_reader(t->loop, t->fd, read_ready, t);
  if (rc == 0) t->reader_on = 1;
  return rc;
}

static void writer_off(asyncio_transport_t *t) {
  if (!t->writer_on) return;
  t->writer_on = 0;
  asyncio_loop_remove_writer(t->loop, t->fd);
}

static int writer_on(asyncio_transport_t *t) {
  if (t->writer_on) return 0;
  int rc = asyncio_loop_add_writer(t->loop, t->fd, write_ready, t);
  if (rc == 0) t->writer_on = 1;
  return rc;
}

/* ---- closing ----------------------------------------------------------------------- */

static void transport_free(asyncio_transport_t *t) {
  wbuf_clear(t);
  if (t->wspare) chunk_free(t->wspare);
  t->wspare = NULL;
  asyncio__free_line(t, sizeof *t);
}

/* The last step of every transport: runs from the ready queue. */
static void call_connection_lost(void *arg) {
  asyncio_transport_t *t = arg;
  if (t->proto && t->proto->connection_lost) t->proto->connection_lost(t, t->lost_error, t->inst);
  reader_off(t);
  writer_off(t);
  if (t->fd >= 0 && !t->sf) { /* else the sendfile task closes it (it may watch it) */
    close(t->fd);
    t->fd = -1;
  }
  wbuf_clear(t);
  if (t->waiter) {
    /* connection_made never ran (closed before it): wake the creator. */
    asyncio_future_t *w = t->waiter;
    t->waiter = NULL;
    if (!asyncio_future_done(w)) asyncio_future_set_result(w, 0, NULL);
    asyncio__future_unref(w);
  }
  if (t->server) asyncio__server_detach(t->server, t);
  t->server = NULL;
  asyncio__res_unlink(t->loop, &t->res);
  t->dead = 1;
  t->proto = NULL;
  if (!t->holds) transport_free(t);
}

/* Wakes the sendfile task if it waits. */
static void sf_wake(asyncio__sf_ctl_t *c) {
  asyncio_future_t *f = c->wait;
  if (f && f->state == FUT_PENDING) asyncio__future_complete(f, FUT_FINISHED, 0, NULL, NULL);
}

/* The transport is closing: the sendfile task returns err (unless it has one). */
static void sf_stop(asyncio_transport_t *t, int err) {
  if (!t->sf->stop) t->sf->stop = err;
  sf_wake(t->sf);
}

/* After a write: wakes the sendfile task if what it waits for happened. */
static void sf_poke(asyncio_transport_t *t) {
  if (t->sf->want_empty ? !t->whead : !t->proto_paused) sf_wake(t->sf);
}

static void schedule_connection_lost(asyncio_transport_t *t, int error) {
  /* _call_connection_lost: the empty waiter gets ConnectionError. */
  if (UNLIKELY(t->sf)) sf_stop(t, error ? error : -EPIPE);
  if (!t->h_lost) return; /* already scheduled: exactly once */
  t->conn_lost++;
  t->lost_error = error;
  asyncio__handle_t *h = t->h_lost;
  t->h_lost = NULL; /* the ready queue owns it now */
  h->fn = call_connection_lost;
  h->arg = t;
  asyncio__ready_push(t->loop, h);
}

/* _SelectorTransport._force_close */
static void force_close(asyncio_transport_t *t, int error) {
  if (t->conn_lost) return;
  if (t->whead || t->dhead) {
    wbuf_clear(t);
    writer_off(t);
  }
  if (!t->closing) {
    t->closing = 1;
    reader_off(t);
  }
  writer_off(t);
  schedule_connection_lost(t, error);
}

/*
 * _fatal_error: OS errors close quietly (Python logs them in debug mode
 * only); anything else, a protocol's error, goes to the exception handler.
 */
static void fatal_error(asyncio_transport_t *t, int error, const char *message) {
  if (message) {
    asyncio_error_context_t c = {0};
    c.message = message;
    c.error = error;
    asyncio_loop_call_exception_handler(t->loop, &c);
  } else if (t->loop->debug) {
    fprintf(stderr, "asyncio: transport fd=%d: fatal error %s\n", t->fd, asyncio_errname(error));
  }
  force_close(t, error);
}

void asyncio__transport_force_close(asyncio_transport_t *t, int error) {
  if (t->dead) return;
  if (t->kind == ASYNCIO__TK_TLS)
    asyncio__tls_force_close(t, error);
  else if (t->kind == ASYNCIO__TK_SUBPROCESS)
    asyncio__subprocess_close(t);
  else
    force_close(t, error);
}

void asyncio__transport_sf_notify(asyncio_transport_t *t, int error) {
  if (!t->sf) return;
  if (error)
    sf_stop(t, error);
  else
    sf_poke(t);
}

/* Write pipes: _UnixWritePipeTransport._close */
static void pipe_close_now(asyncio_transport_t *t, int error) {
  if (t->conn_lost) return;
  t->closing = 1;
  if (t->whead) {
    writer_off(t);
    wbuf_clear(t);
  }
  reader_off(t);
  writer_off(t);
  schedule_connection_lost(t, error);
}

ASYNCIO_API int asyncio_transport_close(asyncio_transport_t *t) {
  int rc = check_t(t);
  if (rc) return rc;
  if (UNLIKELY(t->kind == ASYNCIO__TK_TLS)) return asyncio__tls_close(t);
  if (UNLIKELY(t->kind == ASYNCIO__TK_SUBPROCESS)) return asyncio__subprocess_close(t);
  if (t->kind == ASYNCIO__TK_WRITE_PIPE) {
    if (!t->closing) return asyncio_transport_write_eof(t);
    return 0;
  }
  if (t->closing) return 0;
  t->closing = 1;
  if (UNLIKELY(t->sf)) sf_stop(t, -EPIPE); /* even while the buffer still flushes */
  reader_off(t);
  if (!t->whead && !t->dhead && !t->conn_lost) {
    writer_off(t);
    schedule_connection_lost(t, 0);
  }
  return 0;
}

ASYNCIO_API int asyncio_transport_abort(asyncio_transport_t *t) {
  int rc = check_t(t);
  if (rc) return rc;
  if (UNLIKELY(t->kind == ASYNCIO__TK_TLS)) return asyncio__tls_abort(t);
  /* SubprocessTransport has no abort(). */
  if (UNLIKELY(t->kind == ASYNCIO__TK_SUBPROCESS)) return -EOPNOTSUPP;
  if (t->kind == ASYNCIO__TK_WRITE_PIPE || t->kind == ASYNCIO__TK_READ_PIPE)
    pipe_close_now(t, 0);
  else
    force_close(t, 0);
  return 0;
}

ASYNCIO_API bool asyncio_transport_is_closing(const asyncio_transport_t *t) {
  return !t || t->closing || t->dead;
}

/* ---- making transports ---------------------------------------------------------------- */

/* connection_made, then reading, then the creator's waiter (three call_soon in CPython). */
static void transport_start(void *arg) {
  asyncio_transport_t *t = arg;
  t->started = 1;
  if (t->proto && t->proto->connection_made) t->proto->connection_made(t, t->inst);
  if (!t->closing && !t->paused && !t->conn_lost &&
      (t->kind != ASYNCIO__TK_WRITE_PIPE || t->pipe_watch)) {
    int rc = reader_on(t);
    if (rc < 0) fatal_error(t, rc, NULL);
  }
  if (t->waiter) {
    asyncio_future_t *w = t->waiter;
    t->waiter = NULL;
    if (!asyncio_future_done(w)) asyncio_future_set_result(w, 0, NULL);
    asyncio__future_unref(w);
  }
}

static void transport_destroy(asyncio__res_t *r) {
  asyncio_transport_t *t =
      (asyncio_transport_t *)((char *)r - offsetof(asyncio_transport_t, res));
  asyncio__res_unlink(t->loop, r);
  /* Reserved handles that were never queued go back to the pool; queued
   * ones were released when close dropped the ready queue. */
  if (t->h_start) asyncio__handle_release(t->loop, t->h_start);
  if (t->h_lost) asyncio__handle_release(t->loop, t->h_lost);
  if (t->fd >= 0) close(t->fd);
  if (t->waiter) asyncio__future_unref(t->waiter);
  if (t->server) asyncio__server_detach(t->server, t);
  transport_free(t);
}

static void set_proto(asyncio_transport_t *t, const asyncio_protocol_t *p, void *inst) {
  t->proto = p;
  t->inst = inst;
}

int asyncio__transport_new(asyncio_loop_t *loop, int fd, int kind,
                           asyncio_protocol_factory_fn factory, void *factory_arg,
                           asyncio_server_t *server, asyncio_future_t *waiter,
                           const struct sockaddr *peer, socklen_t peerlen, int hold,
                           asyncio_transport_t **out) {
  asyncio__net_t *net;
  int rc = asyncio__net_get(loop, &net);
  if (rc) return rc;
  asyncio_transport_t *t = asyncio__calloc_line(sizeof *t);
  if (!t) return -ENOMEM;
  t->h_start = asyncio__handle_new(loop);
  t->h_lost = t->h_start ? asyncio__handle_new(loop) : NULL;
  if (!t->h_lost) {
    if (t->h_start) asyncio__handle_release(loop, t->h_start);
    asyncio__free_line(t, sizeof *t);
    return -ENOMEM;
  }
  t->loop = loop;
  t->fd = fd;
  t->kind = (uint8_t)kind;
  t->high = ASYNCIO_WRITE_HIGH_WATER;
  t->low = ASYNCIO_WRITE_LOW_WATER;
  t->res.destroy = transport_destroy;
  struct stat st;
  t->is_socket = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
  t->pipe_watch = t->is_socket || S_ISFIFO(st.st_mode);
  if (t->is_socket) {
    t->socklen = sizeof t->sockname;
    if (getsockname(fd, (struct sockaddr *)&t->sockname, &t->socklen) < 0) t->socklen = 0;
    if (peer && peerlen) {
      memcpy(&t->peername, peer, peerlen);
      t->peerlen = peerlen;
    } else {
      t->peerlen = sizeof t->peername;
      if (getpeername(fd, (struct sockaddr *)&t->peername, &t->peerlen) < 0) t->peerlen = 0;
    }
    t->connected = t->peerlen != 0;
    if (kind == ASYNCIO__TK_SOCKET) {
      /* _set_nodelay: TCP only; harmless failure elsewhere. */
      int one = 1;
      int fam = t->sockname.ss_family;
      if (fam == AF_INET || fam == AF_INET6)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
  }
  const asyncio_protocol_t *p = NULL;
  void *inst = NULL;
  rc = factory(factory_arg, &p, &inst);
  if (rc >= 0 && !p) rc = -EINVAL;
  if (rc < 0) {
    asyncio__handle_release(loop, t->h_start);
    asyncio__handle_release(loop, t->h_lost);
    asyncio__free_line(t, sizeof *t);
    return rc;
  }
  set_proto(t, p, inst);
  if (waiter) t->waiter = asyncio_future_ref(waiter);
  t->server = server;
  t->holds = hold ? 1 : 0;
  asyncio__res_link(loop, &t->res);
  asyncio__handle_t *h = t->h_start;
  t->h_start = NULL; /* the ready queue owns it now */
  h->fn = transport_start;
  h->arg = t;
  asyncio__ready_push(loop, h);
  *out = t;
  return 0;
}

int asyncio__transport_unhold(asyncio_transport_t *t) {
  if (--t->holds > 0) return t->dead;
  if (t->dead) {
    transport_free(t);
    return 1;
  }
  return 0;
}

int asyncio__transport_make_and_wait(asyncio_loop_t *loop, int fd, int kind,
                                     asyncio_protocol_factory_fn factory, void *factory_arg,
                                     asyncio_transport_t **transport, void **instance,
                                     int *fd_taken) {
  return asyncio__transport_make_and_wait_to(loop, fd, kind, factory, factory_arg, NULL, 0,
                                             transport, instance, fd_taken);
}

int asyncio__transport_make_and_wait_to(asyncio_loop_t *loop, int fd, int kind,
                                        asyncio_protocol_factory_fn factory, void *factory_arg,
                                        const struct sockaddr *dest, socklen_t destlen,
                                        asyncio_transport_t **transport, void **instance,
                                        int *fd_taken) {
  if (dest && (!destlen || destlen > sizeof(struct sockaddr_storage))) return -EINVAL;
  asyncio_future_t *waiter;
  int rc = asyncio_future_new(&waiter, loop);
  if (rc) return rc;
  asyncio_transport_t *t;
  rc = asyncio__transport_new(loop, fd, kind, factory, factory_arg, NULL, waiter, NULL, 0, 1, &t);
  if (rc) {
    asyncio__future_unref(waiter);
    return rc;
  }
  *fd_taken = 1;
  if (dest && !t->connected) {
    /* Before connection_made (only queued so far) can call sendto. */
    memcpy(&t->peername, dest, destlen);
    t->peerlen = destlen;
    t->peer_is_dest = 1;
  }
  void *inst = t->inst;
  /*
   * The transport's reference keeps the waiter until connection_made, and
   * asyncio_await holds its own while the task waits, so ours can go now:
   * a task destroyed by loop close while it waits then leaves no future
   * behind (the loop drops the await's reference, the transport its own).
   */
  asyncio__future_unref(waiter);
  rc = asyncio_await(waiter, NULL);
  /* Python: transport.close(); raise */
  if (rc == -ECANCELED && !t->dead) asyncio_transport_close(t);
  if (asyncio__transport_unhold(t)) return rc < 0 ? rc : -ENOTCONN;
  if (rc < 0) return rc;
  *transport = t;
  if (instance) *instance = inst;
  return 0;
}

asyncio_server_t **asyncio__transport_server_slot(asyncio_transport_t *t) { return &t->server; }
asyncio_transport_t **asyncio__transport_next_slot(asyncio_transport_t *t) { return &t->snext; }
asyncio_transport_t **asyncio__transport_prev_slot(asyncio_transport_t *t) { return &t->sprev; }

/* ---- reading ------------------------------------------------------------------------- */

static void on_eof(asyncio_transport_t *t) {
  if (t->kind == ASYNCIO__TK_READ_PIPE) {
    /* _UnixReadPipeTransport: EOF ends the transport whatever the protocol says. */
    t->closing = 1;
    reader_off(t);
    if (t->proto && t->proto->eof_received) t->proto->eof_received(t, t->inst);
    if (!t->conn_lost) schedule_connection_lost(t, 0);
    return;
  }
  /* Set first: eof_received itself may pause and resume reading. */
  t->read_eof = 1;
  bool keep_open = t->proto && t->proto->eof_received && t->proto->eof_received(t, t->inst);
  if (t->conn_lost) return;
  if (keep_open)
    reader_off(t); /* half-closed: the protocol may still write */
  else
    asyncio_transport_close(t);
}

static void read_stream(asyncio_transport_t *t) {
  const asyncio_protocol_t *p = t->proto;
  ssize_t n;
  if (p && p->get_buffer && p->buffer_updated) {
    void *buf = NULL;
    size_t len = 0;
    int rc = p->get_buffer(t, -1, &buf, &len, t->inst);
    if (rc >= 0 && (!buf || !len)) rc = -ENOBUFS;
    if (rc < 0) {
      fatal_error(t, rc, "Fatal error: protocol.get_buffer() call failed.");
      return;
    }
    n = t->is_socket ? SYS.recv(t->fd, buf, len, 0) : SYS.read(t->fd, buf, len);
    if (n > 0) {
      p->buffer_updated(t, (size_t)n, t->inst);
      return;
    }
  } else {
    asyncio__net_t *net = t->loop->net;
    if (UNLIKELY(!net->rbuf) && !(net->rbuf = asyncio__alloc(ASYNCIO__RECV_SIZE))) {
      fatal_error(t, -ENOMEM, NULL);
      return;
    }
    n = t->is_socket ? SYS.recv(t->fd, net->rbuf, ASYNCIO__RECV_SIZE, 0)
                     : SYS.read(t->fd, net->rbuf, ASYNCIO__RECV_SIZE);
    if (n > 0) {
      if (p && p->data_received) p->data_received(t, net->rbuf, (size_t)n, t->inst);
      return;
    }
  }
  if (n == 0) {
    on_eof(t);
    return;
  }
  int e = errno;
  if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR) return;
  /* _UnixReadPipeTransport reports its read errors, except EIO (a pty whose
   * other side closed); a socket transport's stay quiet. */
  fatal_error(t, -e,
              t->kind == ASYNCIO__TK_READ_PIPE && e != EIO ? "Fatal read error on pipe transport"
                                                           : NULL);
}

static void read_datagram(asyncio_transport_t *t) {
  asyncio__net_t *net = t->loop->net;
  if (UNLIKELY(!net->rbuf) && !(net->rbuf = asyncio__alloc(ASYNCIO__RECV_SIZE))) {
    fatal_error(t, -ENOMEM, NULL);
    return;
  }
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  ssize_t n = SYS.recvfrom(t->fd, net->rbuf, ASYNCIO__RECV_SIZE, 0, (struct sockaddr *)&ss, &sl);
  if (n < 0) {
    int e = errno;
    if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR) return;
    if (t->proto && t->proto->error_received) t->proto->error_received(t, -e, t->inst);
    return;
  }
  if (t->proto && t->proto->datagram_received)
    t->proto->datagram_received(t, net->rbuf, (size_t)n, sl ? (struct sockaddr *)&ss : NULL, sl,
                                t->inst);
}

static void read_ready(int fd, void *arg) {
  (void)fd;
  asyncio_transport_t *t = arg;
  if (t->conn_lost) return;
  switch (t->kind) {
  case ASYNCIO__TK_DATAGRAM:
    read_datagram(t);
    break;
  case ASYNCIO__TK_WRITE_PIPE:
    /* The reading end went away (_UnixWritePipeTransport._read_ready). */
    pipe_close_now(t, t->whead ? -EPIPE : 0);
    break;
  default:
    read_stream(t);
  }
}

ASYNCIO_API bool asyncio_transport_is_reading(const asyncio_transport_t *t) {
  return t && !t->dead && !t->closing && !t->paused && t->kind != ASYNCIO__TK_WRITE_PIPE &&
         t->kind != ASYNCIO__TK_SUBPROCESS;
}

ASYNCIO_API int asyncio_transport_pause_reading(asyncio_transport_t *t) {
  int rc = check_t(t);
  if (rc) return rc;
  if (t->kind == ASYNCIO__TK_WRITE_PIPE || t->kind == ASYNCIO__TK_SUBPROCESS) return -EOPNOTSUPP;
  if (UNLIKELY(t->kind == ASYNCIO__TK_TLS)) return asyncio__tls_pause_reading(t);
  if (!asyncio_transport_is_reading(t)) return 0;
  t->paused = 1;
  reader_off(t);
  return 0;
}

ASYNCIO_API int asyncio_transport_resume_reading(asyncio_transport_t *t) {
  int rc = check_t(t);
  if (rc) return rc;
  if (t->kind == ASYNCIO__TK_WRITE_PIPE || t->kind == ASYNCIO__TK_SUBPROCESS) return -EOPNOTSUPP;
  if (UNLIKELY(t->kind == ASYNCIO__TK_TLS)) return asyncio__tls_resume_reading(t);
  if (t->closing || !t->paused) return 0;
  t->paused = 0;
  if (t->started && !t->conn_lost) {
    rc = reader_on(t);
    if (rc < 0) fatal_error(t, rc, NULL);
  }
  return 0;
}

/* ---- writing -------------------------------------------------------------------------- */

static ssize_t send_iov(asyncio_transport_t *t, const struct iovec *iov, int iovcnt) {
  if (t->is_socket) {
    if (iovcnt == 1) return SYS.send(t->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
    struct msghdr m = {0};
    m.msg_iov = (struct iovec *)iov;
    m.msg_iovlen = (size_t)iovcnt;
    return SYS.sendmsg(t->fd, &m, MSG_NOSIGNAL);
  }
  if (iovcnt == 1) return SYS.write(t->fd, iov[0].iov_base, iov[0].iov_len);
  return SYS.writev(t->fd, iov, iovcnt);
}

/* After the buffer drained: the deferred close or write_eof. */
static void buffer_drained(asyncio_transport_t *t) {
  writer_off(t);
  if (t->kind == ASYNCIO__TK_WRITE_PIPE) {
    if (t->closing && !t->conn_lost) {
      reader_off(t);
      schedule_connection_lost(t, 0);
    }
    return;
  }
  if (t->closing) {
    if (!t->conn_lost) schedule_connection_lost(t, 0);
  } else if (t->eof) {
    shutdown(t->fd, SHUT_WR);
  }
}

static void write_ready_stream(asyncio_transport_t *t) {
  struct iovec iov[MAX_IOV];
  int n = 0;
  for (wchunk_t *c = t->whead; c && n < MAX_IOV; c = c->next) {
    iov[n].iov_base = c->data + c->start;
    iov[n].iov_len = c->end - c->start;
    n++;
  }
  if (!n) {
    buffer_drained(t);
    return;
  }
  ssize_t w = send_iov(t, iov, n);
  if (w < 0) {
    int e = errno;
    if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR) return;
    writer_off(t);
    wbuf_clear(t);
    if (t->kind == ASYNCIO__TK_WRITE_PIPE)
      pipe_close_now(t, -e);
    else
      fatal_error(t, -e, NULL);
    return;
  }
  wbuf_consume(t, (size_t)w);
  maybe_resume_protocol(t); /* may write more */
  if (!t->whead && !t->conn_lost) buffer_drained(t);
  if (UNLIKELY(t->sf)) sf_poke(t);
}

static void write_ready_datagram(asyncio_transport_t *t) {
  while (t->dhead) {
    dgram_t *d = t->dhead;
    ssize_t w = t->connected ? SYS.send(t->fd, d->data, d->len, MSG_NOSIGNAL)
                             : SYS.sendto(t->fd, d->data, d->len, MSG_NOSIGNAL,
                                      (struct sockaddr *)&d->addr, d->addrlen);
    if (w < 0) {
      int e = errno;
      if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR) return;
      /* The datagram is dropped and reported; the transport stays open. */
      t->dhead = d->next;
      if (!t->dhead) t->dtail = NULL;
      t->wsize -= d->len + DGRAM_HEADER;
      asyncio__free(d, sizeof *d + d->len);
      if (t->proto && t->proto->error_received) t->proto->error_received(t, -e, t->inst);
      if (t->conn_lost) return;
      continue;
    }
    t->dhead = d->next;
    if (!t->dhead) t->dtail = NULL;
    t->wsize -= d->len + DGRAM_HEADER;
    asyncio__free(d, sizeof *d + d->len);
  }
  maybe_resume_protocol(t);
  if (!t->dhead && !t->conn_lost) {
    writer_off(t);
    if (t->closing) schedule_connection_lost(t, 0);
  }
}

static void write_ready(int fd, void *arg) {
  (void)fd;
  asyncio_transport_t *t = arg;
  if (t->conn_lost) return;
  if (t->kind == ASYNCIO__TK_DATAGRAM)
    write_ready_datagram(t);
  else
    write_ready_stream(t);
}

static int write_iov(asyncio_transport_t *t, const struct iovec *iov, int iovcnt) {
  if (t->kind == ASYNCIO__TK_DATAGRAM || t->kind == ASYNCIO__TK_READ_PIPE ||
      t->kind == ASYNCIO__TK_SUBPROCESS)
    return -EOPNOTSUPP;
  if (t->eof) return -EPIPE; /* "Cannot call write() after write_eof()" */
  size_t total = 0;
  for (int i = 0; i < iovcnt; i++) total += iov[i].iov_len;
  if (!total) return 0;
  /* Python ignores it (and logs a warning after a few) once the connection
   * is lost, or once close() had nothing left to send.  A socket transport
   * that close() left flushing its buffer still takes more, and sends it
   * before the connection is closed; a pipe does not (as Python's). */
  if (t->conn_lost ||
      (t->closing && (!t->whead || t->kind == ASYNCIO__TK_WRITE_PIPE))) {
    if (t->conn_lost) t->conn_lost++;
    return 0;
  }
  size_t sent = 0;
  if (!t->whead) {
    /* Nothing buffered: try the system call first. */
    int cnt = iovcnt < MAX_IOV ? iovcnt : MAX_IOV;
    ssize_t w = send_iov(t, iov, cnt);
    if (w < 0) {
      int e = errno;
      if (e != EAGAIN && e != EWOULDBLOCK && e != EINTR) {
        if (t->kind == ASYNCIO__TK_WRITE_PIPE)
          pipe_close_now(t, -e);
        else
          fatal_error(t, -e, NULL);
        return 0;
      }
    } else {
      sent = (size_t)w;
      if (sent == total) return 0;
    }
  }
  int rc = wbuf_append(t, iov, iovcnt, sent);
  if (rc < 0) {
    if (sent) fatal_error(t, rc, NULL); /* part went out: the stream is broken */
    return rc;
  }
  rc = writer_on(t);
  if (rc < 0) {
    fatal_error(t, rc, NULL);
    return 0;
  }
  maybe_pause_protocol(t);
  return 0;
}

ASYNCIO_API int asyncio_transport_write(asyncio_transport_t *t, const void *data, size_t n) {
  int rc = check_t(t);
  if (rc) return rc;
  /* No object is larger than SSIZE_MAX (writev(2) refuses such a total with
   * EINVAL); the write buffer's size arithmetic relies on it. */
  if ((!data && n) || n > SSIZE_MAX) return -EINVAL;
  if (UNLIKELY(t->sf)) return -EBUSY; /* "unable to write; sendfile is in progress" */
  struct iovec v = {(void *)data, n};
  if (UNLIKELY(t->kind == ASYNCIO__TK_TLS)) return asyncio__tls_write(t, &v, 1);
  return write_iov(t, &v, 1);
}

ASYNCIO_API int asyncio_transport_writelines(asyncio_transport_t *t, const struct iovec *iov,
                                             int iovcnt) {
  int rc = check_t(t);
  if (rc) return rc;
  if (iovcnt < 0 || (iovcnt && !iov)) return -EINVAL;
  /* As writev(2): a total above SSIZE_MAX is refused, so no sum can wrap. */
  size_t total = 0;
  for (int i = 0; i < iovcnt; i++) {
    if ((!iov[i].iov_base && iov[i].iov_len) || iov[i].iov_len > (size_t)SSIZE_MAX - total)
      return -EINVAL;
    total += iov[i].iov_len;
  }
  /* No early return for iovcnt 0: like write(b''), it is refused after
   * write_eof and during sendfile (Python 3.12's writelines checks first). */
  if (UNLIKELY(t->sf)) return -EBUSY;
  if (UNLIKELY(t->kind == ASYNCIO__TK_TLS)) return asyncio__tls_write(t, iov, iovcnt);
  return write_iov(t, iov, iovcnt);
}

ASYNCIO_API bool asyncio_transport_can_write_eof(const asyncio_transport_t *t) {
  return t && (t->kind == ASYNCIO__TK_SOCKET || t->kind == ASYNCIO__TK_WRITE_PIPE);
}

ASYNCIO_API int asyncio_transport_write_eof(asyncio_transport_t *t) {
  int rc = check_t(t);
  if (rc) return rc;
  if (!asyncio_transport_can_write_eof(t)) return -EOPNOTSUPP;
  if (t->kind == ASYNCIO__TK_WRITE_PIPE) {
    if (t->closing) return 0;
    t->closing = 1;
    if (UNLIKELY(t->sf)) sf_stop(t, -EPIPE);
    if (!t->whead && !t->conn_lost) {
      reader_off(t);
      schedule_connection_lost(t, 0);
    }
    return 0;
  }
  if (t->closing || t->eof) return 0;
  t->eof = 1;
  if (!t->whead && !t->conn_lost) shutdown(t->fd, SHUT_WR);
  return 0;
}

ASYNCIO_API size_t asyncio_transport_get_write_buffer_size(const asyncio_transport_t *t) {
  if (t && UNLIKELY(t->kind == ASYNCIO__TK_TLS)) return asyncio__tls_get_write_buffer_size(t);
  return t ? t->wsize : 0;
}

/*
 * Python's water-mark defaults (_FlowControlMixin._set_write_buffer_limits,
 * sslproto.add_flowcontrol_defaults), a negative value standing for None.
 * In size_t: Python's 4 * low cannot overflow, ours saturates instead of
 * wrapping into a refusal (or, in ssize_t, undefined behaviour).  -EINVAL
 * unless high >= low.
 */
static int flow_limits(ssize_t high, ssize_t low, size_t dflt_high, size_t *h, size_t *l) {
  if (high >= 0)
    *h = (size_t)high;
  else if (low < 0)
    *h = dflt_high;
  else
    *h = (size_t)low > SIZE_MAX / 4 ? SIZE_MAX : 4 * (size_t)low;
  *l = low >= 0 ? (size_t)low : *h / 4;
  return *h >= *l ? 0 : -EINVAL;
}

ASYNCIO_API int asyncio_transport_set_write_buffer_limits(asyncio_transport_t *t, ssize_t high,
                                                          ssize_t low) {
  int rc = check_t(t);
  if (rc) return rc;
  if (t->kind == ASYNCIO__TK_SUBPROCESS) return -EOPNOTSUPP;
  size_t h, l;
  rc = flow_limits(high, low,
                   t->kind == ASYNCIO__TK_TLS ? ASYNCIO__TLS_WRITE_HIGH : ASYNCIO_WRITE_HIGH_WATER,
                   &h, &l);
  if (rc) return rc;
  t->high = h;
  t->low = l;
  if (UNLIKELY(t->kind == ASYNCIO__TK_TLS))
    asyncio__tls_control_app_writing(t); /* may resume too, as Python's */
  else
    maybe_pause_protocol(t);
  return 0;
}

ASYNCIO_API int asyncio_transport_get_write_buffer_limits(const asyncio_transport_t *t,
                                                          size_t *low, size_t *high) {
  if (!t) return -EINVAL;
  if (t->kind == ASYNCIO__TK_SUBPROCESS) return -EOPNOTSUPP;
  if (low) *low = t->low;
  if (high) *high = t->high;
  return 0;
}

/*
 * The read-side buffer of _SSLProtocolTransport: the ciphertext received
 * and not yet decrypted (plaintext is never buffered: data_received gets it
 * as it is decrypted).  Other kinds have none (Python: AttributeError).
 */
ASYNCIO_API ssize_t asyncio_transport_get_read_buffer_size(const asyncio_transport_t *t) {
  if (!t) return -EINVAL;
  if (t->kind != ASYNCIO__TK_TLS) return -EOPNOTSUPP;
  return asyncio__tls_get_read_buffer_size(t);
}

ASYNCIO_API int asyncio_transport_get_read_buffer_limits(const asyncio_transport_t *t,
                                                         size_t *low, size_t *high) {
  if (!t) return -EINVAL;
  if (t->kind != ASYNCIO__TK_TLS) return -EOPNOTSUPP;
  return asyncio__tls_get_read_buffer_limits(t, low, high);
}

ASYNCIO_API int asyncio_transport_set_read_buffer_limits(asyncio_transport_t *t, ssize_t high,
                                                         ssize_t low) {
  int rc = check_t(t);
  if (rc) return rc;
  if (t->kind != ASYNCIO__TK_TLS) return -EOPNOTSUPP;
  size_t h, l;
  rc = flow_limits(high, low, ASYNCIO__TLS_READ_HIGH, &h, &l);
  if (rc) return rc;
  return asyncio__tls_set_read_buffer_limits(t, h, l);
}

/* ---- sendfile (base_events.sendfile) ---------------------------------------------------- */

/*
 * Waits until the write buffer is empty (want_empty: _make_empty_waiter)
 * or the protocol is not paused for writing (_SendfileFallbackProtocol.drain).
 * Returns 0, -ECANCELED, or the connection's end (ctl->stop; -EPIPE once
 * the transport is closing, as Python's "Connection closed by peer").
 */
static int sf_wait(asyncio_transport_t *t, asyncio__sf_ctl_t *c, int want_empty) {
  for (;;) {
    if (c->stop) return c->stop;
    if (t->closing || t->conn_lost) return -EPIPE;
    if (want_empty ? !t->whead : !t->proto_paused) return 0;
    c->want_empty = (uint8_t)want_empty;
    int rc = asyncio__sock_wait(t->loop, -1, 0, c);
    if (rc) return rc;
  }
}

/*
 * base_events._sendfile_fallback: read a block on the executor, wait for
 * the protocol-level flow control, write it through the transport.  The
 * last block may still be in the write buffer when this returns, as in
 * Python.
 */
static int sf_fallback(asyncio_transport_t *t, asyncio__sf_ctl_t *c, int file_fd, off_t offset,
                       size_t count, int seekable, size_t *total) {
  asyncio__sf_block_t *b;
  int rc = asyncio__sf_block_new(t->loop, &b);
  if (rc) return rc;
  for (;;) {
    size_t want = ASYNCIO__SF_BLOCK;
    if (count) {
      if (*total >= count) break;
      if (count - *total < want) want = count - *total;
    }
    rc = sf_wait(t, c, 0);
    if (rc) break;
    ssize_t k = asyncio__sf_block_read(&b, file_fd, seekable, offset + (off_t)*total, want);
    if (k <= 0) { /* end of file, an error, or cancelled */
      rc = (int)k;
      break;
    }
    /* The transport may have gone while the block was read. */
    rc = c->stop ? c->stop : (t->closing || t->conn_lost) ? -EPIPE : 0;
    if (rc) break;
    struct iovec v = {(void *)asyncio__sf_block_data(b), (size_t)k};
    rc = t->kind == ASYNCIO__TK_TLS ? asyncio__tls_write(t, &v, 1) : write_iov(t, &v, 1);
    if (rc < 0) break; /* -ENOMEM: nothing of it was taken */
    *total += (size_t)k;
    if (c->stop) { /* the write failed: the transport is closing with the error */
      rc = c->stop;
      break;
    }
  }
  asyncio__sf_block_free(b);
  return rc;
}

ASYNCIO_API int asyncio_loop_sendfile(asyncio_loop_t *loop, asyncio_transport_t *t, int file_fd,
                                      off_t offset, size_t count, size_t *sent,
                                      const asyncio_sendfile_options_t *o) {
  if (sent) *sent = 0;
  if (!loop) return -EINVAL;
  int rc = check_t(t);
  if (rc) return rc;
  if (t->loop != loop) return -EINVAL;
  if (asyncio__running_loop != loop || !loop->current) return ASYNCIO_ENOTASK;
  if (offset < 0 || (o && o->no_fallback && o->force_fallback)) return -EINVAL;
  if (file_fd < 0) return -EBADF;
  /* _sendfile_compatible: stream sockets TRY_NATIVE, write pipes and TLS FALLBACK. */
  if (t->kind != ASYNCIO__TK_SOCKET && t->kind != ASYNCIO__TK_WRITE_PIPE &&
      t->kind != ASYNCIO__TK_TLS)
    return -EOPNOTSUPP;
  if (t->sf) return -EBUSY; /* "Empty waiter is already set" */
  if (t->closing || t->conn_lost || t->eof) return -EPIPE; /* "Transport is closing" */
  struct stat st;
  if (fstat(file_fd, &st) < 0) return -errno;
  int native = t->kind == ASYNCIO__TK_SOCKET && t->is_socket && !(o && o->force_fallback);
  int fallback = !(o && o->no_fallback);
  if (!native && !fallback) return ASYNCIO_ESENDFILENOTAVAILABLE;
  int seekable = lseek(file_fd, 0, SEEK_CUR) >= 0;
  if (!seekable && offset != 0) return -ESPIPE; /* file.seek(offset) */

  asyncio__sf_ctl_t ctl;
  memset(&ctl, 0, sizeof ctl);
  t->sf = &ctl;
  t->holds++; /* connection_lost may run while we wait: the struct stays */
  int resume = asyncio_transport_is_reading(t);
  if (resume) asyncio_transport_pause_reading(t);
  size_t total = 0;
  rc = ASYNCIO_ESENDFILENOTAVAILABLE;
  if (native) {
    /* _sendfile_native: the buffered bytes go first. */
    rc = sf_wait(t, &ctl, 1);
    if (rc == 0)
      rc = asyncio__sock_sendfile_native(loop, t->fd, file_fd, offset, count, &total, &ctl);
  }
  if (rc == ASYNCIO_ESENDFILENOTAVAILABLE && fallback)
    rc = sf_fallback(t, &ctl, file_fd, offset, count, seekable, &total);
  /* As Python: the file position ends after what was sent. */
  if (total > 0 && seekable) (void)lseek(file_fd, offset + (off_t)total, SEEK_SET);
  t->sf = NULL;
  if (t->dead) {
    /* connection_lost ran while we waited and left the descriptor to us. */
    if (t->fd >= 0) close(t->fd);
    t->fd = -1;
  } else if (resume && t->paused && !t->closing) {
    asyncio_transport_resume_reading(t);
  }
  asyncio__transport_unhold(t);
  if (sent) *sent = total;
  return rc;
}

/* ---- datagrams ------------------------------------------------------------------------ */

static int same_addr(const struct sockaddr_storage *a, socklen_t al, const struct sockaddr *b,
                     socklen_t bl) {
  if (a->ss_family != b->sa_family) return 0;
  if (b->sa_family == AF_INET) {
    const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
    return bl >= sizeof *y && x->sin_port == y->sin_port &&
           x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (b->sa_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return bl >= sizeof *y && x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof y->sin6_addr) == 0;
  }
  return al == bl && memcmp(a, b, bl) == 0;
}

ASYNCIO_API int asyncio_transport_sendto(asyncio_transport_t *t, const void *data, size_t n,
                                         const struct sockaddr *addr, socklen_t addrlen) {
  int rc = check_t(t);
  if (rc) return rc;
  /* An address must at least hold its family (same_addr reads it); a length
   * without an address is a mistake (sock_sendto refuses it too). */
  if ((!data && n) || (!addr && addrlen) ||
      (addr && (addrlen < sizeof(sa_family_t) || addrlen > sizeof(struct sockaddr_storage))))
    return -EINVAL;
  if (t->kind != ASYNCIO__TK_DATAGRAM) return -EOPNOTSUPP;
  /* No IP datagram carries more.  An AF_UNIX one may: its limit is the
   * socket buffer, and the kernel says so through error_received. */
  if (UNLIKELY(n > 65535) &&
      (t->sockname.ss_family == AF_INET || t->sockname.ss_family == AF_INET6))
    return -EMSGSIZE;
  if (addr && t->peerlen && !same_addr(&t->peername, t->peerlen, addr, addrlen)) return -EINVAL;
  if (!addr && !t->peerlen) return -EINVAL;
  if (!addr && !t->connected) { /* the default destination; queued with the datagram too */
    addr = (const struct sockaddr *)&t->peername;
    addrlen = t->peerlen;
  }
  /*
   * Python's sendto has no closing check: while close() still flushes the
   * queue, a datagram joins it and goes out before connection_lost, as a
   * stream transport's write does.  Once nothing is queued, or the
   * connection is lost, it is ignored.
   */
  if (UNLIKELY(t->conn_lost || (t->closing && !t->dhead))) {
    if (t->conn_lost) t->conn_lost++;
    return 0;
  }
  if (!t->dhead) {
    ssize_t w = t->connected ? SYS.send(t->fd, data, n, MSG_NOSIGNAL)
                             : SYS.sendto(t->fd, data, n, MSG_NOSIGNAL, addr, addrlen);
    if (w >= 0) return 0;
    int e = errno;
    if (e != EAGAIN && e != EWOULDBLOCK && e != EINTR) {
      if (t->proto && t->proto->error_received) t->proto->error_received(t, -e, t->inst);
      return 0;
    }
  }
  dgram_t *d = asyncio__alloc(sizeof *d + n);
  if (!d) return -ENOMEM;
  rc = writer_on(t);
  if (rc < 0) {
    asyncio__free(d, sizeof *d + n);
    return rc;
  }
  d->next = NULL;
  d->len = n;
  d->addrlen = addr ? addrlen : 0;
  if (addr) memcpy(&d->addr, addr, addrlen);
  if (n) memcpy(d->data, data, n);
  if (t->dtail)
    t->dtail->next = d;
  else
    t->dhead = d;
  t->dtail = d;
  t->wsize += n + DGRAM_HEADER;
  maybe_pause_protocol(t);
  return 0;
}

/* ---- extra info and protocol ------------------------------------------------------------ */

ASYNCIO_API int asyncio_transport_get_fd(const asyncio_transport_t *t) {
  if (t && !t->dead && t->kind == ASYNCIO__TK_TLS) return asyncio__tls_get_fd(t);
  /* A subprocess transport has no one descriptor. */
  if (t && !t->dead && t->kind == ASYNCIO__TK_SUBPROCESS) return -EOPNOTSUPP;
  if (!t || t->dead || t->fd < 0) return -EINVAL;
  return t->fd;
}

static int copy_addr(const struct sockaddr_storage *ss, socklen_t len, struct sockaddr *addr,
                     socklen_t *addrlen) {
  if (!len) return -ENOTCONN;
  socklen_t k = *addrlen < len ? *addrlen : len;
  memcpy(addr, ss, k);
  *addrlen = len;
  return 0;
}

ASYNCIO_API int asyncio_transport_get_peername(const asyncio_transport_t *t,
                                               struct sockaddr *addr, socklen_t *addrlen) {
  if (!t || !addr || !addrlen) return -EINVAL;
  if (t->peer_is_dest) return -ENOTCONN; /* Python: getpeername() failed, so None */
  return copy_addr(&t->peername, t->peerlen, addr, addrlen);
}

ASYNCIO_API int asyncio_transport_get_sockname(const asyncio_transport_t *t,
                                               struct sockaddr *addr, socklen_t *addrlen) {
  if (!t || !addr || !addrlen) return -EINVAL;
  return copy_addr(&t->sockname, t->socklen, addr, addrlen);
}

ASYNCIO_API asyncio_loop_t *asyncio_transport_get_loop(const asyncio_transport_t *t) {
  return t ? t->loop : NULL;
}

ASYNCIO_API int asyncio_transport_set_protocol(asyncio_transport_t *t,
                                               const asyncio_protocol_t *p, void *inst) {
  int rc = check_t(t);
  if (rc) return rc;
  if (!p) return -EINVAL;
  set_proto(t, p, inst);
  return 0;
}

ASYNCIO_API const asyncio_protocol_t *asyncio_transport_get_protocol(const asyncio_transport_t *t,
                                                                     void **inst) {
  if (!t) return NULL;
  if (inst) *inst = t->inst;
  return t->proto;
}
