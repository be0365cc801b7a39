/*
 * test_timeouts.c - timeout scopes and wait_for (include/asyncio/timeouts.h).
 *
 * Python origin: Lib/asyncio/timeouts.py (Timeout, timeout, timeout_at),
 * wait_for in Lib/asyncio/tasks.py (3.12), and
 * Lib/test/test_asyncio/test_timeouts.py, test_waitfor.py.
 *
 * Every case runs on the virtual clock, so deadlines are exact and "sleep
 * 3600 s" takes no time.  Assertions inside tasks are soft (CHECK) and are
 * asserted by the test body after the loop returns.
 */
#include "harness.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------ */

static asyncio_loop_t *loop_;
static int flag_a, flag_b, counter;
static asyncio_timeout_t *shared_cm;
static asyncio_task_t *main_task, *inner_task;
static double t_mark;

static void reset(void) {
  soft_fail[0] = 0;
  flag_a = flag_b = counter = 0;
  shared_cm = NULL;
  main_task = inner_task = NULL;
  t_mark = -1;
}

static double now(void) { return asyncio_loop_time(asyncio_get_running_loop()); }

/* Runs fn(arg) as the main task of a fresh virtual-clock loop; returns its outcome. */
static int run_main(asyncio_coro_fn fn, void *arg, double *end_time) {
  asyncio_loop_t *loop = harness_virtual_loop();
  loop_ = loop;
  asyncio_task_t *t;
  int rc = asyncio_loop_create_task(loop, &t, fn, arg, NULL);
  if (rc != 0) fail_msg("create_task: %s", asyncio_errname(rc));
  main_task = t;
  rc = asyncio_loop_run_until_complete(loop, t, NULL);
  if (end_time) *end_time = asyncio_loop_time(loop);
  asyncio_task_free(t);
  main_task = NULL;
  int crc = asyncio_loop_close(loop);
  if (crc != 0) fail_msg("loop_close: %s", asyncio_errname(crc));
  return rc;
}

static int sleep_arg_ms(void *arg) { return asyncio_sleep((double)(intptr_t)arg / 1000.0); }

/* ---- scope expiry ---------------------------------------------------------- */

static int expiry_main(void *arg) {
  (void)arg;
  asyncio_timeout_t *cm;
  CHECK_RC(asyncio_timeout_enter(&cm, 0.5), 0);
  double when = 0;
  CHECK_RC(asyncio_timeout_when(cm, &when), 0);
  CHECK(when == 0.5);
  CHECK(!asyncio_timeout_expired(cm));
  int rc = asyncio_sleep(10);
  CHECK_RC(rc, -ECANCELED); /* the body sees a cancellation */
  CHECK(asyncio_timeout_expired(cm)); /* expired before exit too */
  CHECK(now() == 0.5);
  rc = asyncio_timeout_exit(cm, rc);
  CHECK_RC(rc, -ETIMEDOUT);
  CHECK(asyncio_timeout_expired(cm)); /* and after */
  CHECK(asyncio_task_cancelling(asyncio_current_task()) == 0);
  asyncio_timeout_free(cm);
  /* the task is not left cancelled: it goes on */
  CHECK_RC(asyncio_sleep(1), 0);
  return 7;
}

/* asyncio.timeout(0.5) around sleep(10): CancelledError inside, TimeoutError out of the block. */
TEST(timeout_expires) {
  reset();
  double end;
  assert_rc(run_main(expiry_main, NULL, &end), 7);
  ASSERT_SOFT();
  assert_true(end == 1.5);
}

static int expiry_at_main(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_sleep(3), 0);
  asyncio_timeout_t *cm;
  double deadline = now() + 2;
  CHECK_RC(asyncio_timeout_at_enter(&cm, deadline), 0);
  int rc = asyncio_timeout_exit(cm, asyncio_sleep(10));
  double when = 0;
  CHECK_RC(asyncio_timeout_when(cm, &when), 0);
  CHECK(when == deadline);
  CHECK(now() == 5);
  CHECK(asyncio_timeout_expired(cm));
  asyncio_timeout_free(cm);
  return rc;
}

/* asyncio.timeout_at(loop.time() + 2): the deadline is absolute; when() returns it. */
TEST(timeout_at_expires) {
  reset();
  assert_rc(run_main(expiry_at_main, NULL, NULL), -ETIMEDOUT);
  ASSERT_SOFT();
}

static int waiter_cancelled_main(void *arg) {
  (void)arg;
  asyncio_timeout_t *cm;
  CHECK_RC(asyncio_timeout_enter(&cm, 0.01), 0);
  asyncio_future_t *f;
  CHECK_RC(asyncio_future_new(&f, NULL), 0);
  int rc = asyncio_await(f, NULL); /* never completed by anyone */
  CHECK_RC(rc, -ECANCELED);
  CHECK(asyncio_future_cancelled(f)); /* the awaited future was cancelled */
  rc = asyncio_timeout_exit(cm, rc);
  asyncio_timeout_free(cm);
  asyncio_future_free(f);
  return rc;
}

/* The deadline cancels what the task awaits (here a future nobody completes). */
TEST(timeout_cancels_awaited_future) {
  reset();
  assert_rc(run_main(waiter_cancelled_main, NULL, NULL), -ETIMEDOUT);
  ASSERT_SOFT();
}

static int not_expired_main(void *arg) {
  (void)arg;
  asyncio_timeout_t *cm;
  CHECK_RC(asyncio_timeout_enter(&cm, 10), 0);
  CHECK_RC(asyncio_sleep(1), 0);
  CHECK_RC(asyncio_timeout_exit(cm, 3), 3);
  CHECK(!asyncio_timeout_expired(cm));
  double when = 0;
  CHECK_RC(asyncio_timeout_when(cm, &when), 0);
  CHECK(when == 10 && when > now());
  asyncio_timeout_free(cm);
  CHECK_RC(asyncio_sleep(20), 0); /* past the old deadline: it was disarmed (ASan checks) */
  return 0;
}

/* A scope left in time returns the body's outcome and disarms its deadline. */
TEST(timeout_not_expired) {
  reset();
  double end;
  assert_rc(run_main(not_expired_main, NULL, &end), 0);
  ASSERT_SOFT();
  assert_true(end == 21.0);
}

static int disabled_main(void *arg) {
  bool at = arg != NULL;
  asyncio_timeout_t *cm;
  CHECK_RC(at ? asyncio_timeout_at_enter(&cm, ASYNCIO_NO_TIMEOUT)
              : asyncio_timeout_enter(&cm, ASYNCIO_NO_TIMEOUT),
           0);
  CHECK_RC(asyncio_sleep(3600), 0);
  CHECK_RC(asyncio_timeout_exit(cm, 0), 0);
  CHECK(!asyncio_timeout_expired(cm));
  double when = 0;
  CHECK_RC(asyncio_timeout_when(cm, &when), 0);
  CHECK(isinf(when) && when > 0);
  asyncio_timeout_free(cm);
  return 0;
}

/* timeout(None) / timeout_at(None): ASYNCIO_NO_TIMEOUT never expires; when() is +inf. */
TEST(timeout_none_never_expires) {
  reset();
  assert_rc(run_main(disabled_main, NULL, NULL), 0);
  assert_rc(run_main(disabled_main, (void *)1, NULL), 0);
  ASSERT_SOFT();
}

static int zero_main(void *arg) {
  double delay = *(double *)arg;
  asyncio_timeout_t *cm;
  double t0 = now();
  CHECK_RC(asyncio_timeout_enter(&cm, delay), 0);
  int rc = asyncio_timeout_exit(cm, asyncio_sleep(0));
  CHECK(asyncio_timeout_expired(cm));
  double when = 0;
  asyncio_timeout_when(cm, &when);
  CHECK(when == t0 + delay);
  CHECK(now() == t0); /* expired on the next iteration, no time passed */
  asyncio_timeout_free(cm);
  return rc;
}

/* timeout(0) and timeout(-11) expire on the next loop iteration: even sleep(0) is interrupted. */
TEST(timeout_zero_and_past) {
  reset();
  double d = 0;
  assert_rc(run_main(zero_main, &d, NULL), -ETIMEDOUT);
  d = -11;
  assert_rc(run_main(zero_main, &d, NULL), -ETIMEDOUT);
  d = -INFINITY;
  assert_rc(run_main(zero_main, &d, NULL), -ETIMEDOUT);
  ASSERT_SOFT();
}

static int zero_no_suspend_main(void *arg) {
  (void)arg;
  asyncio_timeout_t *cm;
  CHECK_RC(asyncio_timeout_enter(&cm, 0), 0);
  CHECK_RC(asyncio_timeout_exit(cm, 5), 5); /* never suspended: the deadline had no chance */
  CHECK(!asyncio_timeout_expired(cm));
  asyncio_timeout_free(cm);
  CHECK_RC(asyncio_sleep(0), 0); /* and it does not fire later */
  CHECK_RC(asyncio_sleep(1), 0);
  CHECK(asyncio_task_cancelling(asyncio_current_task()) == 0);
  return 0;
}

/* A body that never suspends cannot be interrupted; exit withdraws the deadline. */
TEST(timeout_body_without_suspension) {
  reset();
  assert_rc(run_main(zero_no_suspend_main, NULL, NULL), 0);
  ASSERT_SOFT();
}

static int foreign_error_main(void *arg) {
  bool on_timeout = arg != NULL;
  asyncio_timeout_t *cm;
  CHECK_RC(asyncio_timeout_enter(&cm, 0.01), 0);
  int rc = -EIO;
  if (on_timeout) {
    CHECK_RC(asyncio_sleep(1), -ECANCELED); /* try: sleep  finally: raise */
  }
  rc = asyncio_timeout_exit(cm, rc);
  CHECK(asyncio_timeout_expired(cm) == on_timeout);
  CHECK(asyncio_task_cancelling(asyncio_current_task()) == 0);
  asyncio_timeout_free(cm);
  return rc;
}

/* Another error leaves the block unchanged, also when it replaces the timeout's CancelledError. */
TEST(timeout_foreign_error_passes) {
  reset();
  assert_rc(run_main(foreign_error_main, NULL, NULL), -EIO);
  assert_rc(run_main(foreign_error_main, (void *)1, NULL), -EIO);
  ASSERT_SOFT();
}

static int suppress_main(void *arg) {
  (void)arg;
  asyncio_timeout_t *cm;
  CHECK_RC(asyncio_timeout_enter(&cm, 1), 0);
  int rc = asyncio_sleep(10);
  CHECK_RC(rc, -ECANCELED);
  rc = asyncio_timeout_exit(cm, 42); /* the body swallowed the cancellation */
  CHECK(asyncio_timeout_expired(cm));
  CHECK(asyncio_task_cancelling(asyncio_current_task()) == 0);
  asyncio_timeout_free(cm);
  return rc;
}

/* A body that swallows the deadline's cancellation keeps its result; expired() is still true. */
TEST(timeout_suppressed_cancellation_keeps_result) {
  reset();
  assert_rc(run_main(suppress_main, NULL, NULL), 42);
  ASSERT_SOFT();
}

/* ---- outside cancellation ------------------------------------------------------- */

static int foreign_cancel_main(void *arg) {
  (void)arg;
  asyncio_timeout_t *cm;
  CHECK_RC(asyncio_timeout_enter(&cm, 10), 0);
  asyncio_task_cancel(asyncio_current_task(), NULL);
  int rc = asyncio_timeout_exit(cm, asyncio_sleep(10));
  CHECK(!asyncio_timeout_expired(cm));
  CHECK(asyncio_task_cancelling(asyncio_current_task()) == 1);
  asyncio_timeout_free(cm);
  return rc;
}

/* Task.cancel() inside a scope that has not expired stays a CancelledError. */
TEST(timeout_outside_cancel_not_converted) {
  reset();
  assert_rc(run_main(foreign_cancel_main, NULL, NULL), -ECANCELED);
  ASSERT_SOFT();
}

static void cancel_cb(void *arg) { asyncio_task_cancel((asyncio_task_t *)arg, NULL); }

static int same_tick_cancel_main(void *arg) {
  bool outside_first = arg != NULL;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_task_t *me = asyncio_current_task();
  /* A callback cancels us at t=1, the very tick our deadline fires: before
   * it (scheduled first) or after it; either way before we resume. */
  if (outside_first) CHECK_RC(asyncio_loop_call_later(loop, 1, cancel_cb, me, NULL), 0);
  asyncio_timeout_t *cm;
  CHECK_RC(asyncio_timeout_enter(&cm, 1), 0);
  if (!outside_first) CHECK_RC(asyncio_loop_call_later(loop, 1, cancel_cb, me, NULL), 0);
  int rc = asyncio_sleep(10);
  CHECK_RC(rc, -ECANCELED);
  CHECK(now() == 1);
  CHECK(asyncio_task_cancelling(me) == 2);
  rc = asyncio_timeout_exit(cm, rc);
  CHECK(asyncio_timeout_expired(cm)); /* it did expire, but is not the only canceller */
  CHECK(asyncio_task_cancelling(me) == 1);
  asyncio_timeout_free(cm);
  return rc;
}

/* Deadline and an outside cancel at the same virtual tick (either order): the outside cancellation wins. */
TEST(timeout_outside_cancel_same_tick) {
  reset();
  assert_rc(run_main(same_tick_cancel_main, NULL, NULL), -ECANCELED);
  assert_rc(run_main(same_tick_cancel_main, (void *)1, NULL), -ECANCELED);
  ASSERT_SOFT();
}

static int after_cancel_main(void *arg) {
  bool cancel_inside = arg != NULL;
  /* A cancellation swallowed without uncancel(): cancelling() stays 1. */
  asyncio_task_cancel(asyncio_current_task(), NULL);
  CHECK_RC(asyncio_sleep(1), -ECANCELED);
  CHECK(asyncio_task_cancelling(asyncio_current_task()) == 1);
  asyncio_timeout_t *cm;
  CHECK_RC(asyncio_timeout_enter(&cm, cancel_inside ? 1.0 : 0.0), 0);
  if (cancel_inside) asyncio_task_cancel(asyncio_current_task(), NULL);
  int rc = asyncio_timeout_exit(cm, asyncio_sleep(2));
  asyncio_timeout_free(cm);
  return rc;
}

/* The count at entry is the reference: a scope entered while cancelling() == 1 still converts its own. */
TEST(timeout_after_swallowed_cancellation) {
  reset();
  assert_rc(run_main(after_cancel_main, NULL, NULL), -ETIMEDOUT);
  assert_rc(run_main(after_cancel_main, (void *)1, NULL), -ECANCELED);
  ASSERT_SOFT();
}

static int outer_not_cancelled_body(void *arg) {
  (void)arg;
  asyncio_timeout_t *cm;
  CHECK_RC(asyncio_timeout_enter(&cm, 0.001), 0);
  CHECK_RC(asyncio_timeout_exit(cm, asyncio_sleep(10)), -ETIMEDOUT);
  asyncio_timeout_free(cm);
  return 0;
}

static int outer_not_cancelled_main(void *arg) {
  (void)arg;
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, outer_not_cancelled_body, NULL, NULL), 0);
  CHECK_RC(asyncio_await(t, NULL), 0);
  CHECK(!asyncio_future_cancelled(t));
  CHECK(asyncio_task_cancelling(t) == 0);
  asyncio_task_free(t);
  return 0;
}

/* A task whose scope converted the timeout ends normally, not cancelled. */
TEST(timeout_task_not_left_cancelled) {
  reset();
  assert_rc(run_main(outer_not_cancelled_main, NULL, NULL), 0);
  ASSERT_SOFT();
}

/* ---- reschedule ------------------------------------------------------------------ */

static int reschedule_main(void *arg) {
  int mode = (int)(intptr_t)arg;
  asyncio_timeout_t *cm;
  CHECK_RC(asyncio_timeout_enter(&cm, mode == 0 ? 1 : 10), 0);
  CHECK_RC(asyncio_sleep(0.5), 0);
  double target = mode == 0 ? 5 : mode == 1 ? 2 : mode == 2 ? ASYNCIO_NO_TIMEOUT : 0.25;
  CHECK_RC(asyncio_timeout_reschedule(cm, target), 0);
  double when = 0;
  asyncio_timeout_when(cm, &when);
  CHECK(when == target);
  int rc = asyncio_timeout_exit(cm, asyncio_sleep(20));
  t_mark = now();
  CHECK(asyncio_timeout_expired(cm) == (mode != 2));
  asyncio_timeout_free(cm);
  return rc;
}

/* Timeout.reschedule(): later, earlier, None, and a deadline already in the past. */
TEST(timeout_reschedule) {
  reset();
  assert_rc(run_main(reschedule_main, (void *)0, NULL), -ETIMEDOUT); /* 1 -> 5 */
  assert_true(t_mark == 5);
  assert_rc(run_main(reschedule_main, (void *)1, NULL), -ETIMEDOUT); /* 10 -> 2 */
  assert_true(t_mark == 2);
  assert_rc(run_main(reschedule_main, (void *)2, NULL), 0); /* 10 -> none */
  assert_true(t_mark == 20.5);
  assert_rc(run_main(reschedule_main, (void *)3, NULL), -ETIMEDOUT); /* 10 -> past */
  assert_true(t_mark == 0.5);
  ASSERT_SOFT();
}

static int resched_body(void *arg) {
  (void)arg;
  asyncio_timeout_t *cm;
  CHECK_RC(asyncio_timeout_at_enter(&cm, 10), 0);
  shared_cm = cm;
  int rc = asyncio_timeout_exit(cm, asyncio_sleep(50));
  flag_a = asyncio_timeout_expired(cm);
  asyncio_timeout_free(cm);
  shared_cm = NULL;
  return rc;
}

static int resched_from_other_main(void *arg) {
  (void)arg;
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, resched_body, NULL, NULL), 0);
  CHECK_RC(asyncio_sleep(0), 0);
  CHECK(shared_cm != NULL);
  double when = 0;
  asyncio_timeout_when(shared_cm, &when);
  CHECK(when == 10);
  CHECK_RC(asyncio_timeout_reschedule(shared_cm, 30), 0);
  asyncio_timeout_when(shared_cm, &when);
  CHECK(when == 30);
  CHECK_RC(asyncio_timeout_reschedule(shared_cm, ASYNCIO_NO_TIMEOUT), 0);
  CHECK_RC(asyncio_sleep(40), 0); /* past both old deadlines */
  asyncio_task_cancel(t, NULL);
  CHECK_RC(asyncio_await(t, NULL), -ECANCELED);
  CHECK(!flag_a);
  asyncio_task_free(t);
  return 0;
}

/* reschedule() from another task (test_reschedule): the task's own cancel is not a timeout. */
TEST(timeout_reschedule_from_other_task) {
  reset();
  assert_rc(run_main(resched_from_other_main, NULL, NULL), 0);
  ASSERT_SOFT();
}

/* ---- nesting -------------------------------------------------------------------- */

static int nested_inner_fires_main(void *arg) {
  (void)arg;
  asyncio_timeout_t *outer, *inner;
  CHECK_RC(asyncio_timeout_enter(&outer, 10), 0);
  CHECK_RC(asyncio_timeout_enter(&inner, 1), 0);
  CHECK_RC(asyncio_timeout_exit(inner, asyncio_sleep(5)), -ETIMEDOUT);
  CHECK(now() == 1);
  CHECK_RC(asyncio_sleep(2), 0); /* the outer body goes on */
  int rc = asyncio_timeout_exit(outer, 0);
  CHECK(asyncio_timeout_expired(inner));
  CHECK(!asyncio_timeout_expired(outer));
  asyncio_timeout_free(inner);
  asyncio_timeout_free(outer);
  return rc;
}

/* Nested scopes, the inner one fires: it converts; the outer block continues. */
TEST(timeout_nested_inner_fires) {
  reset();
  assert_rc(run_main(nested_inner_fires_main, NULL, NULL), 0);
  ASSERT_SOFT();
}

static int nested_outer_fires_main(void *arg) {
  (void)arg;
  asyncio_timeout_t *outer, *inner;
  CHECK_RC(asyncio_timeout_enter(&outer, 1), 0);
  CHECK_RC(asyncio_timeout_enter(&inner, 10), 0);
  int rc = asyncio_timeout_exit(inner, asyncio_sleep(5));
  CHECK_RC(rc, -ECANCELED); /* not the inner scope's business */
  CHECK(!asyncio_timeout_expired(inner));
  rc = asyncio_timeout_exit(outer, rc);
  CHECK(asyncio_timeout_expired(outer));
  asyncio_timeout_free(inner);
  asyncio_timeout_free(outer);
  return rc;
}

/* Nested scopes, the outer one fires: the inner passes CancelledError up, the outer converts. */
TEST(timeout_nested_outer_fires) {
  reset();
  assert_rc(run_main(nested_outer_fires_main, NULL, NULL), -ETIMEDOUT);
  ASSERT_SOFT();
}

static int nested_same_tick_main(void *arg) {
  (void)arg;
  asyncio_timeout_t *outer, *inner;
  double deadline = now() + 0.01;
  CHECK_RC(asyncio_timeout_at_enter(&outer, deadline), 0);
  CHECK_RC(asyncio_timeout_at_enter(&inner, deadline), 0);
  int rc = asyncio_timeout_exit(inner, asyncio_sleep(10));
  CHECK_RC(rc, -ECANCELED); /* only the topmost scope raises TimeoutError */
  rc = asyncio_timeout_exit(outer, rc);
  CHECK(asyncio_timeout_expired(inner));
  CHECK(asyncio_timeout_expired(outer));
  CHECK(asyncio_task_cancelling(asyncio_current_task()) == 0);
  asyncio_timeout_free(inner);
  asyncio_timeout_free(outer);
  return rc;
}

/* Nested scopes due at the same tick: both expire, the outermost converts. */
TEST(timeout_nested_same_tick) {
  reset();
  assert_rc(run_main(nested_same_tick_main, NULL, NULL), -ETIMEDOUT);
  ASSERT_SOFT();
}

static int nested_busy_main(void *arg) {
  (void)arg;
  asyncio_timeout_t *outer, *inner;
  CHECK_RC(asyncio_timeout_enter(&outer, 0.1), 0);
  CHECK_RC(asyncio_timeout_enter(&inner, 0.01), 0);
  CHECK_RC(asyncio_timeout_exit(inner, asyncio_sleep(1)), -ETIMEDOUT);
  int rc = asyncio_timeout_exit(outer, asyncio_sleep(10)); /* interrupted by the outer scope */
  CHECK(now() == 0.1);
  asyncio_timeout_free(inner);
  asyncio_timeout_free(outer);
  return rc;
}

/* After the inner scope converted, the outer deadline still bounds the rest of its block. */
TEST(timeout_nested_outer_after_inner) {
  reset();
  assert_rc(run_main(nested_busy_main, NULL, NULL), -ETIMEDOUT);
  ASSERT_SOFT();
}

static int nested_in_finally_main(void *arg) {
  (void)arg;
  asyncio_timeout_t *outer, *cleanup;
  CHECK_RC(asyncio_timeout_enter(&outer, 0.01), 0);
  int rc = asyncio_sleep(1);
  CHECK_RC(rc, -ECANCELED);
  /* finally: a cleanup scope of its own while the cancellation unwinds */
  CHECK_RC(asyncio_timeout_enter(&cleanup, 0.01), 0);
  CHECK_RC(asyncio_timeout_exit(cleanup, asyncio_sleep(10)), -ETIMEDOUT);
  asyncio_timeout_free(cleanup);
  rc = asyncio_timeout_exit(outer, rc);
  asyncio_timeout_free(outer);
  return rc;
}

/* A scope entered while unwinding from another scope's expiry (test_nested_timeout_in_finally). */
TEST(timeout_nested_in_cleanup) {
  reset();
  assert_rc(run_main(nested_in_finally_main, NULL, NULL), -ETIMEDOUT);
  ASSERT_SOFT();
}

/* ---- misuse ------------------------------------------------------------------------ */

static int other_task_exit(void *arg) {
  CHECK_RC(asyncio_timeout_exit((asyncio_timeout_t *)arg, 0), -EPERM);
  return 0;
}

static void enter_in_callback(void *arg) {
  (void)arg;
  asyncio_timeout_t *cm = (asyncio_timeout_t *)&cm;
  CHECK_RC(asyncio_timeout_enter(&cm, 1), ASYNCIO_ENOTASK);
  CHECK(cm == NULL);
  flag_b = 1;
}

static int wrong_state_main(void *arg) {
  (void)arg;
  asyncio_timeout_t *cm = NULL;
  CHECK_RC(asyncio_timeout_enter(NULL, 1), -EINVAL);
  CHECK_RC(asyncio_timeout_enter(&cm, NAN), -EINVAL);
  CHECK_RC(asyncio_timeout_at_enter(&cm, NAN), -EINVAL);
  CHECK(cm == NULL);
  CHECK_RC(asyncio_timeout_enter(&cm, 1), 0);
  CHECK_RC(asyncio_timeout_reschedule(cm, NAN), -EINVAL);
  CHECK_RC(asyncio_timeout_reschedule(NULL, 1), -EINVAL);
  CHECK_RC(asyncio_timeout_when(cm, NULL), -EINVAL);
  CHECK_RC(asyncio_timeout_when(NULL, &t_mark), -EINVAL);
  CHECK_RC(asyncio_timeout_exit(NULL, 0), -EINVAL);
  /* exit belongs to the task that entered */
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, other_task_exit, cm, NULL), 0);
  CHECK_RC(asyncio_await(t, NULL), 0);
  asyncio_task_free(t);
  CHECK_RC(asyncio_loop_call_soon(asyncio_get_running_loop(), enter_in_callback, NULL, NULL), 0);
  CHECK_RC(asyncio_sleep(0), 0);
  CHECK(flag_b == 1);
  CHECK_RC(asyncio_timeout_exit(cm, 4), 4);
  CHECK_RC(asyncio_timeout_exit(cm, 4), ASYNCIO_EINVALIDSTATE);   /* exit twice */
  CHECK_RC(asyncio_timeout_reschedule(cm, 5), ASYNCIO_EINVALIDSTATE); /* after exit */
  CHECK(!asyncio_timeout_expired(cm));
  CHECK(!asyncio_timeout_expired(NULL));
  asyncio_timeout_free(cm);
  /* an expiring scope cannot be rescheduled ("Cannot change state of expiring Timeout") */
  CHECK_RC(asyncio_timeout_enter(&cm, 0.5), 0);
  int rc = asyncio_sleep(1);
  CHECK_RC(asyncio_timeout_reschedule(cm, 100), ASYNCIO_EINVALIDSTATE);
  CHECK_RC(asyncio_timeout_exit(cm, rc), -ETIMEDOUT);
  CHECK_RC(asyncio_timeout_exit(cm, rc), ASYNCIO_EINVALIDSTATE);
  asyncio_timeout_free(cm);
  CHECK_RC(asyncio_timeout_free(NULL), 0);
  return 0;
}

/* Misuse gives errors: NULL/NaN, exit twice, reschedule after exit or once expiring, exit from another task. */
TEST(timeout_wrong_state) {
  reset();
  assert_rc(run_main(wrong_state_main, NULL, NULL), 0);
  ASSERT_SOFT();
}

/* Outside a task (no loop at all) enter is ASYNCIO_ENOTASK. */
TEST(timeout_enter_outside_task) {
  asyncio_timeout_t *cm = (asyncio_timeout_t *)&cm;
  assert_rc(asyncio_timeout_enter(&cm, 1), ASYNCIO_ENOTASK);
  assert_null(cm);
  assert_rc(asyncio_timeout_at_enter(&cm, 1), ASYNCIO_ENOTASK);
  assert_rc(asyncio_wait_for(NULL, 1, NULL), ASYNCIO_ENOTASK);
  assert_rc(asyncio_wait_for_coro(sleep_arg_ms, NULL, NULL, 1, NULL), ASYNCIO_ENOTASK);
}

static int abandoned_main(void *arg) {
  (void)arg;
  asyncio_timeout_t *cm;
  CHECK_RC(asyncio_timeout_enter(&cm, 1), 0);
  CHECK_RC(asyncio_timeout_free(cm), 0); /* abandoned: the deadline is gone */
  CHECK_RC(asyncio_sleep(2), 0);
  CHECK(asyncio_task_cancelling(asyncio_current_task()) == 0);
  return 0;
}

/* Freeing a scope that was never exited drops its deadline (and its task reference). */
TEST(timeout_free_abandoned_scope) {
  reset();
  assert_rc(run_main(abandoned_main, NULL, NULL), 0);
  ASSERT_SOFT();
}

static int enomem_main(void *arg) {
  (void)arg;
  asyncio_timeout_t *cm = NULL;
  harness_fail_alloc_after(1);
  CHECK_RC(asyncio_timeout_enter(&cm, 0.5), -ENOMEM);
  harness_fail_alloc_after(0);
  CHECK(cm == NULL);
  CHECK_RC(asyncio_sleep(1), 0); /* nothing was scheduled */
  return 0;
}

/* enter() that cannot allocate returns -ENOMEM and leaves no deadline behind. */
TEST(timeout_enter_enomem) {
  reset();
  assert_rc(run_main(enomem_main, NULL, NULL), 0);
  ASSERT_SOFT();
}

/* ---- wait_for ----------------------------------------------------------------------- */

/* inner: sleeps `arg` ms; on cancellation cleans up for 0.5 s, then re-raises. */
static int slow_cleanup(void *arg) {
  int rc = asyncio_sleep((double)(intptr_t)arg / 1000.0);
  if (rc == -ECANCELED) {
    CHECK_RC(asyncio_sleep(0.5), 0);
    flag_a = 1; /* finally: task_done = True */
    return rc;
  }
  return 11;
}

static int wait_for_timeout_main(void *arg) {
  (void)arg;
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, slow_cleanup, (void *)(intptr_t)10000, NULL), 0);
  int rc = asyncio_wait_for(t, 1.0, NULL);
  CHECK(flag_a == 1);                /* the inner really finished ... */
  CHECK(asyncio_future_cancelled(t)); /* ... cancelled ... */
  CHECK(now() == 1.5);                /* ... before wait_for returned */
  CHECK(asyncio_task_cancelling(asyncio_current_task()) == 0);
  asyncio_task_free(t);
  return rc;
}

/* wait_for timing out cancels the inner task and waits until it has finished, then TimeoutError. */
TEST(wait_for_timeout_waits_for_inner) {
  reset();
  assert_rc(run_main(wait_for_timeout_main, NULL, NULL), -ETIMEDOUT);
  ASSERT_SOFT();
}

static int value_child(void *arg) {
  CHECK_RC(asyncio_sleep(1), 0);
  asyncio_task_set_result_value(arg);
  return 7;
}

static int wait_for_result_main(void *arg) {
  (void)arg;
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, value_child, &flag_b, NULL), 0);
  void *v = NULL;
  int rc = asyncio_wait_for(t, 5, &v);
  CHECK(v == &flag_b);
  CHECK(now() == 1);
  asyncio_task_free(t);
  /* the coroutine form: a task made for the call */
  v = NULL;
  CHECK_RC(asyncio_wait_for_coro(value_child, &flag_a, NULL, 5, &v), 7);
  CHECK(v == &flag_a);
  CHECK(now() == 2);
  return rc;
}

/* wait_for finishing in time returns the result and pointer value; the deadline is withdrawn. */
TEST(wait_for_result_in_time) {
  reset();
  double end;
  assert_rc(run_main(wait_for_result_main, NULL, &end), 7);
  ASSERT_SOFT();
  assert_true(end == 2); /* no stale timer kept the loop going to t=5 */
}

static void set_ok(void *arg) { asyncio_future_set_result((asyncio_future_t *)arg, 3, NULL); }

static int wait_for_future_main(void *arg) {
  (void)arg;
  asyncio_future_t *f;
  CHECK_RC(asyncio_future_new(&f, NULL), 0);
  CHECK_RC(asyncio_loop_call_later(asyncio_get_running_loop(), 0.1, set_ok, f, NULL), 0);
  int rc = asyncio_wait_for(f, 0.2, NULL);
  asyncio_future_free(f);
  /* a plain future that times out is cancelled */
  CHECK_RC(asyncio_future_new(&f, NULL), 0);
  CHECK_RC(asyncio_wait_for(f, 0.2, NULL), -ETIMEDOUT);
  CHECK(asyncio_future_cancelled(f));
  asyncio_future_free(f);
  return rc;
}

/* wait_for on a plain future: set in time (test_wait_for_race_condition), or cancelled on timeout. */
TEST(wait_for_plain_future) {
  reset();
  assert_rc(run_main(wait_for_future_main, NULL, NULL), 3);
  ASSERT_SOFT();
}

static void count_cb(void *arg) {
  (void)arg;
  counter++;
}

static int done_immediately_main(void *arg) {
  (void)arg;
  asyncio_future_t *f;
  CHECK_RC(asyncio_future_new(&f, NULL), 0);
  CHECK_RC(asyncio_future_set_result(f, 9, &flag_a), 0);
  CHECK_RC(asyncio_loop_call_soon(asyncio_get_running_loop(), count_cb, NULL, NULL), 0);
  void *v = NULL;
  CHECK_RC(asyncio_wait_for(f, 0, &v), 9);
  CHECK(v == &flag_a);
  CHECK_RC(asyncio_wait_for(f, -1, NULL), 9);
  CHECK_RC(asyncio_wait_for(f, 5, NULL), 9);
  CHECK_RC(asyncio_wait_for(f, ASYNCIO_NO_TIMEOUT, NULL), 9);
  CHECK(counter == 0); /* none of them suspended */
  asyncio_future_free(f);
  /* an error outcome comes back the same way */
  CHECK_RC(asyncio_future_new(&f, NULL), 0);
  CHECK_RC(asyncio_future_set_exception(f, -EPIPE, NULL), 0);
  CHECK_RC(asyncio_wait_for(f, 0, NULL), -EPIPE);
  asyncio_future_free(f);
  CHECK(asyncio_task_cancelling(asyncio_current_task()) == 0);
  return 0;
}

/* wait_for with timeout <= 0 on a done future returns its outcome without suspending. */
TEST(wait_for_done_immediately) {
  reset();
  assert_rc(run_main(done_immediately_main, NULL, NULL), 0);
  ASSERT_SOFT();
}

static int running_foo(void *arg) {
  (void)arg;
  flag_b = 1; /* foo_running = True */
  int rc = asyncio_sleep(10);
  flag_b = 0; /* finally: foo_running = False */
  return rc < 0 ? rc : 1;
}

static int timeout_zero_pending_main(void *arg) {
  double timeout = *(double *)arg;
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, running_foo, NULL, NULL), 0);
  CHECK_RC(asyncio_sleep(0), 0); /* started */
  CHECK(flag_b == 1);
  double t0 = now();
  int rc = asyncio_wait_for(t, timeout, NULL);
  CHECK(now() == t0);
  CHECK(asyncio_future_cancelled(t));
  CHECK(flag_b == 0);
  asyncio_task_free(t);
  /* a coroutine with timeout <= 0 never starts */
  flag_a = 0;
  CHECK_RC(asyncio_wait_for_coro(running_foo, NULL, NULL, timeout, NULL), -ETIMEDOUT);
  CHECK(flag_b == 0);
  return rc;
}

/* wait_for(task, 0) / (task, -1): the pending task is cancelled and waited for; TimeoutError. */
TEST(wait_for_timeout_zero_pending) {
  reset();
  double d = 0;
  assert_rc(run_main(timeout_zero_pending_main, &d, NULL), -ETIMEDOUT);
  d = -1;
  assert_rc(run_main(timeout_zero_pending_main, &d, NULL), -ETIMEDOUT);
  ASSERT_SOFT();
}

static int zero_cleanup_main(void *arg) {
  (void)arg;
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, slow_cleanup, (void *)(intptr_t)10000, NULL), 0);
  CHECK_RC(asyncio_sleep(0.001), 0);
  int rc = asyncio_wait_for(t, 0, NULL);
  CHECK(flag_a == 1); /* waited for the cleanup */
  CHECK(now() == 0.501);
  asyncio_task_free(t);
  return rc;
}

/* wait_for(..., timeout=0) also waits for the inner task's cleanup (test_..._w_timeout_0). */
TEST(wait_for_timeout_zero_waits_for_cleanup) {
  reset();
  assert_rc(run_main(zero_cleanup_main, NULL, NULL), -ETIMEDOUT);
  ASSERT_SOFT();
}

static int return_42_on_cancel(void *arg) {
  (void)arg;
  if (asyncio_sleep(10) == -ECANCELED) return 42;
  return 0;
}

static int suppressed_main(void *arg) {
  (void)arg;
  int rc = asyncio_wait_for_coro(return_42_on_cancel, NULL, NULL, 0.1, NULL);
  CHECK(asyncio_task_cancelling(asyncio_current_task()) == 0);
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, return_42_on_cancel, NULL, NULL), 0);
  CHECK_RC(asyncio_wait_for(t, 0.1, NULL), 42);
  asyncio_task_free(t);
  return rc;
}

/* An inner that suppresses the cancellation: its result is returned (test_wait_for_cancel_suppressed). */
TEST(wait_for_inner_suppresses_cancellation) {
  reset();
  assert_rc(run_main(suppressed_main, NULL, NULL), 42);
  ASSERT_SOFT();
}

static int raise_on_cancel(void *arg) {
  (void)arg;
  asyncio_sleep(0.2);
  return -EDOM; /* finally: raise FooException */
}

static int reraise_task_main(void *arg) {
  (void)arg;
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, raise_on_cancel, NULL, NULL), 0);
  int rc = asyncio_wait_for(t, 0.0001, NULL);
  CHECK(asyncio_future_done(t) && !asyncio_future_cancelled(t));
  asyncio_task_free(t);
  return rc;
}

/* An error raised while the inner is being cancelled is returned (test_wait_for_reraises...). */
TEST(wait_for_reraises_error_during_cancellation) {
  reset();
  assert_rc(run_main(reraise_task_main, NULL, NULL), -EDOM);
  ASSERT_SOFT();
}

static int reraise_main(void *arg) {
  (void)arg;
  return asyncio_wait_for_coro(raise_on_cancel, NULL, NULL, 0.0001, NULL);
}

/* wait_for_coro: the error raised during cancellation wins over TimeoutError. */
TEST(wait_for_coro_error_during_cancellation) {
  reset();
  assert_rc(run_main(reraise_main, NULL, NULL), -EDOM);
  ASSERT_SOFT();
}

static int blocking_coroutine(void *arg) {
  (void)arg;
  asyncio_future_t *f;
  CHECK_RC(asyncio_future_new(&f, NULL), 0);
  int rc = asyncio_await(f, NULL); /* never set */
  asyncio_future_free(f);
  return rc;
}

static int wait_for_arg_timeout(void *arg) {
  double timeout = *(double *)arg;
  return asyncio_wait_for(inner_task, timeout, NULL);
}


static int cancel_wait_for_main(void *arg) {
  CHECK_RC(asyncio_create_task(&inner_task, blocking_coroutine, NULL, NULL), 0);
  asyncio_task_t *w;
  CHECK_RC(asyncio_create_task(&w, wait_for_arg_timeout, arg, NULL), 0);
  CHECK_RC(asyncio_loop_call_soon(asyncio_get_running_loop(), cancel_cb, w, NULL), 0);
  CHECK_RC(asyncio_await(w, NULL), -ECANCELED);
  CHECK(asyncio_future_cancelled(w));
  CHECK(asyncio_future_cancelled(inner_task)); /* bpo-23219: the inner is cancelled too */
  asyncio_task_free(w);
  asyncio_task_free(inner_task);
  return 0;
}

/* Cancelling the task in wait_for cancels the inner (timeout 60 and None). */
TEST(wait_for_cancelled_cancels_inner) {
  reset();
  double d = 60;
  assert_rc(run_main(cancel_wait_for_main, &d, NULL), 0);
  d = ASYNCIO_NO_TIMEOUT;
  assert_rc(run_main(cancel_wait_for_main, &d, NULL), 0);
  ASSERT_SOFT();
}

static int wf_deadline_body(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_create_task(&inner_task, slow_cleanup, (void *)(intptr_t)10000, NULL), 0);
  int rc = asyncio_wait_for(inner_task, 1, NULL);
  CHECK(flag_a == 1); /* inner finished before we returned */
  asyncio_task_free(inner_task);
  return rc;
}

static int wf_same_tick_main(void *arg) {
  (void)arg;
  asyncio_task_t *w;
  CHECK_RC(asyncio_create_task(&w, wf_deadline_body, NULL, NULL), 0);
  CHECK_RC(asyncio_sleep(1), 0); /* wakes at t=1, right after w's deadline fired */
  asyncio_task_cancel(w, NULL);
  int rc = asyncio_await(w, NULL);
  CHECK(asyncio_task_cancelling(w) == 1);
  asyncio_task_free(w);
  return rc;
}

/* wait_for's deadline and an outside cancel at the same virtual tick: CancelledError, not TimeoutError. */
TEST(wait_for_outside_cancel_same_tick_as_deadline) {
  reset();
  double end;
  assert_rc(run_main(wf_same_tick_main, NULL, &end), -ECANCELED);
  ASSERT_SOFT();
  assert_true(end == 1.5);
}

static asyncio_task_t *wf_waiter;

static int inner_done_and_cancel(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_sleep(0.5), 0);
  /* Finishing schedules the waiter's wakeup; this cancel runs first, in the
   * same iteration, before the waiter has seen the result (gh-86296). */
  CHECK_RC(asyncio_loop_call_soon(asyncio_get_running_loop(), cancel_cb, wf_waiter, NULL),
           0);
  return 5;
}

static int gh86296_body(void *arg) {
  (void)arg;
  int rc = asyncio_wait_for_coro(inner_done_and_cancel, NULL, NULL, 100, NULL);
  CHECK_RC(rc, -ECANCELED);
  if (rc == -ECANCELED) return rc;
  asyncio_sleep(1);
  flag_a = 1; /* reached_end */
  return rc;
}

static int gh86296_main(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_create_task(&wf_waiter, gh86296_body, NULL, NULL), 0);
  int rc = asyncio_await(wf_waiter, NULL);
  CHECK(asyncio_future_cancelled(wf_waiter));
  CHECK(!flag_a);
  asyncio_task_free(wf_waiter);
  return rc;
}

/* gh-86296: the inner finishes and the waiter is cancelled in the same tick: the cancel is not swallowed. */
TEST(wait_for_cancel_not_swallowed_gh86296) {
  reset();
  assert_rc(run_main(gh86296_main, NULL, NULL), -ECANCELED);
  ASSERT_SOFT();
}

static int holdout(void *arg) {
  (void)arg;
  int rc = asyncio_sleep(0.3);
  if (rc == -ECANCELED) {
    rc = asyncio_sleep(0.3);
    if (rc == -ECANCELED) asyncio_sleep(0.3);
  }
  return 42;
}

static int self_cancel_main(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_create_task(&inner_task, holdout, NULL, NULL), 0);
  double d = 0;
  asyncio_task_t *w;
  CHECK_RC(asyncio_create_task(&w, wait_for_arg_timeout, &d, NULL), 0);
  CHECK_RC(asyncio_sleep(0.1), 0); /* w is now in _cancel_and_wait, inner holds out */
  asyncio_task_cancel(w, NULL);
  CHECK_RC(asyncio_await(w, NULL), -ECANCELED); /* wait_for itself stays cancellable */
  CHECK(now() == 0.1);
  CHECK(!asyncio_future_done(inner_task));
  CHECK_RC(asyncio_await(inner_task, NULL), 42);
  asyncio_task_free(w);
  asyncio_task_free(inner_task);
  return 0;
}

/* wait_for(task, 0) is cancellable even while the inner holds up its cancellation. */
TEST(wait_for_timeout_zero_cancellable) {
  reset();
  assert_rc(run_main(self_cancel_main, NULL, NULL), 0);
  ASSERT_SOFT();
}

static int none_main(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_wait_for_coro(sleep_arg_ms, (void *)(intptr_t)3600000, NULL,
                                 ASYNCIO_NO_TIMEOUT, NULL),
           0);
  CHECK(now() == 3600);
  return 0;
}

/* wait_for(..., None) waits as long as it takes. */
TEST(wait_for_no_timeout) {
  reset();
  assert_rc(run_main(none_main, NULL, NULL), 0);
  ASSERT_SOFT();
}

static int in_outer_scope_main(void *arg) {
  (void)arg;
  asyncio_timeout_t *cm;
  CHECK_RC(asyncio_timeout_enter(&cm, 1), 0);
  int rc = asyncio_wait_for_coro(sleep_arg_ms, (void *)(intptr_t)10000, NULL, 5, NULL);
  CHECK_RC(rc, -ECANCELED); /* the outer scope's, not wait_for's */
  rc = asyncio_timeout_exit(cm, rc);
  asyncio_timeout_free(cm);
  return rc;
}

/* wait_for inside a shorter scope: wait_for passes the scope's cancellation up; the scope converts. */
TEST(wait_for_inside_outer_scope) {
  reset();
  assert_rc(run_main(in_outer_scope_main, NULL, NULL), -ETIMEDOUT);
  ASSERT_SOFT();
}

static int wf_args_main(void *arg) {
  (void)arg;
  asyncio_future_t *f;
  CHECK_RC(asyncio_future_new(&f, NULL), 0);
  CHECK_RC(asyncio_wait_for(NULL, 1, NULL), -EINVAL);
  CHECK_RC(asyncio_wait_for(f, NAN, NULL), -EINVAL);
  CHECK_RC(asyncio_wait_for(asyncio_current_task(), 1, NULL), -EDEADLK);
  CHECK_RC(asyncio_wait_for_coro(NULL, NULL, NULL, 1, NULL), -EINVAL);
  CHECK_RC(asyncio_wait_for_coro(sleep_arg_ms, NULL, NULL, NAN, NULL), -EINVAL);
  /* -ENOMEM in timeout <= 0 leaves the future alone */
  harness_fail_alloc_after(1);
  CHECK_RC(asyncio_wait_for(f, 0, NULL), -ENOMEM);
  harness_fail_alloc_after(0);
  CHECK(!asyncio_future_done(f));
  asyncio_future_free(f);
  return 0;
}

/* wait_for argument checks: NULL, NaN, waiting for itself, and -ENOMEM doing nothing. */
TEST(wait_for_invalid_arguments) {
  reset();
  assert_rc(run_main(wf_args_main, NULL, NULL), 0);
  ASSERT_SOFT();
}
