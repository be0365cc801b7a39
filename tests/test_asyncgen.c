/*
 * test_asyncgen.c - asynchronous generators (include/asyncio/asyncgen.h).
 *
 * Python origin: PEP 525 (asend/athrow/aclose, GeneratorExit, "already
 * running", "ignored GeneratorExit"), Lib/test/test_asyncgen.py, and the
 * loop's shutdown_asyncgens / _asyncgen_finalizer_hook with Runner.close
 * (Lib/test/test_asyncio/test_base_events.py, test_runners.py).
 *
 * Assertions inside tasks and generator bodies are soft (CHECK): a failed
 * cmocka assertion longjmps, which must never leave a coroutine's stack.
 */
#include "harness.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------ */

static int order[256];
static int norder;
static int cleanups;
static int after_yield; /* set by code that must never run */

static void reset(void) {
  norder = 0;
  cleanups = 0;
  after_yield = 0;
  soft_fail[0] = 0;
}

static void rec(int v) {
  if (norder < 256) order[norder++] = v;
}

#define IV(p) ((int)(intptr_t)(p))
#define PV(i) ((void *)(intptr_t)(i))

static int eh_calls, eh_error, eh_agen_destroyed;
static char eh_message[256];

static void capture_handler(asyncio_loop_t *loop, const asyncio_error_context_t *c, void *ud) {
  (void)loop;
  (void)ud;
  eh_calls++;
  eh_error = c->error;
  if (strstr(c->message, "asynchronous generator was destroyed")) eh_agen_destroyed++;
  snprintf(eh_message, sizeof eh_message, "%s", c->message);
}

static int run_task(asyncio_loop_t *loop, asyncio_coro_fn fn, void *arg) {
  asyncio_task_t *t = NULL;
  int rc = asyncio_loop_create_task(loop, &t, fn, arg, NULL);
  if (rc != 0) fail_msg("create_task: %s", asyncio_errname(rc));
  rc = asyncio_loop_run_until_complete(loop, t, NULL);
  assert_ok(asyncio_task_free(t));
  return rc;
}

/* for i in range(n): yield i (values 100 + i); a GeneratorExit is cleaned up. */
static int count_body(asyncio_asyncgen_t *gen, void *arg) {
  (void)gen;
  int n = IV(arg);
  for (int i = 0; i < n; i++) {
    int rc = asyncio_asyncgen_yield(PV(100 + i));
    if (rc < 0) {
      cleanups++;
      return rc;
    }
  }
  return 0;
}

/* ---- iteration ------------------------------------------------------------ */

static int consume_three(void *arg) {
  asyncio_asyncgen_t *g = arg;
  void *v = PV(-1);
  CHECK(asyncio_asyncgen_get_state(g) == ASYNCIO_AGEN_CREATED);
  for (int i = 0; i < 3; i++) {
    CHECK_RC(asyncio_asyncgen_next(g, &v), 1);
    CHECK(IV(v) == 100 + i);
    CHECK(asyncio_asyncgen_get_state(g) == ASYNCIO_AGEN_SUSPENDED);
  }
  CHECK_RC(asyncio_asyncgen_next(g, &v), 0); /* StopAsyncIteration */
  CHECK(v == NULL);
  CHECK(asyncio_asyncgen_get_state(g) == ASYNCIO_AGEN_CLOSED);
  CHECK_RC(asyncio_asyncgen_next(g, &v), 0); /* and again */
  CHECK_RC(asyncio_asyncgen_next(g, NULL), 0);
  return 0;
}

/* A body yielding 100, 101, 102: next() gives them in order, then 0 (StopAsyncIteration) for good. */
TEST(asyncgen_simple_sequence) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_asyncgen_t *g;
  assert_ok(asyncio_asyncgen_new(&g, count_body, PV(3), NULL));
  assert_rc(run_task(loop, consume_three, g), 0);
  ASSERT_SOFT();
  assert_int_equal(cleanups, 0);
  assert_ok(asyncio_asyncgen_free(g));
  assert_ok(asyncio_loop_close(loop));
}

static int sleepy_body(asyncio_asyncgen_t *gen, void *arg) {
  (void)gen;
  (void)arg;
  for (int i = 0; i < 3; i++) {
    rec(10 + i);
    int rc = asyncio_asyncgen_yield(PV(i));
    if (rc < 0) return rc;
    rc = asyncio_sleep(1.0); /* awaits between yields */
    if (rc < 0) return rc;
  }
  return 0;
}

static int ticker(void *arg) {
  (void)arg;
  for (int i = 0; i < 4; i++) {
    rec(20 + i);
    CHECK_RC(asyncio_sleep(0.75), 0);
  }
  return 0;
}

static int consume_sleepy(void *arg) {
  asyncio_asyncgen_t *g = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_task_t *tick;
  CHECK_RC(asyncio_create_task(&tick, ticker, NULL, NULL), 0);
  void *v;
  int rc, i = 0;
  double t0 = asyncio_loop_time(loop);
  ASYNCIO_ASYNC_FOR(rc, asyncio_asyncgen_next(g, &v)) {
    CHECK(IV(v) == i);
    CHECK(asyncio_loop_time(loop) - t0 == (double)i);
    rec(30 + i);
    i++;
  }
  CHECK_RC(rc, 0);
  CHECK(i == 3);
  CHECK(asyncio_loop_time(loop) - t0 == 3.0);
  CHECK_RC(asyncio_await(tick, NULL), 0);
  asyncio_task_free(tick);
  return 0;
}

/* The body sleeps between yields: the consumer task suspends, other tasks run meanwhile. */
TEST(asyncgen_awaits_between_yields) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_asyncgen_t *g;
  assert_ok(asyncio_asyncgen_new(&g, sleepy_body, NULL, NULL));
  assert_rc(run_task(loop, consume_sleepy, g), 0);
  ASSERT_SOFT();
  /* t=0: body 10, consumer 30, ticker 20; t=.75 21; t=1 11 31; t=1.5 22; t=2 12 32; t=2.25 23 */
  int expect[] = {10, 30, 20, 21, 11, 31, 22, 12, 32, 23};
  assert_int_equal(norder, 10);
  assert_memory_equal(order, expect, sizeof expect);
  assert_ok(asyncio_asyncgen_free(g));
  assert_ok(asyncio_loop_close(loop));
}

static int consume_slowly(void *arg) {
  asyncio_asyncgen_t *g = arg;
  void *v;
  int rc, n = 0;
  while ((rc = asyncio_asyncgen_next(g, &v)) > 0) {
    rec(IV(v));
    CHECK_RC(asyncio_sleep(2.0), 0); /* the consumer awaits between nexts */
    n++;
  }
  CHECK_RC(rc, 0);
  CHECK(n == 3);
  return 0;
}

static int other_task(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_sleep(1.0), 0);
  rec(1);
  return 0;
}

/* The consumer awaits between nexts while the body waits at its yield; others run meanwhile. */
TEST(asyncgen_consumer_awaits_between_nexts) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_asyncgen_t *g;
  asyncio_task_t *o;
  assert_ok(asyncio_asyncgen_new(&g, count_body, PV(3), NULL));
  assert_ok(asyncio_loop_create_task(loop, &o, other_task, NULL, NULL));
  assert_rc(run_task(loop, consume_slowly, g), 0);
  ASSERT_SOFT();
  int expect[] = {100, 1, 101, 102};
  assert_int_equal(norder, 4);
  assert_memory_equal(order, expect, sizeof expect);
  assert_true(asyncio_future_done(o));
  assert_ok(asyncio_task_free(o));
  assert_true(asyncio_loop_time(loop) == 6.0);
  assert_ok(asyncio_asyncgen_free(g));
  assert_ok(asyncio_loop_close(loop));
}

/* ---- aclose ----------------------------------------------------------------- */

/* yield forever; on GeneratorExit: an awaiting cleanup (try/finally with await). */
static int closing_body(asyncio_asyncgen_t *gen, void *arg) {
  (void)gen;
  (void)arg;
  for (int i = 0;; i++) {
    int rc = asyncio_asyncgen_yield(PV(i));
    if (rc == ASYNCIO_EGENERATOREXIT) {
      rec(-1);
      int s = asyncio_sleep(0.5); /* cleanup may await */
      rec(-2);
      cleanups++;
      return s < 0 ? s : rc;
    }
    if (rc < 0) return rc;
  }
}

static int close_midway(void *arg) {
  asyncio_asyncgen_t *g = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  void *v;
  CHECK_RC(asyncio_asyncgen_next(g, &v), 1);
  CHECK_RC(asyncio_asyncgen_next(g, &v), 1);
  CHECK(IV(v) == 1);
  double t0 = asyncio_loop_time(loop);
  CHECK_RC(asyncio_asyncgen_aclose(g), 0);
  CHECK(asyncio_loop_time(loop) - t0 == 0.5);
  CHECK(cleanups == 1);
  CHECK(asyncio_asyncgen_get_state(g) == ASYNCIO_AGEN_CLOSED);
  CHECK_RC(asyncio_asyncgen_next(g, &v), 0);
  CHECK_RC(asyncio_asyncgen_aclose(g), 0); /* closing twice is fine */
  CHECK(cleanups == 1);
  return 0;
}

/* aclose() in the middle: the pending yield returns GeneratorExit, the cleanup runs (and awaits), aclose returns 0. */
TEST(asyncgen_aclose_midway_runs_cleanup) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_asyncgen_t *g;
  assert_ok(asyncio_asyncgen_new(&g, closing_body, NULL, NULL));
  assert_rc(run_task(loop, close_midway, g), 0);
  ASSERT_SOFT();
  assert_int_equal(norder, 2);
  assert_ok(asyncio_asyncgen_free(g));
  assert_ok(asyncio_loop_close(loop));
}

static int never_body(asyncio_asyncgen_t *gen, void *arg) {
  (void)gen;
  (void)arg;
  after_yield = 1; /* must never run */
  return 0;
}

static int close_finished(void *arg) {
  asyncio_asyncgen_t *g = arg;
  void *v;
  CHECK_RC(asyncio_asyncgen_next(g, &v), 1);
  CHECK_RC(asyncio_asyncgen_next(g, &v), 0);
  CHECK_RC(asyncio_asyncgen_aclose(g), 0);
  CHECK(cleanups == 0); /* it ended normally: nothing to clean up */
  return 0;
}

/* aclose() on a never-started generator (the body never runs) and on a finished one: 0, nothing runs. */
TEST(asyncgen_aclose_unstarted_and_finished) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_asyncgen_t *g;
  assert_ok(asyncio_asyncgen_new(&g, never_body, NULL, NULL));
  /* No body has to run: allowed outside a task. */
  assert_ok(asyncio_asyncgen_aclose(g));
  assert_int_equal(asyncio_asyncgen_get_state(g), ASYNCIO_AGEN_CLOSED);
  assert_ok(asyncio_asyncgen_free(g));
  assert_ok(asyncio_asyncgen_new(&g, count_body, PV(1), NULL));
  assert_rc(run_task(loop, close_finished, g), 0);
  ASSERT_SOFT();
  assert_ok(asyncio_asyncgen_aclose(g));
  assert_ok(asyncio_asyncgen_free(g));
  assert_int_equal(after_yield, 0);
  assert_ok(asyncio_loop_close(loop));
}

static int stubborn_body(asyncio_asyncgen_t *gen, void *arg) {
  (void)gen;
  (void)arg;
  int rc = asyncio_asyncgen_yield(PV(1));
  CHECK_RC(rc, ASYNCIO_EGENERATOREXIT);
  rec(1);
  asyncio_asyncgen_yield(PV(2)); /* ignores GeneratorExit */
  after_yield = 1;              /* never reached */
  return 0;
}

static int close_stubborn(void *arg) {
  asyncio_asyncgen_t *g = arg;
  void *v;
  CHECK_RC(asyncio_asyncgen_next(g, &v), 1);
  CHECK_RC(asyncio_asyncgen_aclose(g), ASYNCIO_EASYNCGENIGNOREDEXIT);
  CHECK(asyncio_asyncgen_get_state(g) == ASYNCIO_AGEN_CLOSED);
  CHECK_RC(asyncio_asyncgen_next(g, &v), 0);
  CHECK_RC(asyncio_asyncgen_aclose(g), 0);
  return 0;
}

/* A body that yields again after GeneratorExit: aclose returns the RuntimeError code and the body is abandoned. */
TEST(asyncgen_yield_after_close_is_error) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_asyncgen_t *g;
  assert_ok(asyncio_asyncgen_new(&g, stubborn_body, NULL, NULL));
  assert_rc(run_task(loop, close_stubborn, g), 0);
  ASSERT_SOFT();
  assert_int_equal(norder, 1);
  assert_int_equal(after_yield, 0);
  assert_string_equal(asyncio_pyname(ASYNCIO_EASYNCGENIGNOREDEXIT), "RuntimeError");
  assert_ok(asyncio_asyncgen_free(g));
  assert_ok(asyncio_loop_close(loop));
}

/* ---- errors and cancellation ------------------------------------------------ */

static int failing_body(asyncio_asyncgen_t *gen, void *arg) {
  (void)gen;
  (void)arg;
  int rc = asyncio_asyncgen_yield(PV(1));
  if (rc < 0) return rc;
  rc = asyncio_sleep(0.1);
  if (rc < 0) return rc;
  return -EIO; /* raise OSError */
}

static int consume_failing(void *arg) {
  asyncio_asyncgen_t *g = arg;
  void *v = NULL;
  CHECK_RC(asyncio_asyncgen_next(g, &v), 1);
  CHECK_RC(asyncio_asyncgen_next(g, &v), -EIO);
  CHECK(asyncio_asyncgen_get_state(g) == ASYNCIO_AGEN_CLOSED);
  CHECK_RC(asyncio_asyncgen_next(g, &v), 0); /* finished for good */
  return 0;
}

/* An error returned by the body is what the pending next() returns; the generator is then closed. */
TEST(asyncgen_body_error_propagates) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_asyncgen_t *g;
  assert_ok(asyncio_asyncgen_new(&g, failing_body, NULL, NULL));
  assert_rc(run_task(loop, consume_failing, g), 0);
  ASSERT_SOFT();
  assert_ok(asyncio_asyncgen_free(g));
  assert_ok(asyncio_loop_close(loop));
}

static int body_sleep_rc;

static int long_sleep_body(asyncio_asyncgen_t *gen, void *arg) {
  (void)gen;
  (void)arg;
  int rc = asyncio_asyncgen_yield(PV(1));
  if (rc < 0) return rc;
  body_sleep_rc = asyncio_sleep(10.0); /* cancelled here */
  CHECK(asyncio_current_task() != NULL);
  cleanups++;
  return body_sleep_rc;
}

static int consume_until_cancelled(void *arg) {
  asyncio_asyncgen_t *g = arg;
  void *v;
  CHECK_RC(asyncio_asyncgen_next(g, &v), 1);
  int rc = asyncio_asyncgen_next(g, &v); /* the body sleeps; we get cancelled */
  CHECK_RC(rc, -ECANCELED);
  return rc;
}

static int canceller(void *arg) {
  CHECK_RC(asyncio_sleep(1.0), 0);
  CHECK_RC(asyncio_task_cancel(arg, NULL), 1);
  return 0;
}

/* Cancelling the consumer while the body sleeps: -ECANCELED inside the body, the generator ends, next() returns it. */
TEST(asyncgen_consumer_cancelled_in_body_sleep) {
  reset();
  body_sleep_rc = 0;
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_asyncgen_t *g;
  asyncio_task_t *consumer, *c;
  assert_ok(asyncio_asyncgen_new(&g, long_sleep_body, NULL, NULL));
  assert_ok(asyncio_loop_create_task(loop, &consumer, consume_until_cancelled, g, NULL));
  assert_ok(asyncio_loop_create_task(loop, &c, canceller, consumer, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, consumer, NULL), -ECANCELED);
  ASSERT_SOFT();
  assert_true(asyncio_future_cancelled(consumer));
  assert_int_equal(body_sleep_rc, -ECANCELED);
  assert_int_equal(cleanups, 1);
  assert_true(asyncio_loop_time(loop) == 1.0);
  assert_int_equal(asyncio_asyncgen_get_state(g), ASYNCIO_AGEN_CLOSED);
  assert_rc(asyncio_loop_run_until_complete(loop, c, NULL), 0);
  assert_ok(asyncio_task_free(consumer));
  assert_ok(asyncio_task_free(c));
  assert_ok(asyncio_asyncgen_free(g));
  assert_ok(asyncio_loop_close(loop));
}

static int asend_body(asyncio_asyncgen_t *gen, void *arg) {
  (void)gen;
  (void)arg;
  void *got = PV(-1);
  int rc = asyncio_asyncgen_yield_recv(PV(1), &got);
  CHECK_RC(rc, 0);
  CHECK(got == NULL); /* resumed by next(): None */
  rc = asyncio_asyncgen_yield_recv(PV(2), &got);
  CHECK_RC(rc, 0);
  CHECK(IV(got) == 42); /* asend(42) */
  rc = asyncio_asyncgen_yield_recv(PV(IV(got) + 1), &got);
  CHECK_RC(rc, -EIO); /* athrow(-EIO): handled, yield again */
  rc = asyncio_asyncgen_yield(PV(7));
  CHECK_RC(rc, -EPIPE); /* athrow(-EPIPE): not handled */
  return rc;
}

static int drive_asend(void *arg) {
  asyncio_asyncgen_t *g = arg;
  void *v;
  CHECK_RC(asyncio_asyncgen_asend(g, PV(5), &v), -EINVAL); /* non-None to a fresh generator */
  CHECK(asyncio_asyncgen_get_state(g) == ASYNCIO_AGEN_CREATED);
  CHECK_RC(asyncio_asyncgen_asend(g, NULL, &v), 1);
  CHECK(IV(v) == 1);
  CHECK_RC(asyncio_asyncgen_next(g, &v), 1);
  CHECK(IV(v) == 2);
  CHECK_RC(asyncio_asyncgen_asend(g, PV(42), &v), 1);
  CHECK(IV(v) == 43);
  CHECK_RC(asyncio_asyncgen_athrow(g, -EIO, &v), 1);
  CHECK(IV(v) == 7);
  CHECK_RC(asyncio_asyncgen_athrow(g, 0, &v), -EINVAL);
  CHECK_RC(asyncio_asyncgen_athrow(g, -EPIPE, &v), -EPIPE);
  CHECK(asyncio_asyncgen_get_state(g) == ASYNCIO_AGEN_CLOSED);
  CHECK_RC(asyncio_asyncgen_athrow(g, -EIO, &v), 0); /* closed: StopAsyncIteration */
  return 0;
}

static int athrow_fresh(void *arg) {
  asyncio_asyncgen_t *g = arg;
  void *v;
  CHECK_RC(asyncio_asyncgen_athrow(g, -EIO, &v), -EIO);
  CHECK(asyncio_asyncgen_get_state(g) == ASYNCIO_AGEN_CLOSED);
  CHECK_RC(asyncio_asyncgen_next(g, &v), 0);
  return 0;
}

/* asend(v) is what the pending yield receives; athrow(err) is what it returns (handled or raised). */
TEST(asyncgen_asend_and_athrow) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_asyncgen_t *g;
  assert_ok(asyncio_asyncgen_new(&g, asend_body, NULL, NULL));
  assert_rc(run_task(loop, drive_asend, g), 0);
  ASSERT_SOFT();
  assert_ok(asyncio_asyncgen_free(g));
  /* athrow on a generator that never started: raised at once, the body never runs */
  assert_ok(asyncio_asyncgen_new(&g, never_body, NULL, NULL));
  assert_rc(run_task(loop, athrow_fresh, g), 0);
  ASSERT_SOFT();
  assert_int_equal(after_yield, 0);
  assert_ok(asyncio_asyncgen_free(g));
  assert_ok(asyncio_loop_close(loop));
}

/* ---- misuse ------------------------------------------------------------------ */

static int self_next_body(asyncio_asyncgen_t *gen, void *arg) {
  (void)arg;
  void *v;
  CHECK(asyncio_asyncgen_running(gen));
  CHECK_RC(asyncio_asyncgen_next(gen, &v), ASYNCIO_EASYNCGENRUNNING); /* anext on itself */
  CHECK_RC(asyncio_asyncgen_aclose(gen), ASYNCIO_EASYNCGENRUNNING);
  CHECK_RC(asyncio_asyncgen_free(gen), -EBUSY);
  int rc = asyncio_asyncgen_yield(PV(1));
  if (rc < 0) return rc;
  rc = asyncio_sleep(5.0); /* stays RUNNING on behalf of its consumer */
  if (rc < 0) return rc;
  return 0;
}

static int intruder(void *arg) {
  asyncio_asyncgen_t *g = arg;
  void *v = PV(-1);
  CHECK_RC(asyncio_sleep(1.0), 0);
  CHECK(asyncio_asyncgen_get_state(g) == ASYNCIO_AGEN_RUNNING);
  CHECK_RC(asyncio_asyncgen_next(g, &v), ASYNCIO_EASYNCGENRUNNING);
  CHECK(v == NULL);
  CHECK_RC(asyncio_asyncgen_aclose(g), ASYNCIO_EASYNCGENRUNNING);
  CHECK_RC(asyncio_asyncgen_athrow(g, -EIO, NULL), ASYNCIO_EASYNCGENRUNNING);
  CHECK_RC(asyncio_asyncgen_free(g), -EBUSY);
  return 0;
}

static int not_a_body(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_asyncgen_yield(PV(1)), -EPERM); /* a task, but no generator body */
  return 0;
}

static int misuse_consumer(void *arg) {
  asyncio_asyncgen_t *g = arg;
  asyncio_task_t *in;
  void *v;
  CHECK_RC(asyncio_create_task(&in, intruder, g, NULL), 0);
  CHECK_RC(asyncio_asyncgen_next(g, &v), 1);
  CHECK_RC(asyncio_asyncgen_next(g, &v), 0); /* meanwhile the intruder is refused */
  CHECK_RC(asyncio_await(in, NULL), 0);
  asyncio_task_free(in);
  CHECK_RC(asyncio_asyncgen_next(NULL, &v), -EINVAL);
  CHECK_RC(asyncio_asyncgen_aclose(NULL), -EINVAL);
  return 0;
}

/* Misuse is an error: outside a task, a second consumer ("already running"), yield outside a body, bad arguments. */
TEST(asyncgen_misuse_errors) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_asyncgen_t *g;
  void *v = PV(1);
  assert_rc(asyncio_asyncgen_new(NULL, count_body, NULL, NULL), -EINVAL);
  assert_rc(asyncio_asyncgen_new(&g, NULL, NULL, NULL), -EINVAL);
  assert_null(g);
  asyncio_asyncgen_options_t o = {0};
  o.stack_size = 1024;
  assert_rc(asyncio_asyncgen_new(&g, count_body, NULL, &o), -EINVAL);
  assert_rc(asyncio_asyncgen_free(NULL), -EINVAL);
  assert_rc(asyncio_asyncgen_yield(NULL), ASYNCIO_ENOTASK);
  assert_rc(asyncio_loop_shutdown_asyncgens(NULL), ASYNCIO_ENOLOOP);
  assert_ok(asyncio_asyncgen_new(&g, self_next_body, NULL, NULL));
  assert_rc(asyncio_asyncgen_next(g, &v), ASYNCIO_ENOTASK); /* not inside a task */
  assert_null(v);
  assert_rc(asyncio_asyncgen_asend(g, NULL, NULL), ASYNCIO_ENOTASK);
  assert_int_equal(asyncio_asyncgen_get_state(g), ASYNCIO_AGEN_CREATED);
  assert_rc(run_task(loop, misuse_consumer, g), 0);
  assert_rc(run_task(loop, not_a_body, NULL), 0);
  ASSERT_SOFT();
  assert_ok(asyncio_asyncgen_free(g));
  assert_string_equal(asyncio_errname(ASYNCIO_EASYNCGENRUNNING), "ASYNCIO_EASYNCGENRUNNING");
  assert_string_equal(asyncio_strerror(ASYNCIO_EASYNCGENRUNNING),
                      "asynchronous generator is already running");
  assert_string_equal(asyncio_pyname(ASYNCIO_EGENERATOREXIT), "GeneratorExit");
  assert_ok(asyncio_loop_close(loop));
}

static int aclose_ok(void *arg) {
  CHECK_RC(asyncio_asyncgen_aclose(arg), 0);
  return 0;
}

static asyncio_asyncgen_t *other_loop_gen;

static int start_gen(void *arg) {
  void *v;
  CHECK_RC(asyncio_asyncgen_next(arg, &v), 1);
  return 0;
}

static int use_on_other_loop(void *arg) {
  void *v;
  CHECK_RC(asyncio_asyncgen_next(arg, &v), -EINVAL);
  CHECK_RC(asyncio_asyncgen_aclose(arg), -EINVAL);
  return 0;
}

/* The first iteration binds a generator to its loop: another loop gets -EINVAL. */
TEST(asyncgen_bound_to_first_loop) {
  reset();
  asyncio_loop_t *a = harness_virtual_loop();
  asyncio_loop_t *b = harness_virtual_loop();
  assert_ok(asyncio_asyncgen_new(&other_loop_gen, count_body, PV(3), NULL));
  assert_rc(run_task(a, start_gen, other_loop_gen), 0);
  assert_rc(run_task(b, use_on_other_loop, other_loop_gen), 0);
  assert_rc(run_task(a, aclose_ok, other_loop_gen), 0);
  ASSERT_SOFT();
  assert_int_equal(cleanups, 1);
  assert_ok(asyncio_asyncgen_free(other_loop_gen));
  assert_ok(asyncio_loop_close(b));
  assert_ok(asyncio_loop_close(a));
}

/* ---- the loop's side: finalizer, shutdown_asyncgens, close ---------------------- */

static asyncio_asyncgen_t *left_open;

static int main_leaves_gen_open(void *arg) {
  (void)arg;
  void *v;
  CHECK_RC(asyncio_asyncgen_new(&left_open, closing_body, NULL, NULL), 0);
  CHECK_RC(asyncio_asyncgen_next(left_open, &v), 1);
  CHECK_RC(asyncio_asyncgen_next(left_open, &v), 1);
  return 0; /* returns with the generator suspended at a yield */
}

/* asyncio.run() with a generator left open: Runner.close runs shutdown_asyncgens, its cleanup runs. */
TEST(asyncgen_run_shutdown_finalizes_open_gen) {
  reset();
  asyncio_loop_options_t lo = {0};
  lo.clock = ASYNCIO_CLOCK_VIRTUAL;
  asyncio_run_options_t ro = {0};
  ro.loop = &lo;
  left_open = NULL;
  assert_rc(asyncio_run(main_leaves_gen_open, NULL, &ro), 0);
  ASSERT_SOFT();
  assert_int_equal(cleanups, 1);
  int expect[] = {-1, -2}; /* the cleanup ran to its end, across its await */
  assert_int_equal(norder, 2);
  assert_memory_equal(order, expect, sizeof expect);
  assert_int_equal(asyncio_asyncgen_get_state(left_open), ASYNCIO_AGEN_CLOSED);
  assert_ok(asyncio_asyncgen_free(left_open));
}

static int main_frees_open_gen(void *arg) {
  (void)arg;
  asyncio_asyncgen_t *g;
  void *v;
  CHECK_RC(asyncio_asyncgen_new(&g, closing_body, NULL, NULL), 0);
  CHECK_RC(asyncio_asyncgen_next(g, &v), 1);
  CHECK_RC(asyncio_asyncgen_free(g), 0); /* suspended: handed to the loop */
  CHECK(cleanups == 0);                   /* closed later, in a task of its own */
  CHECK_RC(asyncio_sleep(0), 0);
  CHECK(norder == 1 && order[0] == -1); /* the finalizer started the cleanup */
  CHECK_RC(asyncio_sleep(1.0), 0);
  CHECK(cleanups == 1);
  return 0;
}

/* A generator freed while suspended is closed by the loop (the finalizer hook): cleanup runs, nothing leaks. */
TEST(asyncgen_free_suspended_closes_via_loop) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_rc(run_task(loop, main_frees_open_gen, NULL), 0);
  ASSERT_SOFT();
  assert_int_equal(cleanups, 1);
  assert_ok(asyncio_loop_close(loop));
}

static int erroring_cleanup_body(asyncio_asyncgen_t *gen, void *arg) {
  (void)gen;
  (void)arg;
  int rc = asyncio_asyncgen_yield(PV(1));
  if (rc == ASYNCIO_EGENERATOREXIT) return -EPIPE; /* the cleanup fails */
  return rc;
}

static asyncio_asyncgen_t *gens[3];

static int shutdown_explicitly(void *arg) {
  (void)arg;
  void *v;
  CHECK_RC(asyncio_asyncgen_new(&gens[0], closing_body, NULL, NULL), 0);
  CHECK_RC(asyncio_asyncgen_new(&gens[1], erroring_cleanup_body, NULL, NULL), 0);
  CHECK_RC(asyncio_asyncgen_new(&gens[2], count_body, PV(5), NULL), 0);
  for (int i = 0; i < 3; i++) CHECK_RC(asyncio_asyncgen_next(gens[i], &v), 1);
  CHECK_RC(asyncio_asyncgen_free(gens[2]), 0); /* an orphan whose finalizer is pending */
  CHECK_RC(asyncio_loop_shutdown_asyncgens(NULL), 0);
  CHECK(cleanups == 2);
  CHECK(asyncio_asyncgen_get_state(gens[0]) == ASYNCIO_AGEN_CLOSED);
  CHECK(asyncio_asyncgen_get_state(gens[1]) == ASYNCIO_AGEN_CLOSED);
  CHECK_RC(asyncio_loop_shutdown_asyncgens(NULL), 0); /* nothing left: a no-op */
  return 0;
}

/* loop.shutdown_asyncgens(): closes every suspended generator; a failing cleanup is reported. */
TEST(asyncgen_shutdown_asyncgens_reports_errors) {
  reset();
  eh_calls = 0;
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_ok(asyncio_loop_set_exception_handler(loop, capture_handler, NULL));
  assert_rc(run_task(loop, shutdown_explicitly, NULL), 0);
  ASSERT_SOFT();
  assert_int_equal(eh_calls, 1);
  assert_int_equal(eh_error, -EPIPE);
  assert_non_null(strstr(eh_message, "an error occurred during closing of asynchronous generator"));
  assert_rc(asyncio_loop_shutdown_asyncgens(loop), ASYNCIO_ENOTASK); /* not running */
  assert_ok(asyncio_asyncgen_free(gens[0]));
  assert_ok(asyncio_asyncgen_free(gens[1]));
  assert_ok(asyncio_loop_close(loop));
}

/* loop.close() without shutdown_asyncgens: a suspended body never runs again; its stack is released. */
TEST(asyncgen_loop_close_releases_suspended) {
  reset();
  eh_calls = 0;
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_ok(asyncio_loop_set_exception_handler(loop, capture_handler, NULL));
  asyncio_asyncgen_t *kept, *freed;
  assert_ok(asyncio_asyncgen_new(&kept, closing_body, NULL, NULL));
  assert_ok(asyncio_asyncgen_new(&freed, closing_body, NULL, NULL));
  assert_rc(run_task(loop, start_gen, kept), 0);
  assert_rc(run_task(loop, start_gen, freed), 0);
  assert_ok(asyncio_asyncgen_free(freed)); /* its finalizer task never gets to run */
  eh_agen_destroyed = 0;
  assert_ok(asyncio_loop_close(loop));
  ASSERT_SOFT();
  assert_int_equal(eh_agen_destroyed, 2); /* reported, as pending tasks are */
  assert_int_equal(cleanups, 0);
  assert_int_equal(asyncio_asyncgen_get_state(kept), ASYNCIO_AGEN_CLOSED);
  void *v;
  assert_rc(asyncio_asyncgen_next(kept, &v), ASYNCIO_ENOTASK);
  assert_ok(asyncio_asyncgen_aclose(kept));
  assert_ok(asyncio_asyncgen_free(kept));
}

/* ---- composition ---------------------------------------------------------------- */

static int inner_body(asyncio_asyncgen_t *gen, void *arg) {
  (void)gen;
  (void)arg;
  for (int i = 1; i <= 3; i++) {
    int rc = asyncio_sleep(0.25);
    if (rc < 0) return rc;
    rc = asyncio_asyncgen_yield(PV(i));
    if (rc < 0) {
      rec(-10);
      return rc;
    }
  }
  return 0;
}

/* async def outer(): async for x in inner(): await sleep(); yield x * 10 */
static int outer_body(asyncio_asyncgen_t *gen, void *arg) {
  (void)gen;
  asyncio_asyncgen_t *inner;
  int rc = asyncio_asyncgen_new(&inner, inner_body, NULL, NULL);
  if (rc < 0) return rc;
  void *v;
  ASYNCIO_ASYNC_FOR(rc, asyncio_asyncgen_next(inner, &v)) {
    rc = asyncio_sleep(0.25);
    if (rc < 0) break;
    CHECK(asyncio_current_task() == arg); /* still on behalf of the consumer */
    rc = asyncio_asyncgen_yield(PV(IV(v) * 10));
    if (rc < 0) break;
  }
  int crc = asyncio_asyncgen_aclose(inner); /* async with aclosing(inner) */
  asyncio_asyncgen_free(inner);
  if (rc == ASYNCIO_EGENERATOREXIT) rec(-20);
  return rc < 0 ? rc : crc;
}

static asyncio_task_t *nest_task;

static int consume_nested(void *arg) {
  (void)arg;
  asyncio_asyncgen_t *outer;
  void *v;
  CHECK_RC(asyncio_asyncgen_new(&outer, outer_body, asyncio_current_task(), NULL), 0);
  CHECK_RC(asyncio_asyncgen_next(outer, &v), 1);
  CHECK(IV(v) == 10);
  CHECK_RC(asyncio_asyncgen_next(outer, &v), 1);
  CHECK(IV(v) == 20);
  CHECK_RC(asyncio_asyncgen_aclose(outer), 0); /* closes the inner one too */
  asyncio_asyncgen_free(outer);
  return 0;
}

/* A generator consuming another one: both await, values flow through, closing the outer closes the inner. */
TEST(asyncgen_nested_generators) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_rc(run_task(loop, consume_nested, NULL), 0);
  ASSERT_SOFT();
  int expect[] = {-10, -20};
  assert_int_equal(norder, 2);
  assert_memory_equal(order, expect, sizeof expect);
  assert_true(asyncio_loop_time(loop) == 1.0);
  (void)nest_task;
  assert_ok(asyncio_loop_close(loop));
}

static int eager_child(void *arg) {
  (void)arg;
  rec(1);
  CHECK_RC(asyncio_sleep(0.5), 0); /* suspends back into the generator body */
  rec(3);
  return 5;
}

static int eager_body(asyncio_asyncgen_t *gen, void *arg) {
  (void)gen;
  (void)arg;
  asyncio_task_t *t;
  asyncio_task_options_t o = {0};
  o.eager = true;
  CHECK_RC(asyncio_create_task(&t, eager_child, NULL, &o), 0);
  rec(2);
  int rc = asyncio_asyncgen_yield(PV(1));
  CHECK_RC(rc, 0);
  rc = asyncio_await(t, NULL);
  asyncio_task_free(t);
  CHECK_RC(asyncio_asyncgen_yield(PV(rc)), 0);
  return 0;
}

static int consume_eager(void *arg) {
  asyncio_asyncgen_t *g = arg;
  void *v;
  CHECK_RC(asyncio_asyncgen_next(g, &v), 1);
  CHECK_RC(asyncio_asyncgen_next(g, &v), 1);
  CHECK(IV(v) == 5);
  CHECK_RC(asyncio_asyncgen_next(g, &v), 0);
  return 0;
}

/* An eager task started inside a body returns to the body (not the consumer) at its first suspension. */
TEST(asyncgen_eager_task_in_body) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_asyncgen_t *g;
  assert_ok(asyncio_asyncgen_new(&g, eager_body, NULL, NULL));
  assert_rc(run_task(loop, consume_eager, g), 0);
  ASSERT_SOFT();
  int expect[] = {1, 2, 3};
  assert_int_equal(norder, 3);
  assert_memory_equal(order, expect, sizeof expect);
  assert_ok(asyncio_asyncgen_free(g));
  assert_ok(asyncio_loop_close(loop));
}

static int whose_body(asyncio_asyncgen_t *gen, void *arg) {
  (void)gen;
  (void)arg;
  for (;;) {
    asyncio_task_t *me = asyncio_current_task();
    int rc = asyncio_sleep(0.1);
    if (rc < 0) return rc;
    rc = asyncio_asyncgen_yield(me);
    if (rc < 0) return rc;
  }
}

static int take_one(void *arg) {
  void *v = NULL;
  CHECK_RC(asyncio_asyncgen_next(arg, &v), 1);
  CHECK(v == asyncio_current_task()); /* the body ran on behalf of this task */
  return 0;
}

/* Successive nexts from different tasks: each runs the body on behalf of its own task. */
TEST(asyncgen_consumed_by_several_tasks) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_asyncgen_t *g;
  assert_ok(asyncio_asyncgen_new(&g, whose_body, NULL, NULL));
  for (int i = 0; i < 3; i++) assert_rc(run_task(loop, take_one, g), 0);
  assert_rc(run_task(loop, aclose_ok, g), 0);
  ASSERT_SOFT();
  assert_ok(asyncio_asyncgen_free(g));
  assert_ok(asyncio_loop_close(loop));
}

/* ---- async for / async comprehension ------------------------------------------ */

static int powers_body(asyncio_asyncgen_t *gen, void *arg) {
  (void)gen;
  int stop = IV(arg);
  for (int e = 0; e < stop; e++) {
    int rc = asyncio_asyncgen_yield(PV(1 << e));
    if (rc < 0) return rc;
    rc = asyncio_sleep(0.1);
    if (rc < 0) return rc;
  }
  return 0;
}

static int comprehension(void *arg) {
  (void)arg;
  /* f = [j async for j in powers(10) if not (j // 3 % 5)] */
  asyncio_asyncgen_t *g;
  CHECK_RC(asyncio_asyncgen_new(&g, powers_body, PV(10), NULL), 0);
  int f[10], n = 0, rc;
  void *v;
  ASYNCIO_ASYNC_FOR(rc, asyncio_asyncgen_next(g, &v)) {
    if (!(IV(v) / 3 % 5)) f[n++] = IV(v);
  }
  CHECK_RC(rc, 0);
  asyncio_asyncgen_free(g);
  int expect[] = {1, 2, 16, 32, 256, 512};
  CHECK(n == 6 && memcmp(f, expect, sizeof expect) == 0);
  /* break out early: the generator stays open until closed */
  CHECK_RC(asyncio_asyncgen_new(&g, closing_body, NULL, NULL), 0);
  ASYNCIO_ASYNC_FOR(rc, asyncio_asyncgen_next(g, &v)) {
    if (IV(v) == 2) break;
  }
  CHECK_RC(rc, 1);
  CHECK(asyncio_asyncgen_get_state(g) == ASYNCIO_AGEN_SUSPENDED);
  CHECK_RC(asyncio_asyncgen_aclose(g), 0);
  CHECK(cleanups == 1);
  asyncio_asyncgen_free(g);
  return 0;
}

/* ASYNCIO_ASYNC_FOR: `async for` and an async comprehension with a filter; break leaves it open. */
TEST(asyncgen_async_for_comprehension) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_rc(run_task(loop, comprehension, NULL), 0);
  ASSERT_SOFT();
  assert_ok(asyncio_loop_close(loop));
}

static int deep(int n) {
  volatile char buf[1024];
  buf[0] = (char)n;
  return n ? deep(n - 1) + buf[0] : 0;
}

static int big_stack_body(asyncio_asyncgen_t *gen, void *arg) {
  (void)gen;
  (void)arg;
  return asyncio_asyncgen_yield(PV(deep(400)));
}

static int consume_big(void *arg) {
  void *v;
  CHECK_RC(asyncio_asyncgen_next(arg, &v), 1);
  CHECK_RC(asyncio_asyncgen_aclose(arg), 0);
  return 0;
}

/* Options: the name is copied (default "asyncgen-<n>"); a larger stack_size is honoured. */
TEST(asyncgen_name_and_stack_size) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  char name[16] = "numbers";
  asyncio_asyncgen_options_t o = {0};
  o.name = name;
  o.stack_size = 1024 * 1024;
  asyncio_asyncgen_t *g, *h;
  assert_ok(asyncio_asyncgen_new(&g, big_stack_body, NULL, &o));
  memset(name, 'X', sizeof name - 1);
  assert_string_equal(asyncio_asyncgen_get_name(g), "numbers");
  assert_ok(asyncio_asyncgen_new(&h, count_body, NULL, NULL));
  assert_int_equal(strncmp(asyncio_asyncgen_get_name(h), "asyncgen-", 9), 0);
  assert_null(asyncio_asyncgen_get_name(NULL));
  assert_rc(run_task(loop, consume_big, g), 0);
  ASSERT_SOFT();
  assert_ok(asyncio_asyncgen_free(g));
  assert_ok(asyncio_asyncgen_free(h));
  assert_ok(asyncio_loop_close(loop));
}

static int enomem_consumer(void *arg) {
  asyncio_asyncgen_t *g;
  void *v;
  CHECK_RC(asyncio_asyncgen_new(&g, count_body, PV(2), NULL), 0);
  harness_fail_alloc_after(1);
  int rc = asyncio_asyncgen_new((asyncio_asyncgen_t **)arg, count_body, NULL, NULL);
  harness_fail_alloc_after(0);
  CHECK_RC(rc, -ENOMEM);
  CHECK(*(asyncio_asyncgen_t **)arg == NULL);
  asyncio_asyncgen_options_t o = {0};
  o.name = "named";
  harness_fail_alloc_after(2); /* the name's copy */
  rc = asyncio_asyncgen_new((asyncio_asyncgen_t **)arg, count_body, NULL, &o);
  harness_fail_alloc_after(0);
  CHECK_RC(rc, -ENOMEM);
  CHECK(*(asyncio_asyncgen_t **)arg == NULL);
  CHECK_RC(asyncio_asyncgen_next(g, &v), 1);
  asyncio_asyncgen_free(g); /* closed by its finalizer task */
  CHECK_RC(asyncio_sleep(0), 0);
  CHECK_RC(asyncio_sleep(0), 0);
  return 0;
}

/* new() under allocation failure: -ENOMEM, *out cleared, nothing leaked; others keep working. */
TEST(asyncgen_new_enomem) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_asyncgen_t *out = PV(1);
  assert_rc(run_task(loop, enomem_consumer, &out), 0);
  ASSERT_SOFT();
  assert_int_equal(cleanups, 1);
  assert_ok(asyncio_loop_close(loop));
}

static int deep_inner(asyncio_asyncgen_t *gen, void *arg) {
  (void)gen;
  (void)arg;
  int rc = asyncio_sleep(100.0); /* the cancellation lands here, two generators deep */
  rec(rc == -ECANCELED ? 1 : 0);
  return rc;
}

static int deep_outer(asyncio_asyncgen_t *gen, void *arg) {
  (void)gen;
  (void)arg;
  asyncio_asyncgen_t *inner;
  int rc = asyncio_asyncgen_new(&inner, deep_inner, NULL, NULL);
  if (rc < 0) return rc;
  void *v;
  rc = asyncio_asyncgen_next(inner, &v);
  rec(rc == -ECANCELED ? 2 : 0);
  asyncio_asyncgen_free(inner); /* already closed by its error */
  return rc;
}

static int consume_deep(void *arg) {
  (void)arg;
  asyncio_asyncgen_t *outer;
  void *v;
  CHECK_RC(asyncio_asyncgen_new(&outer, deep_outer, NULL, NULL), 0);
  int rc = asyncio_asyncgen_next(outer, &v);
  rec(rc == -ECANCELED ? 3 : 0);
  CHECK(asyncio_asyncgen_get_state(outer) == ASYNCIO_AGEN_CLOSED);
  asyncio_asyncgen_free(outer);
  return rc;
}

/* Cancelling a task whose innermost context is a generator two levels deep: delivered there, propagated out. */
TEST(asyncgen_cancel_nested) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *t, *c;
  assert_ok(asyncio_loop_create_task(loop, &t, consume_deep, NULL, NULL));
  assert_ok(asyncio_loop_create_task(loop, &c, canceller, t, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), -ECANCELED);
  assert_rc(asyncio_loop_run_until_complete(loop, c, NULL), 0);
  ASSERT_SOFT();
  int expect[] = {1, 2, 3};
  assert_int_equal(norder, 3);
  assert_memory_equal(order, expect, sizeof expect);
  assert_true(asyncio_loop_time(loop) == 1.0);
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_task_free(c));
  assert_ok(asyncio_loop_close(loop));
}

static int consume_under_timeout(void *arg) {
  asyncio_asyncgen_t *g = arg;
  void *v;
  CHECK_RC(asyncio_asyncgen_next(g, &v), 1);
  asyncio_timeout_t *cm;
  CHECK_RC(asyncio_timeout_enter(&cm, 0.5), 0);
  int rc = asyncio_timeout_exit(cm, asyncio_asyncgen_next(g, &v)); /* the body sleeps 10 s */
  CHECK(asyncio_timeout_expired(cm));
  asyncio_timeout_free(cm);
  return rc;
}

/* `async with timeout(0.5): await anext(gen)` while the body sleeps: -ETIMEDOUT, the body unwound. */
TEST(asyncgen_next_honours_timeout_scope) {
  reset();
  body_sleep_rc = 0;
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_asyncgen_t *g;
  assert_ok(asyncio_asyncgen_new(&g, long_sleep_body, NULL, NULL));
  assert_rc(run_task(loop, consume_under_timeout, g), -ETIMEDOUT);
  ASSERT_SOFT();
  assert_int_equal(body_sleep_rc, -ECANCELED);
  assert_int_equal(cleanups, 1);
  assert_true(asyncio_loop_time(loop) == 0.5);
  assert_int_equal(asyncio_asyncgen_get_state(g), ASYNCIO_AGEN_CLOSED);
  assert_ok(asyncio_asyncgen_free(g));
  assert_ok(asyncio_loop_close(loop));
}
