/*
 * sslproto.c - TLS over a socket transport (Python: asyncio.sslproto
 * SSLProtocol and _SSLProtocolTransport, as rewritten for 3.11 from
 * uvloop; loop.start_tls in base_events; ssl.create_default_context).
 *
 * An asyncio__tls_t sits between two transports.  Underneath, it is the
 * protocol of an ordinary stream socket transport (`under`), which carries
 * the TLS records, or, after start_tls on a TLS connection (TLS in TLS,
 * Python 3.11+), of another TLS object's app transport: `under` is only
 * ever used through the public transport calls, which dispatch on its
 * kind.  Above, it owns the app transport (`app`): a struct
 * asyncio_transport of kind ASYNCIO__TK_TLS that the public transport calls
 * dispatch here, and whose protocol is the application's.  OpenSSL runs on
 * two memory BIOs: what `under` receives is written into `in`, and what
 * OpenSSL produces in `out` is handed to `under`'s write().
 *
 * The state machine is CPython's: UNWRAPPED -> DO_HANDSHAKE -> WRAPPED ->
 * FLUSHING -> SHUTDOWN (any state may drop to UNWRAPPED), with the app
 * protocol's own INIT -> CON_MADE -> EOF -> CON_LOST.  Flow control, both
 * Python's: the app is paused for writing when plaintext not yet encrypted
 * plus ciphertext not yet handed down reach the app transport's high-water
 * mark (512 KiB), and `under` stops reading when 256 KiB of ciphertext wait
 * in `in` (the app paused reading; set_read_buffer_limits moves that mark).
 * One difference in the writing: while `under` is paused (its buffer is
 * full), plaintext stays in the backlog instead of being encrypted into
 * `out`, so `out` stays small; the counted size is the same.
 *
 * Lifetime: the object is reference-counted (`under`, which drops its
 * reference in connection_lost; the creating task while it waits; each
 * scheduled callback).  The app transport is freed with it, unless a
 * sendfile still holds it (then the last unhold frees it).  Both are loop
 * resources: closing the loop frees them without callbacks.
 *
 * Buffers: plaintext is read into one per-loop buffer (a nested read, from
 * a callback that closed the transport, gets a buffer of its own), and
 * ciphertext goes out through another, so nothing is allocated per message.
 * TLS in TLS: the outer layer's read has handed its plaintext on (and reads
 * afresh) before the inner one reuses the read buffer; but the inner
 * layer's ciphertext is still being encrypted by the outer layer's write
 * while that write hands its own records down, so a nested object has an
 * out buffer of its own (one allocation per connection).
 * OpenSSL's error queue is cleared before each call that consults it, and
 * after each failure, so this code neither reads nor leaves stale errors.
 */
#include <arpa/inet.h>
#include <math.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include "selector_events.h"

#define TLS_READ_BUF ((size_t)64 * 1024)   /* plaintext per data_received */
#define TLS_OUT_BUF ((size_t)64 * 1024)    /* ciphertext per write to `under` */
#define TLS_WRITE_STEP ((size_t)64 * 1024) /* plaintext per SSL_write */
#define TLS_WRITE_HIGH ASYNCIO__TLS_WRITE_HIGH
#define TLS_READ_HIGH ASYNCIO__TLS_READ_HIGH

enum { S_UNWRAPPED = 0, S_DO_HANDSHAKE, S_WRAPPED, S_FLUSHING, S_SHUTDOWN };
enum { A_INIT = 0, A_CON_MADE, A_EOF, A_CON_LOST };

typedef struct tchunk {
  struct tchunk *next;
  size_t start, end;
  char data[];
} tchunk_t;

typedef struct asyncio__tls {
  asyncio__res_t res;
  asyncio_loop_t *loop;
  asyncio_transport_t *under; /* NULL once its connection_lost ran */
  asyncio_transport_t *app;
  SSL_CTX *ctx;
  SSL *ssl;
  BIO *in, *out; /* owned by ssl */
  int refs;
  uint8_t state, app_state;
  uint8_t server_side;
  uint8_t ssl_writing_paused; /* `under` called pause_writing */
  uint8_t ssl_reading_paused; /* we paused `under` (too much ciphertext waiting) */
  uint8_t eof_received;       /* `under` got EOF */
  uint8_t in_read;            /* do_read_copied runs: a nested one needs its own buffer */
  double hs_timeout, sd_timeout;
  asyncio_handle_t hs_timer, sd_timer;
  asyncio_future_t *waiter; /* the creator's: the handshake's outcome */
  long *verify_code;        /* the creator's ssl_verify_code; NULL once it stopped waiting */
  asyncio__handle_t *h_lost; /* reserved for the app's connection_lost */
  int lost_error;
  uint8_t wrapped; /* the handshake succeeded once */
  uint8_t upgrade; /* start_tls: the app protocol saw connection_made on the old transport */
  asyncio_protocol_factory_fn factory; /* the application's, called once the handshake is done */
  void *factory_arg;
  tchunk_t *bhead, *btail; /* plaintext not yet given to SSL_write */
  size_t bsize;
  size_t in_high, in_low; /* set_read_buffer_limits: ciphertext in `in` that pauses `under` */
  char *obuf;             /* TLS in TLS: this layer's own out buffer; NULL = the loop's */
  uint8_t flushing;       /* flush_out runs */
  uint8_t resume_queued;  /* cb_resume_writing is scheduled */
  uint8_t read_more;      /* a BufferedProtocol's buffer was filled: cb_resume reads on */
} asyncio__tls_t;

/* Per-loop buffers, made on first use (loop->net exists by then). */
typedef struct tls_bufs {
  char rbuf[TLS_READ_BUF];
  char obuf[TLS_OUT_BUF];
} tls_bufs_t;

static void tls_unref(asyncio__tls_t *tls);
static void do_read(asyncio__tls_t *tls);
static void do_write(asyncio__tls_t *tls);
static void do_flush(asyncio__tls_t *tls);
static void do_shutdown(asyncio__tls_t *tls);
static void start_shutdown(asyncio__tls_t *tls);

/* ---- errors ---------------------------------------------------------------------------- */

/* The code for a failed OpenSSL call; the error queue is cleared. */
static int tls_error(asyncio__tls_t *tls, const char *what) {
  unsigned long e = ERR_peek_last_error();
  int code = ASYNCIO_ESSL;
  if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED)
    code = ASYNCIO_ESSLCERTVERIFY;
  if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE) code = -ENOMEM;
  if (tls && tls->loop->debug) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    long vr = tls->ssl ? SSL_get_verify_result(tls->ssl) : X509_V_OK;
    fprintf(stderr, "asyncio: %s: %s%s%s\n", what, buf, vr != X509_V_OK ? ": " : "",
            vr != X509_V_OK ? X509_verify_cert_error_string(vr) : "");
  }
  ERR_clear_error();
  return code;
}

/*
 * OpenSSL's error queue must be empty before an SSL call whose outcome
 * SSL_get_error reads.  This code leaves it empty after its own calls, so
 * it is only cleared when something else (the application's own OpenSSL
 * use on this thread) left an error there: clearing it unconditionally
 * around every record was ~3% of a TLS echo server's CPU.
 */
static inline void err_reset(void) {
  if (UNLIKELY(ERR_peek_error() != 0)) ERR_clear_error();
}

/* SSLAgainErrors: want more input (or output room), or a "syscall" error of the memory BIO. */
static int is_again(int e) {
  return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_SYSCALL;
}

/*
 * SSLProtocol._fatal_error: `under` is closed at once with the error.
 * Python logs OS-level errors (TLS errors among them) in debug mode only.
 */
static void fatal_error(asyncio__tls_t *tls, int err) {
  if (tls->under) asyncio__transport_force_close(tls->under, err);
  if (tls->loop->debug)
    fprintf(stderr, "asyncio: TLS connection: fatal error %s\n", asyncio_errname(err));
}

static void wakeup_waiter(asyncio__tls_t *tls, int err) {
  asyncio_future_t *w = tls->waiter;
  if (!w) return;
  tls->waiter = NULL;
  if (!asyncio_future_done(w)) {
    if (err)
      asyncio_future_set_exception(w, err, NULL);
    else
      asyncio_future_set_result(w, 0, NULL);
  }
  asyncio__future_unref(w);
}

/* ---- scheduling ------------------------------------------------------------------------ */

static void cb_resume(void *arg);
static void cb_close_under(void *arg);

/* call_soon(fn) holding a reference; runs it now when no handle can be had. */
static void tls_soon(asyncio__tls_t *tls, asyncio_callback_fn fn) {
  tls->refs++;
  if (asyncio_loop_call_soon(tls->loop, fn, tls, NULL) < 0) fn(tls);
}

static void cancel_timer(asyncio_handle_t *h) {
  asyncio_handle_cancel(*h);
  *h = ASYNCIO_HANDLE_NONE;
}

/* ---- outgoing ------------------------------------------------------------------------- */

static size_t write_buffer_size(const asyncio__tls_t *tls) {
  return BIO_ctrl_pending(tls->out) + tls->bsize;
}

/* SSLProtocol._control_app_writing; app->proto_paused is _app_writing_paused. */
static void control_app_writing(asyncio__tls_t *tls) {
  asyncio_transport_t *a = tls->app;
  size_t size = write_buffer_size(tls);
  int live = tls->app_state == A_CON_MADE || tls->app_state == A_EOF;
  if (size >= a->high && !a->proto_paused) {
    a->proto_paused = 1;
    if (live && a->proto && a->proto->pause_writing) a->proto->pause_writing(a, a->inst);
  } else if (size <= a->low && a->proto_paused) {
    a->proto_paused = 0;
    if (live && a->proto && a->proto->resume_writing) a->proto->resume_writing(a, a->inst);
    if (a->sf) asyncio__transport_sf_notify(a, 0);
  }
}

/*
 * The ciphertext in `out` to `under`.  No callback of this layer's runs
 * from here, so the write paths may call it mid-way: a TLS `under` (TLS in
 * TLS) that resumes us from inside its write is heard later
 * (under_resume_writing), and a nested call leaves the records to the loop
 * already running, whose buffer still holds the ones in flight.
 */
static void flush_out(asyncio__tls_t *tls) {
  if (!tls->under || tls->flushing) return;
  char *obuf = tls->obuf ? tls->obuf : tls->loop->net->tls->obuf;
  size_t pending;
  tls->flushing = 1;
  while ((pending = BIO_ctrl_pending(tls->out)) > 0 && tls->under) {
    int n = BIO_read(tls->out, obuf, (int)(pending < TLS_OUT_BUF ? pending : TLS_OUT_BUF));
    if (n <= 0) break;
    int rc = asyncio_transport_write(tls->under, obuf, (size_t)n);
    if (rc == -ENOMEM) {
      fatal_error(tls, -ENOMEM);
      break;
    }
  }
  tls->flushing = 0;
}

/*
 * SSLProtocol._process_outgoing: the ciphertext goes to `under`, unless it
 * asked us to pause; `force` hands it over anyway (before closing `under`,
 * which sends what it holds first).  Then the app's flow control, whose
 * callbacks may write again: only at the end of an operation, never in the
 * middle of a backlog or caller's buffer (as Python calls it after its
 * loops).
 */
static void hand_down(asyncio__tls_t *tls, int force) {
  if (force || !tls->ssl_writing_paused) flush_out(tls);
  control_app_writing(tls);
}

static void process_outgoing(asyncio__tls_t *tls) { hand_down(tls, 0); }

static void backlog_clear(asyncio__tls_t *tls) {
  while (tls->bhead) {
    tchunk_t *c = tls->bhead;
    tls->bhead = c->next;
    asyncio__free(c, sizeof *c + c->end);
  }
  tls->btail = NULL;
  tls->bsize = 0;
}

static int backlog_append(asyncio__tls_t *tls, const struct iovec *iov, int iovcnt, size_t skip) {
  size_t total = 0;
  for (int i = 0; i < iovcnt; i++) total += iov[i].iov_len;
  total -= skip;
  if (!total) return 0;
  tchunk_t *c = asyncio__alloc(sizeof *c + total);
  if (!c) return -ENOMEM;
  c->next = NULL;
  c->start = 0;
  c->end = total;
  size_t off = 0;
  for (int i = 0; i < iovcnt; i++) {
    const char *p = iov[i].iov_base;
    size_t n = iov[i].iov_len;
    if (skip >= n) {
      skip -= n;
      continue;
    }
    memcpy(c->data + off, p + skip, n - skip);
    off += n - skip;
    skip = 0;
  }
  if (tls->btail)
    tls->btail->next = c;
  else
    tls->bhead = c;
  tls->btail = c;
  tls->bsize += total;
  return 0;
}

/*
 * SSL_write of up to TLS_WRITE_STEP bytes: returns the bytes taken, 0 for
 * "again" (OpenSSL wants input first), or an error (the transport is then
 * failed).
 */
static int ssl_write_step(asyncio__tls_t *tls, const char *p, size_t n) {
  if (n > TLS_WRITE_STEP) n = TLS_WRITE_STEP;
  err_reset();
  int r = SSL_write(tls->ssl, p, (int)n);
  if (r > 0) {
    /* Hand the records down as they come, so `out` stays small. */
    if (BIO_ctrl_pending(tls->out) >= TLS_OUT_BUF && !tls->ssl_writing_paused) flush_out(tls);
    return r;
  }
  int e = SSL_get_error(tls->ssl, r);
  if (is_again(e)) {
    err_reset();
    return 0;
  }
  int err = tls_error(tls, "TLS write failed");
  fatal_error(tls, err);
  return err;
}

/* One SSL_write from the backlog's head, consumed as far as it went; as ssl_write_step. */
static int backlog_step(asyncio__tls_t *tls) {
  tchunk_t *c = tls->bhead;
  int r = ssl_write_step(tls, c->data + c->start, c->end - c->start);
  if (r <= 0) return r;
  c->start += (size_t)r;
  tls->bsize -= (size_t)r;
  if (c->start == c->end) {
    tls->bhead = c->next;
    if (!tls->bhead) tls->btail = NULL;
    asyncio__free(c, sizeof *c + c->end);
  }
  return r;
}

/* SSLProtocol._do_write: the backlog into SSL_write, while `under` takes it. */
static void do_write(asyncio__tls_t *tls) {
  while (tls->bhead && !tls->ssl_writing_paused && tls->state == S_WRAPPED)
    if (backlog_step(tls) <= 0) break;
  process_outgoing(tls);
}

/*
 * Before close_notify: every byte the app handed over is encrypted, in
 * order, whatever `under`'s flow control says (it sends them before the
 * alert).  Python encrypts at write time, so its backlog is empty by then;
 * ours keeps plaintext back while `under` is paused.
 */
static void flush_backlog(asyncio__tls_t *tls) {
  while (tls->bhead)
    if (backlog_step(tls) <= 0) break;
}

/* SSLProtocol._write_appdata */
int asyncio__tls_write(asyncio_transport_t *app, const struct iovec *iov, int iovcnt) {
  asyncio__tls_t *tls = app->tls;
  if (tls->state == S_FLUSHING || tls->state == S_SHUTDOWN || tls->state == S_UNWRAPPED) {
    return 0; /* ignored, as Python's (which logs 'SSL connection is closed') */
  }
  size_t total = 0;
  for (int i = 0; i < iovcnt; i++) total += iov[i].iov_len;
  if (!total) return 0;
  if (tls->state != S_WRAPPED || tls->bhead || tls->ssl_writing_paused) {
    int rc = backlog_append(tls, iov, iovcnt, 0);
    if (rc) return rc;
    if (tls->state == S_WRAPPED) do_write(tls);
    else control_app_writing(tls);
    return 0;
  }
  /* Straight from the caller's buffers into SSL_write; only what OpenSSL
   * or a full `under` does not take is copied. */
  size_t done = 0;
  for (int i = 0; i < iovcnt; i++) {
    const char *p = iov[i].iov_base;
    size_t n = iov[i].iov_len, off = 0;
    while (off < n) {
      if (tls->ssl_writing_paused || tls->state != S_WRAPPED) goto rest;
      int r = ssl_write_step(tls, p + off, n - off);
      if (r < 0) return 0; /* the transport failed: Python's _fatal_error, no raise */
      if (r == 0) goto rest;
      off += (size_t)r;
      done += (size_t)r;
    }
  }
  process_outgoing(tls);
  return 0;
rest:
  if (tls->state == S_WRAPPED || tls->state == S_DO_HANDSHAKE) {
    int rc = backlog_append(tls, iov, iovcnt, done);
    if (rc) {
      /* Part of it was already encrypted: the stream cannot go on. */
      if (done) fatal_error(tls, rc);
      return rc;
    }
  }
  process_outgoing(tls);
  return 0;
}

size_t asyncio__tls_get_write_buffer_size(const asyncio_transport_t *app) {
  return app->tls ? write_buffer_size(app->tls) : 0;
}

void asyncio__tls_control_app_writing(asyncio_transport_t *app) {
  if (app->tls) control_app_writing(app->tls);
}

/* ---- incoming ------------------------------------------------------------------------- */

/*
 * SSLProtocol._control_ssl_reading.  An empty `in` never pauses: with a
 * high-water mark of 0 Python's `size >= high` pauses `under` after every
 * read that left nothing behind, and as only a read or the app resuming
 * looks again, an app that never pauses would hang.  Its documentation
 * says what this does: pause whenever the buffer is not empty.
 */
static void control_ssl_reading(asyncio__tls_t *tls) {
  if (!tls->under) return;
  size_t size = BIO_ctrl_pending(tls->in);
  if (size >= tls->in_high && size > 0 && !tls->ssl_reading_paused) {
    tls->ssl_reading_paused = 1;
    asyncio_transport_pause_reading(tls->under);
  } else if (size <= tls->in_low && tls->ssl_reading_paused) {
    tls->ssl_reading_paused = 0;
    asyncio_transport_resume_reading(tls->under);
  }
}

/* _SSLProtocolTransport.get_read_buffer_size: SSLProtocol._get_read_buffer_size. */
ssize_t asyncio__tls_get_read_buffer_size(const asyncio_transport_t *app) {
  if (!app->tls) return -EINVAL;
  size_t n = BIO_ctrl_pending(app->tls->in);
  return n > SSIZE_MAX ? SSIZE_MAX : (ssize_t)n;
}

int asyncio__tls_get_read_buffer_limits(const asyncio_transport_t *app, size_t *low,
                                        size_t *high) {
  if (!app->tls) return -EINVAL;
  if (low) *low = app->tls->in_low;
  if (high) *high = app->tls->in_high;
  return 0;
}

/* _SSLProtocolTransport.set_read_buffer_limits: the new marks apply at once, as Python's. */
int asyncio__tls_set_read_buffer_limits(asyncio_transport_t *app, size_t high, size_t low) {
  asyncio__tls_t *tls = app->tls;
  if (!tls) return -EINVAL;
  tls->in_high = high;
  tls->in_low = low;
  control_ssl_reading(tls);
  return 0;
}

/* SSLProtocol._call_eof_received: its return value means nothing here. */
static void call_eof_received(asyncio__tls_t *tls) {
  if (tls->app_state != A_CON_MADE) return;
  tls->app_state = A_EOF;
  asyncio_transport_t *a = tls->app;
  if (a->proto && a->proto->eof_received && a->proto->eof_received(a, a->inst) &&
      tls->loop->debug)
    fprintf(stderr, "asyncio: returning true from eof_received() has no effect when using ssl\n");
}

/*
 * One SSL_read: > 0 bytes, 0 for close_notify, -1 for "again"; other
 * errors fail the transport and return -2.
 */
static int ssl_read_step(asyncio__tls_t *tls, char *p, size_t n) {
  if (n > INT_MAX) n = INT_MAX;
  err_reset();
  int r = SSL_read(tls->ssl, p, (int)n);
  if (r > 0) return r;
  int e = SSL_get_error(tls->ssl, r);
  if (e == SSL_ERROR_ZERO_RETURN) return 0;
  if (is_again(e)) {
    err_reset();
    return -1;
  }
  fatal_error(tls, tls_error(tls, "TLS read failed"));
  return -2;
}

static int reading(const asyncio__tls_t *tls) {
  return (tls->state == S_WRAPPED || tls->state == S_FLUSHING) && !tls->app->paused;
}

/* SSLProtocol._do_read__copied: plaintext to data_received, a buffer at a time. */
static void do_read_copied(asyncio__tls_t *tls) {
  tls_bufs_t *b = tls->loop->net->tls;
  char *buf = b->rbuf;
  if (tls->in_read) { /* nested: the outer call's data_received still has rbuf */
    buf = asyncio__alloc(TLS_READ_BUF);
    if (!buf) {
      fatal_error(tls, -ENOMEM);
      return;
    }
  }
  uint8_t was = tls->in_read;
  tls->in_read = 1;
  int r = -1;
  do {
    size_t n = 0;
    while (n < TLS_READ_BUF && (r = ssl_read_step(tls, buf + n, TLS_READ_BUF - n)) > 0)
      n += (size_t)r;
    asyncio_transport_t *a = tls->app;
    if (n && a->proto && a->proto->data_received && tls->app_state == A_CON_MADE)
      a->proto->data_received(a, buf, n, a->inst);
  } while (r > 0 && reading(tls));
  tls->in_read = was;
  if (buf != b->rbuf) asyncio__free(buf, TLS_READ_BUF);
  if (r == 0) { /* close_notify */
    call_eof_received(tls);
    start_shutdown(tls);
  }
}

/* SSLProtocol._do_read__buffered: straight into the protocol's buffer. */
static void do_read_buffered(asyncio__tls_t *tls) {
  asyncio_transport_t *a = tls->app;
  void *vbuf = NULL;
  size_t len = 0;
  size_t hint = BIO_ctrl_pending(tls->in);
  int rc = a->proto->get_buffer(a, hint > 0 && hint < SSIZE_MAX ? (ssize_t)hint : -1, &vbuf, &len,
                                a->inst);
  if (rc >= 0 && (!vbuf || !len)) rc = -ENOBUFS;
  if (rc < 0) {
    asyncio_error_context_t c = {0};
    c.message = "protocol.get_buffer() call failed.";
    c.error = rc;
    asyncio_loop_call_exception_handler(tls->loop, &c);
    fatal_error(tls, rc);
    return;
  }
  char *buf = vbuf;
  size_t off = 0;
  int r = -1;
  while (off < len && (r = ssl_read_step(tls, buf + off, len - off)) > 0) off += (size_t)r;
  if (off && tls->app_state == A_CON_MADE) a->proto->buffer_updated(a, off, a->inst);
  if (off == len) {
    /* Full: there may be more.  Queued after buffer_updated, since without
     * memory for the handle tls_soon reads on at once, into the same buffer. */
    tls->read_more = 1;
    tls_soon(tls, cb_resume);
  }
  if (r == 0) {
    call_eof_received(tls);
    start_shutdown(tls);
  }
}

/* SSLProtocol._do_read */
static void do_read(asyncio__tls_t *tls) {
  if (tls->state != S_WRAPPED && tls->state != S_FLUSHING) return;
  if (!tls->app->paused) {
    const asyncio_protocol_t *p = tls->app->proto;
    if (p && p->get_buffer && p->buffer_updated)
      do_read_buffered(tls);
    else
      do_read_copied(tls);
    if (tls->bhead)
      do_write(tls);
    else
      process_outgoing(tls);
  }
  control_ssl_reading(tls);
}

/* ---- handshake ------------------------------------------------------------------------ */

static void on_handshake_complete(asyncio__tls_t *tls, int err) {
  cancel_timer(&tls->hs_timer);
  if (err) {
    /* The creator's only way to learn which check failed (Python: verify_code). */
    if (err == ASYNCIO_ESSLCERTVERIFY && tls->verify_code)
      *tls->verify_code = SSL_get_verify_result(tls->ssl);
    tls->state = S_UNWRAPPED;
    process_outgoing(tls); /* the alert, so the peer learns why */
    fatal_error(tls, err);
    wakeup_waiter(tls, err);
    return;
  }
  tls->state = S_WRAPPED;
  tls->wrapped = 1;
  if (tls->app_state == A_INIT) {
    asyncio_transport_t *a = tls->app;
    /*
     * The application's protocol is made now, not before the handshake as
     * Python makes it: a handshake that fails then leaves no instance that
     * would never hear of its connection (a stream would leak).
     */
    const asyncio_protocol_t *proto = NULL;
    void *pinst = NULL;
    int rc = tls->factory ? tls->factory(tls->factory_arg, &proto, &pinst) : -ECONNABORTED;
    if (rc >= 0 && !proto) rc = -EINVAL;
    if (rc < 0) {
      tls->state = S_UNWRAPPED;
      if (tls->server_side) {
        asyncio_error_context_t c = {0};
        c.message = "Error on transport creation for incoming connection";
        c.error = rc;
        asyncio_loop_call_exception_handler(tls->loop, &c);
      }
      fatal_error(tls, rc);
      wakeup_waiter(tls, rc);
      return;
    }
    a->proto = proto;
    a->inst = pinst;
    tls->app_state = A_CON_MADE;
    a->started = 1;
    if (a->proto && a->proto->connection_made) a->proto->connection_made(a, a->inst);
  }
  wakeup_waiter(tls, 0);
  do_read(tls);
}

static void do_handshake(asyncio__tls_t *tls) {
  err_reset();
  int r = SSL_do_handshake(tls->ssl);
  if (r == 1) {
    /*
     * The last flight (a TLS 1.3 client's Finished, a server's session
     * tickets) goes out now: do_read after connection_made only flushes
     * when the app reads, and an app that pauses reading in connection_made
     * would leave the peer's handshake hanging.
     */
    process_outgoing(tls);
    on_handshake_complete(tls, 0);
    return;
  }
  int e = SSL_get_error(tls->ssl, r);
  if (is_again(e)) {
    err_reset();
    process_outgoing(tls);
    return;
  }
  on_handshake_complete(tls, tls_error(tls, "TLS handshake failed"));
}

static void check_handshake_timeout(void *arg) {
  asyncio__tls_t *tls = arg;
  tls->hs_timer = ASYNCIO_HANDLE_NONE;
  /* 'SSL handshake is taking longer than N seconds: aborting the connection' */
  if (tls->state == S_DO_HANDSHAKE) {
    fatal_error(tls, -ECONNABORTED);
    wakeup_waiter(tls, -ECONNABORTED);
  }
}

static void start_handshake(asyncio__tls_t *tls) {
  tls->state = S_DO_HANDSHAKE;
  if (asyncio_loop_call_later(tls->loop, tls->hs_timeout, check_handshake_timeout, tls,
                              &tls->hs_timer) < 0) {
    fatal_error(tls, -ENOMEM);
    wakeup_waiter(tls, -ENOMEM);
    return;
  }
  do_handshake(tls);
}

/* ---- shutdown ------------------------------------------------------------------------- */

static void abort_tls(asyncio__tls_t *tls) {
  tls->state = S_UNWRAPPED;
  if (tls->under) asyncio_transport_abort(tls->under);
}

static void check_shutdown_timeout(void *arg) {
  asyncio__tls_t *tls = arg;
  tls->sd_timer = ASYNCIO_HANDLE_NONE;
  if ((tls->state == S_FLUSHING || tls->state == S_SHUTDOWN) && tls->under)
    asyncio__transport_force_close(tls->under, -ETIMEDOUT); /* 'SSL shutdown timed out' */
}

static void start_shutdown(asyncio__tls_t *tls) {
  if (tls->state == S_FLUSHING || tls->state == S_SHUTDOWN || tls->state == S_UNWRAPPED) return;
  tls->app->closing = 1;
  if (tls->state == S_DO_HANDSHAKE) {
    abort_tls(tls);
    return;
  }
  tls->state = S_FLUSHING;
  if (asyncio_loop_call_later(tls->loop, tls->sd_timeout, check_shutdown_timeout, tls,
                              &tls->sd_timer) < 0) {
    /* No timer: close now rather than risk waiting forever. */
    abort_tls(tls);
    return;
  }
  do_flush(tls);
}

static void do_flush(asyncio__tls_t *tls) {
  do_read(tls);
  if (tls->state != S_FLUSHING) return;
  /*
   * The peer's EOF (the app is not closing) with plaintext left: it is
   * delivered a buffer at a time, where Python's _do_read hands all of it to
   * one data_received, so the app may have paused again, or a
   * BufferedProtocol's buffer may be full (Python loses the rest there).
   * Going on would drop it; resume_reading or the queued read finishes it.
   */
  if (!tls->app->closing &&
      (tls->read_more ||
       (tls->app->paused && (SSL_has_pending(tls->ssl) || BIO_ctrl_pending(tls->in) > 0))))
    return;
  flush_backlog(tls);
  tls->state = S_SHUTDOWN;
  do_shutdown(tls);
}

static void on_shutdown_complete(asyncio__tls_t *tls, int err) {
  cancel_timer(&tls->sd_timer);
  if (err)
    fatal_error(tls, err);
  else
    tls_soon(tls, cb_close_under);
}

static void do_shutdown(asyncio__tls_t *tls) {
  if (!tls->eof_received) {
    err_reset();
    int r = SSL_shutdown(tls->ssl);
    if (r == 0) r = SSL_shutdown(tls->ssl); /* sent ours; now look for the peer's */
    if (r != 1) {
      int e = SSL_get_error(tls->ssl, r);
      if (r == 0 || is_again(e)) {
        err_reset();
        process_outgoing(tls);
        return;
      }
      process_outgoing(tls);
      on_shutdown_complete(tls, tls_error(tls, "TLS shutdown failed"));
      return;
    }
  }
  process_outgoing(tls);
  call_eof_received(tls);
  on_shutdown_complete(tls, 0);
}

static void cb_close_under(void *arg) {
  asyncio__tls_t *tls = arg;
  if (tls->under) {
    hand_down(tls, 1); /* what a paused `under` did not take yet; close() sends it */
    asyncio_transport_close(tls->under);
  }
  tls_unref(tls);
}

/* SSLProtocol._resume_reading's resume(), and a full BufferedProtocol buffer. */
static void cb_resume(void *arg) {
  asyncio__tls_t *tls = arg;
  tls->read_more = 0;
  if (tls->under) {
    if (tls->state == S_WRAPPED)
      do_read(tls);
    else if (tls->state == S_FLUSHING)
      do_flush(tls);
    else if (tls->state == S_SHUTDOWN)
      do_shutdown(tls);
  }
  tls_unref(tls);
}

/* ---- the protocol underneath ------------------------------------------------------------ */

static void under_connection_made(asyncio_transport_t *u, void *arg) {
  asyncio__tls_t *tls = arg;
  tls->under = u;
  asyncio_transport_t *a = tls->app;
  /* The socket's addresses, also through a TLS app transport: 0 length = none. */
  socklen_t l = sizeof a->sockname;
  a->socklen = asyncio_transport_get_sockname(u, (struct sockaddr *)&a->sockname, &l) ? 0 : l;
  l = sizeof a->peername;
  a->peerlen = asyncio_transport_get_peername(u, (struct sockaddr *)&a->peername, &l) ? 0 : l;
  start_handshake(tls);
}

static void under_data_received(asyncio_transport_t *u, const void *data, size_t n, void *arg) {
  asyncio__tls_t *tls = arg;
  while (n > 0) {
    int k = BIO_write(tls->in, data, n > INT_MAX ? INT_MAX : (int)n);
    if (k <= 0) {
      ERR_clear_error();
      fatal_error(tls, -ENOMEM);
      return;
    }
    data = (const char *)data + k;
    n -= (size_t)k;
  }
  switch (tls->state) {
  case S_DO_HANDSHAKE: do_handshake(tls); break;
  case S_WRAPPED: do_read(tls); break;
  case S_FLUSHING: do_flush(tls); break;
  case S_SHUTDOWN: do_shutdown(tls); break;
  default: break;
  }
}

static bool under_eof_received(asyncio_transport_t *u, void *arg) {
  asyncio__tls_t *tls = arg;
  tls->eof_received = 1;
  switch (tls->state) {
  case S_DO_HANDSHAKE:
    on_handshake_complete(tls, -ECONNRESET);
    break;
  case S_WRAPPED:
    tls->state = S_FLUSHING;
    if (tls->app->paused) return true; /* resume_reading finishes it */
    do_flush(tls);
    return tls->state == S_FLUSHING; /* data left to deliver: the socket stays open */
  case S_FLUSHING:
    flush_backlog(tls);
    tls->state = S_SHUTDOWN;
    do_shutdown(tls);
    break;
  case S_SHUTDOWN:
    do_shutdown(tls);
    break;
  default:
    break;
  }
  return false;
}

static void under_pause_writing(asyncio_transport_t *u, void *arg) {
  ((asyncio__tls_t *)arg)->ssl_writing_paused = 1;
}

static void resume_writing(asyncio__tls_t *tls) {
  if (tls->bhead && tls->state == S_WRAPPED)
    do_write(tls);
  else
    process_outgoing(tls);
}

static void cb_resume_writing(void *arg) {
  asyncio__tls_t *tls = arg;
  tls->resume_queued = 0;
  if (tls->under && !tls->ssl_writing_paused) resume_writing(tls);
  tls_unref(tls);
}

static void under_resume_writing(asyncio_transport_t *u, void *arg) {
  asyncio__tls_t *tls = arg;
  tls->ssl_writing_paused = 0;
  /*
   * A TLS `under` resumes us from inside the write flush_out makes: that
   * flush goes on by itself, and the backlog, the app's flow control and
   * whatever else may write are for a callback.
   */
  if (tls->flushing) {
    if (!tls->resume_queued) {
      tls->resume_queued = 1;
      tls_soon(tls, cb_resume_writing);
    }
    return;
  }
  resume_writing(tls);
}

/* The app's connection_lost, from the ready queue (reserved handle). */
static void call_app_connection_lost(void *arg) {
  asyncio__tls_t *tls = arg;
  asyncio_transport_t *a = tls->app;
  if (a->proto && a->proto->connection_lost) a->proto->connection_lost(a, tls->lost_error, a->inst);
  a->dead = 1;
  a->proto = NULL;
  tls_unref(tls);
}

static void under_connection_lost(asyncio_transport_t *u, int err, void *arg) {
  asyncio__tls_t *tls = arg;
  backlog_clear(tls);
  (void)BIO_reset(tls->out);
  asyncio_transport_t *a = tls->app;
  a->closing = 1;
  a->conn_lost++;
  /*
   * Python skips the app's connection_lost when the connection ends during
   * the handshake.  After start_tls the app protocol has seen
   * connection_made (on the old transport), so it gets its connection_lost
   * even then: the protocol contract says exactly once, and a stream would
   * otherwise wait for it forever.
   */
  if ((tls->state != S_DO_HANDSHAKE || tls->upgrade) &&
      (tls->app_state == A_CON_MADE || tls->app_state == A_EOF)) {
    tls->app_state = A_CON_LOST;
    tls->lost_error = err;
    asyncio__handle_t *h = tls->h_lost;
    tls->h_lost = NULL;
    h->fn = call_app_connection_lost;
    h->arg = tls;
    tls->refs++;
    asyncio__ready_push(tls->loop, h);
  } else {
    a->dead = 1; /* the app protocol never saw the connection */
  }
  tls->state = S_UNWRAPPED;
  tls->under = NULL;
  wakeup_waiter(tls, err);
  cancel_timer(&tls->sd_timer);
  cancel_timer(&tls->hs_timer);
  if (a->sf) asyncio__transport_sf_notify(a, err ? err : -EPIPE);
  tls_unref(tls);
}

static const asyncio_protocol_t tls_protocol = {
    .connection_made = under_connection_made,
    .connection_lost = under_connection_lost,
    .pause_writing = under_pause_writing,
    .resume_writing = under_resume_writing,
    .data_received = under_data_received,
    .eof_received = under_eof_received,
};

/* The factory `under` is made with (the application's runs after the handshake). */
static int tls_factory(void *arg, const asyncio_protocol_t **p, void **inst) {
  *p = &tls_protocol;
  *inst = arg;
  return 0;
}

/*
 * servers.c: the server that accepted `under` is being freed, and its
 * factory's argument may go with it (start_server's does).  A connection
 * still in its handshake would call that factory later: it is aborted.
 */
void asyncio__tls_server_gone(asyncio_transport_t *under) {
  if (under->proto != &tls_protocol) return;
  asyncio__tls_t *tls = under->inst;
  if (tls->app_state != A_INIT || !tls->factory) return;
  tls->factory = NULL;
  abort_tls(tls);
}

/* ---- the app transport's calls ------------------------------------------------------- */

int asyncio__tls_close(asyncio_transport_t *app) {
  if (app->closing) return 0;
  app->closing = 1;
  asyncio__tls_t *tls = app->tls;
  /*
   * EOF arrived while the app paused reading: under_eof_received left the
   * shutdown to resume_reading, and start_shutdown ignores FLUSHING, so
   * without this the connection would never end (CPython hangs the same way).
   */
  if (tls->state == S_FLUSHING && tls->eof_received && app->paused) {
    do_flush(tls);
    return 0;
  }
  start_shutdown(tls);
  return 0;
}

int asyncio__tls_abort(asyncio_transport_t *app) {
  app->closing = 1;
  abort_tls(app->tls);
  return 0;
}

int asyncio__tls_pause_reading(asyncio_transport_t *app) {
  app->paused = 1;
  return 0;
}

int asyncio__tls_resume_reading(asyncio_transport_t *app) {
  if (app->paused) {
    app->paused = 0;
    tls_soon(app->tls, cb_resume);
  }
  return 0;
}

int asyncio__tls_get_fd(const asyncio_transport_t *app) {
  const asyncio__tls_t *tls = app->tls;
  return tls && tls->under ? asyncio_transport_get_fd(tls->under) : -EINVAL;
}

/*
 * _SSLProtocolTransport._force_close(exc), which TLS in TLS reaches: an
 * inner layer's fatal error or shutdown timeout.  The error goes down to the
 * socket, so that it comes back up through each connection_lost (as
 * CPython's SSLProtocol._abort(exc) does since it takes one; the first
 * 3.11 version dropped it).
 */
void asyncio__tls_force_close(asyncio_transport_t *app, int err) {
  app->closing = 1;
  asyncio__tls_t *tls = app->tls;
  if (!tls) return;
  tls->state = S_UNWRAPPED;
  if (tls->under) asyncio__transport_force_close(tls->under, err);
}

ASYNCIO_API struct ssl_st *asyncio_transport_get_ssl_object(const asyncio_transport_t *t) {
  if (!t || t->kind != ASYNCIO__TK_TLS || !t->tls) return NULL;
  return t->tls->wrapped ? t->tls->ssl : NULL;
}

ASYNCIO_API struct ssl_ctx_st *asyncio_transport_get_sslcontext(const asyncio_transport_t *t) {
  if (!t || t->kind != ASYNCIO__TK_TLS || !t->tls) return NULL;
  return t->tls->ctx;
}

/* ---- making and freeing ------------------------------------------------------------------ */

void asyncio__tls_bufs_free(asyncio__net_t *net) {
  if (net->tls) asyncio__free(net->tls, sizeof(tls_bufs_t));
  net->tls = NULL;
  SSL_CTX_free(net->default_ctx); /* the connections made with it hold references */
  net->default_ctx = NULL;
}

/*
 * ssl=True.  One context per loop, not per connection as Python makes: it
 * reads the whole trust store, milliseconds of blocking each time.
 */
int asyncio__tls_default_ctx(asyncio_loop_t *loop, SSL_CTX **out) {
  asyncio__net_t *net;
  int rc = asyncio__net_get(loop, &net);
  if (rc) return rc;
  if (!net->default_ctx) {
    rc = asyncio_ssl_create_default_context(ASYNCIO_SSL_PURPOSE_SERVER_AUTH, NULL, NULL,
                                            &net->default_ctx);
    if (rc) return rc;
  }
  *out = net->default_ctx;
  return 0;
}

static void tls_free(asyncio__tls_t *tls) {
  cancel_timer(&tls->hs_timer);
  cancel_timer(&tls->sd_timer);
  if (tls->h_lost) asyncio__handle_release(tls->loop, tls->h_lost);
  if (tls->waiter) asyncio__future_unref(tls->waiter);
  backlog_clear(tls);
  if (tls->obuf) asyncio__free(tls->obuf, TLS_OUT_BUF);
  SSL_free(tls->ssl);
  SSL_CTX_free(tls->ctx);
  asyncio__res_unlink(tls->loop, &tls->res);
  asyncio_transport_t *a = tls->app;
  a->tls = NULL;
  a->dead = 1;
  a->proto = NULL;
  if (!a->holds) asyncio__free_line(a, sizeof *a); /* else the last unhold frees it */
  asyncio__free(tls, sizeof *tls);
}

static void tls_unref(asyncio__tls_t *tls) {
  if (--tls->refs == 0) tls_free(tls);
}

/* Loop close: no callbacks; the app transport goes too (a sendfile's task is gone). */
static void tls_destroy(asyncio__res_t *r) {
  asyncio__tls_t *tls = (asyncio__tls_t *)((char *)r - offsetof(asyncio__tls_t, res));
  /* Scheduled callbacks and timers were dropped with the loop's queues. */
  tls->hs_timer = tls->sd_timer = ASYNCIO_HANDLE_NONE;
  if (tls->h_lost) asyncio__handle_release(tls->loop, tls->h_lost);
  tls->h_lost = NULL;
  tls->app->holds = 0;
  tls_free(tls);
}

static int is_ip_literal(const char *s) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/*
 * The object, with its app transport and SSL, before any transport exists.
 * With a factory, the app protocol comes from it once the handshake is
 * done; without, it is app_proto / app_inst, already connected (start_tls).
 */
static int tls_new(asyncio_loop_t *loop, const asyncio__tls_params_t *p,
                   asyncio_protocol_factory_fn factory, void *factory_arg,
                   const asyncio_protocol_t *app_proto, void *app_inst, asyncio__tls_t **out) {
  asyncio__net_t *net;
  int rc = asyncio__net_get(loop, &net);
  if (rc) return rc;
  if (!net->tls) {
    net->tls = asyncio__alloc(sizeof(tls_bufs_t));
    if (!net->tls) return -ENOMEM;
  }
  asyncio__tls_t *tls = asyncio__calloc(sizeof *tls);
  if (!tls) return -ENOMEM;
  asyncio_transport_t *a = asyncio__calloc_line(sizeof *a);
  tls->h_lost = asyncio__handle_new(loop);
  if (!a || !tls->h_lost) {
    rc = -ENOMEM;
    goto fail;
  }
  ERR_clear_error();
  tls->ssl = SSL_new(p->ctx);
  tls->in = BIO_new(BIO_s_mem());
  tls->out = BIO_new(BIO_s_mem());
  if (!tls->ssl || !tls->in || !tls->out) {
    rc = -ENOMEM;
    ERR_clear_error();
    BIO_free(tls->in);
    BIO_free(tls->out);
    goto fail;
  }
  /* An empty BIO means "wait for more", not end of file. */
  BIO_set_mem_eof_return(tls->in, -1);
  BIO_set_mem_eof_return(tls->out, -1);
  SSL_set_bio(tls->ssl, tls->in, tls->out);
  /*
   * Partial writes and a moving buffer: what SSL_write does not take now is
   * retried from the backlog's copy.  Released buffers: an idle connection
   * gives OpenSSL's 16 KiB record buffers back, as CPython's contexts do
   * (bpo-25672), so a server's idle connections cost little.
   */
  SSL_set_mode(tls->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                             SSL_MODE_RELEASE_BUFFERS);
  if (p->server_side) {
    SSL_set_accept_state(tls->ssl);
  } else {
    SSL_set_connect_state(tls->ssl);
    const char *h = p->server_hostname;
    if (h && *h) {
      int ok;
      if (is_ip_literal(h)) { /* no SNI for an address (RFC 6066); match it as one */
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(tls->ssl), h);
      } else {
        ok = SSL_set_tlsext_host_name(tls->ssl, h) && SSL_set1_host(tls->ssl, h);
      }
      if (!ok) {
        rc = tls_error(NULL, NULL) == -ENOMEM ? -ENOMEM : -EINVAL;
        goto fail;
      }
    }
  }
  SSL_CTX_up_ref(p->ctx);
  tls->ctx = p->ctx;
  tls->loop = loop;
  tls->server_side = (uint8_t)p->server_side;
  tls->verify_code = p->verify_code;
  tls->hs_timeout = p->handshake_timeout > 0 ? p->handshake_timeout : ASYNCIO_SSL_HANDSHAKE_TIMEOUT;
  tls->sd_timeout = p->shutdown_timeout > 0 ? p->shutdown_timeout : ASYNCIO_SSL_SHUTDOWN_TIMEOUT;
  tls->hs_timer = tls->sd_timer = ASYNCIO_HANDLE_NONE;
  tls->in_high = TLS_READ_HIGH;
  tls->in_low = TLS_READ_HIGH / 4;
  a->loop = loop;
  a->fd = -1;
  a->kind = ASYNCIO__TK_TLS;
  a->high = TLS_WRITE_HIGH;
  a->low = TLS_WRITE_HIGH / 4;
  a->tls = tls;
  tls->app = a;
  if (factory) {
    tls->factory = factory;
    tls->factory_arg = factory_arg;
  } else {
    a->proto = app_proto;
    a->inst = app_inst;
    tls->app_state = A_CON_MADE; /* start_tls: call_connection_made=False */
  }
  tls->res.destroy = tls_destroy;
  asyncio__res_link(loop, &tls->res);
  *out = tls;
  return 0;
fail:
  if (tls->ssl) SSL_free(tls->ssl);
  if (tls->ctx) SSL_CTX_free(tls->ctx);
  if (tls->h_lost) asyncio__handle_release(loop, tls->h_lost);
  if (a) asyncio__free_line(a, sizeof *a);
  asyncio__free(tls, sizeof *tls);
  return rc;
}

int asyncio__tls_transport_new(asyncio_loop_t *loop, int fd, const asyncio__tls_params_t *p,
                               asyncio_protocol_factory_fn factory, void *factory_arg,
                               asyncio_server_t *server, const struct sockaddr *peer,
                               socklen_t peerlen, asyncio_transport_t **under) {
  asyncio__tls_t *tls;
  int rc = tls_new(loop, p, factory, factory_arg, NULL, NULL, &tls);
  if (rc) return rc;
  tls->refs = 1; /* under's */
  rc = asyncio__transport_new(loop, fd, ASYNCIO__TK_SOCKET, tls_factory, tls, server, NULL, peer,
                              peerlen, 0, under);
  if (rc) {
    tls->refs = 0;
    tls->app->holds = 0;
    tls_free(tls);
  }
  return rc;
}

/*
 * Waits for the handshake (the creator's part of create_connection and
 * start_tls).  Returns 0 with the app transport, or the error; cancelled,
 * the connection is aborted (Python: transport.close() during the
 * handshake aborts).
 */
static int await_handshake(asyncio__tls_t *tls, asyncio_future_t *waiter,
                           asyncio_transport_t **transport, void **instance) {
  /*
   * While the handshake runs, tls->waiter's reference keeps the future, and
   * asyncio_await holds one while the task waits: ours goes first, so a task
   * destroyed by loop close while it waits leaves no future behind.  (A
   * handshake that already ended has released tls's: keep ours for it.)
   */
  int rc;
  if (!asyncio_future_done(waiter)) {
    asyncio__future_unref(waiter);
    rc = asyncio_await(waiter, NULL);
  } else {
    rc = asyncio_await(waiter, NULL);
    asyncio__future_unref(waiter);
  }
  if (rc > 0) rc = 0;
  tls->verify_code = NULL; /* the caller's, which may be gone once we return */
  if (rc == -ECANCELED && tls->under) abort_tls(tls);
  asyncio_transport_t *a = tls->app;
  /* Lost again before the caller could have it: as make_and_wait. */
  if (rc == 0 && (a->dead || !tls->wrapped)) rc = -ENOTCONN;
  if (rc == 0) {
    *transport = a;
    if (instance) *instance = a->inst;
  }
  tls_unref(tls);
  return rc;
}

int asyncio__tls_make_and_wait(asyncio_loop_t *loop, int fd, const asyncio__tls_params_t *p,
                               asyncio_protocol_factory_fn factory, void *factory_arg,
                               asyncio_transport_t **transport, void **instance, int *fd_taken) {
  asyncio_future_t *waiter;
  int rc = asyncio_future_new(&waiter, loop);
  if (rc) return rc;
  asyncio__tls_t *tls;
  rc = tls_new(loop, p, factory, factory_arg, NULL, NULL, &tls);
  if (rc) {
    asyncio__future_unref(waiter);
    return rc;
  }
  asyncio_transport_t *u;
  rc = asyncio__transport_new(loop, fd, ASYNCIO__TK_SOCKET, tls_factory, tls, NULL, NULL, NULL, 0,
                              0, &u);
  if (rc) {
    tls->app->holds = 0;
    tls_free(tls);
    asyncio__future_unref(waiter);
    return rc;
  }
  *fd_taken = 1;
  tls->refs = 2; /* under's and ours */
  tls->waiter = asyncio_future_ref(waiter);
  return await_handshake(tls, waiter, transport, instance);
}

int asyncio__tls_start(asyncio_loop_t *loop, asyncio_transport_t *t, struct ssl_ctx_st *ctx,
                       const asyncio_start_tls_options_t *o,
                       void (*swapped)(void *, asyncio_transport_t *), void *swapped_arg,
                       asyncio_transport_t **out) {
  if (out) *out = NULL;
  if (o && o->ssl_verify_code) *o->ssl_verify_code = X509_V_OK; /* nothing stale, whatever fails */
  if (!loop || !t || !ctx || !out) return -EINVAL;
  if (o && (!(o->ssl_handshake_timeout >= 0) || !(o->ssl_shutdown_timeout >= 0))) return -EINVAL;
  /* A client-side name on the server side: the sides are mixed up (Python ignores it). */
  if (o && o->server_side && o->server_hostname) return -EINVAL;
  int rc = asyncio__check_thread(loop);
  if (rc) return rc;
  if (asyncio__running_loop != loop || !loop->current) return ASYNCIO_ENOTASK;
  /*
   * _start_tls_compatible: stream sockets, and TLS app transports (TLS in
   * TLS) once their own handshake is done and while they are not closing.
   */
  if (t->dead || t->loop != loop || t->closing || t->conn_lost) return -EINVAL;
  int nested = t->kind == ASYNCIO__TK_TLS;
  if (!nested && t->kind != ASYNCIO__TK_SOCKET) return -EINVAL;
  if (nested && (!t->tls || t->tls->state != S_WRAPPED)) return -EINVAL;
  /* The handshake could not be written: Python would wait for its timeout. */
  if (t->eof) return -EINVAL;
  if (t->sf) return -EBUSY;
  asyncio__tls_params_t p = {0};
  p.ctx = ctx;
  p.server_side = o && o->server_side;
  p.server_hostname = o ? o->server_hostname : NULL;
  p.handshake_timeout = o ? o->ssl_handshake_timeout : 0;
  p.shutdown_timeout = o ? o->ssl_shutdown_timeout : 0;
  p.verify_code = o ? o->ssl_verify_code : NULL;
  asyncio_future_t *waiter;
  rc = asyncio_future_new(&waiter, loop);
  if (rc) return rc;
  asyncio__tls_t *tls;
  rc = tls_new(loop, &p, NULL, NULL, t->proto, t->inst, &tls);
  if (rc) {
    asyncio__future_unref(waiter);
    return rc;
  }
  if (nested && !(tls->obuf = asyncio__alloc(TLS_OUT_BUF))) {
    tls->app->holds = 0;
    tls_free(tls);
    asyncio__future_unref(waiter);
    return -ENOMEM;
  }
  tls->upgrade = 1;
  tls->refs = 2; /* under's and ours */
  tls->waiter = asyncio_future_ref(waiter);
  /* The old protocol may have been paused for writing: we inherit that. */
  tls->ssl_writing_paused = t->proto_paused;
  /*
   * Python pauses reading, swaps the protocol, then runs connection_made and
   * resume_reading as callbacks.  From a task both can run here: no data
   * can reach the new protocol in between.
   */
  t->holds++; /* it may be lost while we wait */
  asyncio_transport_set_protocol(t, &tls_protocol, tls);
  if (swapped) swapped(swapped_arg, tls->app);
  under_connection_made(t, tls);
  asyncio_transport_resume_reading(t);
  rc = await_handshake(tls, waiter, out, NULL);
  if (rc < 0 && !t->dead) asyncio_transport_close(t); /* Python: transport.close(); raise */
  asyncio__transport_unhold(t);
  return rc;
}

ASYNCIO_API int asyncio_loop_start_tls(asyncio_loop_t *loop, asyncio_transport_t *t,
                                       struct ssl_ctx_st *ctx,
                                       const asyncio_start_tls_options_t *o,
                                       asyncio_transport_t **out) {
  return asyncio__tls_start(loop, t, ctx, o, NULL, NULL, out);
}

/* ---- contexts ---------------------------------------------------------------------------- */

ASYNCIO_API int asyncio_ssl_create_default_context(int purpose, const char *cafile,
                                                   const char *capath, struct ssl_ctx_st **out) {
  if (out) *out = NULL;
  if (!out || (purpose != ASYNCIO_SSL_PURPOSE_SERVER_AUTH &&
               purpose != ASYNCIO_SSL_PURPOSE_CLIENT_AUTH))
    return -EINVAL;
  ERR_clear_error();
  int client = purpose == ASYNCIO_SSL_PURPOSE_SERVER_AUTH;
  SSL_CTX *ctx = SSL_CTX_new(client ? TLS_client_method() : TLS_server_method());
  if (!ctx) return tls_error(NULL, NULL);
  int ok = SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (ok && client) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (cafile || capath)
      ok = SSL_CTX_load_verify_locations(ctx, cafile, capath);
    else
      ok = SSL_CTX_set_default_verify_paths(ctx);
  } else if (ok && (cafile || capath)) {
    /* A server's CA list is for client certificates it may be told to ask for. */
    ok = SSL_CTX_load_verify_locations(ctx, cafile, capath);
  }
  if (!ok) {
    int rc = tls_error(NULL, NULL);
    SSL_CTX_free(ctx);
    return rc;
  }
  *out = ctx;
  return 0;
}
