/*
 * wait.c - asyncio.wait and asyncio.as_completed (Python: Lib/asyncio/tasks.py,
 * wait(), _wait(), _release_waiter(), as_completed(), _AsCompletedIterator).
 *
 * Both register a done callback on every future and sleep on a private
 * waiter future that the callbacks (or the timeout timer) complete.  Neither
 * ever cancels the futures it watches, not even on timeout.
 *
 * Invariant shared by both: the state the callbacks point at lives on the
 * heap and counts the callbacks not yet run or removed (ncb).  When the
 * call returns (wait) or the iterator is freed (as_completed), every
 * callback still registered is removed; a callback already on the ready
 * queue cannot be removed, so the state goes only when ncb reaches 0.
 */
#include <math.h>
#include <stdlib.h>

#include "internal.h"

/* ---- wait ------------------------------------------------------------------- */

typedef struct wait_state {
  asyncio_future_t *waiter; /* completed to wake the caller; NULL once returned */
  size_t counter;           /* futures not yet done (_wait's counter) */
  size_t ncb;               /* callbacks registered and not yet run or removed */
  int return_when;
} wait_state_t;

static void wait_state_drop(wait_state_t *st) {
  if (!st->waiter && st->ncb == 0) asyncio__free(st, sizeof *st);
}

/* _release_waiter */
static void wait_release(wait_state_t *st) {
  if (st->waiter && st->waiter->state == FUT_PENDING)
    asyncio__future_complete(st->waiter, FUT_FINISHED, 0, NULL, NULL);
}

static void wait_timeout(void *arg) { wait_release(arg); }

/* _wait's _on_completion */
static void wait_on_completion(asyncio_future_t *f, void *arg) {
  wait_state_t *st = arg;
  st->ncb--;
  if (st->waiter) {
    st->counter--;
    bool failed = false;
    if (st->return_when == ASYNCIO_FIRST_EXCEPTION && f->state == FUT_FINISHED) {
      f->retrieved = 1; /* Python looks with f.exception() */
      failed = f->code < 0;
    }
    if (st->counter == 0 || st->return_when == ASYNCIO_FIRST_COMPLETED || failed)
      wait_release(st);
  }
  wait_state_drop(st);
}

ASYNCIO_API int asyncio_wait(asyncio_future_t *const *futs, size_t n, double timeout,
                             int return_when, bool *done) {
  asyncio_loop_t *loop = asyncio__running_loop;
  if (!loop || !loop->current) return ASYNCIO_ENOTASK;
  if (!futs || n == 0) return -EINVAL; /* Python: ValueError, empty set */
  if (return_when != ASYNCIO_ALL_COMPLETED && return_when != ASYNCIO_FIRST_COMPLETED &&
      return_when != ASYNCIO_FIRST_EXCEPTION)
    return -EINVAL;
  if (isnan(timeout)) return -EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!futs[i] || !futs[i]->refcnt || futs[i]->loop != loop || futs[i] == &loop->current->f)
      return -EINVAL;

  wait_state_t *st = asyncio__calloc(sizeof *st);
  if (!st) return -ENOMEM;
  int rc = asyncio_future_new(&st->waiter, loop);
  if (rc) {
    asyncio__free(st, sizeof *st);
    return rc;
  }
  st->counter = n;
  st->return_when = return_when;
  asyncio_handle_t timer = ASYNCIO_HANDLE_NONE;
  if (timeout < INFINITY)
    rc = asyncio_loop_call_later(loop, timeout > 0 ? timeout : 0, wait_timeout, st, &timer);
  size_t i = 0;
  for (; rc == 0 && i < n; i++) {
    rc = asyncio__future_add_cb(futs[i], wait_on_completion, st);
    if (rc == 0) st->ncb++;
  }
  if (rc == 0) rc = asyncio_await(st->waiter, NULL);
  /* finally: the timer and every callback not yet run go */
  asyncio_handle_cancel(timer);
  for (size_t j = 0; j < i; j++)
    st->ncb -= (size_t)asyncio_future_remove_done_callback(futs[j], wait_on_completion, st);
  asyncio__future_unref(st->waiter);
  st->waiter = NULL;
  wait_state_drop(st);
  if (rc < 0) return rc;
  int ndone = 0;
  for (size_t j = 0; j < n; j++) {
    bool d = futs[j]->state != FUT_PENDING;
    if (done) done[j] = d;
    ndone += d;
  }
  return ndone;
}

/* ---- as_completed ------------------------------------------------------------ */

typedef struct ac_entry {
  struct asyncio_as_completed *it;
  asyncio_future_t *fut; /* a reference until the iterator is freed */
} ac_entry_t;

struct asyncio_as_completed {
  asyncio_loop_t *loop;
  size_t n;
  size_t *queue;        /* indices of done futures in completion order, not yet handed out */
  size_t qhead, qtail;
  size_t todo;          /* futures still watched (_todo) */
  size_t left;          /* items next() will still hand out (_todo_left) */
  size_t ncb;           /* callbacks registered and not yet run or removed */
  asyncio_future_t *waiter; /* set while a task sleeps in next() */
  asyncio_handle_t timer;
  uint8_t timed_out;
  uint8_t freed;
  ac_entry_t entries[];
};

static void ac_release(asyncio_as_completed_t *it) {
  if (!it->freed || it->ncb) return;
  asyncio__free(it->queue, it->n * sizeof *it->queue);
  asyncio__free(it, sizeof *it + it->n * sizeof *it->entries);
}

static void ac_wake(asyncio_as_completed_t *it) {
  if (it->waiter && it->waiter->state == FUT_PENDING)
    asyncio__future_complete(it->waiter, FUT_FINISHED, 0, NULL, NULL);
}

/* _handle_completion */
static void ac_on_done(asyncio_future_t *f, void *arg) {
  (void)f;
  ac_entry_t *e = arg;
  asyncio_as_completed_t *it = e->it;
  it->ncb--;
  if (!it->freed && !it->timed_out) {
    it->queue[it->qtail++] = (size_t)(e - it->entries);
    if (--it->todo == 0) {
      asyncio_handle_cancel(it->timer);
      it->timer = ASYNCIO_HANDLE_NONE;
    }
    ac_wake(it);
  }
  ac_release(it);
}

/* _handle_timeout: stop watching; every remaining next() raises TimeoutError. */
static void ac_on_timeout(void *arg) {
  asyncio_as_completed_t *it = arg;
  it->timer = ASYNCIO_HANDLE_NONE;
  it->timed_out = 1;
  for (size_t i = 0; i < it->n; i++)
    it->ncb -= (size_t)asyncio_future_remove_done_callback(it->entries[i].fut, ac_on_done,
                                                           &it->entries[i]);
  it->todo = 0;
  ac_wake(it);
}

ASYNCIO_API int asyncio_as_completed_new(asyncio_as_completed_t **out,
                                         asyncio_future_t *const *futs, size_t n,
                                         double timeout) {
  if (!out) return -EINVAL;
  *out = NULL;
  if ((n && !futs) || isnan(timeout)) return -EINVAL;
  asyncio_loop_t *loop = n ? futs[0] ? futs[0]->loop : NULL : asyncio__running_loop;
  for (size_t i = 0; i < n; i++)
    if (!futs[i] || !futs[i]->refcnt || futs[i]->loop != loop) return -EINVAL;
  if (loop) {
    int rc = asyncio__check_thread(loop);
    if (rc) return rc;
  }
  if (n > (SIZE_MAX - sizeof(asyncio_as_completed_t)) / sizeof(ac_entry_t)) return -ENOMEM;
  asyncio_as_completed_t *it = asyncio__calloc(sizeof *it + n * sizeof *it->entries);
  if (!it) return -ENOMEM;
  it->loop = loop;
  it->n = it->todo = it->left = n;
  if (n && !(it->queue = asyncio__alloc(n * sizeof *it->queue))) {
    asyncio__free(it, sizeof *it + n * sizeof *it->entries);
    return -ENOMEM;
  }
  int rc = 0;
  if (n && timeout < INFINITY)
    rc = asyncio_loop_call_later(loop, timeout > 0 ? timeout : 0, ac_on_timeout, it, &it->timer);
  size_t i = 0;
  for (; rc == 0 && i < n; i++) {
    it->entries[i].it = it;
    it->entries[i].fut = futs[i];
    rc = asyncio__future_add_cb(futs[i], ac_on_done, &it->entries[i]);
    if (rc == 0) it->ncb++;
  }
  if (rc) {
    /* Nothing handed out yet: undo as asyncio_as_completed_free would. */
    asyncio_handle_cancel(it->timer);
    for (size_t j = 0; j < i; j++)
      it->ncb -= (size_t)asyncio_future_remove_done_callback(futs[j], ac_on_done, &it->entries[j]);
    it->freed = 1;
    ac_release(it);
    return rc;
  }
  for (i = 0; i < n; i++) asyncio_future_ref(futs[i]);
  *out = it;
  return 0;
}

ASYNCIO_API ssize_t asyncio_as_completed_remaining(const asyncio_as_completed_t *it) {
  return it ? (ssize_t)it->left : -EINVAL;
}

ASYNCIO_API int asyncio_as_completed_next(asyncio_as_completed_t *it, asyncio_future_t **next) {
  if (!it || !next) return -EINVAL;
  *next = NULL;
  if (it->left == 0) return 0; /* StopAsyncIteration */
  asyncio_loop_t *loop = asyncio__running_loop;
  if (!loop || !loop->current) return ASYNCIO_ENOTASK;
  if (loop != it->loop) return -EINVAL;
  if (it->waiter) return -EBUSY; /* another task is already waiting in next() */
  while (it->qhead == it->qtail && !it->timed_out) {
    int rc = asyncio_future_new(&it->waiter, loop);
    if (rc) return rc;
    rc = asyncio_await(it->waiter, NULL);
    asyncio__future_unref(it->waiter);
    it->waiter = NULL;
    if (rc < 0) return rc; /* cancelled: nothing was consumed */
  }
  it->left--;
  if (it->qhead == it->qtail) return -ETIMEDOUT;
  *next = it->entries[it->queue[it->qhead++]].fut;
  return 1;
}

ASYNCIO_API int asyncio_as_completed_next_result(asyncio_as_completed_t *it, void **value) {
  if (!it) return -EINVAL;
  if (it->left == 0) return ASYNCIO_EINVALIDSTATE;
  asyncio_future_t *f;
  int rc = asyncio_as_completed_next(it, &f);
  if (rc < 0) return rc;
  return asyncio_future_result(f, value);
}

ASYNCIO_API int asyncio_as_completed_free(asyncio_as_completed_t *it) {
  if (!it) return -EINVAL;
  if (it->loop) {
    int rc = asyncio__check_owner(it->loop);
    if (rc) return rc;
  }
  if (it->waiter) return -EBUSY;
  asyncio_handle_cancel(it->timer);
  it->timer = ASYNCIO_HANDLE_NONE;
  for (size_t i = 0; i < it->n; i++) {
    asyncio_future_t *f = it->entries[i].fut;
    it->ncb -= (size_t)asyncio_future_remove_done_callback(f, ac_on_done, &it->entries[i]);
    asyncio__future_unref(f);
  }
  it->freed = 1;
  ac_release(it);
  return 0;
}
