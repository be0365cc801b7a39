/*
 * streams.c - StreamReader / StreamWriter over a transport (Python:
 * asyncio.streams: StreamReader, StreamWriter, StreamReaderProtocol,
 * FlowControlMixin, open_connection, start_server and their Unix
 * variants).
 *
 * One object per connection (stream_t) is at once the protocol instance,
 * the reader and the writer: asyncio_stream_reader_t and
 * asyncio_stream_writer_t are two members of it, so both handles are plain
 * pointers into the one allocation.
 *
 * Receiving.  The protocol is a BufferedProtocol: the transport recv()s
 * straight into the reader's buffer (`buf`, live bytes in [start, end)).
 * When a task is suspended in read / readexactly / read_all and the buffer
 * is empty, get_buffer hands out the caller's own destination instead
 * ("direct" mode), so bulk reads are copied once, by the kernel.  Direct
 * mode is only used while the reader's task is still parked: once it is
 * woken or cancelled the data goes to the internal buffer again.  A call
 * that ends in an error or a cancellation after having taken bytes puts
 * them back in front of the buffer (unread), so, as in Python, a cancelled
 * read consumes nothing.
 *
 * Borrowed results.  readline / readuntil return a pointer into `buf`; the
 * bytes stay where they are until the next call on the reader (`borrowed`
 * set: get_buffer must not move them).  If the buffer has to grow while a
 * borrow is out, a new buffer is made and the old one is kept (`retired`)
 * until that next call.
 *
 * Flow control, as StreamReader: more than 2 * limit buffered pauses the
 * transport; consuming down to limit resumes it; waiting for data resumes
 * it as well (so a read larger than the buffer cannot deadlock).  Writes:
 * pause_writing / resume_writing (FlowControlMixin) gate drain().
 *
 * Waiting.  A reader has at most one waiting task, which parks
 * (asyncio__task_park: no future, and waking it touches only the task
 * object, not its stack: the per-message path of a server with many
 * connections).  The writer's drain / wait_closed waiters are futures in
 * the waiting task's frame (asyncio__waiter_t, as in locks.c), awaited with
 * asyncio_await.  Either way every wait is a cancellation point and obeys
 * timeout scopes, and waiting allocates nothing.
 *
 * Lifetime.  The object goes when the reader handle, the writer handle,
 * the transport (until connection_lost) and a start_server handler task
 * (until it returns) have all let go of it.  It is a loop resource
 * (asyncio__res_t): at loop close, objects nobody outside the library
 * holds are freed; objects the user still holds are orphaned (buffers
 * freed, every call fails with ASYNCIO_ECLOSED, only _free works).
 * Pending tasks are destroyed before resources at loop close, so a
 * destroyed handler never runs again and its stream is freed here.
 */
#include <limits.h>
#include <stdlib.h>

#include "selector_events.h"

#define INIT_CAP ((size_t)16 * 1024)
#define MIN_ROOM ((size_t)4 * 1024)
#define READ_ALL_CHUNK ((size_t)64 * 1024)

struct asyncio_stream_reader {
  uint8_t live;
};
struct asyncio_stream_writer {
  uint8_t live;
};

typedef struct stream {
  /* A read and a write touch the fields up to `lost_err`: two cache lines
   * (the object starts on one: asyncio__alloc_line).  What a failing call
   * leaves behind comes after, looked at only when `residue` says so. */
  asyncio_loop_t *loop;
  asyncio_transport_t *t; /* NULL once connection_lost ran */
  struct asyncio_stream_reader r;
  struct asyncio_stream_writer w;
  uint8_t eof;        /* feed_eof */
  uint8_t paused;     /* we paused the transport's reading */
  uint8_t borrowed;   /* bytes before start are lent out */
  uint8_t direct_now; /* the last get_buffer gave the direct destination */
  uint8_t attached;   /* a transport holds us as its protocol */
  uint8_t lost;       /* connection_lost ran */
  uint8_t closed;     /* close() called (or the writer freed) */
  uint8_t eof_written;
  uint8_t wpaused; /* pause_writing without resume_writing */
  uint8_t orphan;  /* the loop was closed under us */
  uint8_t handler_owned; /* start_server's: freed when the handler returns */
  uint8_t task_ref;      /* the handler task still runs */
  uint8_t residue; /* partial, partial_len, consumed or retired may be set */
  asyncio__task_t *rw; /* the task waiting in a reader call (parked), or NULL */
  /* the reader's buffer */
  char *buf;
  size_t cap, start, end;
  /* direct mode: the waiting reader's destination */
  char *dptr;
  size_t dlen, dgot, dneed;
  size_t want; /* wake the reader once this much is buffered */
  int exc;               /* the connection's error (StreamReader._exception) */
  int lost_err;
  size_t limit;
  /* results of the last failing call */
  const char *partial;
  size_t partial_len, consumed;
  char *retired; /* a buffer replaced while borrowed from */
  size_t retired_cap;
  uint32_t wbusy;        /* tasks in drain / wait_closed */
  asyncio__res_t res;
  asyncio__waitq_t drainq, closeq;
  asyncio_stream_handler_fn handler;
  void *harg;
  struct sockaddr_storage peer, sock;
  socklen_t peerlen, socklen;
  void (*on_lost)(void *arg, int error); /* subprocess.c's pipe hook, or NULL */
  void *lost_arg;
  /* read_all's buffer while it waits: a task destroyed by loop close leaves it here. */
  char *rall;
  size_t rall_cap;
  /*
   * Made by an opening call that has not handed the handles out yet (it
   * may be suspended): if the loop closes then, its task is gone and
   * nobody will free them, so the loop does.
   */
  uint8_t creating;
} stream_t;

#if UINTPTR_MAX == 0xffffffffffffffffu
_Static_assert(offsetof(stream_t, lost_err) + sizeof(int) <= 128,
               "stream_t: a read and a write take two cache lines");
#endif

#define R2S(p) ((stream_t *)((char *)(p) - offsetof(stream_t, r)))
#define W2S(p) ((stream_t *)((char *)(p) - offsetof(stream_t, w)))
#define CR2S(p) ((const stream_t *)((const char *)(p) - offsetof(stream_t, r)))
#define CW2S(p) ((const stream_t *)((const char *)(p) - offsetof(stream_t, w)))

/* ---- lifetime ------------------------------------------------------------------- */

static void buffers_free(stream_t *s) {
  if (s->buf) asyncio__free(s->buf, s->cap);
  if (s->retired) asyncio__free(s->retired, s->retired_cap);
  s->buf = s->retired = NULL;
  s->cap = s->retired_cap = s->start = s->end = 0;
  s->borrowed = 0;
}

static void stream_free(stream_t *s) {
  if (!s->orphan) asyncio__res_unlink(s->loop, &s->res);
  buffers_free(s);
  asyncio__free_line(s, sizeof *s);
}

static void maybe_free(stream_t *s) {
  if (!s->r.live && !s->w.live && !s->attached && !s->task_ref) stream_free(s);
}

/* At loop close: the transport and any handler task are already gone. */
static void stream_destroy(asyncio__res_t *r) {
  stream_t *s = (stream_t *)((char *)r - offsetof(stream_t, res));
  asyncio__res_unlink(s->loop, r);
  s->orphan = 1;
  s->t = NULL;
  s->attached = 0;
  s->task_ref = 0;
  /* Waiters lived on stacks of destroyed tasks: forget, never touch. */
  s->rw = NULL;
  s->drainq = (asyncio__waitq_t){0};
  s->closeq = (asyncio__waitq_t){0};
  s->wbusy = 0;
  s->dptr = NULL;
  if (s->handler_owned || s->creating) s->r.live = s->w.live = 0;
  /* readuntil's partial bytes lived in the buffer freed below: partial() must not lend them. */
  if (s->partial) {
    s->partial = NULL;
    s->partial_len = 0;
  }
  buffers_free(s);
  if (s->rall) asyncio__free(s->rall, s->rall_cap);
  s->rall = NULL;
  s->loop = NULL;
  maybe_free(s);
}

static stream_t *stream_new(asyncio_loop_t *loop, size_t limit) {
  stream_t *s = asyncio__calloc_line(sizeof *s);
  if (!s) return NULL;
  s->loop = loop;
  s->limit = limit ? limit : ASYNCIO_STREAM_LIMIT;
  /* 2 * limit must not wrap (a huge limit is no limit, as in Python). */
  if (s->limit > SIZE_MAX / 2) s->limit = SIZE_MAX / 2;
  s->r.live = s->w.live = 1;
  s->attached = 1; /* the transport is made right after the factory returns */
  s->res.destroy = stream_destroy;
  asyncio__res_link(loop, &s->res); /* loop->net exists: transport_new made it */
  return s;
}

/* Awaits w: 0 when woken, -ECANCELED.  The caller checked for a task. */
static int await_waiter(asyncio__waiter_t *w) {
  int rc = asyncio_await(&w->f, NULL);
  asyncio__strfree(w->f.msg);
  w->f.msg = NULL;
  return rc < 0 ? -ECANCELED : 0;
}

/* May the calling code suspend on this stream now? */
static int can_wait(const stream_t *s) {
  if (!asyncio__running_loop || !asyncio__running_loop->current) return ASYNCIO_ENOTASK;
  if (asyncio__running_loop != s->loop) return -EINVAL;
  return 0;
}

static void wake_all(asyncio__waitq_t *q) {
  for (asyncio__waiter_t *w = q->head; w; w = w->next) asyncio__waiter_wake(w);
}

static void wake_reader(stream_t *s) {
  if (s->rw) asyncio__task_unpark(s->rw);
}

/* ---- the reader's buffer ---------------------------------------------------------- */

static inline size_t buffered(const stream_t *s) { return s->end - s->start; }

/* StreamReader._maybe_resume_transport */
static void maybe_resume(stream_t *s) {
  if (s->paused && s->t && buffered(s) <= s->limit) {
    s->paused = 0;
    asyncio_transport_resume_reading(s->t);
  }
}

/* The next call on the reader: what readline / readuntil lent out is taken back. */
static void release_borrow(stream_t *s) {
  s->borrowed = 0;
  if (UNLIKELY(s->residue)) {
    s->residue = 0;
    s->partial = NULL;
    s->partial_len = 0;
    s->consumed = 0;
    if (s->retired) asyncio__free(s->retired, s->retired_cap);
    s->retired = NULL;
    s->retired_cap = 0;
  }
  if (s->start == s->end) {
    s->start = s->end = 0;
  } else if (s->cap - s->end < MIN_ROOM && s->start) {
    memmove(s->buf, s->buf + s->start, buffered(s));
    s->end -= s->start;
    s->start = 0;
  }
}

/* Makes at least `need` bytes of room after end; 0 or -ENOMEM. */
static int make_room(stream_t *s, size_t need) {
  if (s->cap - s->end >= need) return 0;
  size_t live = buffered(s);
  if (!s->borrowed && s->start) {
    memmove(s->buf, s->buf + s->start, live);
    s->start = 0;
    s->end = live;
    if (s->cap - s->end >= need) return 0;
  }
  size_t ncap = s->cap ? s->cap : INIT_CAP;
  while (ncap - live < need) ncap *= 2;
  if (s->borrowed) {
    /* The lent bytes must stay put: move the live ones to a new buffer. */
    char *nb = asyncio__alloc(ncap);
    if (!nb) return -ENOMEM;
    if (live) memcpy(nb, s->buf + s->start, live);
    if (s->retired) asyncio__free(s->retired, s->retired_cap); /* cannot be lent */
    s->retired = s->buf;
    s->retired_cap = s->cap;
    s->residue = 1;
    s->borrowed = 0; /* the lent bytes live in the retired buffer now */
    s->buf = nb;
  } else {
    char *nb = asyncio__realloc(s->buf, s->cap, ncap);
    if (!nb) return -ENOMEM;
    s->buf = nb;
  }
  s->cap = ncap;
  s->start = 0;
  s->end = live;
  return 0;
}

/*
 * Puts k bytes the current call had taken back in front of the buffer
 * (a cancelled or failed read consumes nothing).  If there is no memory
 * for them, the stream has lost bytes from its middle: rather than hand out
 * what follows the hole, it fails, as on a connection error that keeps
 * nothing (every later read and drain gets -ENOMEM) and the transport is
 * aborted.
 */
static void unread_failed(stream_t *s) {
  s->start = s->end = 0;
  s->exc = -ENOMEM;
  if (s->t && !s->closed) {
    s->closed = 1;
    asyncio_transport_abort(s->t);
  }
}

/* Every caller emptied the buffer before it waited, so start is 0 here and
 * nothing is lent: the bytes go in front of whatever came meanwhile. */
static void unread(stream_t *s, const char *p, size_t k) {
  if (!k) return;
  size_t live = buffered(s);
  if (s->cap < live + k) {
    size_t ncap = s->cap ? s->cap : INIT_CAP;
    while (ncap < live + k) ncap *= 2;
    char *nb = asyncio__alloc(ncap);
    if (!nb) {
      unread_failed(s);
      return;
    }
    if (live) memcpy(nb + k, s->buf + s->start, live);
    if (s->buf) asyncio__free(s->buf, s->cap);
    s->buf = nb;
    s->cap = ncap;
  } else if (live) {
    memmove(s->buf + k, s->buf + s->start, live);
  }
  memcpy(s->buf, p, k);
  s->start = 0;
  s->end = live + k;
}

/* ---- the protocol (StreamReaderProtocol + FlowControlMixin) ----------------------- */

static int handler_main(void *arg);

static void report(asyncio_loop_t *loop, const char *msg, int err) {
  asyncio_error_context_t c = {0};
  c.message = msg;
  c.error = err;
  asyncio_loop_call_exception_handler(loop, &c);
}

static void p_connection_made(asyncio_transport_t *t, void *inst) {
  stream_t *s = inst;
  s->t = t;
  s->peerlen = sizeof s->peer;
  if (asyncio_transport_get_peername(t, (struct sockaddr *)&s->peer, &s->peerlen) < 0)
    s->peerlen = 0;
  s->socklen = sizeof s->sock;
  if (asyncio_transport_get_sockname(t, (struct sockaddr *)&s->sock, &s->socklen) < 0)
    s->socklen = 0;
  if (s->handler) {
    int rc = asyncio_loop_create_task(s->loop, NULL, handler_main, s, NULL);
    if (rc < 0) {
      report(s->loop, "start_server: could not start the client_connected_cb task", rc);
      s->handler_owned = 0;
      s->r.live = s->w.live = 0;
      s->closed = 1;
      asyncio_transport_close(t);
      return;
    }
    s->task_ref = 1;
  }
}

static void p_connection_lost(asyncio_transport_t *t, int error, void *inst) {
  (void)t;
  stream_t *s = inst;
  s->t = NULL;
  s->attached = 0;
  s->lost = 1;
  s->lost_err = error;
  s->paused = 0;
  if (error) {
    if (!s->exc) s->exc = error;
  } else {
    s->eof = 1;
  }
  wake_reader(s);
  s->wpaused = 0;
  wake_all(&s->drainq);
  wake_all(&s->closeq);
  if (s->on_lost) s->on_lost(s->lost_arg, error);
  maybe_free(s);
}

static void p_pause_writing(asyncio_transport_t *t, void *inst) {
  (void)t;
  ((stream_t *)inst)->wpaused = 1;
}

static void p_resume_writing(asyncio_transport_t *t, void *inst) {
  (void)t;
  stream_t *s = inst;
  s->wpaused = 0;
  wake_all(&s->drainq);
}

static bool p_eof_received(asyncio_transport_t *t, void *inst) {
  (void)t;
  stream_t *s = inst;
  s->eof = 1;
  wake_reader(s);
  return true; /* half-closed: the writer may still write (Python returns True) */
}

static int p_get_buffer(asyncio_transport_t *t, ssize_t hint, void **bufp, size_t *len,
                        void *inst) {
  (void)t, (void)hint;
  stream_t *s = inst;
  if (s->dptr && s->rw && s->rw->parked && s->start == s->end &&
      s->dgot < s->dlen) {
    s->direct_now = 1;
    *bufp = s->dptr + s->dgot;
    *len = s->dlen - s->dgot;
    return 0;
  }
  s->direct_now = 0;
  if (!s->r.live) s->start = s->end = 0; /* nobody reads: discard */
  int rc = make_room(s, MIN_ROOM);
  if (rc < 0 && s->cap == s->end) return rc;
  *bufp = s->buf + s->end;
  *len = s->cap - s->end;
  return 0;
}

static void p_buffer_updated(asyncio_transport_t *t, size_t n, void *inst) {
  stream_t *s = inst;
  if (s->direct_now) {
    s->direct_now = 0;
    s->dgot += n;
    if (s->dgot >= s->dneed) wake_reader(s);
    return;
  }
  if (!s->r.live) return;
  s->end += n;
  size_t b = buffered(s);
  bool over = b > 2 * s->limit;
  if (b >= s->want || over) wake_reader(s);
  if (over && !s->paused) {
    /* StreamReader.feed_data: pause_reading past 2 * limit */
    if (asyncio_transport_pause_reading(t) == 0) s->paused = 1;
  }
}

static const asyncio_protocol_t stream_protocol = {
    .connection_made = p_connection_made,
    .connection_lost = p_connection_lost,
    .pause_writing = p_pause_writing,
    .resume_writing = p_resume_writing,
    .eof_received = p_eof_received,
    .get_buffer = p_get_buffer,
    .buffer_updated = p_buffer_updated,
};

/* ---- opening connections ------------------------------------------------------------ */

typedef struct client_ctx {
  asyncio_loop_t *loop;
  size_t limit;
  stream_t *s;
} client_ctx_t;

static int client_factory(void *arg, const asyncio_protocol_t **proto, void **inst) {
  client_ctx_t *c = arg;
  if (c->s) return -EINVAL; /* one connection per call */
  c->s = stream_new(c->loop, c->limit);
  if (!c->s) return -ENOMEM;
  c->s->creating = 1;
  *proto = &stream_protocol;
  *inst = c->s;
  return 0;
}

/* The caller never got the handles: let the stream go with its transport. */
static void abandon(stream_t *s) {
  s->r.live = s->w.live = 0;
  if (s->t && !s->closed) {
    s->closed = 1;
    asyncio_transport_close(s->t);
  }
  maybe_free(s);
}

static int open_common(const char *host, int port, bool unix_, const char *path,
                       const asyncio_stream_options_t *o, asyncio_stream_reader_t **reader,
                       asyncio_stream_writer_t **writer) {
  if (reader) *reader = NULL; /* NULL on every error, the other one missing too */
  if (writer) *writer = NULL;
  /* create_connection clears it too, but may not be reached. */
  if (o && o->connection && o->connection->ssl_verify_code) *o->connection->ssl_verify_code = 0;
  if (!reader || !writer) return -EINVAL;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  if (!loop || !loop->current) return ASYNCIO_ENOTASK;
  client_ctx_t c = {loop, o ? o->limit : 0, NULL};
  const asyncio_connection_options_t *co = o ? o->connection : NULL;
  asyncio_transport_t *t = NULL;
  int rc = unix_ ? asyncio_loop_create_unix_connection(loop, client_factory, &c, path, co, &t, NULL)
                : asyncio_loop_create_connection(loop, client_factory, &c, host, port, co, &t,
                                                 NULL);
  if (rc < 0) {
    if (c.s) abandon(c.s);
    return rc;
  }
  c.s->creating = 0;
  *reader = &c.s->r;
  *writer = &c.s->w;
  return 0;
}

ASYNCIO_API int asyncio_open_connection(const char *host, int port,
                                        const asyncio_stream_options_t *options,
                                        asyncio_stream_reader_t **reader,
                                        asyncio_stream_writer_t **writer) {
  return open_common(host, port, false, NULL, options, reader, writer);
}

ASYNCIO_API int asyncio_open_unix_connection(const char *path,
                                             const asyncio_stream_options_t *options,
                                             asyncio_stream_reader_t **reader,
                                             asyncio_stream_writer_t **writer) {
  /*
   * A NULL path is fine with sock= (Python: open_unix_connection(sock=s));
   * create_unix_connection checks that exactly one of them is given.
   */
  return open_common(NULL, 0, true, path, options, reader, writer);
}

/*
 * subprocess.c: a stream over one end of a pipe to a child (Python's
 * SubprocessStreamProtocol makes a StreamReader for stdout / stderr and a
 * StreamWriter for stdin).  fd (non-blocking) becomes a read or write pipe
 * transport; only the matching handle is live (*r or *w; the other is
 * NULL).  on_lost(arg, error) runs from connection_lost.  Suspends until
 * connection_made.  On error *fd_taken tells whether fd is gone with the
 * transport.  *t is the transport, valid until on_lost runs.
 */
int asyncio__stream_open_pipe(asyncio_loop_t *loop, int fd, int write, size_t limit,
                              void (*on_lost)(void *arg, int error), void *arg,
                              asyncio_transport_t **t, asyncio_stream_reader_t **r,
                              asyncio_stream_writer_t **w, int *fd_taken);
int asyncio__stream_open_pipe(asyncio_loop_t *loop, int fd, int write, size_t limit,
                              void (*on_lost)(void *arg, int error), void *arg,
                              asyncio_transport_t **t, asyncio_stream_reader_t **r,
                              asyncio_stream_writer_t **w, int *fd_taken) {
  *r = NULL;
  *w = NULL;
  *t = NULL;
  *fd_taken = 0;
  client_ctx_t c = {loop, limit, NULL};
  int rc = asyncio__transport_make_and_wait(
      loop, fd, write ? ASYNCIO__TK_WRITE_PIPE : ASYNCIO__TK_READ_PIPE, client_factory, &c, t,
      NULL, fd_taken);
  if (rc < 0) {
    if (c.s) abandon(c.s);
    return rc;
  }
  /* The unused handle goes without closing anything. */
  if (write) {
    c.s->r.live = 0;
    *w = &c.s->w;
  } else {
    c.s->w.live = 0;
    *r = &c.s->r;
  }
  c.s->on_lost = on_lost;
  c.s->lost_arg = arg;
  return 0; /* still creating: asyncio__stream_pipe_handed when the process is handed out */
}

void asyncio__stream_pipe_handed(asyncio_stream_reader_t *r, asyncio_stream_writer_t *w) {
  if (r) R2S(r)->creating = 0;
  if (w) W2S(w)->creating = 0;
}

/* ---- servers ------------------------------------------------------------------------- */

/*
 * What a server's factory needs.  It goes with its server
 * (asyncio__server_on_destroy); until the server exists it is a loop
 * resource, so a loop closed while start_server is suspended frees it.
 */
typedef struct server_ctx {
  asyncio__res_t res;
  asyncio_loop_t *loop;
  asyncio_stream_handler_fn handler;
  void *arg;
  size_t limit;
} server_ctx_t;

static void ctx_destroy(asyncio__res_t *r) {
  server_ctx_t *c = (server_ctx_t *)r;
  asyncio__res_unlink(c->loop, r);
  asyncio__free(c, sizeof *c);
}

/* The server stopped for good: no factory call can come any more. */
static void ctx_server_gone(void *arg) {
  server_ctx_t *c = arg;
  asyncio__free(c, sizeof *c);
}

static int server_factory(void *arg, const asyncio_protocol_t **proto, void **inst) {
  server_ctx_t *c = arg;
  stream_t *s = stream_new(c->loop, c->limit);
  if (!s) return -ENOMEM;
  s->handler = c->handler;
  s->harg = c->arg;
  s->handler_owned = 1;
  *proto = &stream_protocol;
  *inst = s;
  return 0;
}

/* client_connected_cb as a task; then the library's handles go. */
static int handler_main(void *arg) {
  stream_t *s = arg;
  int rc = s->handler(&s->r, &s->w, s->harg);
  s->task_ref = 0;
  if (s->handler_owned) {
    /* A handle still used by a task the handler left behind stays (the
     * stream is then freed at loop close); the others go now. */
    if (s->r.live && !s->rw) {
      s->r.live = 0;
      if (s->paused && s->t) asyncio_transport_resume_reading(s->t);
      s->paused = 0;
    }
    if (s->w.live && !s->wbusy) {
      s->w.live = 0;
      if (s->t && !s->closed) {
        s->closed = 1;
        asyncio_transport_close(s->t);
      }
    }
  }
  maybe_free(s);
  return rc;
}

static int start_common(asyncio_stream_handler_fn handler, void *arg, const char *host, int port,
                        bool unix_, const char *path, const asyncio_stream_options_t *o,
                        asyncio_server_t **server) {
  if (server) *server = NULL; /* NULL on every error, as create_server */
  if (!handler || !server) return -EINVAL;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  if (!loop || !loop->current) return ASYNCIO_ENOTASK;
  asyncio__net_t *net;
  int rc = asyncio__net_get(loop, &net);
  if (rc) return rc;
  server_ctx_t *c = asyncio__calloc(sizeof *c);
  if (!c) return -ENOMEM;
  c->loop = loop;
  c->handler = handler;
  c->arg = arg;
  c->limit = o ? o->limit : 0;
  c->res.destroy = ctx_destroy;
  asyncio__res_link(loop, &c->res);
  const asyncio_server_options_t *so = o ? o->server : NULL;
  asyncio_server_t *srv = NULL;
  rc = unix_ ? asyncio_loop_create_unix_server(loop, server_factory, c, path, so, &srv)
             : asyncio_loop_create_server(loop, server_factory, c, host, port, so, &srv);
  if (rc < 0) {
    ctx_destroy(&c->res);
    return rc;
  }
  /* From now on the server owns the context. */
  asyncio__res_unlink(loop, &c->res);
  asyncio__server_on_destroy(srv, ctx_server_gone, c);
  *server = srv;
  return 0;
}

ASYNCIO_API int asyncio_start_server(asyncio_stream_handler_fn handler, void *arg,
                                     const char *host, int port,
                                     const asyncio_stream_options_t *options,
                                     asyncio_server_t **server) {
  return start_common(handler, arg, host, port, false, NULL, options, server);
}

ASYNCIO_API int asyncio_start_unix_server(asyncio_stream_handler_fn handler, void *arg,
                                          const char *path,
                                          const asyncio_stream_options_t *options,
                                          asyncio_server_t **server) {
  /* As open_unix_connection: a NULL path is fine with sock= (Python:
   * start_unix_server(cb, sock=s)); create_unix_server wants exactly one. */
  return start_common(handler, arg, NULL, 0, true, path, options, server);
}

static int writer_check(const asyncio_stream_writer_t *w, stream_t **out);

ASYNCIO_API int asyncio_stream_detach(asyncio_stream_writer_t *writer) {
  stream_t *s;
  int rc = writer_check(writer, &s);
  if (rc) return rc;
  if (!s->handler) return -EINVAL;
  s->handler_owned = 0;
  return 0;
}

/* ---- StreamReader ------------------------------------------------------------------- */

/* Entry of every reader call: 0 or an error; the previous call's loan ends. */
static int reader_enter(asyncio_stream_reader_t *r, stream_t **out) {
  if (!r || !r->live) return -EINVAL;
  stream_t *s = R2S(r);
  if (s->orphan) return ASYNCIO_ECLOSED;
  int rc = asyncio__check_owner(s->loop);
  if (rc) return rc;
  if (s->rw) return ASYNCIO_EINVALIDSTATE; /* "... already waiting for incoming data" */
  release_borrow(s);
  *out = s;
  return 0;
}

/*
 * StreamReader._wait_for_data, with an optional direct destination
 * (dst, dlen; woken when dneed bytes went there).  Returns 0 with the
 * bytes written to dst in *got, or -ECANCELED / ASYNCIO_ENOTASK (*got
 * may still be > 0 after a cancellation).
 */
static int reader_wait(stream_t *s, size_t want, char *dst, size_t dlen, size_t dneed,
                       size_t *got) {
  *got = 0;
  int rc = can_wait(s);
  if (rc) return rc;
  if (s->paused && s->t) {
    s->paused = 0;
    asyncio_transport_resume_reading(s->t);
  }
  s->rw = s->loop->current;
  s->want = want;
  s->dptr = dlen ? dst : NULL;
  s->dlen = dlen;
  s->dgot = 0;
  s->dneed = dneed;
  rc = asyncio__task_park(s->rw, "stream data");
  /* Not reached if the loop was closed meanwhile (the task is destroyed). */
  s->rw = NULL;
  s->dptr = NULL;
  s->direct_now = 0;
  *got = s->dgot;
  s->dgot = s->dlen = 0;
  return rc;
}

ASYNCIO_API ssize_t asyncio_stream_read(asyncio_stream_reader_t *reader, void *buf, size_t n) {
  if (!buf && n) return -EINVAL;
  stream_t *s;
  int rc = reader_enter(reader, &s);
  if (rc) return rc;
  if (!n) return buffered(s) ? 0 : s->exc; /* Python: the error even for read(0) */
  if (n > SSIZE_MAX) n = SSIZE_MAX;
  for (;;) {
    size_t b = buffered(s);
    if (b) {
      size_t k = b < n ? b : n;
      memcpy(buf, s->buf + s->start, k);
      s->start += k;
      if (s->start == s->end) s->start = s->end = 0;
      maybe_resume(s);
      return (ssize_t)k;
    }
    if (s->exc) return s->exc;
    if (s->eof) return 0;
    size_t got;
    rc = reader_wait(s, 1, buf, n, 1, &got);
    if (rc < 0) {
      unread(s, buf, got);
      return rc;
    }
    if (got) return (ssize_t)got;
  }
}

ASYNCIO_API int asyncio_stream_readexactly(asyncio_stream_reader_t *reader, void *buf, size_t n) {
  if (!buf && n) return -EINVAL;
  stream_t *s;
  int rc = reader_enter(reader, &s);
  if (rc) return rc;
  if (!n) return buffered(s) ? 0 : s->exc; /* as read(0) */
  char *dst = buf;
  size_t got = 0;
  while (got < n) {
    size_t b = buffered(s);
    if (b) {
      size_t k = b < n - got ? b : n - got;
      memcpy(dst + got, s->buf + s->start, k);
      s->start += k;
      got += k;
      if (s->start == s->end) s->start = s->end = 0;
      maybe_resume(s);
      continue;
    }
    if (s->exc) {
      unread(s, dst, got);
      return s->exc;
    }
    if (s->eof) {
      s->partial = NULL;
      s->partial_len = got; /* IncompleteReadError.partial, in the caller's buffer */
      s->residue = 1;
      return ASYNCIO_EINCOMPLETEREAD;
    }
    size_t more;
    size_t left = n - got;
    rc = reader_wait(s, left, dst + got, left, left, &more);
    got += more;
    if (rc < 0) {
      unread(s, dst, got);
      return rc;
    }
  }
  return 0;
}

static void *grow(void *p, size_t *cap, size_t need) {
  size_t ncap = *cap ? *cap : READ_ALL_CHUNK;
  while (ncap < need) ncap *= 2;
  void *np = asyncio__realloc(p, *cap, ncap);
  if (np) *cap = ncap;
  return np;
}

ASYNCIO_API int asyncio_stream_read_all(asyncio_stream_reader_t *reader, char **data,
                                        size_t *len) {
  if (!data || !len) return -EINVAL;
  stream_t *s;
  int rc = reader_enter(reader, &s);
  if (rc) return rc;
  char *out = NULL;
  size_t olen = 0, ocap = 0;
  bool conn_err = false;
  for (;;) {
    size_t b = buffered(s);
    if (b) {
      if (ocap < olen + b + 1) {
        char *np = grow(out, &ocap, olen + b + 1);
        if (!np) {
          rc = -ENOMEM;
          break;
        }
        out = np;
      }
      memcpy(out + olen, s->buf + s->start, b);
      olen += b;
      s->start = s->end = 0;
      maybe_resume(s);
    }
    if (s->exc) {
      rc = s->exc;
      conn_err = true;
      break;
    }
    if (s->eof) break;
    if (ocap - olen < READ_ALL_CHUNK + 1) {
      char *np = grow(out, &ocap, olen + READ_ALL_CHUNK + 1);
      if (!np) {
        rc = -ENOMEM;
        break;
      }
      out = np;
    }
    size_t room = ocap - olen - 1, got;
    s->rall = out;
    s->rall_cap = ocap;
    rc = reader_wait(s, 1, out + olen, room, room, &got);
    s->rall = NULL;
    olen += got;
    if (rc < 0) break;
  }
  if (rc == 0) {
    /* Exactly len + 1 bytes, as asyncio_stream_free_data expects. */
    char *np = out ? asyncio__realloc(out, ocap, olen + 1) : asyncio__alloc(1);
    if (!np) {
      rc = -ENOMEM;
    } else {
      np[olen] = 0;
      *data = np;
      *len = olen;
      return 0;
    }
  }
  /* Cancelled (a timeout scope, say), out of memory, or unable to wait (no
   * task, another loop's task): the bytes go back, so the call consumed
   * nothing, as the other reader calls.  After a connection error they are
   * dropped, as Python's read(-1) drops them. */
  if (!conn_err) unread(s, out, olen);
  if (out) asyncio__free(out, ocap);
  return rc;
}

ASYNCIO_API void asyncio_stream_free_data(char *data, size_t len) {
  if (data) asyncio__free(data, len + 1);
}

/*
 * Finds the shortest match of any separator at or after offset.  When two
 * matches end at the same byte the shorter separator wins, whatever the
 * caller's order: Python sorts the tuple by length and keeps the first of
 * equal ends, and match_start (what LimitOverrun compares with the limit
 * and reports as consumed) is that separator's start.
 */
static bool find_sep(const stream_t *s, size_t offset, const void *const *seps,
                     const size_t *seplens, size_t nseps, size_t *mstart, size_t *mend) {
  const char *base = s->buf + s->start;
  size_t blen = buffered(s);
  bool found = false;
  for (size_t i = 0; i < nseps; i++) {
    const char *hit;
    if (seplens[i] == 1)
      hit = memchr(base + offset, *(const char *)seps[i], blen - offset);
    else
      hit = memmem(base + offset, blen - offset, seps[i], seplens[i]);
    if (!hit) continue;
    size_t st = (size_t)(hit - base), en = st + seplens[i];
    if (!found || en < *mend || (en == *mend && st > *mstart)) {
      *mstart = st;
      *mend = en;
      found = true;
    }
  }
  return found;
}

static ssize_t readuntil_impl(stream_t *s, const void *const *seps, const size_t *seplens,
                              size_t nseps, const char **out) {
  size_t minlen = SIZE_MAX, maxlen = 0;
  for (size_t i = 0; i < nseps; i++) {
    if (seplens[i] < minlen) minlen = seplens[i];
    if (seplens[i] > maxlen) maxlen = seplens[i];
  }
  size_t offset = 0, mstart = 0, mend = 0;
  for (;;) {
    size_t blen = buffered(s);
    if (blen - offset >= minlen) {
      if (find_sep(s, offset, seps, seplens, nseps, &mstart, &mend)) break;
      offset = blen + 1 > maxlen ? blen + 1 - maxlen : 0;
      if (offset > s->limit) {
        s->consumed = offset; /* "Separator is not found, and chunk exceed the limit" */
        s->residue = 1;
        return ASYNCIO_ELIMITOVERRUN;
      }
    }
    if (s->exc) return s->exc;
    if (s->eof) {
      s->partial = s->buf + s->start;
      s->partial_len = blen;
      s->residue = 1;
      s->start = s->end;
      s->borrowed = 1;
      maybe_resume(s);
      return ASYNCIO_EINCOMPLETEREAD;
    }
    size_t got;
    int rc = reader_wait(s, blen + 1, NULL, 0, 0, &got);
    if (rc < 0) return rc;
  }
  if (mstart > s->limit) {
    s->consumed = mstart; /* "Separator is found, but chunk is longer than limit" */
    s->residue = 1;
    return ASYNCIO_ELIMITOVERRUN;
  }
  *out = s->buf + s->start;
  s->start += mend;
  s->borrowed = 1;
  maybe_resume(s);
  return (ssize_t)mend;
}

ASYNCIO_API ssize_t asyncio_stream_readuntil_any(asyncio_stream_reader_t *reader,
                                                 const void *const *seps, const size_t *seplens,
                                                 size_t nseps, const char **out) {
  if (!seps || !seplens || !nseps || !out) return -EINVAL;
  for (size_t i = 0; i < nseps; i++)
    if (!seps[i] || !seplens[i]) return -EINVAL;
  stream_t *s;
  int rc = reader_enter(reader, &s);
  if (rc) return rc;
  *out = NULL;
  return readuntil_impl(s, seps, seplens, nseps, out);
}

ASYNCIO_API ssize_t asyncio_stream_readuntil(asyncio_stream_reader_t *reader, const void *sep,
                                             size_t seplen, const char **out) {
  if (!sep || !seplen) return -EINVAL;
  const void *seps[1] = {sep};
  return asyncio_stream_readuntil_any(reader, seps, &seplen, 1, out);
}

ASYNCIO_API ssize_t asyncio_stream_readline(asyncio_stream_reader_t *reader, const char **line) {
  if (!line) return -EINVAL;
  stream_t *s;
  int rc = reader_enter(reader, &s);
  if (rc) return rc;
  *line = NULL;
  static const char nl = '\n';
  const void *seps[1] = {&nl};
  size_t one = 1;
  ssize_t n = readuntil_impl(s, seps, &one, 1, line);
  if (n == ASYNCIO_EINCOMPLETEREAD) {
    *line = s->partial;
    n = (ssize_t)s->partial_len;
    s->partial_len = 0;
  } else if (n == ASYNCIO_ELIMITOVERRUN) {
    /* Python: drop through the separator if it is there, else everything. */
    if (s->consumed < buffered(s) && s->buf[s->start + s->consumed] == '\n')
      s->start += s->consumed + 1;
    else
      s->start = s->end;
    maybe_resume(s);
  }
  return n;
}

ASYNCIO_API int asyncio_stream_partial(const asyncio_stream_reader_t *reader, const char **data,
                                       size_t *len) {
  if (!reader || !reader->live || !data || !len) return -EINVAL;
  const stream_t *s = CR2S(reader);
  *data = s->partial;
  *len = s->partial_len;
  return 0;
}

ASYNCIO_API size_t asyncio_stream_overrun_consumed(const asyncio_stream_reader_t *reader) {
  return reader && reader->live ? CR2S(reader)->consumed : 0;
}

ASYNCIO_API bool asyncio_stream_at_eof(const asyncio_stream_reader_t *reader) {
  if (!reader || !reader->live) return false;
  const stream_t *s = CR2S(reader);
  return s->eof && s->start == s->end;
}

ASYNCIO_API size_t asyncio_stream_buffered(const asyncio_stream_reader_t *reader) {
  return reader && reader->live ? buffered(CR2S(reader)) : 0;
}

ASYNCIO_API int asyncio_stream_reader_free(asyncio_stream_reader_t *reader) {
  if (!reader || !reader->live) return -EINVAL;
  stream_t *s = R2S(reader);
  if (!s->orphan) {
    int rc = asyncio__check_owner(s->loop);
    if (rc) return rc;
    if (s->rw) return -EBUSY;
    release_borrow(s);
    s->start = s->end = 0;
    if (s->paused && s->t) asyncio_transport_resume_reading(s->t);
    s->paused = 0;
  }
  reader->live = 0;
  maybe_free(s);
  return 0;
}

/* ---- StreamWriter ------------------------------------------------------------------ */

static int writer_check(const asyncio_stream_writer_t *w, stream_t **out) {
  if (!w || !w->live) return -EINVAL;
  stream_t *s = W2S(w);
  if (s->orphan) return ASYNCIO_ECLOSED;
  int rc = asyncio__check_owner(s->loop);
  if (rc) return rc;
  *out = s;
  return 0;
}

/* Why a write cannot go through, or 0. */
static int write_state(const stream_t *s) {
  if (s->lost) return s->lost_err ? s->lost_err : ASYNCIO_ECLOSED;
  if (s->closed) return ASYNCIO_ECLOSED;
  if (s->eof_written) return -EPIPE;
  if (!s->t || asyncio_transport_is_closing(s->t)) return ASYNCIO_ECLOSED;
  return 0;
}

ASYNCIO_API int asyncio_stream_write(asyncio_stream_writer_t *writer, const void *data, size_t n) {
  if (!data && n) return -EINVAL;
  stream_t *s;
  int rc = writer_check(writer, &s);
  if (rc) return rc;
  if ((rc = write_state(s))) return rc;
  return asyncio_transport_write(s->t, data, n);
}

ASYNCIO_API int asyncio_stream_writelines(asyncio_stream_writer_t *writer, const struct iovec *iov,
                                          size_t iovcnt) {
  if ((!iov && iovcnt) || iovcnt > INT_MAX) return -EINVAL;
  stream_t *s;
  int rc = writer_check(writer, &s);
  if (rc) return rc;
  for (size_t i = 0; i < iovcnt; i++)
    if (!iov[i].iov_base && iov[i].iov_len) return -EINVAL;
  if ((rc = write_state(s))) return rc;
  if (!iovcnt) return 0;
  return asyncio_transport_writelines(s->t, iov, (int)iovcnt);
}

/* Waits on one of the writer's queues: 0 when woken, -ECANCELED. */
static int writer_wait(stream_t *s, asyncio__waitq_t *q) {
  asyncio__waiter_t w;
  asyncio__waiter_init(&w, s->loop);
  asyncio__waitq_push(q, &w);
  s->wbusy++;
  int rc = await_waiter(&w);
  s->wbusy--;
  asyncio__waitq_remove(q, &w);
  return rc;
}

ASYNCIO_API int asyncio_stream_drain(asyncio_stream_writer_t *writer) {
  stream_t *s;
  int rc = writer_check(writer, &s);
  if (rc) return rc;
  if (s->exc) return s->exc; /* the reader's exception first, as Python */
  if (!s->t || s->closed || asyncio_transport_is_closing(s->t)) {
    /* Python yields once so that connection_lost can run. */
    if ((rc = can_wait(s))) return rc;
    s->wbusy++;
    rc = asyncio_sleep(0);
    s->wbusy--;
    if (rc < 0) return rc;
    if (s->exc) return s->exc;
  }
  if (s->lost) return s->lost_err ? s->lost_err : -ECONNRESET; /* "Connection lost" */
  if (!s->wpaused) return 0;
  if ((rc = can_wait(s))) return rc;
  rc = writer_wait(s, &s->drainq);
  if (rc < 0) return rc;
  if (s->lost && s->lost_err) return s->lost_err;
  return 0;
}

/* The stream moves to the app transport as soon as it exists (see asyncio__tls_start). */
static void tls_swapped(void *arg, asyncio_transport_t *app) {
  stream_t *s = arg;
  s->t = app;
  /* A fresh transport: neither paused for reading by us nor for writing. */
  s->paused = 0;
  s->wpaused = 0;
}

ASYNCIO_API int asyncio_stream_start_tls(asyncio_stream_writer_t *writer, struct ssl_ctx_st *ctx,
                                         const asyncio_start_tls_options_t *options) {
  /* Cleared before anything can fail (X509_V_OK), as asyncio_loop_start_tls does. */
  if (options && options->ssl_verify_code) *options->ssl_verify_code = 0;
  stream_t *s;
  int rc = writer_check(writer, &s);
  if (rc) return rc;
  if (!ctx) return -EINVAL;
  if ((rc = can_wait(s))) return rc;
  /* A parked reader would be woken by plaintext and ciphertext alike. */
  if (s->rw) return ASYNCIO_EINVALIDSTATE;
  rc = asyncio_stream_drain(writer);
  if (rc) return rc;
  if (!s->t || s->closed || s->lost) return -EINVAL;
  if (s->rw) return ASYNCIO_EINVALIDSTATE; /* one started reading while drain waited */
  asyncio_start_tls_options_t o = {0};
  if (options) o = *options;
  o.server_side = s->handler != NULL; /* Python: _client_connected_cb is not None */
  if (o.server_side) o.server_hostname = NULL;
  asyncio_transport_t *nt;
  return asyncio__tls_start(s->loop, s->t, ctx, &o, tls_swapped, s, &nt);
}

ASYNCIO_API int asyncio_stream_write_eof(asyncio_stream_writer_t *writer) {
  stream_t *s;
  int rc = writer_check(writer, &s);
  if (rc) return rc;
  if (!s->t) return 0;
  rc = asyncio_transport_write_eof(s->t);
  if (rc == 0) s->eof_written = 1;
  return rc;
}

ASYNCIO_API bool asyncio_stream_can_write_eof(const asyncio_stream_writer_t *writer) {
  if (!writer || !writer->live) return false;
  const stream_t *s = CW2S(writer);
  return !s->orphan && s->t && asyncio_transport_can_write_eof(s->t);
}

ASYNCIO_API int asyncio_stream_close(asyncio_stream_writer_t *writer) {
  stream_t *s;
  int rc = writer_check(writer, &s);
  if (rc) return rc == ASYNCIO_ECLOSED ? 0 : rc;
  if (s->closed) return 0;
  s->closed = 1;
  if (s->t) asyncio_transport_close(s->t);
  return 0;
}

ASYNCIO_API bool asyncio_stream_is_closing(const asyncio_stream_writer_t *writer) {
  if (!writer || !writer->live) return true;
  const stream_t *s = CW2S(writer);
  return s->orphan || s->closed || !s->t || asyncio_transport_is_closing(s->t);
}

ASYNCIO_API int asyncio_stream_wait_closed(asyncio_stream_writer_t *writer) {
  stream_t *s;
  int rc = writer_check(writer, &s);
  if (rc) return rc;
  if (s->lost) return s->lost_err;
  if ((rc = can_wait(s))) return rc;
  rc = writer_wait(s, &s->closeq);
  if (rc < 0) return rc;
  return s->lost_err;
}

ASYNCIO_API asyncio_transport_t *asyncio_stream_transport(const asyncio_stream_writer_t *writer) {
  if (!writer || !writer->live) return NULL;
  const stream_t *s = CW2S(writer);
  return s->orphan ? NULL : s->t;
}

static int copy_addr(const struct sockaddr_storage *ss, socklen_t sl, struct sockaddr *addr,
                     socklen_t *len) {
  if (!sl) return -ENOTCONN;
  socklen_t k = *len < sl ? *len : sl;
  memcpy(addr, ss, k);
  *len = sl;
  return 0;
}

ASYNCIO_API int asyncio_stream_get_peername(const asyncio_stream_writer_t *writer,
                                            struct sockaddr *addr, socklen_t *len) {
  if (!writer || !writer->live || !addr || !len) return -EINVAL;
  const stream_t *s = CW2S(writer);
  return copy_addr(&s->peer, s->peerlen, addr, len);
}

ASYNCIO_API int asyncio_stream_get_sockname(const asyncio_stream_writer_t *writer,
                                            struct sockaddr *addr, socklen_t *len) {
  if (!writer || !writer->live || !addr || !len) return -EINVAL;
  const stream_t *s = CW2S(writer);
  return copy_addr(&s->sock, s->socklen, addr, len);
}

ASYNCIO_API int asyncio_stream_writer_free(asyncio_stream_writer_t *writer) {
  if (!writer || !writer->live) return -EINVAL;
  stream_t *s = W2S(writer);
  if (!s->orphan) {
    int rc = asyncio__check_owner(s->loop);
    if (rc) return rc;
    if (s->wbusy) return -EBUSY;
    if (s->t && !s->closed) {
      s->closed = 1;
      asyncio_transport_close(s->t);
    }
  }
  writer->live = 0;
  maybe_free(s);
  return 0;
}
