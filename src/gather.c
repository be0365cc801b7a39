/*
 * gather.c - asyncio.gather and asyncio.shield (Python: Lib/asyncio/tasks.py,
 * gather(), _GatheringFuture, shield()).
 *
 * The gathering future embeds a plain future as its first member (so it is
 * awaited, freed and inspected like any future) and sets the future's vt:
 * its cancel is _GatheringFuture.cancel (cancel every child that is still
 * pending; the gather itself completes only when its children have), and its
 * free drops the children.
 *
 * Invariants:
 *  - the gather holds one reference to each child (entry) until it is freed,
 *    so per-item outcomes stay readable;
 *  - each registered child callback holds one reference to the gather,
 *    dropped when it runs, so a callback already on the ready queue never
 *    sees a freed gather;
 *  - the outcome follows _GatheringFuture's _done_callback: without
 *    return_exceptions the first child error (a child cancelled on its own
 *    counts as -ECANCELED) completes the gather at once and the others keep
 *    running; otherwise the gather completes when the last child does, with
 *    the number of children that failed; either way a gather that was
 *    cancelled completes with -ECANCELED even if every child swallowed it.
 *
 * Shield: an outer plain future mirrors the inner one.  A link object joins
 * the two callbacks (inner done -> copy the outcome unless the outer was
 * cancelled; outer done -> unhook from the inner) and holds a reference to
 * both futures until both callbacks are accounted for.
 */
#include <stdlib.h>

#include "internal.h"

/* ---- gather ----------------------------------------------------------------- */

typedef struct gather {
  asyncio_future_t f;   /* first: what the caller awaits */
  size_t n;             /* entries (a future listed twice counts twice) */
  size_t nfinished;     /* child callbacks that ran */
  uint8_t return_exceptions;
  uint8_t cancel_requested; /* _GatheringFuture._cancel_requested */
  uint8_t dead;         /* creation failed: queued callbacks only drop their reference */
  asyncio_future_t *children[];
} gather_t;

static int gather_cancel(asyncio_future_t *f, const char *msg);
static void gather_free(asyncio_future_t *f);

static const asyncio__future_vt_t gather_vt = {gather_cancel, gather_free};

static gather_t *as_gather(const asyncio_future_t *f) {
  return f && f->refcnt && f->vt == &gather_vt ? (gather_t *)f : NULL;
}

static void gather_free(asyncio_future_t *f) {
  gather_t *g = (gather_t *)f;
  for (size_t i = 0; i < g->n; i++)
    if (g->children[i]) asyncio__future_unref(g->children[i]);
  asyncio__free(g, sizeof *g + g->n * sizeof *g->children);
}

/* outer.set_exception(): the message (nullable) is copied if memory allows. */
static void gather_fail(gather_t *g, int err, const char *msg) {
  g->f.retrieved = 0;
  asyncio__future_complete(&g->f, FUT_FINISHED, err, NULL, asyncio__strdup(msg));
}

/* _GatheringFuture's _done_callback for one child. */
static void gather_on_child(gather_t *g, asyncio_future_t *child) {
  g->nfinished++;
  if (g->f.state != FUT_PENDING) {
    /* The outcome is already decided: the child's error counts as seen. */
    if (child->state != FUT_CANCELLED) child->retrieved = 1;
    return;
  }
  if (!g->return_exceptions) {
    if (child->state == FUT_CANCELLED) {
      gather_fail(g, -ECANCELED, child->msg);
      return;
    }
    if (child->code < 0) {
      child->retrieved = 1;
      gather_fail(g, child->code, child->msg);
      return;
    }
  }
  if (g->nfinished < g->n) return;
  int nerr = 0;
  for (size_t i = 0; i < g->n; i++) {
    asyncio_future_t *c = g->children[i];
    c->retrieved = 1;
    if (c->state == FUT_CANCELLED || c->code < 0) nerr++;
  }
  if (g->cancel_requested)
    gather_fail(g, -ECANCELED, child->state == FUT_CANCELLED ? child->msg : NULL);
  else
    asyncio__future_complete(&g->f, FUT_FINISHED, nerr, NULL, NULL);
}

static void gather_child_done(asyncio_future_t *child, void *arg) {
  gather_t *g = arg;
  if (!g->dead) gather_on_child(g, child);
  asyncio__future_unref(&g->f); /* the callback's reference */
}

static int gather_cancel(asyncio_future_t *f, const char *msg) {
  gather_t *g = (gather_t *)f;
  if (f->state != FUT_PENDING) return 0;
  int ret = 0;
  for (size_t i = 0; i < g->n; i++)
    if (asyncio_future_cancel(g->children[i], msg) == 1) ret = 1;
  if (ret) g->cancel_requested = 1;
  return ret;
}

static gather_t *gather_alloc(asyncio_loop_t *loop, size_t n, const asyncio_gather_options_t *o) {
  if (n > (SIZE_MAX - sizeof(gather_t)) / sizeof(asyncio_future_t *)) return NULL;
  gather_t *g = asyncio__calloc(sizeof *g + n * sizeof *g->children);
  if (!g) return NULL;
  asyncio__future_init(&g->f, loop);
  g->f.vt = &gather_vt;
  g->n = n;
  g->return_exceptions = o && o->return_exceptions;
  return g;
}

/*
 * Registers the child callbacks.  On failure nothing the caller can see has
 * happened: callbacks still registered are removed, those already queued
 * (children that were done) find the gather dead, and the gather goes away
 * with the last of them.
 */
static int gather_start(gather_t *g) {
  if (g->n == 0) {
    asyncio__future_complete(&g->f, FUT_FINISHED, 0, NULL, NULL);
    return 0;
  }
  for (size_t i = 0; i < g->n; i++) {
    g->f.refcnt++;
    int rc = asyncio__future_add_cb(g->children[i], gather_child_done, g);
    if (rc) {
      g->f.refcnt--;
      g->dead = 1;
      for (size_t j = 0; j < i; j++)
        g->f.refcnt -= (uint32_t)asyncio_future_remove_done_callback(g->children[j],
                                                                    gather_child_done, g);
      return rc;
    }
  }
  return 0;
}

ASYNCIO_API int asyncio_gather(asyncio_future_t **out, asyncio_future_t *const *futs, size_t n,
                               const asyncio_gather_options_t *options) {
  if (!out) return -EINVAL;
  *out = NULL;
  if (n && !futs) return -EINVAL;
  asyncio_loop_t *loop = n ? NULL : asyncio__running_loop;
  for (size_t i = 0; i < n; i++) {
    if (!futs[i] || !futs[i]->refcnt) return -EINVAL;
    if (!loop) loop = futs[i]->loop;
    if (futs[i]->loop != loop) return -EINVAL; /* Python: ValueError, futures from other loops */
  }
  if (!loop) return ASYNCIO_ENOLOOP;
  int rc = asyncio__check_thread(loop);
  if (rc) return rc;
  gather_t *g = gather_alloc(loop, n, options);
  if (!g) return -ENOMEM;
  for (size_t i = 0; i < n; i++) g->children[i] = asyncio_future_ref(futs[i]);
  rc = gather_start(g);
  if (rc) {
    asyncio__future_unref(&g->f);
    return rc;
  }
  *out = &g->f;
  return 0;
}

ASYNCIO_API int asyncio_gather_coros(asyncio_future_t **out, const asyncio_coro_call_t *calls,
                                     size_t n, const asyncio_gather_options_t *options) {
  if (!out) return -EINVAL;
  *out = NULL;
  if (n && !calls) return -EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!calls[i].fn) return -EINVAL;
  asyncio_loop_t *loop = asyncio__running_loop;
  if (!loop) return ASYNCIO_ENOLOOP;
  int rc = asyncio__check_thread(loop);
  if (rc) return rc;
  gather_t *g = gather_alloc(loop, n, options);
  if (!g) return -ENOMEM;
  const asyncio_task_options_t *to = options ? options->task_options : NULL;
  for (size_t i = 0; i < n && rc == 0; i++)
    rc = asyncio_loop_create_task(loop, &g->children[i], calls[i].fn, calls[i].arg, to);
  if (rc == 0) rc = gather_start(g);
  if (rc) {
    /* Undo: the tasks created so far are cancelled before their first step,
     * so none of the coroutines ever runs. */
    for (size_t i = 0; i < n && g->children[i]; i++) asyncio_task_cancel(g->children[i], NULL);
    g->dead = 1;
    asyncio__future_unref(&g->f);
    return rc;
  }
  *out = &g->f;
  return 0;
}

ASYNCIO_API bool asyncio_future_is_gather(const asyncio_future_t *future) {
  return as_gather(future) != NULL;
}

ASYNCIO_API ssize_t asyncio_gather_size(const asyncio_future_t *gather) {
  gather_t *g = as_gather(gather);
  return g ? (ssize_t)g->n : -EINVAL;
}

ASYNCIO_API asyncio_future_t *asyncio_gather_child(const asyncio_future_t *gather, size_t i) {
  gather_t *g = as_gather(gather);
  return g && i < g->n ? g->children[i] : NULL;
}

ASYNCIO_API int asyncio_gather_result(asyncio_future_t *gather, size_t i, void **value) {
  gather_t *g = as_gather(gather);
  if (!g || i >= g->n) return -EINVAL;
  return asyncio_future_result(g->children[i], value);
}

/* ---- shield ------------------------------------------------------------------- */

typedef struct shield_link {
  asyncio_future_t *inner, *outer; /* one reference each */
  int pending;                     /* callbacks not yet accounted for */
} shield_link_t;

static void shield_release(shield_link_t *l) {
  if (--l->pending) return;
  asyncio__future_unref(l->inner);
  asyncio__future_unref(l->outer);
  asyncio__free(l, sizeof *l);
}

/* shield's _inner_done_callback: the outer takes the inner's outcome. */
static void shield_inner_done(asyncio_future_t *inner, void *arg) {
  shield_link_t *l = arg;
  asyncio_future_t *outer = l->outer;
  if (outer->state == FUT_PENDING) {
    if (inner->state == FUT_CANCELLED) {
      asyncio__future_cancel_base(outer, NULL);
    } else {
      inner->retrieved = 1;
      if (inner->code < 0) {
        outer->retrieved = 0;
        asyncio__future_complete(outer, FUT_FINISHED, inner->code, NULL,
                                 asyncio__strdup(inner->msg));
      } else {
        asyncio__future_complete(outer, FUT_FINISHED, inner->code, inner->value, NULL);
      }
    }
  } else if (inner->state != FUT_CANCELLED) {
    inner->retrieved = 1; /* nobody will look: do not report it */
  }
  shield_release(l);
}

/* shield's _outer_done_callback: stop listening to the inner future. */
static void shield_outer_done(asyncio_future_t *outer, void *arg) {
  (void)outer;
  shield_link_t *l = arg;
  if (asyncio_future_remove_done_callback(l->inner, shield_inner_done, l) > 0) shield_release(l);
  shield_release(l);
}

ASYNCIO_API int asyncio_shield(asyncio_future_t **out, asyncio_future_t *inner) {
  if (!out) return -EINVAL;
  *out = NULL;
  if (!inner || !inner->refcnt) return -EINVAL;
  int rc = asyncio__check_thread(inner->loop);
  if (rc) return rc;
  if (inner->state != FUT_PENDING) {
    *out = asyncio_future_ref(inner);
    return 0;
  }
  asyncio_future_t *outer;
  rc = asyncio_future_new(&outer, inner->loop);
  if (rc) return rc;
  shield_link_t *l = asyncio__alloc(sizeof *l);
  if (!l) {
    asyncio__future_unref(outer);
    return -ENOMEM;
  }
  l->inner = asyncio_future_ref(inner);
  l->outer = asyncio_future_ref(outer);
  l->pending = 2;
  rc = asyncio__future_add_cb(inner, shield_inner_done, l);
  if (rc == 0) {
    rc = asyncio__future_add_cb(outer, shield_outer_done, l);
    if (rc) asyncio_future_remove_done_callback(inner, shield_inner_done, l);
  }
  if (rc) {
    asyncio__future_unref(l->inner);
    asyncio__future_unref(l->outer);
    asyncio__free(l, sizeof *l);
    asyncio__future_unref(outer);
    return rc;
  }
  *out = outer;
  return 0;
}
