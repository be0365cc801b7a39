/*
 * test_streams.c - StreamReader / StreamWriter, open_connection and
 * start_server (include/asyncio/streams.h).
 *
 * Python origin: Lib/asyncio/streams.py and the behaviour tested in
 * Lib/test/test_asyncio/test_streams.py.  Peers are real: TCP on
 * 127.0.0.1 and ::1 (port 0), Unix sockets in the abstract namespace, and
 * a socketpair whose raw end the test drives byte by byte.  Nothing
 * asserts timings; waits are bounded only to keep a broken test from
 * hanging.
 */
#include "stream_helpers.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/un.h>

/* ---- helpers ------------------------------------------------------------------------ */

static int g_unix_seq;
static void unix_path(char *buf, size_t n) {
  snprintf(buf, n, "@asyncio-test-streams-%d-%d", (int)getpid(), ++g_unix_seq);
}

/* An echo handler: read(), write, drain, until EOF; then close. */
typedef struct echo_srv {
  int handlers, done, last_rc;
  bool use_lines;
} echo_srv_t;

static int echo_handler(reader_t *r, writer_t *w, void *arg) {
  echo_srv_t *e = arg;
  e->handlers++;
  static __thread char buf[256 * 1024];
  int rc = 0;
  for (;;) {
    ssize_t n;
    if (e->use_lines) {
      const char *line;
      n = asyncio_stream_readline(r, &line);
      if (n > 0) rc = asyncio_stream_write(w, line, (size_t)n);
    } else {
      n = asyncio_stream_read(r, buf, sizeof buf);
      if (n > 0) rc = asyncio_stream_write(w, buf, (size_t)n);
    }
    if (n <= 0) {
      rc = (int)n;
      break;
    }
    if (rc < 0) break;
    if ((rc = asyncio_stream_drain(w)) < 0) break;
  }
  e->last_rc = rc;
  e->done++;
  return rc;
}

/* ---- echo over TCP (v4, v6) and Unix sockets ------------------------------------------ */

typedef struct echo_ctx {
  const char *host; /* NULL: Unix */
  echo_srv_t srv;
} echo_ctx_t;

static int echo_main(void *arg) {
  echo_ctx_t *c = arg;
  asyncio_server_t *srv = NULL;
  char path[108];
  c->srv.use_lines = true;
  if (c->host) {
    CHECK_RC(asyncio_start_server(echo_handler, &c->srv, c->host, 0, NULL, &srv), 0);
  } else {
    unix_path(path, sizeof path);
    CHECK_RC(asyncio_start_unix_server(echo_handler, &c->srv, path, NULL, &srv), 0);
  }
  if (!srv) return -1;
  reader_t *r = NULL;
  writer_t *w = NULL;
  if (c->host)
    CHECK_RC(asyncio_open_connection(c->host, server_port(srv, 0), NULL, &r, &w), 0);
  else
    CHECK_RC(asyncio_open_unix_connection(path, NULL, &r, &w), 0);
  if (!r) return -1;
  CHECK(asyncio_stream_transport(w) != NULL);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  CHECK_RC(asyncio_stream_get_peername(w, (struct sockaddr *)&ss, &sl), 0);
  sl = sizeof ss;
  CHECK_RC(asyncio_stream_get_sockname(w, (struct sockaddr *)&ss, &sl), 0);
  CHECK(asyncio_stream_can_write_eof(w));
  for (int i = 0; i < 20; i++) {
    char msg[64];
    int n = snprintf(msg, sizeof msg, "line %d\n", i);
    CHECK_RC(asyncio_stream_write(w, msg, (size_t)n), 0);
    CHECK_RC(asyncio_stream_drain(w), 0);
    const char *line = NULL;
    ssize_t got = asyncio_stream_readline(r, &line);
    CHECK(got == n);
    if (got == n) CHECK(memcmp(line, msg, (size_t)n) == 0);
  }
  struct iovec iov[3] = {{"a", 1}, {"b", 1}, {"c\n", 2}};
  CHECK_RC(asyncio_stream_writelines(w, iov, 3), 0);
  const char *line = NULL;
  CHECK(asyncio_stream_readline(r, &line) == 4);
  if (line) CHECK(memcmp(line, "abc\n", 4) == 0);
  /* Half-close: the server sees EOF, returns, and the library closes its side. */
  CHECK_RC(asyncio_stream_write_eof(w), 0);
  CHECK_RC(asyncio_stream_write(w, "x", 1), -EPIPE);
  CHECK(asyncio_stream_readline(r, &line) == 0);
  CHECK(asyncio_stream_at_eof(r));
  CHECK_RC(asyncio_stream_close(w), 0);
  CHECK(asyncio_stream_is_closing(w));
  CHECK_RC(asyncio_stream_close(w), 0); /* idempotent */
  CHECK_RC(asyncio_stream_write(w, "x", 1), ASYNCIO_ECLOSED);
  CHECK_RC(asyncio_stream_wait_closed(w), 0);
  CHECK(asyncio_stream_transport(w) == NULL);
  CHECK_RC(asyncio_stream_drain(w), -ECONNRESET); /* Python: "Connection lost" */
  CHECK_RC(asyncio_stream_wait_closed(w), 0);
  CHECK_RC(asyncio_stream_reader_free(r), 0);
  CHECK_RC(asyncio_stream_writer_free(w), 0);
  CHECK_RC(asyncio_server_close(srv), 0);
  CHECK_RC(asyncio_server_wait_closed(srv), 0);
  CHECK_RC(asyncio_server_free(srv), 0);
  CHECK(c->srv.handlers == 1 && c->srv.done == 1 && c->srv.last_rc == 0);
  return 0;
}

TEST(echo_tcp4) {
  echo_ctx_t c = {"127.0.0.1", {0}};
  assert_ok(run_main(echo_main, &c));
  ASSERT_SOFT();
}

TEST(echo_tcp6) {
  if (!have_ipv6()) skip();
  echo_ctx_t c = {"::1", {0}};
  assert_ok(run_main(echo_main, &c));
  ASSERT_SOFT();
}

TEST(echo_unix) {
  echo_ctx_t c = {NULL, {0}};
  assert_ok(run_main(echo_main, &c));
  ASSERT_SOFT();
}

/* ---- reading: read, read_all, readexactly ------------------------------------------ */

static int read_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  int raw;
  CHECK_RC(pair_open(0, &r, &w, &raw), 0);
  char buf[64];
  raw_write(raw, "hello world");
  CHECK(asyncio_stream_read(r, buf, 0) == 0);
  /* A read waiting on an empty buffer receives into buf: at most n bytes. */
  CHECK(asyncio_stream_read(r, buf, 5) == 5);
  CHECK(memcmp(buf, "hello", 5) == 0);
  CHECK(asyncio_stream_read(r, buf, sizeof buf) == 6);
  CHECK(memcmp(buf, " world", 6) == 0);
  CHECK(!asyncio_stream_at_eof(r));
  /* A waiting read gets the next chunk (directly into buf). */
  raw_write(raw, "more");
  CHECK(asyncio_stream_read(r, buf, sizeof buf) == 4);
  shutdown(raw, SHUT_WR);
  CHECK(asyncio_stream_read(r, buf, sizeof buf) == 0);
  CHECK(asyncio_stream_at_eof(r));
  CHECK(asyncio_stream_read(r, buf, sizeof buf) == 0);
  /* The writer still works after the peer's EOF (half-closed). */
  CHECK_RC(asyncio_stream_write(w, "back", 4), 0);
  CHECK_RC(asyncio_stream_drain(w), 0);
  WAIT_UNTIL(recv(raw, buf, sizeof buf, MSG_DONTWAIT | MSG_PEEK) == 4);
  pair_close(r, w, raw);
  return 0;
}

TEST(read_n) {
  assert_ok(run_main(read_main, NULL));
  ASSERT_SOFT();
}

typedef struct ra {
  reader_t *r;
  char **data;
  size_t *len;
  int rc;
} ra_t;

static int ra_fn(void *a) {
  ra_t *x = a;
  x->rc = asyncio_stream_read_all(x->r, x->data, x->len);
  return 0;
}

static int read_all_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  int raw;
  CHECK_RC(pair_open(1024, &r, &w, &raw), 0);
  /* A writer task feeds 300 KiB (more than 2 * limit: the reader pauses and resumes). */
  size_t total = 300 * 1024;
  char *src = malloc(total);
  for (size_t i = 0; i < total; i++) src[i] = (char)(i * 7 + 3);
  int fl = fcntl(raw, F_GETFL);
  fcntl(raw, F_SETFL, fl | O_NONBLOCK);
  size_t off = 0;
  char *data = NULL;
  size_t len = 0;
  /* Feed in pieces while read_all runs in a task. */
  ra_t ra = {r, &data, &len, 1};
  asyncio_task_t *t = NULL;
  CHECK_RC(asyncio_create_task(&t, ra_fn, &ra, NULL), 0);
  while (off < total) {
    ssize_t k = write(raw, src + off, total - off);
    if (k > 0) off += (size_t)k;
    CHECK_RC(asyncio_sleep(0.001), 0);
  }
  shutdown(raw, SHUT_WR);
  CHECK_RC(asyncio_await(t, NULL), 0);
  asyncio_task_free(t);
  CHECK_RC(ra.rc, 0);
  CHECK(len == total);
  if (data && len == total) {
    CHECK(memcmp(data, src, total) == 0);
    CHECK(data[len] == 0);
  }
  asyncio_stream_free_data(data, len);
  /* At EOF: an empty result. */
  CHECK_RC(asyncio_stream_read_all(r, &data, &len), 0);
  CHECK(len == 0 && data && data[0] == 0);
  asyncio_stream_free_data(data, len);
  free(src);
  pair_close(r, w, raw);
  return 0;
}

TEST(read_all) {
  assert_ok(run_main(read_all_main, NULL));
  ASSERT_SOFT();
}

static int readexactly_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  int raw;
  CHECK_RC(pair_open(0, &r, &w, &raw), 0);
  char buf[16];
  raw_write(raw, "abcdef");
  CHECK_RC(asyncio_stream_readexactly(r, buf, 0), 0);
  CHECK_RC(asyncio_stream_readexactly(r, buf, 4), 0);
  CHECK(memcmp(buf, "abcd", 4) == 0);
  raw_write(raw, "gh");
  CHECK_RC(asyncio_stream_readexactly(r, buf, 3), 0); /* "ef" buffered + "g" */
  CHECK(memcmp(buf, "efg", 3) == 0);
  shutdown(raw, SHUT_WR);
  memset(buf, 0, sizeof buf);
  CHECK_RC(asyncio_stream_readexactly(r, buf, 4), ASYNCIO_EINCOMPLETEREAD);
  const char *p = (const char *)1;
  size_t plen = 0;
  CHECK_RC(asyncio_stream_partial(r, &p, &plen), 0);
  CHECK(p == NULL && plen == 1 && buf[0] == 'h'); /* partial: in the caller's buffer */
  CHECK(asyncio_stream_at_eof(r));
  CHECK_RC(asyncio_stream_readexactly(r, buf, 4), ASYNCIO_EINCOMPLETEREAD);
  CHECK_RC(asyncio_stream_partial(r, &p, &plen), 0);
  CHECK(plen == 0);
  pair_close(r, w, raw);
  return 0;
}

TEST(readexactly_and_incomplete) {
  assert_ok(run_main(readexactly_main, NULL));
  ASSERT_SOFT();
}

/* ---- readline / readuntil ---------------------------------------------------------- */

#define EXPECT_LINE(r, text)                                                   \
  do {                                                                         \
    const char *l__ = NULL;                                                    \
    ssize_t n__ = asyncio_stream_readline((r), &l__);                          \
    CHECK(n__ == (ssize_t)strlen(text));                                       \
    if (n__ == (ssize_t)strlen(text)) CHECK(memcmp(l__, text, strlen(text)) == 0); \
  } while (0)

static int readline_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  int raw;
  CHECK_RC(pair_open(0, &r, &w, &raw), 0);
  raw_write(raw, "line1\nline2\n\npartial");
  EXPECT_LINE(r, "line1\n");
  /* The borrowed line stays valid across suspensions until the next call. */
  const char *l = NULL;
  CHECK(asyncio_stream_readline(r, &l) == 6);
  raw_write(raw, " more data");
  CHECK_RC(asyncio_sleep(0.001), 0);
  WAIT_UNTIL(asyncio_stream_buffered(r) == 18);
  CHECK(memcmp(l, "line2\n", 6) == 0);
  EXPECT_LINE(r, "\n");
  shutdown(raw, SHUT_WR);
  EXPECT_LINE(r, "partial more data"); /* no trailing newline at EOF */
  EXPECT_LINE(r, "");
  CHECK(asyncio_stream_at_eof(r));
  pair_close(r, w, raw);
  return 0;
}

TEST(readline_eof) {
  assert_ok(run_main(readline_main, NULL));
  ASSERT_SOFT();
}

static int readline_limit_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  int raw;
  CHECK_RC(pair_open(16, &r, &w, &raw), 0);
  /* Separator found, but beyond the limit: the line is dropped through its '\n'. */
  raw_write(raw, "0123456789abcdefghij\nnext\n");
  WAIT_UNTIL(asyncio_stream_buffered(r) == 26);
  const char *l;
  CHECK(asyncio_stream_readline(r, &l) == ASYNCIO_ELIMITOVERRUN);
  CHECK(asyncio_stream_overrun_consumed(r) == 20);
  EXPECT_LINE(r, "next\n");
  CHECK(asyncio_stream_overrun_consumed(r) == 0); /* the next call clears it */
  /* Not found within the limit: everything looked at is dropped. */
  raw_write(raw, "0123456789012345678901234567890123456789");
  WAIT_UNTIL(asyncio_stream_buffered(r) == 40);
  CHECK(asyncio_stream_readline(r, &l) == ASYNCIO_ELIMITOVERRUN);
  CHECK(asyncio_stream_overrun_consumed(r) == 40);
  CHECK(asyncio_stream_buffered(r) == 0);
  raw_write(raw, "ok\n");
  EXPECT_LINE(r, "ok\n");
  /* readuntil keeps the data on LimitOverrun. */
  raw_write(raw, "01234567890123456789|");
  WAIT_UNTIL(asyncio_stream_buffered(r) == 21);
  CHECK(asyncio_stream_readuntil(r, "|", 1, &l) == ASYNCIO_ELIMITOVERRUN);
  CHECK(asyncio_stream_overrun_consumed(r) == 20);
  CHECK(asyncio_stream_buffered(r) == 21);
  char buf[32];
  CHECK_RC(asyncio_stream_readexactly(r, buf, 21), 0);
  CHECK(asyncio_stream_overrun_consumed(r) == 0);
  pair_close(r, w, raw);
  return 0;
}

TEST(readline_longer_than_limit) {
  assert_ok(run_main(readline_limit_main, NULL));
  ASSERT_SOFT();
}

/* streams._DEFAULT_LIMIT: a line may end at offset 64 KiB, not one byte later. */
static int default_limit_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  int raw;
  CHECK_RC(pair_open(0, &r, &w, &raw), 0); /* limit 0: the default */
  const size_t L = ASYNCIO_STREAM_LIMIT;
  CHECK(L == 64 * 1024);
  char *big = malloc(L + 2);
  if (!big) return -ENOMEM;
  memset(big, 'a', L + 1);
  big[L + 1] = '\n';
  const char *l = NULL;
  CHECK(write(raw, big + 1, L + 1) == (ssize_t)(L + 1)); /* separator at index L */
  CHECK(asyncio_stream_readline(r, &l) == (ssize_t)(L + 1));
  CHECK(write(raw, big, L + 2) == (ssize_t)(L + 2)); /* separator at index L + 1 */
  WAIT_UNTIL(asyncio_stream_buffered(r) == L + 2);
  CHECK(asyncio_stream_readline(r, &l) == ASYNCIO_ELIMITOVERRUN);
  CHECK(asyncio_stream_overrun_consumed(r) == L + 1);
  CHECK(asyncio_stream_buffered(r) == 0);
  raw_write(raw, "ok\n");
  EXPECT_LINE(r, "ok\n");
  free(big);
  pair_close(r, w, raw);
  return 0;
}

TEST(readline_default_limit) {
  assert_ok(run_main(default_limit_main, NULL));
  ASSERT_SOFT();
}

static int readuntil_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  int raw;
  CHECK_RC(pair_open(0, &r, &w, &raw), 0);
  const char *out = NULL;
  raw_write(raw, "abcEND\r\nxyz\nEN");
  const void *seps[3] = {"\r\n", "\n", "END"};
  size_t lens[3] = {2, 1, 3};
  CHECK(asyncio_stream_readuntil_any(r, seps, lens, 3, &out) == 6); /* END ends first */
  if (out) CHECK(memcmp(out, "abcEND", 6) == 0);
  CHECK(asyncio_stream_readuntil_any(r, seps, lens, 3, &out) == 2);
  if (out) CHECK(memcmp(out, "\r\n", 2) == 0);
  CHECK(asyncio_stream_readuntil_any(r, seps, lens, 3, &out) == 4);
  if (out) CHECK(memcmp(out, "xyz\n", 4) == 0);
  /* A separator split across chunks. */
  raw_write(raw, "D");
  CHECK(asyncio_stream_readuntil(r, "END", 3, &out) == 3);
  /* EOF first: IncompleteRead with everything consumed. */
  raw_write(raw, "tail");
  shutdown(raw, SHUT_WR);
  CHECK(asyncio_stream_readuntil(r, "\n", 1, &out) == ASYNCIO_EINCOMPLETEREAD);
  const char *p = NULL;
  size_t plen = 0;
  CHECK_RC(asyncio_stream_partial(r, &p, &plen), 0);
  CHECK(plen == 4 && p && memcmp(p, "tail", 4) == 0);
  CHECK(asyncio_stream_at_eof(r));
  char one;
  CHECK(asyncio_stream_read(r, &one, 1) == 0); /* the next call takes the partial back */
  CHECK_RC(asyncio_stream_partial(r, &p, &plen), 0);
  CHECK(p == NULL && plen == 0);
  /* Bad separators. */
  CHECK(asyncio_stream_readuntil(r, "", 0, &out) == -EINVAL);
  size_t zero[1] = {0};
  CHECK(asyncio_stream_readuntil_any(r, seps, zero, 1, &out) == -EINVAL);
  CHECK(asyncio_stream_readuntil_any(r, seps, lens, 0, &out) == -EINVAL);
  pair_close(r, w, raw);
  return 0;
}

TEST(readuntil_several_separators) {
  assert_ok(run_main(readuntil_main, NULL));
  ASSERT_SOFT();
}

/*
 * Two separators ending at the same byte ("\r\n" and "\n" in "xx\r\n"): the
 * shorter one is the match whatever the order they are given in, as Python
 * sorts the tuple by length.  The bytes returned are the same either way;
 * match_start is not: 3, beyond a limit of 2, so LimitOverrun(consumed=3).
 */
static int readuntil_tie_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  int raw;
  CHECK_RC(pair_open(2, &r, &w, &raw), 0);
  raw_write(raw, "xx\r\n");
  WAIT_UNTIL(asyncio_stream_buffered(r) == 4);
  const char *out = NULL;
  const void *crlf_first[2] = {"\r\n", "\n"}, *lf_first[2] = {"\n", "\r\n"};
  size_t lens_crlf_first[2] = {2, 1}, lens_lf_first[2] = {1, 2};
  CHECK(asyncio_stream_readuntil_any(r, lf_first, lens_lf_first, 2, &out) ==
        ASYNCIO_ELIMITOVERRUN);
  CHECK(asyncio_stream_overrun_consumed(r) == 3);
  CHECK(asyncio_stream_readuntil_any(r, crlf_first, lens_crlf_first, 2, &out) ==
        ASYNCIO_ELIMITOVERRUN);
  CHECK(asyncio_stream_overrun_consumed(r) == 3);
  CHECK(asyncio_stream_buffered(r) == 4); /* readuntil consumed nothing */
  pair_close(r, w, raw);
  /* With a limit of 3 the separator may start at 3: the line is returned. */
  CHECK_RC(pair_open(3, &r, &w, &raw), 0);
  raw_write(raw, "xx\r\n");
  WAIT_UNTIL(asyncio_stream_buffered(r) == 4);
  CHECK(asyncio_stream_readuntil_any(r, crlf_first, lens_crlf_first, 2, &out) == 4);
  if (out) CHECK(memcmp(out, "xx\r\n", 4) == 0);
  pair_close(r, w, raw);
  return 0;
}

TEST(readuntil_any_equal_ends_shorter_wins) {
  assert_ok(run_main(readuntil_tie_main, NULL));
  ASSERT_SOFT();
}

/*
 * Random reader calls against a model.  The peer sends lines (each shorter
 * than the limit, ended by '\n' or '|') in random pieces with yields in
 * between, while the reader mixes read, readexactly, readline, readuntil
 * and readuntil_any; every result must be the next bytes of what was sent,
 * and a successful call leaves no partial or consumed count behind.  A
 * small limit keeps the transport pausing and resuming.  Fixed seeds.
 */
typedef struct model {
  uint64_t rng;
  int raw;
  char *data;
  size_t len;
} model_t;

static uint32_t model_rand(model_t *m) {
  m->rng ^= m->rng << 13;
  m->rng ^= m->rng >> 7;
  m->rng ^= m->rng << 17;
  return (uint32_t)(m->rng >> 11);
}

static int model_writer(void *arg) {
  model_t *m = arg;
  size_t off = 0;
  while (off < m->len) {
    size_t k = 1 + model_rand(m) % 300;
    if (k > m->len - off) k = m->len - off;
    ssize_t n = write(m->raw, m->data + off, k);
    if (n > 0) off += (size_t)n;
    if (n < 0 && errno != EAGAIN) return -errno;
    if (n < 0 || model_rand(m) % 4 != 0) {
      int rc = asyncio_sleep(0);
      if (rc < 0) return rc;
    }
  }
  shutdown(m->raw, SHUT_WR);
  return 0;
}

/* Index of the first of the separators at or after pos, or len. */
static size_t model_next(const model_t *m, size_t pos, const char *seps) {
  while (pos < m->len && !strchr(seps, m->data[pos])) pos++;
  return pos;
}

static int model_main(void *arg) {
  uint64_t seed = *(uint64_t *)arg;
  static const size_t limits[] = {16, 64, 100};
  model_t m = {.rng = seed * 0x9E3779B97F4A7C15u + 1};
  size_t limit = limits[seed % 3];
  reader_t *r;
  writer_t *w;
  CHECK_RC(pair_open(limit, &r, &w, &m.raw), 0);
  fcntl(m.raw, F_SETFL, fcntl(m.raw, F_GETFL) | O_NONBLOCK);
  size_t cap = 20000;
  m.data = malloc(cap + limit + 1);
  while (m.len < cap) {
    size_t body = model_rand(&m) % (limit - 1);
    for (size_t i = 0; i < body; i++) m.data[m.len++] = (char)('a' + model_rand(&m) % 26);
    m.data[m.len++] = model_rand(&m) % 2 ? '\n' : '|';
  }
  asyncio_task_t *t = NULL;
  CHECK_RC(asyncio_create_task(&t, model_writer, &m, NULL), 0);
  static const char nl = '\n', bar = '|';
  const void *seps[2] = {&nl, &bar};
  const size_t lens[2] = {1, 1};
  char buf[128];
  size_t pos = 0;
  int ops = 0;
  while (pos < m.len && ops < 100000) {
    ops++;
    size_t rem = m.len - pos;
    const char *out = NULL;
    ssize_t n = -1;
    size_t want = 0; /* the model's answer for the line calls */
    int op = (int)(model_rand(&m) % 5);
    if (op == 2 || op == 3) { /* readline / readuntil('|'): only within the limit */
      size_t j = model_next(&m, pos, op == 2 ? "\n" : "|");
      if (j == m.len || j - pos + 1 >= limit) op = 0;
      want = j - pos + 1;
    }
    if (op == 4) want = model_next(&m, pos, "\n|") - pos + 1;
    switch (op) {
    case 0: {
      size_t k = 1 + model_rand(&m) % 100;
      n = asyncio_stream_read(r, buf, k);
      CHECK(n >= 1 && (size_t)n <= k && (size_t)n <= rem);
      out = buf;
      break;
    }
    case 1: {
      size_t k = model_rand(&m) % 100;
      if (k > rem) k = rem;
      CHECK_RC(asyncio_stream_readexactly(r, buf, k), 0);
      n = (ssize_t)k;
      out = buf;
      break;
    }
    case 2:
      n = asyncio_stream_readline(r, &out);
      CHECK(n == (ssize_t)want);
      break;
    case 3:
      n = asyncio_stream_readuntil(r, "|", 1, &out);
      CHECK(n == (ssize_t)want);
      break;
    default:
      n = asyncio_stream_readuntil_any(r, seps, lens, 2, &out);
      CHECK(n == (ssize_t)want);
      break;
    }
    if (n < 0 || (size_t)n > rem || !out) break;
    CHECK(memcmp(out, m.data + pos, (size_t)n) == 0);
    pos += (size_t)n;
    const char *p = (const char *)1;
    size_t plen = 1;
    CHECK_RC(asyncio_stream_partial(r, &p, &plen), 0);
    CHECK(p == NULL && plen == 0);
    CHECK(asyncio_stream_overrun_consumed(r) == 0);
    if (harness_soft_fail[0]) break;
  }
  CHECK(pos == m.len);
  CHECK(asyncio_stream_read(r, buf, sizeof buf) == 0);
  CHECK(asyncio_stream_readexactly(r, buf, 1) == ASYNCIO_EINCOMPLETEREAD);
  const char *line = NULL;
  CHECK(asyncio_stream_readline(r, &line) == 0);
  const char *p = (const char *)1;
  size_t plen = 1;
  CHECK_RC(asyncio_stream_partial(r, &p, &plen), 0); /* readexactly's is gone */
  CHECK(plen == 0);
  CHECK(asyncio_stream_at_eof(r));
  CHECK_RC(asyncio_await(t, NULL), 0);
  asyncio_task_free(t);
  free(m.data);
  pair_close(r, w, m.raw);
  return 0;
}

TEST(random_calls_match_a_model) {
  for (uint64_t seed = 1; seed <= 24 && !harness_soft_fail[0]; seed++)
    assert_ok(run_main(model_main, &seed));
  ASSERT_SOFT();
}

/* The peer writes one byte at a time; the reader waits in readuntil meanwhile. */
typedef struct bytewise {
  reader_t *r;
  const char *sep;
  ssize_t n;
  const char *out;
  char copy[64];
  size_t consumed;
} bytewise_t;

static int bytewise_reader(void *arg) {
  bytewise_t *b = arg;
  b->n = asyncio_stream_readuntil(b->r, b->sep, strlen(b->sep), &b->out);
  if (b->n > 0) memcpy(b->copy, b->out, (size_t)b->n);
  b->consumed = asyncio_stream_overrun_consumed(b->r);
  return 0;
}

static int feed_bytewise(reader_t *r, int raw, const char *data, const char *sep, bytewise_t *b) {
  memset(b, 0, sizeof *b);
  b->r = r;
  b->sep = sep;
  asyncio_task_t *t = NULL;
  CHECK_RC(asyncio_create_task(&t, bytewise_reader, b, NULL), 0);
  if (!t) return -1;
  CHECK_RC(asyncio_sleep(0), 0);
  size_t base = asyncio_stream_buffered(r);
  for (size_t i = 0; data[i] && !asyncio_future_done(t); i++) {
    CHECK(write(raw, data + i, 1) == 1);
    /* One byte arrived, or the reader finished with it. */
    WAIT_UNTIL(asyncio_future_done(t) || asyncio_stream_buffered(r) == base + i + 1);
  }
  CHECK_RC(asyncio_await(t, NULL), 0);
  asyncio_task_free(t);
  return 0;
}

static int bytewise_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  int raw;
  CHECK_RC(pair_open(8, &r, &w, &raw), 0);
  bytewise_t b;
  feed_bytewise(r, raw, "ab--X--", "--X--", &b);
  CHECK(b.n == 7 && memcmp(b.copy, "ab--X--", 7) == 0);
  /* Exactly at the limit: the separator may start at offset == limit. */
  feed_bytewise(r, raw, "12345678\n", "\n", &b);
  CHECK(b.n == 9 && memcmp(b.copy, "12345678\n", 9) == 0);
  /* One more byte: LimitOverrun as soon as 9 bytes are there without the separator. */
  feed_bytewise(r, raw, "123456789", "\n", &b);
  CHECK(b.n == ASYNCIO_ELIMITOVERRUN);
  CHECK(b.consumed == 9);
  CHECK(asyncio_stream_buffered(r) == 9); /* readuntil consumed nothing */
  char buf[16];
  CHECK_RC(asyncio_stream_readexactly(r, buf, 9), 0);
  /* A multi-byte separator close to the limit: "--" whose start is at 8. */
  feed_bytewise(r, raw, "abcdefgh--", "--", &b);
  CHECK(b.n == 10);
  pair_close(r, w, raw);
  return 0;
}

TEST(readuntil_across_chunks_and_at_limit) {
  assert_ok(run_main(bytewise_main, NULL));
  ASSERT_SOFT();
}

static int lines_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  int raw;
  CHECK_RC(pair_open(0, &r, &w, &raw), 0);
  for (int i = 0; i < 100; i++) {
    char msg[32];
    snprintf(msg, sizeof msg, "%d\n", i);
    raw_write(raw, msg);
  }
  shutdown(raw, SHUT_WR);
  const char *line;
  ssize_t n;
  int count = 0;
  ASYNCIO_STREAM_FOR_LINES(n, r, &line) {
    CHECK(line[n - 1] == '\n');
    CHECK(atoi(line) == count);
    count++;
  }
  CHECK(n == 0);
  CHECK(count == 100);
  pair_close(r, w, raw);
  return 0;
}

TEST(line_iteration) {
  assert_ok(run_main(lines_main, NULL));
  ASSERT_SOFT();
}

/* ---- waiting readers: a second reader, cancellation, timeouts ----------------------- */

typedef struct waiter_ctx {
  reader_t *r;
  ssize_t n;
  char copy[64];
  int started;
} waiter_ctx_t;

static int line_waiter(void *arg) {
  waiter_ctx_t *x = arg;
  const char *l = NULL;
  x->started = 1;
  x->n = asyncio_stream_readline(x->r, &l);
  if (x->n > 0) memcpy(x->copy, l, (size_t)x->n);
  return x->n < 0 ? (int)x->n : 0;
}

/* Starts fn(x) as a task (named `name` unless NULL) and lets it reach its wait. */
static int start_waiter(asyncio_coro_fn fn, waiter_ctx_t *x, const char *name,
                        asyncio_task_t **t) {
  asyncio_task_options_t o = {0};
  o.name = name;
  *t = NULL;
  int rc = asyncio_create_task(t, fn, x, &o);
  if (rc) return rc;
  WAIT_UNTIL(x->started);
  return 0;
}

static int second_reader_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  int raw;
  CHECK_RC(pair_open(0, &r, &w, &raw), 0);
  waiter_ctx_t a = {r, 0, {0}, 0};
  asyncio_task_t *t;
  CHECK_RC(start_waiter(line_waiter, &a, NULL, &t), 0);
  CHECK_RC(asyncio_sleep(0), 0);
  const char *l;
  char buf[4];
  CHECK(asyncio_stream_readline(r, &l) == ASYNCIO_EINVALIDSTATE);
  CHECK(asyncio_stream_read(r, buf, 4) == ASYNCIO_EINVALIDSTATE);
  CHECK_RC(asyncio_stream_reader_free(r), -EBUSY);
  raw_write(raw, "first\n");
  CHECK_RC(asyncio_await(t, NULL), 0);
  asyncio_task_free(t);
  CHECK(a.n == 6 && memcmp(a.copy, "first\n", 6) == 0);
  pair_close(r, w, raw);
  return 0;
}

TEST(second_reader_is_invalid_state) {
  assert_ok(run_main(second_reader_main, NULL));
  ASSERT_SOFT();
}

static int cancel_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  int raw;
  CHECK_RC(pair_open(0, &r, &w, &raw), 0);
  raw_write(raw, "par");
  waiter_ctx_t a = {r, 0, {0}, 0};
  asyncio_task_t *t;
  CHECK_RC(start_waiter(line_waiter, &a, NULL, &t), 0);
  WAIT_UNTIL(asyncio_stream_buffered(r) == 3);
  CHECK_RC(asyncio_sleep(0), 0);
  CHECK(asyncio_task_cancel(t, NULL) == 1);
  CHECK_RC(asyncio_await(t, NULL), -ECANCELED);
  CHECK(a.n == -ECANCELED);
  asyncio_task_free(t);
  /* Nothing was consumed: the next readline sees the whole line. */
  raw_write(raw, "tial\n");
  EXPECT_LINE(r, "partial\n");
  pair_close(r, w, raw);
  return 0;
}

TEST(cancel_readline) {
  assert_ok(run_main(cancel_main, NULL));
  ASSERT_SOFT();
}

static void cancel_cb(void *arg) { asyncio_task_cancel(arg, NULL); }

static int bytes_waiter(void *arg) {
  waiter_ctx_t *x = arg;
  x->started = 1;
  x->n = asyncio_stream_read(x->r, x->copy, sizeof x->copy);
  return x->n < 0 ? (int)x->n : 0;
}

static int exact_waiter(void *arg) {
  waiter_ctx_t *x = arg;
  x->started = 1;
  x->n = asyncio_stream_readexactly(x->r, x->copy, 10);
  return x->n < 0 ? (int)x->n : 0;
}

/*
 * The reader is woken (connection_lost, scheduled by abort, runs from the
 * ready queue) and a cancellation lands before it runs (the callback
 * queued next): the cancellation wins, as with a future, and the bytes
 * readexactly had been waiting to complete are still there.
 */
static int cancel_after_wakeup_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  int raw;
  CHECK_RC(pair_open(0, &r, &w, &raw), 0);
  raw_write(raw, "abc");
  WAIT_UNTIL(asyncio_stream_buffered(r) == 3);
  waiter_ctx_t a = {r, 0, {0}, 0};
  asyncio_task_t *t;
  CHECK_RC(start_waiter(exact_waiter, &a, NULL, &t), 0);
  CHECK_RC(asyncio_sleep(0), 0);
  CHECK_RC(asyncio_transport_abort(asyncio_stream_transport(w)), 0);
  CHECK_RC(asyncio_loop_call_soon(asyncio_get_running_loop(), cancel_cb, t, NULL), 0);
  CHECK_RC(asyncio_await(t, NULL), -ECANCELED);
  CHECK(a.n == -ECANCELED);
  asyncio_task_free(t);
  CHECK(asyncio_stream_buffered(r) == 3);
  char buf[8];
  CHECK(asyncio_stream_read(r, buf, sizeof buf) == 3 && memcmp(buf, "abc", 3) == 0);
  CHECK(asyncio_stream_read(r, buf, sizeof buf) == 0);
  pair_close(r, w, raw);
  return 0;
}

TEST(cancel_after_wakeup_keeps_bytes) {
  assert_ok(run_main(cancel_after_wakeup_main, NULL));
  ASSERT_SOFT();
}

/*
 * A cancelled readexactly whose bytes went straight to the caller's buffer
 * must put them back, which takes memory the reader never needed so far.
 * Without it the stream would have a hole: it fails with -ENOMEM instead of
 * handing out the bytes that follow.
 */
static int unread_enomem_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  int raw;
  CHECK_RC(pair_open(0, &r, &w, &raw), 0);
  waiter_ctx_t a = {r, 0, {0}, 0};
  asyncio_task_t *t;
  CHECK_RC(start_waiter(exact_waiter, &a, NULL, &t), 0);
  CHECK_RC(asyncio_sleep(0), 0);
  raw_write(raw, "abcd");
  WAIT_UNTIL(a.copy[3] == 'd'); /* direct: in the waiter's buffer, not the reader's */
  CHECK(asyncio_stream_buffered(r) == 0);
  harness_fail_alloc_after(1);
  CHECK_RC(asyncio_task_cancel(t, NULL), 1);
  CHECK_RC(asyncio_await(t, NULL), -ECANCELED);
  harness_fail_alloc_after(0);
  asyncio_task_free(t);
  /* What follows the hole (EPIPE once the transport is gone). */
  (void)send(raw, "xyz", 3, MSG_NOSIGNAL);
  char buf[8];
  CHECK(asyncio_stream_read(r, buf, sizeof buf) == -ENOMEM);
  CHECK(asyncio_stream_buffered(r) == 0);
  CHECK(asyncio_stream_drain(w) == -ENOMEM);
  CHECK(asyncio_stream_is_closing(w)); /* aborted */
  CHECK_RC(asyncio_stream_close(w), 0);
  CHECK_RC(asyncio_stream_wait_closed(w), 0); /* an abort is a clean end, as in Python */
  CHECK(asyncio_stream_read(r, buf, sizeof buf) == -ENOMEM);
  pair_close(r, w, raw);
  return 0;
}

TEST(cancelled_read_without_memory_fails_the_stream) {
  assert_ok(run_main(unread_enomem_main, NULL));
  ASSERT_SOFT();
}

/* A task waiting in a reader call shows in asyncio_print_tasks. */
static int print_waiting_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  int raw;
  CHECK_RC(pair_open(0, &r, &w, &raw), 0);
  waiter_ctx_t a = {r, 0, {0}, 0};
  asyncio_task_t *t;
  CHECK_RC(start_waiter(bytes_waiter, &a, "slow-reader", &t), 0);
  char *text = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&text, &size);
  CHECK(out != NULL);
  if (out) {
    CHECK(asyncio_print_tasks(asyncio_get_running_loop(), out) == 2);
    fclose(out);
    CHECK(strstr(text, "slow-reader") && strstr(text, "waiting for stream data"));
    free(text);
  }
  raw_write(raw, "x");
  CHECK_RC(asyncio_await(t, NULL), 0);
  CHECK(a.n == 1 && a.copy[0] == 'x');
  asyncio_task_free(t);
  pair_close(r, w, raw);
  return 0;
}

TEST(print_tasks_shows_waiting_reader) {
  assert_ok(run_main(print_waiting_main, NULL));
  ASSERT_SOFT();
}

static int timeout_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  int raw;
  CHECK_RC(pair_open(0, &r, &w, &raw), 0);
  raw_write(raw, "12345");
  WAIT_UNTIL(asyncio_stream_buffered(r) == 5);
  char buf[16] = {0};
  asyncio_timeout_t *tm = NULL;
  CHECK_RC(asyncio_timeout_enter(&tm, 0.01), 0);
  int rc = asyncio_stream_readexactly(r, buf, 10);
  CHECK(rc == -ECANCELED);
  CHECK_RC(asyncio_timeout_exit(tm, rc), -ETIMEDOUT);
  CHECK(asyncio_timeout_expired(tm));
  asyncio_timeout_free(tm);
  /* The five bytes taken were put back: the connection is still usable. */
  CHECK(asyncio_stream_buffered(r) == 5);
  raw_write(raw, "67890");
  CHECK_RC(asyncio_stream_readexactly(r, buf, 10), 0);
  CHECK(memcmp(buf, "1234567890", 10) == 0);
  /* read() under an expiring scope too, with an empty buffer (direct mode). */
  CHECK_RC(asyncio_timeout_enter(&tm, 0.01), 0);
  rc = (int)asyncio_stream_read(r, buf, sizeof buf);
  CHECK_RC(asyncio_timeout_exit(tm, rc), -ETIMEDOUT);
  asyncio_timeout_free(tm);
  raw_write(raw, "ok\n");
  EXPECT_LINE(r, "ok\n");
  pair_close(r, w, raw);
  return 0;
}

TEST(read_timeout_keeps_connection) {
  assert_ok(run_main(timeout_main, NULL));
  ASSERT_SOFT();
}

/*
 * Every call that waits is bounded by the ambient timeout scope (asyncio.timeout
 * around any await): it ends with -ECANCELED, the scope turns that into
 * -ETIMEDOUT, and the stream is still usable afterwards.
 */
static int scope_handler(reader_t *r, writer_t *w, void *arg) {
  (void)w;
  (*(int *)arg)++;
  char b[16];
  return (int)asyncio_stream_read(r, b, sizeof b) < 0; /* until the client goes */
}

static int every_wait_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  int raw;
  CHECK_RC(pair_open(0, &r, &w, &raw), 0);
  const char *out = NULL;
  const void *seps[2] = {"\r\n", "END"};
  size_t lens[2] = {2, 3};
  char *all = NULL;
  size_t alen = 0;
  raw_write(raw, "part");
  EXPECT_TIMEOUT(asyncio_stream_readline(r, &out));
  EXPECT_TIMEOUT(asyncio_stream_readuntil(r, "|", 1, &out));
  EXPECT_TIMEOUT(asyncio_stream_readuntil_any(r, seps, lens, 2, &out));
  EXPECT_TIMEOUT(asyncio_stream_read_all(r, &all, &alen));
  CHECK(all == NULL && alen == 0);
  raw_write(raw, "|");
  CHECK(asyncio_stream_readuntil(r, "|", 1, &out) == 5); /* nothing was lost */
  if (out) CHECK(memcmp(out, "part|", 5) == 0);

  /* drain and wait_closed, with a peer that does not read. */
  asyncio_transport_t *t = asyncio_stream_transport(w);
  CHECK_RC(asyncio_transport_set_write_buffer_limits(t, 4096, 1024), 0);
  static char chunk[1024 * 1024];
  memset(chunk, 'z', sizeof chunk);
  size_t sent = 0;
  while (asyncio_transport_get_write_buffer_size(t) <= 4096) {
    CHECK_RC(asyncio_stream_write(w, chunk, sizeof chunk), 0);
    sent += sizeof chunk;
  }
  EXPECT_TIMEOUT(asyncio_stream_drain(w));
  CHECK_RC(asyncio_stream_close(w), 0);
  EXPECT_TIMEOUT(asyncio_stream_wait_closed(w));
  /* Now read it all: the close completes. */
  int fl = fcntl(raw, F_GETFL);
  fcntl(raw, F_SETFL, fl | O_NONBLOCK);
  size_t got = 0;
  static char sink[256 * 1024];
  for (;;) {
    ssize_t k = read(raw, sink, sizeof sink);
    if (k > 0) {
      got += (size_t)k;
      continue;
    }
    if (k == 0) break;
    CHECK(errno == EAGAIN);
    if (errno != EAGAIN) break;
    CHECK_RC(asyncio_sleep(0.001), 0);
  }
  CHECK(got == sent);
  CHECK_RC(asyncio_stream_wait_closed(w), 0);
  pair_close(r, w, raw);

  /* Server.wait_closed waits for the connections it accepted. */
  asyncio_server_t *srv = NULL;
  int handlers = 0;
  CHECK_RC(asyncio_start_server(scope_handler, &handlers, "127.0.0.1", 0, NULL, &srv), 0);
  if (!srv) return -1;
  CHECK_RC(asyncio_open_connection("127.0.0.1", server_port(srv, 0), NULL, &r, &w), 0);
  WAIT_UNTIL(handlers == 1); /* accepted: the server has a connection to wait for */
  CHECK_RC(asyncio_server_close(srv), 0);
  EXPECT_TIMEOUT(asyncio_server_wait_closed(srv));
  CHECK_RC(asyncio_stream_close(w), 0);
  CHECK_RC(asyncio_stream_wait_closed(w), 0);
  CHECK_RC(asyncio_server_wait_closed(srv), 0);
  CHECK_RC(asyncio_server_free(srv), 0);
  pair_close(r, w, -1);
  return 0;
}

TEST(every_wait_obeys_timeout_scope) {
  assert_ok(run_main(every_wait_main, NULL));
  ASSERT_SOFT();
}

/* ---- flow control -------------------------------------------------------------------- */

static int reader_flow_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  int raw;
  const size_t limit = 1024;
  CHECK_RC(pair_open(limit, &r, &w, &raw), 0);
  asyncio_transport_t *t = asyncio_stream_transport(w);
  int fl = fcntl(raw, F_GETFL);
  fcntl(raw, F_SETFL, fl | O_NONBLOCK);
  char chunk[8192];
  memset(chunk, 'x', sizeof chunk);
  size_t sent = 0;
  /* Nobody reads: the reader pauses once more than 2 * limit is buffered. */
  for (int i = 0; i < 16; i++) {
    ssize_t k = write(raw, chunk, sizeof chunk);
    if (k > 0) sent += (size_t)k;
  }
  WAIT_UNTIL(!asyncio_transport_is_reading(t));
  size_t b = asyncio_stream_buffered(r);
  CHECK(b > 2 * limit);
  CHECK(b < sent); /* bounded: the rest waits in the kernel */
  /* Consume down to the limit: reading resumes. */
  char buf[8192];
  size_t got = 0;
  while (asyncio_stream_buffered(r) > limit) {
    size_t k = asyncio_stream_buffered(r) - limit;
    if (k > sizeof buf) k = sizeof buf;
    CHECK_RC(asyncio_stream_readexactly(r, buf, k), 0);
    got += k;
  }
  CHECK(asyncio_transport_is_reading(t));
  while (got < sent) {
    ssize_t n = asyncio_stream_read(r, buf, sizeof buf);
    CHECK(n > 0);
    if (n <= 0) break;
    got += (size_t)n;
    CHECK(asyncio_stream_buffered(r) <= 2 * limit + 16 * 1024);
  }
  CHECK(got == sent);
  pair_close(r, w, raw);
  return 0;
}

TEST(reader_pauses_transport) {
  assert_ok(run_main(reader_flow_main, NULL));
  ASSERT_SOFT();
}

/* A server handler that reads only when told to. */
typedef struct slow_srv {
  asyncio_event_t *go;
  size_t got;
  int done;
} slow_srv_t;

static int slow_handler(reader_t *r, writer_t *w, void *arg) {
  slow_srv_t *s = arg;
  (void)w;
  int rc = asyncio_event_wait(s->go);
  if (rc < 0) return rc;
  char buf[16384];
  ssize_t n;
  while ((n = asyncio_stream_read(r, buf, sizeof buf)) > 0) s->got += (size_t)n;
  s->done = 1;
  return (int)n;
}

typedef struct drain_ctx {
  writer_t *w;
  int rc, done;
} drain_ctx_t;

static int drainer(void *arg) {
  drain_ctx_t *d = arg;
  d->rc = asyncio_stream_drain(d->w);
  d->done = 1;
  return 0;
}

static int backpressure_main(void *arg) {
  (void)arg;
  slow_srv_t s = {0};
  CHECK_RC(asyncio_event_new(&s.go), 0);
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_start_server(slow_handler, &s, "127.0.0.1", 0, NULL, &srv), 0);
  if (!srv) return -1;
  reader_t *r;
  writer_t *w;
  CHECK_RC(asyncio_open_connection("127.0.0.1", server_port(srv, 0), NULL, &r, &w), 0);
  asyncio_transport_t *t = asyncio_stream_transport(w);
  static char chunk[65536];
  memset(chunk, 'y', sizeof chunk);
  size_t high = 0, low = 0, written = 0;
  CHECK_RC(asyncio_transport_get_write_buffer_limits(t, &low, &high), 0);
  /* Write until the transport has paused us (the kernel buffers fill first). */
  while (asyncio_transport_get_write_buffer_size(t) <= high && written < ((size_t)1 << 30)) {
    CHECK_RC(asyncio_stream_write(w, chunk, sizeof chunk), 0);
    written += sizeof chunk;
    if (asyncio_transport_get_write_buffer_size(t) <= high) CHECK_RC(asyncio_stream_drain(w), 0);
  }
  /* Bounded: a writer that drains never buffers more than high + one write. */
  CHECK(asyncio_transport_get_write_buffer_size(t) <= high + sizeof chunk);
  drain_ctx_t d = {w, 0, 0};
  asyncio_task_t *dt = NULL;
  CHECK_RC(asyncio_create_task(&dt, drainer, &d, NULL), 0);
  for (int i = 0; i < 10; i++) CHECK_RC(asyncio_sleep(0), 0);
  CHECK(!d.done); /* the peer reads nothing: drain() waits */
  CHECK_RC(asyncio_event_set(s.go), 0);
  CHECK_RC(asyncio_await(dt, NULL), 0);
  asyncio_task_free(dt);
  CHECK_RC(d.rc, 0);
  CHECK(asyncio_transport_get_write_buffer_size(t) <= low);
  CHECK_RC(asyncio_stream_close(w), 0);
  CHECK_RC(asyncio_stream_wait_closed(w), 0);
  WAIT_UNTIL(s.done);
  CHECK(s.got == written);
  CHECK_RC(asyncio_stream_reader_free(r), 0);
  CHECK_RC(asyncio_stream_writer_free(w), 0);
  CHECK_RC(asyncio_server_close(srv), 0);
  CHECK_RC(asyncio_server_wait_closed(srv), 0);
  CHECK_RC(asyncio_server_free(srv), 0);
  CHECK_RC(asyncio_event_free(s.go), 0);
  return 0;
}

/*
 * Random writes against a slow, irregular reader: write and writelines of
 * random sizes (empty ones too) with drain now and then, under random
 * write-buffer limits, while the peer reads random amounts and yields;
 * what arrives must be exactly what was written, in order, and after a
 * drain the buffer is never above the high-water mark.  Fixed seeds.
 */
typedef struct wmodel {
  model_t m; /* the PRNG and the data */
  writer_t *w;
  size_t high;
  int bad_after_drain;
} wmodel_t;

static int wmodel_writer(void *arg) {
  wmodel_t *x = arg;
  model_t *m = &x->m;
  asyncio_transport_t *t = asyncio_stream_transport(x->w);
  size_t off = 0;
  while (off < m->len) {
    static const size_t scale[] = {1, 100, 5000, 100000};
    int rc;
    if (model_rand(m) % 3 == 0) {
      struct iovec iov[5];
      int n = 1 + (int)(model_rand(m) % 5);
      for (int i = 0; i < n; i++) {
        size_t k = model_rand(m) % (scale[model_rand(m) % 4] + 1);
        if (k > m->len - off) k = m->len - off;
        iov[i].iov_base = m->data + off;
        iov[i].iov_len = k;
        off += k;
      }
      rc = asyncio_stream_writelines(x->w, iov, (size_t)n);
    } else {
      size_t k = model_rand(m) % (scale[model_rand(m) % 4] + 1);
      if (k > m->len - off) k = m->len - off;
      rc = asyncio_stream_write(x->w, m->data + off, k);
      off += k;
    }
    if (rc < 0) return rc;
    if (model_rand(m) % 2) {
      if ((rc = asyncio_stream_drain(x->w)) < 0) return rc;
      if (asyncio_transport_get_write_buffer_size(t) > x->high) x->bad_after_drain++;
    }
  }
  int rc = asyncio_stream_drain(x->w);
  return rc < 0 ? rc : asyncio_stream_write_eof(x->w);
}

static int wmodel_main(void *arg) {
  uint64_t seed = *(uint64_t *)arg;
  static const size_t highs[] = {0, 1024, 16384, 65536};
  wmodel_t x = {.m = {.rng = seed * 0x2545F4914F6CDD1Du + 7}};
  reader_t *r;
  CHECK_RC(pair_open(0, &r, &x.w, &x.m.raw), 0);
  fcntl(x.m.raw, F_SETFL, fcntl(x.m.raw, F_GETFL) | O_NONBLOCK);
  x.high = highs[seed % 4];
  CHECK_RC(asyncio_transport_set_write_buffer_limits(asyncio_stream_transport(x.w),
                                                     (ssize_t)x.high, (ssize_t)x.high / 4),
           0);
  x.m.len = 600000 + model_rand(&x.m) % 400000;
  x.m.data = malloc(x.m.len);
  for (size_t i = 0; i < x.m.len; i++) x.m.data[i] = (char)model_rand(&x.m);
  asyncio_task_t *t = NULL;
  CHECK_RC(asyncio_create_task(&t, wmodel_writer, &x, NULL), 0);
  char *got = malloc(x.m.len + 1);
  size_t n = 0;
  for (int spins = 0; spins < 10000000; spins++) {
    size_t k = 1 + model_rand(&x.m) % 70000;
    if (k > x.m.len + 1 - n) k = x.m.len + 1 - n; /* room for one byte too many */
    ssize_t m = read(x.m.raw, got + n, k);
    if (m == 0) break;
    if (m > 0) n += (size_t)m;
    if (m < 0 && errno != EAGAIN) break;
    if (m < 0 || model_rand(&x.m) % 2) CHECK_RC(asyncio_sleep(0), 0);
    if (n > x.m.len) break;
  }
  CHECK(n == x.m.len);
  if (n == x.m.len) CHECK(memcmp(got, x.m.data, n) == 0);
  CHECK_RC(asyncio_await(t, NULL), 0);
  CHECK(x.bad_after_drain == 0);
  asyncio_task_free(t);
  free(got);
  free(x.m.data);
  pair_close(r, x.w, x.m.raw);
  return 0;
}

TEST(random_writes_arrive_in_order) {
  for (uint64_t seed = 1; seed <= 12 && !harness_soft_fail[0]; seed++)
    assert_ok(run_main(wmodel_main, &seed));
  ASSERT_SOFT();
}

TEST(drain_backpressure) {
  assert_ok(run_main(backpressure_main, NULL));
  ASSERT_SOFT();
}

/* ---- 64 MiB both ways ------------------------------------------------------------------ */

#define BIG ((size_t)64 * 1024 * 1024)

typedef struct big_writer {
  writer_t *w;
  uint64_t sum;
  int rc;
} big_writer_t;

static void fill(char *p, size_t n, size_t off) {
  for (size_t i = 0; i < n; i++) p[i] = (char)((off + i) * 2654435761u >> 13);
}

static int big_write_task(void *arg) {
  big_writer_t *b = arg;
  static char chunk[256 * 1024];
  b->sum = FNV_INIT;
  for (size_t off = 0; off < BIG; off += sizeof chunk) {
    fill(chunk, sizeof chunk, off);
    b->sum = fnv(b->sum, chunk, sizeof chunk);
    int rc = asyncio_stream_write(b->w, chunk, sizeof chunk);
    if (rc == 0) rc = asyncio_stream_drain(b->w);
    if (rc < 0) return b->rc = rc;
  }
  return b->rc = asyncio_stream_write_eof(b->w);
}

static int big_main(void *arg) {
  const char *host = arg;
  echo_srv_t e = {0};
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_start_server(echo_handler, &e, host, 0, NULL, &srv), 0);
  if (!srv) return -1;
  reader_t *r;
  writer_t *w;
  CHECK_RC(asyncio_open_connection(host, server_port(srv, 0), NULL, &r, &w), 0);
  big_writer_t bw = {w, 0, 0};
  asyncio_task_t *t = NULL;
  CHECK_RC(asyncio_create_task(&t, big_write_task, &bw, NULL), 0);
  uint64_t sum = FNV_INIT;
  size_t got = 0;
  static char buf[100000]; /* not a divisor of the writer's chunk */
  for (;;) {
    int rc = asyncio_stream_readexactly(r, buf, sizeof buf);
    if (rc == ASYNCIO_EINCOMPLETEREAD) {
      const char *p;
      size_t plen;
      asyncio_stream_partial(r, &p, &plen);
      sum = fnv(sum, buf, plen);
      got += plen;
      break;
    }
    CHECK_RC(rc, 0);
    if (rc) break;
    sum = fnv(sum, buf, sizeof buf);
    got += sizeof buf;
  }
  CHECK_RC(asyncio_await(t, NULL), 0);
  asyncio_task_free(t);
  CHECK(got == BIG);
  CHECK(sum == bw.sum);
  CHECK_RC(asyncio_stream_reader_free(r), 0);
  CHECK_RC(asyncio_stream_writer_free(w), 0);
  CHECK_RC(asyncio_server_close(srv), 0);
  CHECK_RC(asyncio_server_wait_closed(srv), 0);
  CHECK_RC(asyncio_server_free(srv), 0);
  CHECK(e.done == 1 && e.last_rc == 0);
  return 0;
}

TEST(transfer_64mib_both_ways) {
  assert_ok(run_main(big_main, "127.0.0.1"));
  ASSERT_SOFT();
}

/* ---- half-close ------------------------------------------------------------------------ */

static int eof_then_reply(reader_t *r, writer_t *w, void *arg) {
  (void)arg;
  char *data;
  size_t len;
  int rc = asyncio_stream_read_all(r, &data, &len);
  if (rc < 0) return rc;
  char reply[64];
  int n = snprintf(reply, sizeof reply, "got %zu bytes", len);
  asyncio_stream_free_data(data, len);
  rc = asyncio_stream_write(w, reply, (size_t)n);
  if (rc == 0) rc = asyncio_stream_drain(w);
  return rc; /* returning closes the connection */
}

static int reply_then_eof(reader_t *r, writer_t *w, void *arg) {
  int *seen = arg;
  int rc = asyncio_stream_write(w, "server done", 11);
  if (rc == 0) rc = asyncio_stream_write_eof(w);
  if (rc < 0) return rc;
  CHECK(!asyncio_stream_is_closing(w));
  /* The read side stays open after our EOF. */
  const char *l;
  ssize_t n = asyncio_stream_readline(r, &l);
  if (n == 6 && memcmp(l, "after\n", 6) == 0) *seen = 1;
  return 0;
}

static int half_close_main(void *arg) {
  (void)arg;
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_start_server(eof_then_reply, NULL, "127.0.0.1", 0, NULL, &srv), 0);
  if (!srv) return -1;
  reader_t *r;
  writer_t *w;
  CHECK_RC(asyncio_open_connection("127.0.0.1", server_port(srv, 0), NULL, &r, &w), 0);
  CHECK_RC(asyncio_stream_write(w, "12345", 5), 0);
  CHECK_RC(asyncio_stream_write_eof(w), 0);
  char *data;
  size_t len;
  CHECK_RC(asyncio_stream_read_all(r, &data, &len), 0);
  CHECK(len == 11 && memcmp(data, "got 5 bytes", 11) == 0);
  asyncio_stream_free_data(data, len);
  /* The peer's EOF leaves our side open (half-closed) until we close it. */
  CHECK(!asyncio_stream_is_closing(w));
  CHECK_RC(asyncio_stream_close(w), 0);
  CHECK_RC(asyncio_stream_wait_closed(w), 0);
  pair_close(r, w, -1);
  CHECK_RC(asyncio_server_close(srv), 0);
  CHECK_RC(asyncio_server_wait_closed(srv), 0);
  CHECK_RC(asyncio_server_free(srv), 0);

  /* The other way: the server half-closes, the client keeps writing. */
  int seen = 0;
  CHECK_RC(asyncio_start_server(reply_then_eof, &seen, "127.0.0.1", 0, NULL, &srv), 0);
  if (!srv) return -1;
  CHECK_RC(asyncio_open_connection("127.0.0.1", server_port(srv, 0), NULL, &r, &w), 0);
  CHECK_RC(asyncio_stream_read_all(r, &data, &len), 0);
  CHECK(len == 11 && memcmp(data, "server done", 11) == 0);
  asyncio_stream_free_data(data, len);
  CHECK(asyncio_stream_at_eof(r));
  CHECK_RC(asyncio_stream_write(w, "after\n", 6), 0);
  CHECK_RC(asyncio_stream_drain(w), 0);
  WAIT_UNTIL(seen == 1);
  CHECK_RC(asyncio_stream_close(w), 0);
  CHECK_RC(asyncio_stream_wait_closed(w), 0);
  pair_close(r, w, -1);
  CHECK_RC(asyncio_server_close(srv), 0);
  CHECK_RC(asyncio_server_wait_closed(srv), 0);
  CHECK_RC(asyncio_server_free(srv), 0);
  return 0;
}

TEST(half_close_both_ways) {
  assert_ok(run_main(half_close_main, NULL));
  ASSERT_SOFT();
}

/* ---- errors ----------------------------------------------------------------------------- */

/* Reads a little, then resets the connection (SO_LINGER 0, abort). */
static int reset_handler(reader_t *r, writer_t *w, void *arg) {
  int *resets = arg;
  char buf[1000];
  int rc = asyncio_stream_readexactly(r, buf, sizeof buf);
  if (rc < 0) return rc;
  asyncio_transport_t *t = asyncio_stream_transport(w);
  struct linger lg = {1, 0};
  setsockopt(asyncio_transport_get_fd(t), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  asyncio_transport_abort(t);
  (*resets)++;
  return 0;
}

static int reset_main(void *arg) {
  (void)arg;
  int resets = 0;
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_start_server(reset_handler, &resets, "127.0.0.1", 0, NULL, &srv), 0);
  if (!srv) return -1;
  reader_t *r;
  writer_t *w;
  CHECK_RC(asyncio_open_connection("127.0.0.1", server_port(srv, 0), NULL, &r, &w), 0);
  /* Writer: keep sending until the reset shows. */
  static char chunk[65536];
  memset(chunk, 'z', sizeof chunk);
  int rc = 0;
  for (int i = 0; i < 100000 && rc == 0; i++) {
    rc = asyncio_stream_write(w, chunk, sizeof chunk);
    if (rc == 0) rc = asyncio_stream_drain(w);
  }
  CHECK(rc == -ECONNRESET || rc == -EPIPE);
  CHECK(resets == 1);
  /* The reader gets the error once its buffer is empty; it stays. */
  const char *l;
  ssize_t n = asyncio_stream_readline(r, &l);
  CHECK(n == -ECONNRESET || n == -EPIPE);
  CHECK(asyncio_stream_readline(r, &l) == n);
  CHECK(asyncio_stream_write(w, "x", 1) == rc || asyncio_stream_write(w, "x", 1) == n);
  int wc = asyncio_stream_wait_closed(w);
  CHECK(wc == -ECONNRESET || wc == -EPIPE);
  pair_close(r, w, -1);
  CHECK_RC(asyncio_server_close(srv), 0);
  CHECK_RC(asyncio_server_wait_closed(srv), 0);
  CHECK_RC(asyncio_server_free(srv), 0);
  return 0;
}

TEST(peer_reset_mid_transfer) {
  assert_ok(run_main(reset_main, NULL));
  ASSERT_SOFT();
}

/* A reset seen by a reader that is waiting, with data before it. */
static int reset_reader_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  /* TCP gives a real RST: make a connected pair through a listener. */
  close(sv[0]);
  close(sv[1]);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof a;
  CHECK(bind(ls, (struct sockaddr *)&a, sizeof a) == 0);
  CHECK(listen(ls, 1) == 0);
  getsockname(ls, (struct sockaddr *)&a, &al);
  CHECK_RC(asyncio_open_connection("127.0.0.1", ntohs(a.sin_port), NULL, &r, &w), 0);
  int peer = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
  close(ls);
  CHECK(write(peer, "data\n", 5) == 5);
  struct linger lg = {1, 0};
  setsockopt(peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  WAIT_UNTIL(asyncio_stream_buffered(r) == 5);
  close(peer); /* RST */
  EXPECT_LINE(r, "data\n"); /* data before the error first */
  const char *l;
  CHECK(asyncio_stream_readline(r, &l) == -ECONNRESET);
  CHECK(asyncio_stream_drain(w) == -ECONNRESET);
  CHECK(asyncio_stream_write(w, "x", 1) == -ECONNRESET);
  pair_close(r, w, -1);
  return 0;
}

TEST(peer_reset_reader) {
  assert_ok(run_main(reset_reader_main, NULL));
  ASSERT_SOFT();
}

/* A loopback TCP connection as streams, and the accepted raw peer. */
static int tcp_pair(reader_t **r, writer_t **w, int *peer) {
  *peer = -1;
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof a;
  if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 1) < 0 ||
      getsockname(ls, (struct sockaddr *)&a, &al) < 0) {
    if (ls >= 0) close(ls);
    return -errno;
  }
  int rc = asyncio_open_connection("127.0.0.1", ntohs(a.sin_port), NULL, r, w);
  if (rc == 0) *peer = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
  close(ls);
  return rc;
}

/* The peer resets the connection (SO_LINGER 0, close). */
static void rst_close(int fd) {
  struct linger lg = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
}

/*
 * read(0) and readexactly(0) report a stored connection error as every
 * other read does once the buffer is empty (Python raises it from both);
 * with data still buffered they return 0, the data comes first.
 */
static int read_zero_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  int peer;
  CHECK_RC(tcp_pair(&r, &w, &peer), 0);
  CHECK(peer >= 0);
  char buf[8];
  CHECK(asyncio_stream_read(r, buf, 0) == 0);
  CHECK_RC(asyncio_stream_readexactly(r, buf, 0), 0);
  CHECK(write(peer, "ab", 2) == 2);
  WAIT_UNTIL(asyncio_stream_buffered(r) == 2);
  rst_close(peer);
  WAIT_UNTIL(asyncio_stream_transport(w) == NULL); /* connection_lost ran */
  CHECK(asyncio_stream_read(r, buf, 0) == 0);
  CHECK_RC(asyncio_stream_readexactly(r, buf, 0), 0);
  CHECK(asyncio_stream_read(r, buf, sizeof buf) == 2);
  CHECK(asyncio_stream_read(r, buf, 0) == -ECONNRESET);
  CHECK_RC(asyncio_stream_readexactly(r, buf, 0), -ECONNRESET);
  CHECK(asyncio_stream_read(r, NULL, 0) == -ECONNRESET);
  CHECK(!asyncio_stream_at_eof(r)); /* an error is not EOF, as Python */
  pair_close(r, w, -1);
  return 0;
}

TEST(read_zero_reports_error) {
  assert_ok(run_main(read_zero_main, NULL));
  ASSERT_SOFT();
}

/*
 * A limit so large that 2 * limit (the pause threshold) does not fit in
 * size_t is as good as no limit, as with Python's integers: the reader
 * must not pause the transport on every byte.
 */
static int huge_limit_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  int raw;
  CHECK_RC(pair_open(SIZE_MAX / 2 + 1, &r, &w, &raw), 0);
  raw_write(raw, "abc");
  WAIT_UNTIL(asyncio_stream_buffered(r) == 3);
  CHECK(asyncio_transport_is_reading(asyncio_stream_transport(w)));
  raw_write(raw, "d\n");
  const char *l;
  CHECK(asyncio_stream_readline(r, &l) == 5);
  pair_close(r, w, raw);
  return 0;
}

TEST(huge_limit_never_pauses) {
  assert_ok(run_main(huge_limit_main, NULL));
  ASSERT_SOFT();
}

static int refused_main(void *arg) {
  (void)arg;
  int holder = -1;
  int port = refused_port(AF_INET, &holder);
  CHECK(port > 0);
  reader_t *r = (reader_t *)1;
  writer_t *w = (writer_t *)1;
  CHECK_RC(asyncio_open_connection("127.0.0.1", port, NULL, &r, &w), -ECONNREFUSED);
  CHECK(r == NULL && w == NULL);
  char path[108];
  unix_path(path, sizeof path);
  CHECK_RC(asyncio_open_unix_connection(path, NULL, &r, &w), -ECONNREFUSED);
  close(holder);
  return 0;
}

TEST(connect_refused) {
  assert_ok(run_main(refused_main, NULL));
  ASSERT_SOFT();
}

/* ---- closing -------------------------------------------------------------------------- */

typedef struct waitclose_ctx {
  writer_t *w;
  int rc, done;
} waitclose_ctx_t;

static int wait_closed_task(void *arg) {
  waitclose_ctx_t *x = arg;
  x->rc = asyncio_stream_wait_closed(x->w);
  x->done = 1;
  return 0;
}

static int wait_closed_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  int raw;
  CHECK_RC(pair_open(0, &r, &w, &raw), 0);
  waitclose_ctx_t a = {w, 1, 0}, b = {w, 1, 0};
  asyncio_task_t *ta, *tb;
  CHECK_RC(asyncio_create_task(&ta, wait_closed_task, &a, NULL), 0);
  CHECK_RC(asyncio_create_task(&tb, wait_closed_task, &b, NULL), 0);
  for (int i = 0; i < 5; i++) CHECK_RC(asyncio_sleep(0), 0);
  CHECK(!a.done && !b.done);
  CHECK_RC(asyncio_stream_writer_free(w), -EBUSY);
  CHECK(!asyncio_stream_is_closing(w));
  CHECK_RC(asyncio_stream_write(w, "bye", 3), 0);
  CHECK_RC(asyncio_stream_close(w), 0);
  CHECK(asyncio_stream_is_closing(w));
  /* Closing: drain yields once, connection_lost runs meanwhile: "Connection lost". */
  CHECK_RC(asyncio_stream_drain(w), -ECONNRESET);
  CHECK_RC(asyncio_await(ta, NULL), 0);
  CHECK_RC(asyncio_await(tb, NULL), 0);
  asyncio_task_free(ta);
  asyncio_task_free(tb);
  CHECK(a.rc == 0 && b.rc == 0);
  char buf[8];
  CHECK(read(raw, buf, sizeof buf) == 3); /* buffered data still sent */
  CHECK(read(raw, buf, sizeof buf) == 0);
  CHECK(asyncio_stream_transport(w) == NULL);
  CHECK(!asyncio_stream_can_write_eof(w));
  CHECK_RC(asyncio_stream_write_eof(w), 0);
  pair_close(r, w, raw);
  return 0;
}

TEST(wait_closed) {
  assert_ok(run_main(wait_closed_main, NULL));
  ASSERT_SOFT();
}

/* Handlers blocked in readline; the server is closed, then its clients. */
typedef struct hold_srv {
  int started, finished, last;
} hold_srv_t;

static int hold_handler(reader_t *r, writer_t *w, void *arg) {
  hold_srv_t *h = arg;
  (void)w;
  h->started++;
  const char *l;
  ssize_t n = asyncio_stream_readline(r, &l);
  h->finished++;
  h->last = (int)n;
  return n < 0 ? (int)n : 0;
}

static int server_close_main(void *arg) {
  (void)arg;
  hold_srv_t h = {0};
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_start_server(hold_handler, &h, "127.0.0.1", 0, NULL, &srv), 0);
  if (!srv) return -1;
  reader_t *r[3];
  writer_t *w[3];
  for (int i = 0; i < 3; i++)
    CHECK_RC(asyncio_open_connection("127.0.0.1", server_port(srv, 0), NULL, &r[i], &w[i]), 0);
  WAIT_UNTIL(h.started == 3);
  CHECK_RC(asyncio_server_close(srv), 0);
  for (int i = 0; i < 5; i++) CHECK_RC(asyncio_sleep(0), 0);
  CHECK(h.finished == 0); /* closing the server does not stop the handlers */
  CHECK_RC(asyncio_server_close_clients(srv), 0);
  CHECK_RC(asyncio_server_wait_closed(srv), 0);
  WAIT_UNTIL(h.finished == 3);
  CHECK(h.last == 0); /* EOF */
  for (int i = 0; i < 3; i++) {
    const char *l;
    CHECK(asyncio_stream_readline(r[i], &l) == 0);
    pair_close(r[i], w[i], -1);
  }
  CHECK_RC(asyncio_server_free(srv), 0);
  return 0;
}

TEST(handlers_at_server_close) {
  assert_ok(run_main(server_close_main, NULL));
  ASSERT_SOFT();
}

/* Loop close with handler tasks pending and client streams still open. */
typedef struct loopclose_ctx {
  hold_srv_t h;
  asyncio_server_t *srv;
  reader_t *r[2];
  writer_t *w[2];
  reader_t *kept_r;
  writer_t *kept_w;
} loopclose_ctx_t;

static int detach_handler(reader_t *r, writer_t *w, void *arg) {
  loopclose_ctx_t *c = arg;
  CHECK_RC(asyncio_stream_detach(w), 0);
  c->kept_r = r;
  c->kept_w = w;
  return 0;
}

static int loop_close_main(void *arg) {
  loopclose_ctx_t *c = arg;
  CHECK_RC(asyncio_start_server(hold_handler, &c->h, "127.0.0.1", 0, NULL, &c->srv), 0);
  if (!c->srv) return -1;
  for (int i = 0; i < 2; i++)
    CHECK_RC(asyncio_open_connection("127.0.0.1", server_port(c->srv, 0), NULL, &c->r[i],
                                     &c->w[i]),
             0);
  WAIT_UNTIL(c->h.started == 2);
  /* Data sitting in a reader's buffer and in a writer's transport buffer. */
  CHECK_RC(asyncio_stream_write(c->w[0], "no newline", 10), 0);
  /* A detached pair the test frees after the loop is gone. */
  asyncio_server_t *s2 = NULL;
  CHECK_RC(asyncio_start_server(detach_handler, c, "127.0.0.1", 0, NULL, &s2), 0);
  reader_t *r2;
  writer_t *w2;
  CHECK_RC(asyncio_open_connection("127.0.0.1", server_port(s2, 0), NULL, &r2, &w2), 0);
  WAIT_UNTIL(c->kept_w != NULL);
  CHECK_RC(asyncio_server_free(s2), 0);
  pair_close(r2, w2, -1);
  return 0;
}

static void quiet(asyncio_loop_t *loop, const asyncio_error_context_t *ctx, void *ud) {
  (void)loop, (void)ctx;
  (*(int *)ud)++;
}

TEST(loop_close_with_streams_open) {
  static loopclose_ctx_t c;
  memset(&c, 0, sizeof c);
  asyncio_loop_t *loop = NULL;
  assert_ok(asyncio_loop_new(&loop, NULL));
  int reports = 0;
  assert_ok(asyncio_loop_set_exception_handler(loop, quiet, &reports));
  asyncio_task_t *t = NULL;
  assert_ok(asyncio_loop_create_task(loop, &t, loop_close_main, &c, NULL));
  assert_ok(asyncio_loop_run_until_complete(loop, t, NULL));
  ASSERT_SOFT();
  asyncio_task_free(t);
  /* Two handlers still wait in readline: they are destroyed with the loop. */
  assert_ok(asyncio_loop_close(loop));
  assert_int_equal(reports, 2);
  /* Streams the user holds outlive the loop as orphans; only _free works. */
  const char *l;
  char buf[4];
  assert_int_equal(asyncio_stream_readline(c.r[0], &l), ASYNCIO_ECLOSED);
  assert_int_equal(asyncio_stream_read(c.kept_r, buf, 4), ASYNCIO_ECLOSED);
  assert_int_equal(asyncio_stream_write(c.w[1], "x", 1), ASYNCIO_ECLOSED);
  assert_true(asyncio_stream_is_closing(c.w[1]));
  assert_null(asyncio_stream_transport(c.w[1]));
  for (int i = 0; i < 2; i++) {
    assert_ok(asyncio_stream_reader_free(c.r[i]));
    assert_ok(asyncio_stream_writer_free(c.w[i]));
  }
  assert_ok(asyncio_stream_writer_free(c.kept_w));
  assert_ok(asyncio_stream_reader_free(c.kept_r));
  assert_ok(asyncio_server_free(c.srv));
}

/* Handlers pending when asyncio_run ends are cancelled and cleaned up. */
static int run_end_main(void *arg) {
  hold_srv_t *h = arg;
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_start_server(hold_handler, h, "127.0.0.1", 0, NULL, &srv), 0);
  if (!srv) return -1;
  reader_t *r;
  writer_t *w;
  CHECK_RC(asyncio_open_connection("127.0.0.1", server_port(srv, 0), NULL, &r, &w), 0);
  WAIT_UNTIL(h->started == 1);
  pair_close(r, w, -1);
  CHECK_RC(asyncio_server_free(srv), 0);
  return 0;
}

TEST(handler_cancelled_at_run_end) {
  hold_srv_t h = {0};
  assert_ok(run_main(run_end_main, &h));
  ASSERT_SOFT();
}

/* ---- argument validation ------------------------------------------------------------- */

static int dummy_handler(reader_t *r, writer_t *w, void *arg) {
  (void)r, (void)w, (void)arg;
  return 0;
}

/* open_unix_connection(sock=s): Python takes a socket instead of a path. */
static int unix_sock_main(void *arg) {
  (void)arg;
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  asyncio_connection_options_t co = {.use_sock = true, .sock = sv[0]};
  asyncio_stream_options_t o = {.connection = &co};
  reader_t *r = NULL;
  writer_t *w = NULL;
  /* Both a path and a socket: ValueError. */
  CHECK_RC(asyncio_open_unix_connection("@asyncio-test-x", &o, &r, &w), -EINVAL);
  CHECK_RC(asyncio_open_unix_connection(NULL, &o, &r, &w), 0);
  if (!r || !w) return -1;
  raw_write(sv[1], "ping\n");
  const char *line = NULL;
  CHECK(asyncio_stream_readline(r, &line) == 5);
  CHECK(line && memcmp(line, "ping\n", 5) == 0);
  pair_close(r, w, sv[1]);
  return 0;
}

TEST(open_unix_connection_sock) { assert_ok(run_main(unix_sock_main, NULL)); ASSERT_SOFT(); }

static int args_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  asyncio_server_t *srv;
  const char *l;
  char buf[4];
  char *data;
  size_t len;
  CHECK_RC(asyncio_open_connection("127.0.0.1", 1, NULL, NULL, &w), -EINVAL);
  CHECK_RC(asyncio_open_connection("127.0.0.1", 1, NULL, &r, NULL), -EINVAL);
  CHECK_RC(asyncio_open_unix_connection(NULL, NULL, &r, &w), -EINVAL);
  CHECK_RC(asyncio_start_server(NULL, NULL, "127.0.0.1", 0, NULL, &srv), -EINVAL);
  CHECK_RC(asyncio_start_server(dummy_handler, NULL, "127.0.0.1", 0, NULL, NULL), -EINVAL);
  CHECK_RC(asyncio_start_unix_server(dummy_handler, NULL, NULL, NULL, &srv), -EINVAL);
  CHECK_RC(asyncio_stream_detach(NULL), -EINVAL);
  CHECK(asyncio_stream_read(NULL, buf, 4) == -EINVAL);
  CHECK_RC(asyncio_stream_read_all(NULL, &data, &len), -EINVAL);
  CHECK_RC(asyncio_stream_readexactly(NULL, buf, 4), -EINVAL);
  CHECK(asyncio_stream_readline(NULL, &l) == -EINVAL);
  CHECK(asyncio_stream_readuntil(NULL, "\n", 1, &l) == -EINVAL);
  CHECK(asyncio_stream_readuntil_any(NULL, NULL, NULL, 0, &l) == -EINVAL);
  CHECK_RC(asyncio_stream_partial(NULL, &l, &len), -EINVAL);
  CHECK(asyncio_stream_overrun_consumed(NULL) == 0);
  CHECK(!asyncio_stream_at_eof(NULL));
  CHECK(asyncio_stream_buffered(NULL) == 0);
  CHECK_RC(asyncio_stream_reader_free(NULL), -EINVAL);
  CHECK_RC(asyncio_stream_write(NULL, "x", 1), -EINVAL);
  CHECK_RC(asyncio_stream_writelines(NULL, NULL, 0), -EINVAL);
  CHECK_RC(asyncio_stream_drain(NULL), -EINVAL);
  CHECK_RC(asyncio_stream_write_eof(NULL), -EINVAL);
  CHECK(!asyncio_stream_can_write_eof(NULL));
  CHECK_RC(asyncio_stream_close(NULL), -EINVAL);
  CHECK(asyncio_stream_is_closing(NULL));
  CHECK_RC(asyncio_stream_wait_closed(NULL), -EINVAL);
  CHECK(asyncio_stream_transport(NULL) == NULL);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  CHECK_RC(asyncio_stream_get_peername(NULL, (struct sockaddr *)&ss, &sl), -EINVAL);
  CHECK_RC(asyncio_stream_get_sockname(NULL, (struct sockaddr *)&ss, &sl), -EINVAL);
  CHECK_RC(asyncio_stream_writer_free(NULL), -EINVAL);
  asyncio_stream_free_data(NULL, 0);
  /* On a live stream: NULL buffers and out pointers. */
  int raw;
  CHECK_RC(pair_open(0, &r, &w, &raw), 0);
  CHECK(asyncio_stream_read(r, NULL, 4) == -EINVAL);
  CHECK_RC(asyncio_stream_readexactly(r, NULL, 4), -EINVAL);
  CHECK(asyncio_stream_readline(r, NULL) == -EINVAL);
  CHECK(asyncio_stream_readuntil(r, NULL, 1, &l) == -EINVAL);
  CHECK(asyncio_stream_readuntil(r, "\n", 1, NULL) == -EINVAL);
  CHECK_RC(asyncio_stream_read_all(r, NULL, &len), -EINVAL);
  CHECK_RC(asyncio_stream_partial(r, NULL, &len), -EINVAL);
  CHECK_RC(asyncio_stream_write(w, NULL, 1), -EINVAL);
  struct iovec bad = {NULL, 3};
  CHECK_RC(asyncio_stream_writelines(w, &bad, 1), -EINVAL);
  CHECK_RC(asyncio_stream_writelines(w, NULL, 1), -EINVAL);
  CHECK_RC(asyncio_stream_writelines(w, NULL, 0), 0);
  CHECK_RC(asyncio_stream_get_peername(w, NULL, &sl), -EINVAL);
  CHECK_RC(asyncio_stream_detach(w), -EINVAL); /* not a start_server stream */
  /* Double free of a handle is caught while the other keeps the object. */
  CHECK_RC(asyncio_stream_reader_free(r), 0);
  CHECK_RC(asyncio_stream_reader_free(r), -EINVAL);
  CHECK_RC(asyncio_stream_writer_free(w), 0);
  close(raw);
  return 0;
}

TEST(argument_validation) {
  assert_ok(run_main(args_main, NULL));
  ASSERT_SOFT();
}

/* Outside a task: the suspending calls say so. */
TEST(not_in_task) {
  reader_t *r;
  writer_t *w;
  asyncio_server_t *srv;
  assert_int_equal(asyncio_open_connection("127.0.0.1", 1, NULL, &r, &w), ASYNCIO_ENOTASK);
  assert_int_equal(asyncio_start_server(dummy_handler, NULL, "127.0.0.1", 0, NULL, &srv),
                   ASYNCIO_ENOTASK);
}

/* ---- the hot path allocates nothing ---------------------------------------------------- */

static int steady_main(void *arg) {
  long *delta = arg;
  reader_t *r;
  writer_t *w;
  int raw;
  CHECK_RC(pair_open(0, &r, &w, &raw), 0);
  long before = 0;
  for (int i = 0; i < 1100; i++) {
    if (i == 100) before = harness_total_allocs(); /* after warm-up */
    char msg[64], back[64];
    int n = snprintf(msg, sizeof msg, "request %d with some payload\n", i);
    CHECK(write(raw, msg, (size_t)n) == n);
    const char *line;
    ssize_t got = asyncio_stream_readline(r, &line);
    CHECK(got == n);
    if (got != n) break;
    CHECK_RC(asyncio_stream_write(w, line, (size_t)got), 0);
    CHECK_RC(asyncio_stream_drain(w), 0);
    CHECK(read(raw, back, sizeof back) == n);
    CHECK(write(raw, msg, (size_t)n) == n);
    CHECK_RC(asyncio_stream_readexactly(r, back, (size_t)n), 0);
  }
  *delta = harness_total_allocs() - before;
  pair_close(r, w, raw);
  return 0;
}

TEST(hot_path_allocates_nothing) {
  long delta = -1;
  assert_ok(run_main(steady_main, &delta));
  ASSERT_SOFT();
  assert_int_equal(delta, 0);
}

/* Freeing the reader of an open connection: later data is discarded, writing goes on. */
static int reader_free_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  int raw;
  CHECK_RC(pair_open(64, &r, &w, &raw), 0);
  raw_write(raw, "unread");
  WAIT_UNTIL(asyncio_stream_buffered(r) == 6);
  CHECK_RC(asyncio_stream_reader_free(r), 0);
  static char junk[65536];
  memset(junk, 'j', sizeof junk);
  int fl = fcntl(raw, F_GETFL);
  fcntl(raw, F_SETFL, fl | O_NONBLOCK);
  size_t sent = 0;
  for (int i = 0; i < 64; i++) { /* far more than 2 * limit: nobody pauses now */
    ssize_t k = write(raw, junk, sizeof junk);
    if (k > 0) sent += (size_t)k;
    CHECK_RC(asyncio_sleep(0), 0);
  }
  CHECK(sent > 4 * 64);
  CHECK(asyncio_transport_is_reading(asyncio_stream_transport(w)));
  CHECK_RC(asyncio_stream_write(w, "still", 5), 0);
  CHECK_RC(asyncio_stream_drain(w), 0);
  char buf[8];
  WAIT_UNTIL(recv(raw, buf, sizeof buf, MSG_DONTWAIT | MSG_PEEK) == 5);
  shutdown(raw, SHUT_WR);
  CHECK_RC(asyncio_stream_close(w), 0);
  CHECK_RC(asyncio_stream_wait_closed(w), 0);
  CHECK_RC(asyncio_stream_writer_free(w), 0);
  close(raw);
  return 0;
}

TEST(reader_free_discards) {
  assert_ok(run_main(reader_free_main, NULL));
  ASSERT_SOFT();
}

/* A handler's error that nobody retrieves goes to the exception handler. */
static int failing_handler(reader_t *r, writer_t *w, void *arg) {
  (void)r, (void)w, (void)arg;
  return -EPROTO;
}

static void count_errors(asyncio_loop_t *loop, const asyncio_error_context_t *ctx, void *ud) {
  (void)loop;
  if (ctx->error == -EPROTO) (*(int *)ud)++;
}

static int handler_error_main(void *arg) {
  int *reports = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  CHECK_RC(asyncio_loop_set_exception_handler(loop, count_errors, reports), 0);
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_start_server(failing_handler, NULL, "127.0.0.1", 0, NULL, &srv), 0);
  if (!srv) return -1;
  reader_t *r;
  writer_t *w;
  CHECK_RC(asyncio_open_connection("127.0.0.1", server_port(srv, 0), NULL, &r, &w), 0);
  const char *l;
  CHECK(asyncio_stream_readline(r, &l) == 0); /* the library closed the server's side */
  WAIT_UNTIL(*reports == 1);
  pair_close(r, w, -1);
  CHECK_RC(asyncio_server_close(srv), 0);
  CHECK_RC(asyncio_server_wait_closed(srv), 0);
  CHECK_RC(asyncio_server_free(srv), 0);
  CHECK_RC(asyncio_loop_set_exception_handler(loop, NULL, NULL), 0);
  return 0;
}

TEST(handler_error_reported) {
  int reports = 0;
  assert_ok(run_main(handler_error_main, &reports));
  ASSERT_SOFT();
  assert_int_equal(reports, 1);
}

/* A freed stream server takes its factory context with it, before the loop closes. */
static int null_factory(void *arg, const asyncio_protocol_t **proto, void **inst) {
  static const asyncio_protocol_t none = {0};
  (void)arg;
  *proto = &none;
  *inst = NULL;
  return 0;
}

static int servers_freed_main(void *arg) {
  (void)arg;
  /* The loop's networking state is made by a first (plain) server. */
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_loop_create_server(asyncio_get_running_loop(), null_factory, NULL, "127.0.0.1",
                                      0, NULL, &srv),
           0);
  CHECK_RC(asyncio_server_free(srv), 0);
  echo_srv_t e = {0};
  for (int i = 0; i < 3; i++) {
    long before = harness_live_allocs();
    CHECK_RC(asyncio_start_server(echo_handler, &e, "127.0.0.1", 0, NULL, &srv), 0);
    CHECK(harness_live_allocs() > before);
    CHECK_RC(asyncio_server_free(srv), 0);
    CHECK(harness_live_allocs() == before);
  }
  return 0;
}

TEST(server_free_releases_context) {
  assert_ok(run_main(servers_freed_main, NULL));
  ASSERT_SOFT();
}

/* ---- the loop closed under open_connection ---------------------------------------------- */

/*
 * The loop closed while open_connection waits for connection_made: its
 * task is destroyed there, before the caller got the reader and writer, so
 * the stream goes with the loop (the harness checks memory and descriptors).
 * sock= skips the connect, so the wait comes in the task's first step.
 */
static int g_pair[2];

static int open_then_stop(void *arg) {
  asyncio_loop_t *loop = arg;
  reader_t *r = NULL;
  writer_t *w = NULL;
  asyncio_loop_stop(loop); /* run_forever returns at the end of this iteration */
  asyncio_connection_options_t co = {.sock = g_pair[0], .use_sock = true};
  asyncio_stream_options_t o = {.connection = &co};
  (void)asyncio_open_connection(NULL, 0, &o, &r, &w);
  CHECK(!"open_connection returned: the loop should have closed under it");
  return 0;
}

TEST(loop_close_while_opening) {
  (void)state;
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, g_pair), 0);
  asyncio_loop_t *loop = NULL;
  assert_ok(asyncio_loop_new(&loop, NULL));
  asyncio_task_t *t = NULL;
  assert_ok(asyncio_loop_create_task(loop, &t, open_then_stop, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  assert_false(asyncio_future_done(t));
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop)); /* closes g_pair[0]: the transport had taken it */
  close(g_pair[1]);
  ASSERT_SOFT();
}
