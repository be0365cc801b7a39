/*
 * test_server_args.c - misuse of the server API (include/asyncio/servers.h):
 * NULL servers, bad options and sockets for create_server and
 * create_unix_server, the suspending calls outside a task or from another
 * loop's task, calls from a foreign thread, a closed loop, and a server
 * orphaned by loop close.  Each call must return its documented error,
 * leave the server as it was and leak nothing (a socket the caller gave is
 * still the caller's after a refusal).
 */
#include "net_helpers.h"

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sys/un.h>

static int null_factory(void *arg, const asyncio_protocol_t **proto, void **inst) {
  static const asyncio_protocol_t none = {0};
  (void)arg;
  *proto = &none;
  *inst = NULL;
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

/* A descriptor number that is not open. */
static int closed_fd(void) {
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) close(fd);
  return fd;
}

/* ---- NULL servers ------------------------------------------------------------------------ */

static int null_main(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_server_close(NULL), -EINVAL);
  CHECK_RC(asyncio_server_close_clients(NULL), -EINVAL);
  CHECK_RC(asyncio_server_abort_clients(NULL), -EINVAL);
  CHECK(!asyncio_server_is_serving(NULL));
  CHECK_RC(asyncio_server_start_serving(NULL), -EINVAL);
  CHECK_RC(asyncio_server_serve_forever(NULL), -EINVAL);
  CHECK_RC(asyncio_server_wait_closed(NULL), -EINVAL);
  int fds[2];
  CHECK_RC(asyncio_server_sockets(NULL, fds, 2), -EINVAL);
  CHECK(asyncio_server_get_loop(NULL) == NULL);
  CHECK_RC(asyncio_server_free(NULL), -EINVAL);
  /* On a live server: NULL fds with room, and NULL fds to count. */
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_loop_create_server(asyncio_get_running_loop(), null_factory, NULL, "127.0.0.1",
                                      0, NULL, &srv),
           0);
  if (!srv) return -1;
  CHECK_RC(asyncio_server_sockets(srv, NULL, 1), -EINVAL);
  CHECK_RC(asyncio_server_sockets(srv, NULL, 0), 1);
  CHECK_RC(asyncio_server_free(srv), 0);
  return 0;
}

TEST(null_server) {
  assert_ok(run_main(null_main, NULL));
  ASSERT_SOFT();
}

/* ---- create_server / create_unix_server arguments ---------------------------------------- */

static int create_args_main(void *arg) {
  (void)arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_server_t *srv = (asyncio_server_t *)&srv; /* create_* clear it on error */
  CHECK_RC(asyncio_loop_create_server(NULL, null_factory, NULL, "127.0.0.1", 0, NULL, &srv),
           -EINVAL);
  CHECK(srv == NULL);
  CHECK_RC(asyncio_loop_create_server(loop, null_factory, NULL, "127.0.0.1", 0, NULL, NULL),
           -EINVAL);
  CHECK_RC(asyncio_loop_create_server(loop, null_factory, NULL, "127.0.0.1", 65536, NULL, &srv),
           -EINVAL);
  asyncio_server_options_t bad[] = {
      {.backlog = -1},
      {.accept_retry_delay = -1},
      {.accept_retry_delay = NAN}, /* refused, as call_later refuses a NaN delay */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK_RC(asyncio_loop_create_server(loop, null_factory, NULL, "127.0.0.1", 0, &bad[i], &srv),
             -EINVAL);
    CHECK_RC(asyncio_loop_create_unix_server(loop, null_factory, NULL, "@asyncio-test-x", &bad[i],
                                             &srv),
             -EINVAL);
  }
  CHECK(srv == NULL);
  /* sock= negative, not open, or not a socket (create_connection(sock=) says the same). */
  asyncio_server_options_t o = {.use_sock = true, .sock = -1};
  CHECK_RC(asyncio_loop_create_server(loop, null_factory, NULL, NULL, 0, &o, &srv), -EBADF);
  CHECK_RC(asyncio_loop_create_unix_server(loop, null_factory, NULL, NULL, &o, &srv), -EBADF);
  o.sock = closed_fd();
  CHECK_RC(asyncio_loop_create_server(loop, null_factory, NULL, NULL, 0, &o, &srv), -EBADF);
  CHECK_RC(asyncio_loop_create_unix_server(loop, null_factory, NULL, NULL, &o, &srv), -EBADF);
  int p[2];
  CHECK(pipe2(p, O_CLOEXEC) == 0);
  o.sock = p[0];
  CHECK_RC(asyncio_loop_create_server(loop, null_factory, NULL, NULL, 0, &o, &srv), -ENOTSOCK);
  CHECK_RC(asyncio_loop_create_unix_server(loop, null_factory, NULL, NULL, &o, &srv), -ENOTSOCK);
  CHECK(fcntl(p[0], F_GETFD) >= 0); /* still the caller's */
  close(p[0]);
  close(p[1]);
  /* create_unix_server(sock=) wants AF_UNIX: 'A UNIX Domain Stream Socket was expected'. */
  int tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  o.sock = tcp;
  CHECK_RC(asyncio_loop_create_unix_server(loop, null_factory, NULL, NULL, &o, &srv), -EINVAL);
  close(tcp);
  /* Paths: none, empty, too long. */
  CHECK_RC(asyncio_loop_create_unix_server(NULL, null_factory, NULL, "@x", NULL, &srv), -EINVAL);
  CHECK_RC(asyncio_loop_create_unix_server(loop, NULL, NULL, "@x", NULL, &srv), -EINVAL);
  CHECK_RC(asyncio_loop_create_unix_server(loop, null_factory, NULL, "@x", NULL, NULL), -EINVAL);
  CHECK_RC(asyncio_loop_create_unix_server(loop, null_factory, NULL, NULL, NULL, &srv), -EINVAL);
  CHECK_RC(asyncio_loop_create_unix_server(loop, null_factory, NULL, "", NULL, &srv), -EINVAL);
  char longp[200];
  memset(longp, 'a', sizeof longp - 1);
  longp[sizeof longp - 1] = 0;
  CHECK_RC(asyncio_loop_create_unix_server(loop, null_factory, NULL, longp, NULL, &srv),
           -ENAMETOOLONG);
  longp[0] = '@';
  CHECK_RC(asyncio_loop_create_unix_server(loop, null_factory, NULL, longp, NULL, &srv),
           -ENAMETOOLONG);
  CHECK(srv == NULL);
  return 0;
}

TEST(create_bad_arguments) {
  assert_ok(run_main(create_args_main, NULL));
  ASSERT_SOFT();
}

/* listen() refused (a connected socket given with sock=): the error, not a half-made server. */
static int listen_error_main(void *arg) {
  (void)arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  asyncio_server_options_t o = {.use_sock = true, .sock = sv[0]};
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_loop_create_server(loop, null_factory, NULL, NULL, 0, &o, &srv), -EINVAL);
  CHECK(srv == NULL);
  CHECK(fcntl(sv[0], F_GETFD) >= 0); /* the caller keeps it */
  o.start_serving = -1;
  CHECK_RC(asyncio_loop_create_server(loop, null_factory, NULL, NULL, 0, &o, &srv), 0);
  if (!srv) return -1;
  CHECK_RC(asyncio_server_start_serving(srv), -EINVAL);
  CHECK_RC(asyncio_server_serve_forever(srv), -EINVAL);
  CHECK(!asyncio_server_is_serving(srv));
  CHECK_RC(asyncio_server_free(srv), 0); /* the server owned sv[0] */
  close(sv[1]);
  return 0;
}

TEST(start_serving_reports_listen_error) {
  assert_ok(run_main(listen_error_main, NULL));
  ASSERT_SOFT();
}

/* ---- outside a task, or in a task of another loop ---------------------------------------- */

typedef struct xl {
  asyncio_loop_t *a;
  asyncio_server_t *srv;
} xl_t;

static int xl_create(void *arg) {
  xl_t *x = arg;
  asyncio_server_options_t o = {.start_serving = -1};
  return asyncio_loop_create_server(x->a, null_factory, NULL, "127.0.0.1", 0, &o, &x->srv);
}

static int xl_other_loop(void *arg) {
  xl_t *x = arg;
  asyncio_server_t *s2 = NULL;
  CHECK_RC(asyncio_loop_create_server(x->a, null_factory, NULL, "127.0.0.1", 0, NULL, &s2),
           ASYNCIO_ENOTASK);
  CHECK_RC(asyncio_loop_create_unix_server(x->a, null_factory, NULL, "@asyncio-test-x", NULL, &s2),
           ASYNCIO_ENOTASK);
  /* Calls on the loop name it: not a task of it.  Calls on the server: the
   * wrong server for this task, as for streams and locks. */
  CHECK_RC(asyncio_server_start_serving(x->srv), -EINVAL);
  CHECK_RC(asyncio_server_serve_forever(x->srv), -EINVAL);
  CHECK_RC(asyncio_server_wait_closed(x->srv), -EINVAL);
  CHECK(!asyncio_server_is_serving(x->srv));
  return 0;
}

TEST(suspending_calls_outside_a_task_or_in_another_loop) {
  static xl_t x;
  memset(&x, 0, sizeof x);
  asyncio_loop_t *b = NULL;
  assert_ok(asyncio_loop_new(&x.a, NULL));
  assert_ok(asyncio_loop_new(&b, NULL));
  asyncio_server_t *s2 = NULL;
  assert_rc(asyncio_loop_create_server(x.a, null_factory, NULL, "127.0.0.1", 0, NULL, &s2),
            ASYNCIO_ENOTASK);
  assert_rc(asyncio_loop_create_unix_server(x.a, null_factory, NULL, "@asyncio-test-x", NULL, &s2),
            ASYNCIO_ENOTASK);
  assert_ok(run_in(x.a, xl_create, &x));
  assert_non_null(x.srv);
  assert_rc(asyncio_server_start_serving(x.srv), ASYNCIO_ENOTASK);
  assert_rc(asyncio_server_serve_forever(x.srv), ASYNCIO_ENOTASK);
  assert_rc(asyncio_server_wait_closed(x.srv), ASYNCIO_ENOTASK);
  assert_ok(run_in(b, xl_other_loop, &x));
  ASSERT_SOFT();
  assert_false(asyncio_server_is_serving(x.srv));
  /* The calls that do not wait work from anywhere on the thread. */
  assert_ok(asyncio_server_close_clients(x.srv));
  assert_ok(asyncio_server_abort_clients(x.srv));
  assert_ok(asyncio_server_close(x.srv));
  assert_ok(asyncio_server_free(x.srv));
  assert_ok(asyncio_loop_close(b));
  assert_ok(asyncio_loop_close(x.a));
}

/* ---- a foreign thread -------------------------------------------------------------------- */

typedef struct wt {
  asyncio_loop_t *loop;
  asyncio_server_t *srv;
  int rcs[16];
  int n;
} wt_t;

static void *wt_thread(void *arg) {
  wt_t *x = arg;
  asyncio_server_t *s2 = NULL;
  int *rc = x->rcs;
  rc[x->n++] = asyncio_loop_create_server(x->loop, null_factory, NULL, "127.0.0.1", 0, NULL, &s2);
  rc[x->n++] =
      asyncio_loop_create_unix_server(x->loop, null_factory, NULL, "@asyncio-test-x", NULL, &s2);
  rc[x->n++] = asyncio_server_close(x->srv);
  rc[x->n++] = asyncio_server_close_clients(x->srv);
  rc[x->n++] = asyncio_server_abort_clients(x->srv);
  rc[x->n++] = asyncio_server_start_serving(x->srv);
  rc[x->n++] = asyncio_server_serve_forever(x->srv);
  rc[x->n++] = asyncio_server_wait_closed(x->srv);
  rc[x->n++] = asyncio_server_free(x->srv);
  return NULL;
}

static int wt_main(void *arg) {
  wt_t *x = arg;
  x->loop = asyncio_get_running_loop();
  CHECK_RC(asyncio_loop_create_server(x->loop, null_factory, NULL, "127.0.0.1", 0, NULL, &x->srv),
           0);
  if (!x->srv) return -1;
  pthread_t th;
  CHECK(pthread_create(&th, NULL, wt_thread, x) == 0);
  pthread_join(th, NULL); /* the loop runs (this task) meanwhile */
  for (int i = 0; i < x->n; i++)
    if (x->rcs[i] != ASYNCIO_EWRONGTHREAD && !soft_fail[0])
      snprintf(soft_fail, sizeof soft_fail, "foreign-thread call %d returned %d (%s)", i,
               x->rcs[i], asyncio_errname(x->rcs[i]));
  /* Nothing changed: still serving, still ours to free. */
  CHECK(asyncio_server_is_serving(x->srv));
  CHECK(server_port(x->srv, 0) > 0);
  CHECK_RC(asyncio_server_free(x->srv), 0);
  return 0;
}

TEST(calls_from_a_foreign_thread) {
  static wt_t x;
  memset(&x, 0, sizeof x);
  assert_ok(run_main(wt_main, &x));
  ASSERT_SOFT();
  assert_int_equal(x.n, 9);
}

/* ---- a closed loop ----------------------------------------------------------------------- */

/* create_* on a loop that is closed (its memory kept by a live future): ASYNCIO_ECLOSED. */
TEST(create_on_closed_loop) {
  asyncio_loop_t *loop = NULL;
  assert_ok(asyncio_loop_new(&loop, NULL));
  asyncio_future_t *f = NULL;
  assert_ok(asyncio_future_new(&f, loop));
  assert_ok(asyncio_loop_close(loop));
  asyncio_server_t *srv = NULL;
  assert_rc(asyncio_loop_create_server(loop, null_factory, NULL, "127.0.0.1", 0, NULL, &srv),
            ASYNCIO_ECLOSED);
  assert_rc(
      asyncio_loop_create_unix_server(loop, null_factory, NULL, "@asyncio-test-x", NULL, &srv),
      ASYNCIO_ECLOSED);
  assert_null(srv);
  assert_ok(asyncio_future_free(f));
}

static int orphan_create(void *arg) {
  asyncio_server_t **srv = arg;
  return asyncio_loop_create_server(asyncio_get_running_loop(), null_factory, NULL, "127.0.0.1", 0,
                                    NULL, srv);
}

/* The loop closed under an open server: closed with it; the calls needing the loop say so. */
TEST(orphaned_server) {
  asyncio_loop_t *loop = NULL;
  assert_ok(asyncio_loop_new(&loop, NULL));
  asyncio_server_t *srv = NULL;
  assert_ok(run_in(loop, orphan_create, &srv));
  assert_non_null(srv);
  assert_true(asyncio_server_is_serving(srv));
  assert_ok(asyncio_loop_close(loop));
  assert_false(asyncio_server_is_serving(srv));
  assert_int_equal(asyncio_server_sockets(srv, NULL, 0), 0);
  assert_null(asyncio_server_get_loop(srv));
  assert_ok(asyncio_server_close(srv)); /* idempotent: it is closed */
  assert_rc(asyncio_server_close_clients(srv), ASYNCIO_ECLOSED);
  assert_rc(asyncio_server_abort_clients(srv), ASYNCIO_ECLOSED);
  assert_rc(asyncio_server_start_serving(srv), ASYNCIO_ECLOSED);
  assert_rc(asyncio_server_serve_forever(srv), ASYNCIO_ECLOSED);
  assert_rc(asyncio_server_wait_closed(srv), ASYNCIO_ECLOSED);
  assert_ok(asyncio_server_free(srv));
}
