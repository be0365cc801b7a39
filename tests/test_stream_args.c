/*
 * test_stream_args.c - misuse of the stream API (include/asyncio/streams.h):
 * bad arguments on live streams, calls that have to wait made outside a
 * task or from another loop's task, calls from a foreign thread, calls on
 * streams orphaned by loop close, writes during sendfile, and the
 * addresses of a pipe stream.  Each call must return its documented error
 * and change nothing: the bytes a refused read had taken are still there.
 *
 * The plain NULL-handle cases are in test_streams.c (argument_validation,
 * not_in_task); these are the ones that need a live stream.
 */
#include "stream_helpers.h"

#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sys/un.h>

static int dummy_handler(reader_t *r, writer_t *w, void *arg) {
  (void)r, (void)w, (void)arg;
  return 0;
}

/* Runs fn(arg) as a task of loop until it is done; its result. */
static int run_in(asyncio_loop_t *loop, asyncio_coro_fn fn, void *arg) {
  asyncio_task_t *t = NULL;
  int rc = asyncio_loop_create_task(loop, &t, fn, arg, NULL);
  if (rc) return rc;
  rc = asyncio_loop_run_until_complete(loop, t, NULL);
  asyncio_task_free(t);
  return rc;
}

/* ---- bad arguments on a live stream ------------------------------------------------------ */

typedef struct waiter {
  reader_t *r;
  int started;
  ssize_t n;
} waiter_t;

static int line_waiter(void *arg) {
  waiter_t *x = arg;
  const char *l;
  x->started = 1;
  x->n = asyncio_stream_readline(x->r, &l);
  return 0;
}

static int live_args_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  int raw;
  CHECK_RC(pair_open(0, &r, &w, &raw), 0);
  raw_write(raw, "abc");
  WAIT_UNTIL(asyncio_stream_buffered(r) == 3);
  const char *l = NULL;
  const void *seps[2] = {"\n", "\r\n"};
  size_t lens[2] = {1, 2};
  /* readuntil((...)): an empty tuple, NULL arrays, a NULL or empty separator. */
  CHECK(asyncio_stream_readuntil_any(r, seps, lens, 0, &l) == -EINVAL);
  CHECK(asyncio_stream_readuntil_any(r, NULL, lens, 2, &l) == -EINVAL);
  CHECK(asyncio_stream_readuntil_any(r, seps, NULL, 2, &l) == -EINVAL);
  CHECK(asyncio_stream_readuntil_any(r, seps, lens, 2, NULL) == -EINVAL);
  const void *nullsep[2] = {"\n", NULL};
  CHECK(asyncio_stream_readuntil_any(r, nullsep, lens, 2, &l) == -EINVAL);
  size_t zero[2] = {1, 0};
  CHECK(asyncio_stream_readuntil_any(r, seps, zero, 2, &l) == -EINVAL);
  CHECK(asyncio_stream_readuntil(r, "\n", 0, &l) == -EINVAL);
  /* Other NULL outputs. */
  char *data = NULL;
  size_t len = 0;
  CHECK_RC(asyncio_stream_read_all(r, &data, NULL), -EINVAL);
  CHECK_RC(asyncio_stream_partial(r, &l, NULL), -EINVAL);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  CHECK_RC(asyncio_stream_get_peername(w, (struct sockaddr *)&ss, NULL), -EINVAL);
  CHECK_RC(asyncio_stream_get_sockname(w, NULL, &sl), -EINVAL);
  CHECK_RC(asyncio_stream_get_sockname(w, (struct sockaddr *)&ss, NULL), -EINVAL);
  /* More iovecs than the transport takes (an int). */
  struct iovec one = {"x", 1};
  CHECK_RC(asyncio_stream_writelines(w, &one, (size_t)INT_MAX + 1), -EINVAL);
  /* n == 0 needs no buffer. */
  CHECK(asyncio_stream_read(r, NULL, 0) == 0);
  CHECK_RC(asyncio_stream_readexactly(r, NULL, 0), 0);
  CHECK(asyncio_stream_buffered(r) == 3); /* nothing consumed */
  /* While a task waits on the reader, every reading call is refused. */
  raw_write(raw, "d");
  WAIT_UNTIL(asyncio_stream_buffered(r) == 4);
  waiter_t x = {r, 0, 0};
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, line_waiter, &x, NULL), 0);
  WAIT_UNTIL(x.started);
  char buf[8];
  CHECK_RC(asyncio_stream_read_all(r, &data, &len), ASYNCIO_EINVALIDSTATE);
  CHECK_RC(asyncio_stream_readexactly(r, buf, 2), ASYNCIO_EINVALIDSTATE);
  CHECK(asyncio_stream_readuntil(r, "c", 1, &l) == ASYNCIO_EINVALIDSTATE);
  CHECK(asyncio_stream_readuntil_any(r, seps, lens, 2, &l) == ASYNCIO_EINVALIDSTATE);
  CHECK(asyncio_stream_buffered(r) == 4);
  raw_write(raw, "\n");
  CHECK_RC(asyncio_await(t, NULL), 0);
  asyncio_task_free(t);
  CHECK(x.n == 5);
  pair_close(r, w, raw);
  return 0;
}

TEST(bad_arguments_on_live_stream) {
  assert_ok(run_main(live_args_main, NULL));
  ASSERT_SOFT();
}

/* ---- start_server / start_unix_server arguments ------------------------------------------ */

static int g_seq_path;
static void unix_path(char *buf, size_t n) {
  snprintf(buf, n, "@asyncio-test-stream-args-%d-%d", (int)getpid(), ++g_seq_path);
}

typedef struct echo_once {
  int handled;
} echo_once_t;

static int echo_line_handler(reader_t *r, writer_t *w, void *arg) {
  echo_once_t *e = arg;
  const char *l;
  ssize_t n = asyncio_stream_readline(r, &l);
  if (n > 0) CHECK_RC(asyncio_stream_write(w, l, (size_t)n), 0);
  e->handled++;
  return 0;
}

static int unix_server_sock_main(void *arg) {
  (void)arg;
  char path[108];
  unix_path(path, sizeof path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un un = {0};
  un.sun_family = AF_UNIX;
  memcpy(un.sun_path + 1, path + 1, strlen(path) - 1); /* abstract: sun_path[0] = 0 */
  socklen_t ul = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
  CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&un, ul) == 0);
  asyncio_server_options_t so = {.use_sock = true, .sock = fd};
  asyncio_stream_options_t o = {.server = &so};
  echo_once_t e = {0};
  asyncio_server_t *srv = NULL;
  /* A path and a socket: Python's ValueError; the caller keeps the socket. */
  CHECK_RC(asyncio_start_unix_server(echo_line_handler, &e, path, &o, &srv), -EINVAL);
  CHECK(srv == NULL);
  CHECK(fcntl(fd, F_GETFD) >= 0);
  /* start_unix_server(cb, sock=s). */
  CHECK_RC(asyncio_start_unix_server(echo_line_handler, &e, NULL, &o, &srv), 0);
  if (!srv) {
    close(fd);
    return -1;
  }
  reader_t *r = NULL;
  writer_t *w = NULL;
  CHECK_RC(asyncio_open_unix_connection(path, NULL, &r, &w), 0);
  if (r) {
    CHECK_RC(asyncio_stream_write(w, "hi\n", 3), 0);
    const char *l = NULL;
    CHECK(asyncio_stream_readline(r, &l) == 3);
    CHECK(l && memcmp(l, "hi\n", 3) == 0);
    CHECK_RC(asyncio_stream_reader_free(r), 0);
    CHECK_RC(asyncio_stream_writer_free(w), 0);
  }
  WAIT_UNTIL(e.handled == 1);
  CHECK_RC(asyncio_server_close(srv), 0);
  CHECK_RC(asyncio_server_wait_closed(srv), 0);
  CHECK_RC(asyncio_server_free(srv), 0); /* closes fd */
  return 0;
}

TEST(start_unix_server_with_sock) {
  assert_ok(run_main(unix_server_sock_main, NULL));
  ASSERT_SOFT();
}

static int start_args_main(void *arg) {
  (void)arg;
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_start_server(dummy_handler, NULL, "127.0.0.1", -1, NULL, &srv), -EINVAL);
  CHECK_RC(asyncio_start_server(dummy_handler, NULL, "127.0.0.1", 65536, NULL, &srv), -EINVAL);
  asyncio_server_options_t so = {.accept_retry_delay = NAN};
  asyncio_stream_options_t o = {.server = &so};
  CHECK_RC(asyncio_start_server(dummy_handler, NULL, "127.0.0.1", 0, &o, &srv), -EINVAL);
  char path[108];
  unix_path(path, sizeof path);
  CHECK_RC(asyncio_start_unix_server(dummy_handler, NULL, path, &o, &srv), -EINVAL);
  CHECK_RC(asyncio_start_unix_server(dummy_handler, NULL, "", NULL, &srv), -EINVAL);
  CHECK(srv == NULL);
  reader_t *r;
  writer_t *w;
  asyncio_connection_options_t co = {.use_sock = true, .sock = -1};
  asyncio_stream_options_t oc = {.connection = &co};
  CHECK_RC(asyncio_open_connection(NULL, 0, &oc, &r, &w), -EBADF);
  CHECK_RC(asyncio_open_unix_connection(NULL, &oc, &r, &w), -EBADF);
  CHECK_RC(asyncio_open_connection("127.0.0.1", 65536, NULL, &r, &w), -EINVAL);
  /* The out-pointers given are cleared even when another argument is missing. */
  r = (reader_t *)&oc;
  CHECK_RC(asyncio_open_connection("127.0.0.1", 1, NULL, &r, NULL), -EINVAL);
  CHECK(r == NULL);
  w = (writer_t *)&oc;
  CHECK_RC(asyncio_open_unix_connection("@x", NULL, NULL, &w), -EINVAL);
  CHECK(w == NULL);
  srv = (asyncio_server_t *)&oc;
  CHECK_RC(asyncio_start_server(NULL, NULL, "127.0.0.1", 0, NULL, &srv), -EINVAL);
  CHECK(srv == NULL);
  return 0;
}

/* Bad arguments reach the stream calls' callers as the loop calls return them. */
TEST(start_and_open_bad_arguments) {
  assert_ok(run_main(start_args_main, NULL));
  ASSERT_SOFT();
}

/* Outside a task, the Unix variants say so too (test_streams.c: the TCP ones). */
TEST(unix_variants_not_in_task) {
  reader_t *r;
  writer_t *w;
  asyncio_server_t *srv;
  assert_rc(asyncio_open_unix_connection("@asyncio-test-none", NULL, &r, &w), ASYNCIO_ENOTASK);
  assert_rc(asyncio_start_unix_server(dummy_handler, NULL, "@asyncio-test-none", NULL, &srv),
            ASYNCIO_ENOTASK);
}

/* ---- waiting outside a task, or in another loop's task ----------------------------------- */

typedef struct xloop {
  reader_t *r;
  writer_t *w;
  int raw;
  size_t want;
} xloop_t;

static int xl_open(void *arg) {
  xloop_t *x = arg;
  return pair_open(0, &x->r, &x->w, &x->raw);
}

static int xl_fill(void *arg) {
  xloop_t *x = arg;
  WAIT_UNTIL(asyncio_stream_buffered(x->r) == x->want);
  return 0;
}

/* Checks that every reader call that would have to wait refuses with rc and keeps the bytes. */
static void refuse_waits(xloop_t *x, int rc) {
  size_t b = asyncio_stream_buffered(x->r);
  char buf[16];
  char *data = NULL;
  size_t len = 0;
  const char *l = NULL;
  const void *seps[1] = {"\n"};
  size_t lens[1] = {1};
  CHECK_RC(asyncio_stream_read_all(x->r, &data, &len), rc);
  CHECK(asyncio_stream_buffered(x->r) == b); /* the bytes it had taken went back */
  CHECK_RC(asyncio_stream_readexactly(x->r, buf, sizeof buf), rc);
  CHECK(asyncio_stream_buffered(x->r) == b);
  CHECK(asyncio_stream_readline(x->r, &l) == rc);
  CHECK(asyncio_stream_readuntil(x->r, "\n", 1, &l) == rc);
  CHECK(asyncio_stream_readuntil_any(x->r, seps, lens, 1, &l) == rc);
  CHECK(asyncio_stream_buffered(x->r) == b);
}

static int xl_other_loop(void *arg) {
  xloop_t *x = arg;
  char buf[4];
  refuse_waits(x, -EINVAL);
  CHECK(asyncio_stream_read(x->r, buf, 1) == 1); /* served at once: no wait, fine */
  CHECK_RC(asyncio_stream_wait_closed(x->w), -EINVAL);
  /* Closing works from anywhere on the thread; drain would have to yield. */
  CHECK_RC(asyncio_stream_close(x->w), 0);
  CHECK_RC(asyncio_stream_drain(x->w), -EINVAL);
  return 0;
}

static int xl_finish(void *arg) {
  xloop_t *x = arg;
  CHECK_RC(asyncio_stream_wait_closed(x->w), 0);
  char *data = NULL;
  size_t len = 0;
  /* What the refused calls left: "bcdef" (the other loop's task read the "a"). */
  shutdown(x->raw, SHUT_WR);
  CHECK_RC(asyncio_stream_read_all(x->r, &data, &len), 0);
  CHECK(len == 5 && data && memcmp(data, "bcdef", 5) == 0);
  asyncio_stream_free_data(data, len);
  CHECK_RC(asyncio_stream_reader_free(x->r), 0);
  CHECK_RC(asyncio_stream_writer_free(x->w), 0);
  close(x->raw);
  return 0;
}

TEST(waiting_outside_a_task_or_in_another_loop) {
  static xloop_t x;
  memset(&x, 0, sizeof x);
  asyncio_loop_t *a = NULL, *b = NULL;
  assert_ok(asyncio_loop_new(&a, NULL));
  assert_ok(asyncio_loop_new(&b, NULL));
  assert_ok(run_in(a, xl_open, &x));
  ASSERT_SOFT();
  char buf[4];
  /* Nothing buffered: read must wait. */
  assert_int_equal(asyncio_stream_read(x.r, buf, sizeof buf), ASYNCIO_ENOTASK);
  raw_write(x.raw, "abcdef");
  x.want = 6;
  assert_ok(run_in(a, xl_fill, &x));
  ASSERT_SOFT();
  /* Outside a task: each read that needs more refuses and keeps the bytes. */
  refuse_waits(&x, ASYNCIO_ENOTASK);
  ASSERT_SOFT();
  /* In a task of loop b: -EINVAL, as for a lock bound to another loop. */
  assert_ok(run_in(b, xl_other_loop, &x));
  ASSERT_SOFT();
  assert_int_equal(asyncio_stream_drain(x.w), ASYNCIO_ENOTASK); /* closing: it would yield */
  assert_int_equal(asyncio_stream_wait_closed(x.w), ASYNCIO_ENOTASK);
  assert_ok(run_in(a, xl_finish, &x));
  ASSERT_SOFT();
  assert_ok(asyncio_loop_close(b));
  assert_ok(asyncio_loop_close(a));
}

/* ---- a foreign thread -------------------------------------------------------------------- */

typedef struct wt {
  reader_t *r;
  writer_t *w;
  int rcs[24];
  int n;
} wt_t;

static void *wt_thread(void *arg) {
  wt_t *x = arg;
  char buf[4];
  char *data;
  size_t len;
  const char *l;
  const void *seps[1] = {"\n"};
  size_t lens[1] = {1};
  struct iovec v = {"x", 1};
  int *rc = x->rcs;
  rc[x->n++] = (int)asyncio_stream_read(x->r, buf, sizeof buf);
  rc[x->n++] = asyncio_stream_read_all(x->r, &data, &len);
  rc[x->n++] = asyncio_stream_readexactly(x->r, buf, 2);
  rc[x->n++] = (int)asyncio_stream_readline(x->r, &l);
  rc[x->n++] = (int)asyncio_stream_readuntil(x->r, "\n", 1, &l);
  rc[x->n++] = (int)asyncio_stream_readuntil_any(x->r, seps, lens, 1, &l);
  rc[x->n++] = asyncio_stream_reader_free(x->r);
  rc[x->n++] = asyncio_stream_write(x->w, "x", 1);
  rc[x->n++] = asyncio_stream_writelines(x->w, &v, 1);
  rc[x->n++] = asyncio_stream_drain(x->w);
  rc[x->n++] = asyncio_stream_write_eof(x->w);
  rc[x->n++] = asyncio_stream_close(x->w);
  rc[x->n++] = asyncio_stream_wait_closed(x->w);
  rc[x->n++] = asyncio_stream_detach(x->w);
  rc[x->n++] = asyncio_stream_writer_free(x->w);
  return NULL;
}

static int wt_main(void *arg) {
  wt_t *x = arg;
  int raw;
  CHECK_RC(pair_open(0, &x->r, &x->w, &raw), 0);
  raw_write(raw, "ab\n");
  WAIT_UNTIL(asyncio_stream_buffered(x->r) == 3);
  pthread_t th;
  CHECK(pthread_create(&th, NULL, wt_thread, x) == 0);
  pthread_join(th, NULL); /* the loop runs (this task) meanwhile */
  for (int i = 0; i < x->n; i++)
    if (x->rcs[i] != ASYNCIO_EWRONGTHREAD && !soft_fail[0])
      snprintf(soft_fail, sizeof soft_fail, "foreign-thread call %d returned %d (%s)", i,
               x->rcs[i], asyncio_errname(x->rcs[i]));
  /* Nothing changed: the bytes are there, the writer is open. */
  CHECK(asyncio_stream_buffered(x->r) == 3);
  CHECK(!asyncio_stream_is_closing(x->w));
  CHECK_RC(asyncio_stream_write(x->w, "ok", 2), 0);
  char buf[4];
  WAIT_UNTIL(recv(raw, buf, sizeof buf, MSG_DONTWAIT | MSG_PEEK) == 2);
  CHECK_RC(asyncio_stream_reader_free(x->r), 0);
  CHECK_RC(asyncio_stream_writer_free(x->w), 0);
  close(raw);
  return 0;
}

TEST(calls_from_a_foreign_thread) {
  static wt_t x;
  memset(&x, 0, sizeof x);
  assert_ok(run_main(wt_main, &x));
  ASSERT_SOFT();
  assert_int_equal(x.n, 15);
}

/* ---- orphans: the loop was closed under the streams -------------------------------------- */

typedef struct orphan {
  reader_t *r;
  writer_t *w;
  int raw;
} orphan_t;

static int orphan_main(void *arg) {
  orphan_t *o = arg;
  CHECK_RC(pair_open(0, &o->r, &o->w, &o->raw), 0);
  raw_write(o->raw, "tail");
  shutdown(o->raw, SHUT_WR);
  const char *l = NULL;
  CHECK(asyncio_stream_readuntil(o->r, "\n", 1, &l) == ASYNCIO_EINCOMPLETEREAD);
  const char *p = NULL;
  size_t n = 0;
  CHECK_RC(asyncio_stream_partial(o->r, &p, &n), 0);
  CHECK(n == 4 && p && memcmp(p, "tail", 4) == 0);
  return 0;
}

TEST(orphaned_streams) {
  static orphan_t o;
  memset(&o, 0, sizeof o);
  asyncio_loop_t *loop = NULL;
  assert_ok(asyncio_loop_new(&loop, NULL));
  assert_ok(run_in(loop, orphan_main, &o));
  ASSERT_SOFT();
  assert_ok(asyncio_loop_close(loop));
  /* The partial bytes lived in the reader's buffer, freed with the loop: not lent any more. */
  const char *p = "x";
  size_t n = 99;
  assert_ok(asyncio_stream_partial(o.r, &p, &n));
  assert_null(p);
  assert_int_equal(n, 0);
  char buf[4];
  char *data;
  size_t len;
  const char *l;
  const void *seps[1] = {"\n"};
  size_t lens[1] = {1};
  struct iovec v = {"x", 1};
  assert_int_equal(asyncio_stream_read(o.r, buf, 0), ASYNCIO_ECLOSED);
  assert_rc(asyncio_stream_read_all(o.r, &data, &len), ASYNCIO_ECLOSED);
  assert_rc(asyncio_stream_readexactly(o.r, buf, 2), ASYNCIO_ECLOSED);
  assert_int_equal(asyncio_stream_readuntil(o.r, "\n", 1, &l), ASYNCIO_ECLOSED);
  assert_int_equal(asyncio_stream_readuntil_any(o.r, seps, lens, 1, &l), ASYNCIO_ECLOSED);
  assert_rc(asyncio_stream_writelines(o.w, &v, 1), ASYNCIO_ECLOSED);
  assert_rc(asyncio_stream_drain(o.w), ASYNCIO_ECLOSED);
  assert_rc(asyncio_stream_write_eof(o.w), ASYNCIO_ECLOSED);
  assert_rc(asyncio_stream_wait_closed(o.w), ASYNCIO_ECLOSED);
  assert_rc(asyncio_stream_detach(o.w), ASYNCIO_ECLOSED);
  assert_ok(asyncio_stream_close(o.w));
  assert_false(asyncio_stream_can_write_eof(o.w));
  assert_int_equal(asyncio_stream_buffered(o.r), 0);
  assert_true(asyncio_stream_at_eof(o.r));
  assert_ok(asyncio_stream_reader_free(o.r));
  assert_ok(asyncio_stream_writer_free(o.w));
  close(o.raw);
}

/* ---- write during sendfile --------------------------------------------------------------- */

typedef struct sf {
  writer_t *w;
  int file;
  int started, rc;
} sf_t;

static int sf_task(void *arg) {
  sf_t *c = arg;
  c->started = 1;
  size_t sent = 0;
  c->rc = asyncio_loop_sendfile(asyncio_get_running_loop(), asyncio_stream_transport(c->w),
                                c->file, 0, 0, &sent, NULL);
  return 0;
}

static int sendfile_main(void *arg) {
  (void)arg;
  reader_t *r;
  writer_t *w;
  int raw;
  CHECK_RC(pair_open(0, &r, &w, &raw), 0);
  char path[] = "/tmp/asyncio-stream-args-XXXXXX";
  int file = mkostemp(path, O_CLOEXEC);
  CHECK(file >= 0);
  unlink(path);
  CHECK(write(file, "f", 1) == 1);
  /* The peer does not read: most of this stays buffered, so sendfile waits for it. */
  static char big[1024 * 1024];
  CHECK_RC(asyncio_stream_write(w, big, sizeof big), 0);
  sf_t c = {w, file, 0, 1};
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, sf_task, &c, NULL), 0);
  WAIT_UNTIL(c.started);
  CHECK_RC(asyncio_sleep(0), 0);
  /* StreamWriter.write during loop.sendfile: RuntimeError('unable to write; ...'). */
  CHECK_RC(asyncio_stream_write(w, "x", 1), -EBUSY);
  struct iovec v = {"y", 1};
  CHECK_RC(asyncio_stream_writelines(w, &v, 1), -EBUSY);
  CHECK(asyncio_task_cancel(t, NULL) == 1);
  CHECK_RC(asyncio_await(t, NULL), 0);
  CHECK(c.rc == -ECANCELED);
  asyncio_task_free(t);
  CHECK_RC(asyncio_stream_write(w, "z", 1), 0); /* usable again */
  close(file);
  pair_close(r, w, raw);
  return 0;
}

TEST(write_during_sendfile_is_busy) {
  assert_ok(run_main(sendfile_main, NULL));
  ASSERT_SOFT();
}

/* ---- a pipe stream has no addresses ------------------------------------------------------ */

static int pipe_addr_main(void *arg) {
  (void)arg;
  asyncio_subprocess_options_t o = {.stdin_mode = ASYNCIO_SUBPROCESS_PIPE,
                                    .stdout_mode = ASYNCIO_SUBPROCESS_DEVNULL};
  char *const argv[] = {"cat", NULL};
  asyncio_process_t *p = NULL;
  CHECK_RC(asyncio_create_subprocess_exec(&p, "cat", argv, &o), 0);
  if (!p) return -1;
  writer_t *w = asyncio_process_stdin(p);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  CHECK_RC(asyncio_stream_get_peername(w, (struct sockaddr *)&ss, &sl), -ENOTCONN);
  CHECK_RC(asyncio_stream_get_sockname(w, (struct sockaddr *)&ss, &sl), -ENOTCONN);
  CHECK_RC(asyncio_stream_detach(w), -EINVAL); /* not a start_server stream */
  CHECK_RC(asyncio_stream_close(w), 0);
  CHECK_RC(asyncio_process_wait(p, NULL), 0);
  CHECK_RC(asyncio_process_free(p), 0);
  return 0;
}

TEST(pipe_stream_has_no_address) {
  assert_ok(run_main(pipe_addr_main, NULL));
  ASSERT_SOFT();
}
