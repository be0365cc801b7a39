/*
 * test_write_model.c - a stream socket transport's write side against a
 * reference model (include/asyncio/transports.h; Python: _SelectorSocketTransport
 * .write / .writelines / ._write_ready in Lib/asyncio/selector_events.py and
 * _FlowControlMixin in Lib/asyncio/transports.py).
 *
 * The transport wraps one end of a Unix socketpair or of a TCP loopback
 * connection with small kernel buffers on both ends, so that they fill
 * after a few KiB; the other end is read raw by the test, non-blocking, in
 * random amounts, so the test decides when the transport can drain.  The
 * main task runs a random sequence of write (0 bytes included), writelines
 * (empty pieces included), set_write_buffer_limits (valid, defaults by a
 * negative value, 0/0, refused high < low), peer reads and yields to the
 * loop, in phases where the peer reads little (the buffer climbs past the
 * high-water mark) or a lot (it drains below the low one); then, usually
 * with data still buffered, write_eof (odd seeds) or close (even seeds,
 * with writes, peer reads and yields after it until connection_lost), and
 * the peer reads to EOF.  Fixed seeds and our own PRNG: a failure names its
 * seed and step and reproduces.  Each case prints what it exercised (bytes,
 * pauses, the largest buffer); WM_TRACE=1 prints the state every 25 steps.
 * About 2 MiB and 2500 steps a case.
 *
 * What the kernel takes from a write is not known in advance, so the model
 * checks what holds whatever it takes.  Between two steps of the test the
 * transport only changes through the test's calls, since write_ready runs
 * only when the task yields; hence:
 *  - write / writelines: with something buffered, nothing is sent and the
 *    buffer grows by exactly the data (Python's write appends); with
 *    nothing buffered it grows by at most the data.  Never resume_writing;
 *    pause_writing exactly when not paused and the buffer is now above
 *    high.  Our writelines is modelled as write, as transports.h describes
 *    it (one writev when nothing is buffered, "returns as write"): CPython
 *    3.12+'s appends and runs _write_ready at once, so it may send, and
 *    even call resume_writing, with data already buffered, and it never
 *    calls _maybe_pause_protocol.
 *  - set_write_buffer_limits: the defaults as transports.h gives them;
 *    high < low is -EINVAL and changes nothing; pause_writing exactly when
 *    not paused and the buffer is above the new high; never resume_writing.
 *  - peer reads: the transport does not change.
 *  - yields: the buffer only shrinks; never pause_writing; resume_writing
 *    only while paused, with the buffer <= low when it is called; still
 *    paused after a drain means the buffer is above low.
 *  - always: pause/resume alternate starting with pause; not paused means
 *    the buffer is <= high; paused means it is not empty (it was > high >= 0
 *    at the pause and only a drain makes it smaller, which resumes at 0).
 *  - the peer receives every byte that the model says was accepted exactly
 *    once and in order (each stream position has its own pseudo-random
 *    byte; the test scribbles over its source buffer after each call, so a
 *    transport that kept a pointer instead of a copy is caught), then EOF.
 */
#include "net_helpers.h"
#include "model_rng.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <time.h>


/* The byte at stream position i, different per seed (splitmix64). */
static uint8_t stream_byte(uint64_t seed, uint64_t i) {
  uint64_t z = seed * 0x9e3779b97f4a7c15ull + i;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return (uint8_t)(z ^ (z >> 31));
}

typedef struct model {
  uint64_t seed;
  int step;
  const char *op;
  asyncio_transport_t *t;
  int raw;
  /* from the callbacks */
  bool paused;
  int npause, nresume, lost, lost_err;
  /* the stream */
  uint64_t accepted; /* bytes the transport took (the peer must get them all) */
  uint64_t received; /* bytes the peer read so far */
  bool peer_eof;
  size_t low, high; /* the model's limits */
  size_t max_buffered;
  uint64_t taken_after_close, dropped_after_close;
} model_t;

#define MCHECK(m, cond)                                                                    \
  do {                                                                                     \
    if (!(cond) && !soft_fail[0])                                                          \
      snprintf(soft_fail, sizeof soft_fail, "%s:%d: seed %llu step %d (%s): %s failed",    \
               __FILE__, __LINE__, (unsigned long long)(m)->seed, (m)->step, (m)->op,      \
               #cond);                                                                     \
  } while (0)

static size_t wsize(model_t *m) { return asyncio_transport_get_write_buffer_size(m->t); }

static void mp_made(asyncio_transport_t *t, void *u) {
  model_t *m = u;
  m->t = t;
}
static void mp_lost(asyncio_transport_t *t, int err, void *u) {
  model_t *m = u;
  MCHECK(m, m->t == t);
  m->lost++;
  m->lost_err = err;
}
/* The rules of _maybe_pause_protocol / _maybe_resume_protocol, at the call. */
static void mp_pause(asyncio_transport_t *t, void *u) {
  model_t *m = u;
  MCHECK(m, !m->paused);
  MCHECK(m, asyncio_transport_get_write_buffer_size(t) > m->high);
  m->paused = true;
  m->npause++;
}
static void mp_resume(asyncio_transport_t *t, void *u) {
  model_t *m = u;
  MCHECK(m, m->paused);
  MCHECK(m, asyncio_transport_get_write_buffer_size(t) <= m->low);
  m->paused = false;
  m->nresume++;
}
static void mp_data(asyncio_transport_t *t, const void *d, size_t n, void *u) {
  model_t *m = u;
  (void)t, (void)d, (void)n;
  MCHECK(m, !"the raw peer never sends");
}

static const asyncio_protocol_t model_proto = {
    .connection_made = mp_made,
    .connection_lost = mp_lost,
    .pause_writing = mp_pause,
    .resume_writing = mp_resume,
    .data_received = mp_data,
};

static int model_factory(void *arg, const asyncio_protocol_t **proto, void **inst) {
  *proto = &model_proto;
  *inst = arg;
  return 0;
}

/* Holds at every point the test looks. */
static void check_always(model_t *m) {
  size_t s = wsize(m);
  MCHECK(m, m->npause == m->nresume + (m->paused ? 1 : 0));
  if (!m->paused) MCHECK(m, s <= m->high);
  if (m->paused) MCHECK(m, s > 0);
  size_t lo = 0, hi = 0;
  MCHECK(m, asyncio_transport_get_write_buffer_limits(m->t, &lo, &hi) == 0);
  MCHECK(m, lo == m->low && hi == m->high);
  if (s > m->max_buffered) m->max_buffered = s;
}

/* ---- the peer ---------------------------------------------------------------------------- */

/* Reads up to `want` bytes (non-blocking) and checks them against the stream. */
static void peer_read(model_t *m, size_t want) {
  static uint8_t buf[32 * 1024];
  while (want && !m->peer_eof) {
    size_t k = want < sizeof buf ? want : sizeof buf;
    ssize_t r = recv(m->raw, buf, k, MSG_DONTWAIT);
    if (r < 0) {
      MCHECK(m, errno == EAGAIN || errno == EWOULDBLOCK);
      return;
    }
    if (r == 0) {
      m->peer_eof = true;
      return;
    }
    MCHECK(m, m->received + (uint64_t)r <= m->accepted);
    for (ssize_t i = 0; i < r; i++) {
      if (buf[i] != stream_byte(m->seed, m->received + (uint64_t)i)) {
        MCHECK(m, !"the peer got a wrong byte");
        break;
      }
    }
    m->received += (uint64_t)r;
    want -= (size_t)r;
  }
}

/* ---- the operations ------------------------------------------------------------------------ */

static uint8_t g_src[160 * 1024];

/* Fills g_src with the next n stream bytes (from position `at`). */
static void fill(model_t *m, uint64_t at, size_t n) {
  for (size_t i = 0; i < n; i++) g_src[i] = stream_byte(m->seed, at + i);
}

/* Mostly small: the peer drains about one kernel buffer (a few KiB) per read and yield. */
static size_t write_len(rng_t *r) {
  switch (below(r, 16)) {
    case 0: case 1: return 0;
    case 2: case 3: case 4: return 1 + below(r, 64);
    case 5: case 6: case 7: case 8: return 1 + below(r, 1024);
    case 9: case 10: case 11: case 12: return 1 + below(r, 4096);
    case 13: case 14: return 1 + below(r, 16 * 1024);
    default: return below(r, 4) ? 1 + below(r, 16 * 1024) : 1 + below(r, 96 * 1024);
  }
}

/*
 * One write or writelines.  `closing`: close() was called; the transport
 * still takes data while its buffer is not empty, and drops it otherwise.
 */
static void op_write(model_t *m, rng_t *r, bool lines, bool closing) {
  size_t before = wsize(m);
  int np = m->npause, nr = m->nresume;
  bool was_paused = m->paused;
  size_t total = 0;
  int rc;
  if (!lines) {
    m->op = "write";
    total = write_len(r);
    fill(m, m->accepted, total);
    rc = asyncio_transport_write(m->t, total ? g_src : NULL, total);
  } else {
    m->op = "writelines";
    /* Now and then more pieces than one sendmsg takes (64): the rest is buffered. */
    struct iovec iov[80];
    bool many = below(r, 8) == 0;
    int cnt = many ? 60 + (int)below(r, 21) : (int)below(r, 9);
    size_t limit = sizeof g_src;
    for (int i = 0; i < cnt; i++) {
      size_t n = below(r, 4) == 0 ? 0 : many ? below(r, 512) : write_len(r) / 4;
      if (n > limit - total) n = limit - total;
      iov[i].iov_base = g_src + total;
      iov[i].iov_len = n;
      total += n;
    }
    fill(m, m->accepted, total);
    rc = asyncio_transport_writelines(m->t, cnt ? iov : NULL, cnt);
  }
  MCHECK(m, rc == 0);
  memset(g_src, 0xa5, total); /* the transport must have copied what it kept */
  size_t after = wsize(m);
  bool dropped = closing && before == 0;
  if (!dropped) m->accepted += total;
  if (closing) *(dropped ? &m->dropped_after_close : &m->taken_after_close) += total;
  if (dropped || total == 0)
    MCHECK(m, after == before);
  else if (before > 0)
    MCHECK(m, after == before + total); /* buffered: appended, no send */
  else
    MCHECK(m, after <= total);
  MCHECK(m, m->nresume == nr);
  bool want_pause = !was_paused && after > m->high;
  MCHECK(m, m->npause == np + (want_pause ? 1 : 0));
}

/* set_write_buffer_limits(high, low), a negative value meaning None. */
static void op_limits(model_t *m, rng_t *r) {
  m->op = "set_write_buffer_limits";
  static const ssize_t marks[] = {-1, 0, 1, 100, 1000, 2048, 4096, 8192, 10000, 16384, 32768,
                                  65536, 200000};
  ssize_t high = marks[below(r, sizeof marks / sizeof marks[0])];
  ssize_t low = marks[below(r, sizeof marks / sizeof marks[0])];
  if (below(r, 3) == 0) low = high < 0 ? -1 : (ssize_t)below(r, (size_t)high + 1);
  if (below(r, 8) == 0) high = low = 0;
  if (below(r, 10) == 0) high = low = -1;
  size_t h = high >= 0 ? (size_t)high : low >= 0 ? 4 * (size_t)low : ASYNCIO_WRITE_HIGH_WATER;
  size_t l = low >= 0 ? (size_t)low : h / 4;
  bool ok = h >= l;
  size_t s = wsize(m);
  int np = m->npause, nr = m->nresume;
  bool was_paused = m->paused;
  if (ok) {
    /* The callbacks judge by the new marks. */
    m->high = h;
    m->low = l;
  }
  int rc = asyncio_transport_set_write_buffer_limits(m->t, high, low);
  MCHECK(m, rc == (ok ? 0 : -EINVAL));
  MCHECK(m, wsize(m) == s);
  MCHECK(m, m->nresume == nr); /* only a drain resumes */
  MCHECK(m, m->npause == np + (ok && !was_paused && s > h ? 1 : 0));
}

/* Yields to the loop k times: the transport may drain. */
static int op_yield(model_t *m, int k) {
  m->op = "yield";
  size_t before = wsize(m);
  int np = m->npause, nr = m->nresume;
  bool was_paused = m->paused;
  for (int i = 0; i < k; i++) {
    int rc = asyncio_sleep(0);
    if (rc < 0) return rc;
  }
  if (m->lost) return 0; /* after close(): the transport is gone */
  size_t after = wsize(m);
  MCHECK(m, after <= before);
  MCHECK(m, m->npause == np);
  MCHECK(m, m->nresume <= nr + 1);
  if (m->nresume > nr) MCHECK(m, was_paused);
  if (m->paused && after < before) MCHECK(m, after > m->low);
  return 0;
}

static void op_peer_read(model_t *m, rng_t *r) {
  m->op = "peer read";
  size_t before = wsize(m);
  int np = m->npause, nr = m->nresume;
  size_t want = below(r, 4) == 0 ? below(r, 64) : below(r, 48 * 1024);
  peer_read(m, want);
  MCHECK(m, wsize(m) == before && m->npause == np && m->nresume == nr);
}

/* ---- a run -------------------------------------------------------------------------------- */

enum { PAIR_UNIX, PAIR_TCP };

typedef struct run_arg {
  int kind;
  uint64_t seed;
  int steps;
  /* what the run did, printed so that a reader sees it exercised something */
  uint64_t accepted;
  int npause;
  size_t max_buffered;
  bool ended_eof;
  uint64_t taken_after_close, dropped_after_close;
} run_arg_t;

static void small_bufs(int fd) {
  int v = 4096;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
}

/* Two connected stream sockets with small buffers: sv[0] for the transport, sv[1] raw. */
static int make_pair(int kind, int sv[2]) {
  if (kind == PAIR_UNIX) {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
    small_bufs(sv[0]);
    small_bufs(sv[1]);
    return 0;
  }
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int rc = 0;
  struct sockaddr_in a = {0};
  socklen_t al = sizeof a;
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  /* Before connect and listen, so that the window is small from the start. */
  if (ls >= 0) small_bufs(ls);
  if (c >= 0) small_bufs(c);
  if (ls < 0 || c < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 1) < 0 ||
      getsockname(ls, (struct sockaddr *)&a, &al) < 0 ||
      connect(c, (struct sockaddr *)&a, sizeof a) < 0) {
    rc = -errno;
  } else {
    int s = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    if (s < 0) {
      rc = -errno;
    } else {
      sv[0] = c;
      sv[1] = s;
      c = -1;
    }
  }
  if (ls >= 0) close(ls);
  if (c >= 0) close(c);
  return rc;
}

static int model_main(void *arg) {
  run_arg_t *ra = arg;
  model_t m = {0};
  m.seed = ra->seed;
  m.op = "setup";
  m.low = ASYNCIO_WRITE_LOW_WATER;
  m.high = ASYNCIO_WRITE_HIGH_WATER;
  rng_t r = {ra->seed * 0x9e3779b97f4a7c15ull | 1};
  int sv[2];
  int rc = make_pair(ra->kind, sv);
  MCHECK(&m, rc == 0);
  if (rc < 0) return rc;
  asyncio_transport_t *t = NULL;
  rc = asyncio_loop_connect_accepted_socket(asyncio_get_running_loop(), model_factory, &m, sv[0],
                                            NULL, &t, NULL);
  MCHECK(&m, rc == 0 && t == m.t);
  if (rc < 0) {
    close(sv[0]);
    close(sv[1]);
    return rc;
  }
  m.raw = sv[1];
  check_always(&m);

  bool filling = false;
  int phase_left = 0;
  for (m.step = 1; m.step <= ra->steps && !soft_fail[0]; m.step++) {
    /* Phases of 20..80 steps, filling (the peer reads little) or draining (the peer reads
     * a lot), so that the buffer crosses the water marks up and down many times. */
    if (--phase_left <= 0) {
      filling = below(&r, 2) == 0;
      phase_left = 20 + (int)below(&r, 61);
    }
    unsigned c = (unsigned)below(&r, 100);
    unsigned w = filling ? 45 : 15;
    if (c < w) {
      /* Bounded: past 256 KiB only the other operations run. */
      if (wsize(&m) < 256 * 1024) op_write(&m, &r, below(&r, 3) == 0, false);
    } else if (c < w + 8) {
      op_limits(&m, &r);
    } else if (c < w + 8 + (filling ? 12 : 30)) {
      op_peer_read(&m, &r);
    } else if (!filling && c < w + 8 + 30 + 15) {
      /* A burst: the peer reads and the transport refills the kernel buffer, a few times. */
      for (int i = 0, n = 2 + (int)below(&r, 10); i < n && !soft_fail[0]; i++) {
        op_peer_read(&m, &r);
        check_always(&m);
        rc = op_yield(&m, 1);
        if (rc < 0) return rc;
        check_always(&m);
      }
    } else {
      rc = op_yield(&m, 1 + (int)below(&r, 3));
      if (rc < 0) return rc;
    }
    check_always(&m);
    if (getenv("WM_TRACE") && m.step % 25 == 0)
      fprintf(stderr, "step %d: buffered %zu accepted %llu received %llu paused %d hi %zu lo %zu\n",
              m.step, wsize(&m), (unsigned long long)m.accepted,
              (unsigned long long)m.received, m.paused, m.high, m.low);
  }

  /* The end: write_eof (writes then refused) or close (writes taken while flushing). */
  /* Usually end with data buffered, so that write_eof / close have something to flush. */
  if (below(&r, 4) != 0)
    for (int i = 0; i < 40 && wsize(&m) == 0 && !soft_fail[0]; i++) {
      op_write(&m, &r, below(&r, 3) == 0, false);
      check_always(&m);
    }
  m.op = "end";
  bool use_eof = ra->seed % 2 == 1; /* odd seeds write_eof, even ones close */
  if (use_eof) {
    MCHECK(&m, asyncio_transport_write_eof(t) == 0);
    MCHECK(&m, asyncio_transport_write(t, "x", 1) == -EPIPE);
    MCHECK(&m, asyncio_transport_write(t, "", 0) == -EPIPE);
    MCHECK(&m, asyncio_transport_writelines(t, NULL, 0) == -EPIPE);
  } else {
    /* close() keeps flushing, and takes more data while its buffer is not empty; the loop
     * may run in between, until connection_lost, after which the transport is gone. */
    MCHECK(&m, asyncio_transport_close(t) == 0);
    for (int i = 0, n = (int)below(&r, 12); i < n && m.lost == 0 && !soft_fail[0]; i++) {
      switch (below(&r, 3)) {
        case 0: op_write(&m, &r, below(&r, 2), true); break;
        case 1: op_peer_read(&m, &r); break;
        default:
          rc = op_yield(&m, 1);
          if (rc < 0) return rc;
      }
      if (m.lost == 0) check_always(&m);
    }
  }
  /* The peer reads everything; the loop runs between reads. */
  for (int i = 0; !m.peer_eof && !soft_fail[0]; i++) {
    if (i > 20000) {
      MCHECK(&m, !"the peer never saw EOF");
      break;
    }
    m.op = "final peer read";
    peer_read(&m, 64 * 1024);
    if (m.lost == 0) check_always(&m);
    rc = asyncio_sleep(i < 1000 ? 0 : 0.001);
    if (rc < 0) return rc;
  }
  m.op = "after EOF";
  MCHECK(&m, m.received == m.accepted);
  if (use_eof) {
    MCHECK(&m, m.lost == 0 && wsize(&m) == 0);
    MCHECK(&m, !m.paused);
    MCHECK(&m, asyncio_transport_close(t) == 0);
  }
  for (int i = 0; m.lost == 0 && i < 20000; i++) {
    rc = asyncio_sleep(0.001);
    if (rc < 0) return rc;
  }
  MCHECK(&m, m.lost == 1 && m.lost_err == 0);
  /* A close that flushed resumes as the buffer drains; a paused protocol at the end is
   * only possible if nothing drained after the pause, and everything did. */
  MCHECK(&m, !m.paused);
  close(m.raw);
  ra->accepted = m.accepted;
  ra->npause = m.npause;
  ra->max_buffered = m.max_buffered;
  ra->ended_eof = use_eof;
  ra->taken_after_close = m.taken_after_close;
  ra->dropped_after_close = m.dropped_after_close;
  return 0;
}

static void run_case(int kind, uint64_t seed) {
  run_arg_t a = {kind, seed, 2500, 0, 0, 0, false, 0, 0};
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int rc = run_main(model_main, &a);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  print_message("seed %llu: %.3f s, %llu bytes, %d pauses, at most %zu buffered, %s"
                " (after it %llu bytes taken, %llu dropped)\n",
                (unsigned long long)seed,
                (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
                (unsigned long long)a.accepted, a.npause, a.max_buffered,
                a.ended_eof ? "write_eof" : "close", (unsigned long long)a.taken_after_close,
                (unsigned long long)a.dropped_after_close);
  ASSERT_SOFT();
  assert_ok(rc);
}

TEST(unix_seed_1) { run_case(PAIR_UNIX, 1); }
TEST(unix_seed_2) { run_case(PAIR_UNIX, 2); }
TEST(unix_seed_3) { run_case(PAIR_UNIX, 3); }
TEST(unix_seed_4) { run_case(PAIR_UNIX, 4); }
TEST(unix_seed_5) { run_case(PAIR_UNIX, 5); }
TEST(unix_seed_6) { run_case(PAIR_UNIX, 6); }
TEST(tcp_seed_1) { run_case(PAIR_TCP, 1); }
TEST(tcp_seed_2) { run_case(PAIR_TCP, 2); }
TEST(tcp_seed_3) { run_case(PAIR_TCP, 3); }
TEST(tcp_seed_4) { run_case(PAIR_TCP, 4); }
TEST(tcp_seed_5) { run_case(PAIR_TCP, 5); }
TEST(tcp_seed_6) { run_case(PAIR_TCP, 6); }
