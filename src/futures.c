/*
 * futures.c - asyncio.Future (Python: asyncio.futures, and the C Future of
 * Modules/_asynciomodule.c).
 *
 * Invariants: the state moves once from PENDING to CANCELLED or FINISHED;
 * done callbacks never run synchronously: completing a future schedules each
 * callback on the ready queue, in registration order, and clears the list.
 * The first callback lives inline (cb0).  A task waiting in asyncio_await is
 * registered as a callback whose function is task_waiter_marker and whose arg
 * is the task; scheduling it queues the task's own step handle, so awaiting
 * allocates nothing.  Any other callback takes its pooled handle when it is
 * added (cb.arg is then that handle, the user's arg lives in the handle):
 * completing a future never allocates, so it can never drop a callback.
 */
#include <stdlib.h>

#include "internal.h"

static void task_waiter_marker(asyncio_future_t *f, void *arg) {
  (void)f;
  (void)arg;
}

void asyncio__future_init(asyncio_future_t *f, asyncio_loop_t *loop) {
  f->refcnt = 1;
  f->loop = loop;
  loop->nobjects++;
}

static asyncio_loop_t *resolve_loop(asyncio_loop_t *loop, int *rc) {
  if (!loop) loop = asyncio__running_loop;
  if (!loop) {
    *rc = ASYNCIO_ENOLOOP;
    return NULL;
  }
  *rc = asyncio__check_thread(loop);
  return *rc ? NULL : loop;
}

ASYNCIO_API int asyncio_future_new(asyncio_future_t **out, asyncio_loop_t *loop) {
  if (!out) return -EINVAL;
  *out = NULL;
  int rc;
  loop = resolve_loop(loop, &rc);
  if (!loop) return rc;
  asyncio_future_t *f = asyncio__calloc(sizeof *f);
  if (!f) return -ENOMEM;
  asyncio__future_init(f, loop);
  *out = f;
  return 0;
}

ASYNCIO_API asyncio_future_t *asyncio_future_ref(asyncio_future_t *f) {
  if (f) f->refcnt++;
  return f;
}

const char *asyncio__future_describe(asyncio_future_t *f, char *buf, size_t n) {
  static const char *states[] = {"pending", "cancelled", "finished"};
  if (f->is_task) {
    asyncio__task_t *t = TASK(f);
    char nb[32];
    const char *name = t->name;
    if (!name) {
      snprintf(nb, sizeof nb, "Task-%llu", (unsigned long long)t->id);
      name = nb;
    }
    if (f->state == FUT_FINISHED)
      snprintf(buf, n, "<Task finished name='%s' %s=%d (%s)>", name,
               f->code >= 0 ? "result" : "exception", f->code,
               f->code >= 0 ? "ok" : asyncio_errname(f->code));
    else
      snprintf(buf, n, "<Task %s name='%s' coro=%p>", states[f->state], name,
               (void *)(uintptr_t)t->fn);
  } else if (f->state == FUT_FINISHED) {
    snprintf(buf, n, "<Future finished %s=%d (%s)>", f->code >= 0 ? "result" : "exception",
             f->code, f->code >= 0 ? "ok" : asyncio_errname(f->code));
  } else {
    snprintf(buf, n, "<Future %s>", states[f->state]);
  }
  return buf;
}

static void release_cb(asyncio_future_t *f, asyncio__cb_t cb) {
  if (cb.fn != task_waiter_marker) asyncio__handle_release(f->loop, cb.arg);
}

void asyncio__future_unref(asyncio_future_t *f) {
  if (--f->refcnt) return;
  asyncio_loop_t *loop = f->loop;
  if (f->state == FUT_FINISHED && f->code < 0 && !f->retrieved && loop->closed != 2) {
    f->refcnt = 1; /* the handler may look at it */
    asyncio__loop_report(loop,
                         f->is_task ? "Task exception was never retrieved"
                                    : "Future exception was never retrieved",
                         f->code, f->msg, f);
    f->refcnt = 0;
  }
  asyncio__strfree(f->msg);
  /* Callbacks of a future that never completed give their handles back. */
  if (f->cb0_used) release_cb(f, f->cb0);
  for (uint32_t i = 0; i < f->ncbs; i++) release_cb(f, f->cbs[i]);
  asyncio__free(f->cbs, f->capcbs * sizeof *f->cbs);
  if (f->is_task) {
    asyncio__task_free_fields(TASK(f));
    if (!loop->closed && loop->ntask_free < TASK_FREE_MAX) {
      TASK(f)->next = loop->task_free;
      loop->task_free = TASK(f);
      loop->ntask_free++;
    } else {
      asyncio__free(f, sizeof(asyncio__task_t));
    }
  } else if (f->vt) {
    f->vt->free(f);
  } else {
    asyncio__free(f, sizeof *f);
  }
  asyncio__loop_object_gone(loop);
}

ASYNCIO_API int asyncio_future_free(asyncio_future_t *f) {
  if (!f || f->refcnt == 0) return -EINVAL;
  int rc = asyncio__check_owner(f->loop);
  if (rc) return rc;
  /* Everyone else holding it is a task waiting in asyncio_await: once this
   * reference goes, nothing could ever complete it. */
  if (!f->is_task && f->state == FUT_PENDING && f->task_waiters &&
      f->refcnt <= f->task_waiters + 1)
    return -EBUSY;
  asyncio__future_unref(f);
  return 0;
}

ASYNCIO_API bool asyncio_future_done(const asyncio_future_t *f) {
  return f && f->state != FUT_PENDING;
}

ASYNCIO_API bool asyncio_future_cancelled(const asyncio_future_t *f) {
  return f && f->state == FUT_CANCELLED;
}

ASYNCIO_API asyncio_loop_t *asyncio_future_get_loop(const asyncio_future_t *f) {
  return f ? f->loop : NULL;
}

/* Queues one callback: a waiting task's step, or a done-callback handle. */
static void schedule_cb(asyncio_future_t *f, asyncio__cb_t cb) {
  asyncio_loop_t *loop = f->loop;
  if (cb.fn == task_waiter_marker) {
    asyncio__task_t *t = cb.arg;
    f->task_waiters--;
    if (t->step.state == H_IDLE) asyncio__ready_push(loop, &t->step);
    return;
  }
  f->refcnt++; /* the handle's reference, dropped after the callback ran */
  asyncio__ready_push(loop, cb.arg);
}

static void schedule_callbacks(asyncio_future_t *f) {
  if (f->cb0_used) {
    f->cb0_used = 0;
    schedule_cb(f, f->cb0);
  }
  for (uint32_t i = 0; i < f->ncbs; i++) schedule_cb(f, f->cbs[i]);
  f->ncbs = 0;
}

void asyncio__future_run_done(asyncio__handle_t *h) {
  asyncio_future_t *f = h->aux;
  asyncio_done_fn fn = h->done_fn;
  void *arg = h->arg;
  h->state = H_RUNNING;
  fn(f, arg);
  asyncio__handle_release(f->loop, h);
  asyncio__future_unref(f);
}

void asyncio__future_complete(asyncio_future_t *f, int state, int code, void *value, char *msg) {
  f->state = (uint8_t)state;
  f->code = code;
  f->value = value;
  if (f->msg != msg) {
    asyncio__strfree(f->msg);
    f->msg = msg;
  }
  schedule_callbacks(f);
}

ASYNCIO_API int asyncio_future_set_result(asyncio_future_t *f, int code, void *value) {
  if (!f || code < 0) return -EINVAL;
  if (f->is_task) return -EPERM;
  int rc = asyncio__check_thread(f->loop);
  if (rc) return rc;
  if (f->state != FUT_PENDING) return ASYNCIO_EINVALIDSTATE;
  asyncio__future_complete(f, FUT_FINISHED, code, value, NULL);
  return 0;
}

ASYNCIO_API int asyncio_future_set_exception(asyncio_future_t *f, int error, const char *message) {
  if (!f || error >= 0) return -EINVAL;
  if (f->is_task) return -EPERM;
  int rc = asyncio__check_thread(f->loop);
  if (rc) return rc;
  if (f->state != FUT_PENDING) return ASYNCIO_EINVALIDSTATE;
  char *m = NULL;
  if (message && !(m = asyncio__strdup(message))) return -ENOMEM;
  f->retrieved = 0;
  asyncio__future_complete(f, FUT_FINISHED, error, NULL, m);
  return 0;
}

ASYNCIO_API int asyncio_future_result(asyncio_future_t *f, void **value) {
  if (!f) return -EINVAL;
  int rc = asyncio__check_owner(f->loop);
  if (rc) return rc;
  if (f->state == FUT_PENDING) return ASYNCIO_EINVALIDSTATE;
  f->retrieved = 1;
  if (f->state == FUT_CANCELLED) return -ECANCELED;
  if (f->code >= 0 && value) *value = f->value;
  return f->code;
}

ASYNCIO_API int asyncio_future_exception(asyncio_future_t *f) {
  if (!f) return -EINVAL;
  int rc = asyncio__check_owner(f->loop);
  if (rc) return rc;
  if (f->state == FUT_PENDING) return ASYNCIO_EINVALIDSTATE;
  f->retrieved = 1;
  if (f->state == FUT_CANCELLED) return -ECANCELED;
  return f->code < 0 ? f->code : 0;
}

ASYNCIO_API const char *asyncio_future_error_message(const asyncio_future_t *f) {
  return f ? f->msg : NULL;
}

int asyncio__future_cancel_base(asyncio_future_t *f, const char *msg) {
  f->retrieved = 1; /* Python clears __log_traceback on cancel */
  if (f->state != FUT_PENDING) return 0;
  asyncio__future_complete(f, FUT_CANCELLED, -ECANCELED, NULL, asyncio__strdup(msg));
  return 1;
}

ASYNCIO_API int asyncio_future_cancel(asyncio_future_t *f, const char *msg) {
  if (!f) return -EINVAL;
  int rc = asyncio__check_thread(f->loop);
  if (rc) return rc;
  if (f->is_task) return asyncio_task_cancel(f, msg);
  if (f->vt && f->vt->cancel) return f->vt->cancel(f, msg);
  return asyncio__future_cancel_base(f, msg);
}

int asyncio__future_add_cb(asyncio_future_t *f, asyncio_done_fn fn, void *arg) {
  asyncio__cb_t cb = {fn, arg};
  if (fn == task_waiter_marker && f->state != FUT_PENDING) return ASYNCIO_EINVALIDSTATE;
  asyncio__handle_t *h = NULL;
  if (fn != task_waiter_marker) {
    h = asyncio__handle_new(f->loop);
    if (!h) return -ENOMEM;
    h->kind = HK_DONE;
    h->done_fn = fn;
    h->arg = arg;
    h->aux = f;
    cb.arg = h;
    if (f->state != FUT_PENDING) {
      f->refcnt++;
      asyncio__ready_push(f->loop, h);
      return 0;
    }
  }
  if (!f->cb0_used && f->ncbs == 0) {
    f->cb0 = cb;
    f->cb0_used = 1;
    return 0;
  }
  if (f->ncbs == f->capcbs) {
    uint32_t cap = f->capcbs ? f->capcbs * 2 : 4;
    void *p = asyncio__realloc(f->cbs, f->capcbs * sizeof *f->cbs, cap * sizeof *f->cbs);
    if (!p) {
      if (h) asyncio__handle_release(f->loop, h);
      return -ENOMEM;
    }
    f->cbs = p;
    f->capcbs = cap;
  }
  f->cbs[f->ncbs++] = cb;
  return 0;
}

/* True if the registered callback cb is fn(arg). */
static bool cb_matches(asyncio__cb_t cb, asyncio_done_fn fn, void *arg) {
  if (cb.fn != fn) return false;
  if (fn == task_waiter_marker) return cb.arg == arg;
  return ((asyncio__handle_t *)cb.arg)->arg == arg;
}

ASYNCIO_API int asyncio_future_add_done_callback(asyncio_future_t *f, asyncio_done_fn fn,
                                                 void *arg) {
  if (!f || !fn) return -EINVAL;
  int rc = asyncio__check_thread(f->loop);
  if (rc) return rc;
  return asyncio__future_add_cb(f, fn, arg);
}

ASYNCIO_API int asyncio_future_remove_done_callback(asyncio_future_t *f, asyncio_done_fn fn,
                                                    void *arg) {
  if (!f || !fn) return -EINVAL;
  int rc = asyncio__check_thread(f->loop);
  if (rc && rc != ASYNCIO_ECLOSED) return rc;
  int removed = 0;
  uint32_t j = 0;
  for (uint32_t i = 0; i < f->ncbs; i++) {
    if (cb_matches(f->cbs[i], fn, arg)) {
      release_cb(f, f->cbs[i]);
      removed++;
    } else
      f->cbs[j++] = f->cbs[i];
  }
  f->ncbs = j;
  if (f->cb0_used && cb_matches(f->cb0, fn, arg)) {
    release_cb(f, f->cb0);
    removed++;
    f->cb0_used = 0;
    /* Keep registration order: the oldest remaining callback moves inline. */
    if (f->ncbs) {
      f->cb0 = f->cbs[0];
      f->cb0_used = 1;
      memmove(f->cbs, f->cbs + 1, (f->ncbs - 1) * sizeof *f->cbs);
      f->ncbs--;
    }
  }
  return removed;
}

/* ---- await ----------------------------------------------------------------- */

void asyncio__future_remove_waiter(asyncio_future_t *f, asyncio__task_t *t) {
  if (asyncio_future_remove_done_callback(f, task_waiter_marker, t) > 0) f->task_waiters--;
}

ASYNCIO_API int asyncio_await(asyncio_future_t *f, void **value) {
  asyncio_loop_t *loop = asyncio__running_loop;
  asyncio__task_t *t = loop ? loop->current : NULL;
  if (!t) return ASYNCIO_ENOTASK;
  if (!f) return -EINVAL;
  if (&t->f == f) return -EDEADLK;
  if (f->loop != loop) return -EINVAL;
  if (f->state == FUT_PENDING) {
    /* As Future.__await__: only a pending future suspends, so awaiting a done
     * one is not a cancellation point. */
    int rc = asyncio__future_add_cb(f, task_waiter_marker, t);
    if (rc) return rc;
    f->task_waiters++;
    t->fut_waiter = asyncio_future_ref(f);
    asyncio__task_suspend(t);
    t->fut_waiter = NULL;
    if (f->state == FUT_PENDING) {
      /* Woken without the future completing: only loop teardown does that. */
      asyncio__future_remove_waiter(f, t);
      asyncio__future_unref(f);
      return -ECANCELED;
    }
    /* As Task.__wakeup: the result is fetched (so an error counts as
     * retrieved) and then a pending cancellation request takes precedence. */
    int res = asyncio_future_result(f, value);
    asyncio__future_unref(f);
    if (t->must_cancel) {
      t->must_cancel = 0;
      return -ECANCELED;
    }
    return res;
  }
  return asyncio_future_result(f, value);
}
