/*
 * test_runners.c - asyncio.run() and asyncio.Runner (include/asyncio/runners.h).
 *
 * Python origin: Lib/asyncio/runners.py (Runner.run, Runner.close,
 * Runner._on_sigint, _cancel_all_tasks) and Lib/test/test_asyncio/test_runners.py.
 *
 * Assertions inside tasks are soft (CHECK); the test body asserts them after
 * the run returns.
 */
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


static int value_a;
static int step;

static void reset(void) {
  soft_fail[0] = 0;
  step = 0;
}

static const asyncio_loop_options_t virtual_opts = {ASYNCIO_CLOCK_VIRTUAL, 0, 0, 0.0};
static const asyncio_run_options_t virtual_run = {&virtual_opts, false};

static int return_arg(void *arg) { return (int)(intptr_t)arg; }

static int check_loop_and_return(void *arg) {
  CHECK(asyncio_current_task() != NULL);
  CHECK(asyncio_get_running_loop() != NULL);
  return (int)(intptr_t)arg;
}

/* asyncio.run(main()) returns main's result, or raises its exception. */
TEST(run_returns_main_result_or_error) {
  reset();
  assert_rc(asyncio_run(check_loop_and_return, (void *)42, NULL), 42);
  assert_rc(asyncio_run(check_loop_and_return, (void *)0, NULL), 0);
  assert_rc(asyncio_run(return_arg, (void *)(intptr_t)-EIO, NULL), -EIO);
  ASSERT_SOFT();
  assert_null(asyncio_get_running_loop());
}

static char main_name[64];

static int record_name(void *arg) {
  (void)arg;
  const char *n = asyncio_task_get_name(asyncio_current_task());
  snprintf(main_name, sizeof main_name, "%s", n ? n : "(null)");
  return 0;
}

/* asyncio.run names the main task like any other task: Task-<n>. */
TEST(run_main_task_default_name) {
  main_name[0] = 0;
  assert_rc(asyncio_run(record_name, NULL, NULL), 0);
  assert_int_equal(strncmp(main_name, "Task-", 5), 0);
}

static int cancel_self(void *arg) {
  (void)arg;
  asyncio_task_cancel(asyncio_current_task(), NULL);
  return asyncio_sleep(1.0);
}

/* A main that ends cancelled makes run() raise CancelledError (-ECANCELED), not KeyboardInterrupt. */
TEST(run_returns_ecanceled) {
  assert_rc(asyncio_run(cancel_self, NULL, NULL), -ECANCELED);
  assert_rc(asyncio_run(return_arg, (void *)(intptr_t)-ECANCELED, NULL), -ECANCELED);
}

static int set_value_main(void *arg) {
  CHECK_RC(asyncio_sleep(0), 0);
  CHECK_RC(asyncio_task_set_result_value(arg), 0);
  return 2;
}

/* asyncio_run_value(): main's pointer result comes back with its result. */
TEST(run_value_pointer_result) {
  reset();
  void *v = NULL;
  assert_rc(asyncio_run_value(set_value_main, &value_a, NULL, &v), 2);
  ASSERT_SOFT();
  assert_ptr_equal(v, &value_a);
}

static int long_sleep(void *arg) {
  (void)arg;
  return asyncio_sleep(3600.0);
}

static int virtual_main(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_sleep(3600.0), 0);
  CHECK(asyncio_loop_time(asyncio_get_running_loop()) == 3600.0);
  return 1;
}

/* run(options->loop) creates its loop with those options (here the virtual clock). */
TEST(run_with_loop_options) {
  reset();
  assert_rc(asyncio_run(virtual_main, NULL, &virtual_run), 1);
  ASSERT_SOFT();
  (void)long_sleep;
}

static int cleanup_saw;
static int cleanup_finished;
static int late_rc;

static int background(void *arg) {
  (void)arg;
  int rc = asyncio_sleep(1000.0);
  cleanup_saw = rc;
  /* cleanup code may still await (gather waits for the cancelled tasks) */
  CHECK_RC(asyncio_sleep(0), 0);
  cleanup_finished = 1;
  return rc;
}

static int late_sleeper(void *arg) {
  (void)arg;
  late_rc = asyncio_sleep(1000.0);
  return late_rc;
}

static int main_leaving_tasks(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_create_task(NULL, background, NULL, NULL), 0);
  CHECK_RC(asyncio_sleep(0), 0); /* let it start and suspend */
  CHECK_RC(asyncio_create_task(NULL, late_sleeper, NULL, NULL), 0); /* created in main's last step */
  return 3;
}

/*
 * _cancel_all_tasks(): when main returns, every task still pending is
 * cancelled and run to completion; its cleanup code sees CancelledError.
 */
TEST(run_cancels_pending_tasks_at_end) {
  reset();
  cleanup_saw = 12345;
  cleanup_finished = 0;
  late_rc = 12345;
  assert_rc(asyncio_run(main_leaving_tasks, NULL, NULL), 3);
  ASSERT_SOFT();
  assert_int_equal(cleanup_saw, -ECANCELED);
  assert_int_equal(cleanup_finished, 1);
  /* either cancelled before its first step (body never ran) or cancelled in its sleep */
  assert_true(late_rc == 12345 || late_rc == -ECANCELED);
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

static int fails_when_cancelled(void *arg) {
  (void)arg;
  int rc = asyncio_sleep(1000.0);
  return rc == -ECANCELED ? -EIO : 0;
}

static int main_with_failing_leftover(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_loop_set_exception_handler(asyncio_get_running_loop(), capture_handler, NULL), 0);
  CHECK_RC(asyncio_create_task(NULL, fails_when_cancelled, NULL, NULL), 0);
  CHECK_RC(asyncio_sleep(0), 0);
  return 0;
}

/*
 * _cancel_all_tasks(): a leftover task that ends with an exception instead
 * of cancelling is reported once ("unhandled exception during asyncio.run()
 * shutdown") with its error.
 */
TEST(run_reports_leftover_task_error) {
  reset();
  eh_calls = eh_error = 0;
  eh_message[0] = 0;
  assert_rc(asyncio_run(main_with_failing_leftover, NULL, NULL), 0);
  ASSERT_SOFT();
  assert_int_equal(eh_calls, 1);
  assert_int_equal(eh_error, -EIO);
  assert_true(eh_message[0] != 0);
}

static int nested_ran;

static int nested_body(void *arg) {
  (void)arg;
  nested_ran = 1;
  return 0;
}

static int main_runs_nested(void *arg) {
  (void)arg;
  /* "asyncio.run() cannot be called from a running event loop" */
  CHECK_RC(asyncio_run(nested_body, NULL, NULL), ASYNCIO_ERUNNING);
  asyncio_runner_t *r = NULL;
  CHECK_RC(asyncio_runner_new(&r, NULL), 0);
  if (r) {
    /* Runner.run(): "cannot be called from a running event loop" */
    CHECK_RC(asyncio_runner_run(r, nested_body, NULL, NULL), ASYNCIO_ERUNNING);
    CHECK_RC(asyncio_runner_free(r), 0);
  }
  return 0;
}

/* run() / Runner.run() inside a running loop fail with ASYNCIO_ERUNNING and run nothing. */
TEST(run_inside_running_loop) {
  reset();
  nested_ran = 0;
  assert_rc(asyncio_run(main_runs_nested, NULL, NULL), 0);
  ASSERT_SOFT();
  assert_int_equal(nested_ran, 0);
}

/* ---- Runner ------------------------------------------------------------------ */

static asyncio_loop_t *runner_loop;
static int bg_done;

static int bg_half_second(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_sleep(0.5), 0);
  bg_done = 1;
  return 0;
}

static int first_run(void *arg) {
  (void)arg;
  CHECK(asyncio_get_running_loop() == runner_loop);
  CHECK_RC(asyncio_create_task(NULL, bg_half_second, NULL, NULL), 0);
  CHECK_RC(asyncio_task_set_result_value(&value_a), 0);
  return 10;
}

static int second_run(void *arg) {
  (void)arg;
  asyncio_task_t *buf[4];
  CHECK(asyncio_get_running_loop() == runner_loop);
  CHECK(asyncio_all_tasks(NULL, buf, 4) == 2); /* this one and the leftover from the first run */
  CHECK(bg_done == 0);
  CHECK_RC(asyncio_sleep(1.0), 0);
  CHECK(bg_done == 1);
  return 20;
}

/* asyncio.Runner: one loop for several run() calls; other tasks stay pending between runs. */
TEST(runner_reused_for_several_runs) {
  reset();
  bg_done = 0;
  asyncio_runner_t *r = NULL;
  assert_ok(asyncio_runner_new(&r, &virtual_run));
  runner_loop = asyncio_runner_get_loop(r);
  assert_non_null(runner_loop);
  assert_ptr_equal(asyncio_runner_get_loop(r), runner_loop);
  void *v = NULL;
  assert_rc(asyncio_runner_run(r, first_run, NULL, &v), 10);
  assert_ptr_equal(v, &value_a);
  assert_int_equal(bg_done, 0);
  assert_rc(asyncio_runner_run(r, second_run, NULL, NULL), 20);
  assert_rc(asyncio_runner_run(r, return_arg, (void *)(intptr_t)-EPIPE, NULL), -EPIPE);
  ASSERT_SOFT();
  assert_ptr_equal(asyncio_runner_get_loop(r), runner_loop);
  assert_false(asyncio_loop_is_running(runner_loop));
  assert_ok(asyncio_runner_free(r));
}

static int runner_main_records_loop(void *arg) {
  (void)arg;
  runner_loop = asyncio_get_running_loop();
  return 0;
}

/* Runner.get_loop() creates the loop lazily; the first run() does too and uses it. */
TEST(runner_lazy_loop) {
  asyncio_runner_t *r = NULL;
  assert_ok(asyncio_runner_new(&r, NULL));
  runner_loop = NULL;
  assert_rc(asyncio_runner_run(r, runner_main_records_loop, NULL, NULL), 0);
  assert_non_null(runner_loop);
  assert_ptr_equal(asyncio_runner_get_loop(r), runner_loop);
  assert_ok(asyncio_runner_free(r));
  /* a runner that never ran closes cleanly */
  assert_ok(asyncio_runner_new(&r, NULL));
  assert_ok(asyncio_runner_free(r));
  assert_rc(asyncio_runner_new(NULL, NULL), -EINVAL);
  assert_rc(asyncio_runner_free(NULL), -EINVAL);
  assert_rc(asyncio_runner_close(NULL), -EINVAL);
}

/* Runner.close(): a closed runner refuses to run ("Runner is closed") and has no loop. */
TEST(runner_closed_refuses_run) {
  asyncio_runner_t *r = NULL;
  assert_ok(asyncio_runner_new(&r, NULL));
  assert_rc(asyncio_runner_run(r, runner_main_records_loop, NULL, NULL), 0);
  asyncio_loop_t *loop = asyncio_runner_get_loop(r);
  assert_non_null(loop);
  assert_ok(asyncio_runner_close(r));
  assert_ok(asyncio_runner_close(r)); /* twice is a no-op */
  assert_rc(asyncio_runner_run(r, runner_main_records_loop, NULL, NULL), ASYNCIO_ECLOSED);
  assert_null(asyncio_runner_get_loop(r));
  assert_ok(asyncio_runner_free(r));
}

static int leave_sleeper(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_create_task(NULL, background, NULL, NULL), 0);
  CHECK_RC(asyncio_sleep(0), 0);
  return 0;
}

/* Runner.close() cancels the tasks still pending and waits for their cleanup. */
TEST(runner_close_cancels_pending) {
  reset();
  cleanup_saw = 12345;
  cleanup_finished = 0;
  asyncio_runner_t *r = NULL;
  assert_ok(asyncio_runner_new(&r, &virtual_run));
  assert_rc(asyncio_runner_run(r, leave_sleeper, NULL, NULL), 0);
  assert_int_equal(cleanup_saw, 12345); /* still pending between runs */
  assert_ok(asyncio_runner_close(r));
  ASSERT_SOFT();
  assert_int_equal(cleanup_saw, -ECANCELED);
  assert_int_equal(cleanup_finished, 1);
  assert_ok(asyncio_runner_free(r));
}

/* ---- SIGINT ------------------------------------------------------------------------ */

static int sleep_rc;

static int main_raises_sigint(void *arg) {
  int catch_it = arg != NULL;
  raise(SIGINT);
  sleep_rc = asyncio_sleep(10.0);
  if (catch_it) return 5; /* swallow the cancellation */
  return sleep_rc;
}

static void (*sigint_handler_now(void))(int) {
  struct sigaction sa;
  sigaction(SIGINT, NULL, &sa);
  return sa.sa_handler;
}

/*
 * Runner._on_sigint: Ctrl-C cancels the main task; if main ends cancelled,
 * run() raises KeyboardInterrupt (-EINTR).  The SIGINT handler is restored
 * afterwards.
 */
TEST(run_sigint_cancels_main) {
  sleep_rc = 12345;
  assert_true(sigint_handler_now() == SIG_DFL);
  assert_rc(asyncio_run(main_raises_sigint, NULL, NULL), -EINTR);
  assert_int_equal(sleep_rc, -ECANCELED);
  assert_true(sigint_handler_now() == SIG_DFL);
}

/* A main that catches the cancellation caused by SIGINT and returns normally gives its result. */
TEST(run_sigint_caught_by_main) {
  sleep_rc = 12345;
  assert_rc(asyncio_run(main_raises_sigint, (void *)1, NULL), 5);
  assert_int_equal(sleep_rc, -ECANCELED);
  assert_true(sigint_handler_now() == SIG_DFL);
}

static void *sigint_later(void *arg) {
  (void)arg;
  struct timespec ts = {0, 100 * 1000 * 1000};
  nanosleep(&ts, NULL);
  kill(getpid(), SIGINT);
  return NULL;
}

static int main_waits_for_sigint(void *arg) {
  (void)arg;
  /* The helper blocks SIGINT so the kernel delivers it to this (the loop's) thread. */
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  pthread_t th;
  int created = pthread_create(&th, NULL, sigint_later, NULL) == 0;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  CHECK(created);
  sleep_rc = asyncio_sleep(30.0); /* the loop blocks in its poll */
  if (created) pthread_join(th, NULL);
  return sleep_rc;
}

/* SIGINT arriving while the loop is blocked in its poll wakes it and cancels main (-EINTR). */
TEST(run_sigint_wakes_blocked_loop) {
  reset();
  sleep_rc = 12345;
  assert_rc(asyncio_run(main_waits_for_sigint, NULL, NULL), -EINTR);
  ASSERT_SOFT();
  assert_int_equal(sleep_rc, -ECANCELED);
}

static int main_checks_handler(void *arg) {
  int expect_default = arg != NULL;
  if (expect_default) CHECK(sigint_handler_now() == SIG_DFL);
  else CHECK(sigint_handler_now() != SIG_DFL);
  return 0;
}

/* The SIGINT handler is installed only while run() runs, and not with no_sigint_handler. */
TEST(run_sigint_handler_option) {
  reset();
  assert_rc(asyncio_run(main_checks_handler, NULL, NULL), 0);
  asyncio_run_options_t o = {0};
  o.no_sigint_handler = true;
  assert_rc(asyncio_run(main_checks_handler, (void *)1, &o), 0);
  ASSERT_SOFT();
  assert_true(sigint_handler_now() == SIG_DFL);
}

static int main_double_sigint(void *arg) {
  (void)arg;
  raise(SIGINT);
  raise(SIGINT); /* the second one restores the default action and re-raises */
  asyncio_sleep(10.0);
  return 0;
}

/* A second SIGINT ends the process as an unhandled KeyboardInterrupt would (killed by SIGINT). */
TEST(run_second_sigint_kills) {
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl);
    asyncio_run(main_double_sigint, NULL, NULL);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGINT);
}

/* ---- allocation failures across a whole run ------------------------------------ */

static asyncio_queue_t *sweep_q;
static asyncio_semaphore_t *sweep_sem;

static int sweep_gen(asyncio_asyncgen_t *g, void *arg) {
  (void)g;
  (void)arg;
  for (intptr_t i = 0;; i++) {
    int rc = asyncio_asyncgen_yield((void *)i);
    if (rc < 0) return rc;
    if ((rc = asyncio_sleep(0.01)) < 0) return rc;
  }
}

static int sweep_producer(void *arg) {
  (void)arg;
  for (intptr_t i = 0; i < 4; i++) {
    int rc = asyncio_queue_put(sweep_q, (void *)i);
    if (rc < 0) return rc;
  }
  return 0;
}

static int sweep_consumer(void *arg) {
  (void)arg;
  int rc = asyncio_semaphore_acquire(sweep_sem);
  if (rc < 0) return rc;
  for (int i = 0; i < 4 && rc >= 0; i++) {
    void *item;
    if ((rc = asyncio_queue_get(sweep_q, &item)) == 0) rc = asyncio_queue_task_done(sweep_q);
  }
  asyncio_semaphore_release(sweep_sem);
  return rc < 0 ? rc : -EIO; /* fails: the group aborts the rest */
}

static int sweep_sleeper(void *arg) {
  (void)arg;
  return asyncio_sleep(10);
}

static int sweep_iterate(void *arg) {
  (void)arg;
  asyncio_asyncgen_t *g;
  int rc = asyncio_asyncgen_new(&g, sweep_gen, NULL, NULL);
  if (rc) return rc;
  void *v;
  for (int i = 0; i < 3 && rc >= 0; i++) rc = asyncio_asyncgen_next(g, &v);
  asyncio_asyncgen_free(g); /* abandoned mid-iteration: the loop closes it */
  return rc < 0 ? rc : asyncio_wait_for_coro(sweep_sleeper, NULL, NULL, 0.05, NULL);
}

static int sweep_main(void *arg) {
  (void)arg;
  asyncio_task_t *stray;
  if (asyncio_create_task(&stray, sweep_sleeper, NULL, NULL) == 0) asyncio_task_free(stray);
  asyncio_timeout_t *tm = NULL;
  int rc = asyncio_timeout_enter(&tm, 1.0);
  if (rc) return rc;
  asyncio_taskgroup_t *tg = NULL;
  rc = asyncio_taskgroup_enter(&tg);
  if (rc == 0) {
    asyncio_taskgroup_create_task(tg, NULL, sweep_iterate, NULL, NULL);
    asyncio_taskgroup_create_task(tg, NULL, sweep_producer, NULL, NULL);
    asyncio_taskgroup_create_task(tg, NULL, sweep_consumer, NULL, NULL);
    asyncio_taskgroup_create_task(tg, NULL, sweep_sleeper, NULL, NULL);
    rc = asyncio_taskgroup_exit(tg, asyncio_sleep(0.02));
    asyncio_taskgroup_free(tg);
  }
  rc = asyncio_timeout_exit(tm, rc);
  asyncio_timeout_free(tm);
  return rc;
}

static asyncio_condition_t *sweep_cond;
static asyncio_barrier_t *sweep_bar;
static asyncio_event_t *sweep_ev;
static int sweep_ready;

static int sweep_ready_pred(void *arg) {
  (void)arg;
  return sweep_ready;
}

static int sweep_waiter_body(void) {
  int rc = asyncio_barrier_wait(sweep_bar);
  if (rc < 0) return rc;
  if ((rc = asyncio_condition_acquire(sweep_cond)) < 0) return rc;
  rc = asyncio_condition_wait_for(sweep_cond, sweep_ready_pred, NULL);
  asyncio_condition_release(sweep_cond);
  if (rc < 0) return rc;
  return asyncio_event_wait(sweep_ev);
}

/* Runs fn inside a timeout scope: a failed allocation elsewhere must not deadlock the run. */
static int sweep_bounded(int (*fn)(void)) {
  asyncio_timeout_t *tm;
  int rc = asyncio_timeout_enter(&tm, 1.0);
  if (rc) return rc;
  rc = asyncio_timeout_exit(tm, fn());
  asyncio_timeout_free(tm);
  return rc;
}

static int sweep_waiter(void *arg) {
  (void)arg;
  return sweep_bounded(sweep_waiter_body);
}

static int sweep_gen_cleanup(asyncio_asyncgen_t *g, void *arg) {
  (void)g;
  (void)arg;
  int rc = asyncio_asyncgen_yield(NULL);
  if (rc == -EIO) rc = asyncio_asyncgen_yield(NULL);
  asyncio_sleep(0.01); /* cleanup that suspends */
  return rc;
}

static int sweep_main2_body(void) {
  asyncio_task_t *w[2] = {NULL, NULL};
  for (int i = 0; i < 2; i++) asyncio_create_task(&w[i], sweep_waiter, NULL, NULL);
  asyncio_asyncgen_t *g1 = NULL, *g2 = NULL;
  void *v;
  if (asyncio_asyncgen_new(&g1, sweep_gen_cleanup, NULL, NULL) == 0) {
    asyncio_asyncgen_next(g1, &v);
    asyncio_asyncgen_athrow(g1, -EIO, &v);
    asyncio_asyncgen_aclose(g1);
    asyncio_asyncgen_free(g1);
  }
  if (asyncio_asyncgen_new(&g2, sweep_gen_cleanup, NULL, NULL) == 0) {
    asyncio_asyncgen_next(g2, &v);
    asyncio_asyncgen_free(g2);
  }
  int rc = asyncio_barrier_wait(sweep_bar);
  asyncio_future_t *f = NULL;
  if (asyncio_future_new(&f, asyncio_get_running_loop()) == 0) {
    asyncio_wait_for(f, 0.01, NULL);
    asyncio_future_free(f);
  }
  asyncio_condition_acquire(sweep_cond);
  sweep_ready = 1;
  asyncio_condition_notify_all(sweep_cond);
  asyncio_condition_release(sweep_cond);
  asyncio_event_set(sweep_ev);
  asyncio_loop_shutdown_asyncgens(NULL);
  for (int i = 0; i < 2; i++) {
    if (!w[i]) continue;
    if (rc >= 0) asyncio_wait_for(w[i], 0.5, NULL);
    asyncio_task_free(w[i]);
  }
  return 0;
}

static int sweep_main2(void *arg) {
  (void)arg;
  return sweep_bounded(sweep_main2_body);
}

/* Generators left to the finalizer tasks and to Runner.close (one of them running). */
static int sweep_main3(void *arg) {
  (void)arg;
  void *v;
  asyncio_asyncgen_t *g[4] = {NULL, NULL, NULL, NULL};
  for (int i = 0; i < 4; i++)
    if (asyncio_asyncgen_new(&g[i], i < 2 ? sweep_gen_cleanup : sweep_gen, NULL, NULL) == 0)
      asyncio_asyncgen_next(g[i], &v);
  asyncio_asyncgen_free(g[0]);
  asyncio_asyncgen_free(g[2]);
  asyncio_sleep(0);
  asyncio_asyncgen_free(g[1]);
  asyncio_asyncgen_free(g[3]);
  return 0;
}

static void sweep_run(asyncio_coro_fn main) {
  long base = harness_live_allocs();
  for (long n = 1; n < 100000; n++) {
    assert_ok(asyncio_queue_new(&sweep_q, 2));
    assert_ok(asyncio_semaphore_new(&sweep_sem, 1));
    assert_ok(asyncio_condition_new(&sweep_cond, NULL));
    assert_ok(asyncio_barrier_new(&sweep_bar, 3));
    assert_ok(asyncio_event_new(&sweep_ev));
    sweep_ready = 0;
    long before = harness_total_allocs();
    harness_fail_alloc_after(n);
    asyncio_run(main, NULL, &virtual_run);
    bool failed = harness_total_allocs() - before >= n;
    harness_fail_alloc_after(0);
    while (asyncio_queue_get_nowait(sweep_q, &(void *){0}) == 0) {
    }
    assert_ok(asyncio_queue_free(sweep_q));
    assert_ok(asyncio_semaphore_free(sweep_sem));
    assert_ok(asyncio_condition_free(sweep_cond));
    assert_ok(asyncio_barrier_free(sweep_bar));
    assert_ok(asyncio_event_free(sweep_ev));
    if (harness_live_allocs() != base) fail_msg("allocation %ld failed: leaked", n);
    if (!failed) break;
  }
}

/* Every allocation of a run, failed in turn: nothing leaks or crashes. */
TEST(run_enomem_sweep) {
  reset();
  sweep_run(sweep_main);
  sweep_run(sweep_main2);
  sweep_run(sweep_main3);
}
