/*
 * test_signals.c - Unix signal handlers (include/asyncio/events.h:
 * asyncio_loop_add_signal_handler, asyncio_loop_remove_signal_handler).
 *
 * Python origin: Lib/asyncio/unix_events.py (add_signal_handler,
 * remove_signal_handler, _handle_signal) and the signal tests in
 * Lib/test/test_asyncio/test_unix_events.py and test_events.py
 * (test_add_signal_handler, test_signal_handling_while_selecting).
 *
 * Every signal here is real: kill(), raise() or pthread_kill() sent to this
 * process, from a task, a plain callback, or another thread, while the loop
 * runs or is blocked in epoll_wait.  Nothing asserts timings: a helper
 * thread that sends a signal may do so before or after the loop blocks, and
 * either way the callback must run.  Each case leaves every disposition it
 * touched as it found it (SIG_DFL), so the cases also pass in one process.
 */
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------ */

static asyncio_loop_t *g_loop;
static int calls[NSIG];      /* deliveries seen per signal (loop thread only) */
static void *last_arg[NSIG]; /* the arg of the last call */
static asyncio_future_t *g_done; /* set by a callback that completes it */

static void reset(void) {
  memset(calls, 0, sizeof calls);
  memset(last_arg, 0, sizeof last_arg);
  g_done = NULL;
  g_loop = NULL;
  soft_fail[0] = 0;
}

static asyncio_loop_t *real_loop(void) {
  asyncio_loop_t *loop = NULL;
  asyncio_loop_options_t o = {0};
  o.clock = ASYNCIO_CLOCK_MONOTONIC;
  o.debug = -1;
  assert_ok(asyncio_loop_new(&loop, &o));
  return loop;
}

/* The handler a signal has now (sa_handler). */
static void (*disposition(int sig))(int) {
  struct sigaction sa;
  sigaction(sig, NULL, &sa);
  return sa.sa_handler;
}

static void set_disposition(int sig, void (*h)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = h;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
}

/* The signal a record callback counts is encoded in its arg's low byte. */
#define ARG(sig, tag) ((void *)(intptr_t)((tag) * 256 + (sig)))
#define ARG_SIG(arg) ((int)((intptr_t)(arg) % 256))

/* Counts the delivery; completes g_done if set. */
static void record(void *arg) {
  int sig = ARG_SIG(arg);
  calls[sig]++;
  last_arg[sig] = arg;
  if (g_done && !asyncio_future_done(g_done))
    CHECK_RC(asyncio_future_set_result(g_done, 0, NULL), 0);
}

static void stop_loop(void *arg) {
  calls[SIGUSR1]++;
  CHECK_RC(asyncio_loop_stop((asyncio_loop_t *)arg), 0);
}

static void nap_ms(int ms) {
  struct timespec ts = {0, (long)ms * 1000000L};
  nanosleep(&ts, NULL);
}

/* Starts a thread with `block` (0: none) blocked in it, so the kernel sends a
 * process-directed signal to another thread (the loop's). */
static int spawn(pthread_t *th, void *(*fn)(void *), void *arg, int block) {
  sigset_t set, old;
  sigemptyset(&set);
  if (block) sigaddset(&set, block);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  int rc = pthread_create(th, NULL, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc;
}

/* ---- delivery ----------------------------------------------------------- */

static int task_kills_self(void *arg) {
  (void)arg;
  asyncio_future_t *f = NULL;
  CHECK_RC(asyncio_future_new(&f, NULL), 0);
  if (!f) return -ENOMEM;
  g_done = f;
  CHECK_RC(kill(getpid(), SIGUSR1), 0);
  /* The C handler ran inside kill(); the callback waits for the loop. */
  CHECK(calls[SIGUSR1] == 0);
  int rc = asyncio_await(f, NULL);
  g_done = NULL;
  asyncio_future_free(f);
  return rc;
}

/* os.kill(os.getpid(), SIGUSR1) from a task: the callback runs on the loop with its arg. */
TEST(kill_from_task_runs_callback) {
  reset();
  asyncio_loop_t *loop = real_loop();
  assert_ok(asyncio_loop_add_signal_handler(loop, SIGUSR1, record, ARG(SIGUSR1, 7)));
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, task_kills_self, NULL, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  asyncio_task_free(t);
  ASSERT_SOFT();
  assert_int_equal(calls[SIGUSR1], 1);
  assert_ptr_equal(last_arg[SIGUSR1], ARG(SIGUSR1, 7));
  assert_rc(asyncio_loop_remove_signal_handler(loop, SIGUSR1), 1);
  assert_ok(asyncio_loop_close(loop));
  assert_true(disposition(SIGUSR1) == SIG_DFL);
}

static void *kill_process_later(void *arg) {
  nap_ms(20);
  kill(getpid(), (int)(intptr_t)arg);
  return NULL;
}

/*
 * Another thread kills the process while the loop is blocked in epoll with
 * nothing to do; the sender blocks the signal, so the kernel interrupts the
 * loop's thread.  The callback stops the loop: run_forever returns.
 */
TEST(kill_from_thread_wakes_blocked_loop) {
  reset();
  asyncio_loop_t *loop = real_loop();
  assert_ok(asyncio_loop_add_signal_handler(loop, SIGUSR1, stop_loop, loop));
  pthread_t th;
  assert_int_equal(spawn(&th, kill_process_later, (void *)(intptr_t)SIGUSR1, SIGUSR1), 0);
  assert_ok(asyncio_loop_run_forever(loop));
  pthread_join(th, NULL);
  ASSERT_SOFT();
  assert_int_equal(calls[SIGUSR1], 1);
  assert_ok(asyncio_loop_close(loop));
  assert_true(disposition(SIGUSR1) == SIG_DFL);
}

static void *raise_here_later(void *arg) {
  nap_ms(20);
  raise((int)(intptr_t)arg); /* this thread runs the C handler */
  return NULL;
}

/* The C handler runs on a thread that is not the loop's: it wakes the loop through the eventfd. */
TEST(raise_on_other_thread_wakes_loop) {
  reset();
  asyncio_loop_t *loop = real_loop();
  assert_ok(asyncio_loop_add_signal_handler(loop, SIGUSR1, stop_loop, loop));
  pthread_t th;
  assert_int_equal(spawn(&th, raise_here_later, (void *)(intptr_t)SIGUSR1, 0), 0);
  assert_ok(asyncio_loop_run_forever(loop));
  pthread_join(th, NULL);
  ASSERT_SOFT();
  assert_int_equal(calls[SIGUSR1], 1);
  assert_ok(asyncio_loop_close(loop));
}

static pthread_t loop_thread;
static void *pthread_kill_loop_later(void *arg) {
  nap_ms(20);
  pthread_kill(loop_thread, (int)(intptr_t)arg);
  return NULL;
}

/* pthread_kill aimed at the loop's thread while it is blocked in epoll. */
TEST(pthread_kill_loop_thread) {
  reset();
  asyncio_loop_t *loop = real_loop();
  assert_ok(asyncio_loop_add_signal_handler(loop, SIGUSR2, record, ARG(SIGUSR2, 1)));
  assert_ok(asyncio_loop_add_signal_handler(loop, SIGUSR1, stop_loop, loop));
  loop_thread = pthread_self();
  pthread_t th;
  assert_int_equal(spawn(&th, pthread_kill_loop_later, (void *)(intptr_t)SIGUSR1, 0), 0);
  assert_ok(asyncio_loop_run_forever(loop));
  pthread_join(th, NULL);
  ASSERT_SOFT();
  assert_int_equal(calls[SIGUSR1], 1);
  assert_int_equal(calls[SIGUSR2], 0);
  assert_ok(asyncio_loop_close(loop));
  assert_true(disposition(SIGUSR1) == SIG_DFL);
  assert_true(disposition(SIGUSR2) == SIG_DFL);
}

static void raise_usr1(void *arg) {
  (void)arg;
  raise(SIGUSR1);
}

/* A plain callback raises the signal; the handler stops the loop (run_forever returns 0). */
TEST(handler_stops_loop) {
  reset();
  asyncio_loop_t *loop = real_loop();
  assert_ok(asyncio_loop_add_signal_handler(loop, SIGUSR1, stop_loop, loop));
  assert_ok(asyncio_loop_call_soon(loop, raise_usr1, NULL, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  ASSERT_SOFT();
  assert_int_equal(calls[SIGUSR1], 1);
  assert_ok(asyncio_loop_close(loop));
}

/* A signal that arrives while the loop is not running is delivered by the next run. */
TEST(signal_before_run_delivered_on_run) {
  reset();
  asyncio_loop_t *loop = real_loop();
  assert_ok(asyncio_loop_add_signal_handler(loop, SIGUSR1, stop_loop, loop));
  raise(SIGUSR1);
  assert_int_equal(calls[SIGUSR1], 0);
  assert_ok(asyncio_loop_run_forever(loop)); /* stopped by the handler */
  ASSERT_SOFT();
  assert_int_equal(calls[SIGUSR1], 1);
  assert_ok(asyncio_loop_close(loop));
}

static int sleep_rc;
static asyncio_task_t *sleeper;

static void cancel_sleeper(void *arg) {
  (void)arg;
  calls[SIGUSR1]++;
  CHECK_RC(asyncio_task_cancel(sleeper, NULL), 1);
}

static int sleep_an_hour(void *arg) {
  (void)arg;
  pthread_t th;
  int created = spawn(&th, kill_process_later, (void *)(intptr_t)SIGUSR1, SIGUSR1) == 0;
  CHECK(created);
  sleep_rc = asyncio_sleep(3600.0); /* the loop blocks in epoll for up to an hour */
  if (created) pthread_join(th, NULL);
  return sleep_rc;
}

/* The handler cancels a task sleeping for an hour: the sleep returns -ECANCELED. */
TEST(handler_cancels_sleeping_task) {
  reset();
  sleep_rc = 12345;
  asyncio_loop_t *loop = real_loop();
  assert_ok(asyncio_loop_add_signal_handler(loop, SIGUSR1, cancel_sleeper, NULL));
  assert_ok(asyncio_loop_create_task(loop, &sleeper, sleep_an_hour, NULL, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, sleeper, NULL), -ECANCELED);
  assert_true(asyncio_future_cancelled(sleeper));
  asyncio_task_free(sleeper);
  sleeper = NULL;
  ASSERT_SOFT();
  assert_int_equal(sleep_rc, -ECANCELED);
  assert_int_equal(calls[SIGUSR1], 1);
  assert_ok(asyncio_loop_close(loop));
}

static int task_two_pending(void *arg) {
  (void)arg;
  /* Both signals pending in the kernel at once, delivered together on unblock. */
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  kill(getpid(), SIGUSR1);
  kill(getpid(), SIGUSR2);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  CHECK(calls[SIGUSR1] == 0 && calls[SIGUSR2] == 0);
  for (int i = 0; i < 10 && !(calls[SIGUSR1] && calls[SIGUSR2]); i++) asyncio_sleep(0);
  return 0;
}

/* Two different signals pending at the same time: each handler is called once. */
TEST(two_signals_pending_at_once) {
  reset();
  asyncio_loop_t *loop = real_loop();
  assert_ok(asyncio_loop_add_signal_handler(loop, SIGUSR1, record, ARG(SIGUSR1, 1)));
  assert_ok(asyncio_loop_add_signal_handler(loop, SIGUSR2, record, ARG(SIGUSR2, 2)));
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, task_two_pending, NULL, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  asyncio_task_free(t);
  ASSERT_SOFT();
  assert_int_equal(calls[SIGUSR1], 1);
  assert_int_equal(calls[SIGUSR2], 1);
  assert_ptr_equal(last_arg[SIGUSR2], ARG(SIGUSR2, 2));
  assert_ok(asyncio_loop_close(loop));
}

static int task_repeat_kill(void *arg) {
  (void)arg;
  /* Three deliveries with no loop iteration in between: one callback. */
  for (int i = 0; i < 3; i++) kill(getpid(), SIGUSR1);
  for (int i = 0; i < 10; i++) asyncio_sleep(0);
  CHECK(calls[SIGUSR1] == 1);
  /* A delivery after the callback ran is a new call. */
  kill(getpid(), SIGUSR1);
  for (int i = 0; i < 10; i++) asyncio_sleep(0);
  CHECK(calls[SIGUSR1] == 2);
  return 0;
}

/* Deliveries of one signal between two loop iterations coalesce (documented). */
TEST(same_signal_coalesces) {
  reset();
  asyncio_loop_t *loop = real_loop();
  assert_ok(asyncio_loop_add_signal_handler(loop, SIGUSR1, record, ARG(SIGUSR1, 0)));
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, task_repeat_kill, NULL, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  asyncio_task_free(t);
  ASSERT_SOFT();
  assert_int_equal(calls[SIGUSR1], 2);
  assert_ok(asyncio_loop_close(loop));
}

/* ---- replace and remove --------------------------------------------------- */

/* A few loop iterations. */
static int spin(void *arg) {
  (void)arg;
  for (int i = 0; i < 10; i++) asyncio_sleep(0);
  return 0;
}

static int task_replace(void *arg) {
  asyncio_loop_t *loop = arg;
  kill(getpid(), SIGUSR1);
  asyncio_sleep(0);
  asyncio_sleep(0); /* the delivery may be queued by now: it goes to the new handler */
  CHECK_RC(asyncio_loop_add_signal_handler(loop, SIGUSR1, record, ARG(SIGUSR1, 2)), 0);
  for (int i = 0; i < 10; i++) asyncio_sleep(0);
  return 0;
}

/* A second add for the same signal replaces the callback and its arg. */
TEST(add_again_replaces) {
  reset();
  asyncio_loop_t *loop = real_loop();
  assert_ok(asyncio_loop_add_signal_handler(loop, SIGUSR1, stop_loop, loop));
  assert_ok(asyncio_loop_add_signal_handler(loop, SIGUSR1, record, ARG(SIGUSR1, 1)));
  raise(SIGUSR1); /* to record(ARG 1), not stop_loop */
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, spin, NULL, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  asyncio_task_free(t);
  assert_int_equal(calls[SIGUSR1], 1);
  assert_ptr_equal(last_arg[SIGUSR1], ARG(SIGUSR1, 1));
  calls[SIGUSR1] = 0;
  assert_ok(asyncio_loop_create_task(loop, &t, task_replace, loop, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  asyncio_task_free(t);
  ASSERT_SOFT();
  assert_int_equal(calls[SIGUSR1], 1);
  assert_ptr_equal(last_arg[SIGUSR1], ARG(SIGUSR1, 2));
  assert_ok(asyncio_loop_close(loop));
}

static int task_remove_queued(void *arg) {
  asyncio_loop_t *loop = arg;
  kill(getpid(), SIGUSR1);
  asyncio_sleep(0);
  asyncio_sleep(0); /* the delivery may be queued by now: remove drops it */
  CHECK_RC(asyncio_loop_remove_signal_handler(loop, SIGUSR1), 1);
  for (int i = 0; i < 10; i++) asyncio_sleep(0);
  return 0;
}

/* Once remove returns, the callback is not called, even for a signal that already arrived. */
TEST(remove_drops_arrived_signal) {
  reset();
  asyncio_loop_t *loop = real_loop();
  set_disposition(SIGUSR1, SIG_IGN); /* what remove restores: the late signal is ignored */
  assert_ok(asyncio_loop_add_signal_handler(loop, SIGUSR1, record, ARG(SIGUSR1, 1)));
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, task_remove_queued, loop, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  asyncio_task_free(t);
  ASSERT_SOFT();
  assert_int_equal(calls[SIGUSR1], 0);
  assert_true(disposition(SIGUSR1) == SIG_IGN);
  assert_ok(asyncio_loop_close(loop));
  set_disposition(SIGUSR1, SIG_DFL);
}

static volatile sig_atomic_t prior_hits;
static void prior_handler(int sig) {
  (void)sig;
  prior_hits++;
}

/* remove returns 1, then 0, and puts back the disposition from before add (sigaction says). */
TEST(remove_restores_previous_disposition) {
  reset();
  asyncio_loop_t *loop = real_loop();
  set_disposition(SIGUSR1, prior_handler);
  assert_true(disposition(SIGUSR2) == SIG_DFL);
  assert_ok(asyncio_loop_add_signal_handler(loop, SIGUSR1, record, ARG(SIGUSR1, 0)));
  assert_ok(asyncio_loop_add_signal_handler(loop, SIGUSR2, record, ARG(SIGUSR2, 0)));
  assert_true(disposition(SIGUSR1) != prior_handler);
  assert_true(disposition(SIGUSR2) != SIG_DFL);
  struct sigaction sa;
  sigaction(SIGUSR1, NULL, &sa);
  assert_true(sa.sa_flags & SA_RESTART);
  /* a replacing add keeps the disposition saved by the first */
  assert_ok(asyncio_loop_add_signal_handler(loop, SIGUSR1, record, ARG(SIGUSR1, 1)));
  assert_rc(asyncio_loop_remove_signal_handler(loop, SIGUSR1), 1);
  assert_rc(asyncio_loop_remove_signal_handler(loop, SIGUSR1), 0);
  assert_true(disposition(SIGUSR1) == prior_handler);
  prior_hits = 0;
  raise(SIGUSR1);
  assert_int_equal(prior_hits, 1);
  assert_rc(asyncio_loop_remove_signal_handler(loop, SIGUSR2), 1);
  assert_true(disposition(SIGUSR2) == SIG_DFL);
  assert_rc(asyncio_loop_remove_signal_handler(loop, SIGUSR2), 0);
  assert_rc(asyncio_loop_remove_signal_handler(loop, SIGHUP), 0); /* never added */
  assert_ok(asyncio_loop_close(loop));
  set_disposition(SIGUSR1, SIG_DFL);
  assert_int_equal(calls[SIGUSR1] + calls[SIGUSR2], 0);
}

static void remove_self(void *arg) {
  asyncio_loop_t *loop = arg;
  calls[SIGUSR1]++;
  CHECK_RC(asyncio_loop_remove_signal_handler(loop, SIGUSR1), 1);
  CHECK(disposition(SIGUSR1) == SIG_DFL);
  CHECK_RC(asyncio_loop_stop(loop), 0);
}

/* A callback may remove its own handler. */
TEST(callback_removes_itself) {
  reset();
  asyncio_loop_t *loop = real_loop();
  assert_ok(asyncio_loop_add_signal_handler(loop, SIGUSR1, remove_self, loop));
  raise(SIGUSR1);
  assert_ok(asyncio_loop_run_forever(loop));
  ASSERT_SOFT();
  assert_int_equal(calls[SIGUSR1], 1);
  assert_ok(asyncio_loop_close(loop));
}

/* ---- arguments and ownership ----------------------------------------------- */

/* SIGKILL, SIGSTOP, faults and numbers that are not signals: -EINVAL, nothing installed. */
TEST(invalid_arguments) {
  reset();
  asyncio_loop_t *loop = real_loop();
  void (*segv)(int) = disposition(SIGSEGV);
  const int bad[] = {SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGILL, SIGFPE, 0, -1, NSIG, 1000};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_rc(asyncio_loop_add_signal_handler(loop, bad[i], record, NULL), -EINVAL);
  assert_rc(asyncio_loop_add_signal_handler(NULL, SIGUSR1, record, NULL), -EINVAL);
  assert_rc(asyncio_loop_add_signal_handler(loop, SIGUSR1, NULL, NULL), -EINVAL);
  assert_true(disposition(SIGUSR1) == SIG_DFL);
  assert_true(disposition(SIGSEGV) == segv);
  assert_rc(asyncio_loop_remove_signal_handler(loop, 0), -EINVAL);
  assert_rc(asyncio_loop_remove_signal_handler(loop, -3), -EINVAL);
  assert_rc(asyncio_loop_remove_signal_handler(loop, NSIG), -EINVAL);
  assert_rc(asyncio_loop_remove_signal_handler(NULL, SIGUSR1), -EINVAL);
  /* a signal number that exists but never has a handler: Python returns False */
  assert_rc(asyncio_loop_remove_signal_handler(loop, SIGKILL), 0);
  assert_ok(asyncio_loop_close(loop));
}

static void *wrong_thread_calls(void *arg) {
  asyncio_loop_t *loop = arg;
  CHECK_RC(asyncio_loop_add_signal_handler(loop, SIGUSR2, record, NULL), ASYNCIO_EWRONGTHREAD);
  CHECK_RC(asyncio_loop_remove_signal_handler(loop, SIGUSR1), ASYNCIO_EWRONGTHREAD);
  return NULL;
}

static int task_wrong_thread(void *arg) {
  pthread_t th;
  int created = pthread_create(&th, NULL, wrong_thread_calls, arg) == 0;
  CHECK(created);
  if (created) pthread_join(th, NULL); /* quick: blocking the loop briefly is fine */
  return 0;
}

/* From a thread other than the running loop's: ASYNCIO_EWRONGTHREAD, nothing changes. */
TEST(wrong_thread) {
  reset();
  asyncio_loop_t *loop = real_loop();
  assert_ok(asyncio_loop_add_signal_handler(loop, SIGUSR1, record, ARG(SIGUSR1, 0)));
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, task_wrong_thread, loop, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  asyncio_task_free(t);
  ASSERT_SOFT();
  assert_true(disposition(SIGUSR2) == SIG_DFL);
  assert_rc(asyncio_loop_remove_signal_handler(loop, SIGUSR1), 1);
  assert_ok(asyncio_loop_close(loop));
}

/* A signal handled by one loop is -EBUSY on another until the first gives it up. */
TEST(one_loop_per_signal) {
  reset();
  asyncio_loop_t *a = real_loop(), *b = real_loop();
  assert_ok(asyncio_loop_add_signal_handler(a, SIGUSR1, record, ARG(SIGUSR1, 1)));
  assert_rc(asyncio_loop_add_signal_handler(b, SIGUSR1, record, ARG(SIGUSR1, 2)), -EBUSY);
  assert_ok(asyncio_loop_add_signal_handler(b, SIGUSR2, record, ARG(SIGUSR2, 2)));
  assert_rc(asyncio_loop_remove_signal_handler(b, SIGUSR1), 0); /* not b's */
  assert_rc(asyncio_loop_remove_signal_handler(a, SIGUSR1), 1);
  assert_ok(asyncio_loop_add_signal_handler(b, SIGUSR1, stop_loop, b));
  raise(SIGUSR1);
  assert_ok(asyncio_loop_run_forever(b));
  ASSERT_SOFT();
  assert_int_equal(calls[SIGUSR1], 1);
  assert_ok(asyncio_loop_close(b));
  /* b's close released both: a may take them */
  assert_ok(asyncio_loop_add_signal_handler(a, SIGUSR1, record, ARG(SIGUSR1, 1)));
  assert_ok(asyncio_loop_add_signal_handler(a, SIGUSR2, record, ARG(SIGUSR2, 1)));
  assert_ok(asyncio_loop_close(a));
  assert_true(disposition(SIGUSR1) == SIG_DFL);
  assert_true(disposition(SIGUSR2) == SIG_DFL);
}

/* loop.close() removes every handler the loop added and restores the dispositions. */
TEST(close_uninstalls) {
  reset();
  asyncio_loop_t *loop = real_loop();
  set_disposition(SIGHUP, SIG_IGN);
  assert_ok(asyncio_loop_add_signal_handler(loop, SIGHUP, record, ARG(SIGHUP, 0)));
  assert_ok(asyncio_loop_add_signal_handler(loop, SIGUSR1, record, ARG(SIGUSR1, 0)));
  assert_ok(asyncio_loop_add_signal_handler(loop, SIGUSR2, record, ARG(SIGUSR2, 0)));
  raise(SIGUSR2); /* arrived, never dispatched: dropped with the loop */
  asyncio_future_t *keep; /* keeps the closed loop's struct alive for the calls below */
  assert_ok(asyncio_future_new(&keep, loop));
  assert_ok(asyncio_loop_close(loop));
  assert_true(disposition(SIGHUP) == SIG_IGN);
  assert_true(disposition(SIGUSR1) == SIG_DFL);
  assert_true(disposition(SIGUSR2) == SIG_DFL);
  assert_rc(asyncio_loop_add_signal_handler(loop, SIGUSR1, record, NULL), ASYNCIO_ECLOSED);
  assert_rc(asyncio_loop_remove_signal_handler(loop, SIGUSR1), 0);
  assert_ok(asyncio_future_free(keep));
  set_disposition(SIGHUP, SIG_DFL);
  assert_int_equal(calls[SIGUSR2], 0);
  /* the signals are free for another loop */
  asyncio_loop_t *other = real_loop();
  assert_ok(asyncio_loop_add_signal_handler(other, SIGUSR1, record, NULL));
  assert_ok(asyncio_loop_close(other));
}

/* The first add allocates the loop's table: on ENOMEM nothing is installed. */
TEST(add_out_of_memory) {
  reset();
  asyncio_loop_t *loop = real_loop();
  harness_fail_alloc_after(1);
  assert_rc(asyncio_loop_add_signal_handler(loop, SIGUSR1, record, NULL), -ENOMEM);
  harness_fail_alloc_after(0);
  assert_true(disposition(SIGUSR1) == SIG_DFL);
  assert_rc(asyncio_loop_remove_signal_handler(loop, SIGUSR1), 0);
  assert_ok(asyncio_loop_add_signal_handler(loop, SIGUSR1, record, NULL));
  assert_ok(asyncio_loop_close(loop));
  assert_true(disposition(SIGUSR1) == SIG_DFL);
}

/* ---- asyncio_run's SIGINT ----------------------------------------------------- */

static int main_own_sigint(void *arg) {
  (void)arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  void (*runners)(int) = disposition(SIGINT);
  CHECK(runners != SIG_DFL); /* the runner's Ctrl-C handler */
  asyncio_future_t *f = NULL;
  CHECK_RC(asyncio_future_new(&f, NULL), 0);
  if (!f) return -ENOMEM;
  g_done = f;
  CHECK_RC(asyncio_loop_add_signal_handler(loop, SIGINT, record, ARG(SIGINT, 0)), 0);
  raise(SIGINT); /* the user's handler wins: main is not cancelled */
  CHECK_RC(asyncio_await(f, NULL), 0);
  g_done = NULL;
  asyncio_future_free(f);
  CHECK(calls[SIGINT] == 1);
  /* removing it gives the runner its handler back ... */
  CHECK_RC(asyncio_loop_remove_signal_handler(loop, SIGINT), 1);
  CHECK(disposition(SIGINT) == runners);
  /* ... and with it Ctrl-C's cancellation of main */
  raise(SIGINT);
  int rc = asyncio_sleep(3600.0);
  CHECK(rc == -ECANCELED);
  return rc;
}

/*
 * Inside asyncio_run a SIGINT handler replaces the runner's (main is not
 * cancelled); removing it restores the runner's, and the next Ctrl-C cancels
 * main (the run returns -EINTR).  Afterwards SIGINT is SIG_DFL again.
 */
TEST(sigint_handler_inside_run) {
  reset();
  assert_true(disposition(SIGINT) == SIG_DFL);
  assert_rc(asyncio_run(main_own_sigint, NULL, NULL), -EINTR);
  ASSERT_SOFT();
  assert_int_equal(calls[SIGINT], 1);
  assert_true(disposition(SIGINT) == SIG_DFL);
}

static int main_add_sigint_keep(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_loop_add_signal_handler(asyncio_get_running_loop(), SIGINT, record,
                                           ARG(SIGINT, 3)),
           0);
  return 0;
}

static int main_wait_sigint(void *arg) {
  (void)arg;
  asyncio_future_t *f = NULL;
  CHECK_RC(asyncio_future_new(&f, NULL), 0);
  if (!f) return -ENOMEM;
  g_done = f;
  int rc = asyncio_await(f, NULL); /* completed by the SIGINT that came between runs */
  g_done = NULL;
  asyncio_future_free(f);
  return rc;
}

/*
 * A SIGINT handler still installed when the run ends stays installed (as
 * Python's Runner leaves a handler that is not its own); a SIGINT between
 * runs is delivered by the next run; closing the runner's loop removes it,
 * and SIGINT goes back to SIG_DFL, not to the finished run's handler.
 */
TEST(sigint_handler_outlives_run) {
  reset();
  asyncio_runner_t *r;
  assert_ok(asyncio_runner_new(&r, NULL));
  assert_rc(asyncio_runner_run(r, main_add_sigint_keep, NULL, NULL), 0);
  assert_true(disposition(SIGINT) != SIG_DFL);
  raise(SIGINT); /* recorded; the process survives */
  assert_rc(asyncio_runner_run(r, main_wait_sigint, NULL, NULL), 0);
  ASSERT_SOFT();
  assert_int_equal(calls[SIGINT], 1);
  assert_ptr_equal(last_arg[SIGINT], ARG(SIGINT, 3));
  assert_true(disposition(SIGINT) != SIG_DFL);
  assert_ok(asyncio_runner_free(r));
  assert_true(disposition(SIGINT) == SIG_DFL);
}
