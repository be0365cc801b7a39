/*
 * timeouts.c - timeout scopes and wait_for (Python: Lib/asyncio/timeouts.py,
 * Timeout, timeout(), timeout_at(); wait_for() and _cancel_and_wait() of
 * Lib/asyncio/tasks.py, as of Python 3.12).
 *
 * A scope moves CREATED -> ENTERED -> (EXPIRING ->) EXITED/EXPIRED, once.
 * While ENTERED it owns at most one scheduled callback (`handle`), a timer
 * at `when` or a call_soon when the deadline is already past; the callback
 * cancels the task and moves the scope to EXPIRING.  Exit cancels the
 * callback, and for an EXPIRING scope undoes its own cancellation with
 * Task.uncancel(): only if that brings the task's count down to (or below)
 * its value at entry is the scope the sole reason for the cancellation, and
 * only then does -ECANCELED become -ETIMEDOUT.  Every other cancellation -
 * from outside, from an outer scope - is left counted and passes through.
 *
 * A public scope holds a reference to its task from entry to exit (or
 * free), so a deadline can never touch a task that is gone.  wait_for keeps
 * its scope on the task's own stack, always exits it, and needs no
 * reference: the fast path (the awaited future finishes in time) costs one
 * pooled timer handle and no allocation.
 */
#include <math.h>

#include "internal.h"

enum {
  TS_CREATED = 0,
  TS_ENTERED,  /* Python's "active" */
  TS_EXPIRING, /* the deadline fired; exit not yet called */
  TS_EXPIRED,  /* exited after the deadline fired */
  TS_EXITED,   /* exited before the deadline */
};

struct asyncio_timeout {
  asyncio_loop_t *loop;
  asyncio__task_t *task;   /* while ENTERED or EXPIRING (a reference if `ref`) */
  asyncio_handle_t handle; /* the pending deadline callback, or none */
  double when;             /* ASYNCIO_NO_TIMEOUT: no deadline */
  int cancelling;          /* task.cancelling() at entry */
  uint8_t state;
  uint8_t ref;
};

/* The deadline (Timeout._on_timeout). */
static void on_timeout(void *arg) {
  asyncio_timeout_t *s = arg;
  s->handle = ASYNCIO_HANDLE_NONE;
  if (s->state != TS_ENTERED) return;
  asyncio_task_cancel(&s->task->f, NULL);
  s->state = TS_EXPIRING;
}

/*
 * Arms the deadline at `when`, replacing the current one.  The new callback
 * is scheduled before the old one is cancelled, so a failure keeps the old
 * deadline (Timeout.reschedule).
 */
static int schedule(asyncio_timeout_t *s, double when) {
  asyncio_handle_t h = ASYNCIO_HANDLE_NONE;
  if (when != ASYNCIO_NO_TIMEOUT) {
    int rc = when <= asyncio_loop_time(s->loop)
                 ? asyncio_loop_call_soon(s->loop, on_timeout, s, &h)
                 : asyncio_loop_call_at(s->loop, when, on_timeout, s, &h);
    if (rc) return rc;
  }
  asyncio_handle_cancel(s->handle);
  s->handle = h;
  s->when = when;
  return 0;
}

/*
 * Timeout.__aenter__ for the calling task.  `ref`: hold a task reference
 * (public scopes, which a careless caller may outlive its task with);
 * wait_for's scope lives on the task's own stack and needs none.
 */
static int scope_enter(asyncio_timeout_t *s, double when, bool ref) {
  asyncio_loop_t *loop = asyncio__running_loop;
  asyncio__task_t *t = loop ? loop->current : NULL;
  if (!t) return ASYNCIO_ENOTASK;
  s->loop = loop;
  s->task = t;
  s->handle = ASYNCIO_HANDLE_NONE;
  s->when = ASYNCIO_NO_TIMEOUT;
  s->cancelling = t->num_cancels_requested;
  s->state = TS_ENTERED;
  s->ref = ref;
  int rc = schedule(s, when);
  if (rc) {
    s->state = TS_CREATED;
    s->task = NULL;
    return rc;
  }
  if (ref) asyncio_future_ref(&t->f);
  return 0;
}

/* Timeout.__aexit__: returns the converted outcome. */
static int scope_exit(asyncio_timeout_t *s, int rc) {
  asyncio__task_t *t = s->task;
  asyncio_handle_cancel(s->handle);
  s->handle = ASYNCIO_HANDLE_NONE;
  if (s->state == TS_EXPIRING) {
    s->state = TS_EXPIRED;
    if (asyncio_task_uncancel(&t->f) <= s->cancelling && rc == -ECANCELED) rc = -ETIMEDOUT;
  } else {
    s->state = TS_EXITED;
  }
  s->task = NULL;
  if (s->ref) asyncio__future_unref(&t->f);
  return rc;
}

/* ---- the public scope ------------------------------------------------------ */

static int timeout_enter_at(asyncio_timeout_t **out, double when) {
  asyncio_timeout_t *s = asyncio__calloc(sizeof *s);
  if (!s) return -ENOMEM;
  int rc = scope_enter(s, when, true);
  if (rc) {
    asyncio__free(s, sizeof *s);
    return rc;
  }
  *out = s;
  return 0;
}

ASYNCIO_API int asyncio_timeout_enter(asyncio_timeout_t **out, double delay) {
  if (!out) return -EINVAL;
  *out = NULL;
  if (isnan(delay)) return -EINVAL;
  asyncio_loop_t *loop = asyncio__running_loop;
  if (!loop || !loop->current) return ASYNCIO_ENOTASK;
  double when = delay == ASYNCIO_NO_TIMEOUT ? delay : asyncio_loop_time(loop) + delay;
  return timeout_enter_at(out, when);
}

ASYNCIO_API int asyncio_timeout_at_enter(asyncio_timeout_t **out, double when) {
  if (!out) return -EINVAL;
  *out = NULL;
  if (isnan(when)) return -EINVAL;
  asyncio_loop_t *loop = asyncio__running_loop;
  if (!loop || !loop->current) return ASYNCIO_ENOTASK;
  return timeout_enter_at(out, when);
}

ASYNCIO_API int asyncio_timeout_exit(asyncio_timeout_t *s, int rc) {
  if (!s) return -EINVAL;
  if (s->state != TS_ENTERED && s->state != TS_EXPIRING) return ASYNCIO_EINVALIDSTATE;
  asyncio_loop_t *loop = asyncio__running_loop;
  if (!loop || !loop->current) return ASYNCIO_ENOTASK;
  if (loop->current != s->task) return -EPERM;
  return scope_exit(s, rc);
}

ASYNCIO_API int asyncio_timeout_free(asyncio_timeout_t *s) {
  if (!s) return 0;
  if (s->state == TS_ENTERED || s->state == TS_EXPIRING) {
    /* Abandoned inside its block: the task reference keeps the loop alive. */
    int rc = asyncio__check_owner(s->loop);
    if (rc) return rc;
    asyncio_handle_cancel(s->handle);
    asyncio__future_unref(&s->task->f);
  }
  asyncio__free(s, sizeof *s);
  return 0;
}

ASYNCIO_API int asyncio_timeout_when(const asyncio_timeout_t *s, double *when) {
  if (!s || !when) return -EINVAL;
  *when = s->when;
  return 0;
}

ASYNCIO_API int asyncio_timeout_reschedule(asyncio_timeout_t *s, double when) {
  if (!s || isnan(when)) return -EINVAL;
  if (s->state != TS_ENTERED) return ASYNCIO_EINVALIDSTATE;
  int rc = asyncio__check_thread(s->loop);
  if (rc) return rc;
  return schedule(s, when);
}

ASYNCIO_API bool asyncio_timeout_expired(const asyncio_timeout_t *s) {
  return s && (s->state == TS_EXPIRING || s->state == TS_EXPIRED);
}

/* ---- wait_for ----------------------------------------------------------------- */

static void release_waiter(asyncio_future_t *fut, void *arg) {
  (void)fut;
  asyncio_future_t *waiter = arg;
  if (waiter->state == FUT_PENDING) asyncio__future_complete(waiter, FUT_FINISHED, 0, NULL, NULL);
  asyncio__future_unref(waiter); /* the callback's reference */
}

/*
 * tasks._cancel_and_wait, then wait_for's timeout <= 0 ending: cancels `fut`
 * and waits for it through a separate waiter, so that this wait stays
 * cancellable even if `fut` ignores its cancellation.  The waiter is kept
 * alive by the done callback until the callback has run or been removed.
 */
static int cancel_and_wait(asyncio_loop_t *loop, asyncio_future_t *fut, void **value) {
  asyncio_future_t *waiter;
  int rc = asyncio_future_new(&waiter, loop);
  if (rc) return rc;
  asyncio_future_ref(waiter);
  rc = asyncio__future_add_cb(fut, release_waiter, waiter);
  if (rc) {
    asyncio__future_unref(waiter);
    asyncio__future_unref(waiter);
    return rc;
  }
  asyncio_future_cancel(fut, NULL);
  rc = asyncio_await(waiter, NULL);
  if (asyncio_future_remove_done_callback(fut, release_waiter, waiter) > 0)
    asyncio__future_unref(waiter);
  asyncio__future_unref(waiter);
  if (rc < 0) return rc; /* we were cancelled while waiting */
  rc = asyncio_future_result(fut, value);
  return rc == -ECANCELED ? -ETIMEDOUT : rc;
}

/* Argument checks shared by both forms; returns the running loop's task. */
static int wait_check(double timeout, asyncio__task_t **tp) {
  asyncio_loop_t *loop = asyncio__running_loop;
  asyncio__task_t *t = loop ? loop->current : NULL;
  if (!t) return ASYNCIO_ENOTASK;
  if (isnan(timeout)) return -EINVAL;
  *tp = t;
  return 0;
}

ASYNCIO_API int asyncio_wait_for(asyncio_future_t *fut, double timeout, void **value) {
  asyncio__task_t *t;
  int rc = wait_check(timeout, &t);
  if (rc) return rc;
  if (!fut || fut->loop != t->f.loop) return -EINVAL;
  if (fut == &t->f) return -EDEADLK;
  if (timeout == ASYNCIO_NO_TIMEOUT || fut->state != FUT_PENDING)
    return asyncio_await(fut, value); /* never suspends on a done future */
  if (timeout <= 0) return cancel_and_wait(t->f.loop, fut, value);
  return asyncio__await_timeout(fut, timeout, value);
}

int asyncio__await_timeout(asyncio_future_t *fut, double delay, void **value) {
  asyncio_loop_t *loop = asyncio__running_loop;
  asyncio_timeout_t s;
  int rc = scope_enter(&s, asyncio_loop_time(loop) + delay, false);
  if (rc) return rc;
  return scope_exit(&s, asyncio_await(fut, value));
}

ASYNCIO_API int asyncio_wait_for_coro(asyncio_coro_fn fn, void *arg,
                                      const asyncio_task_options_t *options, double timeout,
                                      void **value) {
  asyncio__task_t *t;
  int rc = wait_check(timeout, &t);
  if (rc) return rc;
  if (!fn) return -EINVAL;
  asyncio_loop_t *loop = t->f.loop;
  /*
   * With a finite positive timeout the scope is entered first, so that a
   * failure to arm it leaves nothing created.  timeout <= 0 still creates
   * the task, as ensure_future does: an eager task may finish at once and
   * its result is then returned; any other is cancelled before it starts.
   */
  asyncio_timeout_t s;
  bool scoped = timeout > 0 && timeout != ASYNCIO_NO_TIMEOUT;
  if (scoped && (rc = scope_enter(&s, asyncio_loop_time(loop) + timeout, false)) != 0)
    return rc;
  asyncio_task_t *task;
  rc = asyncio_loop_create_task(loop, &task, fn, arg, options);
  if (rc) return scoped ? scope_exit(&s, rc) : rc;
  if (scoped)
    rc = scope_exit(&s, asyncio_await(task, value));
  else if (timeout > 0 || task->state != FUT_PENDING)
    rc = asyncio_await(task, value);
  else if ((rc = cancel_and_wait(loop, task, value)) == -ENOMEM)
    asyncio_task_cancel(task, NULL); /* never ran: it ends cancelled on its first step */
  asyncio__future_unref(task);
  return rc;
}
