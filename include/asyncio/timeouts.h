/*
 * asyncio/timeouts.h - timeout scopes and wait_for (Python: asyncio.timeouts,
 * asyncio.Timeout, asyncio.timeout(), asyncio.timeout_at(), and
 * asyncio.wait_for() from asyncio.tasks).
 *
 * A timeout scope is the C form of `async with asyncio.timeout(delay) as cm:`
 *
 *     asyncio_timeout_t *cm;
 *     int rc = asyncio_timeout_enter(&cm, 5.0);   // async with ... as cm:
 *     if (rc < 0) return rc;
 *     rc = do_work();                             //     the body
 *     rc = asyncio_timeout_exit(cm, rc);          // leaving the block
 *     bool late = asyncio_timeout_expired(cm);    // cm.expired()
 *     asyncio_timeout_free(cm);
 *
 * When the deadline passes, the scope cancels the task that entered it
 * (Task.cancel()), so whatever the task is suspended in returns -ECANCELED
 * and the body unwinds; asyncio_timeout_exit() then turns that -ECANCELED
 * into -ETIMEDOUT (TimeoutError).  Only the scope's own cancellation is
 * converted: the scope remembers Task.cancelling() at entry, and on exit it
 * calls Task.uncancel(); if the count is then still above what it was at
 * entry, someone else also cancelled the task and -ECANCELED passes through
 * unchanged.  This is what makes nested scopes and an outside cancellation
 * compose (Python 3.12+ Timeout.__aexit__):
 *   - an inner scope that fires converts, and the outer body goes on;
 *   - an outer scope that fires while an inner one is active: the inner exit
 *     sees a count above its entry value and passes -ECANCELED up, the outer
 *     exit converts it;
 *   - both due at the same tick: the task is cancelled twice, the inner exit
 *     passes -ECANCELED up, the outer exit converts;
 *   - an outside Task.cancel() inside a scope stays -ECANCELED.
 *
 * Cancellation points.  A deadline can only interrupt a task where it
 * suspends.  The suspension points (and so cancellation points) are:
 * asyncio_sleep(), asyncio_await(), asyncio_wait_for(),
 * asyncio_wait_for_coro(), asyncio_taskgroup_exit(), and every waiting call
 * of the other modules (locks, queues, streams, sockets, ...).  A body that
 * computes without suspending is not interrupted: its scope expires and the
 * cancellation is delivered at its next suspension point (or withdrawn by
 * exit).  The calls declared here, other than the two wait_for functions,
 * never suspend.
 *
 * Ownership: asyncio_timeout_enter() allocates the scope; the caller frees it
 * with asyncio_timeout_free() after asyncio_timeout_exit().  An exited scope
 * stays readable (when(), expired()) until it is freed, as a Python Timeout
 * object outlives its `async with` block.  All calls are loop-thread-only.
 */
#ifndef ASYNCIO_TIMEOUTS_H
#define ASYNCIO_TIMEOUTS_H

#include <math.h>

#include "tasks.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * "No deadline": Python's None for timeout(), timeout_at(), reschedule() and
 * wait_for().  Any +infinity works; NaN is rejected with -EINVAL.
 */
#ifndef ASYNCIO_NO_TIMEOUT
#define ASYNCIO_NO_TIMEOUT ((double)INFINITY)
#endif

typedef struct asyncio_timeout asyncio_timeout_t;

/*
 * async with asyncio.timeout(delay) as cm: creates a scope for the calling
 * task with the deadline loop.time() + delay and enters it.  delay <= 0 (or
 * -infinity) expires on the next loop iteration, i.e. at the first suspension;
 * ASYNCIO_NO_TIMEOUT means no deadline (it can be set later with
 * asyncio_timeout_reschedule).  Does not suspend.  Returns 0 and stores the
 * scope in *out; -EINVAL (out NULL, delay NaN), ASYNCIO_ENOTASK (not inside a
 * task), -ENOMEM.  On error nothing was scheduled and *out is NULL.  The
 * caller owns the scope (asyncio_timeout_free).
 */
int asyncio_timeout_enter(asyncio_timeout_t **out, double delay);

/*
 * async with asyncio.timeout_at(when) as cm: as asyncio_timeout_enter with
 * an absolute deadline on the loop's clock (asyncio_loop_time());
 * ASYNCIO_NO_TIMEOUT means none.
 */
int asyncio_timeout_at_enter(asyncio_timeout_t **out, double when);

/*
 * Leaving the `async with` block (Timeout.__aexit__): cancels the pending
 * deadline and returns the block's outcome `rc`, converted: if the deadline
 * fired, rc is -ECANCELED and no other cancellation of the task is pending
 * (Task.uncancel() brings the count back to its value at entry), returns
 * -ETIMEDOUT.  Any other rc is returned unchanged, also when the scope
 * expired (e.g. the body swallowed the cancellation and returned a result,
 * or failed with its own error).  Must be called by the task that entered
 * the scope.  Does not suspend.  Returns the (converted) outcome, or
 * -EINVAL (NULL), ASYNCIO_EINVALIDSTATE (already exited), ASYNCIO_ENOTASK
 * (outside a task), -EPERM (from another task than the one that entered);
 * on those errors the scope is unchanged.  The scope is not freed.
 */
int asyncio_timeout_exit(asyncio_timeout_t *timeout, int rc);

/*
 * Frees a scope (any state).  A scope that was never exited is abandoned: its
 * deadline no longer fires, and the task's cancellation count is left as it
 * is (an expiry that already happened is not withdrawn).  NULL-safe; returns
 * 0, or ASYNCIO_EWRONGTHREAD.
 */
int asyncio_timeout_free(asyncio_timeout_t *timeout);

/*
 * Timeout.when(): stores the current deadline (loop time) in *when;
 * ASYNCIO_NO_TIMEOUT when there is none.  Valid in every state.  Returns 0
 * or -EINVAL.
 */
int asyncio_timeout_when(const asyncio_timeout_t *timeout, double *when);

/*
 * Timeout.reschedule(when): moves the deadline to the absolute loop time
 * `when` (ASYNCIO_NO_TIMEOUT = none).  A deadline at or before now expires
 * on the next loop iteration.  May be called from any task or callback of
 * the loop while the scope is entered and has not yet expired.  Does not
 * suspend.  Returns 0; -EINVAL (NULL, NaN); ASYNCIO_EINVALIDSTATE (the scope
 * has expired or exited); ASYNCIO_ECLOSED / ASYNCIO_EWRONGTHREAD; -ENOMEM
 * (no timer: the old deadline is kept).
 */
int asyncio_timeout_reschedule(asyncio_timeout_t *timeout, double when);

/*
 * Timeout.expired(): true once the deadline has fired (before and after
 * exit), false for NULL.
 */
bool asyncio_timeout_expired(const asyncio_timeout_t *timeout);

/*
 * await asyncio.wait_for(fut, timeout) (Python 3.12): awaits the future or
 * task inside a timeout scope.  A suspension point.
 *   - Done in time: returns its outcome as asyncio_await() does (its result,
 *     its error, -ECANCELED if it was cancelled by someone else), with the
 *     pointer result in *value (if non-NULL).
 *   - Deadline first: cancels `fut`, waits until it has really finished, and
 *     returns -ETIMEDOUT.  If `fut` suppressed the cancellation and finished
 *     with a result or an error anyway, that outcome is returned instead.
 *   - The calling task cancelled (also at the same loop tick as `fut`
 *     finishing or the deadline firing): `fut` is cancelled too and waited
 *     for, and -ECANCELED is returned: a cancellation is never swallowed.
 *   - timeout == ASYNCIO_NO_TIMEOUT: a plain asyncio_await().
 *   - timeout <= 0: a done `fut` gives its outcome without suspending;
 *     otherwise it is cancelled and waited for, giving -ETIMEDOUT (or what
 *     it returned instead).
 * The caller keeps its reference to fut.  Also returns ASYNCIO_ENOTASK
 * (outside a task), -EINVAL (NULL, NaN timeout, a future of another loop),
 * -EDEADLK (a task waits for itself), -ENOMEM (nothing was scheduled).
 */
int asyncio_wait_for(asyncio_future_t *fut, double timeout, void **value);

/*
 * await asyncio.wait_for(fn(arg), timeout): runs fn(arg) as a new task
 * (created with `options`, NULL = defaults) and waits for it as
 * asyncio_wait_for does; the task is released before returning.  With
 * timeout <= 0 the coroutine never starts and -ETIMEDOUT is returned (as
 * Python's wait_for(coro, 0)).  A suspension point.  Returns as
 * asyncio_wait_for, and the errors of asyncio_create_task.
 */
int asyncio_wait_for_coro(asyncio_coro_fn fn, void *arg, const asyncio_task_options_t *options,
                          double timeout, void **value);

#ifdef __cplusplus
}
#endif
#endif
