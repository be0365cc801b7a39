/*
 * test_tasks.c - tasks: coroutines on their own stacks (include/asyncio/tasks.h).
 *
 * Python origin: Lib/asyncio/tasks.py (Task.__init__, __step, __wakeup,
 * cancel, cancelling, uncancel, _must_cancel, _fut_waiter, current_task,
 * all_tasks, sleep, create_task, eager_task_factory) and
 * Lib/test/test_asyncio/test_tasks.py, test_eager_task_factory.py.
 *
 * Assertions inside tasks are soft (CHECK): cmocka's failure path longjmps,
 * which must never leave a task's stack, so tasks record the first failure
 * and the test body asserts it after the loop returns.
 */
#include "harness.h"
#include "../src/coro/coro.h" /* slab stacks and their canary: asyncio__stack_set_guarded_budget */

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>


/* ---- helpers ------------------------------------------------------------ */

static int order[512];
static int norder;
static int step;
static int value_a, value_b;

static void reset(void) {
  norder = 0;
  step = 0;
  soft_fail[0] = 0;
}

static void rec(int v) {
  if (norder < 512) order[norder++] = v;
}

static void rec_cb(void *arg) { rec((int)(intptr_t)arg); }

static void stop_cb(void *arg) { asyncio_loop_stop((asyncio_loop_t *)arg); }

static void run_once(asyncio_loop_t *loop) {
  assert_ok(asyncio_loop_call_soon(loop, stop_cb, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
}

/* loop.run_until_complete(loop.create_task(fn(arg))) */
static int run_task(asyncio_loop_t *loop, asyncio_coro_fn fn, void *arg, void **value) {
  asyncio_task_t *t = NULL;
  int rc = asyncio_loop_create_task(loop, &t, fn, arg, NULL);
  if (rc != 0) fail_msg("create_task: %s", asyncio_errname(rc));
  rc = asyncio_loop_run_until_complete(loop, t, value);
  assert_ok(asyncio_task_free(t));
  return rc;
}

static int return_arg(void *arg) { return (int)(intptr_t)arg; }

static int set_step(void *arg) {
  step = (int)(intptr_t)arg;
  return 0;
}

/* ---- creation, names, identity ------------------------------------------ */

/* create_task() schedules the first step with call_soon: the body runs on a later iteration. */
TEST(task_create_runs_later) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, set_step, (void *)1, NULL));
  assert_int_equal(step, 0);
  assert_false(asyncio_future_done(t));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  assert_int_equal(step, 1);
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

static int spawn_and_check(void *arg) {
  (void)arg;
  asyncio_task_t *child;
  CHECK_RC(asyncio_create_task(&child, set_step, (void *)7, NULL), 0);
  CHECK(step == 0); /* not run inside create_task */
  CHECK_RC(asyncio_sleep(0), 0);
  CHECK(step == 7); /* ran during our yield */
  CHECK(asyncio_future_done(child));
  asyncio_task_free(child);
  return 0;
}

/* asyncio.create_task() from a running task: the child runs only once the parent yields. */
TEST(task_create_task_from_task) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_rc(run_task(loop, spawn_and_check, NULL, NULL), 0);
  ASSERT_SOFT();
  assert_ok(asyncio_loop_close(loop));
}

static void create_in_callback(void *arg) {
  asyncio_task_t *t = NULL;
  CHECK_RC(asyncio_create_task(&t, set_step, (void *)3, NULL), 0);
  CHECK(step == 0);
  *(asyncio_task_t **)arg = t;
}

/* asyncio.create_task() only needs a running loop, not a running task (a plain callback will do). */
TEST(task_create_task_from_callback) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *t = NULL;
  assert_ok(asyncio_loop_call_soon(loop, create_in_callback, &t, NULL));
  run_once(loop);
  ASSERT_SOFT();
  assert_non_null(t);
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  assert_int_equal(step, 3);
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

/* create_task() argument checks: no function -> -EINVAL; no running loop -> ASYNCIO_ENOLOOP. */
TEST(task_create_invalid) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *t = NULL;
  assert_rc(asyncio_loop_create_task(loop, &t, NULL, NULL, NULL), -EINVAL);
  assert_rc(asyncio_loop_create_task(NULL, &t, return_arg, NULL, NULL), -EINVAL);
  assert_rc(asyncio_create_task(&t, return_arg, NULL, NULL), ASYNCIO_ENOLOOP);
  assert_null(t);
  run_once(loop);
  assert_rc(asyncio_all_tasks(loop, &t, 1), 0);
  assert_ok(asyncio_loop_close(loop));
}

/* Task names default to "Task-<n>" from a counter that increases with each task created. */
TEST(task_default_names) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *a, *b;
  assert_ok(asyncio_loop_create_task(loop, &a, return_arg, NULL, NULL));
  assert_ok(asyncio_loop_create_task(loop, &b, return_arg, NULL, NULL));
  const char *na = asyncio_task_get_name(a);
  assert_non_null(na);
  int n1 = -1, n2 = -1;
  assert_int_equal(sscanf(na, "Task-%d", &n1), 1);
  assert_int_equal(sscanf(asyncio_task_get_name(b), "Task-%d", &n2), 1);
  assert_true(n1 >= 1);
  assert_int_equal(n2, n1 + 1);
  assert_rc(asyncio_loop_run_until_complete(loop, b, NULL), 0);
  assert_rc(asyncio_loop_run_until_complete(loop, a, NULL), 0);
  assert_ok(asyncio_task_free(a));
  assert_ok(asyncio_task_free(b));
  assert_ok(asyncio_loop_close(loop));
}

/* The name option is copied; Task.set_name() replaces it; get_name() returns it. */
TEST(task_set_get_name) {
  asyncio_loop_t *loop = harness_virtual_loop();
  char name[16];
  strcpy(name, "worker");
  asyncio_task_options_t o = {0};
  o.name = name;
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, return_arg, NULL, &o));
  memset(name, 'X', sizeof name - 1);
  assert_string_equal(asyncio_task_get_name(t), "worker");
  assert_ok(asyncio_task_set_name(t, "renamed"));
  assert_string_equal(asyncio_task_get_name(t), "renamed");
  assert_rc(asyncio_task_set_name(t, NULL), -EINVAL);
  assert_rc(asyncio_task_set_name(NULL, "x"), -EINVAL);
  assert_string_equal(asyncio_task_get_name(t), "renamed");
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  assert_string_equal(asyncio_task_get_name(t), "renamed"); /* still valid when done */
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

static asyncio_task_t *expected_current;

static int check_current(void *arg) {
  (void)arg;
  CHECK(asyncio_current_task() == expected_current);
  CHECK(asyncio_future_is_task(asyncio_current_task()));
  CHECK_RC(asyncio_sleep(0), 0);
  CHECK(asyncio_current_task() == expected_current); /* restored after a switch */
  return 0;
}

/* asyncio.current_task(): the running task inside it, None (NULL) outside any task. */
TEST(task_current_task) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_null(asyncio_current_task());
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, check_current, NULL, NULL));
  expected_current = t;
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  ASSERT_SOFT();
  assert_null(asyncio_current_task());
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

/* Task.get_coro(): the function and argument the task runs. */
TEST(task_get_coro) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, return_arg, &value_a, NULL));
  void *arg = NULL;
  assert_ptr_equal(asyncio_task_get_coro(t, &arg), return_arg);
  assert_ptr_equal(arg, &value_a);
  asyncio_task_cancel(t, NULL);
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), -ECANCELED);
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

static int sleep_arg_seconds(void *arg) { return asyncio_sleep((double)(intptr_t)arg); }

static int all_tasks_main(void *arg) {
  (void)arg;
  asyncio_task_t *kids[3];
  for (int i = 0; i < 3; i++) CHECK_RC(asyncio_create_task(&kids[i], sleep_arg_seconds, (void *)(intptr_t)(i + 1), NULL), 0);
  asyncio_task_t *buf[8] = {0};
  CHECK(asyncio_all_tasks(NULL, buf, 8) == 4); /* the three children and this task */
  int found = 0;
  for (int i = 0; i < 4; i++)
    for (int k = 0; k < 3; k++)
      if (buf[i] == kids[k]) found++;
  CHECK(found == 3);
  int self_found = 0;
  for (int i = 0; i < 4; i++)
    if (buf[i] == asyncio_current_task()) self_found = 1;
  CHECK(self_found);
  asyncio_task_t *one[1] = {0};
  CHECK(asyncio_all_tasks(NULL, one, 1) == 4); /* the count, beyond cap */
  CHECK(one[0] != NULL);
  CHECK_RC(asyncio_sleep(1.5), 0); /* the first child is done now */
  CHECK(asyncio_all_tasks(asyncio_get_running_loop(), buf, 8) == 3);
  CHECK_RC(asyncio_sleep(5), 0);
  CHECK(asyncio_all_tasks(NULL, buf, 8) == 1);
  for (int i = 0; i < 3; i++) asyncio_task_free(kids[i]);
  return 0;
}

/* asyncio.all_tasks(): the loop's pending (not done) tasks, including the current one. */
TEST(task_all_tasks) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_rc(run_task(loop, all_tasks_main, NULL, NULL), 0);
  ASSERT_SOFT();
  asyncio_task_t *buf[2];
  assert_rc(asyncio_all_tasks(loop, buf, 2), 0);
  assert_ok(asyncio_loop_close(loop));
}

/* ---- outcomes ------------------------------------------------------------ */

/* The coroutine's return value is the task's result (>= 0) or its exception (< 0). */
TEST(task_result_codes) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, return_arg, (void *)42, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 42);
  assert_true(asyncio_future_done(t));
  assert_false(asyncio_future_cancelled(t));
  assert_rc(asyncio_future_result(t, NULL), 42);
  assert_rc(asyncio_future_exception(t), 0);
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_create_task(loop, &t, return_arg, (void *)(intptr_t)-EIO, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), -EIO);
  assert_true(asyncio_future_done(t));
  assert_false(asyncio_future_cancelled(t));
  assert_rc(asyncio_future_result(t, NULL), -EIO);
  assert_rc(asyncio_future_exception(t), -EIO);
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

static int return_pointer(void *arg) {
  CHECK_RC(asyncio_task_set_result_value(arg), 0);
  return 3;
}

/* asyncio_task_set_result_value(): the task's result carries the pointer; outside a task ASYNCIO_ENOTASK. */
TEST(task_pointer_result) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_rc(asyncio_task_set_result_value(&value_a), ASYNCIO_ENOTASK);
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, return_pointer, &value_a, NULL));
  void *v = NULL;
  assert_rc(asyncio_loop_run_until_complete(loop, t, &v), 3);
  ASSERT_SOFT();
  assert_ptr_equal(v, &value_a);
  v = NULL;
  assert_rc(asyncio_future_result(t, &v), 3);
  assert_ptr_equal(v, &value_a);
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

static int child_with_value(void *arg) {
  CHECK_RC(asyncio_sleep(1.0), 0);
  asyncio_task_set_result_value(&value_b);
  return (int)(intptr_t)arg;
}

static int await_child(void *arg) {
  asyncio_task_t *child;
  CHECK_RC(asyncio_create_task(&child, child_with_value, arg, NULL), 0);
  void *v = NULL;
  int rc = asyncio_await(child, &v);
  if (rc >= 0) CHECK(v == &value_b);
  /* awaiting a done task again returns the same outcome at once */
  CHECK(asyncio_await(child, NULL) == rc);
  asyncio_task_free(child);
  return rc;
}

/* `await task` suspends until the task is done and returns its result (or raises its exception). */
TEST(task_await_other_task) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_rc(run_task(loop, await_child, (void *)5, NULL), 5);
  assert_true(asyncio_loop_time(loop) == 1.0);
  assert_rc(run_task(loop, await_child, (void *)(intptr_t)-EPIPE, NULL), -EPIPE);
  ASSERT_SOFT();
  assert_ok(asyncio_loop_close(loop));
}

static int await_self(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_await(asyncio_current_task(), NULL), -EDEADLK);
  return 1; /* and the task goes on */
}

/* A task awaiting itself would wait forever (Python: "Task cannot await on itself") -> -EDEADLK. */
TEST(task_await_self_edeadlk) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_rc(run_task(loop, await_self, NULL, NULL), 1);
  ASSERT_SOFT();
  assert_ok(asyncio_loop_close(loop));
}

/* Suspending calls outside a task are ASYNCIO_ENOTASK (await / sleep need a task). */
TEST(task_sleep_outside_task) {
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_rc(asyncio_sleep(0), ASYNCIO_ENOTASK);
  assert_rc(asyncio_sleep(1.0), ASYNCIO_ENOTASK);
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  assert_rc(asyncio_await(f, NULL), ASYNCIO_ENOTASK);
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

/* ---- cancellation --------------------------------------------------------- */

static int self_cancel(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_task_cancel(asyncio_current_task(), NULL), 1);
  CHECK(asyncio_task_cancelling(asyncio_current_task()) == 1);
  step = 1; /* not interrupted: still running until the next suspension point */
  int rc = asyncio_sleep(0);
  CHECK_RC(rc, -ECANCELED);
  step = 2;
  return rc;
}

/*
 * Task.cancel() only requests: the request is delivered at the next
 * suspension point as CancelledError (-ECANCELED); code before it runs.
 */
TEST(task_cancel_delivered_at_next_suspension) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, self_cancel, NULL, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), -ECANCELED);
  ASSERT_SOFT();
  assert_int_equal(step, 2);
  assert_true(asyncio_future_cancelled(t));
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

/* A task cancelled before it started never runs its body (__step throws into a fresh coroutine). */
TEST(task_cancel_before_first_run) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, set_step, (void *)1, NULL));
  assert_rc(asyncio_task_cancel(t, "early"), 1);
  assert_false(asyncio_future_done(t)); /* cancel() only requests */
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), -ECANCELED);
  assert_int_equal(step, 0);
  assert_true(asyncio_future_cancelled(t));
  assert_string_equal(asyncio_future_error_message(t), "early");
  assert_rc(asyncio_task_cancel(t, NULL), 0); /* done: cancel() returns False */
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

static int await_arg(void *arg) {
  int rc = asyncio_await((asyncio_future_t *)arg, NULL);
  step = rc == -ECANCELED ? 10 : 20;
  return rc;
}

/*
 * Cancelling a task that awaits a future cancels that future at once
 * (self._fut_waiter.cancel(msg)); the task then gets CancelledError(msg).
 */
TEST(task_cancel_while_awaiting_future) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  asyncio_task_t *t;
  assert_ok(asyncio_future_new(&f, loop));
  assert_ok(asyncio_loop_create_task(loop, &t, await_arg, f, NULL));
  run_once(loop);
  assert_false(asyncio_future_done(t));
  assert_rc(asyncio_task_cancel(t, "stop waiting"), 1);
  assert_true(asyncio_future_cancelled(f)); /* synchronously */
  assert_string_equal(asyncio_future_error_message(f), "stop waiting");
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), -ECANCELED);
  assert_int_equal(step, 10);
  assert_true(asyncio_future_cancelled(t));
  assert_string_equal(asyncio_future_error_message(t), "stop waiting");
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

static asyncio_task_t *race_task;
static asyncio_future_t *race_future;

static void complete_then_cancel(void *arg) {
  (void)arg;
  asyncio_future_set_result(race_future, 1, NULL);
  asyncio_task_cancel(race_task, NULL); /* _fut_waiter is done: sets _must_cancel instead */
}

/*
 * The awaited future completes and the task is cancelled before it resumes:
 * the cancellation still wins (__step throws CancelledError when
 * _must_cancel), as futures.h documents for asyncio_await.
 */
TEST(task_cancel_after_future_completed_still_delivered) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_ok(asyncio_future_new(&race_future, loop));
  assert_ok(asyncio_loop_create_task(loop, &race_task, await_arg, race_future, NULL));
  run_once(loop);
  assert_ok(asyncio_loop_call_soon(loop, complete_then_cancel, NULL, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, race_task, NULL), -ECANCELED);
  assert_int_equal(step, 10);
  assert_false(asyncio_future_cancelled(race_future));
  assert_rc(asyncio_future_result(race_future, NULL), 1);
  assert_ok(asyncio_task_free(race_task));
  assert_ok(asyncio_future_free(race_future));
  assert_ok(asyncio_loop_close(loop));
}

static double sleep_returned_at;

static int long_sleeper(void *arg) {
  (void)arg;
  int rc = asyncio_sleep(10.0);
  sleep_returned_at = asyncio_loop_time(asyncio_get_running_loop());
  step = rc;
  return rc;
}

static void cancel_task_cb(void *arg) { asyncio_task_cancel((asyncio_task_t *)arg, "wake up"); }

/* Cancelling a sleeping task ends the sleep at once with CancelledError; its timer is cancelled. */
TEST(task_sleep_cancel) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, long_sleeper, NULL, NULL));
  assert_ok(asyncio_loop_call_later(loop, 1.0, cancel_task_cb, t, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), -ECANCELED);
  assert_int_equal(step, -ECANCELED);
  assert_true(sleep_returned_at == 1.0);
  assert_string_equal(asyncio_future_error_message(t), "wake up");
  assert_ok(asyncio_task_free(t));
  /* Run past the old deadline: the sleep's timer must not fire for a freed task. */
  assert_ok(asyncio_loop_call_later(loop, 20.0, stop_cb, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  assert_true(asyncio_loop_time(loop) == 21.0);
  assert_ok(asyncio_loop_close(loop));
}

static int counting(void *arg) {
  asyncio_task_t *self = asyncio_current_task();
  (void)arg;
  CHECK(asyncio_task_cancelling(self) == 0);
  CHECK_RC(asyncio_task_cancel(self, NULL), 1);
  CHECK_RC(asyncio_task_cancel(self, NULL), 1);
  CHECK(asyncio_task_cancelling(self) == 2);
  CHECK(asyncio_task_uncancel(self) == 1);
  CHECK(asyncio_task_cancelling(self) == 1);
  CHECK_RC(asyncio_sleep(0), -ECANCELED); /* one request still pending */
  CHECK(asyncio_task_cancelling(self) == 1);
  CHECK(asyncio_task_uncancel(self) == 0);
  CHECK(asyncio_task_uncancel(self) == 0); /* never below zero */
  CHECK_RC(asyncio_sleep(0), 0);
  return 0;
}

/* Task.cancelling() counts requests; uncancel() decrements and returns the count, not below 0. */
TEST(task_cancelling_uncancel_counters) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_rc(run_task(loop, counting, NULL, NULL), 0);
  ASSERT_SOFT();
  assert_rc(asyncio_task_cancelling(NULL), -EINVAL);
  assert_ok(asyncio_loop_close(loop));
}

static int withdraw(void *arg) {
  asyncio_task_t *self = asyncio_current_task();
  (void)arg;
  CHECK_RC(asyncio_task_cancel(self, NULL), 1);
  CHECK(asyncio_task_uncancel(self) == 0);
  CHECK_RC(asyncio_sleep(0), 0); /* the undelivered request was withdrawn */
  return 6;
}

/* Python 3.13: uncancel() reaching 0 withdraws a request not yet delivered (_must_cancel = False). */
TEST(task_uncancel_withdraws_request) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, withdraw, NULL, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 6);
  ASSERT_SOFT();
  assert_false(asyncio_future_cancelled(t));
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

static int swallower(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_sleep(10.0), -ECANCELED);
  CHECK(asyncio_task_uncancel(asyncio_current_task()) == 0);
  CHECK_RC(asyncio_sleep(1.0), 0); /* not cancelled again */
  return 7;
}

/* A task may catch CancelledError, uncancel(), carry on and finish with a result. */
TEST(task_catch_cancellation_and_continue) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, swallower, NULL, NULL));
  assert_ok(asyncio_loop_call_later(loop, 1.0, cancel_task_cb, t, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 7);
  ASSERT_SOFT();
  assert_false(asyncio_future_cancelled(t));
  assert_true(asyncio_loop_time(loop) == 2.0);
  assert_int_equal(asyncio_task_cancelling(t), 0);
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

/* Task.cancel() on a done task returns False (0) and changes nothing. */
TEST(task_cancel_done_task) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, return_arg, (void *)2, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 2);
  assert_rc(asyncio_task_cancel(t, NULL), 0);
  assert_int_equal(asyncio_task_cancelling(t), 0);
  assert_false(asyncio_future_cancelled(t));
  assert_rc(asyncio_future_result(t, NULL), 2);
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

static int double_cancelled(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_sleep(10.0), -ECANCELED);
  CHECK(asyncio_task_cancelling(asyncio_current_task()) == 2);
  CHECK_RC(asyncio_sleep(0), 0); /* delivered once only */
  CHECK_RC(asyncio_sleep(1.0), 0);
  return 3;
}

static void cancel_twice_cb(void *arg) {
  CHECK_RC(asyncio_task_cancel((asyncio_task_t *)arg, NULL), 1);
  CHECK_RC(asyncio_task_cancel((asyncio_task_t *)arg, NULL), 1);
}

/* Two cancel() calls count 2 in cancelling() but deliver a single CancelledError. */
TEST(task_cancel_twice_counts_two) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, double_cancelled, NULL, NULL));
  assert_ok(asyncio_loop_call_later(loop, 1.0, cancel_twice_cb, t, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 3);
  ASSERT_SOFT();
  assert_int_equal(asyncio_task_cancelling(t), 2);
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

static int return_ecanceled(void *arg) {
  (void)arg;
  return -ECANCELED;
}

/* A coroutine that raises CancelledError (returns -ECANCELED) ends the task cancelled. */
TEST(task_returning_ecanceled_ends_cancelled) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, return_ecanceled, NULL, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), -ECANCELED);
  assert_true(asyncio_future_cancelled(t));
  assert_rc(asyncio_future_exception(t), -ECANCELED);
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

static int cancel_self_then_return(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_sleep(0), 0);
  CHECK_RC(asyncio_task_cancel(asyncio_current_task(), "late"), 1);
  return 5; /* no suspension point left */
}

/*
 * __step: a task cancelled after its last suspension point that then returns
 * normally ends cancelled anyway ("if self._must_cancel: ... super().cancel()").
 */
TEST(task_must_cancel_after_last_suspension) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, cancel_self_then_return, NULL, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), -ECANCELED);
  ASSERT_SOFT();
  assert_true(asyncio_future_cancelled(t));
  assert_string_equal(asyncio_future_error_message(t), "late");
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

static int inner_rc = 12345;

static int inner_sleeper(void *arg) {
  (void)arg;
  inner_rc = asyncio_sleep(10.0);
  return inner_rc;
}

static int outer_awaits_inner(void *arg) {
  asyncio_task_t **inner = arg;
  CHECK_RC(asyncio_create_task(inner, inner_sleeper, NULL, NULL), 0);
  return asyncio_await(*inner, NULL);
}

/* Cancelling a task that awaits another task cancels the inner task too (it is the _fut_waiter). */
TEST(task_cancel_propagates_to_awaited_task) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *outer, *inner = NULL;
  assert_ok(asyncio_loop_create_task(loop, &outer, outer_awaits_inner, &inner, NULL));
  assert_ok(asyncio_loop_call_later(loop, 1.0, cancel_task_cb, outer, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, outer, NULL), -ECANCELED);
  ASSERT_SOFT();
  assert_non_null(inner);
  assert_int_equal(inner_rc, -ECANCELED);
  assert_true(asyncio_future_cancelled(inner));
  assert_true(asyncio_future_cancelled(outer));
  assert_true(asyncio_loop_time(loop) == 1.0);
  assert_ok(asyncio_task_free(inner));
  assert_ok(asyncio_task_free(outer));
  assert_ok(asyncio_loop_close(loop));
}

static asyncio_task_t *peer_b;
static int peer_b_rc;

static int peer_a(void *arg) {
  (void)arg;
  rec(1);
  CHECK_RC(asyncio_sleep(0), 0);
  rec(3);
  CHECK_RC(asyncio_task_cancel(peer_b, NULL), 1); /* B is ready (its sleep(0) is over), not yet resumed */
  CHECK_RC(asyncio_sleep(0), 0);
  rec(5);
  return 0;
}

static int peer_b_body(void *arg) {
  (void)arg;
  rec(2);
  peer_b_rc = asyncio_sleep(0);
  rec(4);
  return peer_b_rc;
}

/*
 * A task cancelled while its wake-up is already queued (no _fut_waiter)
 * gets CancelledError when it resumes (__step with _must_cancel), even when
 * it is resumed straight from another task's yield.
 */
TEST(task_cancel_ready_task_delivered_on_resume) {
  reset();
  peer_b_rc = 12345;
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *a;
  assert_ok(asyncio_loop_create_task(loop, &a, peer_a, NULL, NULL));
  assert_ok(asyncio_loop_create_task(loop, &peer_b, peer_b_body, NULL, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, a, NULL), 0);
  assert_rc(asyncio_loop_run_until_complete(loop, peer_b, NULL), -ECANCELED);
  ASSERT_SOFT();
  assert_int_equal(peer_b_rc, -ECANCELED);
  assert_int_equal(norder, 5);
  for (int i = 0; i < 5; i++) assert_int_equal(order[i], i + 1);
  assert_true(asyncio_future_cancelled(peer_b));
  assert_ok(asyncio_task_free(a));
  assert_ok(asyncio_task_free(peer_b));
  assert_ok(asyncio_loop_close(loop));
}

static int yield_then_cancel_next(void *arg) {
  asyncio_task_t **next = arg;
  CHECK_RC(asyncio_task_cancel(*next, NULL), 1);
  CHECK_RC(asyncio_sleep(0), 0); /* the next ready step is the cancelled task's first */
  return 0;
}

/* A task cancelled before its first step never runs, even when reached by a direct task-to-task switch. */
TEST(task_cancel_before_first_run_after_yield) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *a, *b = NULL;
  assert_ok(asyncio_loop_create_task(loop, &a, yield_then_cancel_next, &b, NULL));
  assert_ok(asyncio_loop_create_task(loop, &b, set_step, (void *)1, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, a, NULL), 0);
  assert_rc(asyncio_loop_run_until_complete(loop, b, NULL), -ECANCELED);
  ASSERT_SOFT();
  assert_int_equal(step, 0);
  assert_ok(asyncio_task_free(a));
  assert_ok(asyncio_task_free(b));
  assert_ok(asyncio_loop_close(loop));
}

/* ---- sleep ------------------------------------------------------------------ */

static int yielder(void *arg) {
  int id = (int)(intptr_t)arg;
  for (int i = 0; i < 3; i++) {
    rec(id);
    CHECK_RC(asyncio_sleep(0), 0);
  }
  return 0;
}

/* sleep(0) yields exactly once: ready tasks interleave round-robin (A B C A B C A B C). */
TEST(task_sleep0_interleaving) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *t[3];
  for (int i = 0; i < 3; i++) assert_ok(asyncio_loop_create_task(loop, &t[i], yielder, (void *)(intptr_t)(i + 1), NULL));
  for (int i = 0; i < 3; i++) assert_rc(asyncio_loop_run_until_complete(loop, t[i], NULL), 0);
  ASSERT_SOFT();
  assert_int_equal(norder, 9);
  for (int i = 0; i < 9; i++) assert_int_equal(order[i], i % 3 + 1);
  assert_true(asyncio_loop_time(loop) == 0.0); /* no time passed */
  for (int i = 0; i < 3; i++) assert_ok(asyncio_task_free(t[i]));
  assert_ok(asyncio_loop_close(loop));
}

static int yield_to_callback(void *arg) {
  (void)arg;
  rec(1);
  CHECK_RC(asyncio_loop_call_soon(asyncio_get_running_loop(), rec_cb, (void *)2, NULL), 0);
  CHECK_RC(asyncio_sleep(0), 0);
  rec(3);
  CHECK_RC(asyncio_loop_call_soon(asyncio_get_running_loop(), rec_cb, (void *)4, NULL), 0);
  CHECK_RC(asyncio_sleep(-1.0), 0); /* a negative delay is sleep(0) */
  rec(5);
  return 0;
}

/* sleep(0) lets every ready callback run before the task resumes; so does a negative delay. */
TEST(task_sleep0_runs_ready_callbacks_first) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_rc(run_task(loop, yield_to_callback, NULL, NULL), 0);
  ASSERT_SOFT();
  assert_int_equal(norder, 5);
  for (int i = 0; i < 5; i++) assert_int_equal(order[i], i + 1);
  assert_ok(asyncio_loop_close(loop));
}

static int timed_sleeps(void *arg) {
  asyncio_loop_t *loop = asyncio_get_running_loop();
  (void)arg;
  CHECK_RC(asyncio_sleep(2.5), 0);
  CHECK(asyncio_loop_time(loop) == 2.5);
  CHECK_RC(asyncio_sleep(3600.0), 0);
  CHECK(asyncio_loop_time(loop) == 3602.5);
  CHECK_RC(asyncio_sleep(NAN), -EINVAL);
  CHECK(asyncio_loop_time(loop) == 3602.5);
  return 0;
}

/* asyncio.sleep(delay) resumes after exactly `delay` of loop time; NaN is -EINVAL. */
TEST(task_sleep_durations) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_rc(run_task(loop, timed_sleeps, NULL, NULL), 0);
  ASSERT_SOFT();
  assert_ok(asyncio_loop_close(loop));
}

/* ---- done callbacks and lifetime -------------------------------------------- */

static asyncio_task_t *cb_task;

static void task_done_cb(asyncio_future_t *f, void *arg) {
  CHECK(f == cb_task);
  CHECK(asyncio_future_done(f));
  CHECK(asyncio_future_result(f, NULL) == 8);
  rec((int)(intptr_t)arg);
}

static int sleep_then_8(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_sleep(1.0), 0);
  return 8;
}

/* Task done callbacks run (via the loop) once the task finishes, with the task, in order. */
TEST(task_done_callbacks) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_ok(asyncio_loop_create_task(loop, &cb_task, sleep_then_8, NULL, NULL));
  assert_ok(asyncio_future_add_done_callback(cb_task, task_done_cb, (void *)1));
  assert_ok(asyncio_future_add_done_callback(cb_task, task_done_cb, (void *)2));
  assert_rc(asyncio_loop_run_until_complete(loop, cb_task, NULL), 8);
  run_once(loop); /* in case run_until_complete returned before they ran */
  ASSERT_SOFT();
  assert_int_equal(norder, 2);
  assert_int_equal(order[0], 1);
  assert_int_equal(order[1], 2);
  assert_ok(asyncio_task_free(cb_task));
  assert_ok(asyncio_loop_close(loop));
}

static int count_finished;

static int finish_counter(void *arg) {
  CHECK_RC(asyncio_sleep((double)(intptr_t)arg), 0);
  count_finished++;
  return 0;
}

/* With out == NULL (or the reference dropped at once) the loop keeps the task alive until it finishes. */
TEST(task_detached_and_dropped_references) {
  reset();
  count_finished = 0;
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_ok(asyncio_loop_create_task(loop, NULL, finish_counter, (void *)1, NULL));
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, finish_counter, (void *)2, NULL));
  assert_ok(asyncio_task_free(t)); /* dropped before it ever ran */
  assert_ok(asyncio_loop_call_later(loop, 5.0, stop_cb, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  ASSERT_SOFT();
  assert_int_equal(count_finished, 2);
  assert_ok(asyncio_loop_close(loop)); /* and the leak check sees both freed */
}

static int eh_calls, eh_error;
static char eh_message[256];

static void capture_handler(asyncio_loop_t *loop, const asyncio_error_context_t *ctx, void *ud) {
  (void)loop;
  (void)ud;
  eh_calls++;
  eh_error = ctx->error;
  snprintf(eh_message, sizeof eh_message, "%s", ctx->message ? ctx->message : "");
}

/* Task.__del__: "Task exception was never retrieved" is reported for a failed task nobody looked at. */
TEST(task_exception_never_retrieved) {
  eh_calls = 0;
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_ok(asyncio_loop_set_exception_handler(loop, capture_handler, NULL));
  assert_ok(asyncio_loop_create_task(loop, NULL, return_arg, (void *)(intptr_t)-EIO, NULL));
  run_once(loop);
  run_once(loop);
  assert_int_equal(eh_calls, 1);
  assert_int_equal(eh_error, -EIO);
  assert_non_null(strstr(eh_message, "never retrieved"));
  /* awaited by another task: retrieved, never reported */
  eh_calls = 0;
  assert_rc(run_task(loop, await_child, (void *)(intptr_t)-EIO, NULL), -EIO);
  assert_int_equal(eh_calls, 0);
  assert_ok(asyncio_loop_close(loop));
}

static int sleep_forever_flag(void *arg) {
  (void)arg;
  asyncio_sleep(1e9);
  step = 99; /* must never run: close frees pending tasks without resuming them */
  return 0;
}

/* run_until_complete() calls future.result(): a task's error it returned is retrieved, never reported. */
TEST(task_run_until_complete_retrieves_error) {
  eh_calls = 0;
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_ok(asyncio_loop_set_exception_handler(loop, capture_handler, NULL));
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, return_arg, (void *)(intptr_t)-ENOENT, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), -ENOENT);
  assert_ok(asyncio_task_free(t));
  run_once(loop);
  assert_int_equal(eh_calls, 0);
  assert_ok(asyncio_loop_close(loop));
}

/* loop.close() with pending tasks (started or not) frees them without running them further. */
TEST(task_close_with_pending_tasks) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *held;
  assert_ok(asyncio_loop_create_task(loop, NULL, sleep_forever_flag, NULL, NULL));
  assert_ok(asyncio_loop_create_task(loop, &held, sleep_forever_flag, NULL, NULL));
  run_once(loop); /* both suspended in sleep */
  assert_ok(asyncio_loop_create_task(loop, NULL, sleep_forever_flag, NULL, NULL)); /* never started */
  assert_ok(asyncio_task_free(held));
  assert_ok(asyncio_loop_close(loop));
  assert_int_equal(step, 0);
}

/*
 * Debug mode reports pending tasks destroyed by close ("Task was destroyed
 * but it is pending!"), through the exception handler or on stderr.
 */
TEST(task_debug_reports_pending_task_destroyed) {
  reset();
  eh_calls = 0;
  eh_message[0] = 0;
  asyncio_loop_t *loop = NULL;
  asyncio_loop_options_t o = {0};
  o.clock = ASYNCIO_CLOCK_VIRTUAL;
  o.debug = 1;
  o.slow_callback_duration = 100.0;
  assert_ok(asyncio_loop_new(&loop, &o));
  assert_ok(asyncio_loop_set_exception_handler(loop, capture_handler, NULL));
  asyncio_task_options_t to = {0};
  to.name = "forgotten-task";
  assert_ok(asyncio_loop_create_task(loop, NULL, sleep_forever_flag, NULL, &to));
  run_once(loop);
  fflush(stderr);
  int fd = memfd_create("stderr", MFD_CLOEXEC);
  int saved = dup(2);
  dup2(fd, 2);
  int rc = asyncio_loop_close(loop);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  char buf[4096] = {0};
  (void)!pread(fd, buf, sizeof buf - 1, 0);
  close(fd);
  if (buf[0]) fprintf(stderr, "[captured stderr]\n%s[end]\n", buf);
  assert_ok(rc);
  int reported = (eh_calls > 0 && strstr(eh_message, "pending") != NULL) || strstr(buf, "pending") != NULL;
  assert_true(reported);
}

/* ---- stacks ------------------------------------------------------------------- */

static int use_64k(void *arg) {
  (void)arg;
  volatile char big[64 * 1024];
  memset((char *)big, 0x5a, sizeof big);
  int sum = 0;
  for (size_t i = 0; i < sizeof big; i += 4096) sum += big[i];
  CHECK_RC(asyncio_sleep(0), 0); /* switch away and back with the frame live */
  for (size_t i = 0; i < sizeof big; i += 4096) sum -= big[i];
  return sum == 0 ? 1 : 0;
}

static int use_768k(void *arg) {
  (void)arg;
  volatile char big[768 * 1024];
  memset((char *)big, 0x33, sizeof big);
  CHECK_RC(asyncio_sleep(0), 0);
  return big[0] == 0x33 && big[sizeof big - 1] == 0x33 ? 1 : 0;
}

/* The stack_size option sizes the task's stack: 64 KiB of locals on 256 KiB, 768 KiB on 1 MiB. */
TEST(task_stack_size_option) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_options_t o = {0};
  o.stack_size = 256 * 1024;
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, use_64k, NULL, &o));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 1);
  assert_ok(asyncio_task_free(t));
  o.stack_size = 1024 * 1024; /* more than the default: the option must be honoured */
  assert_ok(asyncio_loop_create_task(loop, &t, use_768k, NULL, &o));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 1);
  assert_ok(asyncio_task_free(t));
  ASSERT_SOFT();
  assert_ok(asyncio_loop_close(loop));
}

/* The loop's stack_size option is the default for its tasks. */
TEST(task_loop_default_stack_size) {
  reset();
  asyncio_loop_t *loop = NULL;
  asyncio_loop_options_t o = {0};
  o.clock = ASYNCIO_CLOCK_VIRTUAL;
  o.debug = -1;
  o.stack_size = 1024 * 1024;
  assert_ok(asyncio_loop_new(&loop, &o));
  assert_rc(run_task(loop, use_768k, NULL, NULL), 1);
  ASSERT_SOFT();
  assert_ok(asyncio_loop_close(loop));
}

static char *stack_top;

static size_t __attribute__((noinline)) recurse_until(size_t target, int depth) {
  volatile char buf[1024];
  buf[0] = (char)depth;
  buf[sizeof buf - 1] = (char)depth;
  char *here = (char *)__builtin_frame_address(0);
  size_t used = (size_t)(stack_top - here);
  if (used >= target) return used;
  size_t r = recurse_until(target, depth + 1);
  return r + (size_t)(buf[0] - (char)depth) + (size_t)(buf[sizeof buf - 1] - (char)depth);
}

static size_t deep_used;

static int deep_task(void *arg) {
  size_t target = (size_t)arg;
  stack_top = (char *)__builtin_frame_address(0);
  deep_used = recurse_until(target, 0);
  CHECK_RC(asyncio_sleep(0), 0);
  return deep_used >= target ? 1 : 0;
}

/* A task can use nearly all of its stack (here all but 32 KiB of 256 KiB) by deep recursion. */
TEST(task_deep_recursion_near_stack_limit) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_options_t o = {0};
  o.stack_size = 256 * 1024;
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, deep_task, (void *)(uintptr_t)(o.stack_size - 32 * 1024), &o));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 1);
  ASSERT_SOFT();
  assert_true(deep_used >= 224 * 1024);
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

static volatile int never;

static int __attribute__((noinline)) recurse_forever(int d) {
  volatile char buf[512];
  buf[0] = (char)d;
  if (never) return buf[0];
  return recurse_forever(d + 1) + buf[0];
}

static int overflow_task(void *arg) {
  (void)arg;
  return recurse_forever(0);
}

/* Runs on a slab stack (no guard page) without harming it. */
static int calm_task(void *arg) {
  (void)arg;
  for (int i = 0; i < 3; i++)
    if (asyncio_sleep(0) < 0) return -1;
  return 5;
}

/* What a deep recursion does on a stack without a guard page: it reaches
 * the stack's lowest bytes (the canary); the next suspension must notice. */
static int canary_task(void *arg) {
  (void)arg;
  ((volatile char *)asyncio__current_stack->lo)[8] = 1;
  asyncio_sleep(0);
  return 0;
}

/*
 * The child side of the overflow tests.  It runs from a constructor of a
 * freshly exec'd test binary, before cmocka's main() replaces the SIGSEGV
 * handlers (cmocka's handler, or a forked cmocka process, would hide both
 * our report and AddressSanitizer's).  "1": recursion into a guard page;
 * "canary": no stack gets a guard page, and a task damages its canary.
 */
__attribute__((constructor)) static void overflow_child_entry(void) {
  const char *e = getenv("ASYNCIO_TEST_OVERFLOW_CHILD");
  if (!e) return;
  int canary = strcmp(e, "canary") == 0;
  if (!canary && strcmp(e, "1") != 0) return;
  if (canary) asyncio__stack_set_guarded_budget(0);
  asyncio_loop_t *loop = NULL;
  asyncio_loop_options_t o = {0};
  o.clock = ASYNCIO_CLOCK_VIRTUAL;
  o.debug = -1;
  if (asyncio_loop_new(&loop, &o) != 0) _exit(3);
  asyncio_task_options_t to = {0};
  asyncio_task_t *t;
  if (canary) {
    /* An intact canary passes every check. */
    if (asyncio_loop_create_task(loop, &t, calm_task, NULL, NULL) != 0) _exit(4);
    if (asyncio_loop_run_until_complete(loop, t, NULL) != 5) _exit(5);
    to.name = "canary-task-9";
    if (asyncio_loop_create_task(loop, &t, canary_task, NULL, &to) != 0) _exit(4);
  } else {
    to.name = "overflowing-task-7";
    to.stack_size = 64 * 1024;
    if (asyncio_loop_create_task(loop, &t, overflow_task, NULL, &to) != 0) _exit(4);
  }
  asyncio_loop_run_until_complete(loop, t, NULL);
  _exit(0); /* survived: the test fails */
}

/*
 * Runs this test binary again with ASYNCIO_TEST_OVERFLOW_CHILD=mode and
 * returns what it wrote to stderr (malloc'd), its wait status in *status;
 * NULL when the binary cannot be re-exec'd (qemu-user without binfmt_misc).
 */
static char *run_overflow_child(const char *mode, int *status) {
  int p[2];
  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl);
    dup2(p[1], 2);
    setenv("ASYNCIO_TEST_OVERFLOW_CHILD", mode, 1);
    execl("/proc/self/exe", "test_tasks", (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  size_t cap = 1 << 20, len = 0;
  char *buf = malloc(cap + 1);
  for (;;) {
    ssize_t n = read(p[0], buf + len, cap - len);
    if (n <= 0) break;
    len += (size_t)n;
    if (len == cap) break;
  }
  buf[len] = 0;
  close(p[0]);
  *status = 0;
  waitpid(pid, status, 0);
  if (WIFEXITED(*status) && WEXITSTATUS(*status) == 127) {
    free(buf);
    return NULL;
  }
  return buf;
}

/*
 * A stack overflow is caught by the guard page and reported naming the task
 * (Python's RecursionError names the frame); the process dies.  Under
 * AddressSanitizer ASan's own "stack-overflow" report is accepted instead.
 */
TEST(task_stack_overflow_reported) {
  int status;
  char *buf = run_overflow_child("1", &status);
  if (!buf) skip();
  int survived = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  int not_started = WIFEXITED(status) && (WEXITSTATUS(status) == 3 || WEXITSTATUS(status) == 4);
  int named = strstr(buf, "overflowing-task-7") != NULL || strstr(buf, "stack-overflow") != NULL;
  if (!named || survived || not_started) fprintf(stderr, "child status %#x, stderr:\n%s\n", status, buf);
  free(buf);
  assert_false(survived);
  assert_false(not_started);
  assert_true(named);
}

/*
 * Past the guard-page budget stacks have no guard page; a task that
 * reaches the bottom of one is caught by the canary check at its next
 * suspension, reported by name, and the process aborts.  A task that
 * leaves its canary alone runs on such a stack undisturbed.
 */
TEST(task_canary_overflow_reported) {
  int status;
  char *buf = run_overflow_child("canary", &status);
  if (!buf) skip();
  int aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
  int named = strstr(buf, "stack overflow in task 'canary-task-9'") != NULL;
  if (!named || !aborted) fprintf(stderr, "child status %#x, stderr:\n%s\n", status, buf);
  free(buf);
  assert_true(aborted);
  assert_true(named);
}

/* ---- eager tasks ------------------------------------------------------------------ */

static asyncio_task_t *eager_self;

static int eager_body(void *arg) {
  (void)arg;
  eager_self = asyncio_current_task();
  step = 1;
  CHECK_RC(asyncio_sleep(0), 0);
  step = 2;
  return 21;
}

static int eager_parent(void *arg) {
  (void)arg;
  asyncio_task_t *me = asyncio_current_task();
  asyncio_task_options_t o = {0};
  o.eager = true;
  asyncio_task_t *child;
  CHECK_RC(asyncio_create_task(&child, eager_body, NULL, &o), 0);
  CHECK(step == 1);                      /* ran synchronously up to its first suspension */
  CHECK(eager_self == child);            /* as the current task */
  CHECK(asyncio_current_task() == me);   /* and we are current again */
  CHECK(!asyncio_future_done(child));
  CHECK(asyncio_await(child, NULL) == 21);
  CHECK(step == 2);
  asyncio_task_free(child);
  /* an eager coroutine that never suspends is done when create_task returns */
  CHECK_RC(asyncio_create_task(&child, return_arg, (void *)9, &o), 0);
  CHECK(asyncio_future_done(child));
  CHECK(asyncio_future_result(child, NULL) == 9);
  asyncio_task_free(child);
  return 0;
}

/* eager_task_factory (3.12): the coroutine runs inside create_task until it first suspends. */
TEST(task_eager_start) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_rc(run_task(loop, eager_parent, NULL, NULL), 0);
  ASSERT_SOFT();
  assert_ok(asyncio_loop_close(loop));
}

/* Task.__init__: eager start needs a running loop; on a loop that is not running it is scheduled. */
TEST(task_eager_on_stopped_loop_is_scheduled) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_options_t o = {0};
  o.eager = true;
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, set_step, (void *)4, &o));
  assert_int_equal(step, 0);
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  assert_int_equal(step, 4);
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

/* ---- task factories -------------------------------------------------------------- */

static int nfactory;

/* Names every task "made-<n>" and counts the calls; fails on arg (void *)-1. */
static int naming_factory(asyncio_loop_t *loop, asyncio_task_t **out, asyncio_coro_fn fn,
                          void *arg, const asyncio_task_options_t *o, void *factory_arg) {
  CHECK(factory_arg == &nfactory);
  if (arg == (void *)-1) return -EPERM;
  if (arg == (void *)-2) return 0; /* claims success without a task */
  char name[32];
  snprintf(name, sizeof name, "made-%d", ++nfactory);
  asyncio_task_options_t no = o ? *o : (asyncio_task_options_t){0};
  no.name = name;
  return asyncio_task_new(loop, out, fn, arg, &no);
}

static int factory_main(void *arg) {
  (void)arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  void *fa = NULL;
  CHECK(asyncio_loop_get_task_factory(loop, &fa) == naming_factory && fa == &nfactory);
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, return_arg, (void *)5, NULL), 0);
  CHECK(strcmp(asyncio_task_get_name(t), "made-1") == 0);
  CHECK(asyncio_await(t, NULL) == 5);
  asyncio_task_free(t);
  /* Everything that creates tasks goes through it: TaskGroup, gather of coroutines. */
  asyncio_taskgroup_t *tg;
  CHECK_RC(asyncio_taskgroup_enter(&tg), 0);
  CHECK_RC(asyncio_taskgroup_create_task(tg, &t, return_arg, (void *)6, NULL), 0);
  CHECK(strcmp(asyncio_task_get_name(t), "made-2") == 0);
  asyncio_task_free(t);
  CHECK_RC(asyncio_taskgroup_exit(tg, 0), 0);
  asyncio_taskgroup_free(tg);
  asyncio_future_t *g;
  asyncio_coro_call_t calls[2] = {{return_arg, (void *)1}, {return_arg, (void *)2}};
  CHECK_RC(asyncio_gather_coros(&g, calls, 2, NULL), 0);
  CHECK_RC(asyncio_await(g, NULL), 0);
  asyncio_future_free(g);
  CHECK(nfactory == 4);
  /* The factory's errors are create_task's; a "success" without a task is refused. */
  CHECK_RC(asyncio_create_task(&t, return_arg, (void *)-1, NULL), -EPERM);
  CHECK(t == NULL);
  CHECK_RC(asyncio_create_task(&t, return_arg, (void *)-2, NULL), -EINVAL);
  /* The Task constructor never calls the factory. */
  CHECK_RC(asyncio_task_new(loop, &t, return_arg, (void *)7, NULL), 0);
  CHECK(strncmp(asyncio_task_get_name(t), "Task-", 5) == 0);
  CHECK(asyncio_await(t, NULL) == 7);
  asyncio_task_free(t);
  CHECK(nfactory == 4);
  /* NULL restores the default. */
  CHECK_RC(asyncio_loop_set_task_factory(loop, NULL, &nfactory), 0);
  CHECK(asyncio_loop_get_task_factory(loop, &fa) == NULL && fa == NULL);
  CHECK_RC(asyncio_create_task(&t, return_arg, (void *)8, NULL), 0);
  CHECK(strncmp(asyncio_task_get_name(t), "Task-", 5) == 0);
  CHECK(asyncio_await(t, NULL) == 8);
  asyncio_task_free(t);
  return 0;
}

/* loop.set_task_factory / get_task_factory: create_task (and what uses it) calls the factory. */
TEST(task_factory_set_get_and_used) {
  reset();
  nfactory = 0;
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_ok(asyncio_loop_set_task_factory(loop, naming_factory, &nfactory));
  /* The main task itself is made by the factory too. */
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, factory_main, NULL, NULL));
  assert_string_equal(asyncio_task_get_name(t), "made-1");
  nfactory = 0;
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  assert_ok(asyncio_task_free(t));
  ASSERT_SOFT();
  assert_rc(asyncio_loop_set_task_factory(NULL, NULL, NULL), -EINVAL);
  assert_null(asyncio_loop_get_task_factory(NULL, NULL));
  assert_rc(asyncio_task_new(NULL, &t, return_arg, NULL, NULL), -EINVAL);
  assert_rc(asyncio_task_new(loop, &t, NULL, NULL, NULL), -EINVAL);
  assert_ok(asyncio_loop_close(loop));
}

static int eager_factory_main(void *arg) {
  (void)arg;
  asyncio_task_t *child;
  step = 0;
  CHECK_RC(asyncio_create_task(&child, eager_body, NULL, NULL), 0);
  CHECK(step == 1); /* started inside create_task: eager without asking */
  CHECK(asyncio_await(child, NULL) == 21);
  asyncio_task_free(child);
  asyncio_task_options_t o = {0};
  o.name = "kept";
  CHECK_RC(asyncio_create_task(&child, return_arg, (void *)3, &o), 0);
  CHECK(asyncio_future_done(child)); /* never suspended: done at once */
  CHECK(strcmp(asyncio_task_get_name(child), "kept") == 0); /* other options pass through */
  asyncio_task_free(child);
  return 0;
}

/* asyncio.eager_task_factory as a loop's factory: every task starts eagerly. */
TEST(task_eager_task_factory) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_ok(asyncio_loop_set_task_factory(loop, asyncio_eager_task_factory, NULL));
  assert_rc(run_task(loop, eager_factory_main, NULL, NULL), 0);
  ASSERT_SOFT();
  assert_ok(asyncio_loop_close(loop));
}

/* ---- scale ----------------------------------------------------------------------- */

#define NTASKS 100000
static int nfinished;

static int small_sleeper(void *arg) {
  double d = (double)((intptr_t)arg % 1000) * 0.001;
  if (asyncio_sleep(d) == 0) nfinished++;
  return 0;
}

static int spawner(void *arg) {
  (void)arg;
  asyncio_task_options_t o = {0};
  o.stack_size = ASYNCIO_MIN_STACK_SIZE;
  for (intptr_t i = 0; i < NTASKS; i++) {
    int rc = asyncio_create_task(NULL, small_sleeper, (void *)i, &o);
    if (rc != 0) {
      CHECK_RC(rc, 0);
      return rc;
    }
  }
  asyncio_task_t *one[1];
  CHECK(asyncio_all_tasks(NULL, one, 1) == NTASKS + 1);
  CHECK_RC(asyncio_sleep(2.0), 0);
  CHECK(nfinished == NTASKS);
  CHECK(asyncio_all_tasks(NULL, one, 1) == 1);
  return 0;
}

/* 100,000 tasks sleeping concurrently (virtual clock) all complete at their deadlines. */
TEST(task_100k_concurrent_sleepers) {
  reset();
  nfinished = 0;
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_rc(run_task(loop, spawner, NULL, NULL), 0);
  ASSERT_SOFT();
  assert_int_equal(nfinished, NTASKS);
  assert_true(asyncio_loop_time(loop) == 2.0);
  assert_ok(asyncio_loop_close(loop));
}

/* ENOMEM at any allocation inside create_task: -ENOMEM and nothing scheduled (SQLite-style sweep). */
TEST(task_create_enomem_sweep) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *t = NULL;
  int rc = -ENOMEM;
  int n;
  for (n = 1; n < 100; n++) {
    harness_fail_alloc_after(n);
    rc = asyncio_loop_create_task(loop, &t, set_step, (void *)1, NULL);
    harness_fail_alloc_after(0);
    if (rc == 0) break;
    assert_rc(rc, -ENOMEM);
    run_once(loop);
    assert_int_equal(step, 0); /* a failed call scheduled nothing */
  }
  assert_ok(rc);
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  assert_int_equal(step, 1);
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

/* ---- threads ---------------------------------------------------------------------- */

static int wt_rc;
static asyncio_task_t *wt_task;

static void *wt_create(void *arg) {
  wt_rc = asyncio_loop_create_task((asyncio_loop_t *)arg, &wt_task, set_step, (void *)1, NULL);
  return NULL;
}

static void spawn_creator(void *arg) {
  pthread_t th;
  if (pthread_create(&th, NULL, wt_create, arg) == 0) pthread_join(th, NULL);
  asyncio_loop_stop((asyncio_loop_t *)arg);
}

/* events.h: loop calls from a foreign thread while the loop runs fail with ASYNCIO_EWRONGTHREAD. */
TEST(task_create_from_wrong_thread) {
  reset();
  wt_task = NULL;
  wt_rc = 12345;
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_ok(asyncio_loop_call_soon(loop, spawn_creator, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  assert_rc(wt_rc, ASYNCIO_EWRONGTHREAD);
  assert_null(wt_task);
  run_once(loop);
  assert_int_equal(step, 0);
  assert_ok(asyncio_loop_close(loop));
}

/* ---- introspection ------------------------------------------------------------------ */

/* asyncio_print_tasks (print_call_graph at task granularity) lists every pending task by name. */
TEST(task_print_tasks_lists_pending) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_options_t o = {0};
  asyncio_task_t *a, *b, *c;
  o.name = "alpha-sleeper";
  assert_ok(asyncio_loop_create_task(loop, &a, sleep_arg_seconds, (void *)100, &o));
  o.name = "beta-sleeper";
  assert_ok(asyncio_loop_create_task(loop, &b, sleep_arg_seconds, (void *)100, &o));
  o.name = "gamma-done";
  assert_ok(asyncio_loop_create_task(loop, &c, return_arg, NULL, &o));
  run_once(loop);
  assert_true(asyncio_future_done(c));
  char *text = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&text, &size);
  assert_non_null(out);
  int n = asyncio_print_tasks(loop, out);
  fclose(out);
  fprintf(stderr, "%s", text);
  int has_a = strstr(text, "alpha-sleeper") != NULL;
  int has_b = strstr(text, "beta-sleeper") != NULL;
  int has_c = strstr(text, "gamma-done") != NULL;
  free(text);
  assert_int_equal(n, 2);
  assert_true(has_a);
  assert_true(has_b);
  assert_false(has_c);
  asyncio_task_cancel(a, NULL);
  asyncio_task_cancel(b, NULL);
  assert_rc(asyncio_loop_run_until_complete(loop, a, NULL), -ECANCELED);
  assert_rc(asyncio_loop_run_until_complete(loop, b, NULL), -ECANCELED);
  assert_ok(asyncio_task_free(a));
  assert_ok(asyncio_task_free(b));
  assert_ok(asyncio_task_free(c));
  assert_ok(asyncio_loop_close(loop));
}

static asyncio_task_t *tree_leaf, *tree_kids[2], *tree_waiter2;

static int tree_middle(void *arg) {
  (void)arg;
  return asyncio_await(tree_leaf, NULL); /* awaits the leaf task */
}

static int tree_main(void *arg) {
  (void)arg;
  asyncio_task_options_t o = {0};
  o.name = "leaf";
  CHECK_RC(asyncio_create_task(&tree_leaf, sleep_arg_seconds, (void *)100, &o), 0);
  o.name = "middle";
  CHECK_RC(asyncio_create_task(&tree_kids[0], tree_middle, NULL, &o), 0);
  o.name = "sleeper";
  CHECK_RC(asyncio_create_task(&tree_kids[1], sleep_arg_seconds, (void *)50, &o), 0);
  o.name = "second-awaiter";
  CHECK_RC(asyncio_create_task(&tree_waiter2, tree_middle, NULL, &o), 0);
  asyncio_future_t *g;
  CHECK_RC(asyncio_gather(&g, tree_kids, 2, NULL), 0);
  int rc = asyncio_await(g, NULL); /* cancelled by the test */
  asyncio_future_free(g);
  return rc;
}

/* print_tasks draws the await tree: main -> gather children -> the task a child awaits. */
TEST(task_print_tasks_tree) {
  reset();
  char *text = NULL;
  size_t size = 0;
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_options_t o = {0};
  o.name = "main";
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, tree_main, NULL, &o));
  for (int i = 0; i < 3; i++) run_once(loop);
  FILE *out = open_memstream(&text, &size);
  assert_non_null(out);
  int n = asyncio_print_tasks(loop, out);
  fclose(out);
  fprintf(stderr, "%s", text);
  /* Two roots: main and second-awaiter; the leaf is under middle, then mentioned again. */
  const char *main_line = strstr(text, "<Task pending name='main'");
  const char *mid = strstr(text, "|-- <Task pending name='middle'");
  const char *leaf = strstr(text, "|   `-- <Task pending name='leaf'");
  const char *sl = strstr(text, "`-- <Task pending name='sleeper'");
  const char *again = strstr(text, "`-- <Task pending name='leaf'");
  bool ok = n == 5 && main_line && mid && leaf && sl && again &&
            strstr(text, "(shown above)") && strstr(text, "awaiting gather of 2") &&
            main_line < mid && mid < leaf && leaf < sl;
  free(text);
  asyncio_task_cancel(t, NULL);
  asyncio_task_cancel(tree_waiter2, NULL);
  asyncio_task_cancel(tree_leaf, NULL);
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), -ECANCELED);
  assert_rc(asyncio_loop_run_until_complete(loop, tree_waiter2, NULL), -ECANCELED);
  assert_rc(asyncio_loop_run_until_complete(loop, tree_leaf, NULL), -ECANCELED);
  assert_ok(asyncio_task_free(t));
  for (int i = 0; i < 2; i++) assert_ok(asyncio_task_free(tree_kids[i]));
  assert_ok(asyncio_task_free(tree_waiter2));
  assert_ok(asyncio_task_free(tree_leaf));
  ASSERT_SOFT();
  assert_true(ok);
  assert_ok(asyncio_loop_close(loop));
}

/* ---- stack at creation; debug-mode stepping ------------------------------------ */

static int create_huge_stack_task(void *arg) {
  asyncio_task_options_t o = {0};
  o.stack_size = (size_t)(uintptr_t)arg;
  asyncio_task_t *t = (asyncio_task_t *)1;
  int rc = asyncio_create_task(&t, return_arg, NULL, &o);
  if (t != NULL) return -1000; /* *out must be cleared on failure */
  return rc;
}

/*
 * A stack that cannot be mapped fails create_task itself with -ENOMEM (Python
 * raises MemoryError from create_task), never later as the task's outcome:
 * nothing is scheduled, no task is listed, nothing leaks.  1 PiB is beyond
 * any x86_64 or aarch64 user address space, so mmap refuses it; 2^62 is
 * refused before mmap; a loop whose default stack is 1 PiB fails through the
 * reservation path.
 */
TEST(task_create_fails_when_stack_cannot_be_mapped) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_options_t o = {0};
  asyncio_task_t *t = (asyncio_task_t *)1;
  o.stack_size = (size_t)1 << 50;
  assert_rc(asyncio_loop_create_task(loop, &t, return_arg, NULL, &o), -ENOMEM);
  assert_null(t);
  o.stack_size = (size_t)1 << 62;
  assert_rc(asyncio_loop_create_task(loop, &t, return_arg, NULL, &o), -ENOMEM);
  assert_null(t);
  assert_int_equal(asyncio_all_tasks(loop, NULL, 0), 0);
  /* From inside a running task: asyncio_create_task reports it the same way. */
  asyncio_task_t *outer;
  assert_ok(asyncio_loop_create_task(loop, &outer, create_huge_stack_task,
                                     (void *)(uintptr_t)((size_t)1 << 50), NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, outer, NULL), -ENOMEM);
  assert_ok(asyncio_task_free(outer));
  assert_int_equal(asyncio_all_tasks(loop, NULL, 0), 0);
  assert_ok(asyncio_loop_close(loop));

  asyncio_loop_options_t lo = {0};
  lo.clock = ASYNCIO_CLOCK_VIRTUAL;
  lo.stack_size = (size_t)1 << 50;
  assert_ok(asyncio_loop_new(&loop, &lo));
  assert_rc(asyncio_loop_create_task(loop, &t, return_arg, NULL, NULL), -ENOMEM);
  assert_null(t);
  assert_rc(asyncio_loop_create_task(loop, NULL, return_arg, NULL, NULL), -ENOMEM);
  /* A task that asks for a mappable size still works on that loop. */
  o.stack_size = 64 * 1024;
  assert_ok(asyncio_loop_create_task(loop, &t, return_arg, (void *)7, &o));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 7);
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

/* Busy for `arg` milliseconds of wall time, yielding in between, three times. */
static int spin_steps(void *arg) {
  double ms = (double)(uintptr_t)arg;
  for (int i = 0; i < 3; i++) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do clock_gettime(CLOCK_MONOTONIC, &b);
    while ((double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) * 1e-6 < ms);
    int rc = asyncio_sleep(0);
    if (rc) return rc;
  }
  return 0;
}

/*
 * Debug mode times each step on its own: a task that yields goes back to the
 * loop instead of handing the processor straight to the next ready task, so
 * one slow-callback measurement never covers several tasks' steps.  Twenty
 * tasks whose steps take 10 ms, with a 150 ms threshold: a chain of hand-offs
 * (up to 20 steps, 200 ms, in one measurement) would be reported; steps timed
 * one by one never are.
 */
TEST(task_debug_mode_times_each_step_alone) {
  asyncio_loop_options_t lo = {0};
  lo.debug = 1;
  lo.slow_callback_duration = 0.15;
  asyncio_loop_t *loop = NULL;
  assert_ok(asyncio_loop_new(&loop, &lo));
  enum { N = 20 };
  asyncio_task_t *ts[N];
  for (int i = 0; i < N; i++)
    assert_ok(asyncio_loop_create_task(loop, &ts[i], spin_steps, (void *)(uintptr_t)10, NULL));
  /* The reports go to stderr: capture it in a temporary file. */
  fflush(stderr);
  FILE *cap = tmpfile();
  assert_non_null(cap);
  int saved = dup(2);
  assert_true(saved >= 0);
  assert_true(dup2(fileno(cap), 2) == 2);
  int rcs[N];
  for (int i = 0; i < N; i++) rcs[i] = asyncio_loop_run_until_complete(loop, ts[i], NULL);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  char text[4096] = {0};
  rewind(cap);
  size_t len = fread(text, 1, sizeof text - 1, cap);
  fclose(cap);
  text[len] = 0;
  fprintf(stderr, "%s", text);
  for (int i = 0; i < N; i++) {
    assert_int_equal(rcs[i], 0);
    assert_ok(asyncio_task_free(ts[i]));
  }
  assert_null(strstr(text, "took"));
  assert_ok(asyncio_loop_close(loop));
}

/* ---- stacks of tasks destroyed while suspended ---------------------------------------- */

/* Suspends nine frames deep, each with a live local array (which AddressSanitizer
 * surrounds with poisoned redzones until the frame returns, which it never does). */
static int deep_wait(int depth) {
  volatile char pad[512];
  memset((char *)pad, depth, sizeof pad);
  if (depth > 0) return deep_wait(depth - 1) + pad[3] - depth;
  return asyncio_sleep(3600) + pad[3];
}

static int deep_sleeper(void *arg) {
  (void)arg;
  return deep_wait(8);
}

/* Writes over the top 64 KiB of its stack, where the destroyed tasks' frames were. */
static int stack_toucher(void *arg) {
  (void)arg;
  char big[64 * 1024];
  memset(big, 1, sizeof big);
  return big[100] + big[sizeof big - 1] - 2;
}

static void quiet_handler(asyncio_loop_t *loop, const asyncio_error_context_t *ctx, void *ud) {
  (void)loop, (void)ctx, (void)ud; /* "Task was destroyed but it is pending!", expected */
}

/*
 * Loop close destroys suspended tasks without unwinding them.  The stacks
 * they leave, reused by the same loop's pool or mapped again at the same
 * address by the next loop, must work as fresh ones: under AddressSanitizer
 * the frames' redzones would otherwise still be poisoned, and the next
 * task to use that memory would be reported.
 */
TEST(task_stacks_of_destroyed_tasks_are_clean) {
  reset();
  for (int round = 0; round < 4; round++) {
    asyncio_loop_t *loop;
    assert_ok(asyncio_loop_new(&loop, NULL));
    assert_ok(asyncio_loop_set_exception_handler(loop, quiet_handler, NULL));
    /* The stacks the last round's loop left, mapped again. */
    for (int i = 0; round > 0 && i < 8; i++)
      assert_int_equal(run_task(loop, stack_toucher, NULL, NULL), 0);
    if (round == 3) {
      assert_ok(asyncio_loop_close(loop));
      break;
    }
    asyncio_task_t *ts[8];
    for (int i = 0; i < 8; i++)
      assert_ok(asyncio_loop_create_task(loop, &ts[i], deep_sleeper, NULL, NULL));
    run_once(loop);
    for (int i = 0; i < 8; i++) assert_ok(asyncio_task_free(ts[i]));
    assert_ok(asyncio_loop_close(loop)); /* destroys the eight, suspended */
  }
}
