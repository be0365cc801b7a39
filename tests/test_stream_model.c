/*
 * test_stream_model.c - the StreamReader's reading calls against a reference
 * model (include/asyncio/streams.h; Python: StreamReader in
 * Lib/asyncio/streams.py, 3.13 for readuntil with several separators).
 *
 * Each run generates a byte stream full of separator fragments (with NUL
 * and 0xff among the filler), cuts it into chunks, and has a real peer send
 * it: the raw end of a Unix socketpair or of a TCP loopback connection
 * (write(2); shutdown, close or a reset at the end), or a library
 * StreamWriter on the other end (write + drain; write_eof, close or abort).
 * The main task reads with a random sequence of read(n) (n = 0 and n larger
 * than what is there included), read(), readexactly(n), readline,
 * readuntil and readuntil_any (separators of different lengths with common
 * prefixes, in random order), under a random limit of 4..64 bytes or the
 * default.  The model knows the whole stream and which of it was sent, and
 * computes every call's outcome: the bytes, LimitOverrun and its consumed
 * count, IncompleteRead and its partial bytes, EOF, the connection's error,
 * a cancellation, what stays buffered and at_eof.  The first difference
 * fails the case with the seed, the step, the call and both outcomes.
 *
 * The model is Python's, with the deviations streams.h documents: the
 * connection's error comes once the data received before it no longer
 * serves the call, a call that fails with an error or is cancelled consumes
 * nothing (read() drops what it had gathered on an error, as read(-1)
 * does), readline's ValueError keeps the LimitOverrun code.
 *
 * Lockstep, so that every outcome is determined.  LimitOverrun's consumed
 * count is the buffer length when the reader last looked, so the chunks a
 * waiting call gets must reach it one at a time, each looked at before the
 * next comes:
 *  - Before a call the test may send a chunk or two (and the end) itself,
 *    and waits until the reader's buffer holds them; only while the buffer
 *    is at most `limit`, when the transport is certainly not paused.  With
 *    the default limit, now and then a burst of 12..16 KiB.
 *  - A call runs with a feeder task.  When the model says the call waits,
 *    the feeder sends what the model says the call will take, one chunk at
 *    a time: after each it waits until the bytes were received and then
 *    yields once, so the reader, woken by them, has run before the next
 *    chunk (asyncio_sleep(0) queues the feeder behind it).  read(n),
 *    readexactly and read() receive into the caller's buffer then (direct
 *    mode), so for them the feeder watches the socket's queue instead of
 *    the buffer; their results do not depend on how the chunks were cut.
 *  - One waiting call in 16 is cancelled partway through, and a call that
 *    would wait for ever (the stream ends without EOF) is cancelled once the
 *    last chunk is in: either must consume nothing.
 *  - The feeder also bounds every call: one that waits when the model says
 *    it can return, or returns early, fails the case instead of hanging.
 * After each call the reader's buffer must hold what the model's does, and
 * what readline / readuntil lent out must be intact when the next call
 * starts.  Fixed seeds and our own PRNG: a failure reproduces with its seed.
 */
#include "net_helpers.h"
#include "model_rng.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/ioctl.h>

typedef asyncio_stream_reader_t reader_t;
typedef asyncio_stream_writer_t writer_t;

/* ---- the stream --------------------------------------------------------------------- */

typedef struct sep {
  const char *s;
  size_t n;
} sep_t;

/* Built from the bytes the stream's tokens are made of, so they overlap: "ab" starts "aba"
 * and "abab", "\n" ends "\r\n" and "b\r\n" (equal ends, different starts). */
static const sep_t g_seps[] = {
    {"\n", 1},  {"\r\n", 2},  {"a", 1},    {"b", 1},    {"ab", 2},    {"ba", 2},
    {"aab", 3}, {"aba", 3},   {"abab", 4}, {"\n\n", 2}, {"b\r\n", 3},
};
#define NSEPS (sizeof g_seps / sizeof g_seps[0])

enum { PEER_UNIX_RAW, PEER_TCP_RAW, PEER_UNIX_STREAM, PEER_TCP_STREAM };
static const char *const g_peer_names[] = {"unix raw", "tcp raw", "unix stream", "tcp stream"};

/* How the peer ends the stream: never, EOF (shutdown / write_eof), EOF by close, a reset. */
enum { END_NONE, END_SHUTDOWN, END_CLOSE, END_RESET };
static const char *const g_end_names[] = {"no end", "shutdown", "close", "reset"};

/*
 * The model: Python's StreamReader over data[pos, sent).  Waiting takes the
 * next event of the plan: a chunk (cend[next] is where it ends) or, after
 * the last one, the end.  During one call `waits` counts the events taken;
 * at `budget` the call is cancelled.
 */
typedef struct model {
  const unsigned char *data;
  size_t len;
  const size_t *cend;
  size_t nchunks;
  int end;
  size_t limit;
  size_t pos, sent, next;
  bool eof, ended;
  int err;
  int waits, budget;
  bool forever; /* the call would wait with nothing left to come */
} model_t;

/* StreamReader._wait_for_data: 0, or -ECANCELED when the call is cancelled instead. */
static int m_wait(model_t *m) {
  if (m->waits == m->budget) return -ECANCELED;
  if (m->next < m->nchunks) {
    m->sent = m->cend[m->next++];
  } else if (!m->ended && m->end != END_NONE) {
    m->ended = true;
    if (m->end == END_RESET)
      m->err = -ECONNRESET;
    else
      m->eof = true;
  } else {
    m->forever = true;
    return -ECANCELED;
  }
  m->waits++;
  return 0;
}

static size_t m_buffered(const model_t *m) { return m->sent - m->pos; }

/* An outcome: the return value, the bytes (data[off, off + n)), LimitOverrun's consumed. */
typedef struct res {
  ssize_t rc;
  size_t off, n, consumed;
  bool eof_line; /* readline's partial line at EOF (it leaves IncompleteRead's residue) */
} res_t;

enum { OP_READ, OP_READEXACTLY, OP_READ_ALL, OP_READLINE, OP_READUNTIL, OP_READUNTIL_ANY };

typedef struct op {
  int kind;
  size_t n;
  const sep_t *seps[3];
  size_t nseps;
} op_t;

static void m_read(model_t *m, size_t n, res_t *e) {
  if (!n) { /* ours: the error only once the buffer is empty */
    e->rc = m_buffered(m) ? 0 : m->err;
    return;
  }
  for (;;) {
    size_t b = m_buffered(m);
    if (b) {
      size_t k = b < n ? b : n;
      e->rc = (ssize_t)k;
      e->off = m->pos;
      e->n = k;
      m->pos += k;
      return;
    }
    if (m->err) {
      e->rc = m->err;
      return;
    }
    if (m->eof) {
      e->rc = 0;
      return;
    }
    if ((e->rc = m_wait(m)) < 0) return;
  }
}

static void m_readexactly(model_t *m, size_t n, res_t *e) {
  if (!n) {
    e->rc = m_buffered(m) ? 0 : m->err;
    return;
  }
  for (;;) {
    size_t b = m_buffered(m);
    if (b >= n) {
      e->rc = 0;
      e->off = m->pos;
      e->n = n;
      m->pos += n;
      return;
    }
    if (m->err) { /* ours: what it had taken goes back */
      e->rc = m->err;
      return;
    }
    if (m->eof) {
      e->rc = ASYNCIO_EINCOMPLETEREAD;
      e->off = m->pos;
      e->n = b;
      m->pos = m->sent;
      return;
    }
    if ((e->rc = m_wait(m)) < 0) return;
  }
}

static void m_read_all(model_t *m, res_t *e) {
  for (;;) {
    if (m->err) { /* what it gathered is dropped, as Python's read(-1) drops it */
      e->rc = m->err;
      m->pos = m->sent;
      return;
    }
    if (m->eof) {
      e->rc = 0;
      e->off = m->pos;
      e->n = m_buffered(m);
      m->pos = m->sent;
      return;
    }
    if ((e->rc = m_wait(m)) < 0) return;
  }
}

/*
 * The earliest end of any separator's first occurrence at or after offset;
 * on equal ends the shorter separator, as Python sorts them by length and
 * keeps the first of equal ends (it decides match_start, which LimitOverrun
 * looks at).
 */
static bool m_find(const model_t *m, const op_t *o, size_t offset, size_t *ms, size_t *me) {
  const unsigned char *base = m->data + m->pos;
  size_t blen = m_buffered(m);
  bool found = false;
  for (size_t i = 0; i < o->nseps; i++) {
    const sep_t *sp = o->seps[i];
    for (size_t st = offset; st + sp->n <= blen; st++) {
      if (memcmp(base + st, sp->s, sp->n)) continue;
      size_t en = st + sp->n;
      if (!found || en < *me || (en == *me && sp->n < *me - *ms)) {
        *ms = st;
        *me = en;
        found = true;
      }
      break;
    }
  }
  return found;
}

static void m_readuntil(model_t *m, const op_t *o, res_t *e) {
  size_t minlen = SIZE_MAX, maxlen = 0;
  for (size_t i = 0; i < o->nseps; i++) {
    if (o->seps[i]->n < minlen) minlen = o->seps[i]->n;
    if (o->seps[i]->n > maxlen) maxlen = o->seps[i]->n;
  }
  size_t offset = 0, ms = 0, me = 0;
  for (;;) {
    size_t blen = m_buffered(m);
    if (blen - offset >= minlen) {
      if (m_find(m, o, offset, &ms, &me)) break;
      offset = blen + 1 > maxlen ? blen + 1 - maxlen : 0;
      if (offset > m->limit) { /* "Separator is not found, and chunk exceed the limit" */
        e->rc = ASYNCIO_ELIMITOVERRUN;
        e->consumed = offset;
        return;
      }
    }
    if (m->err) { /* ours: after looking at the data that came before it */
      e->rc = m->err;
      return;
    }
    if (m->eof) {
      e->rc = ASYNCIO_EINCOMPLETEREAD;
      e->off = m->pos;
      e->n = blen;
      m->pos = m->sent;
      return;
    }
    if ((e->rc = m_wait(m)) < 0) return;
  }
  if (ms > m->limit) { /* "Separator is found, but chunk is longer than limit" */
    e->rc = ASYNCIO_ELIMITOVERRUN;
    e->consumed = ms;
    return;
  }
  e->rc = (ssize_t)me;
  e->off = m->pos;
  e->n = me;
  m->pos += me;
}

static void m_readline(model_t *m, res_t *e) {
  static const sep_t nl = {"\n", 1};
  op_t o = {OP_READUNTIL, 0, {&nl}, 1};
  m_readuntil(m, &o, e);
  if (e->rc == ASYNCIO_EINCOMPLETEREAD) {
    e->rc = (ssize_t)e->n;
    e->eof_line = true;
  } else if (e->rc == ASYNCIO_ELIMITOVERRUN) {
    /* Through the separator when it is where consumed points, else all of it. */
    if (e->consumed < m_buffered(m) && m->data[m->pos + e->consumed] == '\n')
      m->pos += e->consumed + 1;
    else
      m->pos = m->sent;
  }
}

static void m_op(model_t *m, const op_t *o, res_t *e) {
  memset(e, 0, sizeof *e);
  switch (o->kind) {
  case OP_READ:
    m_read(m, o->n, e);
    break;
  case OP_READEXACTLY:
    m_readexactly(m, o->n, e);
    break;
  case OP_READ_ALL:
    m_read_all(m, e);
    break;
  case OP_READLINE:
    m_readline(m, e);
    break;
  default:
    m_readuntil(m, o, e);
  }
}

/* ---- one run ------------------------------------------------------------------------ */

typedef struct run {
  uint64_t seed;
  int kind;
  rng_t rng;
  model_t m;
  unsigned char *data;
  size_t len;
  size_t *cend;
  size_t nchunks;
  size_t limit; /* 0: the default */
  reader_t *r;
  writer_t *w;
  int libfd; /* the reader's socket, while the model has no error */
  /* the peer */
  int raw;      /* raw kinds: our end, -1 once closed */
  reader_t *pr; /* stream kinds: the peer's stream */
  writer_t *pw;
  int pfd;
  asyncio_task_t *self;
  char *rbuf;
  int step, ops, cancels, waited, overruns, incompletes;
  char opname[160];
  /* the current call, for the feeder */
  bool op_done;
  size_t f_next0, f_sent0, f_base;
  int f_nev;
  bool f_cancel, f_bufsync;
  /* what the last readline / readuntil lent out, checked before the next call */
  const char *lent;
  size_t lent_off, lent_n;
} run_t;

static bool is_tcp(const run_t *x) {
  return x->kind == PEER_TCP_RAW || x->kind == PEER_TCP_STREAM;
}
static bool is_raw(const run_t *x) {
  return x->kind == PEER_UNIX_RAW || x->kind == PEER_TCP_RAW;
}

static void failf(run_t *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failf(run_t *x, const char *fmt, ...) {
  if (soft_fail[0]) return;
  int k = snprintf(soft_fail, sizeof soft_fail,
                   "seed %llu (%s, limit %zu, %s, %zu bytes) step %d %s: ",
                   (unsigned long long)x->seed, g_peer_names[x->kind], x->m.limit,
                   g_end_names[x->m.end], x->len, x->step, x->opname);
  if (k < 0 || (size_t)k >= sizeof soft_fail) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(soft_fail + k, sizeof soft_fail - (size_t)k, fmt, ap);
  va_end(ap);
}

/* Escapes up to `max` bytes for a message. */
static const char *esc(char *out, size_t cap, const void *p, size_t n, size_t max) {
  const unsigned char *b = p;
  size_t k = 0;
  for (size_t i = 0; i < n && i < max && k + 5 < cap; i++) {
    unsigned c = b[i];
    if (c == '\n') k += (size_t)snprintf(out + k, cap - k, "\\n");
    else if (c == '\r') k += (size_t)snprintf(out + k, cap - k, "\\r");
    else if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') out[k++] = (char)c;
    else k += (size_t)snprintf(out + k, cap - k, "\\x%02x", c);
  }
  if (n > max && k + 4 < cap) k += (size_t)snprintf(out + k, cap - k, "...");
  out[k] = 0;
  return out;
}

/* An outcome for a message. */
static const char *desc(char *out, size_t cap, ssize_t rc, size_t n, size_t consumed) {
  if (rc == ASYNCIO_ELIMITOVERRUN)
    snprintf(out, cap, "LimitOverrun(consumed=%zu)", consumed);
  else if (rc == ASYNCIO_EINCOMPLETEREAD)
    snprintf(out, cap, "IncompleteRead(partial=%zu bytes)", n);
  else if (rc < 0)
    snprintf(out, cap, "%s", asyncio_errname((int)rc));
  else
    snprintf(out, cap, "rc %zd, %zu bytes", rc, n);
  return out;
}

/* Bytes waiting in a socket's receive queue, or -1. */
static int inq(int fd) {
  int n = 0;
  return ioctl(fd, FIONREAD, &n) < 0 ? -1 : n;
}

/*
 * One step of a bounded wait: yields (a bare loop iteration at first, then
 * 1 ms) and says false after ~10 s.  Only a broken library waits that long.
 */
static bool wait_step(int *i) {
  if (++*i > 12000) return false;
  return asyncio_sleep(*i <= 2000 ? 0 : 0.001) == 0;
}

/* ---- the peer ----------------------------------------------------------------------- */

static int open_sock(int fd, size_t limit, reader_t **r, writer_t **w) {
  asyncio_connection_options_t co = {0};
  co.sock = fd;
  co.use_sock = true;
  asyncio_stream_options_t o = {0};
  o.limit = limit;
  o.connection = &co;
  return asyncio_open_connection(NULL, 0, &o, r, w);
}

/* The reader's stream and the peer of x->kind; 0 or an error. */
static int peer_open(run_t *x) {
  x->raw = x->pfd = -1;
  int peer = -1;
  if (!is_tcp(x)) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
    int rc = open_sock(sv[0], x->limit, &x->r, &x->w);
    if (rc < 0) {
      close(sv[0]);
      close(sv[1]);
      return rc;
    }
    peer = sv[1];
  } else {
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_storage ss;
    socklen_t sl = loopback_addr(AF_INET, 0, &ss);
    if (ls < 0 || bind(ls, (struct sockaddr *)&ss, sl) < 0 || listen(ls, 1) < 0 ||
        getsockname(ls, (struct sockaddr *)&ss, &sl) < 0) {
      int e = -errno;
      if (ls >= 0) close(ls);
      return e;
    }
    asyncio_stream_options_t o = {0};
    o.limit = x->limit;
    int rc = asyncio_open_connection("127.0.0.1", addr_port(&ss), &o, &x->r, &x->w);
    if (rc == 0) peer = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    close(ls);
    if (rc < 0) return rc;
    if (peer < 0) return -errno;
    /* Nagle would hold a small chunk back until the last one is acknowledged. */
    int one = 1;
    setsockopt(peer, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  x->libfd = asyncio_transport_get_fd(asyncio_stream_transport(x->w));
  x->pfd = peer;
  if (is_raw(x)) {
    x->raw = peer;
    fcntl(peer, F_SETFL, fcntl(peer, F_GETFL) | O_NONBLOCK);
    return 0;
  }
  int rc = open_sock(peer, 0, &x->pr, &x->pw);
  if (rc < 0) close(peer);
  return rc;
}

static void peer_close(run_t *x) {
  CHECK_RC(asyncio_stream_reader_free(x->r), 0);
  CHECK_RC(asyncio_stream_writer_free(x->w), 0);
  if (x->raw >= 0) close(x->raw);
  if (x->pr) CHECK_RC(asyncio_stream_reader_free(x->pr), 0);
  if (x->pw) CHECK_RC(asyncio_stream_writer_free(x->pw), 0);
}

/* Sends data[from, to). */
static int peer_send(run_t *x, size_t from, size_t to) {
  if (from == to) return 0;
  if (is_raw(x)) {
    int i = 0;
    while (from < to) {
      ssize_t k = write(x->raw, x->data + from, to - from);
      if (k > 0) {
        from += (size_t)k;
        continue;
      }
      /* Non-blocking: a full socket waits for the loop to read, not for ever. */
      if (k < 0 && (errno == EINTR || ((errno == EAGAIN || errno == EWOULDBLOCK) &&
                                       wait_step(&i))))
        continue;
      failf(x, "write to the peer socket: %s", k < 0 ? strerror(errno) : "0");
      return -1;
    }
    return 0;
  }
  int rc = asyncio_stream_write(x->pw, x->data + from, to - from);
  if (rc == 0) rc = asyncio_stream_drain(x->pw);
  if (rc < 0) failf(x, "the peer's write + drain: %s", asyncio_errname(rc));
  return rc < 0 ? -1 : 0;
}

/* Sends chunk ci. */
static int peer_send_chunk(run_t *x, size_t ci) {
  return peer_send(x, ci ? x->cend[ci - 1] : 0, x->cend[ci]);
}

/*
 * Ends the stream as the plan says.  A reset: the peer's socket is closed
 * with unread data in it (a byte we write from the reader's side, the
 * peer's own reading paused), which makes a Unix socket's peer get
 * ECONNRESET; TCP gets SO_LINGER 0 as well, so a RST for sure.
 */
static int peer_end(run_t *x) {
  int rc = 0;
  switch (x->m.end) {
  case END_SHUTDOWN:
    rc = is_raw(x) ? (shutdown(x->raw, SHUT_WR) < 0 ? -errno : 0) : asyncio_stream_write_eof(x->pw);
    break;
  case END_CLOSE:
    if (is_raw(x)) {
      close(x->raw);
      x->raw = -1;
    } else {
      rc = asyncio_stream_close(x->pw);
    }
    break;
  default: {
    if (!is_raw(x)) asyncio_transport_pause_reading(asyncio_stream_transport(x->pw));
    rc = asyncio_stream_write(x->w, "x", 1);
    for (int i = 0; rc == 0 && inq(x->pfd) < 1;)
      if (!wait_step(&i)) rc = -ETIMEDOUT;
    if (rc < 0) break;
    if (is_tcp(x)) {
      struct linger lg = {1, 0};
      setsockopt(x->pfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    if (is_raw(x)) {
      close(x->raw);
      x->raw = -1;
    } else {
      rc = asyncio_transport_abort(asyncio_stream_transport(x->pw));
    }
  }
  }
  if (rc < 0) failf(x, "ending the stream (%s): %s", g_end_names[x->m.end], asyncio_errname(rc));
  return rc < 0 ? -1 : 0;
}

/* ---- the feeder --------------------------------------------------------------------- */

/* Sends the events the model says the current call takes, in lockstep with the reader. */
static int feeder_main(void *arg) {
  run_t *x = arg;
  int i = 0;
  for (int ev = 0; ev < x->f_nev; ev++) {
    if (x->op_done) {
      failf(x, "returned before event %d of the %d the model expected it to wait for", ev + 1,
            x->f_nev);
      return 0;
    }
    size_t ci = x->f_next0 + (size_t)ev;
    if ((ci < x->nchunks ? peer_send_chunk(x, ci) : peer_end(x)) < 0) {
      asyncio_task_cancel(x->self, NULL);
      return 0;
    }
    if (ev == x->f_nev - 1 && !x->f_cancel) break;
    /* More to come (or a cancellation): the reader must have seen this chunk alone. */
    i = 0;
    if (x->f_bufsync) {
      size_t want = x->f_base + x->cend[ci] - x->f_sent0;
      while (!x->op_done && asyncio_stream_buffered(x->r) != want) {
        if (!wait_step(&i)) {
          failf(x, "chunk %d of %d: the buffer holds %zu bytes, the model %zu", ev + 1, x->f_nev,
                asyncio_stream_buffered(x->r), want);
          asyncio_task_cancel(x->self, NULL);
          return 0;
        }
      }
    } else {
      while (!x->op_done && inq(x->libfd) > 0) {
        if (!wait_step(&i)) {
          failf(x, "chunk %d of %d stays in the socket", ev + 1, x->f_nev);
          asyncio_task_cancel(x->self, NULL);
          return 0;
        }
      }
    }
    if (asyncio_sleep(0) < 0) return 0;
  }
  if (x->f_cancel) {
    if (x->op_done) {
      failf(x, "returned; the model expected it to be waiting after %d events", x->f_nev);
      return 0;
    }
    asyncio_task_cancel(x->self, NULL);
  }
  for (i = 0; !x->op_done;) {
    if (!wait_step(&i)) {
      failf(x, "still waiting after the %d events the model expected it to take", x->f_nev);
      asyncio_task_cancel(x->self, NULL);
      return 0;
    }
  }
  return 0;
}

/* ---- the reader --------------------------------------------------------------------- */

/* Waits until the reader's buffer holds what the model says (the rest of a chunk may still
 * be on its way); false (and the case failed) if it never does. */
static bool sync_buffer(run_t *x, const char *when) {
  size_t want = m_buffered(&x->m);
  for (int i = 0; asyncio_stream_buffered(x->r) < want;) {
    if (!wait_step(&i)) break;
  }
  if (asyncio_stream_buffered(x->r) != want) {
    failf(x, "%s: the reader buffers %zu bytes, the model %zu", when,
          asyncio_stream_buffered(x->r), want);
    return false;
  }
  return true;
}

/* Ends the stream from the reader's task and waits until the reader has seen the end. */
static bool deliver_end(run_t *x) {
  if (peer_end(x) < 0) return false;
  x->m.ended = true;
  int i = 0;
  if (x->m.end == END_RESET) {
    x->m.err = -ECONNRESET;
    while (asyncio_stream_transport(x->w)) /* connection_lost ran */
      if (!wait_step(&i)) {
        failf(x, "the reset never reached the reader");
        return false;
      }
    return true;
  }
  x->m.eof = true;
  /* EOF is in the socket once poll says so; the next two loop iterations poll it and run
   * the transport's read callback, which calls eof_received.  Not observable from outside
   * while data is buffered, hence the fixed count (a third for margin). */
  for (;;) {
    struct pollfd p = {x->libfd, POLLRDHUP, 0};
    if (poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP))) break;
    if (!wait_step(&i)) {
      failf(x, "the EOF never reached the reader's socket");
      return false;
    }
  }
  for (int k = 0; k < 3; k++) asyncio_sleep(0);
  return true;
}

/* Before a call: maybe send a few chunks, maybe the end; check what the last call lent. */
static bool pre_call(run_t *x) {
  /*
   * With the default limit, now and then a burst of 12..16 KiB, sent at
   * once (no call is waiting, so how it is cut does not matter): the
   * buffer runs short of room with data in it, and with a readline result
   * lent out, which must then stay where it is while the rest moves.
   */
  if (!x->limit && below(&x->rng, 40) == 0) {
    size_t upto = m_buffered(&x->m) + 12 * 1024 + below(&x->rng, 4 * 1024), from = x->m.sent;
    while (x->m.next < x->nchunks && m_buffered(&x->m) < upto) x->m.sent = x->cend[x->m.next++];
    /* In one write: a Unix socket charges each small write a few hundred bytes. */
    if (peer_send(x, from, x->m.sent) < 0) return false;
    if (!sync_buffer(x, "after a burst before the call")) return false;
  }
  if (below(&x->rng, 6) == 0) {
    size_t k = 1 + below(&x->rng, 2);
    while (k-- && x->m.next < x->nchunks && m_buffered(&x->m) <= x->m.limit) {
      if (peer_send_chunk(x, x->m.next) < 0) return false;
      x->m.sent = x->cend[x->m.next++];
      if (!sync_buffer(x, "after sending a chunk before the call")) return false;
    }
  }
  if (x->m.next == x->nchunks && !x->m.ended && x->m.end != END_NONE &&
      m_buffered(&x->m) <= x->m.limit && below(&x->rng, 4) == 0) {
    if (!deliver_end(x)) return false;
  }
  if (x->lent && memcmp(x->lent, x->data + x->lent_off, x->lent_n) != 0) {
    failf(x, "the %zu bytes the last call lent out changed before the next call", x->lent_n);
    return false;
  }
  x->lent = NULL;
  return true;
}

static size_t pick_n(run_t *x) {
  size_t lim = x->limit ? x->limit : 40, big = x->limit ? 3 * x->limit + 8 : 6000;
  switch (below(&x->rng, 10)) {
  case 0:
    return 0;
  case 1:
    return 1 + below(&x->rng, big);
  case 2:
  case 3:
  case 4:
    return 1 + below(&x->rng, 2 * lim + 8);
  default:
    return 1 + below(&x->rng, 8);
  }
}

static void pick_op(run_t *x, op_t *o) {
  memset(o, 0, sizeof *o);
  char a[32], b[32], c[32];
  uint32_t p = rnd(&x->rng) % 100;
  if (p < 20) {
    o->kind = OP_READ;
    o->n = pick_n(x);
    snprintf(x->opname, sizeof x->opname, "read(%zu)", o->n);
  } else if (p < 36) {
    o->kind = OP_READEXACTLY;
    o->n = pick_n(x);
    snprintf(x->opname, sizeof x->opname, "readexactly(%zu)", o->n);
  } else if (p < 37) {
    o->kind = OP_READ_ALL;
    snprintf(x->opname, sizeof x->opname, "read()");
  } else if (p < 57) {
    o->kind = OP_READLINE;
    snprintf(x->opname, sizeof x->opname, "readline()");
  } else if (p < 75) {
    o->kind = OP_READUNTIL;
    o->seps[0] = &g_seps[below(&x->rng, NSEPS)];
    o->nseps = 1;
    snprintf(x->opname, sizeof x->opname, "readuntil(\"%s\")",
             esc(a, sizeof a, o->seps[0]->s, o->seps[0]->n, 8));
  } else {
    o->kind = OP_READUNTIL_ANY;
    o->nseps = 2 + below(&x->rng, 2);
    for (size_t i = 0; i < o->nseps; i++) {
      const sep_t *s;
      bool dup;
      do { /* distinct, in random order */
        s = &g_seps[below(&x->rng, NSEPS)];
        dup = false;
        for (size_t j = 0; j < i; j++) dup |= o->seps[j] == s;
      } while (dup);
      o->seps[i] = s;
    }
    esc(a, sizeof a, o->seps[0]->s, o->seps[0]->n, 8);
    esc(b, sizeof b, o->seps[1]->s, o->seps[1]->n, 8);
    if (o->nseps == 3) esc(c, sizeof c, o->seps[2]->s, o->seps[2]->n, 8);
    snprintf(x->opname, sizeof x->opname, "readuntil_any(\"%s\", \"%s\"%s%s%s)", a, b,
             o->nseps == 3 ? ", \"" : "", o->nseps == 3 ? c : "", o->nseps == 3 ? "\"" : "");
  }
}

/* The real call; *g gets what it returned. */
typedef struct got {
  ssize_t rc;
  const char *p;
  size_t n, consumed;
} got_t;

static void real_op(run_t *x, const op_t *o, got_t *g) {
  memset(g, 0, sizeof *g);
  const char *p = NULL, *pp = NULL;
  size_t pl = 0;
  switch (o->kind) {
  case OP_READ:
    g->rc = asyncio_stream_read(x->r, x->rbuf, o->n);
    if (g->rc > 0) g->p = x->rbuf, g->n = (size_t)g->rc;
    break;
  case OP_READEXACTLY:
    g->rc = asyncio_stream_readexactly(x->r, x->rbuf, o->n);
    if (g->rc == 0) g->p = x->rbuf, g->n = o->n;
    if (g->rc == ASYNCIO_EINCOMPLETEREAD) {
      CHECK_RC(asyncio_stream_partial(x->r, &pp, &pl), 0);
      CHECK(pp == NULL); /* the partial bytes are in the caller's buffer */
      g->p = x->rbuf, g->n = pl;
    }
    break;
  case OP_READ_ALL: {
    char *d = NULL;
    size_t l = 0;
    g->rc = asyncio_stream_read_all(x->r, &d, &l);
    if (g->rc == 0) {
      CHECK(d && d[l] == 0); /* NUL-terminated for convenience */
      if (d && l <= x->len) memcpy(x->rbuf, d, l);
      g->p = x->rbuf, g->n = d && l <= x->len ? l : SIZE_MAX;
      asyncio_stream_free_data(d, l);
    }
    break;
  }
  case OP_READLINE:
    g->rc = asyncio_stream_readline(x->r, &p);
    if (g->rc >= 0) g->p = p, g->n = (size_t)g->rc;
    break;
  default: {
    const void *sv[3];
    size_t sl[3];
    for (size_t i = 0; i < o->nseps; i++) sv[i] = o->seps[i]->s, sl[i] = o->seps[i]->n;
    g->rc = o->kind == OP_READUNTIL ? asyncio_stream_readuntil(x->r, sv[0], sl[0], &p)
                                    : asyncio_stream_readuntil_any(x->r, sv, sl, o->nseps, &p);
    if (g->rc > 0) g->p = p, g->n = (size_t)g->rc;
    if (g->rc == ASYNCIO_EINCOMPLETEREAD) {
      CHECK_RC(asyncio_stream_partial(x->r, &pp, &pl), 0);
      g->p = pp, g->n = pl;
    }
  }
  }
  if (g->rc == ASYNCIO_ELIMITOVERRUN) g->consumed = asyncio_stream_overrun_consumed(x->r);
}

/* Compares; false (and the case failed) on the first difference. */
static bool compare(run_t *x, const op_t *o, const res_t *e, const got_t *g) {
  char ed[64], gd[64], eb[160], gb[160];
  if (g->rc != e->rc || g->n != e->n ||
      (g->rc == ASYNCIO_ELIMITOVERRUN && g->consumed != e->consumed)) {
    failf(x, "expected %s, got %s (buffer before: \"%s\")",
          desc(ed, sizeof ed, e->rc, e->n, e->consumed),
          desc(gd, sizeof gd, g->rc, g->n, g->consumed),
          esc(eb, sizeof eb, x->data + x->f_sent0 - x->f_base, x->f_base, 40));
    return false;
  }
  if (g->n && (!g->p || memcmp(g->p, x->data + e->off, g->n) != 0)) {
    failf(x, "%s: expected \"%s\", got \"%s\"", desc(ed, sizeof ed, e->rc, e->n, e->consumed),
          esc(eb, sizeof eb, x->data + e->off, e->n, 40),
          g->p ? esc(gb, sizeof gb, g->p, g->n, 40) : "NULL");
    return false;
  }
  /* A call that succeeded leaves no partial bytes and no consumed count behind. */
  if (e->rc >= 0 && !e->eof_line) {
    const char *pp = (const char *)1;
    size_t pl = 1;
    CHECK_RC(asyncio_stream_partial(x->r, &pp, &pl), 0);
    if (pp || pl || asyncio_stream_overrun_consumed(x->r)) {
      failf(x, "succeeded but left partial %zu bytes / consumed %zu behind", pl,
            asyncio_stream_overrun_consumed(x->r));
      return false;
    }
  }
  /* readline / readuntil lend their result (and readuntil its partial) until the next call. */
  if (g->n && (o->kind == OP_READLINE || o->kind == OP_READUNTIL || o->kind == OP_READUNTIL_ANY)) {
    x->lent = g->p;
    x->lent_off = e->off;
    x->lent_n = g->n;
  }
  return true;
}

static bool one_call(run_t *x) {
  if (!pre_call(x)) return false;
  op_t o;
  pick_op(x, &o);
  /* How many events would the call take?  Then maybe cancel it partway. */
  model_t probe = x->m;
  probe.waits = 0;
  probe.budget = -1;
  probe.forever = false;
  res_t e;
  m_op(&probe, &o, &e);
  int budget = -1;
  if (probe.forever)
    budget = probe.waits;
  else if (probe.waits > 0 && below(&x->rng, 16) == 0)
    budget = (int)below(&x->rng, (size_t)probe.waits);
  x->f_next0 = x->m.next;
  x->f_sent0 = x->m.sent;
  x->f_base = m_buffered(&x->m);
  x->m.waits = 0;
  x->m.budget = budget;
  x->m.forever = false;
  m_op(&x->m, &o, &e);
  x->f_nev = x->m.waits;
  x->f_cancel = e.rc == -ECANCELED;
  x->f_bufsync = o.kind == OP_READLINE || o.kind == OP_READUNTIL || o.kind == OP_READUNTIL_ANY;
  size_t k = strlen(x->opname);
  if (x->f_cancel)
    snprintf(x->opname + k, sizeof x->opname - k, " [cancelled after %d events%s]", x->f_nev,
             probe.forever ? ", nothing more to come" : "");
  else if (x->f_nev)
    snprintf(x->opname + k, sizeof x->opname - k, " [waits for %d events]", x->f_nev);

  x->op_done = false;
  asyncio_task_t *feeder = NULL;
  int rc = asyncio_create_task(&feeder, feeder_main, x, NULL);
  if (rc < 0) {
    failf(x, "create_task: %s", asyncio_errname(rc));
    return false;
  }
  got_t g;
  real_op(x, &o, &g);
  x->op_done = true;
  /* The feeder's cancellation, delivered or not, ends here. */
  while (asyncio_task_cancelling(x->self) > 0) asyncio_task_uncancel(x->self);
  while (!asyncio_future_done(feeder)) {
    if (asyncio_await(feeder, NULL) == -ECANCELED) asyncio_task_uncancel(x->self);
  }
  asyncio_task_free(feeder);
  if (soft_fail[0]) return false;
  x->ops++;
  x->waited += x->f_nev > 0;
  x->cancels += x->f_cancel;
  x->overruns += e.rc == ASYNCIO_ELIMITOVERRUN;
  x->incompletes += e.rc == ASYNCIO_EINCOMPLETEREAD || e.eof_line;
  if (!compare(x, &o, &e, &g)) return false;
  if (!sync_buffer(x, "after the call")) return false;
  bool at_eof = x->m.eof && !m_buffered(&x->m);
  if (asyncio_stream_at_eof(x->r) != at_eof) {
    failf(x, "at_eof() is %d, the model says %d", !at_eof, at_eof);
    return false;
  }
  return true;
}

static int model_main(void *arg) {
  run_t *x = arg;
  x->self = asyncio_current_task();
  int rc = peer_open(x);
  if (rc < 0) {
    failf(x, "opening the connection: %s", asyncio_errname(rc));
    return 0;
  }
  /* Up to a dozen calls once everything was read: at EOF, after the error, or
   * waiting for ever (cancelled) when the stream has no end. */
  int after = 0;
  for (x->step = 0; x->step < 5000; x->step++) {
    if (x->m.next == x->nchunks && (x->m.ended || x->m.end == END_NONE) &&
        !m_buffered(&x->m) && ++after > 12)
      break;
    if (!one_call(x)) break;
  }
  peer_close(x);
  return 0;
}

/*
 * The stream: filler runs (x, y, z, NUL, 0xff: in no separator) around
 * tokens of 1..4 bytes of \n \r a b, so separators match, overlap and span
 * chunks.  Filler runs are mostly within the limit, some beyond it, some
 * right at it (with the default limit, usually one of about 64 KiB).
 */
static void generate(run_t *x) {
  rng_t *g = &x->rng;
  bool dflt = x->limit == 0;
  size_t lim = dflt ? ASYNCIO_STREAM_LIMIT : x->limit;
  size_t target = dflt ? 20000 + below(g, 20000) : 2500 + below(g, 4000);
  size_t cap = target + ASYNCIO_STREAM_LIMIT + 64;
  x->data = malloc(cap);
  x->len = 0;
  bool big = false;
  while (x->len < target) {
    size_t gap;
    switch (below(g, 10)) {
    case 0:
      gap = 0;
      break;
    case 1:
      if (dflt && (big || below(g, 20))) { /* 64 KiB runs are slow to scan: rare */
        gap = below(g, 40);
        break;
      }
      gap = lim + below(g, 3) - 1; /* limit - 1 .. limit + 1 */
      big = dflt;
      break;
    case 2:
      gap = dflt ? below(g, 200) : below(g, 3 * lim + 1);
      break;
    default:
      gap = dflt ? below(g, 40) : below(g, lim + 1);
    }
    static const unsigned char filler[] = {'x', 'y', 'z', 0, 0xff};
    for (size_t i = 0; i < gap; i++) x->data[x->len++] = filler[below(g, sizeof filler)];
    static const unsigned char tok[] = {'\n', '\n', '\n', '\r', '\r', 'a', 'a', 'a', 'b', 'b'};
    size_t t = 1 + below(g, 4);
    for (size_t i = 0; i < t; i++) x->data[x->len++] = tok[below(g, sizeof tok)];
  }
  /* Chunks of at most 4 KiB: a buffer always has that much room, so one recv takes a
   * whole chunk (unless a direct read asked for less). */
  size_t maxc = dflt ? 64 : 2 * x->limit + 8;
  x->cend = malloc(sizeof *x->cend * x->len);
  x->nchunks = 0;
  for (size_t off = 0; off < x->len;) {
    size_t c = 1 + below(g, below(g, 64) ? maxc : 4096);
    if (c > x->len - off) c = x->len - off;
    off += c;
    x->cend[x->nchunks++] = off;
  }
  x->rbuf = malloc(x->len + 8192); /* pick_n's largest n is 6000 */
}

static void run_seed(int kind, uint64_t seed, int *ops, int *cancels, int *waited, int *overruns,
                     int *incompletes) {
  run_t x;
  memset(&x, 0, sizeof x);
  x.seed = seed;
  x.kind = kind;
  x.rng.s = seed * 0x9E3779B97F4A7C15ull + (uint64_t)kind * 0xD1B54A32D192ED03ull + 1;
  x.limit = below(&x.rng, 4) == 0 ? 0 : 4 + below(&x.rng, 61);
  int end = (int)below(&x.rng, 4);
  generate(&x);
  x.m = (model_t){.data = x.data,
                  .len = x.len,
                  .cend = x.cend,
                  .nchunks = x.nchunks,
                  .end = end,
                  .limit = x.limit ? x.limit : ASYNCIO_STREAM_LIMIT,
                  .budget = -1};
  assert_ok(run_main(model_main, &x));
  *ops += x.ops;
  *cancels += x.cancels;
  *waited += x.waited;
  *overruns += x.overruns;
  *incompletes += x.incompletes;
  free(x.data);
  free(x.cend);
  free(x.rbuf);
}

/* Seeds per case: each a few hundred calls, a few ms natively. */
#define SEEDS 40

static void run_kind(int kind) {
  int ops = 0, cancels = 0, waited = 0, overruns = 0, incompletes = 0;
  for (uint64_t seed = 1; seed <= SEEDS && !soft_fail[0]; seed++)
    run_seed(kind, seed, &ops, &cancels, &waited, &overruns, &incompletes);
  ASSERT_SOFT();
  print_message("%d calls: %d waited, %d cancelled, %d LimitOverrun, %d IncompleteRead\n", ops,
                waited, cancels, overruns, incompletes);
}

TEST(model_unix_raw) { run_kind(PEER_UNIX_RAW); }
TEST(model_tcp_raw) { run_kind(PEER_TCP_RAW); }
TEST(model_unix_streams) { run_kind(PEER_UNIX_STREAM); }
TEST(model_tcp_streams) { run_kind(PEER_TCP_STREAM); }
