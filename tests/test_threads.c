/*
 * test_threads.c - executors, to_thread, run_coroutine_threadsafe
 * (include/asyncio/threads.h).
 *
 * Python origin: Lib/asyncio/threads.py, base_events.run_in_executor /
 * set_default_executor / shutdown_default_executor, tasks.
 * run_coroutine_threadsafe; Lib/test/test_asyncio/test_threads.py and
 * test_tasks.py (RunCoroutineThreadsafeTests).
 *
 * Worker functions synchronise with the test through semaphores, never
 * through sleeps; a task that must wait for a worker yields with sleep(0)
 * until an atomic flag flips.
 */
#include "harness.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

static const asyncio_loop_options_t virtual_opts = {ASYNCIO_CLOCK_VIRTUAL, 0, 0, 0.0};
static const asyncio_run_options_t virtual_run = {&virtual_opts, true};
static const asyncio_run_options_t plain_run = {NULL, true};

/* Yields until *flag is non-zero. */
static int wait_flag(atomic_int *flag) {
  while (!atomic_load(flag)) {
    int rc = asyncio_sleep(0);
    if (rc) return rc;
  }
  return 0;
}

static int twice(void *arg, void **value) {
  *value = arg;
  return 2 * (int)(intptr_t)arg;
}

static int fail_eio(void *arg, void **value) {
  (void)arg;
  (void)value;
  return -EIO;
}

static int to_thread_main(void *arg) {
  (void)arg;
  void *v = NULL;
  CHECK_RC(asyncio_to_thread(twice, (void *)21, &v), 42);
  CHECK(v == (void *)21);
  CHECK_RC(asyncio_to_thread(fail_eio, NULL, NULL), -EIO);
  CHECK_RC(asyncio_to_thread(NULL, NULL, NULL), -EINVAL);
  return 0;
}

/* asyncio.to_thread returns the function's result, or raises its error. */
TEST(to_thread_result_and_error) {
  assert_ok(asyncio_run(to_thread_main, NULL, &plain_run));
  ASSERT_SOFT();
  assert_rc(asyncio_to_thread(twice, NULL, NULL), ASYNCIO_ENOTASK);
}

#define NJOBS 200
static int order[NJOBS];
static int norder;

static int record_index(void *arg, void **value) {
  (void)value;
  /* One worker: jobs run one at a time, so no lock is needed. */
  order[norder++] = (int)(intptr_t)arg;
  return (int)(intptr_t)arg;
}

static int done_order[NJOBS];
static int ndone;

static void on_done(asyncio_future_t *f, void *arg) {
  (void)arg;
  done_order[ndone++] = asyncio_future_result(f, NULL);
}

static int ordering_main(void *arg) {
  asyncio_executor_t *ex = arg;
  asyncio_future_t *fs[NJOBS];
  asyncio_loop_t *loop = asyncio_get_running_loop();
  for (int i = 0; i < NJOBS; i++) {
    CHECK_RC(asyncio_loop_run_in_executor(loop, ex, record_index, (void *)(intptr_t)i, &fs[i]), 0);
    CHECK_RC(asyncio_future_add_done_callback(fs[i], on_done, NULL), 0);
  }
  for (int i = 0; i < NJOBS; i++) {
    CHECK_RC(asyncio_await(fs[i], NULL), i);
    asyncio_future_free(fs[i]);
  }
  /* The default executor (several workers) gets every result right too. */
  for (int i = 0; i < NJOBS; i++)
    CHECK_RC(asyncio_loop_run_in_executor(loop, NULL, twice, (void *)(intptr_t)i, &fs[i]), 0);
  for (int i = 0; i < NJOBS; i++) {
    void *v = NULL;
    CHECK_RC(asyncio_await(fs[i], &v), 2 * i);
    CHECK(v == (void *)(intptr_t)i);
    asyncio_future_free(fs[i]);
  }
  return 0;
}

/* run_in_executor: FIFO start order; with one worker, FIFO completion. */
TEST(run_in_executor_ordering_many_jobs) {
  asyncio_executor_t *ex;
  assert_ok(asyncio_executor_new(&ex, 1));
  assert_int_equal(asyncio_executor_max_workers(ex), 1);
  norder = ndone = 0;
  assert_ok(asyncio_run(ordering_main, ex, &plain_run));
  ASSERT_SOFT();
  assert_int_equal(norder, NJOBS);
  assert_int_equal(ndone, NJOBS);
  for (int i = 0; i < NJOBS; i++) {
    assert_int_equal(order[i], i);
    assert_int_equal(done_order[i], i);
  }
  assert_ok(asyncio_executor_free(ex));
}

static sem_t release_sem;
static atomic_int started, finished;

static int blocking_job(void *arg, void **value) {
  (void)arg;
  (void)value;
  atomic_store(&started, 1);
  while (sem_wait(&release_sem) != 0) {
  }
  atomic_store(&finished, 1);
  return 7;
}

static int to_thread_child(void *arg) {
  (void)arg;
  return asyncio_to_thread(blocking_job, NULL, NULL);
}

static int cancel_running_main(void *arg) {
  (void)arg;
  asyncio_task_t *child;
  CHECK_RC(asyncio_create_task(&child, to_thread_child, NULL, NULL), 0);
  CHECK_RC(wait_flag(&started), 0);
  CHECK_RC(asyncio_task_cancel(child, NULL), 1);
  /* The caller returns at once although the function is still running. */
  CHECK_RC(asyncio_await(child, NULL), -ECANCELED);
  CHECK(!atomic_load(&finished));
  sem_post(&release_sem);
  /* The function still runs to completion; shutdown waits for it. */
  CHECK_RC(asyncio_loop_shutdown_default_executor(asyncio_get_running_loop(), -1), 0);
  CHECK(atomic_load(&finished));
  asyncio_task_free(child);
  return 0;
}

/* Cancelling to_thread's caller abandons the result; the thread finishes. */
TEST(to_thread_cancel_while_running) {
  sem_init(&release_sem, 0, 0);
  atomic_store(&started, 0);
  atomic_store(&finished, 0);
  assert_ok(asyncio_run(cancel_running_main, NULL, &plain_run));
  ASSERT_SOFT();
  sem_destroy(&release_sem);
}

static atomic_int second_ran;

static int mark_second(void *arg, void **value) {
  (void)arg;
  (void)value;
  atomic_store(&second_ran, 1);
  return 0;
}

static int cancel_queued_main(void *arg) {
  asyncio_executor_t *ex = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_future_t *a, *b;
  CHECK_RC(asyncio_loop_run_in_executor(loop, ex, blocking_job, NULL, &a), 0);
  CHECK_RC(wait_flag(&started), 0);
  CHECK_RC(asyncio_loop_run_in_executor(loop, ex, mark_second, NULL, &b), 0);
  /* b waits behind a on the only worker: cancelling it unqueues it. */
  CHECK_RC(asyncio_future_cancel(b, NULL), 1);
  sem_post(&release_sem);
  CHECK_RC(asyncio_await(a, NULL), 7);
  CHECK_RC(asyncio_await(b, NULL), -ECANCELED);
  /* Anything queued after a has run by now, on the same single worker. */
  asyncio_future_t *c;
  CHECK_RC(asyncio_loop_run_in_executor(loop, ex, twice, (void *)1, &c), 0);
  CHECK_RC(asyncio_await(c, NULL), 2);
  CHECK(!atomic_load(&second_ran));
  asyncio_future_free(a);
  asyncio_future_free(b);
  asyncio_future_free(c);
  return 0;
}

/* A job cancelled while still queued never runs (Future.cancel on the pool). */
TEST(run_in_executor_cancel_queued_job_never_runs) {
  asyncio_executor_t *ex;
  assert_ok(asyncio_executor_new(&ex, 1));
  sem_init(&release_sem, 0, 0);
  atomic_store(&started, 0);
  atomic_store(&second_ran, 0);
  assert_ok(asyncio_run(cancel_queued_main, ex, &plain_run));
  ASSERT_SOFT();
  assert_ok(asyncio_executor_free(ex));
  sem_destroy(&release_sem);
}

static int shutdown_main(void *arg) {
  (void)arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  /* Nothing to shut down yet. */
  CHECK_RC(asyncio_loop_shutdown_default_executor(loop, -1), 0);
  CHECK_RC(asyncio_to_thread(twice, (void *)2, NULL), ASYNCIO_ECLOSED);
  return 0;
}

static asyncio_executor_t *g_after_ex;

static int shutdown_after_use_main(void *arg) {
  (void)arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_future_t *fs[8];
  for (int i = 0; i < 8; i++)
    CHECK_RC(asyncio_loop_run_in_executor(loop, NULL, twice, (void *)(intptr_t)i, &fs[i]), 0);
  /* Queued jobs still run; shutdown returns once every worker is joined. */
  CHECK_RC(asyncio_loop_shutdown_default_executor(loop, -1), 0);
  for (int i = 0; i < 8; i++) {
    CHECK(asyncio_future_done(fs[i]));
    CHECK_RC(asyncio_future_result(fs[i], NULL), 2 * i);
    asyncio_future_free(fs[i]);
  }
  CHECK_RC(asyncio_to_thread(twice, (void *)2, NULL), ASYNCIO_ECLOSED);
  /* Called again: nothing left to wait for. */
  CHECK_RC(asyncio_loop_shutdown_default_executor(loop, -1), 0);
  CHECK_RC(asyncio_loop_shutdown_default_executor(NULL, -1), -EINVAL);
  /* A new default executor does not lift the refusal (Python's flag stays
   * set); the executor itself still takes jobs by name. */
  asyncio_executor_t *ex = NULL;
  CHECK_RC(asyncio_executor_new(&ex, 1), 0);
  g_after_ex = ex; /* freed once the loop is closed: it borrows it */
  CHECK_RC(asyncio_loop_set_default_executor(loop, ex), 0);
  asyncio_future_t *f = NULL;
  CHECK_RC(asyncio_loop_run_in_executor(loop, NULL, twice, (void *)3, &f), ASYNCIO_ECLOSED);
  CHECK_RC(asyncio_loop_run_in_executor(loop, ex, twice, (void *)3, &f), 0);
  if (f) {
    CHECK_RC(asyncio_await(f, NULL), 6);
    asyncio_future_free(f);
  }
  return 0;
}

/* loop.shutdown_default_executor(): waits for the jobs, then refuses new ones. */
TEST(shutdown_default_executor) {
  assert_ok(asyncio_run(shutdown_main, NULL, &plain_run));
  ASSERT_SOFT();
  assert_ok(asyncio_run(shutdown_after_use_main, NULL, &plain_run));
  ASSERT_SOFT();
  assert_non_null(g_after_ex);
  assert_ok(asyncio_executor_free(g_after_ex));
}

static int g_timeout_reports, g_timeout_err;

static void timeout_warning(asyncio_loop_t *loop, const asyncio_error_context_t *ctx, void *ud) {
  g_timeout_reports++;
  g_timeout_err = ctx->error;
  CHECK(ctx->message && strstr(ctx->message, "not joined") != NULL);
}

static int shutdown_timeout_main(void *arg) {
  int wait_again = (int)(intptr_t)arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  CHECK_RC(asyncio_loop_shutdown_default_executor(loop, NAN), -EINVAL);
  /* Another loop's: this task is not one of its tasks. */
  asyncio_loop_t *other;
  CHECK_RC(asyncio_loop_new(&other, NULL), 0);
  CHECK_RC(asyncio_loop_shutdown_default_executor(other, -1), ASYNCIO_ENOTASK);
  CHECK_RC(asyncio_loop_close(other), 0);
  CHECK_RC(asyncio_loop_set_exception_handler(loop, timeout_warning, NULL), 0);
  asyncio_future_t *job;
  CHECK_RC(asyncio_loop_run_in_executor(loop, NULL, blocking_job, NULL, &job), 0);
  CHECK_RC(wait_flag(&started), 0);
  /* The worker is stuck: the shutdown gives up after the timeout, with a warning. */
  CHECK_RC(asyncio_loop_shutdown_default_executor(loop, 0.01), 1);
  CHECK(g_timeout_reports == 1 && g_timeout_err == -ETIMEDOUT);
  CHECK(!atomic_load(&finished));
  CHECK_RC(asyncio_to_thread(twice, (void *)2, NULL), ASYNCIO_ECLOSED);
  sem_post(&release_sem);
  /* The job was accepted before the shutdown: its outcome still arrives. */
  CHECK_RC(asyncio_await(job, NULL), 7);
  asyncio_future_free(job);
  if (wait_again) {
    /* Called again without a timeout: waits for the join still in progress. */
    CHECK_RC(asyncio_loop_shutdown_default_executor(loop, -1), 0);
    CHECK_RC(asyncio_loop_shutdown_default_executor(loop, 0), 0); /* nothing left */
  }
  CHECK(g_timeout_reports == 1);
  CHECK_RC(asyncio_loop_set_exception_handler(loop, NULL, NULL), 0);
  return 0;
}

/*
 * shutdown_default_executor(timeout) (3.12): after the timeout a warning is
 * issued and the call returns without joining the busy thread; a later call,
 * or the runner's close, finishes the join (no thread leaks).
 */
TEST(shutdown_default_executor_timeout) {
  for (int again = 1; again >= 0; again--) {
    sem_init(&release_sem, 0, 0);
    atomic_store(&started, 0);
    atomic_store(&finished, 0);
    g_timeout_reports = 0;
    assert_ok(asyncio_run(shutdown_timeout_main, (void *)(intptr_t)again, &plain_run));
    ASSERT_SOFT();
    assert_true(atomic_load(&finished));
    sem_destroy(&release_sem);
  }
}

static atomic_int shutdown_entered;

static int shutdown_with_timeout(void *arg) {
  (void)arg;
  atomic_store(&shutdown_entered, 1);
  return asyncio_loop_shutdown_default_executor(asyncio_get_running_loop(), 3600.0);
}

static int shutdown_then_stop(void *arg) {
  asyncio_task_t **shutter = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_future_t *job;
  CHECK_RC(asyncio_loop_run_in_executor(loop, NULL, blocking_job, NULL, &job), 0);
  asyncio_future_free(job);
  CHECK_RC(wait_flag(&started), 0);
  CHECK_RC(asyncio_create_task(shutter, shutdown_with_timeout, NULL, NULL), 0);
  CHECK_RC(wait_flag(&shutdown_entered), 0);
  CHECK_RC(asyncio_sleep(0), 0); /* it is now suspended, waiting for the join */
  asyncio_loop_stop(loop);
  return 0;
}

/*
 * A task waiting in shutdown_default_executor(timeout) that loop close
 * destroys leaks nothing (the harness checks): not the timeout, not the task.
 */
TEST(shutdown_default_executor_timeout_pending_at_close) {
  asyncio_loop_t *loop;
  asyncio_task_t *t, *shutter = NULL;
  sem_init(&release_sem, 0, 0);
  atomic_store(&started, 0);
  atomic_store(&finished, 0);
  atomic_store(&shutdown_entered, 0);
  assert_ok(asyncio_loop_new(&loop, NULL));
  assert_ok(asyncio_loop_create_task(loop, &t, shutdown_then_stop, &shutter, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  ASSERT_SOFT();
  assert_non_null(shutter);
  assert_false(asyncio_future_done(shutter));
  sem_post(&release_sem);
  assert_ok(asyncio_loop_close(loop)); /* reports the destroyed task */
  assert_true(atomic_load(&finished));
  assert_ok(asyncio_task_free(shutter));
  assert_ok(asyncio_task_free(t));
  sem_destroy(&release_sem);
}

static int user_executor_main(void *arg) {
  asyncio_executor_t *ex = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  CHECK_RC(asyncio_to_thread(twice, (void *)3, NULL), 6); /* creates the own default */
  CHECK_RC(asyncio_loop_set_default_executor(loop, ex), 0);
  CHECK_RC(asyncio_executor_free(ex), -EBUSY);
  CHECK_RC(asyncio_to_thread(twice, (void *)4, NULL), 8);
  CHECK_RC(asyncio_loop_set_default_executor(NULL, ex), -EINVAL);
  CHECK_RC(asyncio_loop_set_default_executor(loop, NULL), -EINVAL);
  /* A borrowed default is let go, not shut down. */
  CHECK_RC(asyncio_loop_shutdown_default_executor(loop, -1), 0);
  CHECK_RC(asyncio_to_thread(twice, (void *)2, NULL), ASYNCIO_ECLOSED);
  return 0;
}

/* loop.set_default_executor: the loop borrows the pool until it lets go. */
TEST(set_default_executor) {
  asyncio_executor_t *ex;
  assert_rc(asyncio_executor_new(NULL, 1), -EINVAL);
  assert_rc(asyncio_executor_new(&ex, -1), -EINVAL);
  assert_ok(asyncio_executor_new(&ex, 0));
  assert_true(asyncio_executor_max_workers(ex) >= 5 && asyncio_executor_max_workers(ex) <= 32);
  assert_ok(asyncio_run(user_executor_main, ex, &plain_run));
  ASSERT_SOFT();
  assert_ok(asyncio_executor_free(ex));
  assert_rc(asyncio_executor_free(NULL), -EINVAL);
}

static int slow_job(void *arg, void **value) {
  (void)arg;
  (void)value;
  usleep(20000); /* real time passes; virtual time must not */
  return 1;
}

static double seen_time = -1;

static int timed_thread_task(void *arg) {
  (void)arg;
  int rc = asyncio_to_thread(slow_job, NULL, NULL);
  seen_time = asyncio_loop_time(asyncio_get_running_loop());
  return rc;
}

static int virtual_clock_main(void *arg) {
  (void)arg;
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, timed_thread_task, NULL, NULL), 0);
  /* With a 1000 s timer pending, the clock would jump at once if the loop
   * did not know a thread is working for it. */
  CHECK_RC(asyncio_sleep(1000.0), 0);
  CHECK_RC(asyncio_await(t, NULL), 1);
  asyncio_task_free(t);
  return 0;
}

/* The virtual clock does not jump while thread work is in flight. */
TEST(virtual_clock_waits_for_threads) {
  seen_time = -1;
  assert_ok(asyncio_run(virtual_clock_main, NULL, &virtual_run));
  ASSERT_SOFT();
  assert_true(seen_time == 0.0);
}

/* ---- run_coroutine_threadsafe ------------------------------------------------ */

static int coro_value;
static int coro_sleep_rc;

static int coro_result(void *arg) {
  asyncio_task_set_result_value(&coro_value);
  return (int)(intptr_t)arg;
}

static int coro_sleeps(void *arg) {
  (void)arg;
  coro_sleep_rc = asyncio_sleep(3600.0);
  return coro_sleep_rc;
}

static asyncio_loop_t *target_loop;

/* Runs on a worker thread: the "other thread" of run_coroutine_threadsafe. */
static int foreign_thread(void *arg, void **value) {
  (void)arg;
  (void)value;
  asyncio_cfuture_t *cf;
  void *v = NULL;
  int rc = asyncio_run_coroutine_threadsafe(target_loop, coro_result, (void *)42, &cf);
  if (rc) return rc;
  rc = asyncio_cfuture_result(cf, -1, &v);
  if (rc != 42 || v != &coro_value || !asyncio_cfuture_done(cf)) return -1000;
  asyncio_cfuture_free(cf);

  rc = asyncio_run_coroutine_threadsafe(target_loop, coro_result, (void *)(intptr_t)-EIO, &cf);
  if (rc) return rc;
  rc = asyncio_cfuture_result(cf, 30.0, NULL);
  asyncio_cfuture_free(cf);
  if (rc != -EIO) return -1001;

  /* Timeout, then cancel. */
  rc = asyncio_run_coroutine_threadsafe(target_loop, coro_sleeps, NULL, &cf);
  if (rc) return rc;
  if (asyncio_cfuture_wait(cf, 0.01) != -ETIMEDOUT) return -1002;
  if (asyncio_cfuture_result(cf, 0, NULL) != -ETIMEDOUT) return -1003;
  if (asyncio_cfuture_cancel(cf) != 1) return -1004;
  if (asyncio_cfuture_cancel(cf) != 0) return -1005;
  if (!asyncio_cfuture_cancelled(cf) || !asyncio_cfuture_done(cf)) return -1006;
  if (asyncio_cfuture_result(cf, -1, NULL) != -ECANCELED) return -1007;
  asyncio_cfuture_free(cf);

  if (asyncio_run_coroutine_threadsafe(NULL, coro_result, NULL, &cf) != -EINVAL) return -1008;
  if (asyncio_run_coroutine_threadsafe(target_loop, NULL, NULL, &cf) != -EINVAL) return -1009;
  return 0;
}

static int threadsafe_main(void *arg) {
  (void)arg;
  target_loop = asyncio_get_running_loop();
  coro_sleep_rc = 1; /* the sleeper's body has not run */
  CHECK_RC(asyncio_to_thread(foreign_thread, NULL, NULL), 0);
  /*
   * The cancel reached the loop before the job's result did.  Usually the
   * sleeper was asleep by then and wakes with -ECANCELED; on a slow run
   * (TSan) the cancel may come before its first step, and then its body never
   * runs at all (Task.cancel on a task that has not started).
   */
  for (int i = 0; i < 100 && coro_sleep_rc == 1; i++) asyncio_sleep(0);
  CHECK(coro_sleep_rc == -ECANCELED || coro_sleep_rc == 1);
  return 0;
}

/* run_coroutine_threadsafe from another thread: result, error, timeout, cancel. */
TEST(run_coroutine_threadsafe_from_thread) {
  coro_sleep_rc = 1;
  assert_ok(asyncio_run(threadsafe_main, NULL, &plain_run));
  ASSERT_SOFT();
}

static int deadlock_main(void *arg) {
  (void)arg;
  asyncio_cfuture_t *cf;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  CHECK_RC(asyncio_run_coroutine_threadsafe(loop, coro_result, (void *)5, &cf), 0);
  /* Blocking the loop's own thread would wait forever. */
  CHECK_RC(asyncio_cfuture_wait(cf, -1), -EDEADLK);
  CHECK_RC(asyncio_cfuture_result(cf, 0, NULL), -ETIMEDOUT);
  while (!asyncio_cfuture_done(cf)) asyncio_sleep(0);
  CHECK_RC(asyncio_cfuture_result(cf, 0, NULL), 5);
  asyncio_cfuture_free(cf);
  return 0;
}

/* Waiting on the loop's own thread is refused instead of deadlocking. */
TEST(run_coroutine_threadsafe_same_thread) {
  assert_ok(asyncio_run(deadlock_main, NULL, &plain_run));
  ASSERT_SOFT();
}

/* A loop that closes before the coroutine started leaves the cfuture closed. */
TEST(run_coroutine_threadsafe_loop_closed) {
  asyncio_loop_t *loop;
  asyncio_cfuture_t *cf, *cf2;
  assert_ok(asyncio_loop_new(&loop, NULL));
  assert_ok(asyncio_run_coroutine_threadsafe(loop, coro_result, (void *)1, &cf));
  assert_ok(asyncio_run_coroutine_threadsafe(loop, coro_sleeps, NULL, &cf2));
  assert_ok(asyncio_loop_close(loop));
  assert_rc(asyncio_cfuture_result(cf, -1, NULL), ASYNCIO_ECLOSED);
  assert_rc(asyncio_cfuture_result(cf2, -1, NULL), ASYNCIO_ECLOSED);
  assert_rc(asyncio_cfuture_cancel(cf), 0);
  assert_ok(asyncio_cfuture_free(cf));
  assert_ok(asyncio_cfuture_free(cf2));
  assert_rc(asyncio_cfuture_free(NULL), -EINVAL);
}

static void stop_loop_cb(void *arg) { asyncio_loop_stop(arg); }

static int started_sleeper(void *arg) {
  (void)arg;
  return asyncio_sleep(3600.0);
}

/* A task started by run_coroutine_threadsafe and destroyed by close. */
TEST(run_coroutine_threadsafe_pending_at_close) {
  asyncio_loop_t *loop;
  asyncio_cfuture_t *cf;
  assert_ok(asyncio_loop_new(&loop, NULL));
  assert_ok(asyncio_run_coroutine_threadsafe(loop, started_sleeper, NULL, &cf));
  assert_ok(asyncio_loop_call_later(loop, 0.001, stop_loop_cb, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  assert_false(asyncio_cfuture_done(cf));
  assert_ok(asyncio_loop_close(loop)); /* reports the destroyed task */
  assert_rc(asyncio_cfuture_result(cf, -1, NULL), ASYNCIO_ECLOSED);
  assert_ok(asyncio_cfuture_free(cf));
}

static int submit_and_stop(void *arg) {
  asyncio_future_t **out = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  CHECK_RC(asyncio_loop_run_in_executor(loop, NULL, blocking_job, NULL, out), 0);
  CHECK_RC(wait_flag(&started), 0);
  asyncio_loop_stop(loop);
  return 0;
}

static void *releaser(void *arg) {
  (void)arg;
  usleep(10000);
  sem_post(&release_sem);
  return NULL;
}

/* loop.close() blocks until running jobs finish and joins the workers. */
TEST(loop_close_joins_running_job) {
  asyncio_loop_t *loop;
  asyncio_future_t *f = NULL;
  asyncio_task_t *t;
  pthread_t th;
  sem_init(&release_sem, 0, 0);
  atomic_store(&started, 0);
  atomic_store(&finished, 0);
  assert_ok(asyncio_loop_new(&loop, NULL));
  assert_ok(asyncio_loop_create_task(loop, &t, submit_and_stop, &f, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  ASSERT_SOFT();
  assert_non_null(f);
  assert_false(asyncio_future_done(f));
  assert_int_equal(pthread_create(&th, NULL, releaser, NULL), 0);
  assert_ok(asyncio_loop_close(loop));
  assert_true(atomic_load(&finished));
  assert_false(asyncio_future_done(f)); /* never delivered: the loop closed */
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_task_free(t));
  pthread_join(th, NULL);
  sem_destroy(&release_sem);
}

static atomic_int cf_made;
static int cf_wait_rc;

/* A worker that waits for a coroutine it asked the loop to run. */
static int waits_for_coroutine(void *arg, void **value) {
  asyncio_loop_t *loop = arg;
  (void)value;
  asyncio_cfuture_t *cf;
  int rc = asyncio_run_coroutine_threadsafe(loop, started_sleeper, NULL, &cf);
  atomic_store(&cf_made, 1);
  if (rc) return rc;
  /* Bounded, so that the bug fails the test instead of hanging it. */
  cf_wait_rc = asyncio_cfuture_result(cf, 20.0, NULL);
  asyncio_cfuture_free(cf);
  return 0;
}

static int submit_waiter_and_stop(void *arg) {
  asyncio_future_t **out = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  CHECK_RC(asyncio_loop_run_in_executor(loop, NULL, waits_for_coroutine, loop, out), 0);
  CHECK_RC(wait_flag(&cf_made), 0);
  asyncio_loop_stop(loop);
  return 0;
}

/*
 * loop.close() while a running job waits on run_coroutine_threadsafe: the
 * cfuture finishes with ASYNCIO_ECLOSED, so the job returns and close does
 * not wait for it forever.
 */
TEST(loop_close_with_job_waiting_on_coroutine) {
  asyncio_loop_t *loop;
  asyncio_future_t *f = NULL;
  asyncio_task_t *t;
  atomic_store(&cf_made, 0);
  cf_wait_rc = 1;
  assert_ok(asyncio_loop_new(&loop, NULL));
  assert_ok(asyncio_loop_create_task(loop, &t, submit_waiter_and_stop, &f, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  ASSERT_SOFT();
  assert_non_null(f);
  assert_ok(asyncio_loop_close(loop));
  assert_rc(cf_wait_rc, ASYNCIO_ECLOSED);
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_task_free(t));
}

static sem_t push_sem;

/* As waits_for_coroutine, but asks only once the loop has stopped. */
static int waits_for_unstarted_coroutine(void *arg, void **value) {
  atomic_store(&started, 1);
  while (sem_wait(&push_sem) != 0) {
  }
  return waits_for_coroutine(arg, value);
}

static int submit_late_waiter_and_stop(void *arg) {
  asyncio_future_t **out = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  CHECK_RC(
      asyncio_loop_run_in_executor(loop, NULL, waits_for_unstarted_coroutine, loop, out), 0);
  CHECK_RC(wait_flag(&started), 0);
  asyncio_loop_stop(loop);
  return 0;
}

/* The same with the coroutine's start still queued when close begins. */
TEST(loop_close_with_job_waiting_on_unstarted_coroutine) {
  asyncio_loop_t *loop;
  asyncio_future_t *f = NULL;
  asyncio_task_t *t;
  atomic_store(&cf_made, 0);
  atomic_store(&started, 0);
  cf_wait_rc = 1;
  sem_init(&push_sem, 0, 0);
  assert_ok(asyncio_loop_new(&loop, NULL));
  assert_ok(asyncio_loop_create_task(loop, &t, submit_late_waiter_and_stop, &f, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  ASSERT_SOFT();
  assert_non_null(f);
  sem_post(&push_sem);
  while (!atomic_load(&cf_made)) sched_yield();
  assert_ok(asyncio_loop_close(loop));
  assert_rc(cf_wait_rc, ASYNCIO_ECLOSED);
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_task_free(t));
  sem_destroy(&push_sem);
}

/* Argument checks. */
TEST(run_in_executor_bad_arguments) {
  asyncio_loop_t *loop;
  asyncio_future_t *f;
  assert_ok(asyncio_loop_new(&loop, NULL));
  assert_rc(asyncio_loop_run_in_executor(NULL, NULL, twice, NULL, &f), -EINVAL);
  assert_rc(asyncio_loop_run_in_executor(loop, NULL, NULL, NULL, &f), -EINVAL);
  assert_rc(asyncio_loop_run_in_executor(loop, NULL, twice, NULL, NULL), -EINVAL);
  /* A loop that is not running accepts jobs (as Python's). */
  assert_ok(asyncio_loop_run_in_executor(loop, NULL, twice, (void *)4, &f));
  assert_rc(asyncio_loop_run_until_complete(loop, f, NULL), 8);
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_run_in_executor(loop, NULL, fail_eio, NULL, &f));
  assert_rc(asyncio_loop_run_until_complete(loop, f, NULL), -EIO);
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
  assert_ok(asyncio_loop_new(&loop, NULL));
  assert_ok(asyncio_loop_close(loop));
}

static int alloc_fail_main(void *arg) {
  (void)arg;
  /* Fail the 1st, 2nd, ... allocation of the call until it goes through:
   * each failure must report -ENOMEM and leave nothing behind. */
  int rc = -ENOMEM;
  long n;
  for (n = 1; n < 50 && rc == -ENOMEM; n++) {
    harness_fail_alloc_after(n);
    rc = asyncio_to_thread(twice, (void *)5, NULL);
    harness_fail_alloc_after(0);
  }
  CHECK_RC(rc, 10);
  CHECK(n > 2); /* at least one allocation was failed */
  return 0;
}

/* Out of memory at any allocation of run_in_executor: -ENOMEM, nothing leaks. */
TEST(to_thread_allocation_failures) {
  assert_ok(asyncio_run(alloc_fail_main, NULL, &plain_run));
  ASSERT_SOFT();
}
