/*
 * taskgroups.c - asyncio.TaskGroup and its error group (Python:
 * Lib/asyncio/taskgroups.py, ExceptionGroup).
 *
 * State, as in TaskGroup: `exiting` once exit has started, `exited` once it
 * has returned, `aborting` once the children have been cancelled (a child or
 * the body failed, the parent was cancelled, or cancel() was called), and
 * `parent_cancel_requested` once the group itself has cancelled its parent -
 * a cancellation exit must undo with Task.uncancel().
 *
 * Each child has a record (`tg_child_t`) that is the argument of its done
 * callback.  Records of pending children form a doubly-linked list, so a
 * child that finishes leaves in O(1) and a long-lived group (a supervisor
 * spawning a task per connection) holds nothing for finished children.  A
 * record whose child failed moves to the error list and keeps its task
 * reference until the group is freed: the error group is that list, so
 * recording an error never allocates.  Records come from chunks owned by the
 * group and are recycled.
 *
 * Invariants: npending counts the records on the pending list; every pending
 * record holds a reference to its task and has exactly one done callback
 * registered (or scheduled) on it; once exit returns, npending == 0 and no
 * callback refers to the group any more.
 *
 * Python's TaskGroup treats KeyboardInterrupt and SystemExit specially (it
 * stops collecting and re-raises them as they are, gh-135736).  C has no
 * such out-of-band exceptions: a signal never unwinds a task, asyncio_run
 * turns SIGINT into a cancellation of the main task, and an error code such
 * as -EINTR returned by a child is an ordinary error collected in the group.
 * So there is no "base error" path here.
 */
#include "internal.h"

typedef struct tg_child {
  struct tg_child *prev, *next; /* the pending list; next also links the free list */
  struct tg_child *err_next;    /* the error list, in the order children failed */
  asyncio_taskgroup_t *tg;
  asyncio_task_t *task; /* a reference */
  int code;             /* the error, on the error list */
  uint8_t body;         /* the body's error entry (embedded in the group) */
} tg_child_t;

typedef struct tg_chunk {
  struct tg_chunk *next;
  size_t n;
  tg_child_t recs[];
} tg_chunk_t;

struct asyncio_error_group {
  tg_child_t *head, *tail;
  size_t count;
  tg_child_t *cursor; /* the entry last returned by get, for O(1) walks */
  size_t cursor_i;
};

struct asyncio_taskgroup {
  asyncio_loop_t *loop;
  asyncio__task_t *parent; /* a reference until free */
  tg_child_t *pending;
  size_t npending;
  tg_child_t *free_recs;
  tg_chunk_t *chunks;
  size_t nrecs; /* records in all chunks */
  asyncio_future_t *on_completed; /* exit waits on it; set when npending reaches 0 */
  asyncio_error_group_t errors;
  tg_child_t body_err;
  uint8_t exiting, exited, aborting, parent_cancel_requested;
};

/* ---- records -------------------------------------------------------------- */

static tg_child_t *rec_get(asyncio_taskgroup_t *tg) {
  if (!tg->free_recs) {
    size_t n = tg->nrecs < 4 ? 4 : tg->nrecs > 256 ? 256 : tg->nrecs;
    tg_chunk_t *c = asyncio__alloc(sizeof *c + n * sizeof(tg_child_t));
    if (!c) return NULL;
    c->n = n;
    c->next = tg->chunks;
    tg->chunks = c;
    tg->nrecs += n;
    for (size_t i = n; i-- > 0;) {
      c->recs[i].next = tg->free_recs;
      tg->free_recs = &c->recs[i];
    }
  }
  tg_child_t *r = tg->free_recs;
  tg->free_recs = r->next;
  memset(r, 0, sizeof *r);
  r->tg = tg;
  return r;
}

static void rec_put(asyncio_taskgroup_t *tg, tg_child_t *r) {
  r->task = NULL;
  r->next = tg->free_recs;
  tg->free_recs = r;
}

static void pending_unlink(asyncio_taskgroup_t *tg, tg_child_t *r) {
  if (r->prev)
    r->prev->next = r->next;
  else
    tg->pending = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
  tg->npending--;
}

static void error_append(asyncio_taskgroup_t *tg, tg_child_t *r) {
  asyncio_error_group_t *g = &tg->errors;
  r->err_next = NULL;
  if (g->tail)
    g->tail->err_next = r;
  else
    g->head = r;
  g->tail = r;
  g->count++;
}

/* ---- the group -------------------------------------------------------------- */

/* TaskGroup._abort: cancels every child still pending. */
static void tg_abort(asyncio_taskgroup_t *tg) {
  tg->aborting = 1;
  for (tg_child_t *r = tg->pending; r; r = r->next)
    if (r->task->state == FUT_PENDING) asyncio_task_cancel(r->task, NULL);
}

/* TaskGroup._on_task_done. */
static void on_task_done(asyncio_future_t *task, void *arg) {
  tg_child_t *r = arg;
  asyncio_taskgroup_t *tg = r->tg;
  pending_unlink(tg, r);
  if (tg->on_completed && tg->npending == 0 && tg->on_completed->state == FUT_PENDING)
    asyncio_future_set_result(tg->on_completed, 0, NULL);
  int err = task->state == FUT_CANCELLED ? 0 : asyncio_future_exception(task);
  if (err == 0) {
    asyncio__future_unref(task); /* the done callback still holds one */
    rec_put(tg, r);
    return;
  }
  r->code = err;
  error_append(tg, r);
  if (tg->parent->f.state != FUT_PENDING) {
    /* Only reachable if the parent returned without exiting the group. */
    asyncio__loop_report(tg->loop,
                         "TaskGroup child failed but the group's parent task is already done",
                         err, task->msg, task);
    return;
  }
  if (!tg->aborting && !tg->parent_cancel_requested) {
    /* Interrupt whatever the body is waiting for; exit undoes this. */
    tg_abort(tg);
    tg->parent_cancel_requested = 1;
    asyncio_task_cancel(&tg->parent->f, NULL);
  }
}

ASYNCIO_API int asyncio_taskgroup_enter(asyncio_taskgroup_t **out) {
  if (!out) return -EINVAL;
  *out = NULL;
  asyncio_loop_t *loop = asyncio__running_loop;
  asyncio__task_t *t = loop ? loop->current : NULL;
  if (!t) return ASYNCIO_ENOTASK;
  asyncio_taskgroup_t *tg = asyncio__calloc(sizeof *tg);
  if (!tg) return -ENOMEM;
  tg->loop = loop;
  tg->parent = TASK(asyncio_future_ref(&t->f));
  tg->body_err.tg = tg;
  tg->body_err.body = 1;
  *out = tg;
  return 0;
}

ASYNCIO_API int asyncio_taskgroup_create_task(asyncio_taskgroup_t *tg, asyncio_task_t **out,
                                              asyncio_coro_fn fn, void *arg,
                                              const asyncio_task_options_t *options) {
  if (out) *out = NULL;
  if (!tg || !fn) return -EINVAL;
  asyncio_loop_t *loop = tg->loop;
  int rc = asyncio__check_thread(loop);
  if (rc) return rc;
  if (tg->exited || (tg->exiting && tg->npending == 0)) return ASYNCIO_EINVALIDSTATE; /* finished */
  if (tg->aborting) return ASYNCIO_EINVALIDSTATE; /* shutting down */
  tg_child_t *r = rec_get(tg);
  if (!r) return -ENOMEM;
  /*
   * The done callback needs a pooled handle.  It is taken out of the pool
   * now and put back just before the callback is added: the pool is LIFO,
   * so add_cb gets this very handle back and cannot fail after the task
   * (which may already have run, eagerly) exists.
   */
  asyncio__handle_t *reserve = asyncio__handle_new(loop);
  if (!reserve) {
    rec_put(tg, r);
    return -ENOMEM;
  }
  asyncio_task_t *task;
  rc = asyncio_loop_create_task(loop, &task, fn, arg, options);
  asyncio__handle_release(loop, reserve);
  if (rc) {
    rec_put(tg, r);
    return rc;
  }
  r->task = task;
  r->next = tg->pending;
  if (r->next) r->next->prev = r;
  tg->pending = r;
  tg->npending++;
  /* Always through the callback, even if the task is already done (it ran
   * eagerly): a failure then cancels the parent only on the next iteration,
   * never inside create_task (gh-128550). */
  rc = asyncio__future_add_cb(task, on_task_done, r);
  if (rc) {
    /* Not reachable with the reservation above; never leave a child the
     * group does not watch. */
    pending_unlink(tg, r);
    asyncio_task_cancel(task, NULL);
    asyncio__future_unref(task);
    rec_put(tg, r);
    return rc;
  }
  /* An eager child may have shut the group down while it ran (gh-155418). */
  if (tg->aborting && task->state == FUT_PENDING) asyncio_task_cancel(task, NULL);
  if (out) *out = asyncio_future_ref(task);
  return 0;
}

ASYNCIO_API int asyncio_taskgroup_exit(asyncio_taskgroup_t *tg, int rc) {
  if (!tg) return -EINVAL;
  if (tg->exiting) return ASYNCIO_EINVALIDSTATE;
  asyncio_loop_t *loop = asyncio__running_loop;
  asyncio__task_t *me = loop ? loop->current : NULL;
  if (!me) return ASYNCIO_ENOTASK;
  if (me != tg->parent) return -EPERM;
  tg->exiting = 1;
  bool propagate_cancel = rc == -ECANCELED;
  bool pending_cancel = false;
  /* The body was cancelled or failed: the children must not outlive it. */
  if (rc < 0 && !tg->aborting) tg_abort(tg);
  /*
   * Wait for every child.  The wait may be cancelled any number of times
   * (the parent cancelled from outside, or by the group itself when a child
   * fails); each time the children are cancelled if they were not already,
   * and the wait goes on.  If no future can be allocated, the wait degrades
   * to yielding once per loop iteration (sleep(0)), which allocates nothing.
   */
  while (tg->npending) {
    asyncio_future_t *fut;
    int w;
    if (asyncio_future_new(&fut, loop) == 0) {
      tg->on_completed = fut;
      w = asyncio_await(fut, NULL);
      tg->on_completed = NULL;
      asyncio__future_unref(fut);
    } else {
      w = asyncio_sleep(0);
    }
    if (w == -ECANCELED) {
      pending_cancel = true;
      if (!tg->aborting) {
        propagate_cancel = true;
        tg_abort(tg);
      }
    }
  }
  tg->exited = 1;
  if (tg->parent_cancel_requested) {
    /* The group's own cancellation of its parent is withdrawn here. */
    if (asyncio_task_uncancel(&me->f) == 0)
      propagate_cancel = false;
    else if (!propagate_cancel)
      propagate_cancel = pending_cancel; /* the rest is not ours (gh-155433) */
  }
  /* Errors of children take priority over propagating a cancellation. */
  if (propagate_cancel && tg->errors.count == 0) return -ECANCELED;
  if (rc < 0 && rc != -ECANCELED) {
    tg->body_err.task = &me->f;
    tg->body_err.code = rc;
    error_append(tg, &tg->body_err);
  }
  if (tg->errors.count) {
    /*
     * An outside cancellation stays pending: withdraw and re-request it so
     * the count is unchanged and the next suspension point delivers it.
     */
    if (asyncio_task_cancelling(&me->f) > 0) {
      asyncio_task_uncancel(&me->f);
      asyncio_task_cancel(&me->f, NULL);
    }
    return ASYNCIO_EEXCEPTIONGROUP;
  }
  return rc >= 0 ? rc : 0;
}

ASYNCIO_API int asyncio_taskgroup_cancel(asyncio_taskgroup_t *tg) {
  if (!tg) return -EINVAL;
  if (tg->exited || (tg->exiting && tg->npending == 0)) return 0;
  int rc = asyncio__check_thread(tg->loop);
  if (rc) return rc;
  if (!tg->aborting) {
    tg_abort(tg);
    if (!tg->parent_cancel_requested) {
      tg->parent_cancel_requested = 1;
      asyncio_task_cancel(&tg->parent->f, NULL);
    }
  }
  return 0;
}

ASYNCIO_API int asyncio_taskgroup_free(asyncio_taskgroup_t *tg) {
  if (!tg) return 0;
  asyncio_loop_t *loop = tg->loop; /* alive: the parent reference keeps it */
  int rc = asyncio__check_owner(loop);
  if (rc) return rc;
  if (tg->npending && !loop->closed) return -EBUSY;
  /* Only on a closed loop: children destroyed pending never call back. */
  for (tg_child_t *r = tg->pending, *n; r; r = n) {
    n = r->next;
    asyncio__future_unref(r->task);
  }
  for (tg_child_t *r = tg->errors.head; r; r = r->err_next)
    if (!r->body) asyncio__future_unref(r->task);
  for (tg_chunk_t *c = tg->chunks, *n; c; c = n) {
    n = c->next;
    asyncio__free(c, sizeof *c + c->n * sizeof(tg_child_t));
  }
  asyncio__future_unref(&tg->parent->f);
  asyncio__free(tg, sizeof *tg);
  return 0;
}

/* ---- the error group ---------------------------------------------------------- */

ASYNCIO_API asyncio_error_group_t *asyncio_taskgroup_errors(asyncio_taskgroup_t *tg) {
  return tg ? &tg->errors : NULL;
}

ASYNCIO_API size_t asyncio_error_group_count(const asyncio_error_group_t *g) {
  return g ? g->count : 0;
}

ASYNCIO_API int asyncio_error_group_get(asyncio_error_group_t *g, size_t i,
                                        asyncio_error_entry_t *e) {
  if (!g || !e) return -EINVAL;
  if (i >= g->count) return -ERANGE;
  tg_child_t *r = g->head;
  size_t k = 0;
  if (g->cursor && g->cursor_i <= i) {
    r = g->cursor;
    k = g->cursor_i;
  }
  for (; k < i; k++) r = r->err_next;
  g->cursor = r;
  g->cursor_i = i;
  e->task = r->task;
  e->task_name = asyncio_task_get_name(r->task);
  e->error = r->code;
  e->message = r->body ? NULL : asyncio_future_error_message(r->task);
  e->body = r->body;
  return 0;
}
