/*
 * test_gather.c - asyncio.gather and asyncio.shield (include/asyncio/tasks.h,
 * combinators section; src/gather.c).
 *
 * Python origin: Lib/asyncio/tasks.py (gather, _GatheringFuture, shield) and
 * the gather/shield tests of Lib/test/test_asyncio/test_tasks.py
 * (GatherTestsBase, test_gather_*, test_shield_*, test_cancel_gather_*).
 * Every case runs on the virtual clock, so "sleeps" take no real time and
 * completion times are exact.
 *
 * Assertions inside tasks are soft (CHECK): see harness.h.
 */
#include "harness.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

/* ---- helpers ------------------------------------------------------------ */

/* A child: sleeps `delay`, then returns rc (with value); swallow: a
 * cancellation of the sleep is ignored and rc returned anyway. */
typedef struct child {
  double delay;
  int rc;
  void *value;
  int swallow;
  int started;    /* the body ran */
  int finished;   /* the body returned */
  int sleep_rc;   /* what the sleep returned */
  double end;     /* loop time when the body returned */
} child_t;

static int child_fn(void *arg) {
  child_t *c = arg;
  c->started = 1;
  c->sleep_rc = asyncio_sleep(c->delay);
  c->finished = 1;
  c->end = asyncio_loop_time(asyncio_get_running_loop());
  if (c->sleep_rc < 0 && !c->swallow) return c->sleep_rc;
  if (c->rc >= 0) asyncio_task_set_result_value(c->value);
  return c->rc;
}

static int nreports;
static int last_report_error;

static void count_reports(asyncio_loop_t *loop, const asyncio_error_context_t *ctx, void *ud) {
  (void)loop;
  (void)ud;
  nreports++;
  last_report_error = ctx->error;
}

static asyncio_loop_t *new_loop(void) {
  nreports = 0;
  last_report_error = 0;
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_ok(asyncio_loop_set_exception_handler(loop, count_reports, NULL));
  return loop;
}

static asyncio_task_t *spawn(asyncio_loop_t *loop, child_t *c) {
  asyncio_task_t *t = NULL;
  assert_ok(asyncio_loop_create_task(loop, &t, child_fn, c, NULL));
  return t;
}

/* A main task: body(arg) on `loop`, run to completion; returns its outcome. */
static int run_main(asyncio_loop_t *loop, asyncio_coro_fn body, void *arg) {
  asyncio_task_t *t = NULL;
  assert_ok(asyncio_loop_create_task(loop, &t, body, arg, NULL));
  int rc = asyncio_loop_run_until_complete(loop, t, NULL);
  assert_ok(asyncio_task_free(t));
  return rc;
}

static void free_all(asyncio_task_t **ts, size_t n) {
  for (size_t i = 0; i < n; i++) assert_ok(asyncio_task_free(ts[i]));
}

static double now(void) { return asyncio_loop_time(asyncio_get_running_loop()); }

/* ---- gather over tasks ----------------------------------------------------- */

typedef struct gather_ctx {
  asyncio_task_t **tasks;
  size_t n;
  asyncio_gather_options_t opts;
  int await_rc;
  double when;       /* loop time when the await returned */
  asyncio_future_t *g;
} gather_ctx_t;

static int await_gather(void *arg) {
  gather_ctx_t *x = arg;
  CHECK_RC(asyncio_gather(&x->g, x->tasks, x->n, &x->opts), 0);
  if (!x->g) return -EINVAL;
  x->await_rc = asyncio_await(x->g, NULL);
  x->when = now();
  return 0;
}

/* Results come back in input order, not completion order; the gather is done when the last child is. */
TEST(gather_results_in_input_order) {
  asyncio_loop_t *loop = new_loop();
  static int va, vb, vc;
  child_t cs[3] = {{3, 10, &va, 0, 0, 0, 0, 0}, {1, 20, &vb, 0, 0, 0, 0, 0}, {2, 30, &vc, 0, 0, 0, 0, 0}};
  asyncio_task_t *ts[3];
  for (int i = 0; i < 3; i++) ts[i] = spawn(loop, &cs[i]);
  gather_ctx_t x = {ts, 3, {0}, 0, 0, NULL};
  double t0 = asyncio_loop_time(loop);
  assert_rc(run_main(loop, await_gather, &x), 0);
  ASSERT_SOFT();
  assert_rc(x.await_rc, 0); /* no child failed */
  assert_true(x.when - t0 >= 3.0 && x.when - t0 < 3.01);
  assert_int_equal(asyncio_gather_size(x.g), 3);
  void *v = NULL;
  assert_rc(asyncio_gather_result(x.g, 0, &v), 10);
  assert_ptr_equal(v, &va);
  assert_rc(asyncio_gather_result(x.g, 1, &v), 20);
  assert_ptr_equal(v, &vb);
  assert_rc(asyncio_gather_result(x.g, 2, &v), 30);
  assert_ptr_equal(v, &vc);
  assert_ptr_equal(asyncio_gather_child(x.g, 1), ts[1]);
  assert_null(asyncio_gather_child(x.g, 3));
  assert_true(asyncio_future_is_gather(x.g));
  assert_false(asyncio_future_is_gather(ts[0]));
  assert_false(asyncio_future_cancelled(x.g));
  assert_ok(asyncio_future_free(x.g));
  free_all(ts, 3);
  assert_ok(asyncio_loop_close(loop));
  assert_int_equal(nreports, 0);
}

/* Without return_exceptions the first error is the outcome at once; siblings keep running, uncancelled. */
TEST(gather_first_error_siblings_survive) {
  asyncio_loop_t *loop = new_loop();
  child_t cs[3] = {{2, 1, NULL, 0, 0, 0, 0, 0}, {1, -EIO, NULL, 0, 0, 0, 0, 0}, {3, 3, NULL, 0, 0, 0, 0, 0}};
  asyncio_task_t *ts[3];
  for (int i = 0; i < 3; i++) ts[i] = spawn(loop, &cs[i]);
  gather_ctx_t x = {ts, 3, {0}, 0, 0, NULL};
  double t0 = asyncio_loop_time(loop);
  assert_rc(run_main(loop, await_gather, &x), 0);
  ASSERT_SOFT();
  assert_rc(x.await_rc, -EIO);
  assert_true(x.when - t0 >= 1.0 && x.when - t0 < 1.01);
  assert_true(asyncio_future_done(x.g));
  assert_false(asyncio_future_done(ts[0]));
  assert_false(asyncio_future_done(ts[2]));
  /* the others finish normally */
  assert_rc(asyncio_loop_run_until_complete(loop, ts[2], NULL), 3);
  assert_rc(asyncio_future_result(ts[0], NULL), 1);
  assert_rc(cs[0].sleep_rc, 0);
  assert_rc(cs[2].sleep_rc, 0);
  assert_rc(asyncio_gather_result(x.g, 1, NULL), -EIO);
  assert_rc(asyncio_future_result(x.g, NULL), -EIO);
  assert_ok(asyncio_future_free(x.g));
  free_all(ts, 3);
  assert_ok(asyncio_loop_close(loop));
  assert_int_equal(nreports, 0); /* the gather retrieved the child's error */
}

/* A child whose error the gather did not use (outcome already decided) is not reported as never retrieved. */
TEST(gather_later_errors_not_reported) {
  asyncio_loop_t *loop = new_loop();
  child_t cs[2] = {{1, -EIO, NULL, 0, 0, 0, 0, 0}, {2, -EPIPE, NULL, 0, 0, 0, 0, 0}};
  asyncio_task_t *ts[2];
  for (int i = 0; i < 2; i++) ts[i] = spawn(loop, &cs[i]);
  gather_ctx_t x = {ts, 2, {0}, 0, 0, NULL};
  assert_rc(run_main(loop, await_gather, &x), 0);
  ASSERT_SOFT();
  assert_rc(x.await_rc, -EIO);
  free_all(ts, 2);
  assert_ok(asyncio_future_free(x.g)); /* only the gather keeps ts[1] alive now */
  child_t idle = {3, 0, NULL, 0, 0, 0, 0, 0};
  asyncio_task_t *t = spawn(loop, &idle);
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
  assert_int_equal(nreports, 0);
}

/* return_exceptions: every child's outcome is recorded in order, a child cancelled alone as -ECANCELED. */
TEST(gather_return_exceptions) {
  asyncio_loop_t *loop = new_loop();
  child_t cs[4] = {{1, 5, NULL, 0, 0, 0, 0, 0},
                   {2, -EIO, NULL, 0, 0, 0, 0, 0},
                   {5, 7, NULL, 0, 0, 0, 0, 0},
                   {3, ASYNCIO_EQUEUEFULL, NULL, 0, 0, 0, 0, 0}};
  asyncio_task_t *ts[4];
  for (int i = 0; i < 4; i++) ts[i] = spawn(loop, &cs[i]);
  gather_ctx_t x = {ts, 4, {.return_exceptions = true}, 0, 0, NULL};
  asyncio_task_t *main_task;
  double t0 = asyncio_loop_time(loop);
  assert_ok(asyncio_loop_create_task(loop, &main_task, await_gather, &x, NULL));
  /* cs[2] is cancelled by somebody else at t=4 */
  assert_rc(asyncio_loop_run_until_complete(loop, ts[3], NULL), ASYNCIO_EQUEUEFULL);
  assert_false(asyncio_future_done(main_task));
  assert_rc(asyncio_task_cancel(ts[2], NULL), 1);
  assert_rc(asyncio_loop_run_until_complete(loop, main_task, NULL), 0);
  ASSERT_SOFT();
  assert_rc(x.await_rc, 3); /* three children failed */
  assert_true(x.when - t0 >= 3.0 && x.when - t0 < 3.01);
  assert_rc(asyncio_gather_result(x.g, 0, NULL), 5);
  assert_rc(asyncio_gather_result(x.g, 1, NULL), -EIO);
  assert_rc(asyncio_gather_result(x.g, 2, NULL), -ECANCELED);
  assert_rc(asyncio_gather_result(x.g, 3, NULL), ASYNCIO_EQUEUEFULL);
  assert_false(asyncio_future_cancelled(x.g));
  assert_ok(asyncio_task_free(main_task));
  assert_ok(asyncio_future_free(x.g));
  free_all(ts, 4);
  assert_ok(asyncio_loop_close(loop));
  assert_int_equal(nreports, 0);
}

/* Without return_exceptions a child cancelled on its own makes the gather fail with -ECANCELED; the others go on. */
TEST(gather_child_cancelled_alone) {
  asyncio_loop_t *loop = new_loop();
  child_t cs[2] = {{1, 1, NULL, 0, 0, 0, 0, 0}, {2, 2, NULL, 0, 0, 0, 0, 0}};
  asyncio_task_t *ts[2];
  for (int i = 0; i < 2; i++) ts[i] = spawn(loop, &cs[i]);
  asyncio_future_t *g;
  assert_ok(asyncio_gather(&g, ts, 2, NULL));
  assert_rc(asyncio_task_cancel(ts[0], "alone"), 1);
  assert_rc(asyncio_loop_run_until_complete(loop, g, NULL), -ECANCELED);
  assert_false(asyncio_future_cancelled(g)); /* Python: set_exception(CancelledError) */
  assert_string_equal(asyncio_future_error_message(g), "alone");
  assert_false(asyncio_future_done(ts[1]));
  assert_rc(asyncio_loop_run_until_complete(loop, ts[1], NULL), 2);
  assert_rc(cs[1].sleep_rc, 0);
  assert_ok(asyncio_future_free(g));
  free_all(ts, 2);
  assert_ok(asyncio_loop_close(loop));
  assert_int_equal(nreports, 0);
}

/* Cancelling the gather cancels every pending child, and it completes (-ECANCELED) only once they all have. */
TEST(gather_cancel_cancels_children) {
  asyncio_loop_t *loop = new_loop();
  child_t cs[3] = {{1, 1, NULL, 0, 0, 0, 0, 0}, {5, 2, NULL, 0, 0, 0, 0, 0}, {5, 3, NULL, 0, 0, 0, 0, 0}};
  asyncio_task_t *ts[3];
  for (int i = 0; i < 3; i++) ts[i] = spawn(loop, &cs[i]);
  asyncio_future_t *g;
  assert_ok(asyncio_gather(&g, ts, 3, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, ts[0], NULL), 1);
  assert_rc(asyncio_future_cancel(g, "stop"), 1);
  assert_false(asyncio_future_done(g)); /* waits for the children */
  assert_rc(asyncio_loop_run_until_complete(loop, g, NULL), -ECANCELED);
  assert_true(asyncio_future_cancelled(ts[1]));
  assert_true(asyncio_future_cancelled(ts[2]));
  assert_false(asyncio_future_cancelled(ts[0]));
  assert_rc(cs[1].sleep_rc, -ECANCELED);
  assert_rc(asyncio_future_cancel(g, NULL), 0); /* done: nothing to cancel */
  assert_ok(asyncio_future_free(g));
  free_all(ts, 3);
  assert_ok(asyncio_loop_close(loop));
  assert_int_equal(nreports, 0);
}

/* Cancelling the task that awaits a gather cancels the children through it (test_cancel_gather_1). */
TEST(gather_cancel_awaiting_task) {
  asyncio_loop_t *loop = new_loop();
  child_t cs[2] = {{5, 1, NULL, 0, 0, 0, 0, 0}, {5, 2, NULL, 0, 0, 0, 0, 0}};
  asyncio_task_t *ts[2];
  for (int i = 0; i < 2; i++) ts[i] = spawn(loop, &cs[i]);
  gather_ctx_t x = {ts, 2, {.return_exceptions = true}, 0, 0, NULL};
  asyncio_task_t *main_task;
  assert_ok(asyncio_loop_create_task(loop, &main_task, await_gather, &x, NULL));
  child_t idle = {1, 0, NULL, 0, 0, 0, 0, 0};
  asyncio_task_t *t = spawn(loop, &idle);
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  assert_rc(asyncio_task_cancel(main_task, NULL), 1);
  assert_rc(asyncio_loop_run_until_complete(loop, main_task, NULL), 0);
  ASSERT_SOFT();
  assert_rc(x.await_rc, -ECANCELED);
  assert_true(asyncio_future_cancelled(ts[0]));
  assert_true(asyncio_future_cancelled(ts[1]));
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_task_free(main_task));
  assert_ok(asyncio_future_free(x.g));
  free_all(ts, 2);
  assert_ok(asyncio_loop_close(loop));
}

/* CPython's special case: a cancelled gather ends cancelled even if every child swallows it. */
static void swallow_case(bool return_exceptions) {
  asyncio_loop_t *loop = new_loop();
  child_t cs[2] = {{5, 1, NULL, 1, 0, 0, 0, 0}, {5, 2, NULL, 1, 0, 0, 0, 0}};
  asyncio_task_t *ts[2];
  for (int i = 0; i < 2; i++) ts[i] = spawn(loop, &cs[i]);
  asyncio_gather_options_t o = {.return_exceptions = return_exceptions};
  asyncio_future_t *g;
  assert_ok(asyncio_gather(&g, ts, 2, &o));
  child_t idle = {1, 0, NULL, 0, 0, 0, 0, 0};
  asyncio_task_t *t = spawn(loop, &idle);
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  assert_rc(asyncio_future_cancel(g, NULL), 1);
  assert_rc(asyncio_loop_run_until_complete(loop, g, NULL), -ECANCELED);
  /* the children swallowed it and returned their results */
  assert_rc(asyncio_gather_result(g, 0, NULL), 1);
  assert_rc(asyncio_gather_result(g, 1, NULL), 2);
  assert_rc(cs[0].sleep_rc, -ECANCELED);
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_future_free(g));
  free_all(ts, 2);
  assert_ok(asyncio_loop_close(loop));
}

TEST(gather_cancelled_children_swallow) {
  swallow_case(false);
  swallow_case(true);
}

/* gather() of nothing is done at once with result 0 (Python: []), on the running loop. */
static int zero_items(void *arg) {
  (void)arg;
  asyncio_future_t *g = NULL;
  CHECK_RC(asyncio_gather(&g, NULL, 0, NULL), 0);
  CHECK(asyncio_future_done(g));
  CHECK_RC(asyncio_await(g, NULL), 0);
  CHECK(asyncio_gather_size(g) == 0);
  CHECK_RC(asyncio_gather_result(g, 0, NULL), -EINVAL);
  CHECK_RC(asyncio_future_cancel(g, NULL), 0);
  asyncio_future_free(g);
  CHECK_RC(asyncio_gather_coros(&g, NULL, 0, NULL), 0);
  CHECK(asyncio_future_done(g));
  asyncio_future_free(g);
  return 0;
}

TEST(gather_zero_items) {
  asyncio_loop_t *loop = new_loop();
  asyncio_future_t *g = (asyncio_future_t *)1;
  assert_rc(asyncio_gather(&g, NULL, 0, NULL), ASYNCIO_ENOLOOP); /* no running loop */
  assert_null(g);
  assert_rc(run_main(loop, zero_items, NULL), 0);
  ASSERT_SOFT();
  assert_ok(asyncio_loop_close(loop));
}

/* Futures already done: the gather completes on the next iteration, with their outcomes. */
TEST(gather_done_futures) {
  asyncio_loop_t *loop = new_loop();
  asyncio_future_t *fs[2];
  assert_ok(asyncio_future_new(&fs[0], loop));
  assert_ok(asyncio_future_new(&fs[1], loop));
  assert_ok(asyncio_future_set_result(fs[0], 4, NULL));
  assert_ok(asyncio_future_set_exception(fs[1], -ENOENT, "gone"));
  asyncio_future_t *g;
  asyncio_gather_options_t o = {.return_exceptions = true};
  assert_ok(asyncio_gather(&g, fs, 2, &o));
  assert_false(asyncio_future_done(g)); /* callbacks run from the ready queue */
  assert_rc(asyncio_loop_run_until_complete(loop, g, NULL), 1);
  assert_rc(asyncio_gather_result(g, 1, NULL), -ENOENT);
  assert_ok(asyncio_future_free(g));
  assert_ok(asyncio_future_free(fs[0]));
  assert_ok(asyncio_future_free(fs[1]));
  assert_ok(asyncio_loop_close(loop));
  assert_int_equal(nreports, 0);
}

/* A future listed twice is two entries, each with its outcome. */
TEST(gather_duplicate_future) {
  asyncio_loop_t *loop = new_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  asyncio_future_t *fs[2] = {f, f};
  asyncio_future_t *g;
  assert_ok(asyncio_gather(&g, fs, 2, NULL));
  assert_ok(asyncio_future_set_result(f, 9, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, g, NULL), 0);
  assert_rc(asyncio_gather_result(g, 0, NULL), 9);
  assert_rc(asyncio_gather_result(g, 1, NULL), 9);
  assert_ok(asyncio_future_free(g));
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

/* ---- gather over coroutines ---------------------------------------------- */

static child_t coro_children[3];

static int gather_coros_main(void *arg) {
  (void)arg;
  asyncio_coro_call_t calls[3];
  for (int i = 0; i < 3; i++) calls[i] = (asyncio_coro_call_t){child_fn, &coro_children[i]};
  asyncio_future_t *g = NULL;
  asyncio_task_options_t to = {.name = "worker"};
  asyncio_gather_options_t o = {.return_exceptions = true, .task_options = &to};
  CHECK_RC(asyncio_gather_coros(&g, calls, 3, &o), 0);
  if (!g) return -EINVAL;
  CHECK(!coro_children[0].started); /* wrapped in tasks that start later */
  for (int i = 0; i < 3; i++) {
    asyncio_future_t *c = asyncio_gather_child(g, (size_t)i);
    CHECK(asyncio_future_is_task(c));
    CHECK(strcmp(asyncio_task_get_name(c), "worker") == 0);
  }
  double t0 = now();
  CHECK_RC(asyncio_await(g, NULL), 1);
  CHECK(now() - t0 >= 3.0 && now() - t0 < 3.01);
  void *v = NULL;
  CHECK_RC(asyncio_gather_result(g, 0, &v), 100);
  CHECK(v == &coro_children[0]);
  CHECK_RC(asyncio_gather_result(g, 1, NULL), -EPIPE);
  CHECK_RC(asyncio_gather_result(g, 2, NULL), 300);
  asyncio_future_free(g);
  return 0;
}

/* gather(coro(), ...) wraps each call in a task (in order) and owns the tasks. */
TEST(gather_coroutine_form) {
  asyncio_loop_t *loop = new_loop();
  coro_children[0] = (child_t){3, 100, &coro_children[0], 0, 0, 0, 0, 0};
  coro_children[1] = (child_t){1, -EPIPE, NULL, 0, 0, 0, 0, 0};
  coro_children[2] = (child_t){2, 300, NULL, 0, 0, 0, 0, 0};
  assert_rc(run_main(loop, gather_coros_main, NULL), 0);
  ASSERT_SOFT();
  for (int i = 0; i < 3; i++) assert_true(coro_children[i].finished);
  assert_ok(asyncio_loop_close(loop));
  assert_int_equal(nreports, 0);
}

/* Argument checks: misuse is an error, never a crash. */
TEST(gather_invalid_arguments) {
  asyncio_loop_t *loop = new_loop();
  asyncio_loop_t *other = harness_virtual_loop();
  asyncio_future_t *a, *b, *g = NULL;
  assert_ok(asyncio_future_new(&a, loop));
  assert_ok(asyncio_future_new(&b, other));
  asyncio_future_t *mixed[2] = {a, b};
  asyncio_future_t *withnull[2] = {a, NULL};
  assert_rc(asyncio_gather(NULL, mixed, 1, NULL), -EINVAL);
  assert_rc(asyncio_gather(&g, NULL, 2, NULL), -EINVAL);
  assert_rc(asyncio_gather(&g, withnull, 2, NULL), -EINVAL);
  assert_rc(asyncio_gather(&g, mixed, 2, NULL), -EINVAL);
  assert_null(g);
  asyncio_coro_call_t bad[1] = {{NULL, NULL}};
  assert_rc(asyncio_gather_coros(&g, bad, 1, NULL), -EINVAL);
  asyncio_coro_call_t good[1] = {{child_fn, NULL}};
  assert_rc(asyncio_gather_coros(&g, good, 1, NULL), ASYNCIO_ENOLOOP);
  assert_rc(asyncio_gather_result(a, 0, NULL), -EINVAL); /* not a gather */
  assert_rc(asyncio_gather_result(NULL, 0, NULL), -EINVAL);
  assert_int_equal(asyncio_gather_size(a), -EINVAL);
  assert_null(asyncio_gather_child(a, 0));
  assert_rc(asyncio_gather(&g, &a, 1, NULL), 0);
  assert_rc(asyncio_gather_result(g, 0, NULL), ASYNCIO_EINVALIDSTATE); /* child pending */
  assert_rc(asyncio_gather_result(g, 1, NULL), -EINVAL);
  assert_ok(asyncio_future_set_result(a, 0, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, g, NULL), 0);
  assert_ok(asyncio_future_free(g));
  assert_ok(asyncio_future_free(a));
  assert_ok(asyncio_future_free(b));
  assert_ok(asyncio_loop_close(other));
  assert_ok(asyncio_loop_close(loop));
}

/* Out of memory at every allocation: the call fails cleanly, nothing runs, nothing leaks. */
static int alloc_fail_coros(void *arg) {
  int *fails = arg;
  for (long n = 1;; n++) {
    coro_children[0] = (child_t){0, 1, NULL, 0, 0, 0, 0, 0};
    coro_children[1] = (child_t){0, 2, NULL, 0, 0, 0, 0, 0};
    asyncio_coro_call_t calls[2] = {{child_fn, &coro_children[0]}, {child_fn, &coro_children[1]}};
    asyncio_future_t *g = NULL;
    harness_fail_alloc_after(n);
    int rc = asyncio_gather_coros(&g, calls, 2, NULL);
    harness_fail_alloc_after(0);
    if (rc == 0) {
      CHECK_RC(asyncio_await(g, NULL), 0);
      asyncio_future_free(g);
      break;
    }
    CHECK_RC(rc, -ENOMEM);
    CHECK(g == NULL);
    CHECK_RC(asyncio_sleep(0), 0); /* let cancelled tasks finish */
    CHECK_RC(asyncio_sleep(0), 0);
    CHECK(!coro_children[0].started && !coro_children[1].started);
    (*fails)++;
  }
  return 0;
}

TEST(gather_out_of_memory) {
  asyncio_loop_t *loop = new_loop();
  int fails = 0;
  assert_rc(run_main(loop, alloc_fail_coros, &fails), 0);
  ASSERT_SOFT();
  assert_true(fails >= 2);
  assert_ok(asyncio_loop_close(loop));
}

/* ---- shield ----------------------------------------------------------------- */

typedef struct shield_ctx {
  asyncio_future_t *inner;
  asyncio_future_t *outer;
  int await_rc;
  void *value;
} shield_ctx_t;

static int await_shielded(void *arg) {
  shield_ctx_t *s = arg;
  CHECK_RC(asyncio_shield(&s->outer, s->inner), 0);
  s->await_rc = asyncio_await(s->outer, &s->value);
  return 0;
}

/* Cancelling the task awaiting a shield cancels the outer only: the inner runs on and its result stays readable. */
TEST(shield_outer_cancelled_inner_finishes) {
  asyncio_loop_t *loop = new_loop();
  static int payload;
  child_t c = {1, 42, &payload, 0, 0, 0, 0, 0};
  asyncio_task_t *inner = spawn(loop, &c);
  shield_ctx_t s = {inner, NULL, 0, NULL};
  asyncio_task_t *waiter;
  assert_ok(asyncio_loop_create_task(loop, &waiter, await_shielded, &s, NULL));
  child_t half = {0.5, 0, NULL, 0, 0, 0, 0, 0};
  asyncio_task_t *t = spawn(loop, &half);
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  assert_rc(asyncio_task_cancel(waiter, NULL), 1);
  assert_rc(asyncio_loop_run_until_complete(loop, waiter, NULL), 0);
  ASSERT_SOFT();
  assert_rc(s.await_rc, -ECANCELED);
  assert_true(asyncio_future_cancelled(s.outer));
  assert_false(asyncio_future_done(inner));
  assert_int_equal(asyncio_task_cancelling(inner), 0);
  void *v = NULL;
  assert_rc(asyncio_loop_run_until_complete(loop, inner, &v), 42);
  assert_ptr_equal(v, &payload);
  assert_rc(c.sleep_rc, 0);
  assert_true(asyncio_future_cancelled(s.outer)); /* stays cancelled */
  assert_ok(asyncio_future_free(s.outer));
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_task_free(waiter));
  assert_ok(asyncio_task_free(inner));
  assert_ok(asyncio_loop_close(loop));
  assert_int_equal(nreports, 0);
}

/* Not cancelled, a shield passes the inner outcome on: result with value, or error with message. */
TEST(shield_passes_outcome) {
  asyncio_loop_t *loop = new_loop();
  static int payload;
  child_t c = {1, 7, &payload, 0, 0, 0, 0, 0};
  asyncio_task_t *inner = spawn(loop, &c);
  shield_ctx_t s = {inner, NULL, 0, NULL};
  assert_rc(run_main(loop, await_shielded, &s), 0);
  ASSERT_SOFT();
  assert_rc(s.await_rc, 7);
  assert_ptr_equal(s.value, &payload);
  assert_ok(asyncio_future_free(s.outer));
  assert_ok(asyncio_task_free(inner));

  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  shield_ctx_t e = {f, NULL, 0, NULL};
  asyncio_task_t *w;
  assert_ok(asyncio_loop_create_task(loop, &w, await_shielded, &e, NULL));
  child_t idle = {1, 0, NULL, 0, 0, 0, 0, 0};
  asyncio_task_t *t = spawn(loop, &idle);
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  assert_ok(asyncio_future_set_exception(f, -ECONNRESET, "reset"));
  assert_rc(asyncio_loop_run_until_complete(loop, w, NULL), 0);
  ASSERT_SOFT();
  assert_rc(e.await_rc, -ECONNRESET);
  assert_string_equal(asyncio_future_error_message(e.outer), "reset");
  assert_ok(asyncio_future_free(e.outer));
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_task_free(w));
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
  assert_int_equal(nreports, 0);
}

/* shield() of a done future is that future; a cancelled inner cancels the outer; bad arguments fail. */
TEST(shield_done_and_cancelled_inner) {
  asyncio_loop_t *loop = new_loop();
  asyncio_future_t *f, *out = NULL;
  assert_ok(asyncio_future_new(&f, loop));
  assert_ok(asyncio_future_set_result(f, 3, NULL));
  assert_ok(asyncio_shield(&out, f));
  assert_ptr_equal(out, f);
  assert_ok(asyncio_future_free(out));
  assert_ok(asyncio_future_free(f));

  assert_ok(asyncio_future_new(&f, loop));
  assert_ok(asyncio_shield(&out, f));
  assert_ptr_not_equal(out, f);
  assert_rc(asyncio_future_cancel(f, NULL), 1);
  assert_rc(asyncio_loop_run_until_complete(loop, out, NULL), -ECANCELED);
  assert_true(asyncio_future_cancelled(out));
  assert_ok(asyncio_future_free(out));
  assert_ok(asyncio_future_free(f));

  assert_rc(asyncio_shield(NULL, f), -EINVAL);
  assert_rc(asyncio_shield(&out, NULL), -EINVAL);
  assert_null(out);
  assert_ok(asyncio_loop_close(loop));
}

/* Cancelling the outer directly, with nobody awaiting, unhooks it; the inner completes unobserved and nothing leaks. */
TEST(shield_outer_cancel_direct) {
  asyncio_loop_t *loop = new_loop();
  asyncio_future_t *f, *out;
  assert_ok(asyncio_future_new(&f, loop));
  assert_ok(asyncio_shield(&out, f));
  assert_rc(asyncio_future_cancel(out, NULL), 1);
  assert_false(asyncio_future_done(f));
  child_t idle = {1, 0, NULL, 0, 0, 0, 0, 0};
  asyncio_task_t *t = spawn(loop, &idle);
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  assert_ok(asyncio_future_set_result(f, 5, NULL));
  assert_rc(asyncio_future_result(f, NULL), 5);
  assert_rc(asyncio_future_result(out, NULL), -ECANCELED);
  assert_ok(asyncio_future_free(out));
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}
