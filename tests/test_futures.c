/*
 * test_futures.c - futures (include/asyncio/futures.h).
 *
 * Python origin: Lib/asyncio/futures.py (Future: _state PENDING / CANCELLED /
 * FINISHED, set_result, set_exception, cancel, result, exception,
 * add_done_callback, remove_done_callback, __schedule_callbacks, __del__) and
 * Lib/test/test_asyncio/test_futures.py.
 *
 * Assertions inside loop callbacks and tasks are soft (CHECK) so that a
 * failure never longjmps out of a running loop or a task's stack.
 */
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>


static void stop_cb(void *arg) { asyncio_loop_stop((asyncio_loop_t *)arg); }

/* test_utils.run_once(): call_soon(loop.stop); loop.run_forever(). */
static void run_once(asyncio_loop_t *loop) {
  assert_ok(asyncio_loop_call_soon(loop, stop_cb, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
}

/* Records done callbacks: which one, with which future, and whether it was done. */
static int order[256];
static asyncio_future_t *order_fut[256];
static int norder;

static void reset(void) {
  norder = 0;
  soft_fail[0] = 0;
}

static void done_rec(asyncio_future_t *f, void *arg) {
  CHECK(asyncio_future_done(f));
  if (norder < 256) {
    order_fut[norder] = f;
    order[norder++] = (int)(intptr_t)arg;
  }
}

static void plain_rec(void *arg) {
  if (norder < 256) {
    order_fut[norder] = NULL;
    order[norder++] = (int)(intptr_t)arg;
  }
}

static int value_a, value_b;

/* ---- states -------------------------------------------------------------- */

/* A new future is PENDING: not done, not cancelled; result()/exception() raise InvalidStateError. */
TEST(future_initial_state) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f = NULL;
  assert_ok(asyncio_future_new(&f, loop));
  assert_non_null(f);
  assert_false(asyncio_future_done(f));
  assert_false(asyncio_future_cancelled(f));
  assert_false(asyncio_future_is_task(f));
  assert_ptr_equal(asyncio_future_get_loop(f), loop);
  void *v = &value_a;
  assert_rc(asyncio_future_result(f, &v), ASYNCIO_EINVALIDSTATE);
  assert_rc(asyncio_future_exception(f), ASYNCIO_EINVALIDSTATE);
  assert_null(asyncio_future_error_message(f));
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

/*
 * set_result(): FINISHED with the result and value; exception() is None (0);
 * set_result/set_exception again raise InvalidStateError; cancel() returns False.
 */
TEST(future_set_result_once) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  assert_ok(asyncio_future_set_result(f, 42, &value_a));
  assert_true(asyncio_future_done(f));
  assert_false(asyncio_future_cancelled(f));
  void *v = NULL;
  assert_rc(asyncio_future_result(f, &v), 42);
  assert_ptr_equal(v, &value_a);
  assert_rc(asyncio_future_result(f, NULL), 42);
  assert_rc(asyncio_future_exception(f), 0);
  assert_rc(asyncio_future_set_result(f, 1, &value_b), ASYNCIO_EINVALIDSTATE);
  assert_rc(asyncio_future_set_exception(f, -EIO, NULL), ASYNCIO_EINVALIDSTATE);
  assert_rc(asyncio_future_cancel(f, NULL), 0);
  assert_false(asyncio_future_cancelled(f));
  v = NULL;
  assert_rc(asyncio_future_result(f, &v), 42); /* unchanged */
  assert_ptr_equal(v, &value_a);
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

/* A result of 0 with no value is a normal result (None). */
TEST(future_set_result_zero) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  assert_ok(asyncio_future_set_result(f, 0, NULL));
  void *v = &value_a;
  assert_rc(asyncio_future_result(f, &v), 0);
  assert_null(v);
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

/*
 * set_exception(): FINISHED with the error; result() raises it, exception()
 * returns it; the message is copied; a second completion is InvalidStateError.
 */
TEST(future_set_exception_once) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  char msg[32];
  strcpy(msg, "connection lost");
  assert_ok(asyncio_future_set_exception(f, -ECONNRESET, msg));
  memset(msg, 'X', sizeof msg - 1); /* the future kept its own copy */
  assert_true(asyncio_future_done(f));
  assert_false(asyncio_future_cancelled(f));
  assert_rc(asyncio_future_result(f, NULL), -ECONNRESET);
  assert_rc(asyncio_future_exception(f), -ECONNRESET);
  assert_string_equal(asyncio_future_error_message(f), "connection lost");
  assert_rc(asyncio_future_set_result(f, 1, NULL), ASYNCIO_EINVALIDSTATE);
  assert_rc(asyncio_future_set_exception(f, -EIO, NULL), ASYNCIO_EINVALIDSTATE);
  assert_rc(asyncio_future_cancel(f, NULL), 0);
  assert_rc(asyncio_future_exception(f), -ECONNRESET);
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

/* set_exception() without a message: error_message() is NULL. */
TEST(future_set_exception_no_message) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  assert_ok(asyncio_future_set_exception(f, -EIO, NULL));
  assert_null(asyncio_future_error_message(f));
  assert_rc(asyncio_future_exception(f), -EIO);
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

/*
 * cancel(msg): CANCELLED; returns True once and False after; result() and
 * exception() raise CancelledError(msg); completion after cancel is
 * InvalidStateError.
 */
TEST(future_cancel_once) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  char msg[16];
  strcpy(msg, "go away");
  assert_rc(asyncio_future_cancel(f, msg), 1);
  memset(msg, 'X', sizeof msg - 1);
  assert_true(asyncio_future_done(f));
  assert_true(asyncio_future_cancelled(f));
  assert_rc(asyncio_future_cancel(f, "again"), 0);
  assert_rc(asyncio_future_result(f, NULL), -ECANCELED);
  assert_rc(asyncio_future_exception(f), -ECANCELED);
  assert_string_equal(asyncio_future_error_message(f), "go away");
  assert_rc(asyncio_future_set_result(f, 1, NULL), ASYNCIO_EINVALIDSTATE);
  assert_rc(asyncio_future_set_exception(f, -EIO, NULL), ASYNCIO_EINVALIDSTATE);
  assert_true(asyncio_future_cancelled(f));
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

/* cancel() without a message: no message. */
TEST(future_cancel_without_message) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  assert_rc(asyncio_future_cancel(f, NULL), 1);
  assert_null(asyncio_future_error_message(f));
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

/* Bad arguments are -EINVAL and leave the future pending. */
TEST(future_invalid_arguments) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_rc(asyncio_future_new(NULL, loop), -EINVAL);
  assert_ok(asyncio_future_new(&f, loop));
  assert_rc(asyncio_future_set_result(f, -1, NULL), -EINVAL);   /* a result is >= 0 */
  assert_rc(asyncio_future_set_exception(f, 0, NULL), -EINVAL); /* an error is < 0 */
  assert_rc(asyncio_future_set_exception(f, 5, NULL), -EINVAL);
  assert_false(asyncio_future_done(f));
  assert_rc(asyncio_future_set_result(NULL, 1, NULL), -EINVAL);
  assert_rc(asyncio_future_set_exception(NULL, -EIO, NULL), -EINVAL);
  assert_rc(asyncio_future_add_done_callback(NULL, done_rec, NULL), -EINVAL);
  assert_rc(asyncio_future_add_done_callback(f, NULL, NULL), -EINVAL);
  assert_rc(asyncio_future_free(NULL), -EINVAL);
  assert_null(asyncio_future_ref(NULL));
  assert_false(asyncio_future_is_task(f));
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

/* loop.create_future() needs a loop: NULL outside a running loop is ASYNCIO_ENOLOOP. */
TEST(future_new_without_loop) {
  asyncio_future_t *f = NULL;
  assert_rc(asyncio_future_new(&f, NULL), ASYNCIO_ENOLOOP);
  assert_null(f);
}

static void new_on_running(void *arg) {
  asyncio_loop_t *loop = arg;
  asyncio_future_t *f = NULL;
  CHECK_RC(asyncio_future_new(&f, NULL), 0);
  if (f) {
    CHECK(asyncio_future_get_loop(f) == loop);
    asyncio_future_free(f);
  }
}

/* asyncio_future_new(&f, NULL) inside a running loop uses that loop (get_running_loop()). */
TEST(future_new_on_running_loop) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_ok(asyncio_loop_call_soon(loop, new_on_running, loop, NULL));
  run_once(loop);
  ASSERT_SOFT();
  assert_ok(asyncio_loop_close(loop));
}

/* ---- done callbacks ------------------------------------------------------ */

/*
 * __schedule_callbacks(): done callbacks are scheduled with call_soon, never
 * run from inside set_result; they run in registration order, after
 * callbacks scheduled earlier and before callbacks scheduled later.
 */
TEST(future_done_callbacks_run_via_loop_in_order) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  assert_ok(asyncio_future_add_done_callback(f, done_rec, (void *)1));
  assert_ok(asyncio_future_add_done_callback(f, done_rec, (void *)2));
  assert_ok(asyncio_future_add_done_callback(f, done_rec, (void *)3));
  assert_ok(asyncio_loop_call_soon(loop, plain_rec, (void *)100, NULL));
  assert_ok(asyncio_future_set_result(f, 5, NULL));
  assert_int_equal(norder, 0); /* not synchronously */
  assert_ok(asyncio_loop_call_soon(loop, plain_rec, (void *)200, NULL));
  run_once(loop);
  ASSERT_SOFT();
  assert_int_equal(norder, 5);
  const int want[] = {100, 1, 2, 3, 200};
  for (int i = 0; i < 5; i++) assert_int_equal(order[i], want[i]);
  for (int i = 1; i <= 3; i++) assert_ptr_equal(order_fut[i], f);
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

/* Many callbacks (beyond the inline first one) still run once each, in registration order. */
TEST(future_many_done_callbacks) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  for (int i = 0; i < 100; i++) assert_ok(asyncio_future_add_done_callback(f, done_rec, (void *)(intptr_t)i));
  assert_ok(asyncio_future_set_exception(f, -EIO, NULL));
  assert_rc(asyncio_future_exception(f), -EIO);
  run_once(loop);
  ASSERT_SOFT();
  assert_int_equal(norder, 100);
  for (int i = 0; i < 100; i++) assert_int_equal(order[i], i);
  run_once(loop);
  assert_int_equal(norder, 100); /* once only */
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

/* Done callbacks also run when the future is cancelled, and see it cancelled. */
static void done_check_cancelled(asyncio_future_t *f, void *arg) {
  CHECK(asyncio_future_cancelled(f));
  done_rec(f, arg);
}

TEST(future_done_callbacks_on_cancel) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  assert_ok(asyncio_future_add_done_callback(f, done_check_cancelled, (void *)1));
  assert_rc(asyncio_future_cancel(f, NULL), 1);
  assert_int_equal(norder, 0);
  run_once(loop);
  ASSERT_SOFT();
  assert_int_equal(norder, 1);
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

/* add_done_callback() on a done future: "the callback is scheduled with call_soon" (not run at once). */
TEST(future_callback_on_done_future_scheduled_soon) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  assert_ok(asyncio_future_set_result(f, 1, NULL));
  assert_ok(asyncio_loop_call_soon(loop, plain_rec, (void *)100, NULL));
  assert_ok(asyncio_future_add_done_callback(f, done_rec, (void *)7));
  assert_int_equal(norder, 0);
  run_once(loop);
  ASSERT_SOFT();
  assert_int_equal(norder, 2);
  assert_int_equal(order[0], 100);
  assert_int_equal(order[1], 7);
  assert_ptr_equal(order_fut[1], f);
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

/*
 * remove_done_callback(fn): removes every registration of the callback and
 * returns how many; the others still run.
 */
TEST(future_remove_done_callback_count) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  assert_ok(asyncio_future_add_done_callback(f, done_rec, (void *)1));
  assert_ok(asyncio_future_add_done_callback(f, done_rec, (void *)2));
  assert_ok(asyncio_future_add_done_callback(f, done_rec, (void *)1));
  assert_ok(asyncio_future_add_done_callback(f, done_rec, (void *)3));
  assert_ok(asyncio_future_add_done_callback(f, done_rec, (void *)1));
  assert_rc(asyncio_future_remove_done_callback(f, done_rec, (void *)1), 3);
  assert_rc(asyncio_future_remove_done_callback(f, done_rec, (void *)1), 0);
  assert_rc(asyncio_future_remove_done_callback(f, done_rec, (void *)9), 0);
  assert_rc(asyncio_future_remove_done_callback(f, done_check_cancelled, (void *)2), 0);
  assert_ok(asyncio_future_set_result(f, 1, NULL));
  run_once(loop);
  ASSERT_SOFT();
  assert_int_equal(norder, 2);
  assert_int_equal(order[0], 2);
  assert_int_equal(order[1], 3);
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

/* Removing the first (inline) registration keeps the rest in order. */
TEST(future_remove_first_callback_keeps_order) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  for (int i = 0; i < 6; i++) assert_ok(asyncio_future_add_done_callback(f, done_rec, (void *)(intptr_t)i));
  assert_rc(asyncio_future_remove_done_callback(f, done_rec, (void *)0), 1);
  assert_rc(asyncio_future_remove_done_callback(f, done_rec, (void *)3), 1);
  assert_ok(asyncio_future_add_done_callback(f, done_rec, (void *)6));
  assert_ok(asyncio_future_set_result(f, 1, NULL));
  run_once(loop);
  ASSERT_SOFT();
  const int want[] = {1, 2, 4, 5, 6};
  assert_int_equal(norder, 5);
  for (int i = 0; i < 5; i++) assert_int_equal(order[i], want[i]);
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

/* Once the callbacks are scheduled (the future is done) there is nothing left to remove. */
TEST(future_remove_after_done_removes_nothing) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  assert_ok(asyncio_future_add_done_callback(f, done_rec, (void *)1));
  assert_ok(asyncio_future_set_result(f, 1, NULL));
  assert_rc(asyncio_future_remove_done_callback(f, done_rec, (void *)1), 0);
  run_once(loop);
  assert_int_equal(norder, 1);
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

static void noop_cb(void *arg) { (void)arg; }

/* "The first callback needs no allocation" (_asynciomodule.c's fut_callback0). */
TEST(future_first_callback_allocates_nothing) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  /* Warm the handle pool, as any running loop has it. */
  assert_ok(asyncio_loop_call_soon(loop, noop_cb, NULL, NULL));
  run_once(loop);
  long before = harness_total_allocs();
  int rc = asyncio_future_add_done_callback(f, done_rec, (void *)1);
  long after = harness_total_allocs();
  assert_ok(rc);
  assert_int_equal(after, before);
  assert_ok(asyncio_future_set_result(f, 1, NULL));
  run_once(loop);
  assert_int_equal(norder, 1);
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

/* ENOMEM: a callback that could not be registered is not registered (nothing scheduled). */
TEST(future_add_done_callback_enomem) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  int ok = 0, failed = 0;
  for (int i = 0; i < 200 && !failed; i++) {
    harness_fail_alloc_after(1);
    int rc = asyncio_future_add_done_callback(f, done_rec, (void *)1);
    harness_fail_alloc_after(0);
    if (rc == 0) ok++;
    else if (rc == -ENOMEM) failed++;
    else fail_msg("add_done_callback: %s", asyncio_errname(rc));
  }
  assert_int_equal(failed, 1);
  assert_ok(asyncio_future_set_result(f, 1, NULL));
  run_once(loop);
  assert_int_equal(norder, ok);
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}



/*
 * Completing a future never allocates, so no done callback can be lost to
 * ENOMEM then: each callback takes its handle when it is added.  300
 * callbacks are more than one chunk of the handle pool.
 */
static int ndone_count;
static void done_count(asyncio_future_t *f, void *arg) {
  (void)f;
  (void)arg;
  ndone_count++;
}
static void noop_done(asyncio_future_t *f, void *arg) {
  (void)f;
  (void)arg;
}

TEST(future_completion_allocates_nothing) {
  reset();
  ndone_count = 0;
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  for (int i = 0; i < 300; i++) assert_ok(asyncio_future_add_done_callback(f, done_count, NULL));
  /* removal gives a handle back; the rest still run */
  assert_int_equal(asyncio_future_remove_done_callback(f, noop_done, NULL), 0);
  long before = harness_total_allocs();
  harness_fail_alloc_after(1);
  assert_ok(asyncio_future_set_result(f, 1, NULL));
  harness_fail_alloc_after(0);
  assert_int_equal(harness_total_allocs(), before);
  run_once(loop);
  assert_int_equal(ndone_count, 300);
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

/* A future freed while pending gives its callbacks' handles back (no leak, no report). */
TEST(future_freed_pending_with_callbacks) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  for (int i = 0; i < 5; i++) assert_ok(asyncio_future_add_done_callback(f, done_rec, (void *)1));
  assert_ok(asyncio_future_free(f));
  run_once(loop);
  assert_int_equal(norder, 0);
  assert_ok(asyncio_loop_close(loop));
}

/* A future that outlives its loop's close keeps working: remove and free its callbacks. */
TEST(future_callbacks_after_loop_close) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  assert_ok(asyncio_future_add_done_callback(f, done_rec, (void *)1));
  assert_ok(asyncio_future_add_done_callback(f, done_rec, (void *)2));
  assert_ok(asyncio_loop_close(loop));
  assert_int_equal(asyncio_future_remove_done_callback(f, done_rec, (void *)2), 1);
  assert_ok(asyncio_future_free(f));
  assert_int_equal(norder, 0);
}

/* set_exception(): if the message cannot be copied the call fails with -ENOMEM and the future stays pending. */
TEST(future_set_exception_enomem_leaves_pending) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  harness_fail_alloc_after(1);
  int rc = asyncio_future_set_exception(f, -EIO, "a message to copy");
  harness_fail_alloc_after(0);
  assert_rc(rc, -ENOMEM);
  assert_false(asyncio_future_done(f));
  assert_ok(asyncio_future_set_exception(f, -EIO, "a message to copy"));
  assert_rc(asyncio_future_exception(f), -EIO);
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

/* cancel(msg): if the message cannot be copied the cancellation happens without it. */
TEST(future_cancel_enomem_still_cancels) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  harness_fail_alloc_after(1);
  int rc = asyncio_future_cancel(f, "a message to copy");
  harness_fail_alloc_after(0);
  assert_rc(rc, 1);
  assert_true(asyncio_future_cancelled(f));
  assert_null(asyncio_future_error_message(f));
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

/* ---- ownership ------------------------------------------------------------ */

/* ref() adds a reference and returns the future; each free() drops one; the last frees. */
TEST(future_refcount) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  assert_ptr_equal(asyncio_future_ref(f), f);
  assert_ok(asyncio_future_free(f));
  /* still alive and usable (ASan would catch a use after free) */
  assert_ok(asyncio_future_set_result(f, 3, NULL));
  assert_rc(asyncio_future_result(f, NULL), 3);
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

static void done_use_future(asyncio_future_t *f, void *arg) {
  CHECK(asyncio_future_done(f));
  CHECK(asyncio_future_result(f, NULL) == 9);
  done_rec(f, arg);
}

/* The loop holds its own reference while a done callback is scheduled: dropping ours is safe. */
TEST(future_free_with_scheduled_callback) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  assert_ok(asyncio_future_add_done_callback(f, done_use_future, (void *)1));
  assert_ok(asyncio_future_add_done_callback(f, done_use_future, (void *)2));
  assert_ok(asyncio_future_set_result(f, 9, NULL));
  assert_ok(asyncio_future_free(f));
  run_once(loop);
  ASSERT_SOFT();
  assert_int_equal(norder, 2);
  assert_ok(asyncio_loop_close(loop));
}

/* A pending future with registered (unscheduled) callbacks can be freed: nothing runs, nothing leaks. */
TEST(future_free_pending_with_callbacks) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  for (int i = 0; i < 5; i++) assert_ok(asyncio_future_add_done_callback(f, done_rec, (void *)1));
  assert_ok(asyncio_future_free(f));
  run_once(loop);
  assert_int_equal(norder, 0);
  assert_ok(asyncio_loop_close(loop));
}

static int await_arg(void *arg) { return asyncio_await((asyncio_future_t *)arg, NULL); }

/*
 * Freeing the last outside reference to a pending future that tasks await
 * is -EBUSY (nobody could ever complete it) and keeps the reference.
 */
TEST(future_free_with_awaiting_task_ebusy) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  asyncio_task_t *t;
  assert_ok(asyncio_future_new(&f, loop));
  assert_ok(asyncio_loop_create_task(loop, &t, await_arg, f, NULL));
  run_once(loop); /* the task starts and suspends on f */
  assert_false(asyncio_future_done(t));
  asyncio_future_ref(f);
  assert_ok(asyncio_future_free(f)); /* not the last outside reference */
  assert_rc(asyncio_future_free(f), -EBUSY);
  assert_false(asyncio_future_done(f)); /* still ours and alive */
  assert_ok(asyncio_future_set_result(f, 3, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 3);
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

static int trivial(void *arg) {
  (void)arg;
  return 4;
}

/* A task's outcome is its coroutine's: set_result/set_exception on a task -> -EPERM (Task.set_result raises RuntimeError). */
TEST(future_set_result_on_task_eperm) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, trivial, NULL, NULL));
  assert_true(asyncio_future_is_task(t));
  assert_rc(asyncio_future_set_result(t, 1, NULL), -EPERM);
  assert_rc(asyncio_future_set_exception(t, -EIO, NULL), -EPERM);
  assert_false(asyncio_future_done(t));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 4);
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
}

/* ---- await ---------------------------------------------------------------- */

static int awaiter_steps[8];
static int nsteps;

static int await_done_future(void *arg) {
  awaiter_steps[nsteps++] = 1;
  void *v = NULL;
  int rc = asyncio_await((asyncio_future_t *)arg, &v);
  awaiter_steps[nsteps++] = 2;
  CHECK(v == &value_b);
  return rc;
}

static int other_task(void *arg) {
  (void)arg;
  awaiter_steps[nsteps++] = 3;
  return 0;
}

/* Future.__await__: a done future returns at once without yielding to other tasks. */
TEST(future_await_done_future_does_not_yield) {
  reset();
  nsteps = 0;
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  asyncio_task_t *a, *b;
  assert_ok(asyncio_future_new(&f, loop));
  assert_ok(asyncio_future_set_result(f, 11, &value_b));
  assert_ok(asyncio_loop_create_task(loop, &a, await_done_future, f, NULL));
  assert_ok(asyncio_loop_create_task(loop, &b, other_task, NULL, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, b, NULL), 0);
  assert_rc(asyncio_loop_run_until_complete(loop, a, NULL), 11);
  ASSERT_SOFT();
  assert_int_equal(nsteps, 3);
  assert_int_equal(awaiter_steps[0], 1);
  assert_int_equal(awaiter_steps[1], 2);
  assert_int_equal(awaiter_steps[2], 3);
  assert_ok(asyncio_task_free(a));
  assert_ok(asyncio_task_free(b));
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

static int await_error(void *arg) { return asyncio_await((asyncio_future_t *)arg, NULL); }

static void fail_future(void *arg) { asyncio_future_set_exception((asyncio_future_t *)arg, -EPIPE, "pipe"); }

/* `await fut` raises the future's exception in the awaiting task (and retrieves it). */
TEST(future_await_error) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  asyncio_task_t *t;
  assert_ok(asyncio_future_new(&f, loop));
  assert_ok(asyncio_loop_create_task(loop, &t, await_error, f, NULL));
  assert_ok(asyncio_loop_call_later(loop, 1.0, fail_future, f, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), -EPIPE);
  assert_true(asyncio_loop_time(loop) == 1.0);
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

static asyncio_future_t *foreign_future;

static int await_foreign(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_await(foreign_future, NULL), -EINVAL);
  CHECK_RC(asyncio_await(NULL, NULL), -EINVAL);
  return 0;
}

/* Awaiting a future of another loop is refused ("attached to a different loop"); NULL is -EINVAL. */
TEST(future_await_other_loop) {
  reset();
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_loop_t *other = harness_virtual_loop();
  assert_ok(asyncio_future_new(&foreign_future, other));
  asyncio_task_t *t;
  assert_ok(asyncio_loop_create_task(loop, &t, await_foreign, NULL, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  ASSERT_SOFT();
  assert_false(asyncio_future_done(foreign_future));
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_future_free(foreign_future));
  assert_ok(asyncio_loop_close(other));
  assert_ok(asyncio_loop_close(loop));
}

/* Awaiting outside a task is ASYNCIO_ENOTASK (RuntimeError) and does not touch the future. */
TEST(future_await_outside_task) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_future_t *f;
  assert_ok(asyncio_future_new(&f, loop));
  assert_rc(asyncio_await(f, NULL), ASYNCIO_ENOTASK);
  assert_false(asyncio_future_done(f));
  assert_ok(asyncio_future_free(f));
  assert_ok(asyncio_loop_close(loop));
}

/* ---- threads ------------------------------------------------------------- */

static asyncio_future_t *wt_future;
static int wt_rc;

static void *wt_set_result(void *arg) {
  (void)arg;
  wt_rc = asyncio_future_set_result(wt_future, 1, NULL);
  return NULL;
}

static void spawn_setter(void *arg) {
  pthread_t th;
  if (pthread_create(&th, NULL, wt_set_result, NULL) == 0) pthread_join(th, NULL);
  asyncio_loop_stop((asyncio_loop_t *)arg);
}

/*
 * events.h: "every other call made from a foreign thread while the loop runs
 * fails with ASYNCIO_EWRONGTHREAD" - Future.set_result is not thread-safe
 * (Python's answer is call_soon_threadsafe(fut.set_result, ...)).
 */
TEST(future_set_result_wrong_thread) {
  asyncio_loop_t *loop = harness_virtual_loop();
  assert_ok(asyncio_future_new(&wt_future, loop));
  wt_rc = 12345;
  assert_ok(asyncio_loop_call_soon(loop, spawn_setter, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  assert_rc(wt_rc, ASYNCIO_EWRONGTHREAD);
  assert_false(asyncio_future_done(wt_future));
  assert_ok(asyncio_future_free(wt_future));
  assert_ok(asyncio_loop_close(loop));
}
