/*
 * locks.c - synchronization primitives (Python: asyncio.locks and the
 * _LoopBoundMixin of asyncio.mixins): Lock, Event, Condition, Semaphore,
 * BoundedSemaphore, Barrier; and the waiter machinery queues.c shares.
 *
 * Waiters.  Python parks a task on a fresh Future appended to a deque.  Here
 * the future lives in the waiting call's frame, on the task's own stack
 * (asyncio__waiter_t), linked into an intrusive FIFO: waiting allocates
 * nothing.  Its reference count starts at 1 and the frame never drops that
 * reference, so the future is never freed; asyncio_await adds and removes its
 * own.  Because the task really awaits a future, Task.cancel() works exactly
 * as for any future: the waiter future is cancelled and the task resumes
 * with -ECANCELED; or, when the waiter had already been woken (completed)
 * before the task ran, the cancellation is delivered by asyncio_await on
 * resumption.  So a waiter ends in one of three states, which the code below
 * distinguishes just as Python does with fut.done() / fut.cancelled():
 * still queued and cancelled, woken, or woken and then cancelled.
 *
 * Invariants:
 * - A waiter is linked in at most one wait queue; the waiting call unlinks it
 *   (if the waker did not) before it returns, so a queue never points into a
 *   frame that has returned.
 * - busy counts tasks suspended inside a call on the object: _free refuses
 *   (-EBUSY) while it is non-zero, because those tasks touch the object when
 *   they resume, woken or not.
 * - When the bound loop is closed, tasks still waiting were destroyed without
 *   unwinding (their stacks are gone): every call first checks for that and
 *   forgets the waiters without touching them (sync_check returns 1).  The
 *   object holds one of loop->nobjects, so the loop struct outlives it.
 * - Fairness as Python 3.13: a Lock/Semaphore acquirer that finds no permit
 *   held but finds waiters not yet cancelled queues behind them; a waiter
 *   woken and then cancelled hands its wakeup on (Lock: wake the first
 *   waiter if the lock is still free; Semaphore: give the permit back and
 *   wake as many as there are permits; Condition: notify one other waiter).
 */
#include <limits.h>

#include "internal.h"

/* ---- shared: binding, wait queues, waiters ---------------------------------- */

int asyncio__sync_check(asyncio__sync_t *s) {
  asyncio_loop_t *loop = s->loop;
  if (!loop) return 0;
  if (UNLIKELY(loop->closed)) {
    s->busy = 0;
    return 1;
  }
  return asyncio__check_owner(loop);
}

int asyncio__sync_bind(asyncio__sync_t *s) {
  asyncio_loop_t *loop = asyncio__running_loop;
  if (!loop || !loop->current) return ASYNCIO_ENOTASK;
  if (LIKELY(s->loop == loop)) return 0;
  if (s->loop) return -EINVAL; /* Python: "is bound to a different event loop" */
  s->loop = loop;
  loop->nobjects++;
  return 0;
}

/* The common case inline: unbound, or bound to the loop running this call. */
static inline int sync_check(asyncio__sync_t *s) {
  if (LIKELY(!s->loop || s->loop == asyncio__running_loop)) return 0;
  return asyncio__sync_check(s);
}

void asyncio__sync_unbind(asyncio__sync_t *s) {
  if (s->loop) asyncio__loop_object_gone(s->loop);
  s->loop = NULL;
}

void asyncio__waitq_push(asyncio__waitq_t *q, asyncio__waiter_t *w) {
  w->next = NULL;
  w->prev = q->tail;
  if (q->tail)
    q->tail->next = w;
  else
    q->head = w;
  q->tail = w;
  w->linked = 1;
  q->n++;
}

void asyncio__waitq_remove(asyncio__waitq_t *q, asyncio__waiter_t *w) {
  if (!w->linked) return;
  if (w->prev)
    w->prev->next = w->next;
  else
    q->head = w->next;
  if (w->next)
    w->next->prev = w->prev;
  else
    q->tail = w->prev;
  w->prev = w->next = NULL;
  w->linked = 0;
  q->n--;
}

/* The waiters of a closed loop's destroyed tasks: dropped, never dereferenced. */
static void waitq_forget(asyncio__waitq_t *q) {
  q->head = q->tail = NULL;
  q->n = 0;
}

int asyncio__waiter_wait(asyncio__sync_t *s, asyncio__waiter_t *w) {
  s->busy++;
  int rc = asyncio_await(&w->f, NULL);
  /* A closed loop never resumes us, so the count is still ours to drop. */
  s->busy--;
  /* The cancel message, if any, was copied into the frame's future. */
  asyncio__strfree(w->f.msg);
  w->f.msg = NULL;
  return rc < 0 ? -ECANCELED : 0;
}

void asyncio__waiter_wake(asyncio__waiter_t *w) {
  if (w->f.state == FUT_PENDING) asyncio__future_complete(&w->f, FUT_FINISHED, 0, NULL, NULL);
}

/* Appends a waiter for the calling task and waits: 0 when woken, -ECANCELED. */
static int wait_on(asyncio__sync_t *s, asyncio__waitq_t *q, asyncio__waiter_t *w) {
  asyncio__waiter_init(w, s->loop);
  asyncio__waitq_push(q, w);
  int rc = asyncio__waiter_wait(s, w);
  asyncio__waitq_remove(q, w);
  return rc;
}

/* ---- Lock -------------------------------------------------------------------- */

struct asyncio_lock {
  asyncio__sync_t s;
  asyncio__waitq_t waiters;
  uint8_t locked;
};

static int lock_check(asyncio_lock_t *l) {
  int rc = sync_check(&l->s);
  if (rc == 1) {
    waitq_forget(&l->waiters);
    rc = 0;
  }
  return rc;
}

ASYNCIO_API int asyncio_lock_new(asyncio_lock_t **out) {
  if (!out) return -EINVAL;
  *out = asyncio__calloc(sizeof **out);
  return *out ? 0 : -ENOMEM;
}

ASYNCIO_API int asyncio_lock_free(asyncio_lock_t *l) {
  if (!l) return -EINVAL;
  int rc = lock_check(l);
  if (rc) return rc;
  if (l->waiters.n || l->s.busy) return -EBUSY;
  asyncio__sync_unbind(&l->s);
  asyncio__free(l, sizeof *l);
  return 0;
}

ASYNCIO_API bool asyncio_lock_locked(const asyncio_lock_t *l) { return l && l->locked; }

/* True when every queued waiter is cancelled (or there is none). */
static bool all_cancelled(const asyncio__waitq_t *q) {
  for (asyncio__waiter_t *w = q->head; w; w = w->next)
    if (!asyncio__waiter_cancelled(w)) return false;
  return true;
}

/* Lock._wake_up_first: the head waiter runs, unless it is already set to. */
static void lock_wake_first(asyncio_lock_t *l) {
  if (l->waiters.head) asyncio__waiter_wake(l->waiters.head);
}

ASYNCIO_API int asyncio_lock_acquire(asyncio_lock_t *l) {
  if (!l) return -EINVAL;
  int rc = lock_check(l);
  if (rc) return rc;
  /* Fair: a free lock is taken at once only when nobody is queued for it. */
  if (!l->locked && all_cancelled(&l->waiters)) {
    l->locked = 1;
    return 0;
  }
  if ((rc = asyncio__sync_bind(&l->s))) return rc;
  asyncio__waiter_t w;
  rc = wait_on(&l->s, &l->waiters, &w);
  if (rc < 0) {
    /* Keep the invariant: a free lock with waiters has its head woken. */
    if (!l->locked) lock_wake_first(l);
    return rc;
  }
  l->locked = 1;
  return 0;
}

ASYNCIO_API int asyncio_lock_release(asyncio_lock_t *l) {
  if (!l) return -EINVAL;
  int rc = lock_check(l);
  if (rc) return rc;
  if (!l->locked) return -EPERM; /* Python: RuntimeError('Lock is not acquired.') */
  l->locked = 0;
  lock_wake_first(l);
  return 0;
}

ASYNCIO_API int asyncio_lock_enter(asyncio_lock_t *l) { return asyncio_lock_acquire(l); }

ASYNCIO_API int asyncio_lock_exit(asyncio_lock_t *l, int rc) {
  int r = asyncio_lock_release(l);
  return r < 0 && rc >= 0 ? r : rc;
}

/* ---- Event ------------------------------------------------------------------ */

struct asyncio_event {
  asyncio__sync_t s;
  asyncio__waitq_t waiters;
  uint8_t value;
};

static int event_check(asyncio_event_t *e) {
  int rc = sync_check(&e->s);
  if (rc == 1) {
    waitq_forget(&e->waiters);
    rc = 0;
  }
  return rc;
}

ASYNCIO_API int asyncio_event_new(asyncio_event_t **out) {
  if (!out) return -EINVAL;
  *out = asyncio__calloc(sizeof **out);
  return *out ? 0 : -ENOMEM;
}

ASYNCIO_API int asyncio_event_free(asyncio_event_t *e) {
  if (!e) return -EINVAL;
  int rc = event_check(e);
  if (rc) return rc;
  if (e->waiters.n || e->s.busy) return -EBUSY;
  asyncio__sync_unbind(&e->s);
  asyncio__free(e, sizeof *e);
  return 0;
}

ASYNCIO_API bool asyncio_event_is_set(const asyncio_event_t *e) { return e && e->value; }

ASYNCIO_API int asyncio_event_set(asyncio_event_t *e) {
  if (!e) return -EINVAL;
  int rc = event_check(e);
  if (rc) return rc;
  if (!e->value) {
    e->value = 1;
    /* Woken waiters stay queued until they run (they unlink themselves). */
    for (asyncio__waiter_t *w = e->waiters.head; w; w = w->next) asyncio__waiter_wake(w);
  }
  return 0;
}

ASYNCIO_API int asyncio_event_clear(asyncio_event_t *e) {
  if (!e) return -EINVAL;
  int rc = event_check(e);
  if (rc) return rc;
  e->value = 0;
  return 0;
}

ASYNCIO_API int asyncio_event_wait(asyncio_event_t *e) {
  if (!e) return -EINVAL;
  int rc = event_check(e);
  if (rc) return rc;
  if (e->value) return 0;
  if ((rc = asyncio__sync_bind(&e->s))) return rc;
  asyncio__waiter_t w;
  return wait_on(&e->s, &e->waiters, &w);
}

/* ---- Condition -------------------------------------------------------------- */

struct asyncio_condition {
  asyncio__sync_t s;
  asyncio__waitq_t waiters;
  asyncio_lock_t *lock;
  uint8_t own_lock;
};

static int cond_check(asyncio_condition_t *c) {
  int rc = sync_check(&c->s);
  if (rc == 1) {
    waitq_forget(&c->waiters);
    rc = 0;
  }
  return rc;
}

ASYNCIO_API int asyncio_condition_new(asyncio_condition_t **out, asyncio_lock_t *lock) {
  if (!out) return -EINVAL;
  *out = NULL;
  asyncio_condition_t *c = asyncio__calloc(sizeof *c);
  if (!c) return -ENOMEM;
  if (!lock) {
    int rc = asyncio_lock_new(&lock);
    if (rc) {
      asyncio__free(c, sizeof *c);
      return rc;
    }
    c->own_lock = 1;
  }
  c->lock = lock;
  *out = c;
  return 0;
}

ASYNCIO_API int asyncio_condition_free(asyncio_condition_t *c) {
  if (!c) return -EINVAL;
  int rc = cond_check(c);
  if (rc) return rc;
  if (c->waiters.n || c->s.busy) return -EBUSY;
  if (c->own_lock) {
    if ((rc = lock_check(c->lock))) return rc;
    if (c->lock->waiters.n || c->lock->s.busy) return -EBUSY;
    asyncio_lock_free(c->lock);
  }
  asyncio__sync_unbind(&c->s);
  asyncio__free(c, sizeof *c);
  return 0;
}

ASYNCIO_API asyncio_lock_t *asyncio_condition_lock(asyncio_condition_t *c) {
  return c ? c->lock : NULL;
}

ASYNCIO_API int asyncio_condition_acquire(asyncio_condition_t *c) {
  return c ? asyncio_lock_acquire(c->lock) : -EINVAL;
}

ASYNCIO_API int asyncio_condition_release(asyncio_condition_t *c) {
  return c ? asyncio_lock_release(c->lock) : -EINVAL;
}

ASYNCIO_API bool asyncio_condition_locked(const asyncio_condition_t *c) {
  return c && c->lock->locked;
}

ASYNCIO_API int asyncio_condition_enter(asyncio_condition_t *c) {
  return asyncio_condition_acquire(c);
}

ASYNCIO_API int asyncio_condition_exit(asyncio_condition_t *c, int rc) {
  int r = asyncio_condition_release(c);
  return r < 0 && rc >= 0 ? r : rc;
}

/* Condition._notify: completes up to n waiters not yet woken, oldest first. */
static int cond_notify(asyncio_condition_t *c, int n) {
  int woken = 0;
  for (asyncio__waiter_t *w = c->waiters.head; w && woken < n; w = w->next) {
    if (!asyncio__waiter_done(w)) {
      asyncio__waiter_wake(w);
      woken++;
    }
  }
  return woken;
}

ASYNCIO_API int asyncio_condition_wait(asyncio_condition_t *c) {
  if (!c) return -EINVAL;
  int rc = cond_check(c);
  if (rc || (rc = lock_check(c->lock))) return rc;
  if (!c->lock->locked) return -EPERM; /* Python: RuntimeError('cannot wait on un-acquired lock') */
  /* Both must be usable from here before the lock is let go. */
  if ((rc = asyncio__sync_bind(&c->s)) || (rc = asyncio__sync_bind(&c->lock->s))) return rc;
  asyncio_lock_release(c->lock);
  asyncio__waiter_t w;
  c->s.busy++; /* the re-acquisition below may suspend too */
  int err = wait_on(&c->s, &c->waiters, &w);
  /* The lock is re-acquired whatever happened, even through cancellations. */
  for (;;) {
    rc = asyncio_lock_acquire(c->lock);
    if (rc == 0) break;
    err = rc;
    if (rc != -ECANCELED) break; /* cannot happen: the lock is bound to this loop */
  }
  c->s.busy--;
  if (err < 0) {
    /* We may have consumed a notification: pass one on (a spurious wakeup at worst). */
    cond_notify(c, 1);
    return err;
  }
  return 0;
}

ASYNCIO_API int asyncio_condition_wait_for(asyncio_condition_t *c, asyncio_predicate_fn pred,
                                           void *arg) {
  if (!c || !pred) return -EINVAL;
  int r = pred(arg);
  while (r == 0) {
    int rc = asyncio_condition_wait(c);
    if (rc < 0) return rc;
    r = pred(arg);
  }
  return r;
}

ASYNCIO_API int asyncio_condition_notify(asyncio_condition_t *c, int n) {
  if (!c || n < 0) return -EINVAL;
  int rc = cond_check(c);
  if (rc || (rc = lock_check(c->lock))) return rc;
  /* Python: RuntimeError('cannot notify on un-acquired lock') */
  if (!c->lock->locked) return -EPERM;
  return cond_notify(c, n);
}

ASYNCIO_API int asyncio_condition_notify_all(asyncio_condition_t *c) {
  if (!c) return -EINVAL;
  size_t n = c->waiters.n;
  return asyncio_condition_notify(c, n > INT_MAX ? INT_MAX : (int)n);
}

/* ---- Semaphore, BoundedSemaphore ----------------------------------------------- */

struct asyncio_semaphore {
  asyncio__sync_t s;
  asyncio__waitq_t waiters;
  int value;
  int bound; /* BoundedSemaphore: the initial value; -1 for Semaphore */
};

static int sem_check(asyncio_semaphore_t *m) {
  int rc = sync_check(&m->s);
  if (rc == 1) {
    waitq_forget(&m->waiters);
    rc = 0;
  }
  return rc;
}

static int sem_new(asyncio_semaphore_t **out, int value, int bound) {
  if (!out) return -EINVAL;
  *out = NULL;
  if (value < 0) return -EINVAL; /* Python: ValueError */
  asyncio_semaphore_t *m = asyncio__calloc(sizeof *m);
  if (!m) return -ENOMEM;
  m->value = value;
  m->bound = bound;
  *out = m;
  return 0;
}

ASYNCIO_API int asyncio_semaphore_new(asyncio_semaphore_t **out, int value) {
  return sem_new(out, value, -1);
}

ASYNCIO_API int asyncio_boundedsemaphore_new(asyncio_semaphore_t **out, int value) {
  return sem_new(out, value, value);
}

ASYNCIO_API int asyncio_semaphore_free(asyncio_semaphore_t *m) {
  if (!m) return -EINVAL;
  int rc = sem_check(m);
  if (rc) return rc;
  if (m->waiters.n || m->s.busy) return -EBUSY;
  asyncio__sync_unbind(&m->s);
  asyncio__free(m, sizeof *m);
  return 0;
}

/* No permit, or a waiter still to be served first (FIFO). */
static inline bool sem_locked(const asyncio_semaphore_t *m) {
  return m->value == 0 || !all_cancelled(&m->waiters);
}

ASYNCIO_API bool asyncio_semaphore_locked(const asyncio_semaphore_t *m) {
  return m && sem_locked(m);
}

ASYNCIO_API int asyncio_semaphore_value(const asyncio_semaphore_t *m) {
  return m ? m->value : -EINVAL;
}

/* Semaphore._wake_up_next: hands a permit to the first waiter not yet woken. */
static bool sem_wake_next(asyncio_semaphore_t *m) {
  for (asyncio__waiter_t *w = m->waiters.head; w; w = w->next) {
    if (!asyncio__waiter_done(w)) {
      m->value--;
      asyncio__waiter_wake(w);
      return true;
    }
  }
  return false;
}

ASYNCIO_API int asyncio_semaphore_acquire(asyncio_semaphore_t *m) {
  if (!m) return -EINVAL;
  int rc = sem_check(m);
  if (rc) return rc;
  if (!sem_locked(m)) {
    m->value--;
    return 0;
  }
  if ((rc = asyncio__sync_bind(&m->s))) return rc;
  asyncio__waiter_t w;
  rc = wait_on(&m->s, &m->waiters, &w);
  /* Woken (a permit was set aside for us) but cancelled before running: give it back. */
  if (rc < 0 && asyncio__waiter_done(&w) && !asyncio__waiter_cancelled(&w)) m->value++;
  /* Waiters that queued behind us (FIFO) get the permits left. */
  while (m->value > 0 && sem_wake_next(m)) {
  }
  return rc;
}

ASYNCIO_API int asyncio_semaphore_release(asyncio_semaphore_t *m) {
  if (!m) return -EINVAL;
  int rc = sem_check(m);
  if (rc) return rc;
  /* Python: ValueError('BoundedSemaphore released too many times') */
  if (m->bound >= 0 && m->value >= m->bound) return -EINVAL;
  if (m->value == INT_MAX) return -EOVERFLOW;
  m->value++;
  sem_wake_next(m);
  return 0;
}

ASYNCIO_API int asyncio_semaphore_enter(asyncio_semaphore_t *m) {
  return asyncio_semaphore_acquire(m);
}

ASYNCIO_API int asyncio_semaphore_exit(asyncio_semaphore_t *m, int rc) {
  int r = asyncio_semaphore_release(m);
  return r < 0 && rc >= 0 ? r : rc;
}

/* ---- Barrier ---------------------------------------------------------------- */

/*
 * As Python's Barrier: a state machine guarded by a Condition.  FILLING:
 * tasks arrive and wait; the last arrival switches to DRAINING and wakes them
 * all; the last task to leave switches back to FILLING.  Tasks arriving while
 * DRAINING or RESETTING wait for FILLING first.  reset() makes waiting tasks
 * fail and goes back to FILLING once they have left; abort() breaks it.
 */
enum { B_FILLING = 0, B_DRAINING, B_RESETTING, B_BROKEN };

struct asyncio_barrier {
  asyncio_condition_t cond; /* embedded, with its own lock */
  asyncio_lock_t lock;
  int parties;
  int count; /* tasks inside wait() past the entry block */
  int state;
};

ASYNCIO_API int asyncio_barrier_new(asyncio_barrier_t **out, int parties) {
  if (!out) return -EINVAL;
  *out = NULL;
  if (parties < 1) return -EINVAL; /* Python: ValueError('parties must be >= 1') */
  asyncio_barrier_t *b = asyncio__calloc(sizeof *b);
  if (!b) return -ENOMEM;
  b->cond.lock = &b->lock;
  b->parties = parties;
  *out = b;
  return 0;
}

ASYNCIO_API int asyncio_barrier_free(asyncio_barrier_t *b) {
  if (!b) return -EINVAL;
  int rc = cond_check(&b->cond);
  if (rc || (rc = lock_check(&b->lock))) return rc;
  if (b->cond.waiters.n || b->cond.s.busy || b->lock.waiters.n || b->lock.s.busy) return -EBUSY;
  asyncio__sync_unbind(&b->cond.s);
  asyncio__sync_unbind(&b->lock.s);
  asyncio__free(b, sizeof *b);
  return 0;
}

static int barrier_not_busy(void *arg) {
  asyncio_barrier_t *b = arg;
  return b->state != B_DRAINING && b->state != B_RESETTING;
}

static int barrier_not_filling(void *arg) {
  return ((asyncio_barrier_t *)arg)->state != B_FILLING;
}

ASYNCIO_API int asyncio_barrier_wait(asyncio_barrier_t *b) {
  if (!b) return -EINVAL;
  int rc = asyncio_condition_acquire(&b->cond);
  if (rc < 0) return rc;
  /* Block while the barrier drains or resets. */
  rc = asyncio_condition_wait_for(&b->cond, barrier_not_busy, b);
  if (rc < 0) return asyncio_condition_exit(&b->cond, rc);
  if (b->state == B_BROKEN) return asyncio_condition_exit(&b->cond, ASYNCIO_EBROKENBARRIER);
  int index = b->count++;
  if (index + 1 == b->parties) {
    /* The last one in releases everybody. */
    b->state = B_DRAINING;
    cond_notify(&b->cond, INT_MAX);
    rc = index;
  } else {
    rc = asyncio_condition_wait_for(&b->cond, barrier_not_filling, b);
    if (rc >= 0)
      rc = b->state == B_BROKEN || b->state == B_RESETTING ? ASYNCIO_EBROKENBARRIER : index;
  }
  /* Leaving: the last one out lets the next round (or the reset) proceed. */
  if (--b->count == 0) {
    if (b->state == B_RESETTING || b->state == B_DRAINING) b->state = B_FILLING;
    cond_notify(&b->cond, INT_MAX);
  }
  return asyncio_condition_exit(&b->cond, rc);
}

ASYNCIO_API int asyncio_barrier_reset(asyncio_barrier_t *b) {
  if (!b) return -EINVAL;
  int rc = asyncio_condition_acquire(&b->cond);
  if (rc < 0) return rc;
  b->state = b->count > 0 ? B_RESETTING : B_FILLING;
  cond_notify(&b->cond, INT_MAX);
  return asyncio_condition_exit(&b->cond, 0);
}

ASYNCIO_API int asyncio_barrier_abort(asyncio_barrier_t *b) {
  if (!b) return -EINVAL;
  int rc = asyncio_condition_acquire(&b->cond);
  if (rc < 0) return rc;
  b->state = B_BROKEN;
  cond_notify(&b->cond, INT_MAX);
  return asyncio_condition_exit(&b->cond, 0);
}

ASYNCIO_API int asyncio_barrier_parties(const asyncio_barrier_t *b) {
  return b ? b->parties : -EINVAL;
}

ASYNCIO_API int asyncio_barrier_n_waiting(const asyncio_barrier_t *b) {
  if (!b) return -EINVAL;
  return b->state == B_FILLING ? b->count : 0;
}

ASYNCIO_API bool asyncio_barrier_broken(const asyncio_barrier_t *b) {
  return b && b->state == B_BROKEN;
}

ASYNCIO_API int asyncio_barrier_enter(asyncio_barrier_t *b) { return asyncio_barrier_wait(b); }

ASYNCIO_API int asyncio_barrier_exit(asyncio_barrier_t *b, int rc) {
  (void)b;
  return rc;
}
