/*
 * queues.c - asyncio.Queue, LifoQueue and PriorityQueue, with Python 3.13's
 * shutdown() (Python: asyncio.queues).
 *
 * Storage: one array of `void *`, used as a ring buffer (FIFO), a stack
 * (LIFO) or a binary min-heap (priority).  It doubles when full, up to
 * maxsize for a bounded queue, and never shrinks: put/get in steady state
 * allocate nothing.  The heap follows heapq's algorithms step for step
 * (_siftdown on push; pop moves the last item to the root and runs _siftup,
 * which descends to a leaf along the smaller children and then sifts back
 * up), so items that compare equal come out in the same order as in Python.
 *
 * Waiters (locks.c's frame futures) queue FIFO in getters/putters.  As in
 * Python, waking a waiter unlinks it (Queue._wakeup_next pops it), and a
 * woken getter re-checks the queue when it runs, so it may wait again
 * (another task may have taken the item first).  A waiter cancelled after it
 * was woken passes the wakeup on to the next one, so an item or a free slot
 * is never left with nobody woken for it.  join() waits on an embedded
 * Event that is set while no task is unfinished.
 *
 * Invariants: n <= cap; cap <= maxsize when bounded; unfinished counts puts
 * not yet matched by task_done(); `finished` is set iff unfinished == 0.
 */
#include "internal.h"

enum { Q_FIFO = 0, Q_LIFO, Q_PRIORITY };

/* An Event (as in locks.c) for join(), embedded. */
struct q_event {
  asyncio__sync_t s;
  asyncio__waitq_t waiters;
  uint8_t value;
};

struct asyncio_queue {
  asyncio__sync_t s;
  asyncio__waitq_t getters, putters;
  void **buf;
  size_t cap, head, n; /* head: the ring's first slot (FIFO only) */
  size_t maxsize;      /* 0: unbounded */
  size_t unfinished;
  asyncio_queue_cmp_fn cmp;
  void *cmp_arg;
  asyncio_queue_drop_fn drop;
  void *drop_arg;
  struct q_event finished; /* join(): set while unfinished == 0 */
  uint8_t kind;
  uint8_t shutdown;
};

static int q_check_slow(asyncio_queue_t *q) {
  int rc = asyncio__sync_check(&q->s);
  if (rc == 1) {
    q->getters = (asyncio__waitq_t){0};
    q->putters = (asyncio__waitq_t){0};
    rc = 0;
  }
  int rc2 = asyncio__sync_check(&q->finished.s);
  if (rc2 == 1) {
    q->finished.waiters = (asyncio__waitq_t){0};
    rc2 = 0;
  }
  return rc ? rc : rc2;
}

/* The common case first: unbound, or bound to the loop running this call. */
static inline int q_check(asyncio_queue_t *q) {
  asyncio_loop_t *running = asyncio__running_loop;
  if (LIKELY((!q->s.loop || q->s.loop == running) &&
             (!q->finished.s.loop || q->finished.s.loop == running)))
    return 0;
  return q_check_slow(q);
}

static int q_new(asyncio_queue_t **out, size_t maxsize, int kind, asyncio_queue_cmp_fn cmp,
                 void *arg) {
  if (!out) return -EINVAL;
  *out = NULL;
  if (kind == Q_PRIORITY && !cmp) return -EINVAL;
  asyncio_queue_t *q = asyncio__calloc(sizeof *q);
  if (!q) return -ENOMEM;
  q->maxsize = maxsize;
  q->kind = (uint8_t)kind;
  q->cmp = cmp;
  q->cmp_arg = arg;
  q->finished.value = 1;
  *out = q;
  return 0;
}

ASYNCIO_API int asyncio_queue_new(asyncio_queue_t **out, size_t maxsize) {
  return q_new(out, maxsize, Q_FIFO, NULL, NULL);
}

ASYNCIO_API int asyncio_lifoqueue_new(asyncio_queue_t **out, size_t maxsize) {
  return q_new(out, maxsize, Q_LIFO, NULL, NULL);
}

ASYNCIO_API int asyncio_priorityqueue_new(asyncio_queue_t **out, size_t maxsize,
                                          asyncio_queue_cmp_fn cmp, void *arg) {
  return q_new(out, maxsize, Q_PRIORITY, cmp, arg);
}

ASYNCIO_API int asyncio_queue_set_drop(asyncio_queue_t *q, asyncio_queue_drop_fn fn, void *arg) {
  if (!q) return -EINVAL;
  q->drop = fn;
  q->drop_arg = arg;
  return 0;
}

/* Inline for the library's own use: exported functions are not inlined (-fPIC). */
static inline bool q_full(const asyncio_queue_t *q) { return q->maxsize && q->n >= q->maxsize; }

ASYNCIO_API size_t asyncio_queue_maxsize(const asyncio_queue_t *q) { return q ? q->maxsize : 0; }
ASYNCIO_API size_t asyncio_queue_qsize(const asyncio_queue_t *q) { return q ? q->n : 0; }
ASYNCIO_API bool asyncio_queue_empty(const asyncio_queue_t *q) { return !q || q->n == 0; }
ASYNCIO_API bool asyncio_queue_full(const asyncio_queue_t *q) { return q && q_full(q); }
ASYNCIO_API bool asyncio_queue_is_shutdown(const asyncio_queue_t *q) { return q && q->shutdown; }

/* ---- storage ----------------------------------------------------------------- */

/* Makes room for one more item.  0 or -ENOMEM (nothing changed). */
static int q_reserve(asyncio_queue_t *q) {
  if (q->n < q->cap) return 0;
  size_t cap = q->cap ? q->cap * 2 : 8;
  if (cap < q->cap) return -ENOMEM;
  if (q->maxsize && cap > q->maxsize) cap = q->maxsize;
  if (cap > SIZE_MAX / sizeof(void *)) return -ENOMEM;
  void **buf = asyncio__realloc(q->buf, q->cap * sizeof *buf, cap * sizeof *buf);
  if (!buf) return -ENOMEM;
  if (q->kind == Q_FIFO && q->head) {
    /* The ring was full and wraps: its first part (head .. old end) moves to the new end. */
    size_t tail = q->cap - q->head;
    memmove(buf + cap - tail, buf + q->head, tail * sizeof *buf);
    q->head = cap - tail;
  }
  q->buf = buf;
  q->cap = cap;
  return 0;
}

static inline int q_less(asyncio_queue_t *q, void *a, void *b) {
  return q->cmp(a, b, q->cmp_arg) < 0;
}

/* heapq._siftdown: the item at pos moves up towards startpos. */
static void heap_siftdown(asyncio_queue_t *q, size_t startpos, size_t pos) {
  void **h = q->buf;
  void *item = h[pos];
  while (pos > startpos) {
    size_t parentpos = (pos - 1) >> 1;
    void *parent = h[parentpos];
    if (!q_less(q, item, parent)) break;
    h[pos] = parent;
    pos = parentpos;
  }
  h[pos] = item;
}

/* heapq._siftup: the hole at pos descends along the smaller children, then the item sifts up. */
static void heap_siftup(asyncio_queue_t *q, size_t pos) {
  void **h = q->buf;
  size_t endpos = q->n, startpos = pos;
  void *item = h[pos];
  size_t child = 2 * pos + 1;
  while (child < endpos) {
    size_t right = child + 1;
    if (right < endpos && !q_less(q, h[child], h[right])) child = right;
    h[pos] = h[child];
    pos = child;
    child = 2 * pos + 1;
  }
  h[pos] = item;
  heap_siftdown(q, startpos, pos);
}

/* Queue._put (room reserved). */
static void q_push(asyncio_queue_t *q, void *item) {
  switch (q->kind) {
  case Q_FIFO: {
    size_t i = q->head + q->n;
    if (i >= q->cap) i -= q->cap;
    q->buf[i] = item;
    q->n++;
    break;
  }
  case Q_LIFO:
    q->buf[q->n++] = item;
    break;
  default:
    q->buf[q->n++] = item;
    heap_siftdown(q, 0, q->n - 1);
    break;
  }
}

/* Queue._get (not empty). */
static void *q_pop(asyncio_queue_t *q) {
  void *item;
  switch (q->kind) {
  case Q_FIFO:
    item = q->buf[q->head];
    if (++q->head == q->cap) q->head = 0;
    if (--q->n == 0) q->head = 0;
    return item;
  case Q_LIFO:
    return q->buf[--q->n];
  default: {
    void *last = q->buf[--q->n];
    if (q->n == 0) return last;
    item = q->buf[0];
    q->buf[0] = last;
    heap_siftup(q, 0);
    return item;
  }
  }
}

/* ---- waking and waiting --------------------------------------------------------- */

/* Queue._wakeup_next: pops waiters until one not yet done, and wakes it. */
static void q_wakeup_next(asyncio__waitq_t *wq) {
  asyncio__waiter_t *w;
  while ((w = wq->head) != NULL) {
    asyncio__waitq_remove(wq, w);
    if (!asyncio__waiter_done(w)) {
      asyncio__waiter_wake(w);
      return;
    }
  }
}

/* Waits in wq: 0 when woken, -ECANCELED.  Unlinks itself if the waker did not. */
static int q_wait(asyncio_queue_t *q, asyncio__waitq_t *wq, asyncio__waiter_t *w) {
  asyncio__waiter_init(w, q->s.loop);
  asyncio__waitq_push(wq, w);
  int rc = asyncio__waiter_wait(&q->s, w);
  asyncio__waitq_remove(wq, w);
  return rc;
}

static void finished_set(asyncio_queue_t *q) {
  if (q->finished.value) return;
  q->finished.value = 1;
  for (asyncio__waiter_t *w = q->finished.waiters.head; w; w = w->next) asyncio__waiter_wake(w);
}

/* ---- the Queue API ------------------------------------------------------------------ */

/* put_nowait once the queue is checked. */
static int q_put_nowait(asyncio_queue_t *q, void *item) {
  int rc;
  if (q->shutdown) return ASYNCIO_EQUEUESHUTDOWN;
  if (q_full(q)) return ASYNCIO_EQUEUEFULL;
  if ((rc = q_reserve(q))) return rc;
  q_push(q, item);
  q->unfinished++;
  q->finished.value = 0;
  q_wakeup_next(&q->getters);
  return 0;
}

ASYNCIO_API int asyncio_queue_put_nowait(asyncio_queue_t *q, void *item) {
  if (!q) return -EINVAL;
  int rc = q_check(q);
  return rc ? rc : q_put_nowait(q, item);
}

ASYNCIO_API int asyncio_queue_put(asyncio_queue_t *q, void *item) {
  if (!q) return -EINVAL;
  int rc = q_check(q);
  if (rc) return rc;
  while (q_full(q)) {
    if (q->shutdown) return ASYNCIO_EQUEUESHUTDOWN;
    if ((rc = asyncio__sync_bind(&q->s))) return rc;
    asyncio__waiter_t w;
    rc = q_wait(q, &q->putters, &w);
    if (rc < 0) {
      /* Woken for a free slot we will not use: hand it to the next putter. */
      if (!q_full(q) && !asyncio__waiter_cancelled(&w)) q_wakeup_next(&q->putters);
      return rc;
    }
  }
  return q_put_nowait(q, item);
}

/* get_nowait once the queue is checked. */
static int q_get_nowait(asyncio_queue_t *q, void **item) {
  if (q->n == 0) return q->shutdown ? ASYNCIO_EQUEUESHUTDOWN : ASYNCIO_EQUEUEEMPTY;
  *item = q_pop(q);
  q_wakeup_next(&q->putters);
  return 0;
}

ASYNCIO_API int asyncio_queue_get_nowait(asyncio_queue_t *q, void **item) {
  if (!q || !item) return -EINVAL;
  int rc = q_check(q);
  return rc ? rc : q_get_nowait(q, item);
}

ASYNCIO_API int asyncio_queue_get(asyncio_queue_t *q, void **item) {
  if (!q || !item) return -EINVAL;
  int rc = q_check(q);
  if (rc) return rc;
  while (q->n == 0) {
    if (q->shutdown) return ASYNCIO_EQUEUESHUTDOWN;
    if ((rc = asyncio__sync_bind(&q->s))) return rc;
    asyncio__waiter_t w;
    rc = q_wait(q, &q->getters, &w);
    if (rc < 0) {
      /* Woken for an item we will not take: hand it to the next getter. */
      if (q->n && !asyncio__waiter_cancelled(&w)) q_wakeup_next(&q->getters);
      return rc;
    }
  }
  return q_get_nowait(q, item);
}

ASYNCIO_API int asyncio_queue_task_done(asyncio_queue_t *q) {
  if (!q) return -EINVAL;
  int rc = q_check(q);
  if (rc) return rc;
  /* Python: ValueError('task_done() called too many times') */
  if (q->unfinished == 0) return -EINVAL;
  if (--q->unfinished == 0) finished_set(q);
  return 0;
}

ASYNCIO_API int asyncio_queue_join(asyncio_queue_t *q) {
  if (!q) return -EINVAL;
  int rc = q_check(q);
  if (rc) return rc;
  if (q->unfinished == 0 || q->finished.value) return 0;
  if ((rc = asyncio__sync_bind(&q->finished.s))) return rc;
  asyncio__waiter_t w;
  memset(&w, 0, sizeof w);
  w.f.refcnt = 1;
  w.f.loop = q->finished.s.loop;
  asyncio__waitq_push(&q->finished.waiters, &w);
  rc = asyncio__waiter_wait(&q->finished.s, &w);
  asyncio__waitq_remove(&q->finished.waiters, &w);
  return rc;
}

ASYNCIO_API int asyncio_queue_shutdown(asyncio_queue_t *q, bool immediate) {
  if (!q) return -EINVAL;
  int rc = q_check(q);
  if (rc) return rc;
  q->shutdown = 1;
  if (immediate) {
    while (q->n) {
      void *item = q_pop(q);
      if (q->drop) q->drop(item, q->drop_arg);
      if (q->unfinished) q->unfinished--;
    }
    if (q->unfinished == 0) finished_set(q);
  }
  /* Everybody blocked re-checks and sees the shutdown. */
  asyncio__waiter_t *w;
  while ((w = q->getters.head) != NULL) {
    asyncio__waitq_remove(&q->getters, w);
    asyncio__waiter_wake(w);
  }
  while ((w = q->putters.head) != NULL) {
    asyncio__waitq_remove(&q->putters, w);
    asyncio__waiter_wake(w);
  }
  return 0;
}

ASYNCIO_API int asyncio_queue_free(asyncio_queue_t *q) {
  if (!q) return -EINVAL;
  int rc = q_check(q);
  if (rc) return rc;
  if (q->getters.n || q->putters.n || q->finished.waiters.n || q->s.busy || q->finished.s.busy)
    return -EBUSY;
  while (q->n) {
    void *item = q_pop(q);
    if (q->drop) q->drop(item, q->drop_arg);
  }
  asyncio__free(q->buf, q->cap * sizeof *q->buf);
  asyncio__sync_unbind(&q->s);
  asyncio__sync_unbind(&q->finished.s);
  asyncio__free(q, sizeof *q);
  return 0;
}
