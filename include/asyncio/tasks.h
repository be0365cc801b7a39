/*
 * asyncio/tasks.h - tasks: coroutines on their own stacks (Python:
 * asyncio.tasks, asyncio.Task).
 *
 * A coroutine is `int fn(void *arg)` running on its own stack.  Its return
 * value is the task's outcome: >= 0 a result, < 0 an error, -ECANCELED a
 * cancellation (the task ends cancelled).  A pointer result is attached with
 * asyncio_task_set_result_value().
 *
 * Cancellation is asyncio's: asyncio_task_cancel() requests it; the request
 * is delivered once, at the task's next suspension point, as -ECANCELED from
 * the suspending call; if the task is awaiting a future, that future is
 * cancelled.  A task may swallow the cancellation and go on (it should then
 * call asyncio_task_uncancel()).  Calls documented as suspension points are
 * the only places where a task can be cancelled.
 */
#ifndef ASYNCIO_TASKS_H
#define ASYNCIO_TASKS_H

#include <sys/types.h>

#include "futures.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef int (*asyncio_coro_fn)(void *arg);

/* Options for create_task; NULL means defaults. */
typedef struct asyncio_task_options {
  const char *name;  /* copied; NULL = "Task-<n>", formatted only when asked for */
  size_t stack_size; /* 0 = the loop's default */
  /*
   * Eager start (asyncio.eager_task_factory, 3.12): the coroutine runs at once
   * inside create_task until its first suspension; if it finishes without
   * suspending, the task is done when create_task returns.
   */
  bool eager;
} asyncio_task_options_t;

/*
 * Creates a task running fn(arg) on the running loop (asyncio.create_task()).
 * The task starts on a later loop iteration (or at once, when eager).  Does
 * not suspend.  If out is non-NULL the caller gets one reference (free it with
 * asyncio_task_free); with out == NULL the task runs detached and the loop
 * keeps it alive until it finishes.  Returns 0, -EINVAL, ASYNCIO_ENOLOOP,
 * -ENOMEM (no memory, or no stack could be mapped).
 */
int asyncio_create_task(asyncio_task_t **out, asyncio_coro_fn fn, void *arg,
                        const asyncio_task_options_t *options);

/*
 * As asyncio_create_task on a given loop, running or not (loop.create_task()).
 * With a task factory set (asyncio_loop_set_task_factory), the factory makes
 * the task.
 */
int asyncio_loop_create_task(asyncio_loop_t *loop, asyncio_task_t **out, asyncio_coro_fn fn,
                             void *arg, const asyncio_task_options_t *options);

/* Drops a reference to a task (asyncio_future_free). */
int asyncio_task_free(asyncio_task_t *task);

/*
 * A task factory (loop.set_task_factory(factory)): create_task on a loop
 * that has one calls factory(loop, out, fn, arg, options, factory_arg)
 * instead of making the task itself; so do everything that creates tasks
 * through create_task (TaskGroup, gather over coroutines, wait_for_coro).
 * A factory makes the task with asyncio_task_new() (the Task constructor,
 * which never calls a factory), usually after adjusting the options, and
 * must store it in *out when out is non-NULL (out NULL: a detached task).
 * It returns 0 or a negative error, which create_task returns.
 */
typedef int (*asyncio_task_factory_fn)(asyncio_loop_t *loop, asyncio_task_t **out,
                                       asyncio_coro_fn fn, void *arg,
                                       const asyncio_task_options_t *options, void *factory_arg);

/*
 * Task(coro, loop=loop, name=..., eager_start=...): makes a task on loop
 * (running or not) without going through the loop's task factory.  As
 * asyncio_loop_create_task otherwise.
 */
int asyncio_task_new(asyncio_loop_t *loop, asyncio_task_t **out, asyncio_coro_fn fn, void *arg,
                     const asyncio_task_options_t *options);

/*
 * loop.set_task_factory(factory): NULL restores the default.  Returns 0,
 * -EINVAL, ASYNCIO_EWRONGTHREAD.
 */
int asyncio_loop_set_task_factory(asyncio_loop_t *loop, asyncio_task_factory_fn factory,
                                  void *factory_arg);

/* loop.get_task_factory(): the factory (NULL for the default) and its argument. */
asyncio_task_factory_fn asyncio_loop_get_task_factory(asyncio_loop_t *loop, void **factory_arg);

/*
 * asyncio.eager_task_factory (3.12): a factory that makes every task eager
 * (asyncio_task_options_t.eager), for
 * asyncio_loop_set_task_factory(loop, asyncio_eager_task_factory, NULL).
 * Python's create_eager_task_factory(custom_task_constructor) has no C
 * counterpart beyond this: write a factory that sets eager and calls your
 * own constructor.
 */
int asyncio_eager_task_factory(asyncio_loop_t *loop, asyncio_task_t **out, asyncio_coro_fn fn,
                               void *arg, const asyncio_task_options_t *options,
                               void *factory_arg);

/* True if the future is a task. */
bool asyncio_future_is_task(const asyncio_future_t *future);

/* Task.get_name(): borrowed, valid until the name changes or the task is freed. */
const char *asyncio_task_get_name(asyncio_task_t *task);

/* Task.set_name(): copies the name.  Returns 0, -EINVAL or -ENOMEM. */
int asyncio_task_set_name(asyncio_task_t *task, const char *name);

/* asyncio.current_task(): the task running in this thread, or NULL. */
asyncio_task_t *asyncio_current_task(void);

/*
 * asyncio.all_tasks(loop): stores up to `cap` pending tasks of the loop (the
 * running loop when NULL) into out (borrowed pointers) and returns how many
 * pending tasks there are, which may exceed cap.
 */
ssize_t asyncio_all_tasks(asyncio_loop_t *loop, asyncio_task_t **out, size_t cap);

/*
 * Task.cancel(msg): requests cancellation.  Returns 1 if the request was
 * made, 0 if the task is already done.  Each request increments the
 * cancelling() count.  `msg` (nullable) is copied.
 */
int asyncio_task_cancel(asyncio_task_t *task, const char *msg);

/* Task.cancelling(): pending cancellation requests (>= 0), or -EINVAL. */
int asyncio_task_cancelling(const asyncio_task_t *task);

/*
 * Task.uncancel(): decrements the count and returns it; when it reaches 0
 * an undelivered request is withdrawn (Python 3.13).
 */
int asyncio_task_uncancel(asyncio_task_t *task);

/*
 * Attaches a pointer result to the calling task; the task's result() stores it
 * in *value when the coroutine returns >= 0.  Returns 0 or ASYNCIO_ENOTASK.
 */
int asyncio_task_set_result_value(void *value);

/* The coroutine function and argument the task runs (Task.get_coro()). */
asyncio_coro_fn asyncio_task_get_coro(const asyncio_task_t *task, void **arg);

/*
 * asyncio.sleep(delay): suspends the calling task for `delay` seconds.
 * sleep(0) (or any delay <= 0) yields once: every other ready callback and
 * task runs before this task resumes.  A suspension point.  Returns 0,
 * -ECANCELED, ASYNCIO_ENOTASK, -EINVAL (NaN), -ENOMEM (no timer could be
 * allocated: nothing was scheduled and the task did not suspend).
 */
int asyncio_sleep(double delay);

/*
 * Prints the loop's pending tasks to `out` (a FILE *; stderr when NULL) as a
 * tree (asyncio.print_call_graph and `python -m asyncio pstree`, 3.14, at task
 * granularity): each root, a task no other task waits on, with its state
 * (running, scheduled, ready, sleeping until t=..., awaiting what, waiting
 * for stream data), and below it the tasks it waits on: the task it awaits,
 * or the children of the gather it awaits; and so on down.  A task waited
 * on by several is printed once and mentioned "(shown above)" after that.
 * Returns the number of pending tasks, ASYNCIO_ENOLOOP, -ENOMEM.
 */
int asyncio_print_tasks(asyncio_loop_t *loop, void *out);

/* ==== combinators: gather, shield, wait, as_completed (src/gather.c, src/wait.c) ==== */

/* A coroutine call for asyncio_gather_coros: fn(arg), wrapped in a task. */
typedef struct asyncio_coro_call {
  asyncio_coro_fn fn;
  void *arg;
} asyncio_coro_call_t;

/* Options for gather; NULL means Python's defaults. */
typedef struct asyncio_gather_options {
  /*
   * false (default): the first child error (a child cancelled on its own
   * counts as -ECANCELED) is the gather's outcome at once; the other children
   * keep running and are not cancelled.  true: errors are collected per
   * child and the gather completes when every child has.
   */
  bool return_exceptions;
  /* asyncio_gather_coros only: options for every task it creates (NULL = defaults). */
  const asyncio_task_options_t *task_options;
} asyncio_gather_options_t;

/*
 * asyncio.gather(*futs, return_exceptions=...): returns in *out a gathering
 * future that completes when the children do.  Does not suspend: await the
 * gather with asyncio_await.  Its outcome: the number of children that failed
 * (>= 0; always 0 without return_exceptions), or without return_exceptions the
 * first child error; -ECANCELED if the gather was cancelled, even when every
 * child swallowed the cancellation.  Cancelling the gather (or a task awaiting
 * it) cancels every child still pending.  Per-child outcomes, in input order:
 * asyncio_gather_result.  Zero children: the gather is done at once with 0.
 * All futures must belong to one loop; with n == 0 the running loop is used.
 * Ownership: the caller gets one reference to the gather (asyncio_future_free);
 * the gather holds a reference to each child until it is freed, and each child
 * not yet done holds one to the gather.  The caller keeps its own references
 * to the children.  A future listed twice is two entries.
 * Returns 0, -EINVAL (NULL argument or child, futures of different loops),
 * ASYNCIO_ENOLOOP, ASYNCIO_ECLOSED, ASYNCIO_EWRONGTHREAD, -ENOMEM.
 */
int asyncio_gather(asyncio_future_t **out, asyncio_future_t *const *futs, size_t n,
                   const asyncio_gather_options_t *options);

/*
 * asyncio.gather(coro(), ...): as asyncio_gather over n tasks it creates on the
 * running loop, one per calls[i], in order.  The gather owns those tasks
 * (asyncio_gather_child borrows them).  If it fails, the tasks already created
 * are cancelled before they ever run.  Does not suspend.  Returns as
 * asyncio_gather, and -EINVAL when a call has no fn.
 */
int asyncio_gather_coros(asyncio_future_t **out, const asyncio_coro_call_t *calls, size_t n,
                         const asyncio_gather_options_t *options);

/* True if the future is a gathering future (from asyncio_gather*). */
bool asyncio_future_is_gather(const asyncio_future_t *future);

/* The number of children of a gather, or -EINVAL if it is not one. */
ssize_t asyncio_gather_size(const asyncio_future_t *gather);

/* The i-th child of a gather (borrowed: valid while the gather is), or NULL. */
asyncio_future_t *asyncio_gather_child(const asyncio_future_t *gather, size_t i);

/*
 * The i-th child's outcome, as asyncio_future_result on it (the Python result
 * list's i-th item): its result (>= 0, pointer in *value), its error,
 * -ECANCELED if it was cancelled, ASYNCIO_EINVALIDSTATE while it is pending,
 * -EINVAL if `gather` is not a gather or i is out of range.  Does not suspend.
 */
int asyncio_gather_result(asyncio_future_t *gather, size_t i, void **value);

/*
 * asyncio.shield(inner): returns in *out an outer future that takes inner's
 * outcome when inner completes.  Cancelling the outer (or a task awaiting it)
 * leaves inner running; its outcome stays readable from inner.  If inner is
 * already done, *out is inner itself.  Does not suspend.  Ownership: the
 * caller gets one reference to *out; the shield keeps both futures alive
 * until inner is done or the outer is.  Returns 0, -EINVAL, ASYNCIO_ECLOSED,
 * ASYNCIO_EWRONGTHREAD, -ENOMEM.
 */
int asyncio_shield(asyncio_future_t **out, asyncio_future_t *inner);

/* "No time limit" (Python's timeout=None); the same definition as timeouts.h. */
#include <math.h>
#ifndef ASYNCIO_NO_TIMEOUT
#define ASYNCIO_NO_TIMEOUT ((double)INFINITY)
#endif

/* asyncio.FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED (return_when of asyncio_wait). */
enum {
  ASYNCIO_ALL_COMPLETED = 0,
  ASYNCIO_FIRST_COMPLETED = 1,
  ASYNCIO_FIRST_EXCEPTION = 2,
};

/*
 * asyncio.wait(futs, timeout=..., return_when=...): suspends the calling task
 * until return_when is met (ALL_COMPLETED: every future is done;
 * FIRST_COMPLETED: any is; FIRST_EXCEPTION: any finishes with an error, not
 * a cancellation, or all are done) or `timeout` seconds pass (ASYNCIO_NO_TIMEOUT:
 * no limit, Python's None; <= 0: one loop iteration).  Nothing is cancelled,
 * not even on timeout.  If `done` is non-NULL, done[i] tells whether futs[i]
 * is done (Python's done set; the others are the pending set).  Returns the
 * number of futures done (0 when the timeout came first), -ECANCELED if the
 * calling task was cancelled (the futures keep running), -EINVAL (no futures:
 * Python's ValueError; NULL future, another loop's future, the calling task
 * itself, bad return_when, NaN timeout), ASYNCIO_ENOTASK, -ENOMEM.  A
 * suspension point.  Borrows the futures.
 */
int asyncio_wait(asyncio_future_t *const *futs, size_t n, double timeout, int return_when,
                 bool *done);

/*
 * asyncio.as_completed(futs, timeout=...): an iterator over the futures in
 * the order they complete.  Two ways to use it, both suspension points:
 *  - asyncio_as_completed_next (3.13's `async for t in as_completed(...)`)
 *    hands back the original future;
 *  - asyncio_as_completed_next_result (`for f in as_completed(...): await f`)
 *    returns the next one's outcome.
 * With a finite `timeout` (seconds from creation; ASYNCIO_NO_TIMEOUT: none), once it
 * expires each remaining next returns -ETIMEDOUT, after the futures that had
 * completed before it; the futures still pending keep running.
 */
typedef struct asyncio_as_completed asyncio_as_completed_t;

/*
 * Creates the iterator and starts watching the futures (all of one loop; n
 * may be 0).  Does not suspend.  The iterator takes a reference to each
 * future until it is freed; free it with asyncio_as_completed_free.  A
 * future listed twice is handed out twice.  Returns 0, -EINVAL (NULL
 * argument or future, futures of different loops, NaN timeout),
 * ASYNCIO_ECLOSED, ASYNCIO_EWRONGTHREAD, -ENOMEM.
 */
int asyncio_as_completed_new(asyncio_as_completed_t **out, asyncio_future_t *const *futs,
                             size_t n, double timeout);

/*
 * Suspends until the next future completes and stores it in *next (borrowed:
 * valid while the iterator is).  Returns 1; 0 with *next = NULL when every
 * future has been handed out (StopAsyncIteration: does not suspend);
 * -ETIMEDOUT when the timeout expired (counts as one item); -ECANCELED if the
 * calling task was cancelled (nothing consumed); -EBUSY if another task waits
 * in next; -EINVAL, ASYNCIO_ENOTASK, -ENOMEM.
 */
int asyncio_as_completed_next(asyncio_as_completed_t *it, asyncio_future_t **next);

/*
 * As asyncio_as_completed_next, then returns the future's outcome as
 * asyncio_future_result would (result >= 0 with *value, or its error).  Once
 * every item has been handed out it returns ASYNCIO_EINVALIDSTATE (Python
 * stops the for loop): loop asyncio_as_completed_remaining() times.
 */
int asyncio_as_completed_next_result(asyncio_as_completed_t *it, void **value);

/* How many more items next will hand out (Python's _todo_left), or -EINVAL. */
ssize_t asyncio_as_completed_remaining(const asyncio_as_completed_t *it);

/*
 * Stops watching and drops the iterator's references.  Futures are not
 * cancelled.  Returns 0, -EINVAL, -EBUSY (a task waits in next; nothing is
 * freed), ASYNCIO_EWRONGTHREAD.
 */
int asyncio_as_completed_free(asyncio_as_completed_t *it);

#ifdef __cplusplus
}
#endif
#endif
