/*
 * asyncio/futures.h - futures (Python: asyncio.futures, asyncio.Future).
 *
 * A future is pending, then either finished (with a result or an error) or
 * cancelled, exactly once.  Its outcome is an int: >= 0 a result code, < 0 an
 * error (-ECANCELED when cancelled), plus an optional pointer value that
 * travels with a result.
 *
 * Ownership: futures are reference-counted.  asyncio_future_new() and
 * asyncio_create_task() hand the caller one reference; asyncio_future_ref()
 * adds one; asyncio_future_free() drops one.  The loop keeps its own
 * references while it needs the object (a scheduled callback, a running task,
 * a task awaiting it), so dropping yours never frees something still in use.
 * An error that was never retrieved (result/exception/await) is reported
 * through the loop's exception handler when the last reference goes, as
 * Python does from Future.__del__.
 */
#ifndef ASYNCIO_FUTURES_H
#define ASYNCIO_FUTURES_H

#include "events.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A done callback: fn(future, arg), run from the ready queue. */
typedef void (*asyncio_done_fn)(asyncio_future_t *future, void *arg);

/*
 * Creates a pending future on `loop`, or on the running loop when loop is NULL
 * (loop.create_future()).  Returns 0, -EINVAL, ASYNCIO_ENOLOOP, ASYNCIO_ECLOSED
 * or -ENOMEM.  The caller owns one reference.
 */
int asyncio_future_new(asyncio_future_t **out, asyncio_loop_t *loop);

/* Adds a reference and returns the future.  NULL-safe. */
asyncio_future_t *asyncio_future_ref(asyncio_future_t *future);

/*
 * Drops the caller's reference.  Returns 0; -EINVAL for NULL; -EBUSY (and
 * keeps the reference) when the future is pending and tasks are awaiting it,
 * and this is the last reference outside the loop: nobody could complete it,
 * so those tasks would wait forever.  Tasks are freed the same way
 * (asyncio_task_free); a running task stays alive until it finishes.
 */
int asyncio_future_free(asyncio_future_t *future);

/* Future.done(): finished or cancelled.  Future.cancelled(). */
bool asyncio_future_done(const asyncio_future_t *future);
bool asyncio_future_cancelled(const asyncio_future_t *future);

/*
 * Marks the future finished with a result (Future.set_result()).  `code` must
 * be >= 0; `value` is an optional pointer carried with it (not owned).
 * Schedules the done callbacks.  Returns 0, -EINVAL, ASYNCIO_EINVALIDSTATE if
 * already done, or -EPERM on a task (a task's result is its coroutine's).
 */
int asyncio_future_set_result(asyncio_future_t *future, int code, void *value);

/*
 * Marks the future finished with an error (Future.set_exception()).  `error`
 * must be < 0; `message` (nullable) is copied.  Returns as set_result, and
 * -ENOMEM if the message cannot be copied (the future is left pending).
 */
int asyncio_future_set_exception(asyncio_future_t *future, int error, const char *message);

/*
 * Future.result(): returns the result code (>= 0) and stores the pointer
 * value in *value (if non-NULL); or returns the error it finished with;
 * -ECANCELED if cancelled; ASYNCIO_EINVALIDSTATE if still pending.
 * Marks the error as retrieved.  Does not suspend.
 */
int asyncio_future_result(asyncio_future_t *future, void **value);

/*
 * Future.exception(): 0 if the future finished with a result, its error if
 * it finished with one, -ECANCELED if cancelled, ASYNCIO_EINVALIDSTATE if
 * pending.  Marks the error as retrieved.
 */
int asyncio_future_exception(asyncio_future_t *future);

/*
 * The message that came with the error or the cancellation (the exception's
 * args), or NULL.  Borrowed: valid while the future is.
 */
const char *asyncio_future_error_message(const asyncio_future_t *future);

/*
 * Future.cancel(msg): if pending, cancels the future, schedules its callbacks
 * and returns 1; returns 0 if it was already done.  `msg` (nullable) is
 * copied; if it cannot be copied the cancellation happens without it.
 * On a task this is asyncio_task_cancel().
 */
int asyncio_future_cancel(asyncio_future_t *future, const char *msg);

/*
 * Future.add_done_callback(): fn(future, arg) is scheduled with call_soon
 * once the future is done (at once if it already is).  Callbacks run in
 * registration order.  The first callback needs no allocation.  Returns 0,
 * -EINVAL or -ENOMEM.
 */
int asyncio_future_add_done_callback(asyncio_future_t *future, asyncio_done_fn fn, void *arg);

/*
 * Future.remove_done_callback(): removes every registration of (fn, arg) not
 * yet scheduled; returns how many were removed.
 */
int asyncio_future_remove_done_callback(asyncio_future_t *future, asyncio_done_fn fn, void *arg);

/* Future.get_loop(). */
asyncio_loop_t *asyncio_future_get_loop(const asyncio_future_t *future);

/*
 * `await future`: suspends the calling task until the future (or task) is
 * done, then returns as asyncio_future_result().  A suspension point: if the
 * calling task is cancelled while waiting, the future is cancelled too and the
 * call returns -ECANCELED (if the future could not be cancelled because it
 * was already done, -ECANCELED is still returned: the request is delivered
 * here).  Returns ASYNCIO_ENOTASK outside a task, -EDEADLK when a task awaits
 * itself, -EINVAL for NULL or a future of another loop.
 */
int asyncio_await(asyncio_future_t *future, void **value);

/*
 * asyncio.wrap_future / ensure_future have no C counterpart: C has no
 * coroutine objects to wrap, and tasks already are futures.
 */

#ifdef __cplusplus
}
#endif
#endif
