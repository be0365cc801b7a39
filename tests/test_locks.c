/*
 * test_locks.c - synchronization primitives (include/asyncio/locks.h).
 *
 * Python origin: Lib/asyncio/locks.py and Lib/test/test_asyncio/test_locks.py:
 * FIFO fairness, and a waiter cancelled at every point (while queued, and
 * after it was woken but before it ran) never losing a permit, a wakeup or a
 * notification meant for someone else; Barrier draining, reset and abort.
 *
 * Each test runs a main task on a virtual-clock loop.  Assertions inside
 * tasks are soft (CHECK): cmocka's failure path longjmps, which must never
 * leave a task's stack.
 */
#include "harness.h"
#include "sync_helpers.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct job {
  void *obj;
  int id;
  int rc;
} job_t;

/* ---- Lock ------------------------------------------------------------------ */

/* acquire(); record id; keep the lock. */
static int lock_taker(void *arg) {
  job_t *j = arg;
  j->rc = asyncio_lock_acquire(j->obj);
  if (j->rc == 0) rec(j->id);
  return j->rc;
}

/* acquire(); record id; release(). */
static int lock_user(void *arg) {
  job_t *j = arg;
  j->rc = asyncio_lock_acquire(j->obj);
  if (j->rc < 0) return j->rc;
  rec(j->id);
  return asyncio_lock_release(j->obj);
}

static int lock_basic_main(void *arg) {
  (void)arg;
  asyncio_lock_t *l;
  CHECK_RC(asyncio_lock_new(&l), 0);
  CHECK(!asyncio_lock_locked(l));
  CHECK_RC(asyncio_lock_release(l), -EPERM); /* RuntimeError: not acquired */
  CHECK_RC(asyncio_lock_acquire(l), 0);      /* free: no suspension */
  CHECK(asyncio_lock_locked(l));
  CHECK_RC(asyncio_lock_release(l), 0);
  CHECK(!asyncio_lock_locked(l));
  CHECK_RC(asyncio_lock_release(l), -EPERM);
  CHECK_RC(asyncio_lock_free(l), 0);
  return 0;
}

/* Lock: acquire/release/locked; releasing an unlocked lock is -EPERM (RuntimeError). */
TEST(lock_basic) {
  reset();
  assert_rc(run_main(lock_basic_main, NULL), 0);
}

static int lock_fifo_main(void *arg) {
  (void)arg;
  asyncio_lock_t *l;
  CHECK_RC(asyncio_lock_new(&l), 0);
  CHECK_RC(asyncio_lock_acquire(l), 0);
  job_t j[3] = {{l, 1, 0}, {l, 2, 0}, {l, 3, 0}};
  asyncio_task_t *t1 = spawn(lock_taker, &j[0]);
  asyncio_task_t *t2 = spawn(lock_taker, &j[1]);
  yield0();
  CHECK_ORDER(0);
  CHECK_RC(asyncio_lock_release(l), 0);
  yield0();
  CHECK_ORDER(1, 1);
  yield0();
  CHECK_ORDER(1, 1);
  /* t3 arrives while t2 has been woken but has not run: it queues behind. */
  asyncio_task_t *t3 = spawn(lock_taker, &j[2]);
  CHECK_RC(asyncio_lock_release(l), 0);
  yield0();
  CHECK_ORDER(2, 1, 2);
  CHECK_RC(asyncio_lock_release(l), 0);
  yield0();
  CHECK_ORDER(3, 1, 2, 3);
  CHECK_RC(finish(t1), 0);
  CHECK_RC(finish(t2), 0);
  CHECK_RC(finish(t3), 0);
  CHECK_RC(asyncio_lock_release(l), 0);
  CHECK_RC(asyncio_lock_free(l), 0);
  return 0;
}

/* Lock waiters are served FIFO; a newcomer never jumps a woken waiter (test_acquire). */
TEST(lock_fifo_order) {
  reset();
  assert_rc(run_main(lock_fifo_main, NULL), 0);
}

static int lock_cancel_queued_main(void *arg) {
  (void)arg;
  asyncio_lock_t *l;
  CHECK_RC(asyncio_lock_new(&l), 0);
  CHECK_RC(asyncio_lock_acquire(l), 0);
  job_t a = {l, 1, 0}, b = {l, 2, 0};
  asyncio_task_t *ta = spawn(lock_user, &a);
  asyncio_task_t *tb = spawn(lock_user, &b);
  yield0();
  CHECK_RC(asyncio_lock_free(l), -EBUSY); /* tasks wait on it */
  CHECK_RC(asyncio_task_cancel(ta, NULL), 1);
  yield0();
  CHECK(asyncio_future_cancelled(ta));
  CHECK(asyncio_lock_locked(l));
  CHECK_RC(asyncio_lock_release(l), 0); /* goes to b, not to the cancelled a */
  CHECK_RC(finish(tb), 0);
  CHECK_RC(finish(ta), -ECANCELED);
  CHECK_ORDER(1, 2);
  CHECK(!asyncio_lock_locked(l));
  CHECK_RC(asyncio_lock_free(l), 0);
  return 0;
}

/* A waiter cancelled while queued returns -ECANCELED and the lock goes to the next one. */
TEST(lock_cancel_while_queued) {
  reset();
  assert_rc(run_main(lock_cancel_queued_main, NULL), 0);
}

typedef struct holder {
  asyncio_lock_t *lock;
  asyncio_future_t *blocker;
} holder_t;

static int lock_hold_until(void *arg) {
  holder_t *h = arg;
  int rc = asyncio_lock_acquire(h->lock);
  if (rc < 0) return rc;
  rec(100);
  if (h->blocker) CHECK_RC(asyncio_await(h->blocker, NULL), 0);
  return asyncio_lock_release(h->lock);
}

static int lock_cancel_race_main(void *arg) {
  (void)arg;
  asyncio_lock_t *l;
  asyncio_future_t *fa;
  CHECK_RC(asyncio_lock_new(&l), 0);
  CHECK_RC(asyncio_future_new(&fa, NULL), 0);
  holder_t ha = {l, fa};
  asyncio_task_t *ta = spawn(lock_hold_until, &ha);
  yield0();
  CHECK(asyncio_lock_locked(l));
  job_t b = {l, 2, 0}, c = {l, 3, 0};
  asyncio_task_t *tb = spawn(lock_user, &b);
  yield0();
  asyncio_task_t *tc = spawn(lock_user, &c);
  yield0();
  /* Concurrently: A releases (after fa) while B, the head waiter, is cancelled. */
  CHECK_RC(asyncio_future_set_result(fa, 0, NULL), 0);
  CHECK_RC(asyncio_task_cancel(tb, NULL), 1);
  yield0();
  CHECK(!asyncio_lock_locked(l));
  CHECK(asyncio_future_done(ta));
  CHECK(asyncio_future_cancelled(tb));
  CHECK_RC(finish(tc), 0); /* C is woken in B's place */
  CHECK_ORDER(2, 100, 3);
  CHECK_RC(finish(ta), 0);
  CHECK_RC(finish(tb), -ECANCELED);
  asyncio_future_free(fa);
  CHECK_RC(asyncio_lock_free(l), 0);
  return 0;
}

/* test_cancel_race: the head waiter is cancelled as the lock is released; the next one gets it. */
TEST(lock_cancel_race) {
  reset();
  assert_rc(run_main(lock_cancel_race_main, NULL), 0);
}

static asyncio_lock_t *trigger_lock;
static asyncio_task_t *trigger_task;

static void cancel_then_release(void *arg) {
  (void)arg;
  CHECK_RC(asyncio_task_cancel(trigger_task, NULL), 1);
  CHECK_RC(asyncio_lock_release(trigger_lock), 0);
}

static int lock_cancel_release_race_main(void *arg) {
  (void)arg;
  asyncio_lock_t *l;
  CHECK_RC(asyncio_lock_new(&l), 0);
  CHECK_RC(asyncio_lock_acquire(l), 0);
  job_t j[3] = {{l, 1, 0}, {l, 2, 0}, {l, 3, 0}};
  asyncio_task_t *t[3];
  for (int i = 0; i < 3; i++) t[i] = spawn(lock_taker, &j[i]);
  yield0();
  trigger_lock = l;
  trigger_task = t[0];
  CHECK_RC(asyncio_loop_call_soon(asyncio_get_running_loop(), cancel_then_release, NULL, NULL), 0);
  CHECK_RC(asyncio_await(t[0], NULL), -ECANCELED);
  yield0();
  /* Exactly one task took the lock: t2; t3 still waits. */
  CHECK_ORDER(1, 2);
  CHECK(asyncio_future_done(t[1]));
  CHECK(!asyncio_future_done(t[2]));
  CHECK_RC(asyncio_task_cancel(t[2], NULL), 1);
  yield0();
  CHECK(asyncio_future_cancelled(t[2]));
  CHECK(asyncio_lock_locked(l)); /* t2 still holds it */
  for (int i = 0; i < 3; i++) asyncio_task_free(t[i]);
  CHECK_RC(asyncio_lock_release(l), 0);
  CHECK_RC(asyncio_lock_free(l), 0);
  return 0;
}

/* Issue 32734: cancel one waiter and release in the same callback: only one task takes the lock. */
TEST(lock_cancel_release_race) {
  reset();
  assert_rc(run_main(lock_cancel_release_race_main, NULL), 0);
}

static int lock_cancel_after_wakeup_main(void *arg) {
  (void)arg;
  asyncio_lock_t *l;
  CHECK_RC(asyncio_lock_new(&l), 0);
  CHECK_RC(asyncio_lock_acquire(l), 0);
  job_t b = {l, 2, 0}, c = {l, 3, 0};
  asyncio_task_t *tb = spawn(lock_taker, &b);
  asyncio_task_t *tc = spawn(lock_taker, &c);
  yield0();
  CHECK_RC(asyncio_lock_release(l), 0);  /* wakes b ... */
  CHECK_RC(asyncio_task_cancel(tb, NULL), 1); /* ... which is cancelled before it runs */
  yield0();
  CHECK(asyncio_future_cancelled(tb));
  /* b passed its wakeup on: c holds the lock. */
  CHECK_RC(finish(tc), 0);
  CHECK_ORDER(1, 3);
  CHECK(asyncio_lock_locked(l));
  CHECK_RC(finish(tb), -ECANCELED);
  CHECK_RC(asyncio_lock_release(l), 0);
  CHECK_RC(asyncio_lock_free(l), 0);
  return 0;
}

/* A waiter woken by release() and cancelled before it runs hands the lock to the next waiter. */
TEST(lock_cancel_after_wakeup) {
  reset();
  assert_rc(run_main(lock_cancel_after_wakeup_main, NULL), 0);
}

static int lock_newcomer_main(void *arg) {
  (void)arg;
  asyncio_lock_t *l;
  CHECK_RC(asyncio_lock_new(&l), 0);
  CHECK_RC(asyncio_lock_acquire(l), 0);
  job_t b = {l, 2, 0}, c = {l, 3, 0};
  asyncio_task_t *tb = spawn(lock_taker, &b);
  yield0();
  asyncio_task_t *tc = spawn(lock_taker, &c); /* not started yet */
  CHECK_RC(asyncio_task_cancel(tb, NULL), 1);
  CHECK_RC(asyncio_lock_release(l), 0);
  yield0();
  /* Every waiter was cancelled, so the newcomer takes the free lock at once (test_finished_waiter_cancelled). */
  CHECK(asyncio_lock_locked(l));
  CHECK(asyncio_future_cancelled(tb));
  CHECK_RC(finish(tc), 0);
  CHECK_ORDER(1, 3);
  CHECK_RC(finish(tb), -ECANCELED);
  CHECK_RC(asyncio_lock_release(l), 0);
  CHECK_RC(asyncio_lock_free(l), 0);
  return 0;
}

/* A newcomer takes a free lock when every queued waiter is cancelled. */
TEST(lock_newcomer_after_cancelled_waiters) {
  reset();
  assert_rc(run_main(lock_newcomer_main, NULL), 0);
}

static int lock_enter_exit_main(void *arg) {
  (void)arg;
  asyncio_lock_t *l;
  CHECK_RC(asyncio_lock_new(&l), 0);
  CHECK_RC(asyncio_lock_enter(l), 0);
  CHECK(asyncio_lock_locked(l));
  CHECK_RC(asyncio_lock_exit(l, 42), 42); /* the body's outcome passes through */
  CHECK(!asyncio_lock_locked(l));
  CHECK_RC(asyncio_lock_enter(l), 0);
  CHECK_RC(asyncio_lock_exit(l, -ETIMEDOUT), -ETIMEDOUT);
  CHECK_RC(asyncio_lock_exit(l, 0), -EPERM); /* not held any more */
  CHECK_RC(asyncio_lock_free(l), 0);
  return 0;
}

/* `async with lock`: _enter acquires, _exit releases and returns the body's rc. */
TEST(lock_enter_exit) {
  reset();
  assert_rc(run_main(lock_enter_exit_main, NULL), 0);
}

static int lock_wrong_loop_main(void *arg) {
  asyncio_lock_t *l = arg;
  /* Bound to the first loop by a wait there: waiting from another loop is refused. */
  CHECK_RC(asyncio_lock_acquire(l), -EINVAL);
  CHECK_RC(asyncio_lock_release(l), 0); /* release does not need the loop */
  CHECK_RC(asyncio_lock_acquire(l), 0);  /* free and nobody queued: no wait, no loop */
  return 0;
}

static int lock_bind_main(void *arg) {
  asyncio_lock_t *l = arg;
  job_t j = {l, 1, 0};
  CHECK_RC(asyncio_lock_acquire(l), 0);
  asyncio_task_t *t = spawn(lock_user, &j);
  yield0(); /* t waits: the lock is bound to this loop */
  CHECK_RC(asyncio_lock_release(l), 0);
  CHECK_RC(finish(t), 0);
  CHECK_RC(asyncio_lock_acquire(l), 0);
  return 0;
}

/* Misuse: NULL objects, waiting outside a task, a lock bound to another loop. */
TEST(lock_misuse) {
  reset();
  asyncio_lock_t *l;
  assert_rc(asyncio_lock_new(NULL), -EINVAL);
  assert_rc(asyncio_lock_acquire(NULL), -EINVAL);
  assert_rc(asyncio_lock_release(NULL), -EINVAL);
  assert_rc(asyncio_lock_free(NULL), -EINVAL);
  assert_false(asyncio_lock_locked(NULL));
  assert_ok(asyncio_lock_new(&l));
  assert_ok(asyncio_lock_acquire(l)); /* free: no task needed, as Python's fast path */
  assert_rc(asyncio_lock_acquire(l), ASYNCIO_ENOTASK); /* would have to wait */
  assert_ok(asyncio_lock_release(l));
  assert_rc(run_main(lock_bind_main, l), 0);
  assert_rc(run_main(lock_wrong_loop_main, l), 0);
  assert_ok(asyncio_lock_release(l));
  assert_ok(asyncio_lock_free(l));
}

static int lock_stuck_main(void *arg) {
  asyncio_lock_t *l = arg;
  job_t j = {l, 1, 0};
  CHECK_RC(asyncio_lock_acquire(l), 0);
  CHECK_RC(asyncio_create_task(NULL, lock_taker, &j, NULL), 0); /* waits until the loop closes */
  yield0();
  return 0;
}

/* A loop closed with a task still waiting: the task is gone and the lock can be freed. */
TEST(lock_free_after_loop_closed) {
  reset();
  asyncio_lock_t *l;
  assert_ok(asyncio_lock_new(&l));
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *t = NULL;
  assert_ok(asyncio_loop_create_task(loop, &t, lock_stuck_main, l, NULL));
  assert_rc(asyncio_loop_run_until_complete(loop, t, NULL), 0);
  assert_ok(asyncio_task_free(t));
  assert_rc(asyncio_lock_free(l), -EBUSY);
  assert_ok(asyncio_loop_close(loop)); /* reports the pending task */
  assert_ok(asyncio_lock_release(l));
  assert_ok(asyncio_lock_free(l));
  ASSERT_SOFT();
}

/* ---- Event ------------------------------------------------------------------ */

static int event_waiter(void *arg) {
  job_t *j = arg;
  j->rc = asyncio_event_wait(j->obj);
  if (j->rc == 0) rec(j->id);
  return j->rc;
}

static int event_wait_main(void *arg) {
  (void)arg;
  asyncio_event_t *e;
  CHECK_RC(asyncio_event_new(&e), 0);
  CHECK(!asyncio_event_is_set(e));
  job_t j[3] = {{e, 1, 0}, {e, 2, 0}, {e, 3, 0}};
  asyncio_task_t *t1 = spawn(event_waiter, &j[0]);
  asyncio_task_t *t2 = spawn(event_waiter, &j[1]);
  yield0();
  CHECK_ORDER(0);
  asyncio_task_t *t3 = spawn(event_waiter, &j[2]);
  CHECK_RC(asyncio_event_set(e), 0);
  yield0();
  /* t3 was scheduled before set() woke t1 and t2 (test_wait). */
  CHECK_ORDER(3, 3, 1, 2);
  CHECK(asyncio_event_is_set(e));
  CHECK_RC(asyncio_event_wait(e), 0); /* set: no suspension */
  CHECK_RC(finish(t1), 0);
  CHECK_RC(finish(t2), 0);
  CHECK_RC(finish(t3), 0);
  CHECK_RC(asyncio_event_clear(e), 0);
  CHECK(!asyncio_event_is_set(e));
  CHECK_RC(asyncio_event_free(e), 0);
  return 0;
}

/* Event.set() wakes every waiter; wait() on a set event returns at once; clear(). */
TEST(event_wait_set_clear) {
  reset();
  assert_rc(run_main(event_wait_main, NULL), 0);
}

static int event_clear_main(void *arg) {
  (void)arg;
  asyncio_event_t *e;
  CHECK_RC(asyncio_event_new(&e), 0);
  job_t j = {e, 1, 0}, k = {e, 2, 0};
  asyncio_task_t *t = spawn(event_waiter, &j);
  asyncio_task_t *tk = spawn(event_waiter, &k);
  yield0();
  CHECK_RC(asyncio_event_free(e), -EBUSY);
  CHECK_RC(asyncio_task_cancel(tk, NULL), 1);
  /* set then clear before the waiter runs: it was woken, it returns 0 (test_clear_with_waiters). */
  CHECK_RC(asyncio_event_set(e), 0);
  CHECK_RC(asyncio_event_clear(e), 0);
  CHECK_RC(asyncio_event_set(e), 0);
  CHECK_RC(asyncio_event_set(e), 0);
  yield0();
  CHECK_ORDER(1, 1);
  CHECK_RC(finish(t), 0);
  CHECK_RC(finish(tk), -ECANCELED);
  CHECK_RC(asyncio_event_free(e), 0);
  return 0;
}

/* A woken Event waiter returns 0 even if the flag was cleared; a cancelled waiter -ECANCELED. */
TEST(event_clear_with_waiters_and_cancel) {
  reset();
  assert_rc(run_main(event_clear_main, NULL), 0);
  assert_rc(asyncio_event_wait(NULL), -EINVAL);
  assert_rc(asyncio_event_set(NULL), -EINVAL);
  assert_rc(asyncio_event_clear(NULL), -EINVAL);
  assert_rc(asyncio_event_free(NULL), -EINVAL);
  asyncio_event_t *e;
  assert_ok(asyncio_event_new(&e));
  assert_rc(asyncio_event_wait(e), ASYNCIO_ENOTASK);
  assert_ok(asyncio_event_set(e));
  assert_ok(asyncio_event_wait(e));
  assert_ok(asyncio_event_free(e));
}

/* ---- Condition -------------------------------------------------------------- */

/* acquire; wait; record; keep the lock (as test_wait's c1..c3). */
static int cond_waiter_keep(void *arg) {
  job_t *j = arg;
  CHECK_RC(asyncio_condition_acquire(j->obj), 0);
  j->rc = asyncio_condition_wait(j->obj);
  CHECK(asyncio_condition_locked(j->obj)); /* held again, whatever happened */
  if (j->rc == 0) rec(j->id);
  return j->rc;
}

/* async with cond: wait; record. */
static int cond_waiter(void *arg) {
  job_t *j = arg;
  int rc = asyncio_condition_enter(j->obj);
  if (rc < 0) return rc;
  j->rc = asyncio_condition_wait(j->obj);
  CHECK(asyncio_condition_locked(j->obj));
  if (j->rc == 0) rec(j->id);
  return asyncio_condition_exit(j->obj, j->rc);
}

static int cond_wait_main(void *arg) {
  (void)arg;
  asyncio_condition_t *c;
  CHECK_RC(asyncio_condition_new(&c, NULL), 0);
  job_t j[3] = {{c, 1, 0}, {c, 2, 0}, {c, 3, 0}};
  asyncio_task_t *t[3];
  for (int i = 0; i < 3; i++) t[i] = spawn(cond_waiter_keep, &j[i]);
  yield0();
  CHECK_ORDER(0);
  CHECK(!asyncio_condition_locked(c));
  CHECK_RC(asyncio_condition_acquire(c), 0);
  CHECK_RC(asyncio_condition_notify(c, 1), 1);
  yield0();
  CHECK_ORDER(0); /* woken, but waiting for the lock */
  CHECK(asyncio_condition_locked(c));
  CHECK_RC(asyncio_condition_release(c), 0);
  yield0();
  CHECK_ORDER(1, 1);
  CHECK(asyncio_condition_locked(c)); /* t1 ended holding it */
  CHECK_RC(asyncio_condition_notify(c, 2), 2);
  yield0();
  CHECK_ORDER(1, 1);
  CHECK_RC(asyncio_condition_release(c), 0);
  yield0();
  CHECK_ORDER(2, 1, 2);
  CHECK_RC(asyncio_condition_release(c), 0);
  yield0();
  CHECK_ORDER(3, 1, 2, 3);
  for (int i = 0; i < 3; i++) CHECK_RC(finish(t[i]), 0);
  CHECK_RC(asyncio_condition_release(c), 0);
  CHECK_RC(asyncio_condition_free(c), 0);
  return 0;
}

/* Condition.wait(): notified waiters return in FIFO order, each once it holds the lock again. */
TEST(condition_wait_notify_order) {
  reset();
  assert_rc(run_main(cond_wait_main, NULL), 0);
}

static int cond_notify_main(void *arg) {
  (void)arg;
  asyncio_condition_t *c;
  CHECK_RC(asyncio_condition_new(&c, NULL), 0);
  job_t j[4] = {{c, 1, 0}, {c, 2, 0}, {c, 3, 0}, {c, 4, 0}};
  asyncio_task_t *t[4];
  for (int i = 0; i < 4; i++) t[i] = spawn(cond_waiter, &j[i]);
  yield0();
  CHECK_RC(asyncio_condition_notify(c, 1), -EPERM); /* RuntimeError: lock not held */
  CHECK_RC(asyncio_condition_notify_all(c), -EPERM);
  CHECK_RC(asyncio_condition_acquire(c), 0);
  CHECK_RC(asyncio_condition_notify(c, -1), -EINVAL);
  CHECK_RC(asyncio_condition_notify(c, 0), 0);
  CHECK_RC(asyncio_condition_notify(c, 1), 1);
  CHECK_RC(asyncio_condition_release(c), 0);
  yield0();
  CHECK_ORDER(1, 1);
  CHECK_RC(asyncio_condition_acquire(c), 0);
  CHECK_RC(asyncio_condition_notify(c, 1), 1);
  CHECK_RC(asyncio_condition_notify(c, 2048), 2); /* t2 already notified: t3, t4 */
  CHECK_RC(asyncio_condition_release(c), 0);
  yield0();
  CHECK_ORDER(4, 1, 2, 3, 4);
  CHECK_RC(asyncio_condition_acquire(c), 0);
  CHECK_RC(asyncio_condition_notify_all(c), 0); /* nobody left */
  CHECK_RC(asyncio_condition_release(c), 0);
  for (int i = 0; i < 4; i++) CHECK_RC(finish(t[i]), 0);
  CHECK_RC(asyncio_condition_free(c), 0);
  return 0;
}

/* notify(n) wakes at most n not-yet-notified waiters, oldest first; notify_all the rest. */
TEST(condition_notify_n_and_all) {
  reset();
  assert_rc(run_main(cond_notify_main, NULL), 0);
}

static int cond_cancel_main(void *arg) {
  (void)arg;
  asyncio_condition_t *c;
  CHECK_RC(asyncio_condition_new(&c, NULL), 0);
  job_t a = {c, 1, 0}, b = {c, 2, 0};
  asyncio_task_t *ta = spawn(cond_waiter, &a);
  asyncio_task_t *tb = spawn(cond_waiter, &b);
  yield0();
  CHECK_RC(asyncio_condition_free(c), -EBUSY);
  /* a is cancelled while queued: it re-takes the lock, then ends cancelled. */
  CHECK_RC(asyncio_task_cancel(ta, NULL), 1);
  CHECK_RC(finish(ta), -ECANCELED);
  CHECK(!asyncio_condition_locked(c)); /* released by its _exit */
  /* b was spuriously notified in a's place (Python's _notify(1) on error). */
  CHECK_RC(finish(tb), 0);
  CHECK_ORDER(1, 2);
  CHECK_RC(asyncio_condition_free(c), 0);
  return 0;
}

/* A Condition waiter cancelled while queued re-acquires the lock before returning -ECANCELED. */
TEST(condition_cancel_while_queued) {
  reset();
  assert_rc(run_main(cond_cancel_main, NULL), 0);
}

static int cond_cancel_after_notify_main(void *arg) {
  (void)arg;
  asyncio_condition_t *c;
  CHECK_RC(asyncio_condition_new(&c, NULL), 0);
  job_t a = {c, 1, 0}, b = {c, 2, 0};
  asyncio_task_t *ta = spawn(cond_waiter, &a);
  asyncio_task_t *tb = spawn(cond_waiter, &b);
  yield0();
  CHECK_RC(asyncio_condition_acquire(c), 0);
  CHECK_RC(asyncio_condition_notify(c, 1), 1); /* a is notified ... */
  CHECK_RC(asyncio_task_cancel(ta, NULL), 1);  /* ... and cancelled before it runs */
  CHECK_RC(asyncio_condition_release(c), 0);
  CHECK_RC(finish(ta), -ECANCELED);
  /* The notification a consumed goes to b: nothing is lost. */
  CHECK_RC(finish(tb), 0);
  CHECK_ORDER(1, 2);
  CHECK(!asyncio_condition_locked(c));
  CHECK_RC(asyncio_condition_free(c), 0);
  return 0;
}

/* A notified waiter cancelled before it runs passes the notification on. */
TEST(condition_cancel_after_notify) {
  reset();
  assert_rc(run_main(cond_cancel_after_notify_main, NULL), 0);
}

static int cond_cancel_reacquire_main(void *arg) {
  (void)arg;
  asyncio_condition_t *c;
  CHECK_RC(asyncio_condition_new(&c, NULL), 0);
  job_t a = {c, 1, 0};
  asyncio_task_t *ta = spawn(cond_waiter, &a);
  yield0();
  CHECK_RC(asyncio_condition_acquire(c), 0);
  CHECK_RC(asyncio_condition_notify(c, 1), 1);
  yield0(); /* a woke and now waits for the lock */
  CHECK(!asyncio_future_done(ta));
  CHECK_RC(asyncio_task_cancel(ta, NULL), 1); /* cancelled inside the re-acquisition */
  yield0();
  CHECK(!asyncio_future_done(ta)); /* it still waits for the lock */
  CHECK_RC(asyncio_condition_release(c), 0);
  CHECK_RC(finish(ta), -ECANCELED);
  CHECK(!asyncio_condition_locked(c));
  CHECK_ORDER(0);
  CHECK_RC(asyncio_condition_free(c), 0);
  return 0;
}

/* wait() cancelled while re-acquiring the lock still re-acquires it (bpo-32841). */
TEST(condition_cancel_during_reacquire) {
  reset();
  assert_rc(run_main(cond_cancel_reacquire_main, NULL), 0);
}

static int pred_value;
static int predicate(void *arg) {
  (void)arg;
  return pred_value;
}

static int cond_wait_for_task(void *arg) {
  job_t *j = arg;
  CHECK_RC(asyncio_condition_acquire(j->obj), 0);
  j->rc = asyncio_condition_wait_for(j->obj, predicate, NULL);
  if (j->rc > 0) rec(j->id);
  CHECK_RC(asyncio_condition_release(j->obj), 0);
  return j->rc < 0 ? j->rc : 0;
}

static int cond_wait_for_main(void *arg) {
  (void)arg;
  asyncio_lock_t *l;
  asyncio_condition_t *c;
  CHECK_RC(asyncio_lock_new(&l), 0);
  CHECK_RC(asyncio_condition_new(&c, l), 0); /* over a given lock */
  CHECK(asyncio_condition_lock(c) == l);
  pred_value = 7;
  CHECK_RC(asyncio_condition_wait_for(c, predicate, NULL), 7); /* true: no lock needed */
  pred_value = 0;
  CHECK_RC(asyncio_condition_wait_for(c, predicate, NULL), -EPERM);
  CHECK_RC(asyncio_condition_wait(c), -EPERM);
  job_t j = {c, 1, 0};
  asyncio_task_t *t = spawn(cond_wait_for_task, &j);
  yield0();
  CHECK_RC(asyncio_lock_acquire(l), 0); /* the condition's lock is l */
  CHECK(asyncio_condition_locked(c));
  CHECK_RC(asyncio_condition_notify(c, 1), 1);
  CHECK_RC(asyncio_lock_release(l), 0);
  yield0();
  CHECK_ORDER(0); /* predicate still false: waits again */
  CHECK_RC(asyncio_condition_acquire(c), 0);
  pred_value = 5;
  CHECK_RC(asyncio_condition_notify(c, 1), 1);
  CHECK_RC(asyncio_condition_release(c), 0);
  CHECK_RC(finish(t), 0);
  CHECK_ORDER(1, 1);
  CHECK(j.rc == 5);
  CHECK_RC(asyncio_condition_free(c), 0);
  CHECK_RC(asyncio_lock_free(l), 0);
  return 0;
}

/* wait_for(predicate) loops until the predicate holds and returns its value; explicit lock. */
TEST(condition_wait_for_explicit_lock) {
  reset();
  assert_rc(run_main(cond_wait_for_main, NULL), 0);
  assert_rc(asyncio_condition_new(NULL, NULL), -EINVAL);
  assert_rc(asyncio_condition_wait(NULL), -EINVAL);
  assert_rc(asyncio_condition_notify(NULL, 1), -EINVAL);
  assert_rc(asyncio_condition_wait_for(NULL, predicate, NULL), -EINVAL);
  assert_rc(asyncio_condition_free(NULL), -EINVAL);
}

/* ---- Semaphore ----------------------------------------------------------------- */

static int sem_taker(void *arg) {
  job_t *j = arg;
  j->rc = asyncio_semaphore_acquire(j->obj);
  if (j->rc == 0) rec(j->id);
  return j->rc;
}

static int sem_acquire_main(void *arg) {
  (void)arg;
  asyncio_semaphore_t *m;
  CHECK_RC(asyncio_semaphore_new(&m, 3), 0);
  CHECK_RC(asyncio_semaphore_acquire(m), 0);
  CHECK_RC(asyncio_semaphore_acquire(m), 0);
  CHECK(!asyncio_semaphore_locked(m));
  job_t j[4] = {{m, 1, 0}, {m, 2, 0}, {m, 3, 0}, {m, 4, 0}};
  asyncio_task_t *t[4];
  for (int i = 0; i < 3; i++) t[i] = spawn(sem_taker, &j[i]);
  yield0();
  CHECK_ORDER(1, 1);
  CHECK(asyncio_semaphore_locked(m));
  CHECK(asyncio_semaphore_value(m) == 0);
  t[3] = spawn(sem_taker, &j[3]);
  CHECK_RC(asyncio_semaphore_release(m), 0);
  CHECK_RC(asyncio_semaphore_release(m), 0);
  CHECK(asyncio_semaphore_value(m) == 0); /* both permits set aside for t2, t3 */
  yield0();
  /* t4 ran first but queued behind: FIFO. */
  CHECK_ORDER(3, 1, 2, 3);
  CHECK(asyncio_semaphore_locked(m));
  CHECK(!asyncio_future_done(t[3]));
  CHECK_RC(asyncio_semaphore_release(m), 0);
  for (int i = 0; i < 4; i++) CHECK_RC(finish(t[i]), 0);
  CHECK_ORDER(4, 1, 2, 3, 4);
  CHECK_RC(asyncio_semaphore_free(m), 0);
  return 0;
}

/* Semaphore permits go FIFO; a newcomer queues behind waiters already woken (test_acquire). */
TEST(semaphore_acquire_fifo) {
  reset();
  assert_rc(run_main(sem_acquire_main, NULL), 0);
}

static int sem_cancel_before_awoken_main(void *arg) {
  (void)arg;
  asyncio_semaphore_t *m;
  CHECK_RC(asyncio_semaphore_new(&m, 0), 0);
  CHECK(asyncio_semaphore_locked(m));
  job_t j[4] = {{m, 1, 0}, {m, 2, 0}, {m, 3, 0}, {m, 4, 0}};
  asyncio_task_t *t[4];
  for (int i = 0; i < 4; i++) t[i] = spawn(sem_taker, &j[i]);
  yield0();
  CHECK_RC(asyncio_task_cancel(t[0], NULL), 1);
  CHECK_RC(asyncio_task_cancel(t[1], NULL), 1);
  CHECK_RC(asyncio_semaphore_release(m), 0);
  yield0();
  yield0();
  CHECK(asyncio_future_done(t[2]));
  CHECK(!asyncio_future_done(t[3]));
  CHECK_ORDER(1, 3);
  CHECK_RC(asyncio_semaphore_free(m), -EBUSY);
  CHECK_RC(asyncio_task_cancel(t[3], NULL), 1);
  yield0();
  CHECK_RC(finish(t[0]), -ECANCELED);
  CHECK_RC(finish(t[1]), -ECANCELED);
  CHECK_RC(finish(t[2]), 0);
  CHECK_RC(finish(t[3]), -ECANCELED);
  CHECK(asyncio_semaphore_value(m) == 0);
  CHECK_RC(asyncio_semaphore_free(m), 0);
  return 0;
}

/* Waiters cancelled while queued take no permit; the permit goes to the first live one. */
TEST(semaphore_cancel_while_queued) {
  reset();
  assert_rc(run_main(sem_cancel_before_awoken_main, NULL), 0);
}

static int sem_cancel_after_wakeup_main(void *arg) {
  (void)arg;
  asyncio_semaphore_t *m;
  CHECK_RC(asyncio_semaphore_new(&m, 0), 0);
  job_t j[3] = {{m, 1, 0}, {m, 2, 0}, {m, 3, 0}};
  asyncio_task_t *t[3];
  for (int i = 0; i < 3; i++) t[i] = spawn(sem_taker, &j[i]);
  yield0();
  CHECK_RC(asyncio_semaphore_release(m), 0);     /* permit set aside for t1 ... */
  CHECK_RC(asyncio_task_cancel(t[0], NULL), 1); /* ... which is cancelled before it runs */
  yield0();
  yield0();
  /* t1 gave the permit back and woke t2. */
  CHECK_RC(finish(t[0]), -ECANCELED);
  CHECK_RC(finish(t[1]), 0);
  CHECK(!asyncio_future_done(t[2]));
  CHECK(asyncio_semaphore_value(m) == 0);
  CHECK_RC(asyncio_semaphore_release(m), 0);
  CHECK_RC(finish(t[2]), 0);
  CHECK_ORDER(2, 2, 3);
  CHECK(asyncio_semaphore_value(m) == 0);
  CHECK_RC(asyncio_semaphore_free(m), 0);
  return 0;
}

/* A waiter handed a permit and cancelled before it runs gives it back to the next waiter. */
TEST(semaphore_cancel_after_wakeup) {
  reset();
  assert_rc(run_main(sem_cancel_after_wakeup_main, NULL), 0);
}

/* acquire, record, release, acquire again, record (test_acquire_fifo_order_2's c2). */
static int sem_twice(void *arg) {
  job_t *j = arg;
  CHECK_RC(asyncio_semaphore_enter(j->obj), 0);
  rec(j->id);
  CHECK_RC(asyncio_semaphore_exit(j->obj, 0), 0);
  CHECK_RC(asyncio_semaphore_acquire(j->obj), 0);
  rec(j->id + 10);
  return 0;
}

static int sem_fifo2_main(void *arg) {
  (void)arg;
  asyncio_semaphore_t *m;
  CHECK_RC(asyncio_semaphore_new(&m, 1), 0);
  job_t a = {m, 1, 0}, b = {m, 2, 0}, c = {m, 3, 0};
  asyncio_task_t *t1 = spawn(sem_taker, &a);
  asyncio_task_t *t2 = spawn(sem_twice, &b);
  asyncio_task_t *t3 = spawn(sem_taker, &c);
  yield0();
  CHECK_RC(asyncio_semaphore_release(m), 0);
  CHECK_RC(asyncio_semaphore_release(m), 0);
  CHECK_RC(finish(t1), 0);
  CHECK_RC(finish(t2), 0);
  CHECK_RC(finish(t3), 0);
  /* t2's second acquire queues behind t3, which was already waiting. */
  CHECK_ORDER(4, 1, 2, 3, 12);
  CHECK_RC(asyncio_semaphore_free(m), 0);
  return 0;
}

/* A task that releases and re-acquires goes behind the tasks already waiting (test_acquire_fifo_order_2). */
TEST(semaphore_fifo_reacquire) {
  reset();
  assert_rc(run_main(sem_fifo2_main, NULL), 0);
}

/* BoundedSemaphore over-release is -EINVAL (ValueError); misuse of both kinds. */
TEST(semaphore_bounded_and_misuse) {
  reset();
  asyncio_semaphore_t *m;
  assert_rc(asyncio_semaphore_new(&m, -1), -EINVAL);
  assert_rc(asyncio_boundedsemaphore_new(&m, -1), -EINVAL);
  assert_rc(asyncio_semaphore_new(NULL, 1), -EINVAL);
  assert_rc(asyncio_semaphore_acquire(NULL), -EINVAL);
  assert_rc(asyncio_semaphore_release(NULL), -EINVAL);
  assert_rc(asyncio_semaphore_value(NULL), -EINVAL);
  assert_false(asyncio_semaphore_locked(NULL));
  assert_ok(asyncio_boundedsemaphore_new(&m, 1));
  assert_rc(asyncio_semaphore_release(m), -EINVAL); /* released too many times */
  assert_ok(asyncio_semaphore_acquire(m));
  assert_true(asyncio_semaphore_locked(m));
  assert_rc(asyncio_semaphore_acquire(m), ASYNCIO_ENOTASK); /* would wait, no task */
  assert_ok(asyncio_semaphore_release(m));
  assert_rc(asyncio_semaphore_release(m), -EINVAL);
  assert_int_equal(asyncio_semaphore_value(m), 1);
  assert_ok(asyncio_semaphore_free(m));
  assert_ok(asyncio_semaphore_new(&m, INT_MAX));
  assert_rc(asyncio_semaphore_release(m), -EOVERFLOW);
  assert_ok(asyncio_semaphore_free(m));
  assert_ok(asyncio_semaphore_new(&m, 2));
  assert_ok(asyncio_semaphore_release(m)); /* unbounded: fine */
  assert_int_equal(asyncio_semaphore_value(m), 3);
  assert_ok(asyncio_semaphore_free(m));
}

/* ---- Barrier ------------------------------------------------------------------ */

static int barrier_waiter(void *arg) {
  job_t *j = arg;
  j->rc = asyncio_barrier_wait(j->obj);
  rec(j->rc >= 0 ? j->rc : j->rc == ASYNCIO_EBROKENBARRIER ? -1 : -2);
  return j->rc == -ECANCELED ? j->rc : 0;
}

static int barrier_basic_main(void *arg) {
  (void)arg;
  asyncio_barrier_t *b;
  CHECK_RC(asyncio_barrier_new(&b, 3), 0);
  CHECK(asyncio_barrier_parties(b) == 3);
  job_t j[6];
  asyncio_task_t *t[6];
  for (int i = 0; i < 6; i++) j[i] = (job_t){b, i, 0};
  t[0] = spawn(barrier_waiter, &j[0]);
  yield0();
  CHECK(asyncio_barrier_n_waiting(b) == 1);
  t[1] = spawn(barrier_waiter, &j[1]);
  yield0();
  CHECK(asyncio_barrier_n_waiting(b) == 2);
  /* The third trips it; three more arrive while it drains and form the next round. */
  for (int i = 2; i < 6; i++) t[i] = spawn(barrier_waiter, &j[i]);
  for (int i = 0; i < 3; i++) CHECK_RC(finish(t[i]), 0);
  for (int i = 3; i < 6; i++) CHECK_RC(finish(t[i]), 0);
  /* Each round hands out 0, 1, 2. */
  int seen[2][3] = {{0}};
  for (int i = 0; i < 6; i++) {
    CHECK(j[i].rc >= 0 && j[i].rc < 3);
    if (j[i].rc >= 0 && j[i].rc < 3) seen[i / 3][j[i].rc]++;
  }
  for (int r = 0; r < 2; r++)
    for (int k = 0; k < 3; k++) CHECK(seen[r][k] == 1);
  CHECK(asyncio_barrier_n_waiting(b) == 0);
  CHECK(!asyncio_barrier_broken(b));
  CHECK_RC(asyncio_barrier_free(b), 0);
  return 0;
}

/* Barrier.wait(): parties tasks pass together with indexes 0..parties-1, round after round. */
TEST(barrier_wait_rounds) {
  reset();
  assert_rc(run_main(barrier_basic_main, NULL), 0);
}

static int barrier_cancel_main(void *arg) {
  (void)arg;
  asyncio_barrier_t *b;
  CHECK_RC(asyncio_barrier_new(&b, 3), 0);
  job_t j[4];
  for (int i = 0; i < 4; i++) j[i] = (job_t){b, i, 0};
  asyncio_task_t *t1 = spawn(barrier_waiter, &j[0]);
  yield0();
  asyncio_task_t *t2 = spawn(barrier_waiter, &j[1]);
  yield0();
  CHECK(asyncio_barrier_n_waiting(b) == 2);
  CHECK_RC(asyncio_barrier_free(b), -EBUSY);
  CHECK_RC(asyncio_task_cancel(t1, NULL), 1);
  yield0();
  CHECK(asyncio_barrier_n_waiting(b) == 1); /* the cancelled task left */
  CHECK_RC(finish(t1), -ECANCELED);
  asyncio_task_t *t3 = spawn(barrier_waiter, &j[2]);
  yield0();
  CHECK(asyncio_barrier_n_waiting(b) == 2);
  asyncio_task_t *t4 = spawn(barrier_waiter, &j[3]);
  CHECK_RC(finish(t2), 0);
  CHECK_RC(finish(t3), 0);
  CHECK_RC(finish(t4), 0);
  /* Python's index is the count at arrival: t1 left, so t3 gets 1 as t2 did. */
  CHECK(j[1].rc == 1 && j[2].rc == 1 && j[3].rc == 2);
  CHECK(asyncio_barrier_n_waiting(b) == 0);
  CHECK_RC(asyncio_barrier_free(b), 0);
  return 0;
}

/* A task cancelled in wait() leaves the barrier; the others wait for a full count. */
TEST(barrier_cancel_one) {
  reset();
  assert_rc(run_main(barrier_cancel_main, NULL), 0);
}

static int barrier_reset_main(void *arg) {
  (void)arg;
  asyncio_barrier_t *b;
  CHECK_RC(asyncio_barrier_new(&b, 3), 0);
  job_t j[3];
  asyncio_task_t *t[3];
  for (int i = 0; i < 3; i++) j[i] = (job_t){b, i, 0};
  t[0] = spawn(barrier_waiter, &j[0]);
  t[1] = spawn(barrier_waiter, &j[1]);
  yield0();
  CHECK(asyncio_barrier_n_waiting(b) == 2);
  CHECK_RC(asyncio_barrier_reset(b), 0); /* waiting tasks break out */
  CHECK(asyncio_barrier_n_waiting(b) == 0);
  CHECK_RC(finish(t[0]), 0);
  CHECK_RC(finish(t[1]), 0);
  CHECK(j[0].rc == ASYNCIO_EBROKENBARRIER && j[1].rc == ASYNCIO_EBROKENBARRIER);
  CHECK(!asyncio_barrier_broken(b));
  /* Usable again: a full round passes. */
  for (int i = 0; i < 3; i++) t[i] = spawn(barrier_waiter, &j[i]);
  for (int i = 0; i < 3; i++) CHECK_RC(finish(t[i]), 0);
  for (int i = 0; i < 3; i++) CHECK(j[i].rc >= 0);
  CHECK_RC(asyncio_barrier_reset(b), 0); /* empty: straight back to filling */
  CHECK_RC(asyncio_barrier_free(b), 0);
  return 0;
}

/* Barrier.reset() while tasks wait: they get ASYNCIO_EBROKENBARRIER; the barrier works again. */
TEST(barrier_reset_while_waiting) {
  reset();
  assert_rc(run_main(barrier_reset_main, NULL), 0);
}

static int barrier_abort_main(void *arg) {
  (void)arg;
  asyncio_barrier_t *b;
  CHECK_RC(asyncio_barrier_new(&b, 3), 0);
  job_t j[3];
  asyncio_task_t *t[3];
  for (int i = 0; i < 3; i++) j[i] = (job_t){b, i, 0};
  t[0] = spawn(barrier_waiter, &j[0]);
  t[1] = spawn(barrier_waiter, &j[1]);
  yield0();
  CHECK_RC(asyncio_barrier_abort(b), 0);
  CHECK(asyncio_barrier_broken(b));
  CHECK(asyncio_barrier_n_waiting(b) == 0);
  CHECK_RC(finish(t[0]), 0);
  CHECK_RC(finish(t[1]), 0);
  CHECK(j[0].rc == ASYNCIO_EBROKENBARRIER && j[1].rc == ASYNCIO_EBROKENBARRIER);
  CHECK_RC(asyncio_barrier_wait(b), ASYNCIO_EBROKENBARRIER); /* broken until reset */
  CHECK_RC(asyncio_barrier_enter(b), ASYNCIO_EBROKENBARRIER);
  CHECK_RC(asyncio_barrier_reset(b), 0);
  CHECK(!asyncio_barrier_broken(b));
  for (int i = 0; i < 3; i++) t[i] = spawn(barrier_waiter, &j[i]);
  for (int i = 0; i < 3; i++) CHECK_RC(finish(t[i]), 0);
  for (int i = 0; i < 3; i++) CHECK(j[i].rc >= 0);
  CHECK_RC(asyncio_barrier_free(b), 0);
  return 0;
}

/* Barrier.abort() breaks it for waiting and later tasks until reset(). */
TEST(barrier_abort_broken) {
  reset();
  assert_rc(run_main(barrier_abort_main, NULL), 0);
  asyncio_barrier_t *b;
  assert_rc(asyncio_barrier_new(&b, 0), -EINVAL);
  assert_rc(asyncio_barrier_new(&b, -4), -EINVAL);
  assert_rc(asyncio_barrier_new(NULL, 1), -EINVAL);
  assert_rc(asyncio_barrier_wait(NULL), -EINVAL);
  assert_rc(asyncio_barrier_parties(NULL), -EINVAL);
  assert_rc(asyncio_barrier_n_waiting(NULL), -EINVAL);
  assert_false(asyncio_barrier_broken(NULL));
  assert_ok(asyncio_barrier_new(&b, 1));
  assert_int_equal(asyncio_barrier_exit(b, 5), 5);
  assert_ok(asyncio_barrier_free(b));
}

static int barrier_one_main(void *arg) {
  (void)arg;
  asyncio_barrier_t *b;
  CHECK_RC(asyncio_barrier_new(&b, 1), 0);
  CHECK_RC(asyncio_barrier_enter(b), 0); /* a party of one passes at once */
  CHECK_RC(asyncio_barrier_exit(b, 0), 0);
  CHECK_RC(asyncio_barrier_wait(b), 0);
  CHECK(asyncio_barrier_n_waiting(b) == 0);
  CHECK_RC(asyncio_barrier_free(b), 0);
  return 0;
}

/* A barrier of one party: wait() returns index 0 every time (test_filling_one_task_twice). */
TEST(barrier_one_party) {
  reset();
  assert_rc(run_main(barrier_one_main, NULL), 0);
}

/* ---- the ambient timeout scope ------------------------------------------------ */

/* rc of one waiting call run inside `async with timeout(0.05)`. */
typedef int (*wait_call_fn)(void *obj);
static int scoped(wait_call_fn call, void *obj) {
  asyncio_timeout_t *cm;
  int rc = asyncio_timeout_enter(&cm, 0.05);
  if (rc < 0) return rc;
  rc = call(obj);
  rc = asyncio_timeout_exit(cm, rc);
  CHECK(asyncio_timeout_expired(cm) == (rc == -ETIMEDOUT));
  asyncio_timeout_free(cm);
  return rc;
}

static int call_lock(void *o) { return asyncio_lock_acquire(o); }
static int call_event(void *o) { return asyncio_event_wait(o); }
static int call_sem(void *o) { return asyncio_semaphore_acquire(o); }
static int call_cond(void *o) { return asyncio_condition_wait(o); }
static int call_barrier(void *o) { return asyncio_barrier_wait(o); }

static int scoped_main(void *arg) {
  (void)arg;
  /* Lock held elsewhere: the waiter times out, the lock stays with its holder,
   * and the next waiter still gets it. */
  asyncio_lock_t *l;
  CHECK_RC(asyncio_lock_new(&l), 0);
  CHECK_RC(asyncio_lock_acquire(l), 0);
  CHECK_RC(scoped(call_lock, l), -ETIMEDOUT);
  CHECK(asyncio_lock_locked(l));
  CHECK_RC(asyncio_lock_release(l), 0);
  CHECK(!asyncio_lock_locked(l));
  CHECK_RC(scoped(call_lock, l), 0); /* free: no suspension, no timeout */
  CHECK_RC(asyncio_lock_release(l), 0);
  CHECK_RC(asyncio_lock_free(l), 0);

  asyncio_event_t *e;
  CHECK_RC(asyncio_event_new(&e), 0);
  CHECK_RC(scoped(call_event, e), -ETIMEDOUT);
  CHECK_RC(asyncio_event_set(e), 0);
  CHECK_RC(scoped(call_event, e), 0);
  CHECK_RC(asyncio_event_free(e), 0);

  /* Semaphore at 0: the timed-out acquire takes no permit. */
  asyncio_semaphore_t *s;
  CHECK_RC(asyncio_semaphore_new(&s, 0), 0);
  CHECK_RC(scoped(call_sem, s), -ETIMEDOUT);
  CHECK(asyncio_semaphore_value(s) == 0);
  CHECK_RC(asyncio_semaphore_release(s), 0);
  CHECK(asyncio_semaphore_value(s) == 1);
  CHECK_RC(scoped(call_sem, s), 0);
  CHECK(asyncio_semaphore_value(s) == 0);
  CHECK_RC(asyncio_semaphore_free(s), 0);

  /* Condition: a timed-out wait has re-acquired the lock before returning. */
  asyncio_condition_t *c;
  CHECK_RC(asyncio_condition_new(&c, NULL), 0);
  CHECK_RC(asyncio_condition_acquire(c), 0);
  CHECK_RC(scoped(call_cond, c), -ETIMEDOUT);
  CHECK_RC(asyncio_condition_release(c), 0); /* still held: release works */
  CHECK_RC(asyncio_condition_free(c), 0);

  /* Barrier of 2 with one arrival: it leaves, the count goes back to 0. */
  asyncio_barrier_t *b;
  CHECK_RC(asyncio_barrier_new(&b, 2), 0);
  CHECK_RC(scoped(call_barrier, b), -ETIMEDOUT);
  CHECK(asyncio_barrier_n_waiting(b) == 0);
  CHECK_RC(asyncio_barrier_free(b), 0);
  return 0;
}

/* Every waiting call is a cancellation point, so a timeout scope bounds it; nothing is lost. */
TEST(sync_waits_honour_timeout_scope) {
  reset();
  assert_rc(run_main(scoped_main, NULL), 0);
}
