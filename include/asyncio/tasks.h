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

/* As asyncio_create_task on a given loop, running or not (loop.create_task()). */
int asyncio_loop_create_task(asyncio_loop_t *loop, asyncio_task_t **out, asyncio_coro_fn fn,
                             void *arg, const asyncio_task_options_t *options);

/* Drops a reference to a task (asyncio_future_free). */
int asyncio_task_free(asyncio_task_t *task);

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
 * Prints the loop's tasks to `out` (a FILE *; stderr when NULL) as a tree: each
 * pending task with its state, what it awaits, and the tasks awaiting it
 * (asyncio.print_call_graph, 3.14, at task granularity).  Returns the number
 * of tasks printed.
 */
int asyncio_print_tasks(asyncio_loop_t *loop, void *out);

#ifdef __cplusplus
}
#endif
#endif
