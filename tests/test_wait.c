/*
 * test_wait.c - asyncio.wait and asyncio.as_completed (include/asyncio/tasks.h,
 * combinators section; src/wait.c).
 *
 * Python origin: Lib/asyncio/tasks.py (wait, _wait, as_completed,
 * _AsCompletedIterator) and the test_wait_* / test_as_completed_* cases of
 * Lib/test/test_asyncio/test_tasks.py.  Every case runs on the virtual clock,
 * so the times checked are exact.
 *
 * Assertions inside tasks are soft (CHECK): see harness.h.
 */
#include "harness.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* ---- helpers ------------------------------------------------------------ */

/* A child: sleeps `delay`, then returns rc; records whether it was cancelled. */
typedef struct child {
  double delay;
  int rc;
  int sleep_rc;
  int finished;
} child_t;

static int child_fn(void *arg) {
  child_t *c = arg;
  c->sleep_rc = asyncio_sleep(c->delay);
  c->finished = 1;
  if (c->sleep_rc < 0) return c->sleep_rc;
  return c->rc;
}

static int nreports;

static void count_reports(asyncio_loop_t *loop, const asyncio_error_context_t *ctx, void *ud) {
  (void)loop;
  (void)ctx;
  (void)ud;
  nreports++;
}

static asyncio_loop_t *new_loop(void) {
  nreports = 0;
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_ok(asyncio_loop_set_exception_handler(loop, count_reports, NULL));
  return loop;
}

static double now(void) { return asyncio_loop_time(asyncio_get_running_loop()); }

#define NMAX 8

/* Children created inside the main task, then the case body runs there. */
typedef struct wcase {
  child_t cs[NMAX];
  size_t n;
  asyncio_task_t *ts[NMAX];
  double timeout;
  int return_when;
  /* what happened */
  int rc;
  bool done[NMAX];
  double elapsed;
} wcase_t;

static int spawn_children(wcase_t *w) {
  for (size_t i = 0; i < w->n; i++) {
    int rc = asyncio_create_task(&w->ts[i], child_fn, &w->cs[i], NULL);
    if (rc) return rc;
  }
  return 0;
}

static int wait_body(void *arg) {
  wcase_t *w = arg;
  CHECK_RC(spawn_children(w), 0);
  double t0 = now();
  w->rc = asyncio_wait(w->ts, w->n, w->timeout, w->return_when, w->done);
  w->elapsed = now() - t0;
  return 0;
}

/* Runs wait_body, then lets every child finish and frees them. */
static void run_case(wcase_t *w) {
  asyncio_loop_t *loop = new_loop();
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, wait_body, w, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  assert_ok(asyncio_task_free(t));
  ASSERT_SOFT();
  /* the pending ones were not cancelled: they finish on their own */
  for (size_t i = 0; i < w->n; i++) {
    int rc = asyncio_loop_run_until_complete(loop, w->ts[i], NULL);
    assert_rc(rc, w->cs[i].rc);
    assert_rc(w->cs[i].sleep_rc, 0);
    assert_ok(asyncio_task_free(w->ts[i]));
  }
  assert_ok(asyncio_loop_close(loop));
  assert_int_equal(nreports, 0);
}

static bool near(double a, double b) { return fabs(a - b) < 0.005; }

/* ---- wait --------------------------------------------------------------------- */

/* ALL_COMPLETED (the default) returns when every future is done. */
TEST(wait_all_completed) {
  wcase_t w = {.cs = {{3, 1}, {1, 2}, {2, 3}}, .n = 3, .timeout = INFINITY,
               .return_when = ASYNCIO_ALL_COMPLETED};
  run_case(&w);
  assert_rc(w.rc, 3);
  assert_true(w.done[0] && w.done[1] && w.done[2]);
  assert_true(near(w.elapsed, 3));
}

/* ALL_COMPLETED with a timeout: returns at the timeout with done and pending sets, cancelling nothing. */
TEST(wait_all_completed_timeout) {
  wcase_t w = {.cs = {{3, 1}, {1, 2}, {2, 3}}, .n = 3, .timeout = 1.5,
               .return_when = ASYNCIO_ALL_COMPLETED};
  run_case(&w);
  assert_rc(w.rc, 1);
  assert_false(w.done[0]);
  assert_true(w.done[1]);
  assert_false(w.done[2]);
  assert_true(near(w.elapsed, 1.5));
}

/* FIRST_COMPLETED returns as soon as one future is done. */
TEST(wait_first_completed) {
  wcase_t w = {.cs = {{3, 1}, {1, 2}, {2, 3}}, .n = 3, .timeout = INFINITY,
               .return_when = ASYNCIO_FIRST_COMPLETED};
  run_case(&w);
  assert_rc(w.rc, 1);
  assert_true(w.done[1] && !w.done[0] && !w.done[2]);
  assert_true(near(w.elapsed, 1));
}

/* FIRST_COMPLETED whose timeout comes first: nothing done, nothing cancelled. */
TEST(wait_first_completed_timeout) {
  wcase_t w = {.cs = {{3, 1}, {2, 2}}, .n = 2, .timeout = 1, .return_when = ASYNCIO_FIRST_COMPLETED};
  run_case(&w);
  assert_rc(w.rc, 0);
  assert_true(!w.done[0] && !w.done[1]);
  assert_true(near(w.elapsed, 1));
}

/* FIRST_EXCEPTION returns when a future fails, with everything done by then. */
TEST(wait_first_exception) {
  wcase_t w = {.cs = {{1, 1}, {2, -EIO}, {3, 3}}, .n = 3, .timeout = INFINITY,
               .return_when = ASYNCIO_FIRST_EXCEPTION};
  run_case(&w);
  assert_rc(w.rc, 2);
  assert_true(w.done[0] && w.done[1] && !w.done[2]);
  assert_true(near(w.elapsed, 2));
}

/* FIRST_EXCEPTION without any error behaves as ALL_COMPLETED. */
TEST(wait_first_exception_no_error) {
  wcase_t w = {.cs = {{1, 1}, {2, 2}}, .n = 2, .timeout = INFINITY,
               .return_when = ASYNCIO_FIRST_EXCEPTION};
  run_case(&w);
  assert_rc(w.rc, 2);
  assert_true(near(w.elapsed, 2));
}

/* FIRST_EXCEPTION with a timeout that expires before the error. */
TEST(wait_first_exception_timeout) {
  wcase_t w = {.cs = {{1, 1}, {3, -EIO}, {4, 3}}, .n = 3, .timeout = 2,
               .return_when = ASYNCIO_FIRST_EXCEPTION};
  run_case(&w);
  assert_rc(w.rc, 1);
  assert_true(w.done[0] && !w.done[1] && !w.done[2]);
  assert_true(near(w.elapsed, 2));
}

/* FIRST_EXCEPTION: a cancellation is not an exception (Python checks f.cancelled() first). */
static int cancel_not_exception(void *arg) {
  (void)arg;
  asyncio_future_t *fs[2];
  CHECK_RC(asyncio_future_new(&fs[0], NULL), 0);
  CHECK_RC(asyncio_future_new(&fs[1], NULL), 0);
  CHECK_RC(asyncio_future_cancel(fs[0], NULL), 1);
  double t0 = now();
  /* fs[1] never completes: only the timeout ends the wait */
  CHECK_RC(asyncio_wait(fs, 2, 5, ASYNCIO_FIRST_EXCEPTION, NULL), 1);
  CHECK(near(now() - t0, 5));
  asyncio_future_free(fs[0]);
  asyncio_future_free(fs[1]);
  return 0;
}

TEST(wait_first_exception_cancel_is_not_error) {
  asyncio_loop_t *loop = new_loop();
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, cancel_not_exception, NULL, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  ASSERT_SOFT();
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

/* Futures already done: wait returns after one loop iteration with all of them done. */
static int wait_done_body(void *arg) {
  (void)arg;
  asyncio_future_t *fs[2];
  CHECK_RC(asyncio_future_new(&fs[0], NULL), 0);
  CHECK_RC(asyncio_future_new(&fs[1], NULL), 0);
  CHECK_RC(asyncio_future_set_result(fs[0], 1, NULL), 0);
  CHECK_RC(asyncio_future_set_result(fs[1], 2, NULL), 0);
  bool done[2] = {false, false};
  CHECK_RC(asyncio_wait(fs, 2, INFINITY, ASYNCIO_ALL_COMPLETED, done), 2);
  CHECK(done[0] && done[1]);
  CHECK(now() == 0 || now() < 0.001);
  /* timeout 0 with a pending future: one iteration, nothing done */
  asyncio_future_t *p;
  CHECK_RC(asyncio_future_new(&p, NULL), 0);
  CHECK_RC(asyncio_wait(&p, 1, 0, ASYNCIO_ALL_COMPLETED, done), 0);
  CHECK(!done[0]);
  asyncio_future_free(p);
  asyncio_future_free(fs[0]);
  asyncio_future_free(fs[1]);
  return 0;
}

TEST(wait_done_futures_and_zero_timeout) {
  asyncio_loop_t *loop = new_loop();
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, wait_done_body, NULL, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  ASSERT_SOFT();
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

/* Cancelling the waiting task: wait returns -ECANCELED and the futures keep running. */
TEST(wait_caller_cancelled) {
  asyncio_loop_t *loop = new_loop();
  wcase_t w = {.cs = {{3, 1}, {2, 2}}, .n = 2, .timeout = INFINITY,
               .return_when = ASYNCIO_ALL_COMPLETED};
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, wait_body, &w, NULL));
  asyncio_future_t *timer;
  assert_ok(asyncio_future_new(&timer, loop));
  assert_rc(asyncio_wait(&timer, 1, 1, 0, NULL), ASYNCIO_ENOTASK); /* not in a task */
  /* run one second, then cancel the waiter */
  wcase_t idle = {.cs = {{1, 0}}, .n = 1, .timeout = INFINITY};
  asyncio_task_t *it;
  assert_ok(asyncio_loop_create_task(loop, &it, child_fn, &idle.cs[0], NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, it, NULL), 0);
  assert_rc(asyncio_task_cancel(t, NULL), 1);
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  ASSERT_SOFT();
  assert_rc(w.rc, -ECANCELED);
  assert_false(asyncio_future_done(w.ts[0]));
  assert_false(asyncio_future_done(w.ts[1]));
  for (int i = 0; i < 2; i++) {
    assert_rc(asyncio_loop_run_until_complete(loop, w.ts[i], NULL), w.cs[i].rc);
    assert_ok(asyncio_task_free(w.ts[i]));
  }
  assert_ok(asyncio_task_free(it));
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_future_free(timer));
  assert_ok(asyncio_loop_close(loop));
}

/* An empty set is Python's ValueError; other misuse is -EINVAL too. */
static int wait_invalid_body(void *arg) {
  asyncio_loop_t *other = arg;
  asyncio_future_t *f, *g;
  CHECK_RC(asyncio_future_new(&f, NULL), 0);
  CHECK_RC(asyncio_future_new(&g, other), 0);
  asyncio_future_t *withnull[2] = {f, NULL};
  asyncio_future_t *mixed[2] = {f, g};
  asyncio_future_t *self = asyncio_current_task();
  CHECK_RC(asyncio_wait(&f, 0, INFINITY, ASYNCIO_ALL_COMPLETED, NULL), -EINVAL);
  CHECK_RC(asyncio_wait(NULL, 1, INFINITY, ASYNCIO_ALL_COMPLETED, NULL), -EINVAL);
  CHECK_RC(asyncio_wait(withnull, 2, INFINITY, ASYNCIO_ALL_COMPLETED, NULL), -EINVAL);
  CHECK_RC(asyncio_wait(mixed, 2, INFINITY, ASYNCIO_ALL_COMPLETED, NULL), -EINVAL);
  CHECK_RC(asyncio_wait(&self, 1, INFINITY, ASYNCIO_ALL_COMPLETED, NULL), -EINVAL);
  CHECK_RC(asyncio_wait(&f, 1, INFINITY, 3, NULL), -EINVAL);
  CHECK_RC(asyncio_wait(&f, 1, INFINITY, -1, NULL), -EINVAL);
  CHECK_RC(asyncio_wait(&f, 1, NAN, ASYNCIO_ALL_COMPLETED, NULL), -EINVAL);
  asyncio_future_free(f);
  asyncio_future_free(g);
  return 0;
}

TEST(wait_invalid_arguments) {
  asyncio_loop_t *loop = new_loop();
  asyncio_loop_t *other = harness_virtual_loop();
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, wait_invalid_body, other, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  ASSERT_SOFT();
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(other));
  assert_ok(asyncio_loop_close(loop));
}

/* Out of memory at every allocation: -ENOMEM, nothing left behind, then success. */
static int wait_oom_body(void *arg) {
  int *fails = arg;
  asyncio_future_t *fs[3];
  for (int i = 0; i < 3; i++) CHECK_RC(asyncio_future_new(&fs[i], NULL), 0);
  CHECK_RC(asyncio_future_set_result(fs[0], 0, NULL), 0);
  for (long n = 1;; n++) {
    harness_fail_alloc_after(n);
    int rc = asyncio_wait(fs, 3, 1, ASYNCIO_ALL_COMPLETED, NULL);
    harness_fail_alloc_after(0);
    if (rc >= 0) {
      CHECK_RC(rc, 1);
      break;
    }
    CHECK_RC(rc, -ENOMEM);
    (*fails)++;
  }
  CHECK_RC(asyncio_sleep(0), 0); /* queued callbacks of failed attempts run */
  for (int i = 0; i < 3; i++) asyncio_future_free(fs[i]);
  return 0;
}

TEST(wait_out_of_memory) {
  asyncio_loop_t *loop = new_loop();
  int fails = 0;
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, wait_oom_body, &fails, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  ASSERT_SOFT();
  assert_true(fails >= 2);
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

/* ---- as_completed ----------------------------------------------------------- */

typedef struct accase {
  child_t cs[NMAX];
  size_t n;
  asyncio_task_t *ts[NMAX];
  double timeout;
  int use_result; /* next_result instead of next */
  int rcs[NMAX + 2];
  int order[NMAX + 2];
  double at[NMAX + 2];
  int nsteps;
} accase_t;

static int ac_body(void *arg) {
  accase_t *a = arg;
  for (size_t i = 0; i < a->n; i++)
    CHECK_RC(asyncio_create_task(&a->ts[i], child_fn, &a->cs[i], NULL), 0);
  asyncio_as_completed_t *it = NULL;
  CHECK_RC(asyncio_as_completed_new(&it, a->ts, a->n, a->timeout), 0);
  if (!it) return -ENOMEM;
  double t0 = now();
  CHECK(asyncio_as_completed_remaining(it) == (ssize_t)a->n);
  while (a->nsteps < NMAX + 2) {
    int k = a->nsteps;
    a->order[k] = -1;
    if (a->use_result) {
      if (asyncio_as_completed_remaining(it) == 0) {
        CHECK_RC(asyncio_as_completed_next_result(it, NULL), ASYNCIO_EINVALIDSTATE);
        break;
      }
      a->rcs[k] = asyncio_as_completed_next_result(it, NULL);
    } else {
      asyncio_future_t *f = NULL;
      a->rcs[k] = asyncio_as_completed_next(it, &f);
      for (size_t i = 0; i < a->n; i++)
        if (f == a->ts[i]) a->order[k] = (int)i;
      if (a->rcs[k] == 0) {
        CHECK(f == NULL);
        break;
      }
    }
    a->at[k] = now() - t0;
    a->nsteps++;
  }
  CHECK_RC(asyncio_as_completed_free(it), 0);
  return 0;
}

static void run_ac(accase_t *a) {
  asyncio_loop_t *loop = new_loop();
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, ac_body, a, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  assert_ok(asyncio_task_free(t));
  ASSERT_SOFT();
  for (size_t i = 0; i < a->n; i++) {
    int rc = asyncio_loop_run_until_complete(loop, a->ts[i], NULL);
    assert_rc(rc, a->cs[i].rc);
    assert_rc(a->cs[i].sleep_rc, 0); /* never cancelled */
    assert_ok(asyncio_task_free(a->ts[i]));
  }
  assert_ok(asyncio_loop_close(loop));
  assert_int_equal(nreports, 0);
}

/* 3.13 form: next() hands back the original tasks in completion order, each when it completes. */
TEST(as_completed_next_order) {
  accase_t a = {.cs = {{3, 30}, {1, 10}, {2, 20}}, .n = 3, .timeout = INFINITY};
  run_ac(&a);
  assert_int_equal(a.nsteps, 3);
  int want[3] = {1, 2, 0};
  for (int k = 0; k < 3; k++) {
    assert_rc(a.rcs[k], 1);
    assert_int_equal(a.order[k], want[k]);
    assert_true(near(a.at[k], want[k] == 0 ? 3 : want[k]));
  }
}

/* The "for f in as_completed(): await f" form returns each outcome, errors included, in completion order. */
TEST(as_completed_next_result_order) {
  accase_t a = {.cs = {{3, 30}, {1, -EIO}, {2, 20}}, .n = 3, .timeout = INFINITY, .use_result = 1};
  run_ac(&a);
  assert_int_equal(a.nsteps, 3);
  assert_rc(a.rcs[0], -EIO);
  assert_rc(a.rcs[1], 20);
  assert_rc(a.rcs[2], 30);
  assert_true(near(a.at[2], 3));
}

/* With a timeout: what completed first comes out, then -ETIMEDOUT for each remaining; those keep running. */
TEST(as_completed_timeout) {
  accase_t a = {.cs = {{5, 50}, {1, 10}, {4, 40}}, .n = 3, .timeout = 2};
  run_ac(&a);
  assert_int_equal(a.nsteps, 3);
  assert_rc(a.rcs[0], 1);
  assert_int_equal(a.order[0], 1);
  assert_true(near(a.at[0], 1));
  assert_rc(a.rcs[1], -ETIMEDOUT);
  assert_true(near(a.at[1], 2));
  assert_rc(a.rcs[2], -ETIMEDOUT);
  assert_true(near(a.at[2], 2));
}

/* The result form raises the timeout too. */
TEST(as_completed_timeout_result_form) {
  accase_t a = {.cs = {{3, 30}, {1, 10}}, .n = 2, .timeout = 2, .use_result = 1};
  run_ac(&a);
  assert_int_equal(a.nsteps, 2);
  assert_rc(a.rcs[0], 10);
  assert_rc(a.rcs[1], -ETIMEDOUT);
  assert_true(near(a.at[1], 2));
}

/* Completions queued before the timeout are still handed out after it. */
static int ac_late_consumer(void *arg) {
  (void)arg;
  child_t cs[3] = {{1, 1, 0, 0}, {2, 2, 0, 0}, {9, 9, 0, 0}};
  asyncio_task_t *ts[3];
  for (int i = 0; i < 3; i++) CHECK_RC(asyncio_create_task(&ts[i], child_fn, &cs[i], NULL), 0);
  asyncio_as_completed_t *it;
  CHECK_RC(asyncio_as_completed_new(&it, ts, 3, 3), 0);
  CHECK_RC(asyncio_sleep(5), 0); /* both finished and the timeout expired meanwhile */
  asyncio_future_t *f;
  CHECK_RC(asyncio_as_completed_next(it, &f), 1);
  CHECK(f == ts[0]);
  CHECK_RC(asyncio_as_completed_next(it, &f), 1);
  CHECK(f == ts[1]);
  CHECK_RC(asyncio_as_completed_next(it, &f), -ETIMEDOUT);
  CHECK(f == NULL);
  CHECK_RC(asyncio_as_completed_next(it, &f), 0);
  CHECK_RC(asyncio_as_completed_free(it), 0);
  CHECK_RC(asyncio_await(ts[2], NULL), 9);
  CHECK_RC(cs[2].sleep_rc, 0);
  for (int i = 0; i < 3; i++) asyncio_task_free(ts[i]);
  return 0;
}

TEST(as_completed_done_before_timeout_come_first) {
  asyncio_loop_t *loop = new_loop();
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, ac_late_consumer, NULL, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  ASSERT_SOFT();
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

/* An empty iterator is exhausted at once and needs no task; misuse is an error. */
typedef struct misuse {
  asyncio_as_completed_t *it;
  asyncio_future_t *fut;
} misuse_t;

static int ac_misuse_body(void *arg) {
  misuse_t *m = arg;
  asyncio_future_t *f;
  CHECK_RC(asyncio_as_completed_next(m->it, &f), -EBUSY); /* the main body waits in next */
  CHECK_RC(asyncio_future_set_result(m->fut, 0, NULL), 0);
  return 0;
}

static int ac_empty_body(void *arg) {
  (void)arg;
  misuse_t m;
  CHECK_RC(asyncio_future_new(&m.fut, NULL), 0);
  CHECK_RC(asyncio_as_completed_new(&m.it, &m.fut, 1, INFINITY), 0);
  asyncio_task_t *other;
  CHECK_RC(asyncio_create_task(&other, ac_misuse_body, &m, NULL), 0);
  asyncio_future_t *f = NULL;
  CHECK_RC(asyncio_as_completed_next(m.it, &f), 1);
  CHECK(f == m.fut);
  CHECK_RC(asyncio_await(other, NULL), 0);
  CHECK_RC(asyncio_as_completed_free(m.it), 0);
  asyncio_task_free(other);
  asyncio_future_free(m.fut);
  return 0;
}

TEST(as_completed_empty_and_misuse) {
  asyncio_loop_t *loop = new_loop();
  asyncio_as_completed_t *it = NULL;
  asyncio_future_t *f = (asyncio_future_t *)1;
  assert_ok(asyncio_as_completed_new(&it, NULL, 0, INFINITY));
  assert_int_equal(asyncio_as_completed_remaining(it), 0);
  assert_rc(asyncio_as_completed_next(it, &f), 0); /* StopAsyncIteration, no task needed */
  assert_null(f);
  assert_rc(asyncio_as_completed_next_result(it, NULL), ASYNCIO_EINVALIDSTATE);
  assert_ok(asyncio_as_completed_free(it));
  assert_rc(asyncio_as_completed_new(NULL, NULL, 0, INFINITY), -EINVAL);
  assert_rc(asyncio_as_completed_new(&it, NULL, 1, INFINITY), -EINVAL);
  assert_rc(asyncio_as_completed_new(&it, NULL, 0, NAN), -EINVAL);
  assert_rc(asyncio_as_completed_next(NULL, &f), -EINVAL);
  assert_rc(asyncio_as_completed_free(NULL), -EINVAL);
  assert_int_equal(asyncio_as_completed_remaining(NULL), -EINVAL);
  asyncio_future_t *fut;
  assert_ok(asyncio_future_new(&fut, loop));
  assert_ok(asyncio_as_completed_new(&it, &fut, 1, INFINITY));
  assert_rc(asyncio_as_completed_next(it, &f), ASYNCIO_ENOTASK); /* would suspend outside a task */
  assert_ok(asyncio_as_completed_free(it));
  assert_ok(asyncio_future_free(fut));
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, ac_empty_body, NULL, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  ASSERT_SOFT();
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

/* Freeing the iterator early stops watching; the futures run on, a callback already queued is harmless. */
TEST(as_completed_free_early) {
  asyncio_loop_t *loop = new_loop();
  asyncio_future_t *fs[2];
  assert_ok(asyncio_future_new(&fs[0], loop));
  assert_ok(asyncio_future_new(&fs[1], loop));
  asyncio_as_completed_t *it;
  assert_ok(asyncio_as_completed_new(&it, fs, 2, 10));
  assert_ok(asyncio_future_set_result(fs[0], 1, NULL)); /* its callback is queued now */
  assert_ok(asyncio_as_completed_free(it));
  assert_ok(asyncio_future_set_result(fs[1], 2, NULL));
  child_t idle = {0, 0, 0, 0};
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, child_fn, &idle, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0); /* the queued callback runs */
  assert_ok(asyncio_task_free(t));
  assert_rc(asyncio_future_result(fs[1], NULL), 2);
  assert_ok(asyncio_future_free(fs[0]));
  assert_ok(asyncio_future_free(fs[1]));
  assert_ok(asyncio_loop_close(loop));
}

/* A task cancelled while waiting in next() gets -ECANCELED; nothing is consumed. */
static int ac_cancel_body(void *arg) {
  asyncio_as_completed_t *it = arg;
  asyncio_future_t *f;
  return asyncio_as_completed_next(it, &f);
}

TEST(as_completed_next_cancelled) {
  asyncio_loop_t *loop = new_loop();
  asyncio_future_t *fut;
  assert_ok(asyncio_future_new(&fut, loop));
  asyncio_as_completed_t *it;
  assert_ok(asyncio_as_completed_new(&it, &fut, 1, INFINITY));
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, ac_cancel_body, it, NULL));
  child_t idle = {1, 0, 0, 0};
  asyncio_task_t *it_idle;
  assert_ok(asyncio_loop_create_task(loop, &it_idle, child_fn, &idle, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, it_idle, NULL), 0);
  assert_rc(asyncio_as_completed_free(it), -EBUSY); /* a task waits in next */
  assert_rc(asyncio_task_cancel(t, NULL), 1);
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), -ECANCELED);
  assert_int_equal(asyncio_as_completed_remaining(it), 1);
  assert_false(asyncio_future_done(fut));
  assert_ok(asyncio_as_completed_free(it));
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_task_free(it_idle));
  assert_ok(asyncio_future_free(fut));
  assert_ok(asyncio_loop_close(loop));
}
