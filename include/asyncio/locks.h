/*
 * asyncio/locks.h - synchronization primitives (Python: asyncio.locks):
 * Lock, Event, Condition, Semaphore, BoundedSemaphore, Barrier.
 *
 * Like Python's, these objects are for tasks of one event loop and are not
 * thread-safe.  An object is created without a loop and is bound to the
 * running loop the first time a task has to wait on it (Python's
 * _LoopBoundMixin); waiting on it later from another loop returns -EINVAL
 * (Python: RuntimeError "is bound to a different event loop").
 *
 * Fairness is Python's: waiters queue in FIFO order, a new acquirer never
 * jumps ahead of a waiter that has been woken but has not run yet, and a
 * waiter that is cancelled never loses a permit, a wakeup or a notification
 * meant for someone else: it passes it on to the next waiter.
 *
 * Every waiting call is a suspension point, and so a cancellation point: it
 * returns -ECANCELED when the calling task is cancelled while it waits (an
 * enclosing timeout cancels it the same way).  A call that does not have to
 * wait does not suspend, as in Python; one that has to wait returns
 * ASYNCIO_ENOTASK when not called from a task, and -EINVAL when the object
 * is bound to another loop.
 *
 * Error codes for Python's exceptions, the same for every primitive:
 *   RuntimeError (release of an unlocked Lock, wait/notify on a Condition
 *                 whose lock is not held)                 -> -EPERM
 *   ValueError   (BoundedSemaphore released too many times, a negative
 *                 initial value, parties < 1)             -> -EINVAL
 *   BrokenBarrierError                                    -> ASYNCIO_EBROKENBARRIER
 *   CancelledError                                        -> -ECANCELED
 * -EINVAL also reports a NULL object.  Calls made from a thread other than
 * the one running the bound loop return ASYNCIO_EWRONGTHREAD.
 *
 * Ownership: each object has one owner (_new / _free).  _free returns -EBUSY,
 * and frees nothing, while tasks are waiting on the object (including tasks
 * that were woken and have not run yet).  When the bound loop has been closed
 * with tasks still waiting, those tasks are gone and the object can be
 * freed.  `async with obj:` is _enter(obj) ... _exit(obj, rc): _exit releases
 * and passes the body's rc through.
 */
#ifndef ASYNCIO_LOCKS_H
#define ASYNCIO_LOCKS_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct asyncio_lock asyncio_lock_t;
typedef struct asyncio_event asyncio_event_t;
typedef struct asyncio_condition asyncio_condition_t;
typedef struct asyncio_semaphore asyncio_semaphore_t;
typedef struct asyncio_barrier asyncio_barrier_t;

/* ---- Lock ------------------------------------------------------------------ */

/* asyncio.Lock(): a new unlocked lock.  Returns 0, -EINVAL (out NULL) or -ENOMEM. */
int asyncio_lock_new(asyncio_lock_t **out);

/* Frees the lock.  Returns 0, -EINVAL, or -EBUSY while tasks wait on it. */
int asyncio_lock_free(asyncio_lock_t *lock);

/*
 * Lock.acquire(): takes the lock, waiting in FIFO order while it is held
 * (or while earlier waiters have not had their turn).  Suspends only when it
 * has to wait.  Returns 0 once the lock is held by the caller; -ECANCELED if
 * cancelled while waiting (the lock is not held then, and the next waiter is
 * woken if the lock was free); ASYNCIO_ENOTASK, -EINVAL.
 */
int asyncio_lock_acquire(asyncio_lock_t *lock);

/*
 * Lock.release(): unlocks and wakes the first waiter.  Does not suspend.  Any
 * task (or callback) may release, as in Python.  Returns 0, -EPERM if the lock
 * is not locked (Python: RuntimeError), -EINVAL, ASYNCIO_EWRONGTHREAD.
 */
int asyncio_lock_release(asyncio_lock_t *lock);

/* Lock.locked(): true while the lock is held.  False for NULL. */
bool asyncio_lock_locked(const asyncio_lock_t *lock);

/* `async with lock:` entry: asyncio_lock_acquire(). */
int asyncio_lock_enter(asyncio_lock_t *lock);

/*
 * `async with lock:` exit: releases the lock and returns `rc` (the body's
 * outcome); if the release fails and rc >= 0, returns the release's error.
 */
int asyncio_lock_exit(asyncio_lock_t *lock, int rc);

/* ---- Event ------------------------------------------------------------------- */

/* asyncio.Event(): a new event, not set.  Returns 0, -EINVAL or -ENOMEM. */
int asyncio_event_new(asyncio_event_t **out);

/* Frees the event.  Returns 0, -EINVAL, or -EBUSY while tasks wait on it. */
int asyncio_event_free(asyncio_event_t *event);

/*
 * Event.wait(): returns at once if the flag is set, else suspends until
 * Event.set().  A task woken by set() returns 0 even if the flag was cleared
 * again before it ran.  Returns 0, -ECANCELED, ASYNCIO_ENOTASK, -EINVAL.
 */
int asyncio_event_wait(asyncio_event_t *event);

/*
 * Event.set(): sets the flag and wakes every waiting task.  Does not suspend.
 * Returns 0, -EINVAL, ASYNCIO_EWRONGTHREAD.
 */
int asyncio_event_set(asyncio_event_t *event);

/* Event.clear(): clears the flag.  Returns 0, -EINVAL, ASYNCIO_EWRONGTHREAD. */
int asyncio_event_clear(asyncio_event_t *event);

/* Event.is_set().  False for NULL. */
bool asyncio_event_is_set(const asyncio_event_t *event);

/* ---- Condition ------------------------------------------------------------------ */

/*
 * A predicate for asyncio_condition_wait_for: > 0 true, 0 false, < 0 an
 * error that ends the wait.  Called with the condition's lock held.
 */
typedef int (*asyncio_predicate_fn)(void *arg);

/*
 * asyncio.Condition(lock=None): a condition variable over `lock`, or over a
 * lock of its own when lock is NULL.  A given lock is borrowed: it must
 * outlive the condition.  Returns 0, -EINVAL, -ENOMEM.
 */
int asyncio_condition_new(asyncio_condition_t **out, asyncio_lock_t *lock);

/*
 * Frees the condition (and its own lock).  Returns 0, -EINVAL, or -EBUSY while
 * tasks wait on the condition or on its own lock.
 */
int asyncio_condition_free(asyncio_condition_t *cond);

/* The underlying lock (borrowed).  NULL for NULL. */
asyncio_lock_t *asyncio_condition_lock(asyncio_condition_t *cond);

/* Condition.acquire(), release(), locked(): those of the underlying lock. */
int asyncio_condition_acquire(asyncio_condition_t *cond);
int asyncio_condition_release(asyncio_condition_t *cond);
bool asyncio_condition_locked(const asyncio_condition_t *cond);

/* `async with cond:` entry and exit, as asyncio_lock_enter / asyncio_lock_exit. */
int asyncio_condition_enter(asyncio_condition_t *cond);
int asyncio_condition_exit(asyncio_condition_t *cond, int rc);

/*
 * Condition.wait(): releases the lock, suspends until notified, then
 * re-acquires the lock before returning, also when cancelled (the lock is
 * held again whatever this returns, except -EPERM/-EINVAL/ASYNCIO_ENOTASK,
 * which are returned before anything happens).  If the wait ends with an
 * error, one other waiter is notified in its place, so a notification is
 * never lost (that waiter may see a spurious wakeup, which the condition
 * variable protocol allows).  Returns 0, -ECANCELED, -EPERM if the lock is
 * not held (Python: RuntimeError), ASYNCIO_ENOTASK, -EINVAL.
 */
int asyncio_condition_wait(asyncio_condition_t *cond);

/*
 * Condition.wait_for(predicate): while pred(arg) is false, wait().  Returns the
 * predicate's final value (> 0), its error (< 0), or an error of wait(); does
 * not suspend when the predicate is already true (and then does not need the
 * lock, as in Python).
 */
int asyncio_condition_wait_for(asyncio_condition_t *cond, asyncio_predicate_fn pred, void *arg);

/*
 * Condition.notify(n): wakes up to n waiting tasks, oldest first; each returns
 * from wait() once it has re-acquired the lock.  Does not suspend.  Returns
 * the number woken, -EPERM if the lock is not held, -EINVAL (NULL, n < 0),
 * ASYNCIO_EWRONGTHREAD.
 */
int asyncio_condition_notify(asyncio_condition_t *cond, int n);

/* Condition.notify_all(): as notify() for every waiting task. */
int asyncio_condition_notify_all(asyncio_condition_t *cond);

/* ---- Semaphore, BoundedSemaphore ---------------------------------------------------- */

/*
 * asyncio.Semaphore(value=1): a counter of `value` permits.  Returns 0,
 * -EINVAL (value < 0, Python: ValueError), -ENOMEM.
 */
int asyncio_semaphore_new(asyncio_semaphore_t **out, int value);

/*
 * asyncio.BoundedSemaphore(value=1): a semaphore whose release() fails with
 * -EINVAL (Python: ValueError) when it would raise the counter above `value`.
 */
int asyncio_boundedsemaphore_new(asyncio_semaphore_t **out, int value);

/* Frees the semaphore.  Returns 0, -EINVAL, or -EBUSY while tasks wait on it. */
int asyncio_semaphore_free(asyncio_semaphore_t *sem);

/*
 * Semaphore.acquire(): takes a permit, waiting in FIFO order when there is
 * none or when earlier waiters have not had theirs yet.  Suspends only when it
 * has to wait.  Returns 0 with a permit; -ECANCELED without one (a permit
 * handed to this task before it ran is passed to the next waiter);
 * ASYNCIO_ENOTASK, -EINVAL.
 */
int asyncio_semaphore_acquire(asyncio_semaphore_t *sem);

/*
 * Semaphore.release(): returns a permit and wakes the first waiter.  Does not
 * suspend.  Returns 0; -EINVAL for NULL, for a BoundedSemaphore released too
 * many times, and -EOVERFLOW when the counter would exceed INT_MAX;
 * ASYNCIO_EWRONGTHREAD.
 */
int asyncio_semaphore_release(asyncio_semaphore_t *sem);

/*
 * Semaphore.locked(): true if acquire() would have to wait (no permit, or
 * tasks already waiting).  False for NULL.
 */
bool asyncio_semaphore_locked(const asyncio_semaphore_t *sem);

/* The counter (Semaphore._value): permits available now.  -EINVAL for NULL. */
int asyncio_semaphore_value(const asyncio_semaphore_t *sem);

/* `async with sem:` entry and exit, as asyncio_lock_enter / asyncio_lock_exit. */
int asyncio_semaphore_enter(asyncio_semaphore_t *sem);
int asyncio_semaphore_exit(asyncio_semaphore_t *sem, int rc);

/* ---- Barrier ------------------------------------------------------------------------ */

/* asyncio.Barrier(parties).  Returns 0, -EINVAL (parties < 1), -ENOMEM. */
int asyncio_barrier_new(asyncio_barrier_t **out, int parties);

/* Frees the barrier.  Returns 0, -EINVAL, or -EBUSY while tasks are in it. */
int asyncio_barrier_free(asyncio_barrier_t *barrier);

/*
 * Barrier.wait(): suspends until `parties` tasks have called it, then all of
 * them return, each with its own arrival index 0 .. parties-1.  A task that
 * arrives while the barrier is still draining (or resetting) waits for that
 * to end first.  Returns the index (>= 0); ASYNCIO_EBROKENBARRIER if the
 * barrier is broken (abort()) or is reset while the task waits; -ECANCELED
 * (the task leaves the barrier: the others go on waiting for a full count);
 * ASYNCIO_ENOTASK, -EINVAL.
 */
int asyncio_barrier_wait(asyncio_barrier_t *barrier);

/*
 * Barrier.reset(): back to the empty state; tasks waiting in it return
 * ASYNCIO_EBROKENBARRIER.  May suspend briefly (it takes the barrier's
 * internal lock, as Python's `async with self._cond`).  Returns 0,
 * -ECANCELED, ASYNCIO_ENOTASK, -EINVAL.
 */
int asyncio_barrier_reset(asyncio_barrier_t *barrier);

/*
 * Barrier.abort(): puts the barrier in the broken state: waiting tasks and
 * later callers of wait() get ASYNCIO_EBROKENBARRIER until reset().  May
 * suspend as reset().  Returns 0, -ECANCELED, ASYNCIO_ENOTASK, -EINVAL.
 */
int asyncio_barrier_abort(asyncio_barrier_t *barrier);

/* Barrier.parties; -EINVAL for NULL. */
int asyncio_barrier_parties(const asyncio_barrier_t *barrier);

/* Barrier.n_waiting: tasks waiting for the barrier to fill; -EINVAL for NULL. */
int asyncio_barrier_n_waiting(const asyncio_barrier_t *barrier);

/* Barrier.broken.  False for NULL. */
bool asyncio_barrier_broken(const asyncio_barrier_t *barrier);

/* `async with barrier as i:` entry: asyncio_barrier_wait().  Exit: returns rc. */
int asyncio_barrier_enter(asyncio_barrier_t *barrier);
int asyncio_barrier_exit(asyncio_barrier_t *barrier, int rc);

#ifdef __cplusplus
}
#endif
#endif
