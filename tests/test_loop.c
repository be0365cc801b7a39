/*
 * test_loop.c - the event loop (include/asyncio/events.h).
 *
 * Python origin: Lib/asyncio/base_events.py (run_forever, stop, _run_once,
 * call_soon/call_later/call_at, the exception handler, debug mode),
 * events.py (Handle, TimerHandle), selector_events.py (add_reader ...),
 * and the tests in Lib/test/test_asyncio/test_base_events.py and
 * test_events.py.
 *
 * Assertions inside loop callbacks are "soft" (CHECK): cmocka's failure path
 * longjmps, which must not leave a loop marked running, so callbacks record
 * the first failure and the test body asserts it after the loop returns.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- soft checks ------------------------------------------------------- */


/* ---- helpers ------------------------------------------------------------ */

static int order[256];
static int norder;
static double times[256];

static void reset(void) {
  norder = 0;
  soft_fail[0] = 0;
}

static asyncio_loop_t *g_loop; /* the loop under test, for callbacks that need it */

/* Records its argument (and the loop time) in `order`. */
static void rec(void *arg) {
  if (norder < 256) {
    times[norder] = g_loop ? asyncio_loop_time(g_loop) : 0;
    order[norder++] = (int)(intptr_t)arg;
  }
}

static void stop_cb(void *arg) { asyncio_loop_stop((asyncio_loop_t *)arg); }

/* The idiom of test_utils.run_once(): call_soon(loop.stop); loop.run_forever(). */
static void run_once(asyncio_loop_t *loop) {
  assert_ok(asyncio_loop_call_soon(loop, stop_cb, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
}

static asyncio_loop_t *real_loop(void) {
  asyncio_loop_t *loop = NULL;
  asyncio_loop_options_t o = {0};
  o.clock = ASYNCIO_CLOCK_MONOTONIC;
  o.debug = -1;
  assert_ok(asyncio_loop_new(&loop, &o));
  return loop;
}

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void busy_wait(double seconds) {
  double end = mono_now() + seconds;
  while (mono_now() < end) {
  }
}

/* Redirects fd 2 into a memfd; cap_end restores it and returns what was written (malloc'd). */
typedef struct {
  int saved, fd;
} capture_t;

static void cap_begin(capture_t *c) {
  fflush(stderr);
  c->fd = memfd_create("captured-stderr", MFD_CLOEXEC);
  assert_true(c->fd >= 0);
  c->saved = dup(2);
  assert_true(c->saved >= 0);
  assert_true(dup2(c->fd, 2) == 2);
}

static char *cap_end(capture_t *c) {
  fflush(stderr);
  dup2(c->saved, 2);
  close(c->saved);
  off_t n = lseek(c->fd, 0, SEEK_END);
  char *buf = malloc((size_t)n + 1);
  ssize_t got = pread(c->fd, buf, (size_t)n, 0);
  buf[got > 0 ? got : 0] = 0;
  close(c->fd);
  if (buf[0]) fprintf(stderr, "[captured stderr]\n%s[end of captured stderr]\n", buf);
  return buf;
}

/* ---- life cycle --------------------------------------------------------- */

/* new_event_loop(): a fresh loop is neither running nor closed; close() frees it. */
TEST(loop_new_close) {
  asyncio_loop_t *loop = NULL;
  assert_ok(asyncio_loop_new(&loop, NULL));
  assert_non_null(loop);
  assert_false(asyncio_loop_is_running(loop));
  assert_false(asyncio_loop_is_closed(loop));
  assert_non_null(asyncio_loop_backend_name(loop));
  assert_true(asyncio_loop_get_slow_callback_duration(loop) == 0.1); /* Python's default */
  assert_null(asyncio_get_running_loop());
  assert_ok(asyncio_loop_close(loop));
}

static bool debug_with(const char *env, int opt) {
  if (env)
    setenv("ASYNCIO_DEBUG", env, 1);
  else
    unsetenv("ASYNCIO_DEBUG");
  asyncio_loop_options_t o = {0};
  o.debug = opt;
  asyncio_loop_t *loop = NULL;
  assert_ok(asyncio_loop_new(&loop, &o));
  bool d = asyncio_loop_get_debug(loop);
  assert_ok(asyncio_loop_close(loop));
  return d;
}

/*
 * Debug mode: a zeroed options struct (or NULL) takes it from ASYNCIO_DEBUG
 * (PYTHONASYNCIODEBUG); debug = 1 forces it on, -1 off.
 */
TEST(loop_debug_option_and_environment) {
  assert_false(debug_with(NULL, 0));
  assert_true(debug_with("1", 0));
  assert_false(debug_with("0", 0));
  assert_false(debug_with("", 0));
  assert_false(debug_with("1", -1));
  assert_true(debug_with(NULL, 1));
  setenv("ASYNCIO_DEBUG", "1", 1);
  asyncio_loop_t *loop = NULL;
  assert_ok(asyncio_loop_new(&loop, NULL));
  assert_true(asyncio_loop_get_debug(loop));
  assert_ok(asyncio_loop_set_debug(loop, false));
  assert_false(asyncio_loop_get_debug(loop));
  assert_ok(asyncio_loop_close(loop));
  unsetenv("ASYNCIO_DEBUG");
}

/* Options: an unknown clock is rejected (-EINVAL), out is required. */
TEST(loop_new_invalid_arguments) {
  asyncio_loop_t *loop = NULL;
  assert_rc(asyncio_loop_new(NULL, NULL), -EINVAL);
  asyncio_loop_options_t o = {0};
  o.clock = (asyncio_clock_t)7;
  o.debug = 0;
  assert_rc(asyncio_loop_new(&loop, &o), -EINVAL);
  assert_null(loop);
}

static void try_close_cb(void *arg) {
  asyncio_loop_t *loop = arg;
  CHECK_RC(asyncio_loop_close(loop), ASYNCIO_ERUNNING);
  CHECK(asyncio_loop_is_running(loop));
  CHECK(!asyncio_loop_is_closed(loop));
  asyncio_loop_stop(loop);
}

/* BaseEventLoop.close(): "Cannot close a running event loop" -> ASYNCIO_ERUNNING, nothing done. */
TEST(loop_close_while_running) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_ok(asyncio_loop_call_soon(loop, try_close_cb, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  ASSERT_SOFT();
  assert_false(asyncio_loop_is_running(loop));
  assert_ok(asyncio_loop_close(loop));
}

static asyncio_loop_t *other_loop;

static void nested_run_cb(void *arg) {
  asyncio_loop_t *loop = arg;
  /* _check_running(): "This event loop is already running" */
  CHECK_RC(asyncio_loop_run_forever(loop), ASYNCIO_ERUNNING);
  /* "Cannot run the event loop while another loop is running" */
  CHECK_RC(asyncio_loop_run_forever(other_loop), ASYNCIO_ERUNNING);
  CHECK(!asyncio_loop_is_running(other_loop));
  CHECK(asyncio_get_running_loop() == loop);
  asyncio_loop_stop(loop);
}

/* run_forever() inside a running loop (the same or another) fails with ASYNCIO_ERUNNING. */
TEST(loop_run_forever_nested) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  other_loop = harness_virtual_loop();
  assert_ok(asyncio_loop_call_soon(loop, nested_run_cb, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  ASSERT_SOFT();
  assert_ok(asyncio_loop_close(other_loop));
  assert_ok(asyncio_loop_close(loop));
}

static void running_state_cb(void *arg) {
  asyncio_loop_t *loop = arg;
  CHECK(asyncio_loop_is_running(loop));
  CHECK(!asyncio_loop_is_closed(loop));
  CHECK(asyncio_get_running_loop() == loop);
  CHECK(asyncio_current_task() == NULL); /* a plain callback is not a task */
  asyncio_loop_stop(loop);
}

/* is_running() and get_running_loop() inside a callback; false / NULL outside. */
TEST(loop_is_running_and_get_running_loop) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_false(asyncio_loop_is_running(loop));
  assert_null(asyncio_get_running_loop());
  assert_ok(asyncio_loop_call_soon(loop, running_state_cb, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  ASSERT_SOFT();
  assert_false(asyncio_loop_is_running(loop));
  assert_null(asyncio_get_running_loop());
  assert_ok(asyncio_loop_close(loop));
}

/*
 * test_events.test_run_forever_pre_stopped / the docs of loop.stop(): if
 * stop() is called before run_forever(), the loop runs the callbacks already
 * scheduled once and then exits.
 */
TEST(loop_stop_before_run_forever) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  g_loop = loop;
  assert_ok(asyncio_loop_call_soon(loop, rec, (void *)1, NULL));
  assert_ok(asyncio_loop_call_soon(loop, rec, (void *)2, NULL));
  assert_ok(asyncio_loop_stop(loop));
  assert_ok(asyncio_loop_run_forever(loop));
  assert_int_equal(norder, 2);
  assert_int_equal(order[0], 1);
  assert_int_equal(order[1], 2);
  /* The stop request was consumed: a second pre-stopped run also returns. */
  assert_ok(asyncio_loop_stop(loop));
  assert_ok(asyncio_loop_run_forever(loop));
  assert_int_equal(norder, 2);
  g_loop = NULL;
  assert_ok(asyncio_loop_close(loop));
}

static void schedule_then_stop(void *arg) {
  asyncio_loop_t *loop = arg;
  rec((void *)1);
  CHECK_RC(asyncio_loop_call_soon(loop, rec, (void *)3, NULL), 0);
  asyncio_loop_stop(loop);
}

/*
 * loop.stop() while running: "the loop will run the current batch of
 * callbacks and then exit.  New callbacks scheduled by callbacks will not run
 * in this case; they run the next time run_forever() is called."
 */
TEST(loop_stop_runs_current_batch_only) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  g_loop = loop;
  assert_ok(asyncio_loop_call_soon(loop, schedule_then_stop, loop, NULL));
  assert_ok(asyncio_loop_call_soon(loop, rec, (void *)2, NULL)); /* same batch: still runs */
  assert_ok(asyncio_loop_run_forever(loop));
  assert_int_equal(norder, 2);
  assert_int_equal(order[0], 1);
  assert_int_equal(order[1], 2);
  ASSERT_SOFT();
  run_once(loop); /* the callback scheduled during the stopped pass runs now, first */
  assert_int_equal(norder, 3);
  assert_int_equal(order[2], 3);
  g_loop = NULL;
  assert_ok(asyncio_loop_close(loop));
}

static int spins;
static int stopper_ran;

static void spinner(void *arg) {
  asyncio_loop_t *loop = arg;
  spins++;
  if (spins >= 10000) { /* safety: the test has failed by now */
    asyncio_loop_stop(loop);
    return;
  }
  CHECK_RC(asyncio_loop_call_soon(loop, spinner, loop, NULL), 0);
}

static void stopper(void *arg) {
  stopper_ran = 1;
  asyncio_loop_stop((asyncio_loop_t *)arg);
}

/*
 * _run_once() runs only the callbacks that were ready when the pass began
 * (ntodo = len(self._ready)); a callback that reschedules itself forever
 * therefore cannot starve a due timer.
 */
TEST(loop_callbacks_scheduled_during_pass_run_next_pass) {
  reset();
  spins = 0;
  stopper_ran = 0;
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_ok(asyncio_loop_call_soon(loop, spinner, loop, NULL));
  assert_ok(asyncio_loop_call_later(loop, 0, stopper, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  ASSERT_SOFT();
  assert_true(stopper_ran);
  assert_true(spins <= 3);
  assert_ok(asyncio_loop_close(loop));
}

/* call_soon(): callbacks run in the order they were scheduled (FIFO). */
TEST(loop_call_soon_fifo) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_handle_t h = ASYNCIO_HANDLE_NONE;
  for (int i = 0; i < 50; i++) assert_ok(asyncio_loop_call_soon(loop, rec, (void *)(intptr_t)i, &h));
  assert_non_null(h.ptr); /* a real handle was stored */
  run_once(loop);
  assert_int_equal(norder, 50);
  for (int i = 0; i < 50; i++) assert_int_equal(order[i], i);
  assert_ok(asyncio_loop_close(loop));
}

/*
 * call_later/call_at: timers run in deadline order, each at its deadline
 * (virtual clock: exactly), with call_at taking an absolute loop time.
 */
TEST(loop_call_later_call_at_order) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  g_loop = loop;
  assert_true(asyncio_loop_time(loop) == 0.0);
  assert_ok(asyncio_loop_call_later(loop, 3.0, rec, (void *)30, NULL));
  assert_ok(asyncio_loop_call_later(loop, 1.0, rec, (void *)10, NULL));
  assert_ok(asyncio_loop_call_later(loop, 2.0, rec, (void *)20, NULL));
  assert_ok(asyncio_loop_call_at(loop, 1.5, rec, (void *)15, NULL));
  assert_ok(asyncio_loop_call_soon(loop, rec, (void *)0, NULL));
  assert_ok(asyncio_loop_call_later(loop, 10.0, stop_cb, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  assert_int_equal(norder, 5);
  const int want[] = {0, 10, 15, 20, 30};
  const double at[] = {0.0, 1.0, 1.5, 2.0, 3.0};
  for (int i = 0; i < 5; i++) {
    assert_int_equal(order[i], want[i]);
    assert_true(times[i] == at[i]);
  }
  assert_true(asyncio_loop_time(loop) == 10.0);
  g_loop = NULL;
  assert_ok(asyncio_loop_close(loop));
}

/* Header contract: "Callbacks due at the same time run in the order they were scheduled." */
TEST(loop_equal_deadlines_run_in_scheduling_order) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  for (int i = 0; i < 40; i++) {
    /* interleave other deadlines so the heap really reorders things */
    assert_ok(asyncio_loop_call_later(loop, 0.25 * (i % 7), rec, (void *)(intptr_t)(1000 + i), NULL));
    if (i % 2)
      assert_ok(asyncio_loop_call_later(loop, 1.0, rec, (void *)(intptr_t)i, NULL));
    else
      assert_ok(asyncio_loop_call_at(loop, 1.0, rec, (void *)(intptr_t)i, NULL));
  }
  assert_ok(asyncio_loop_call_later(loop, 5.0, stop_cb, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  assert_int_equal(norder, 80);
  int next = 0;
  for (int i = 0; i < norder; i++)
    if (order[i] < 1000) assert_int_equal(order[i], next++);
  assert_int_equal(next, 40);
  assert_ok(asyncio_loop_close(loop));
}

/*
 * _run_once(): timers that are due are appended to the ready queue after
 * the callbacks already there, so call_later(0, A); call_soon(B) runs B, A.
 */
TEST(loop_due_timers_queue_after_ready_callbacks) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_ok(asyncio_loop_call_later(loop, 0.0, rec, (void *)1, NULL));
  assert_ok(asyncio_loop_call_soon(loop, rec, (void *)2, NULL));
  assert_ok(asyncio_loop_call_later(loop, 1.0, stop_cb, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  assert_int_equal(norder, 2);
  assert_int_equal(order[0], 2);
  assert_int_equal(order[1], 1);
  assert_ok(asyncio_loop_close(loop));
}

/* call_later with a negative delay means now: it runs in the next pass, before later timers. */
TEST(loop_call_later_negative_delay) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  g_loop = loop;
  assert_ok(asyncio_loop_call_later(loop, 0.5, rec, (void *)2, NULL));
  assert_ok(asyncio_loop_call_later(loop, -5.0, rec, (void *)1, NULL));
  assert_ok(asyncio_loop_call_later(loop, 1.0, stop_cb, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  assert_int_equal(norder, 2);
  assert_int_equal(order[0], 1);
  assert_true(times[0] == 0.0);
  assert_int_equal(order[1], 2);
  g_loop = NULL;
  assert_ok(asyncio_loop_close(loop));
}

/* A NaN delay or deadline is rejected with -EINVAL and schedules nothing. */
TEST(loop_call_later_nan) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_rc(asyncio_loop_call_later(loop, NAN, rec, (void *)1, NULL), -EINVAL);
  assert_rc(asyncio_loop_call_at(loop, NAN, rec, (void *)1, NULL), -EINVAL);
  run_once(loop);
  assert_int_equal(norder, 0);
  assert_ok(asyncio_loop_close(loop));
}

/*
 * The virtual clock starts at 0 and jumps straight to the next timer when
 * nothing can run: a 3600 s timer fires at once, at exactly 3600.
 */
TEST(loop_virtual_clock_jumps) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  g_loop = loop;
  assert_true(asyncio_loop_time(loop) == 0.0);
  double t0 = mono_now();
  assert_ok(asyncio_loop_call_later(loop, 3600.0, rec, (void *)1, NULL));
  assert_ok(asyncio_loop_call_later(loop, 3600.0, stop_cb, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  assert_int_equal(norder, 1);
  assert_true(times[0] == 3600.0);
  assert_true(asyncio_loop_time(loop) == 3600.0);
  assert_true(mono_now() - t0 < 30.0); /* not an hour */
  g_loop = NULL;
  assert_ok(asyncio_loop_close(loop));
}

static void busy_then_check_time(void *arg) {
  asyncio_loop_t *loop = arg;
  busy_wait(0.06);
  CHECK(asyncio_loop_time(loop) == 0.0);
}

static int pipe_reads;
static double read_time;

static void drain_reader(int fd, void *arg) {
  asyncio_loop_t *loop = arg;
  char buf[64];
  pipe_reads++;
  read_time = asyncio_loop_time(loop);
  (void)!read(fd, buf, sizeof buf);
  asyncio_loop_remove_reader(loop, fd);
}

/*
 * Virtual time stands still while anything can run (a slow callback, a
 * ready file descriptor) and only jumps when the loop would otherwise block.
 */
TEST(loop_virtual_clock_stands_still_while_busy) {
  reset();
  pipe_reads = 0;
  asyncio_loop_t *loop = harness_virtual_loop();
  int p[2];
  assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
  assert_int_equal(write(p[1], "x", 1), 1);
  assert_ok(asyncio_loop_call_soon(loop, busy_then_check_time, loop, NULL));
  assert_ok(asyncio_loop_add_reader(loop, p[0], drain_reader, loop));
  assert_ok(asyncio_loop_call_later(loop, 10.0, stop_cb, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  ASSERT_SOFT();
  assert_int_equal(pipe_reads, 1);
  assert_true(read_time == 0.0);
  assert_true(asyncio_loop_time(loop) == 10.0);
  assert_ok(asyncio_loop_close(loop));
  close(p[0]);
  close(p[1]);
}

/* loop.time() on the real clock is time.monotonic(): CLOCK_MONOTONIC, never going back. */
TEST(loop_time_monotonic) {
  asyncio_loop_t *loop = real_loop();
  double m0 = mono_now();
  double t0 = asyncio_loop_time(loop);
  assert_true(fabs(t0 - m0) < 1.0);
  double prev = t0;
  for (int i = 0; i < 1000; i++) {
    double t = asyncio_loop_time(loop);
    assert_true(t >= prev);
    prev = t;
  }
  struct timespec ts = {0, 60 * 1000 * 1000};
  nanosleep(&ts, NULL);
  assert_true(asyncio_loop_time(loop) > t0);
  assert_ok(asyncio_loop_close(loop));
}

/* ---- handles ------------------------------------------------------------ */

/* Handle.cancel() before the callback runs: it never runs; cancelled() is true. */
TEST(loop_handle_cancel_before_run) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_handle_t h1, h2, t1;
  assert_ok(asyncio_loop_call_soon(loop, rec, (void *)1, &h1));
  assert_ok(asyncio_loop_call_soon(loop, rec, (void *)2, &h2));
  assert_ok(asyncio_loop_call_later(loop, 1.0, rec, (void *)3, &t1));
  assert_false(asyncio_handle_cancelled(h1));
  assert_false(asyncio_handle_cancelled(t1));
  asyncio_handle_cancel(h1);
  asyncio_handle_cancel(t1);
  assert_true(asyncio_handle_cancelled(h1));
  assert_true(asyncio_handle_cancelled(t1));
  assert_false(asyncio_handle_cancelled(h2));
  assert_ok(asyncio_loop_call_later(loop, 2.0, stop_cb, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  assert_int_equal(norder, 1);
  assert_int_equal(order[0], 2);
  assert_ok(asyncio_loop_close(loop));
}

/* Cancelling twice is harmless (Handle.cancel is idempotent). */
TEST(loop_handle_double_cancel) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_handle_t h, t;
  assert_ok(asyncio_loop_call_soon(loop, rec, (void *)1, &h));
  assert_ok(asyncio_loop_call_later(loop, 1.0, rec, (void *)2, &t));
  asyncio_handle_cancel(h);
  asyncio_handle_cancel(h);
  asyncio_handle_cancel(t);
  asyncio_handle_cancel(t);
  assert_true(asyncio_handle_cancelled(h));
  assert_true(asyncio_handle_cancelled(t));
  assert_ok(asyncio_loop_call_soon(loop, rec, (void *)3, NULL));
  assert_ok(asyncio_loop_call_later(loop, 2.0, stop_cb, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  assert_int_equal(norder, 1);
  assert_int_equal(order[0], 3);
  assert_ok(asyncio_loop_close(loop));
}

/*
 * Cancelling a handle whose callback already ran is a no-op, even after the
 * loop recycled the handle's memory for new callbacks (generation numbers).
 */
TEST(loop_handle_cancel_after_run_is_noop) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_handle_t h, t;
  assert_ok(asyncio_loop_call_soon(loop, rec, (void *)1, &h));
  assert_ok(asyncio_loop_call_later(loop, 0.5, rec, (void *)2, &t));
  assert_ok(asyncio_loop_call_later(loop, 1.0, stop_cb, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  assert_int_equal(norder, 2);
  assert_false(asyncio_handle_cancelled(h)); /* false once it ran */
  assert_false(asyncio_handle_cancelled(t));
  /* New callbacks probably reuse the pooled handles. */
  for (int i = 0; i < 8; i++) {
    assert_ok(asyncio_loop_call_soon(loop, rec, (void *)(intptr_t)(10 + i), NULL));
    assert_ok(asyncio_loop_call_later(loop, 0.5, rec, (void *)(intptr_t)(20 + i), NULL));
  }
  asyncio_handle_cancel(h);
  asyncio_handle_cancel(t);
  assert_false(asyncio_handle_cancelled(h));
  assert_false(asyncio_handle_cancelled(t));
  assert_ok(asyncio_loop_call_later(loop, 1.0, stop_cb, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  assert_int_equal(norder, 2 + 16);
  assert_ok(asyncio_loop_close(loop));
}


/*
 * Handle.cancelled() stays true for a cancelled handle after its memory was
 * recycled, even when the recycled handle is cancelled too (each value keeps
 * its own answer), and stays false for handles that ran.
 */
TEST(loop_handle_cancelled_survives_reuse) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_handle_t hs[40];
  for (int i = 0; i < 40; i++) {
    assert_ok(asyncio_loop_call_soon(loop, rec, (void *)(intptr_t)i, &hs[i]));
    if (i % 3 == 0) asyncio_handle_cancel(hs[i]);
    run_once(loop); /* the slot goes back to the pool and is reused next round */
  }
  for (int i = 0; i < 40; i++) {
    if (asyncio_handle_cancelled(hs[i]) != (i % 3 == 0))
      fail_msg("handle %d: cancelled() = %d", i, (int)asyncio_handle_cancelled(hs[i]));
  }
  assert_int_equal(norder, 40 - 14);
  assert_ok(asyncio_loop_close(loop));
}

static asyncio_handle_t self_handle;
static int self_saw_cancelled;

static void cancel_self(void *arg) {
  (void)arg;
  asyncio_handle_cancel(self_handle);
  self_saw_cancelled = asyncio_handle_cancelled(self_handle);
}

/* A callback that cancels its own handle while running marks it (Handle.cancel sets _cancelled). */
TEST(loop_handle_cancel_while_running) {
  reset();
  self_saw_cancelled = 0;
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_ok(asyncio_loop_call_soon(loop, cancel_self, NULL, &self_handle));
  run_once(loop);
  assert_int_equal(self_saw_cancelled, 1);
  assert_true(asyncio_handle_cancelled(self_handle));
  assert_ok(asyncio_loop_close(loop));
}

/* ASYNCIO_HANDLE_NONE is a valid "no handle": cancel does nothing, it is not cancelled, no when. */
TEST(loop_handle_none) {
  asyncio_handle_t none = ASYNCIO_HANDLE_NONE;
  asyncio_handle_cancel(none);
  assert_false(asyncio_handle_cancelled(none));
  double when = -1;
  assert_rc(asyncio_handle_when(none, &when), ASYNCIO_EINVALIDSTATE);
}

static asyncio_handle_t victim;

static void cancel_victim(void *arg) {
  (void)arg;
  rec((void *)1);
  asyncio_handle_cancel(victim);
}

/* A handle cancelled by an earlier callback of the same pass is skipped (_run_once checks _cancelled). */
TEST(loop_handle_cancel_from_same_pass) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_ok(asyncio_loop_call_soon(loop, cancel_victim, NULL, NULL));
  assert_ok(asyncio_loop_call_soon(loop, rec, (void *)2, &victim));
  assert_ok(asyncio_loop_call_soon(loop, rec, (void *)3, NULL));
  run_once(loop);
  assert_int_equal(norder, 2);
  assert_int_equal(order[0], 1);
  assert_int_equal(order[1], 3);
  assert_true(asyncio_handle_cancelled(victim));
  assert_ok(asyncio_loop_close(loop));
}

/* TimerHandle.when(): the absolute loop time; not a timer / already ran -> ASYNCIO_EINVALIDSTATE. */
TEST(loop_handle_when) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_handle_t t1, t2, s;
  double when = -1;
  assert_ok(asyncio_loop_call_later(loop, 2.5, rec, (void *)1, &t1));
  assert_ok(asyncio_loop_call_at(loop, 7.25, rec, (void *)2, &t2));
  assert_ok(asyncio_loop_call_soon(loop, rec, (void *)3, &s));
  assert_ok(asyncio_handle_when(t1, &when));
  assert_true(when == 2.5);
  assert_ok(asyncio_handle_when(t2, &when));
  assert_true(when == 7.25);
  assert_rc(asyncio_handle_when(s, &when), ASYNCIO_EINVALIDSTATE);
  assert_ok(asyncio_loop_call_later(loop, 3.0, stop_cb, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  assert_rc(asyncio_handle_when(t1, &when), ASYNCIO_EINVALIDSTATE); /* it ran */
  assert_ok(asyncio_handle_when(t2, &when));                        /* still pending */
  assert_true(when == 7.25);
  asyncio_handle_cancel(t2);
  assert_ok(asyncio_loop_close(loop));
}

/* ---- threads ------------------------------------------------------------ */

static pthread_t main_thread;
static atomic_int ts_ran, ts_timed_out;

static void ts_target(void *arg) {
  asyncio_loop_t *loop = arg;
  CHECK(pthread_equal(pthread_self(), main_thread));
  CHECK(asyncio_get_running_loop() == loop);
  ts_ran = 1;
  asyncio_loop_stop(loop);
}

static void ts_timeout(void *arg) {
  ts_timed_out = 1;
  asyncio_loop_stop((asyncio_loop_t *)arg);
}

static atomic_int loop_started;

static void mark_started(void *arg) {
  (void)arg;
  loop_started = 1;
}

static void *ts_thread(void *arg) {
  asyncio_loop_t *loop = arg;
  while (!loop_started) {
    struct timespec ts = {0, 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  /* Give the loop time to block in epoll_wait (not asserted, only makes the wakeup matter). */
  struct timespec ts = {0, 100 * 1000 * 1000};
  nanosleep(&ts, NULL);
  return (void *)(intptr_t)asyncio_loop_call_soon_threadsafe(loop, ts_target, loop);
}

/*
 * call_soon_threadsafe() from another thread wakes a loop blocked in its
 * poll (_write_to_self) and the callback runs on the loop's thread.
 */
TEST(loop_call_soon_threadsafe_wakes_loop) {
  reset();
  ts_ran = ts_timed_out = loop_started = 0;
  main_thread = pthread_self();
  asyncio_loop_t *loop = real_loop();
  asyncio_handle_t safety;
  assert_ok(asyncio_loop_call_soon(loop, mark_started, NULL, NULL));
  assert_ok(asyncio_loop_call_later(loop, 30.0, ts_timeout, loop, &safety));
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, ts_thread, loop), 0);
  assert_ok(asyncio_loop_run_forever(loop));
  void *ret;
  pthread_join(th, &ret);
  assert_int_equal((int)(intptr_t)ret, 0);
  ASSERT_SOFT();
  assert_true(ts_ran);
  assert_false(ts_timed_out);
  asyncio_handle_cancel(safety);
  assert_ok(asyncio_loop_close(loop));
}

#define TS_THREADS 4
#define TS_PER_THREAD 2000
static atomic_int ts_count;

static void ts_count_cb(void *arg) {
  asyncio_loop_t *loop = arg;
  if (++ts_count == TS_THREADS * TS_PER_THREAD) asyncio_loop_stop(loop);
}

static void *ts_many(void *arg) {
  asyncio_loop_t *loop = arg;
  for (int i = 0; i < TS_PER_THREAD; i++)
    if (asyncio_loop_call_soon_threadsafe(loop, ts_count_cb, loop) != 0) return (void *)1;
  return NULL;
}

/* call_soon_threadsafe() from several threads at once: every callback runs exactly once. */
TEST(loop_call_soon_threadsafe_many_threads) {
  reset();
  ts_count = 0;
  ts_timed_out = 0;
  asyncio_loop_t *loop = real_loop();
  asyncio_handle_t safety;
  assert_ok(asyncio_loop_call_later(loop, 30.0, ts_timeout, loop, &safety));
  pthread_t th[TS_THREADS];
  for (int i = 0; i < TS_THREADS; i++) assert_int_equal(pthread_create(&th[i], NULL, ts_many, loop), 0);
  assert_ok(asyncio_loop_run_forever(loop));
  for (int i = 0; i < TS_THREADS; i++) {
    void *ret;
    pthread_join(th[i], &ret);
    assert_null(ret);
  }
  assert_false(ts_timed_out);
  assert_int_equal(ts_count, TS_THREADS * TS_PER_THREAD);
  asyncio_handle_cancel(safety);
  assert_ok(asyncio_loop_close(loop));
}

static atomic_int race_queued, race_closed;

static void race_noop(void *arg) { (void)arg; }

static void *race_caller(void *arg) {
  asyncio_loop_t *loop = arg;
  for (;;) {
    int rc = asyncio_loop_call_soon_threadsafe(loop, race_noop, NULL);
    if (rc == ASYNCIO_ECLOSED) break;
    if (rc != 0) return (void *)1;
    atomic_fetch_add(&race_queued, 1);
  }
  atomic_fetch_add(&race_closed, 1);
  return NULL;
}

/*
 * call_soon_threadsafe racing with close: every call either queued before the
 * close (the callback is dropped with the ready queue, nothing leaks) or got
 * ASYNCIO_ECLOSED; never a crash or a write to a closed eventfd.  A pending
 * future keeps the closed loop's memory alive for the callers.
 */
TEST(loop_call_soon_threadsafe_races_close) {
  asyncio_loop_t *loop = NULL;
  assert_ok(asyncio_loop_new(&loop, NULL));
  asyncio_future_t *keep;
  assert_ok(asyncio_future_new(&keep, loop));
  atomic_store(&race_queued, 0);
  atomic_store(&race_closed, 0);
  pthread_t th[2];
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, race_caller, loop), 0);
  while (atomic_load(&race_queued) < 200) run_once(loop);
  assert_ok(asyncio_loop_close(loop));
  for (int i = 0; i < 2; i++) {
    void *ret;
    pthread_join(th[i], &ret);
    assert_null(ret);
  }
  assert_int_equal(atomic_load(&race_closed), 2);
  assert_rc(asyncio_loop_call_soon_threadsafe(loop, race_noop, NULL), ASYNCIO_ECLOSED);
  assert_ok(asyncio_future_free(keep));
}

static int wt_pipe[2];
static int wt_results[8];
static int wt_more[16];
static int wt_ran;
static asyncio_future_t *wt_fut;
static asyncio_task_t *wt_task;

static void wt_done(asyncio_future_t *f, void *arg) {
  (void)f;
  (void)arg;
  wt_ran = 1;
}

static int wt_coro(void *arg) {
  (void)arg;
  return 0;
}

static void wt_should_not_run(void *arg) {
  (void)arg;
  wt_ran = 1;
}

static void wt_io(int fd, void *arg) {
  (void)fd;
  (void)arg;
}

static void *wrong_thread(void *arg) {
  asyncio_loop_t *loop = arg;
  wt_results[0] = asyncio_loop_call_soon(loop, wt_should_not_run, NULL, NULL);
  wt_results[1] = asyncio_loop_call_later(loop, 0.1, wt_should_not_run, NULL, NULL);
  wt_results[2] = asyncio_loop_call_at(loop, 0.1, wt_should_not_run, NULL, NULL);
  wt_results[3] = asyncio_loop_add_reader(loop, wt_pipe[0], wt_io, NULL);
  wt_results[4] = asyncio_loop_add_writer(loop, wt_pipe[1], wt_io, NULL);
  wt_results[5] = asyncio_loop_remove_reader(loop, wt_pipe[0]);
  wt_results[6] = asyncio_loop_remove_writer(loop, wt_pipe[1]);
  /* futures, tasks and loop settings are loop-thread-only too */
  asyncio_task_t *buf[2];
  wt_more[0] = asyncio_future_set_result(wt_fut, 1, NULL);
  wt_more[1] = asyncio_future_set_exception(wt_fut, -EIO, NULL);
  wt_more[2] = asyncio_future_cancel(wt_fut, NULL);
  wt_more[3] = asyncio_future_add_done_callback(wt_fut, wt_done, NULL);
  wt_more[4] = asyncio_future_remove_done_callback(wt_fut, wt_done, NULL);
  wt_more[5] = asyncio_future_result(wt_fut, NULL);
  wt_more[6] = asyncio_future_exception(wt_fut);
  wt_more[7] = asyncio_future_free(wt_fut);
  wt_more[8] = asyncio_task_set_name(wt_task, "x");
  wt_more[9] = asyncio_task_uncancel(wt_task);
  wt_more[10] = asyncio_task_cancel(wt_task, NULL);
  wt_more[11] = asyncio_task_free(wt_task);
  wt_more[12] = (int)asyncio_all_tasks(loop, buf, 2);
  wt_more[13] = asyncio_loop_set_exception_handler(loop, NULL, NULL);
  wt_more[14] = asyncio_loop_set_debug(loop, true);
  wt_more[15] = asyncio_loop_stop(loop);
  /* the thread-safe path works from here */
  wt_results[7] = asyncio_loop_call_soon_threadsafe(loop, stop_cb, loop);
  return NULL;
}

static void spawn_wrong_thread(void *arg) {
  pthread_t th;
  if (pthread_create(&th, NULL, wrong_thread, arg) != 0) {
    CHECK(0);
    asyncio_loop_stop((asyncio_loop_t *)arg);
    return;
  }
  pthread_join(th, NULL); /* the loop is running (inside this callback) meanwhile */
}

/*
 * "Only the *_threadsafe calls may be made from another thread while it
 * runs; every other call fails with ASYNCIO_EWRONGTHREAD" (Python's
 * _check_thread: "Non-thread-safe operation invoked on an event loop other
 * than the current one").
 */
TEST(loop_wrong_thread_calls) {
  reset();
  wt_ran = 0;
  memset(wt_results, 0x7f, sizeof wt_results);
  memset(wt_more, 0x7f, sizeof wt_more);
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_int_equal(pipe2(wt_pipe, O_NONBLOCK | O_CLOEXEC), 0);
  assert_ok(asyncio_future_new(&wt_fut, loop));
  assert_ok(asyncio_loop_create_task(loop, &wt_task, wt_coro, NULL, NULL));
  assert_ok(asyncio_loop_call_later(loop, 0.5, spawn_wrong_thread, loop, NULL));
  assert_ok(asyncio_loop_call_later(loop, 100.0, stop_cb, loop, NULL)); /* safety */
  assert_ok(asyncio_loop_run_forever(loop));
  ASSERT_SOFT();
  for (int i = 0; i < 5; i++) assert_rc(wt_results[i], ASYNCIO_EWRONGTHREAD);
  assert_rc(wt_results[5], ASYNCIO_EWRONGTHREAD);
  assert_rc(wt_results[6], ASYNCIO_EWRONGTHREAD);
  assert_rc(wt_results[7], 0);
  for (int i = 0; i < 16; i++)
    if (wt_more[i] != ASYNCIO_EWRONGTHREAD)
      fail_msg("wrong-thread call %d returned %d (%s)", i, wt_more[i], asyncio_errname(wt_more[i]));
  assert_false(asyncio_future_done(wt_fut)); /* nothing changed */
  assert_false(asyncio_loop_get_debug(loop));
  assert_ok(asyncio_future_free(wt_fut));
  assert_ok(asyncio_task_free(wt_task));
  assert_true(asyncio_loop_time(loop) < 100.0); /* stopped by the threadsafe call */
  run_once(loop);
  assert_false(wt_ran); /* the failed calls scheduled nothing */
  assert_rc(asyncio_loop_remove_reader(loop, wt_pipe[0]), 0);
  assert_rc(asyncio_loop_remove_writer(loop, wt_pipe[1]), 0);
  assert_ok(asyncio_loop_close(loop));
  close(wt_pipe[0]);
  close(wt_pipe[1]);
}

/* ---- file descriptors --------------------------------------------------- */

static int io_calls[4];
static asyncio_handle_t io_safety;
static int io_timed_out;

static void io_timeout(void *arg) {
  io_timed_out = 1;
  asyncio_loop_stop((asyncio_loop_t *)arg);
}

/* Arms a virtual-time safety timer: if no I/O callback fires, time jumps to it. */
static void io_arm(asyncio_loop_t *loop) {
  memset(io_calls, 0, sizeof io_calls);
  io_timed_out = 0;
  assert_ok(asyncio_loop_call_later(loop, 1000.0, io_timeout, loop, &io_safety));
}

static int level_fd;

static void level_reader(int fd, void *arg) {
  asyncio_loop_t *loop = arg;
  CHECK(fd == level_fd);
  if (++io_calls[0] == 3) { /* level-triggered: called again while data is there */
    char buf[16];
    (void)!read(fd, buf, sizeof buf);
    CHECK_RC(asyncio_loop_remove_reader(loop, fd), 1);
    CHECK_RC(asyncio_loop_remove_reader(loop, fd), 0);
    asyncio_loop_stop(loop);
  }
}

/*
 * add_reader(): the callback runs when the fd is readable, with the fd and
 * its argument, again on every pass while it stays readable (selectors are
 * level-triggered); remove_reader() returns 1, then 0 (False) once gone.
 */
TEST(loop_add_reader_pipe) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  int p[2];
  assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
  level_fd = p[0];
  assert_ok(asyncio_loop_add_reader(loop, p[0], level_reader, loop));
  run_once(loop);
  assert_int_equal(io_calls[0], 0); /* nothing to read yet */
  io_arm(loop);
  assert_int_equal(write(p[1], "ab", 2), 2);
  assert_ok(asyncio_loop_run_forever(loop));
  ASSERT_SOFT();
  assert_false(io_timed_out);
  assert_int_equal(io_calls[0], 3);
  assert_rc(asyncio_loop_remove_reader(loop, p[0]), 0);
  assert_rc(asyncio_loop_remove_writer(loop, p[0]), 0); /* never had a writer */
  asyncio_handle_cancel(io_safety);
  assert_ok(asyncio_loop_close(loop));
  close(p[0]);
  close(p[1]);
}

static void reader_a(int fd, void *arg) {
  (void)fd;
  io_calls[0]++;
  asyncio_loop_stop((asyncio_loop_t *)arg);
}

static void reader_b(int fd, void *arg) {
  char buf[16];
  (void)!read(fd, buf, sizeof buf);
  io_calls[1]++;
  asyncio_loop_stop((asyncio_loop_t *)arg);
}

static char order_log[16];
static size_t order_n;
static asyncio_future_t *order_fut;

static void order_put(char c) {
  if (order_n + 1 < sizeof order_log) order_log[order_n++] = c;
}

static int order_task(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_await(order_fut, NULL), 0);
  order_put('a');
  return 0;
}

static void order_plain(void *arg) {
  (void)arg;
  order_put('c');
}

static void order_later(void *arg) {
  (void)arg;
  order_put('y');
}

static void order_first(void *arg) {
  order_put('X');
  CHECK_RC(asyncio_loop_call_soon(arg, order_later, NULL, NULL), 0);
}

static void order_reader_a(int fd, void *arg) {
  char buf[4];
  (void)arg;
  (void)!read(fd, buf, sizeof buf);
  order_put('A');
  CHECK_RC(asyncio_future_set_result(order_fut, 0, NULL), 0);
}

static void order_reader_b(int fd, void *arg) {
  char buf[4];
  (void)!read(fd, buf, sizeof buf);
  order_put('B');
  CHECK_RC(asyncio_loop_call_soon(arg, order_plain, NULL, NULL), 0);
}

/*
 * One poll reports two readers; a plain callback X ran first in the same
 * batch.  The task the first reader wakes runs right after it, before the
 * second reader (its continuation), and ahead of X's call_soon, which waits
 * for the next iteration like the plain callback the second reader
 * schedules.  CPython: "XAB" then "yac"; here "XAaB" then "yc".
 */
TEST(loop_io_wakeup_runs_after_its_callback) {
  reset();
  asyncio_loop_t *loop = real_loop();
  int a[2], b[2];
  assert_int_equal(pipe2(a, O_NONBLOCK | O_CLOEXEC), 0);
  assert_int_equal(pipe2(b, O_NONBLOCK | O_CLOEXEC), 0);
  order_n = 0;
  assert_ok(asyncio_future_new(&order_fut, loop));
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, order_task, NULL, NULL));
  run_once(loop); /* the task waits on the future */
  assert_ok(asyncio_loop_add_reader(loop, a[0], order_reader_a, loop));
  assert_ok(asyncio_loop_add_reader(loop, b[0], order_reader_b, loop));
  assert_int_equal(write(a[1], "x", 1), 1);
  assert_int_equal(write(b[1], "y", 1), 1);
  assert_ok(asyncio_loop_call_soon(loop, order_first, loop, NULL));
  run_once(loop);
  ASSERT_SOFT();
  assert_int_equal(order_n, 4);
  assert_memory_equal(order_log, "XAaB", 4);
  assert_true(asyncio_future_done(t));
  run_once(loop);
  assert_int_equal(order_n, 6);
  assert_memory_equal(order_log, "XAaByc", 6);
  asyncio_task_free(t);
  asyncio_future_free(order_fut);
  assert_rc(asyncio_loop_remove_reader(loop, a[0]), 1);
  assert_rc(asyncio_loop_remove_reader(loop, b[0]), 1);
  assert_ok(asyncio_loop_close(loop));
  for (int i = 0; i < 2; i++) close(a[i]), close(b[i]);
}

/* add_reader() on an fd that has a reader replaces it (selector modify): only the new one runs. */
TEST(loop_add_reader_replaces) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  int p[2];
  assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
  io_arm(loop);
  assert_ok(asyncio_loop_add_reader(loop, p[0], reader_a, loop));
  assert_ok(asyncio_loop_add_reader(loop, p[0], reader_b, loop));
  assert_int_equal(write(p[1], "x", 1), 1);
  assert_ok(asyncio_loop_run_forever(loop));
  assert_false(io_timed_out);
  assert_int_equal(io_calls[0], 0);
  assert_int_equal(io_calls[1], 1);
  assert_rc(asyncio_loop_remove_reader(loop, p[0]), 1);
  assert_rc(asyncio_loop_remove_reader(loop, p[0]), 0);
  asyncio_handle_cancel(io_safety);
  assert_ok(asyncio_loop_close(loop));
  close(p[0]);
  close(p[1]);
}

static void writer_cb(int fd, void *arg) {
  asyncio_loop_t *loop = arg;
  io_calls[2]++;
  CHECK_RC(asyncio_loop_remove_writer(loop, fd), 1);
  asyncio_loop_stop(loop);
}

/* add_writer(): an empty pipe is writable at once; remove_writer() returns 1 then 0. */
TEST(loop_add_writer_pipe) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  int p[2];
  assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
  io_arm(loop);
  assert_ok(asyncio_loop_add_writer(loop, p[1], writer_cb, loop));
  assert_ok(asyncio_loop_run_forever(loop));
  ASSERT_SOFT();
  assert_false(io_timed_out);
  assert_int_equal(io_calls[2], 1);
  assert_rc(asyncio_loop_remove_writer(loop, p[1]), 0);
  asyncio_handle_cancel(io_safety);
  assert_ok(asyncio_loop_close(loop));
  close(p[0]);
  close(p[1]);
}

static void both_reader(int fd, void *arg) {
  char buf[16];
  (void)arg;
  (void)!read(fd, buf, sizeof buf);
  io_calls[0]++;
}

static void both_writer(int fd, void *arg) {
  asyncio_loop_t *loop = arg;
  (void)fd;
  if (++io_calls[1] == 3) asyncio_loop_stop(loop);
}

/*
 * A reader and a writer on the same socket are independent: removing the
 * reader leaves the writer watched (the selector keeps EVENT_WRITE).
 */
TEST(loop_reader_and_writer_same_fd) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  int s[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, s), 0);
  io_arm(loop);
  assert_ok(asyncio_loop_add_reader(loop, s[0], both_reader, loop));
  assert_ok(asyncio_loop_add_writer(loop, s[0], both_writer, loop));
  assert_int_equal(write(s[1], "x", 1), 1);
  assert_ok(asyncio_loop_run_forever(loop));
  assert_false(io_timed_out);
  assert_int_equal(io_calls[0], 1);
  assert_rc(asyncio_loop_remove_reader(loop, s[0]), 1);
  io_calls[1] = 0;
  assert_int_equal(write(s[1], "y", 1), 1); /* would wake the reader if it were still there */
  assert_ok(asyncio_loop_run_forever(loop));
  assert_false(io_timed_out);
  assert_int_equal(io_calls[0], 1);
  assert_int_equal(io_calls[1], 3);
  assert_rc(asyncio_loop_remove_writer(loop, s[0]), 1);
  asyncio_handle_cancel(io_safety);
  assert_ok(asyncio_loop_close(loop));
  close(s[0]);
  close(s[1]);
}

static int io_spins;
static int io_spins_at_read;

static void io_spinner(void *arg) {
  asyncio_loop_t *loop = arg;
  if (io_spins_at_read >= 0) return; /* the reader ran: stop spinning */
  if (++io_spins >= 10000) {         /* safety: the test has failed by now */
    asyncio_loop_stop(loop);
    return;
  }
  CHECK_RC(asyncio_loop_call_soon(loop, io_spinner, loop, NULL), 0);
}

static void spin_reader(int fd, void *arg) {
  asyncio_loop_t *loop = arg;
  char buf[16];
  (void)!read(fd, buf, sizeof buf);
  io_spins_at_read = io_spins;
  asyncio_loop_remove_reader(loop, fd);
  asyncio_loop_stop(loop);
}

/*
 * _run_once() polls the selector on every pass (with timeout 0 when
 * callbacks are ready), so a readable fd's callback runs within a pass or
 * two even while other callbacks keep the ready queue busy.
 */
TEST(loop_io_polled_every_pass) {
  reset();
  io_spins = 0;
  io_spins_at_read = -1;
  asyncio_loop_t *loop = harness_virtual_loop();
  int p[2];
  assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
  assert_int_equal(write(p[1], "x", 1), 1);
  assert_ok(asyncio_loop_add_reader(loop, p[0], spin_reader, loop));
  assert_ok(asyncio_loop_call_soon(loop, io_spinner, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  ASSERT_SOFT();
  fprintf(stderr, "reader ran after %d spinner passes\n", io_spins_at_read);
  assert_true(io_spins_at_read >= 0);
  assert_true(io_spins_at_read <= 3);
  assert_ok(asyncio_loop_close(loop));
  close(p[0]);
  close(p[1]);
}

/* add_reader errors: a regular file -> -EPERM, a closed fd -> -EBADF, no callback -> -EINVAL. */
TEST(loop_add_reader_errors) {
  asyncio_loop_t *loop = harness_virtual_loop();
  char path[] = "/tmp/asyncio-test-regular-XXXXXX";
  int f = mkstemp(path);
  assert_true(f >= 0);
  unlink(path);
  assert_rc(asyncio_loop_add_reader(loop, f, wt_io, NULL), -EPERM);
  assert_rc(asyncio_loop_add_writer(loop, f, wt_io, NULL), -EPERM);
  assert_rc(asyncio_loop_remove_reader(loop, f), 0);
  close(f);
  int p[2];
  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  close(p[0]);
  close(p[1]);
  assert_rc(asyncio_loop_add_reader(loop, p[0], wt_io, NULL), -EBADF);
  assert_rc(asyncio_loop_add_writer(loop, p[1], wt_io, NULL), -EBADF);
  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  assert_rc(asyncio_loop_add_reader(loop, p[0], NULL, NULL), -EINVAL);
  assert_rc(asyncio_loop_add_writer(loop, p[1], NULL, NULL), -EINVAL);
  assert_true(asyncio_loop_add_reader(loop, -1, wt_io, NULL) < 0);
  assert_rc(asyncio_loop_add_reader(NULL, p[0], wt_io, NULL), -EINVAL);
  assert_rc(asyncio_loop_remove_reader(NULL, p[0]), -EINVAL);
  assert_rc(asyncio_loop_remove_writer(NULL, p[1]), -EINVAL);
  assert_rc(asyncio_loop_remove_reader(loop, p[0]), 0);
  close(p[0]);
  close(p[1]);
  assert_ok(asyncio_loop_close(loop));
}

/* close() with readers still registered releases everything it holds (the fds stay the caller's). */
TEST(loop_close_with_readers_registered) {
  asyncio_loop_t *loop = harness_virtual_loop();
  int p[2];
  assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
  assert_ok(asyncio_loop_add_reader(loop, p[0], wt_io, NULL));
  assert_ok(asyncio_loop_add_writer(loop, p[1], wt_io, NULL));
  assert_ok(asyncio_loop_close(loop));
  assert_int_equal(write(p[1], "x", 1), 1); /* still ours and open */
  close(p[0]);
  close(p[1]);
}

/* close() drops pending callbacks and timers without running them (and without leaking). */
TEST(loop_close_drops_pending_callbacks) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  for (int i = 0; i < 10; i++) {
    assert_ok(asyncio_loop_call_soon(loop, rec, (void *)1, NULL));
    assert_ok(asyncio_loop_call_later(loop, i, rec, (void *)2, NULL));
  }
  assert_ok(asyncio_loop_call_soon_threadsafe(loop, rec, (void *)3));
  assert_ok(asyncio_loop_close(loop));
  assert_int_equal(norder, 0);
}

/* ---- errors and debugging ---------------------------------------------- */

static int eh_calls;
static asyncio_loop_t *eh_loop;
static void *eh_userdata;
static int eh_error;
static char eh_message[256];
static char eh_error_message[256];
static asyncio_future_t *eh_future;

static void capture_handler(asyncio_loop_t *loop, const asyncio_error_context_t *ctx, void *ud) {
  eh_calls++;
  eh_loop = loop;
  eh_userdata = ud;
  eh_error = ctx->error;
  eh_future = ctx->future;
  snprintf(eh_message, sizeof eh_message, "%s", ctx->message ? ctx->message : "(null)");
  snprintf(eh_error_message, sizeof eh_error_message, "%s",
           ctx->error_message ? ctx->error_message : "(null)");
}

static void eh_reset(void) {
  eh_calls = 0;
  eh_loop = NULL;
  eh_userdata = NULL;
  eh_error = 0;
  eh_future = NULL;
  eh_message[0] = eh_error_message[0] = 0;
}

/*
 * set_exception_handler / get_exception_handler / call_exception_handler:
 * the custom handler gets the loop, the context and its userdata; NULL
 * restores the default (get returns NULL).
 */
TEST(loop_exception_handler_set_get_call) {
  eh_reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_exception_handler_fn fn = capture_handler;
  void *ud = (void *)1;
  assert_ok(asyncio_loop_get_exception_handler(loop, &fn, &ud));
  assert_null(fn);
  int token;
  assert_ok(asyncio_loop_set_exception_handler(loop, capture_handler, &token));
  assert_ok(asyncio_loop_get_exception_handler(loop, &fn, &ud));
  assert_ptr_equal(fn, capture_handler);
  assert_ptr_equal(ud, &token);
  asyncio_error_context_t ctx = {0};
  ctx.message = "something happened";
  ctx.error = -EIO;
  ctx.error_message = "detail";
  asyncio_loop_call_exception_handler(loop, &ctx);
  assert_int_equal(eh_calls, 1);
  assert_ptr_equal(eh_loop, loop);
  assert_ptr_equal(eh_userdata, &token);
  assert_int_equal(eh_error, -EIO);
  assert_string_equal(eh_message, "something happened");
  assert_string_equal(eh_error_message, "detail");
  assert_ok(asyncio_loop_set_exception_handler(loop, NULL, NULL));
  assert_ok(asyncio_loop_get_exception_handler(loop, &fn, &ud));
  assert_null(fn);
  assert_rc(asyncio_loop_set_exception_handler(NULL, capture_handler, NULL), -EINVAL);
  assert_ok(asyncio_loop_close(loop));
}

/* default_exception_handler logs the context's message (and the error) to stderr. */
TEST(loop_default_exception_handler_prints) {
  eh_reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_error_context_t ctx = {0};
  ctx.message = "the-message-xyzzy";
  ctx.error = -ECONNRESET;
  capture_t cap;
  cap_begin(&cap);
  asyncio_loop_call_exception_handler(loop, &ctx); /* no custom handler: the default */
  char *out = cap_end(&cap);
  int has_msg = strstr(out, "the-message-xyzzy") != NULL;
  free(out);
  assert_true(has_msg);
  ctx.message = "direct-call-plugh";
  cap_begin(&cap);
  asyncio_loop_default_exception_handler(loop, &ctx);
  out = cap_end(&cap);
  has_msg = strstr(out, "direct-call-plugh") != NULL;
  free(out);
  assert_true(has_msg);
  assert_ok(asyncio_loop_close(loop));
}

/*
 * Future.__del__: an exception set on a future and never retrieved is
 * reported through the loop's exception handler when the future is freed
 * ("Future exception was never retrieved"), with the error and the future.
 */
TEST(loop_unretrieved_error_reported_on_free) {
  eh_reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_ok(asyncio_loop_set_exception_handler(loop, capture_handler, NULL));
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  assert_ok(asyncio_future_set_exception(f, -EIO, "disk on fire"));
  assert_int_equal(eh_calls, 0);
  assert_ok(asyncio_future_free(f));
  assert_int_equal(eh_calls, 1);
  assert_int_equal(eh_error, -EIO);
  assert_non_null(eh_future);
  assert_non_null(strstr(eh_message, "never retrieved"));
  assert_string_equal(eh_error_message, "disk on fire");
  assert_ptr_equal(eh_loop, loop);
  assert_ok(asyncio_loop_close(loop));
}

/* A retrieved error (result() or exception()), a result or a cancellation is never reported. */
TEST(loop_retrieved_error_not_reported) {
  eh_reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_ok(asyncio_loop_set_exception_handler(loop, capture_handler, NULL));
  asyncio_future_t *f[4];
  for (int i = 0; i < 4; i++) assert_ok(asyncio_future_new(&f[i], loop));
  assert_ok(asyncio_future_set_exception(f[0], -EIO, NULL));
  assert_rc(asyncio_future_result(f[0], NULL), -EIO);
  assert_ok(asyncio_future_set_exception(f[1], -EPIPE, NULL));
  assert_rc(asyncio_future_exception(f[1]), -EPIPE);
  assert_ok(asyncio_future_set_result(f[2], 1, NULL));
  assert_rc(asyncio_future_cancel(f[3], NULL), 1);
  for (int i = 0; i < 4; i++) assert_ok(asyncio_future_free(f[i]));
  run_once(loop);
  assert_int_equal(eh_calls, 0);
  assert_ok(asyncio_loop_close(loop));
}

static void slow_callback(void *arg) {
  (void)arg;
  busy_wait(0.03);
}

/*
 * Debug mode: a callback that runs longer than slow_callback_duration is
 * reported to stderr ("Executing <Handle ...> took 0.030 seconds").
 */
TEST(loop_debug_slow_callback_reported) {
  asyncio_loop_t *loop = NULL;
  asyncio_loop_options_t o = {0};
  o.clock = ASYNCIO_CLOCK_MONOTONIC;
  o.debug = 1;
  o.slow_callback_duration = 0.001;
  assert_ok(asyncio_loop_new(&loop, &o));
  assert_true(asyncio_loop_get_debug(loop));
  assert_true(asyncio_loop_get_slow_callback_duration(loop) == 0.001);
  capture_t cap;
  cap_begin(&cap);
  assert_ok(asyncio_loop_call_soon(loop, slow_callback, NULL, NULL));
  assert_ok(asyncio_loop_call_soon(loop, stop_cb, loop, NULL));
  int rc = asyncio_loop_run_forever(loop);
  char *out = cap_end(&cap);
  size_t len = strlen(out);
  free(out);
  assert_ok(rc);
  assert_true(len > 0);
  assert_ok(asyncio_loop_close(loop));
}

/* Without debug mode nothing is reported, however slow; set_debug/set_slow_callback_duration round-trip. */
TEST(loop_debug_off_is_silent) {
  asyncio_loop_t *loop = real_loop();
  assert_false(asyncio_loop_get_debug(loop));
  assert_ok(asyncio_loop_set_slow_callback_duration(loop, 0.001));
  assert_true(asyncio_loop_get_slow_callback_duration(loop) == 0.001);
  capture_t cap;
  cap_begin(&cap);
  assert_ok(asyncio_loop_call_soon(loop, slow_callback, NULL, NULL));
  assert_ok(asyncio_loop_call_soon(loop, stop_cb, loop, NULL));
  int rc = asyncio_loop_run_forever(loop);
  char *out = cap_end(&cap);
  size_t len = strlen(out);
  free(out);
  assert_ok(rc);
  assert_int_equal(len, 0);
  assert_ok(asyncio_loop_set_debug(loop, true));
  assert_true(asyncio_loop_get_debug(loop));
  assert_ok(asyncio_loop_set_debug(loop, false));
  assert_false(asyncio_loop_get_debug(loop));
  assert_ok(asyncio_loop_close(loop));
}

/* ---- run_until_complete -------------------------------------------------- */

static void complete_future(void *arg) { asyncio_future_set_result((asyncio_future_t *)arg, 17, &order); }

/* run_until_complete(): runs until the future is done and returns its result and value. */
TEST(loop_run_until_complete_future) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  assert_ptr_equal(asyncio_future_get_loop(f), loop);
  assert_ok(asyncio_loop_call_later(loop, 5.0, complete_future, f, NULL));
  void *value = NULL;
  assert_rc(asyncio_loop_run_until_complete(loop, f, &value), 17);
  assert_ptr_equal(value, &order);
  assert_true(asyncio_loop_time(loop) == 5.0);
  /* Already done: returns at once with the same outcome. */
  assert_rc(asyncio_loop_run_until_complete(loop, f, NULL), 17);
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

/* "Event loop stopped before Future completed." -> ASYNCIO_EINVALIDSTATE. */
TEST(loop_run_until_complete_stopped_early) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  assert_ok(asyncio_loop_call_soon(loop, stop_cb, loop, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, f, NULL), ASYNCIO_EINVALIDSTATE);
  assert_false(asyncio_future_done(f));
  assert_false(asyncio_loop_is_running(loop));
  assert_ok(asyncio_loop_call_soon(loop, complete_future, f, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, f, NULL), 17);
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

/* run_until_complete() of a future of another loop: "The future belongs to a different loop" (-EINVAL). */
TEST(loop_run_until_complete_other_loop) {
  asyncio_loop_t *a = harness_virtual_loop();
  asyncio_loop_t *b = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, b));
  assert_ok(asyncio_future_set_result(f, 1, NULL));
  assert_rc(asyncio_loop_run_until_complete(a, f, NULL), -EINVAL);
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(a));
  assert_ok(asyncio_loop_close(b));
}

/* ---- argument validation ------------------------------------------------- */

/* Misuse is an error, not a crash: NULL loops and callbacks give -EINVAL. */
TEST(loop_argument_validation) {
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_rc(asyncio_loop_close(NULL), -EINVAL);
  assert_rc(asyncio_loop_stop(NULL), -EINVAL);
  assert_rc(asyncio_loop_run_forever(NULL), -EINVAL);
  assert_rc(asyncio_loop_run_until_complete(NULL, NULL, NULL), -EINVAL);
  assert_rc(asyncio_loop_run_until_complete(loop, NULL, NULL), -EINVAL);
  assert_rc(asyncio_loop_call_soon(NULL, rec, NULL, NULL), -EINVAL);
  assert_rc(asyncio_loop_call_soon(loop, NULL, NULL, NULL), -EINVAL);
  assert_rc(asyncio_loop_call_later(NULL, 1.0, rec, NULL, NULL), -EINVAL);
  assert_rc(asyncio_loop_call_later(loop, 1.0, NULL, NULL, NULL), -EINVAL);
  assert_rc(asyncio_loop_call_at(NULL, 1.0, rec, NULL, NULL), -EINVAL);
  assert_rc(asyncio_loop_call_at(loop, 1.0, NULL, NULL, NULL), -EINVAL);
  assert_rc(asyncio_loop_call_soon_threadsafe(NULL, rec, NULL), -EINVAL);
  assert_rc(asyncio_loop_call_soon_threadsafe(loop, NULL, NULL), -EINVAL);
  assert_rc(asyncio_loop_set_debug(NULL, true), -EINVAL);
  assert_rc(asyncio_loop_set_slow_callback_duration(NULL, 1.0), -EINVAL);
  assert_rc(asyncio_loop_get_exception_handler(NULL, NULL, NULL), -EINVAL);
  assert_ok(asyncio_loop_close(loop));
}

/* Allocation failure in call_soon/call_later is -ENOMEM and schedules nothing. */
static int enomem_counts[3];

static void count_cb(void *arg) { enomem_counts[(intptr_t)arg]++; }

TEST(loop_call_soon_enomem) {
  asyncio_loop_t *loop = harness_virtual_loop();
  int soon_fail = 0, later_fail = 0, soon_ok = 0, later_ok = 0;
  memset(enomem_counts, 0, sizeof enomem_counts);
  /* Handles may come from a pool: keep failing the next allocation until calls need one. */
  for (int i = 0; i < 10000 && !(soon_fail && later_fail); i++) {
    harness_fail_alloc_after(1);
    int rc = asyncio_loop_call_soon(loop, count_cb, (void *)1, NULL);
    harness_fail_alloc_after(0);
    if (rc == -ENOMEM) soon_fail++;
    else if (rc == 0) soon_ok++;
    else fail_msg("call_soon: %s", asyncio_errname(rc));
    harness_fail_alloc_after(1);
    rc = asyncio_loop_call_later(loop, 1.0, count_cb, (void *)2, NULL);
    harness_fail_alloc_after(0);
    if (rc == -ENOMEM) later_fail++;
    else if (rc == 0) later_ok++;
    else fail_msg("call_later: %s", asyncio_errname(rc));
  }
  assert_true(soon_fail > 0);
  assert_true(later_fail > 0);
  assert_ok(asyncio_loop_call_later(loop, 2.0, stop_cb, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  /* The loop still works, and exactly the successful calls ran. */
  assert_int_equal(enomem_counts[1], soon_ok);
  assert_int_equal(enomem_counts[2], later_ok);
  assert_ok(asyncio_loop_close(loop));
}
