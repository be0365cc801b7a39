/*
 * asyncio/threads.h - running blocking work on threads (Python:
 * asyncio.threads.to_thread, loop.run_in_executor, set_default_executor,
 * shutdown_default_executor in asyncio.base_events, and
 * asyncio.run_coroutine_threadsafe in asyncio.tasks).
 *
 * An executor is a pool of worker threads (concurrent.futures'
 * ThreadPoolExecutor): workers start on demand, up to max_workers, and take
 * jobs in submission order.  Each loop has a default executor, created on
 * first use with min(32, ncpu + 4) workers.  A job's outcome comes back to
 * its loop through the loop's threadsafe queue, so futures are only ever
 * completed on the loop thread.  While a loop has jobs in flight its virtual
 * clock (ASYNCIO_CLOCK_VIRTUAL) does not jump.
 *
 * Worker threads block every signal.  A thread function cannot be
 * interrupted: cancelling the future (or the task awaiting it) takes a job
 * that has not started off the queue, and abandons the result of one that
 * has (the function still runs to completion, as in Python).
 *
 * asyncio_loop_close() blocks until this loop's running jobs have finished
 * (queued ones are dropped without running), then joins the default
 * executor's threads: closing a loop never leaks a thread.
 */
#ifndef ASYNCIO_THREADS_H
#define ASYNCIO_THREADS_H

#include "futures.h"
#include "tasks.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct asyncio_executor asyncio_executor_t;

/*
 * A function run on a worker thread: the callable given to run_in_executor
 * or to_thread.  Returns >= 0 (a result) or < 0 (an error); may store a
 * pointer result in *value (NULL on entry).  It runs outside any loop: it
 * must not call loop-thread functions, only *_threadsafe ones.
 */
typedef int (*asyncio_thread_fn)(void *arg, void **value);

/* ---- executors ----------------------------------------------------------- */

/*
 * Creates a thread pool (concurrent.futures.ThreadPoolExecutor(max_workers)).
 * max_workers 0 means min(32, ncpu + 4).  No thread starts before the first
 * job.  Returns 0, -EINVAL (max_workers < 0), -ENOMEM.  The caller owns it.
 */
int asyncio_executor_new(asyncio_executor_t **out, int max_workers);

/*
 * Shuts the pool down and frees it (executor.shutdown(wait=True)), joining
 * its worker threads.  Returns 0, -EINVAL, -EDEADLK (called from one of its
 * own workers), or -EBUSY -- and does nothing -- while it is some open
 * loop's default executor or any job submitted to it has not been delivered
 * to its loop yet (await those futures first): a job never outlives its
 * executor.  Must not race with submissions from other threads.
 */
int asyncio_executor_free(asyncio_executor_t *executor);

/* The pool's worker limit. */
int asyncio_executor_max_workers(const asyncio_executor_t *executor);

/*
 * Makes `executor` the loop's default (loop.set_default_executor()); the
 * loop borrows it, so it must outlive the loop's use of it (freeing it
 * before then returns -EBUSY).  A default executor the loop created itself
 * is shut down once its jobs are done.  After shutdown_default_executor
 * the loop's default stays refused (run_in_executor(loop, NULL, ...) is
 * ASYNCIO_ECLOSED, as Python's flag stays set), though `executor` still
 * takes jobs by name.  Does not suspend.  Returns 0, -EINVAL,
 * ASYNCIO_ECLOSED, ASYNCIO_EWRONGTHREAD, -ENOMEM.
 */
int asyncio_loop_set_default_executor(asyncio_loop_t *loop, asyncio_executor_t *executor);

/*
 * Schedules fn(arg, &value) on `executor` (the loop's default when NULL) and
 * returns a future of the loop that completes with fn's outcome and pointer
 * result (loop.run_in_executor()).  Does not suspend.  The caller owns one
 * reference to *out.  Cancelling the future before a worker took the job
 * means fn never runs; after that, fn runs to completion and its result is
 * dropped (a pointer result is not freed).  Returns 0, -EINVAL,
 * ASYNCIO_ECLOSED (loop closed, or the default executor was shut down),
 * ASYNCIO_EWRONGTHREAD, -ENOMEM, or -EAGAIN (no worker thread could be
 * started).  Jobs run in submission order; with one worker they also finish
 * in that order.
 */
int asyncio_loop_run_in_executor(asyncio_loop_t *loop, asyncio_executor_t *executor,
                                 asyncio_thread_fn fn, void *arg, asyncio_future_t **out);

/*
 * asyncio.to_thread(func, arg): runs fn(arg, &value) on the running loop's
 * default executor and suspends the calling task until it returns.  A
 * suspension point: if the task is cancelled, the call returns -ECANCELED
 * at once; fn still runs to completion on its thread (or never starts, if it
 * was still queued) and its result is dropped.  Returns fn's result or error
 * and stores its pointer result in *value (if non-NULL), or ASYNCIO_ENOTASK,
 * -EINVAL, -ECANCELED, and the errors of asyncio_loop_run_in_executor.
 */
int asyncio_to_thread(asyncio_thread_fn fn, void *arg, void **value);

/*
 * loop.shutdown_default_executor(timeout): no further jobs are accepted by
 * the default executor (run_in_executor(loop, NULL, ...) then returns
 * ASYNCIO_ECLOSED); suspends the calling task until the queued jobs have run
 * and every worker thread has been joined, or until `timeout` seconds have
 * passed (timeout < 0 waits forever: Python's None; 0 only returns at once
 * when there is nothing to join).  After the timeout it does what Python
 * does with its RuntimeWarning: reports the warning through the loop's
 * exception handler (error -ETIMEDOUT) and returns 1 without waiting for
 * the threads still running; the join goes on in the background and
 * asyncio_loop_close waits for the rest.  Returns 0 (also when there was no
 * default executor), 1 (timed out), ASYNCIO_ENOTASK (not called from a
 * task of loop), -EINVAL (NULL loop, timeout NaN), -ENOMEM, -EAGAIN (no
 * thread could be started to join the workers: nothing is joined, though
 * new jobs are refused from then on, as Python's flag is set first; the
 * loop thread does not join them itself, since a job waiting on the loop
 * would then never end), or -ECANCELED (the shutdown goes on;
 * asyncio_loop_close waits for it).
 * An enclosing timeout scope still bounds the call, with -ETIMEDOUT from
 * that scope's exit as usual.
 */
int asyncio_loop_shutdown_default_executor(asyncio_loop_t *loop, double timeout);

/* ---- concurrent futures: run_coroutine_threadsafe ------------------------- */

/*
 * A thread-safe future (concurrent.futures.Future) that another thread can
 * wait on.  Reference-counted with atomics: the submitting thread owns one
 * reference (asyncio_cfuture_free) and the loop holds another while it
 * needs it.  Every asyncio_cfuture_* call is safe from any thread.
 */
typedef struct asyncio_cfuture asyncio_cfuture_t;

/*
 * asyncio.run_coroutine_threadsafe(coro, loop): from any thread (normally
 * not the loop's), asks `loop` to run fn(arg) as a task and returns a
 * concurrent future for its outcome.  Does not suspend or block.  Returns 0,
 * -EINVAL, ASYNCIO_ECLOSED, -ENOMEM.  If the task cannot be created, or the
 * loop is closed before it ran, the cfuture finishes with that error
 * (-ENOMEM, ASYNCIO_ECLOSED); a task still pending when the loop closes
 * leaves it finished with ASYNCIO_ECLOSED.
 */
int asyncio_run_coroutine_threadsafe(asyncio_loop_t *loop, asyncio_coro_fn fn, void *arg,
                                     asyncio_cfuture_t **out);

/*
 * Blocks the calling thread until the cfuture is done or `timeout` seconds
 * have passed (concurrent.futures.wait([f], timeout)); timeout < 0 waits
 * forever.  Returns 0 when done, -ETIMEDOUT, -EINVAL.  Never call it from
 * the loop thread the work runs on while that loop runs (-EDEADLK).
 */
int asyncio_cfuture_wait(asyncio_cfuture_t *cf, double timeout);

/*
 * Future.result(timeout): waits as asyncio_cfuture_wait, then returns the
 * task's result (>= 0, pointer result in *value if non-NULL), its error, or
 * -ECANCELED; -ETIMEDOUT if it is still pending after `timeout` seconds.
 */
int asyncio_cfuture_result(asyncio_cfuture_t *cf, double timeout, void **value);

/*
 * Future.cancel(): if pending, the cfuture becomes cancelled at once (its
 * waiters wake with -ECANCELED) and the task is asked to cancel on its loop
 * (call_soon_threadsafe(task.cancel)); returns 1.  Returns 0 if already
 * done, -EINVAL for NULL.  The task's own outcome is then discarded.
 */
int asyncio_cfuture_cancel(asyncio_cfuture_t *cf);

/* Future.done() / Future.cancelled(). */
bool asyncio_cfuture_done(asyncio_cfuture_t *cf);
bool asyncio_cfuture_cancelled(asyncio_cfuture_t *cf);

/* Drops the caller's reference.  Returns 0 or -EINVAL.  Any thread. */
int asyncio_cfuture_free(asyncio_cfuture_t *cf);

#ifdef __cplusplus
}
#endif
#endif
