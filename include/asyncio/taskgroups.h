/*
 * asyncio/taskgroups.h - task groups (Python: asyncio.taskgroups,
 * asyncio.TaskGroup) and the error group they report (ExceptionGroup).
 *
 * The C form of `async with asyncio.TaskGroup() as tg:`
 *
 *     asyncio_taskgroup_t *tg;
 *     int rc = asyncio_taskgroup_enter(&tg);          // async with ... as tg:
 *     if (rc < 0) return rc;
 *     rc = asyncio_taskgroup_create_task(tg, NULL, worker, a, NULL);
 *     if (rc >= 0) rc = asyncio_taskgroup_create_task(tg, NULL, worker, b, NULL);
 *     rc = asyncio_taskgroup_exit(tg, rc);            // waits for every child
 *     if (rc == ASYNCIO_EEXCEPTIONGROUP) { ... walk asyncio_taskgroup_errors(tg) ... }
 *     asyncio_taskgroup_free(tg);
 *
 * Rules (TaskGroup.__aexit__ / _on_task_done, Python 3.12-3.14):
 *   - The first child that fails with an error (not a cancellation) cancels
 *     all its siblings and the task that entered the group (the "parent",
 *     which runs the body): the body's next suspension point returns
 *     -ECANCELED so it unwinds to asyncio_taskgroup_exit().  The group undoes
 *     that cancellation itself (Task.uncancel()), so it is not reported.
 *   - The body failing (exit called with an error other than -ECANCELED)
 *     cancels all children too.
 *   - Exit waits until every child has finished, however the body ended.
 *   - If any child failed, or the body failed, exit returns
 *     ASYNCIO_EEXCEPTIONGROUP and the error group lists every error: the
 *     children's in the order they finished, then the body's.  A child that
 *     was cancelled is not an error.
 *   - A cancellation of the parent from outside (Task.cancel() by someone
 *     else, an enclosing timeout) cancels the children and is propagated:
 *     exit returns -ECANCELED - unless children failed, in which case the
 *     error group wins and the outside cancellation stays pending (the
 *     parent's next suspension point returns -ECANCELED), as in Python.
 *
 * Ownership: asyncio_taskgroup_enter() allocates the group; the caller frees
 * it with asyncio_taskgroup_free() after asyncio_taskgroup_exit().  The group
 * holds a reference to each child until the child has finished (and to a
 * failed child until the group is freed, for its error entry).  The error
 * group belongs to the task group: it and the strings and task pointers it
 * hands out are valid until asyncio_taskgroup_free().  All calls are
 * loop-thread-only.
 */
#ifndef ASYNCIO_TASKGROUPS_H
#define ASYNCIO_TASKGROUPS_H

#include "tasks.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct asyncio_taskgroup asyncio_taskgroup_t;
typedef struct asyncio_error_group asyncio_error_group_t;

/* One error of an error group (an exception of ExceptionGroup.exceptions). */
typedef struct asyncio_error_entry {
  asyncio_task_t *task;  /* the failed child; for the body's error, the parent */
  const char *task_name; /* the task's name (Task.get_name()) */
  int error;             /* the error code (< 0) */
  const char *message;   /* the message attached to the error, or NULL */
  bool body;             /* the error is the body's own (the rc given to exit) */
} asyncio_error_entry_t;

/*
 * async with asyncio.TaskGroup() as tg: creates a group whose parent is the
 * calling task and enters it.  Does not suspend.  Returns 0 and stores the
 * group in *out; -EINVAL (out NULL), ASYNCIO_ENOTASK (not inside a task),
 * -ENOMEM.  The caller owns the group (asyncio_taskgroup_free).
 */
int asyncio_taskgroup_enter(asyncio_taskgroup_t **out);

/*
 * TaskGroup.create_task(coro, name=..., eager_start=...): creates a task
 * running fn(arg) in the group, as asyncio_create_task() does (an eager task
 * runs until its first suspension before this returns; if it fails at once,
 * the group learns of it on the next loop iteration, never inside this call).
 * May be called from any task or callback of the loop: the body, a child,
 * or while asyncio_taskgroup_exit() waits.  Does not suspend.  If out is
 * non-NULL the caller gets its own reference (asyncio_task_free); the group
 * holds another.  Returns 0; -EINVAL; ASYNCIO_EINVALIDSTATE when the group
 * is shutting down (a child failed, the body failed, or it was cancelled:
 * Python's "TaskGroup is shutting down") or has finished (exit returned:
 * "TaskGroup is finished") - the coroutine then never runs; -ENOMEM and the
 * errors of asyncio_create_task, with nothing created.
 */
int asyncio_taskgroup_create_task(asyncio_taskgroup_t *tg, asyncio_task_t **out,
                                  asyncio_coro_fn fn, void *arg,
                                  const asyncio_task_options_t *options);

/*
 * Leaving the `async with` block (TaskGroup.__aexit__): `rc` is the body's
 * outcome (>= 0 success, -ECANCELED, or an error).  Waits until every child
 * has finished, then returns, in this order of precedence:
 *   - -ECANCELED if the parent was cancelled from outside (before or during
 *     the wait) and no child failed;
 *   - ASYNCIO_EEXCEPTIONGROUP if a child failed or rc is an error other than
 *     -ECANCELED (asyncio_taskgroup_errors() lists them);
 *   - otherwise rc if rc >= 0, or 0 when the body's -ECANCELED was the
 *     group's own cancellation (asyncio_taskgroup_cancel()).
 * A suspension point while children are pending; a cancellation of the
 * parent during the wait cancels the children and the wait goes on until
 * they have finished.  Must be called once, by the parent task.  Also
 * returns -EINVAL (NULL), ASYNCIO_EINVALIDSTATE (already exited),
 * ASYNCIO_ENOTASK (outside a task) and -EPERM (another task than the
 * parent); on those errors the group is unchanged.
 */
int asyncio_taskgroup_exit(asyncio_taskgroup_t *tg, int rc);

/*
 * TaskGroup.cancel() (Python 3.15): cancels every child and the parent, so
 * the body unwinds to exit, which then returns without -ECANCELED (unless
 * something else also cancelled the parent, or children failed).  Does not
 * suspend.  Idempotent; a no-op once exit has returned.  Returns 0, -EINVAL,
 * ASYNCIO_ECLOSED or ASYNCIO_EWRONGTHREAD.
 */
int asyncio_taskgroup_cancel(asyncio_taskgroup_t *tg);

/*
 * Frees the group, its error group and its references.  Call it after exit.
 * A group that was never exited can be freed once none of its children is
 * pending (or its loop is closed); otherwise returns -EBUSY and frees
 * nothing.  NULL-safe.  Returns 0, -EBUSY or ASYNCIO_EWRONGTHREAD.
 */
int asyncio_taskgroup_free(asyncio_taskgroup_t *tg);

/*
 * The group's errors so far (the ExceptionGroup that exit reports): empty
 * until a child fails; complete once exit has returned
 * ASYNCIO_EEXCEPTIONGROUP.  Does not suspend.  Borrowed: valid until
 * asyncio_taskgroup_free(); NULL only for a NULL group.
 */
asyncio_error_group_t *asyncio_taskgroup_errors(asyncio_taskgroup_t *tg);

/* len(ExceptionGroup.exceptions): the number of errors (0 for NULL).  Does not suspend. */
size_t asyncio_error_group_count(const asyncio_error_group_t *group);

/*
 * ExceptionGroup.exceptions[i]: stores the i-th error (0-based) in *entry;
 * its pointers are borrowed from the group.  Walking i = 0, 1, 2, ... costs
 * O(1) per call.  Does not suspend.  Returns 0, -EINVAL (NULL), -ERANGE
 * (i >= count).
 */
int asyncio_error_group_get(asyncio_error_group_t *group, size_t i, asyncio_error_entry_t *entry);

#ifdef __cplusplus
}
#endif
#endif
