/*
 * test_taskgroups.c - task groups and error groups
 * (include/asyncio/taskgroups.h), and eager tasks created in them.
 *
 * Python origin: Lib/asyncio/taskgroups.py (TaskGroup.__aexit__,
 * create_task, _on_task_done, _abort, cancel) and
 * Lib/test/test_asyncio/test_taskgroups.py; eager_start from
 * Lib/asyncio/tasks.py and test_eager_task_factory.py.
 *
 * Every case runs on the virtual clock.  Assertions inside tasks are soft
 * (CHECK) and are asserted by the test body after the loop returns.
 */
#include "harness.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------ */

static int num, flag_a, flag_b, nstarted;
static asyncio_task_t *t1, *t2, *main_task;
static asyncio_taskgroup_t *shared_tg;

static void reset(void) {
  soft_fail[0] = 0;
  num = flag_a = flag_b = nstarted = 0;
  t1 = t2 = main_task = NULL;
  shared_tg = NULL;
}

static double now(void) { return asyncio_loop_time(asyncio_get_running_loop()); }

static void stop_cb(void *arg) { asyncio_loop_stop((asyncio_loop_t *)arg); }

/* Runs the callbacks already queued on a stopped loop (one iteration). */
static void run_once(asyncio_loop_t *loop) {
  assert_ok(asyncio_loop_call_soon(loop, stop_cb, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
}

static int run_main(asyncio_coro_fn fn, void *arg, double *end_time) {
  asyncio_loop_t *loop = harness_virtual_loop();
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

/* A child: sleeps `ms` milliseconds, then returns `rc`; counts cancellations in num. */
typedef struct {
  int ms;
  int rc;
  int on_cancel; /* returned instead of -ECANCELED when cancelled (0 = re-raise) */
} job_t;

static int job(void *arg) {
  job_t *j = arg;
  nstarted++;
  int rc = asyncio_sleep(j->ms / 1000.0);
  if (rc == -ECANCELED) {
    num++;
    return j->on_cancel ? j->on_cancel : rc;
  }
  return j->rc;
}

/* The error codes of a group, in order, into codes[]; returns the count. */
static size_t group_codes(asyncio_taskgroup_t *tg, int *codes, size_t cap) {
  asyncio_error_group_t *g = asyncio_taskgroup_errors(tg);
  size_t n = asyncio_error_group_count(g);
  for (size_t i = 0; i < n && i < cap; i++) {
    asyncio_error_entry_t e;
    CHECK_RC(asyncio_error_group_get(g, i, &e), 0);
    codes[i] = e.error;
  }
  return n;
}

/* ---- no failures -------------------------------------------------------------- */

static int empty_main(void *arg) {
  (void)arg;
  asyncio_taskgroup_t *tg;
  CHECK_RC(asyncio_taskgroup_enter(&tg), 0);
  CHECK_RC(asyncio_taskgroup_exit(tg, 3), 3); /* the body's result passes through */
  CHECK(asyncio_error_group_count(asyncio_taskgroup_errors(tg)) == 0);
  asyncio_taskgroup_free(tg);
  return 0;
}

/* A group with no children: exit returns the body's outcome at once. */
TEST(taskgroup_no_children) {
  reset();
  double end;
  assert_rc(run_main(empty_main, NULL, &end), 0);
  ASSERT_SOFT();
  assert_true(end == 0);
}

static int two_ok_main(void *arg) {
  bool late = arg != NULL;
  job_t j1 = {100, 42, 0}, j2 = {200, 11, 0};
  asyncio_taskgroup_t *tg;
  CHECK_RC(asyncio_taskgroup_enter(&tg), 0);
  CHECK_RC(asyncio_taskgroup_create_task(tg, &t1, job, &j1, NULL), 0);
  if (late) CHECK_RC(asyncio_sleep(0.15), 0);
  CHECK_RC(asyncio_taskgroup_create_task(tg, &t2, job, &j2, NULL), 0);
  CHECK_RC(asyncio_taskgroup_exit(tg, 0), 0);
  CHECK(asyncio_future_done(t1) && asyncio_future_done(t2)); /* exit waited for both */
  CHECK(asyncio_future_result(t1, NULL) == 42);
  CHECK(asyncio_future_result(t2, NULL) == 11);
  CHECK(now() == (late ? 0.35 : 0.2));
  asyncio_taskgroup_free(tg);
  asyncio_task_free(t1);
  asyncio_task_free(t2);
  return 0;
}

/* Children that succeed: exit waits for all of them (test_taskgroup_01, _02). */
TEST(taskgroup_children_succeed) {
  reset();
  assert_rc(run_main(two_ok_main, NULL, NULL), 0);
  assert_rc(run_main(two_ok_main, (void *)1, NULL), 0);
  ASSERT_SOFT();
}

static int child_cancelled_main(void *arg) {
  (void)arg;
  job_t j1 = {1000, 42, 0}, j2 = {200, 11, 0};
  asyncio_taskgroup_t *tg;
  CHECK_RC(asyncio_taskgroup_enter(&tg), 0);
  CHECK_RC(asyncio_taskgroup_create_task(tg, &t1, job, &j1, NULL), 0);
  CHECK_RC(asyncio_sleep(0.15), 0);
  asyncio_task_cancel(t1, NULL); /* everything else goes on */
  CHECK_RC(asyncio_taskgroup_create_task(tg, &t2, job, &j2, NULL), 0);
  CHECK_RC(asyncio_taskgroup_exit(tg, 0), 0);
  CHECK(asyncio_future_cancelled(t1));
  CHECK(asyncio_future_result(t2, NULL) == 11);
  CHECK(asyncio_error_group_count(asyncio_taskgroup_errors(tg)) == 0);
  asyncio_taskgroup_free(tg);
  asyncio_task_free(t1);
  asyncio_task_free(t2);
  return 0;
}

/* A child cancelled explicitly is not an error (test_taskgroup_03). */
TEST(taskgroup_child_cancelled_is_not_an_error) {
  reset();
  assert_rc(run_main(child_cancelled_main, NULL, NULL), 0);
  ASSERT_SOFT();
}

/* ---- failures ------------------------------------------------------------------ */

static int one_failure_runner(void *arg) {
  (void)arg;
  job_t j1 = {100, -EDOM, 0}, j2 = {1000, 1, 0};
  asyncio_taskgroup_t *tg;
  CHECK_RC(asyncio_taskgroup_enter(&tg), 0);
  asyncio_task_options_t o = {0};
  o.name = "crasher";
  CHECK_RC(asyncio_taskgroup_create_task(tg, NULL, job, &j1, &o), 0);
  CHECK_RC(asyncio_taskgroup_create_task(tg, &t2, job, &j2, NULL), 0);
  int rc = asyncio_taskgroup_exit(tg, 0);
  CHECK(now() == 0.1);
  CHECK(asyncio_future_cancelled(t2)); /* the sibling was cancelled */
  asyncio_error_group_t *g = asyncio_taskgroup_errors(tg);
  CHECK(asyncio_error_group_count(g) == 1);
  asyncio_error_entry_t e;
  CHECK_RC(asyncio_error_group_get(g, 0, &e), 0);
  CHECK(e.error == -EDOM);
  CHECK(e.task_name && strcmp(e.task_name, "crasher") == 0);
  CHECK(e.task != NULL && asyncio_future_exception(e.task) == -EDOM);
  CHECK(!e.body);
  CHECK(e.message == NULL);
  CHECK_RC(asyncio_error_group_get(g, 1, &e), -ERANGE);
  /* the group's own cancellation of its parent was withdrawn */
  CHECK(asyncio_task_cancelling(asyncio_current_task()) == 0);
  CHECK_RC(asyncio_sleep(1), 0);
  asyncio_taskgroup_free(tg);
  asyncio_task_free(t2);
  num += 10; /* not reached in Python: the group raised */
  return rc;
}

/* One failing child: the sibling is cancelled, exit reports one error in an error group (test_04). */
TEST(taskgroup_one_failure) {
  reset();
  assert_rc(run_main(one_failure_runner, NULL, NULL), ASYNCIO_EEXCEPTIONGROUP);
  ASSERT_SOFT();
  assert_int_equal(num, 11); /* one cancelled sibling, and the body went on */
}

static int several_runner(void *arg) {
  (void)arg;
  job_t crash = {100, -EDOM, 0}, crash2 = {100, -EPIPE, 0}, slow = {5000, 1, 0};
  asyncio_taskgroup_t *tg;
  CHECK_RC(asyncio_taskgroup_enter(&tg), 0);
  CHECK_RC(asyncio_taskgroup_create_task(tg, NULL, job, &crash, NULL), 0);
  CHECK_RC(asyncio_taskgroup_create_task(tg, NULL, job, &crash2, NULL), 0);
  CHECK_RC(asyncio_taskgroup_create_task(tg, NULL, job, &crash, NULL), 0);
  CHECK_RC(asyncio_taskgroup_create_task(tg, NULL, job, &slow, NULL), 0);
  int rc = asyncio_sleep(10);
  if (rc == -ECANCELED) flag_a = 1; /* runner_cancel: the body was interrupted */
  CHECK(now() == 0.1);
  rc = asyncio_taskgroup_exit(tg, rc);
  int codes[8] = {0};
  CHECK(group_codes(tg, codes, 8) == 3); /* all three, in the order they finished */
  CHECK(codes[0] == -EDOM && codes[1] == -EPIPE && codes[2] == -EDOM);
  CHECK(asyncio_task_cancelling(asyncio_current_task()) == 0);
  asyncio_taskgroup_free(tg);
  return rc;
}

/* Several children fail at the same tick: the body and the slow sibling are cancelled; all errors reported. */
TEST(taskgroup_several_failures) {
  reset();
  assert_rc(run_main(several_runner, NULL, NULL), ASYNCIO_EEXCEPTIONGROUP);
  ASSERT_SOFT();
  assert_int_equal(flag_a, 1);
  assert_int_equal(num, 1);
}

static int during_cancel_runner(void *arg) {
  (void)arg;
  job_t crash = {100, -EDOM, 0}, stubborn = {5000, 1, -EPIPE}, polite = {5000, 1, 0};
  asyncio_taskgroup_t *tg;
  CHECK_RC(asyncio_taskgroup_enter(&tg), 0);
  CHECK_RC(asyncio_taskgroup_create_task(tg, NULL, job, &crash, NULL), 0);
  CHECK_RC(asyncio_taskgroup_create_task(tg, NULL, job, &stubborn, NULL), 0);
  CHECK_RC(asyncio_taskgroup_create_task(tg, NULL, job, &polite, NULL), 0);
  /* nested(): try: sleep(10) finally: raise MyExc */
  int rc = asyncio_sleep(10);
  CHECK_RC(rc, -ECANCELED);
  rc = asyncio_taskgroup_exit(tg, -EIO);
  asyncio_error_group_t *g = asyncio_taskgroup_errors(tg);
  CHECK(asyncio_error_group_count(g) == 3);
  asyncio_error_entry_t e;
  CHECK_RC(asyncio_error_group_get(g, 0, &e), 0);
  CHECK(e.error == -EDOM && !e.body);
  CHECK_RC(asyncio_error_group_get(g, 1, &e), 0);
  CHECK(e.error == -EPIPE && !e.body); /* raised while being cancelled */
  CHECK_RC(asyncio_error_group_get(g, 2, &e), 0);
  CHECK(e.error == -EIO && e.body); /* the body's error comes last */
  CHECK(e.task == asyncio_current_task());
  CHECK(e.task_name && strcmp(e.task_name, asyncio_task_get_name(asyncio_current_task())) == 0);
  /* random access, backwards */
  CHECK_RC(asyncio_error_group_get(g, 0, &e), 0);
  CHECK(e.error == -EDOM);
  asyncio_taskgroup_free(tg);
  return rc;
}

/* Errors raised while siblings are being cancelled, and the body's own error, are all collected (test_19). */
TEST(taskgroup_errors_during_sibling_cancellation) {
  reset();
  assert_rc(run_main(during_cancel_runner, NULL, NULL), ASYNCIO_EEXCEPTIONGROUP);
  ASSERT_SOFT();
  assert_int_equal(num, 2);
}

static int body_error_runner(void *arg) {
  bool after_sleep = arg != NULL;
  job_t j1 = {1000, 42, 0}, j2 = {2000, 11, 0};
  asyncio_taskgroup_t *tg;
  CHECK_RC(asyncio_taskgroup_enter(&tg), 0);
  CHECK_RC(asyncio_taskgroup_create_task(tg, &t1, job, &j1, NULL), 0);
  CHECK_RC(asyncio_taskgroup_create_task(tg, &t2, job, &j2, NULL), 0);
  if (after_sleep) CHECK_RC(asyncio_sleep(0.1), 0);
  int rc = asyncio_taskgroup_exit(tg, -EDOM); /* 1 / 0 in the body */
  CHECK(asyncio_future_cancelled(t1) && asyncio_future_cancelled(t2));
  int codes[4];
  CHECK(group_codes(tg, codes, 4) == 1 && codes[0] == -EDOM);
  asyncio_error_entry_t e;
  CHECK_RC(asyncio_error_group_get(asyncio_taskgroup_errors(tg), 0, &e), 0);
  CHECK(e.body);
  CHECK(asyncio_task_cancelling(asyncio_current_task()) == 0);
  asyncio_taskgroup_free(tg);
  asyncio_task_free(t1);
  asyncio_task_free(t2);
  return rc;
}

/* The body failing cancels the children and is reported in the error group (test_09, _10). */
TEST(taskgroup_body_error) {
  reset();
  assert_rc(run_main(body_error_runner, NULL, NULL), ASYNCIO_EEXCEPTIONGROUP);
  assert_rc(run_main(body_error_runner, (void *)1, NULL), ASYNCIO_EEXCEPTIONGROUP);
  ASSERT_SOFT();
}

static int swallow_runner(void *arg) {
  (void)arg;
  asyncio_taskgroup_t *tg;
  CHECK_RC(asyncio_taskgroup_enter(&tg), 0);
  int rc = asyncio_sleep(10);
  if (rc == -ECANCELED) {
    num += 10;
    rc = -EILSEQ; /* "raise MyExc" instead of the cancellation */
  }
  rc = asyncio_taskgroup_exit(tg, rc);
  asyncio_taskgroup_free(tg);
  return rc;
}

static int swallow_main(void *arg) {
  (void)arg;
  asyncio_task_t *r;
  CHECK_RC(asyncio_create_task(&r, swallow_runner, NULL, NULL), 0);
  CHECK_RC(asyncio_sleep(0.1), 0);
  asyncio_task_cancel(r, NULL);
  int rc = asyncio_await(r, NULL);
  asyncio_task_free(r);
  return rc;
}

/* A body that turns an outside cancellation into an error gets an error group (test_18). */
TEST(taskgroup_body_replaces_cancellation_with_error) {
  reset();
  assert_rc(run_main(swallow_main, NULL, NULL), ASYNCIO_EEXCEPTIONGROUP);
  ASSERT_SOFT();
  assert_int_equal(num, 10);
}

/* ---- cancellation from outside --------------------------------------------------- */

static int cancel_runner(void *arg) {
  bool body_waits = arg != NULL;
  job_t j = {5000, 1, 0};
  asyncio_taskgroup_t *tg;
  CHECK_RC(asyncio_taskgroup_enter(&tg), 0);
  for (int i = 0; i < 5; i++) CHECK_RC(asyncio_taskgroup_create_task(tg, NULL, job, &j, NULL), 0);
  int rc = 0;
  if (body_waits) {
    rc = asyncio_sleep(10);
    if (rc == -ECANCELED) num += 10;
  }
  rc = asyncio_taskgroup_exit(tg, rc);
  CHECK(asyncio_error_group_count(asyncio_taskgroup_errors(tg)) == 0);
  CHECK(asyncio_task_cancelling(asyncio_current_task()) == 1); /* still cancelled */
  asyncio_taskgroup_free(tg);
  return rc;
}

static int cancel_outer_main(void *arg) {
  asyncio_task_t *r;
  CHECK_RC(asyncio_create_task(&r, cancel_runner, arg, NULL), 0);
  CHECK_RC(asyncio_sleep(0.1), 0);
  CHECK(!asyncio_future_done(r));
  asyncio_task_cancel(r, "test");
  int rc = asyncio_await(r, NULL);
  CHECK(asyncio_future_cancelled(r));
  const char *m = asyncio_future_error_message(r);
  CHECK(m && strcmp(m, "test") == 0);
  asyncio_task_free(r);
  return rc;
}

/* Parent cancelled while exit waits for the children: all cancelled, CancelledError propagates (test_cancellation). */
TEST(taskgroup_parent_cancelled_during_exit) {
  reset();
  assert_rc(run_main(cancel_outer_main, NULL, NULL), -ECANCELED);
  ASSERT_SOFT();
  assert_int_equal(num, 5);
}

/* Parent cancelled while the body waits: body and children cancelled, CancelledError propagates (test_07). */
TEST(taskgroup_parent_cancelled_in_body) {
  reset();
  assert_rc(run_main(cancel_outer_main, (void *)1, NULL), -ECANCELED);
  ASSERT_SOFT();
  assert_int_equal(num, 15);
}

static int cancel_with_errors_runner(void *arg) {
  (void)arg;
  job_t stubborn = {5000, 1, -EPIPE};
  asyncio_taskgroup_t *tg;
  CHECK_RC(asyncio_taskgroup_enter(&tg), 0);
  CHECK_RC(asyncio_taskgroup_create_task(tg, NULL, job, &stubborn, NULL), 0);
  int rc = asyncio_taskgroup_exit(tg, 0);
  CHECK_RC(rc, ASYNCIO_EEXCEPTIONGROUP); /* errors take priority ... */
  CHECK(asyncio_task_cancelling(asyncio_current_task()) == 1);
  CHECK_RC(asyncio_sleep(1), -ECANCELED); /* ... and the cancellation is still delivered */
  asyncio_taskgroup_free(tg);
  return rc;
}

static int cancel_with_errors_main(void *arg) {
  (void)arg;
  asyncio_task_t *r;
  CHECK_RC(asyncio_create_task(&r, cancel_with_errors_runner, NULL, NULL), 0);
  CHECK_RC(asyncio_sleep(0.1), 0);
  asyncio_task_cancel(r, NULL);
  int rc = asyncio_await(r, NULL);
  asyncio_task_free(r);
  return rc;
}

/* An outside cancel plus a child failing during it: the error group wins, the cancellation stays pending. */
TEST(taskgroup_outside_cancel_with_child_errors) {
  reset();
  assert_rc(run_main(cancel_with_errors_main, NULL, NULL), ASYNCIO_EEXCEPTIONGROUP);
  ASSERT_SOFT();
}

static int nested_cancel_runner(void *arg) {
  job_t crash = {(int)(intptr_t)arg, -EDOM, 0};
  asyncio_taskgroup_t *outer, *inner;
  CHECK_RC(asyncio_taskgroup_enter(&outer), 0);
  CHECK_RC(asyncio_taskgroup_enter(&inner), 0);
  for (int i = 0; i < 5; i++) CHECK_RC(asyncio_taskgroup_create_task(inner, NULL, job, &crash, NULL), 0);
  int rc = asyncio_taskgroup_exit(inner, asyncio_sleep(10));
  rc = asyncio_taskgroup_exit(outer, rc);
  asyncio_taskgroup_free(inner);
  asyncio_taskgroup_free(outer);
  return rc;
}

static int nested_cancel_main(void *arg) {
  asyncio_task_t *r;
  CHECK_RC(asyncio_create_task(&r, nested_cancel_runner, arg, NULL), 0);
  CHECK_RC(asyncio_sleep(0.1), 0);
  asyncio_task_cancel(r, NULL);
  int rc = asyncio_await(r, NULL);
  asyncio_task_free(r);
  return rc;
}

/*
 * Nested groups, the parent cancelled while the inner children are about to
 * fail (test_11): cancelled first, the children never fail and
 * CancelledError propagates; if they fail in the same tick as the cancel,
 * their errors win.
 */
TEST(taskgroup_nested_cancelled) {
  reset();
  assert_rc(run_main(nested_cancel_main, (void *)(intptr_t)150, NULL), -ECANCELED);
  assert_int_equal(num, 5);
  reset();
  assert_rc(run_main(nested_cancel_main, (void *)(intptr_t)100, NULL), ASYNCIO_EEXCEPTIONGROUP);
  assert_int_equal(num, 0);
  ASSERT_SOFT();
}

static int crash_after(void *arg) {
  int rc = asyncio_sleep((double)(intptr_t)arg / 1000.0);
  return rc == -ECANCELED ? rc : -ERANGE; /* the slower one is cancelled first */
}

static int nested_errors_runner(void *arg) {
  bool inner_first = arg != NULL;
  asyncio_taskgroup_t *g1, *g2;
  CHECK_RC(asyncio_taskgroup_enter(&g1), 0);
  CHECK_RC(asyncio_taskgroup_create_task(g1, NULL, crash_after,
                                         (void *)(intptr_t)(inner_first ? 10000 : 100), NULL),
           0);
  CHECK_RC(asyncio_taskgroup_enter(&g2), 0);
  CHECK_RC(asyncio_taskgroup_create_task(g2, NULL, crash_after,
                                         (void *)(intptr_t)(inner_first ? 100 : 10000), NULL),
           0);
  int rc = asyncio_taskgroup_exit(g2, 0);
  rc = asyncio_taskgroup_exit(g1, rc);
  int codes[4] = {0};
  size_t n = group_codes(g1, codes, 4);
  CHECK(n == 1);
  /* inner first: the outer group reports the inner group's error group as the body's */
  CHECK(codes[0] == (inner_first ? ASYNCIO_EEXCEPTIONGROUP : -ERANGE));
  if (inner_first) {
    CHECK(group_codes(g2, codes, 4) == 1 && codes[0] == -ERANGE);
  } else {
    CHECK(asyncio_error_group_count(asyncio_taskgroup_errors(g2)) == 0);
  }
  asyncio_taskgroup_free(g2);
  asyncio_taskgroup_free(g1);
  return rc;
}

/* Nested groups: an error in either surfaces as the outer group's error group (test_13, _14). */
TEST(taskgroup_nested_errors) {
  reset();
  assert_rc(run_main(nested_errors_runner, NULL, NULL), ASYNCIO_EEXCEPTIONGROUP);
  assert_rc(run_main(nested_errors_runner, (void *)1, NULL), ASYNCIO_EEXCEPTIONGROUP);
  ASSERT_SOFT();
}

static int tg_timeout_main(void *arg) {
  (void)arg;
  job_t j = {5000, 1, 0};
  asyncio_timeout_t *cm;
  CHECK_RC(asyncio_timeout_enter(&cm, 1), 0);
  asyncio_taskgroup_t *tg;
  CHECK_RC(asyncio_taskgroup_enter(&tg), 0);
  for (int i = 0; i < 3; i++) CHECK_RC(asyncio_taskgroup_create_task(tg, NULL, job, &j, NULL), 0);
  int rc = asyncio_taskgroup_exit(tg, 0);
  CHECK_RC(rc, -ECANCELED); /* the deadline is an outside cancellation for the group */
  CHECK(now() == 1);
  rc = asyncio_timeout_exit(cm, rc);
  asyncio_taskgroup_free(tg);
  asyncio_timeout_free(cm);
  CHECK(asyncio_task_cancelling(asyncio_current_task()) == 0);
  return rc;
}

/* A timeout scope around a group: the deadline cancels the children and becomes TimeoutError. */
TEST(taskgroup_inside_timeout) {
  reset();
  assert_rc(run_main(tg_timeout_main, NULL, NULL), -ETIMEDOUT);
  ASSERT_SOFT();
  assert_int_equal(num, 3);
}

/* ---- create_task refused ------------------------------------------------------------ */

static int never_run(void *arg) {
  (void)arg;
  flag_b = 1;
  return 0;
}

static int refused_runner(void *arg) {
  (void)arg;
  job_t crash = {100, -EDOM, 0};
  asyncio_taskgroup_t *tg;
  CHECK_RC(asyncio_taskgroup_enter(&tg), 0);
  CHECK_RC(asyncio_taskgroup_create_task(tg, NULL, job, &crash, NULL), 0);
  int rc = asyncio_sleep(10);
  CHECK_RC(rc, -ECANCELED);
  asyncio_task_t *t = (asyncio_task_t *)&t;
  /* "TaskGroup is shutting down" */
  CHECK_RC(asyncio_taskgroup_create_task(tg, &t, never_run, NULL, NULL), ASYNCIO_EINVALIDSTATE);
  CHECK(t == NULL);
  rc = asyncio_taskgroup_exit(tg, rc);
  /* "TaskGroup is finished" */
  CHECK_RC(asyncio_taskgroup_create_task(tg, NULL, never_run, NULL, NULL), ASYNCIO_EINVALIDSTATE);
  asyncio_taskgroup_free(tg);
  /* a group that exited normally refuses too */
  CHECK_RC(asyncio_taskgroup_enter(&tg), 0);
  CHECK_RC(asyncio_taskgroup_exit(tg, 0), 0);
  CHECK_RC(asyncio_taskgroup_create_task(tg, NULL, never_run, NULL, NULL), ASYNCIO_EINVALIDSTATE);
  asyncio_taskgroup_free(tg);
  CHECK_RC(asyncio_sleep(1), 0);
  return rc;
}

/* create_task is refused once the group is shutting down or finished; the coroutine never runs. */
TEST(taskgroup_create_task_refused) {
  reset();
  assert_rc(run_main(refused_runner, NULL, NULL), ASYNCIO_EEXCEPTIONGROUP);
  ASSERT_SOFT();
  assert_int_equal(flag_b, 0);
}

static int spawner_child(void *arg) {
  CHECK_RC(asyncio_sleep(0.5), 0);
  job_t *j = arg;
  /* a child adds a sibling while the parent waits in exit */
  CHECK_RC(asyncio_taskgroup_create_task(shared_tg, NULL, job, j, NULL), 0);
  return 0;
}

static int spawn_during_exit_main(void *arg) {
  (void)arg;
  job_t j = {1000, 0, 0};
  CHECK_RC(asyncio_taskgroup_enter(&shared_tg), 0);
  CHECK_RC(asyncio_taskgroup_create_task(shared_tg, NULL, spawner_child, &j, NULL), 0);
  CHECK_RC(asyncio_taskgroup_exit(shared_tg, 0), 0);
  CHECK(now() == 1.5); /* waited for the late sibling too */
  CHECK(nstarted == 1);
  asyncio_taskgroup_free(shared_tg);
  return 0;
}

/* Children may add siblings while exit waits; exit waits for them as well. */
TEST(taskgroup_child_spawns_sibling_during_exit) {
  reset();
  assert_rc(run_main(spawn_during_exit_main, NULL, NULL), 0);
  ASSERT_SOFT();
}

/* ---- TaskGroup.cancel ------------------------------------------------------------------ */

static int tg_canceller(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_sleep(0.2), 0);
  CHECK_RC(asyncio_taskgroup_cancel(shared_tg), 0);
  CHECK_RC(asyncio_taskgroup_cancel(shared_tg), 0); /* idempotent */
  return 0;
}

static int tg_cancel_main(void *arg) {
  (void)arg;
  job_t j = {5000, 1, 0};
  CHECK_RC(asyncio_taskgroup_enter(&shared_tg), 0);
  CHECK_RC(asyncio_taskgroup_create_task(shared_tg, NULL, tg_canceller, NULL, NULL), 0);
  CHECK_RC(asyncio_taskgroup_create_task(shared_tg, NULL, job, &j, NULL), 0);
  int rc = asyncio_sleep(10);
  CHECK_RC(rc, -ECANCELED);
  rc = asyncio_taskgroup_exit(shared_tg, rc);
  CHECK(now() == 0.2);
  CHECK(asyncio_task_cancelling(asyncio_current_task()) == 0);
  CHECK_RC(asyncio_taskgroup_cancel(shared_tg), 0); /* after exit: no-op */
  CHECK_RC(asyncio_sleep(1), 0);
  asyncio_taskgroup_free(shared_tg);
  return rc;
}

/* TaskGroup.cancel() (3.15): children and body cancelled, exit returns without CancelledError. */
TEST(taskgroup_cancel) {
  reset();
  assert_rc(run_main(tg_cancel_main, NULL, NULL), 0);
  ASSERT_SOFT();
  assert_int_equal(num, 1);
}

static int eager_cancels_group(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_taskgroup_cancel(shared_tg), 0); /* during its eager run */
  int rc = asyncio_sleep(10);
  if (rc == -ECANCELED) num++;
  return rc;
}

static int eager_cancel_group_main(void *arg) {
  (void)arg;
  asyncio_task_options_t o = {0};
  o.eager = true;
  CHECK_RC(asyncio_taskgroup_enter(&shared_tg), 0);
  asyncio_task_t *t;
  CHECK_RC(asyncio_taskgroup_create_task(shared_tg, &t, eager_cancels_group, NULL, &o), 0);
  /* gh-155418: it shut the group down before it was a member: cancelled now */
  CHECK(asyncio_task_cancelling(t) == 1);
  int rc = asyncio_sleep(1);
  CHECK_RC(rc, -ECANCELED);
  rc = asyncio_taskgroup_exit(shared_tg, rc);
  CHECK(now() == 0);
  CHECK(asyncio_future_cancelled(t));
  asyncio_taskgroup_free(shared_tg);
  asyncio_task_free(t);
  return rc;
}

/* An eager child cancelling its group while it starts is itself cancelled (gh-155418). */
TEST(taskgroup_eager_child_cancels_group) {
  reset();
  assert_rc(run_main(eager_cancel_group_main, NULL, NULL), 0);
  ASSERT_SOFT();
  assert_int_equal(num, 1);
}

static char reported[160];
static int reported_error;

static void capture_handler(asyncio_loop_t *loop, const asyncio_error_context_t *c, void *ud) {
  (void)loop;
  (void)ud;
  snprintf(reported, sizeof reported, "%s", c->message);
  reported_error = c->error;
}

static int orphan_parent(void *arg) {
  (void)arg;
  static job_t crash = {100, -EDOM, 0};
  CHECK_RC(asyncio_taskgroup_enter(&shared_tg), 0);
  CHECK_RC(asyncio_taskgroup_create_task(shared_tg, NULL, job, &crash, NULL), 0);
  return 0; /* misuse: returns without exiting the group */
}

/* A child failing after its parent returned without exit is reported, not used to cancel a dead task. */
TEST(taskgroup_child_fails_after_parent_done) {
  reset();
  reported[0] = 0;
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_ok(asyncio_loop_set_exception_handler(loop, capture_handler, NULL));
  asyncio_task_t *p;
  assert_ok(asyncio_loop_create_task(loop, &p, orphan_parent, NULL, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, p, NULL), 0);
  assert_rc(asyncio_taskgroup_free(shared_tg), -EBUSY); /* the child still runs */
  asyncio_task_t *all[4];
  assert_rc(asyncio_all_tasks(loop, all, 4), 1);
  asyncio_task_t *child = asyncio_future_ref(all[0]);
  assert_rc(asyncio_loop_run_until_complete(loop, child, NULL), -EDOM);
  run_once(loop); /* the group's done callback */
  ASSERT_SOFT();
  assert_non_null(strstr(reported, "parent task is already done"));
  assert_int_equal(reported_error, -EDOM);
  assert_int_equal(asyncio_error_group_count(asyncio_taskgroup_errors(shared_tg)), 1);
  assert_ok(asyncio_taskgroup_free(shared_tg));
  assert_ok(asyncio_task_free(child));
  assert_ok(asyncio_task_free(p));
  assert_ok(asyncio_loop_close(loop));
}

static int parent_stuck(void *arg) {
  (void)arg;
  static job_t slow = {10000, 0, 0};
  CHECK_RC(asyncio_taskgroup_enter(&shared_tg), 0);
  CHECK_RC(asyncio_taskgroup_create_task(shared_tg, NULL, job, &slow, NULL), 0);
  return asyncio_sleep(100); /* never resumed: the loop is closed under it */
}

/* A group whose loop was closed with its children pending can still be freed. */
TEST(taskgroup_free_after_loop_close) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_ok(asyncio_loop_set_exception_handler(loop, capture_handler, NULL));
  asyncio_task_t *p;
  assert_ok(asyncio_loop_create_task(loop, &p, parent_stuck, NULL, NULL));
  run_once(loop);
  run_once(loop);
  assert_int_equal(nstarted, 1);
  assert_rc(asyncio_taskgroup_free(shared_tg), -EBUSY);
  assert_ok(asyncio_loop_close(loop)); /* "Task was destroyed but it is pending!" */
  assert_ok(asyncio_taskgroup_free(shared_tg));
  assert_ok(asyncio_task_free(p));
  ASSERT_SOFT();
}

/* ---- misuse ----------------------------------------------------------------------------- */

static int other_exit(void *arg) {
  CHECK_RC(asyncio_taskgroup_exit((asyncio_taskgroup_t *)arg, 0), -EPERM);
  return 0;
}

static int misuse_main(void *arg) {
  (void)arg;
  job_t j = {1000, 0, 0};
  asyncio_taskgroup_t *tg;
  CHECK_RC(asyncio_taskgroup_enter(NULL), -EINVAL);
  CHECK_RC(asyncio_taskgroup_enter(&tg), 0);
  CHECK_RC(asyncio_taskgroup_create_task(NULL, NULL, job, &j, NULL), -EINVAL);
  CHECK_RC(asyncio_taskgroup_create_task(tg, NULL, NULL, NULL, NULL), -EINVAL);
  CHECK_RC(asyncio_taskgroup_exit(NULL, 0), -EINVAL);
  CHECK_RC(asyncio_taskgroup_cancel(NULL), -EINVAL);
  CHECK_RC(asyncio_taskgroup_create_task(tg, NULL, job, &j, NULL), 0);
  CHECK_RC(asyncio_taskgroup_free(tg), -EBUSY); /* a child is pending */
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, other_exit, tg, NULL), 0);
  CHECK_RC(asyncio_await(t, NULL), 0);
  asyncio_task_free(t);
  CHECK_RC(asyncio_taskgroup_exit(tg, 0), 0);
  CHECK_RC(asyncio_taskgroup_exit(tg, 0), ASYNCIO_EINVALIDSTATE); /* exit twice */
  CHECK(asyncio_taskgroup_errors(NULL) == NULL);
  CHECK(asyncio_error_group_count(NULL) == 0);
  asyncio_error_entry_t e;
  CHECK_RC(asyncio_error_group_get(NULL, 0, &e), -EINVAL);
  CHECK_RC(asyncio_error_group_get(asyncio_taskgroup_errors(tg), 0, NULL), -EINVAL);
  CHECK_RC(asyncio_error_group_get(asyncio_taskgroup_errors(tg), 0, &e), -ERANGE);
  CHECK_RC(asyncio_taskgroup_free(tg), 0);
  CHECK_RC(asyncio_taskgroup_free(NULL), 0);
  return 0;
}

/* Misuse gives errors: NULLs, free while children run (-EBUSY), exit from another task, exit twice. */
TEST(taskgroup_wrong_state) {
  reset();
  assert_rc(run_main(misuse_main, NULL, NULL), 0);
  ASSERT_SOFT();
}

static void enter_in_callback(void *arg) {
  (void)arg;
  asyncio_taskgroup_t *tg = (asyncio_taskgroup_t *)&tg;
  CHECK_RC(asyncio_taskgroup_enter(&tg), ASYNCIO_ENOTASK);
  CHECK(tg == NULL);
  flag_a = 1;
}

/* enter() outside a task (no loop, or a plain callback) is ASYNCIO_ENOTASK. */
TEST(taskgroup_enter_outside_task) {
  reset();
  asyncio_taskgroup_t *tg = (asyncio_taskgroup_t *)&tg;
  assert_rc(asyncio_taskgroup_enter(&tg), ASYNCIO_ENOTASK);
  assert_null(tg);
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_ok(asyncio_loop_call_soon(loop, enter_in_callback, NULL, NULL));
  run_once(loop);
  assert_ok(asyncio_loop_close(loop));
  ASSERT_SOFT();
  assert_int_equal(flag_a, 1);
}

static int enomem_main(void *arg) {
  (void)arg;
  job_t j = {100, 0, 0};
  asyncio_taskgroup_t *tg = NULL;
  harness_fail_alloc_after(1);
  CHECK_RC(asyncio_taskgroup_enter(&tg), -ENOMEM);
  CHECK(tg == NULL);
  CHECK_RC(asyncio_taskgroup_enter(&tg), 0);
  /* every allocation create_task makes, failed in turn: nothing is created */
  for (long n = 1; n < 10; n++) {
    harness_fail_alloc_after(n);
    int rc = asyncio_taskgroup_create_task(tg, NULL, never_run, NULL, NULL);
    harness_fail_alloc_after(0);
    if (rc == 0) break;
    CHECK_RC(rc, -ENOMEM);
  }
  CHECK_RC(asyncio_taskgroup_create_task(tg, NULL, job, &j, NULL), 0);
  /* exit's waiter cannot be allocated: it falls back to yielding */
  harness_fail_alloc_after(1);
  int rc = asyncio_taskgroup_exit(tg, 0);
  harness_fail_alloc_after(0);
  CHECK_RC(rc, 0);
  CHECK(now() == 0.1);
  CHECK(nstarted == 1);
  asyncio_taskgroup_free(tg);
  return 0;
}

/* Allocation failures: enter and create_task fail cleanly; exit still waits correctly. */
TEST(taskgroup_enomem) {
  reset();
  assert_rc(run_main(enomem_main, NULL, NULL), 0);
  ASSERT_SOFT();
  assert_true(flag_b == 0 || flag_b == 1); /* never_run ran at most once, when it succeeded */
}

#define MANY 2000

static int many_main(void *arg) {
  (void)arg;
  static job_t jobs[MANY];
  asyncio_task_options_t o = {0};
  o.stack_size = ASYNCIO_MIN_STACK_SIZE;
  asyncio_taskgroup_t *tg;
  CHECK_RC(asyncio_taskgroup_enter(&tg), 0);
  for (int i = 0; i < MANY; i++) {
    jobs[i].ms = 10 + i % 100;
    jobs[i].rc = (i % 500 == 7) ? -(1000 + i) : 0; /* four failures, at different times */
    jobs[i].on_cancel = 0;
    CHECK_RC(asyncio_taskgroup_create_task(tg, NULL, job, &jobs[i], &o), 0);
  }
  int rc = asyncio_taskgroup_exit(tg, 0);
  asyncio_error_group_t *g = asyncio_taskgroup_errors(tg);
  size_t n = asyncio_error_group_count(g);
  CHECK(n >= 1 && n <= 4);
  for (size_t i = 0; i < n; i++) {
    asyncio_error_entry_t e;
    CHECK_RC(asyncio_error_group_get(g, i, &e), 0);
    CHECK(e.error <= -1000 && (-e.error - 1000) % 500 == 7);
  }
  CHECK(num + (int)n + 0 <= MANY);
  asyncio_taskgroup_free(tg);
  return rc;
}

/* Thousands of children, a few failing: the first failure cancels the rest; no leak. */
TEST(taskgroup_many_children) {
  reset();
  assert_rc(run_main(many_main, NULL, NULL), ASYNCIO_EEXCEPTIONGROUP);
  ASSERT_SOFT();
}

static int churn_main(void *arg) {
  (void)arg;
  job_t j = {1, 0, 0};
  asyncio_taskgroup_t *tg;
  CHECK_RC(asyncio_taskgroup_enter(&tg), 0);
  long before = 0;
  for (int i = 0; i < 3000; i++) {
    CHECK_RC(asyncio_taskgroup_create_task(tg, NULL, job, &j, NULL), 0);
    CHECK_RC(asyncio_sleep(0.002), 0);
    if (i == 100) before = harness_live_allocs();
  }
  /* a long-lived group keeps nothing for finished children */
  CHECK(harness_live_allocs() <= before);
  CHECK_RC(asyncio_taskgroup_exit(tg, 0), 0);
  asyncio_taskgroup_free(tg);
  return 0;
}

/* A supervisor group spawning a child at a time holds constant memory. */
TEST(taskgroup_long_lived_constant_memory) {
  reset();
  assert_rc(run_main(churn_main, NULL, NULL), 0);
  ASSERT_SOFT();
}

/* ---- eager children (eager_start, 3.12) ---------------------------------------------------- */

static asyncio_task_t *eager_seen;

static int eager_fail_now(void *arg) {
  (void)arg;
  eager_seen = asyncio_current_task();
  return -EIO;
}

static int eager_fail_runner(void *arg) {
  (void)arg;
  asyncio_task_options_t o = {0};
  o.eager = true;
  asyncio_taskgroup_t *tg;
  CHECK_RC(asyncio_taskgroup_enter(&tg), 0);
  asyncio_task_t *t;
  CHECK_RC(asyncio_taskgroup_create_task(tg, &t, eager_fail_now, NULL, &o), 0);
  CHECK(eager_seen == t);                   /* current_task() was the child */
  CHECK(asyncio_current_task() == main_task); /* and is the parent again */
  CHECK(asyncio_future_done(t));             /* finished inside create_task */
  /* gh-128550: the parent is not cancelled inside create_task */
  CHECK(asyncio_task_cancelling(asyncio_current_task()) == 0);
  flag_a = 1; /* code after create_task runs */
  int rc = asyncio_sleep(1);
  CHECK_RC(rc, -ECANCELED); /* cancelled on the next iteration */
  CHECK(now() == 0);
  rc = asyncio_taskgroup_exit(tg, rc);
  int codes[2];
  CHECK(group_codes(tg, codes, 2) == 1 && codes[0] == -EIO);
  asyncio_taskgroup_free(tg);
  asyncio_task_free(t);
  return rc;
}

/* An eager child failing at once: reported through the callback, one iteration later (gh-128550). */
TEST(taskgroup_eager_child_fails_immediately) {
  reset();
  assert_rc(run_main(eager_fail_runner, NULL, NULL), ASYNCIO_EEXCEPTIONGROUP);
  ASSERT_SOFT();
  assert_int_equal(flag_a, 1);
}

static int eager_steps(void *arg) {
  (void)arg;
  flag_b = 1;
  eager_seen = asyncio_current_task();
  CHECK_RC(asyncio_sleep(0), 0);
  flag_b = 2;
  return 5;
}

static int eager_ok_runner(void *arg) {
  (void)arg;
  asyncio_task_options_t o = {0};
  o.eager = true;
  asyncio_taskgroup_t *tg;
  CHECK_RC(asyncio_taskgroup_enter(&tg), 0);
  asyncio_task_t *t;
  eager_seen = NULL;
  CHECK_RC(asyncio_taskgroup_create_task(tg, &t, eager_steps, NULL, &o), 0);
  CHECK(flag_b == 1);      /* ran up to its first suspension ... */
  CHECK(eager_seen == t);  /* ... as the current task */
  CHECK(!asyncio_future_done(t));
  CHECK_RC(asyncio_taskgroup_exit(tg, 0), 0);
  CHECK(flag_b == 2);
  CHECK(asyncio_future_result(t, NULL) == 5);
  asyncio_taskgroup_free(tg);
  asyncio_task_free(t);
  return 0;
}

/* An eager child that suspends: it ran synchronously up to the suspension, the group waits for the rest. */
TEST(taskgroup_eager_child_suspends) {
  reset();
  assert_rc(run_main(eager_ok_runner, NULL, NULL), 0);
  ASSERT_SOFT();
  assert_int_equal(flag_b, 2);
}

static void eager_from_callback(void *arg) {
  asyncio_task_options_t o = {0};
  o.eager = true;
  asyncio_task_t **out = arg;
  CHECK(asyncio_current_task() == NULL);
  CHECK_RC(asyncio_create_task(out, eager_fail_now, NULL, &o), 0);
  CHECK(eager_seen == *out);               /* ran inside create_task, as the current task */
  CHECK(asyncio_current_task() == NULL);   /* back in a plain callback */
  CHECK(asyncio_future_done(*out));
}

static int self_cancel_eager(void *arg) {
  (void)arg;
  asyncio_task_cancel(asyncio_current_task(), NULL);
  flag_a = 1; /* a request only: the eager run goes on */
  int rc = asyncio_sleep(0); /* the first suspension point delivers it */
  flag_b = rc == -ECANCELED;
  return rc;
}

static int eager_cancel_main(void *arg) {
  (void)arg;
  asyncio_task_options_t o = {0};
  o.eager = true;
  asyncio_task_t *c;
  CHECK_RC(asyncio_create_task(&c, self_cancel_eager, NULL, &o), 0);
  CHECK(flag_a == 1 && flag_b == 0); /* suspended in sleep(0), not yet delivered */
  CHECK(!asyncio_future_done(c));
  CHECK(asyncio_task_cancelling(c) == 1);
  CHECK_RC(asyncio_await(c, NULL), -ECANCELED);
  CHECK(flag_b == 1);
  CHECK(asyncio_future_cancelled(c));
  CHECK(asyncio_task_cancelling(asyncio_current_task()) == 0);
  asyncio_task_free(c);
  return 0;
}

/* Eager start from a plain callback (no current task), and an eager task cancelling itself during its eager run. */
TEST(task_eager_from_callback_and_self_cancel) {
  reset();
  eager_seen = NULL;
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *t = NULL;
  assert_ok(asyncio_loop_call_soon(loop, eager_from_callback, &t, NULL));
  run_once(loop);
  ASSERT_SOFT();
  assert_non_null(t);
  assert_rc(asyncio_future_result(t, NULL), -EIO);
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
  assert_rc(run_main(eager_cancel_main, NULL, NULL), 0);
  ASSERT_SOFT();
}
