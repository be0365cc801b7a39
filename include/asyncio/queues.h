/*
 * asyncio/queues.h - queues for tasks (Python: asyncio.queues): Queue,
 * LifoQueue, PriorityQueue, with Python 3.13's shutdown().
 *
 * Items are `void *`, never dereferenced by the queue and never owned by it:
 * an item belongs to whoever put it until someone gets it.  The one exception
 * is an item the queue discards (shutdown(immediate) and freeing a queue that
 * still holds items), which is handed to the drop function if one is set
 * (asyncio_queue_set_drop).  maxsize 0 means unbounded.
 *
 * Like the locks (locks.h), a queue is bound lazily to the loop of the first
 * task that waits on it, is not thread-safe, and follows Python's wakeup
 * rules: waiters queue FIFO; a waiter that is cancelled after it was woken
 * passes the wakeup on, so no item and no free slot is lost.  put() and get()
 * are suspension points only when they have to wait.
 *
 * Error codes: asyncio.QueueEmpty ASYNCIO_EQUEUEEMPTY, asyncio.QueueFull
 * ASYNCIO_EQUEUEFULL, asyncio.QueueShutDown ASYNCIO_EQUEUESHUTDOWN,
 * ValueError (task_done() called too many times) -EINVAL, CancelledError
 * -ECANCELED.  -EINVAL also reports NULL arguments; ASYNCIO_EWRONGTHREAD a
 * call from a thread other than the bound loop's.
 *
 * Storage: a ring buffer (Queue), an array (LifoQueue) or a binary heap
 * (PriorityQueue) that grows by doubling (at most to maxsize) and never
 * shrinks, so a put or get in steady state allocates nothing.
 */
#ifndef ASYNCIO_QUEUES_H
#define ASYNCIO_QUEUES_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct asyncio_queue asyncio_queue_t;

/*
 * Orders a PriorityQueue: < 0 when a comes out before b, 0 when equal, > 0
 * after.  `arg` is the one given at creation.  Items that compare equal come
 * out in the order Python's heapq would give them, which is not insertion
 * order (add a sequence number to the key, as in Python, to get FIFO ties).
 */
typedef int (*asyncio_queue_cmp_fn)(const void *a, const void *b, void *arg);

/* Receives an item the queue discards (C only). */
typedef void (*asyncio_queue_drop_fn)(void *item, void *arg);

/* asyncio.Queue(maxsize): FIFO.  Returns 0, -EINVAL (out NULL), -ENOMEM. */
int asyncio_queue_new(asyncio_queue_t **out, size_t maxsize);

/* asyncio.LifoQueue(maxsize): the most recently put item comes out first. */
int asyncio_lifoqueue_new(asyncio_queue_t **out, size_t maxsize);

/*
 * asyncio.PriorityQueue(maxsize): the smallest item by `cmp` comes out first.
 * Returns 0, -EINVAL (out or cmp NULL), -ENOMEM.
 */
int asyncio_priorityqueue_new(asyncio_queue_t **out, size_t maxsize, asyncio_queue_cmp_fn cmp,
                              void *arg);

/*
 * Frees the queue.  Items still in it go to the drop function, if any.
 * Returns 0, -EINVAL, or -EBUSY while tasks wait in put(), get() or join().
 */
int asyncio_queue_free(asyncio_queue_t *q);

/*
 * Sets the function that receives items the queue discards (C only; NULL
 * for none).  Returns 0 or -EINVAL.
 */
int asyncio_queue_set_drop(asyncio_queue_t *q, asyncio_queue_drop_fn fn, void *arg);

/* Queue.maxsize (0: unbounded), Queue.qsize(), Queue.empty(), Queue.full(). */
size_t asyncio_queue_maxsize(const asyncio_queue_t *q);
size_t asyncio_queue_qsize(const asyncio_queue_t *q);
bool asyncio_queue_empty(const asyncio_queue_t *q);
bool asyncio_queue_full(const asyncio_queue_t *q);

/*
 * Queue.put(item): adds the item, first waiting (FIFO among putters) while
 * the queue is full.  Suspends only when full.  Returns 0;
 * ASYNCIO_EQUEUESHUTDOWN if the queue is or gets shut down (the item was not
 * added); -ECANCELED (not added); -ENOMEM (the storage could not grow: not
 * added); ASYNCIO_ENOTASK when it would have to wait outside a task; -EINVAL.
 */
int asyncio_queue_put(asyncio_queue_t *q, void *item);

/*
 * Queue.put_nowait(item): adds the item without waiting.  Does not suspend.
 * Wakes the first waiting getter.  Returns 0, ASYNCIO_EQUEUEFULL,
 * ASYNCIO_EQUEUESHUTDOWN, -ENOMEM, -EINVAL, ASYNCIO_EWRONGTHREAD.
 */
int asyncio_queue_put_nowait(asyncio_queue_t *q, void *item);

/*
 * Queue.get(): removes an item into *item, first waiting (FIFO among
 * getters) while the queue is empty.  Suspends only when empty.  Returns 0;
 * ASYNCIO_EQUEUESHUTDOWN once the queue is shut down and empty; -ECANCELED
 * (nothing was removed); ASYNCIO_ENOTASK when it would have to wait outside
 * a task; -EINVAL.  Each item got should be followed by task_done() when
 * join() is used.
 */
int asyncio_queue_get(asyncio_queue_t *q, void **item);

/*
 * Consuming a queue until it is shut down (the consumer loop of Python 3.13:
 * `while True: item = await q.get()` ending in QueueShutDown):
 *
 *   void *item;
 *   int rc;
 *   ASYNCIO_QUEUE_FOR(rc, q, &item) {
 *     use(item);
 *     asyncio_queue_task_done(q);
 *   }
 *   if (rc != ASYNCIO_EQUEUESHUTDOWN) return rc;   // cancelled, or misuse
 *
 * A plain `while` over asyncio_queue_get(): `break` and `continue` work.  It
 * ends when get() fails: ASYNCIO_EQUEUESHUTDOWN once the queue is shut down
 * and drained (the normal end), or -ECANCELED.
 */
#define ASYNCIO_QUEUE_FOR(rc, q, itemp) while (((rc) = asyncio_queue_get((q), (itemp))) == 0)

/*
 * Queue.get_nowait(): removes an item without waiting.  Does not suspend.
 * Wakes the first waiting putter.  Returns 0, ASYNCIO_EQUEUEEMPTY,
 * ASYNCIO_EQUEUESHUTDOWN (shut down and empty), -EINVAL, ASYNCIO_EWRONGTHREAD.
 */
int asyncio_queue_get_nowait(asyncio_queue_t *q, void **item);

/*
 * Queue.task_done(): one item taken earlier has been processed; when every
 * item put has been, join() returns.  Does not suspend.  Returns 0; -EINVAL
 * when called more times than items were put (Python: ValueError) or for
 * NULL; ASYNCIO_EWRONGTHREAD.
 */
int asyncio_queue_task_done(asyncio_queue_t *q);

/*
 * Queue.join(): suspends until every item put has been marked task_done()
 * (returns at once when there is none outstanding).  Returns 0, -ECANCELED,
 * ASYNCIO_ENOTASK, -EINVAL.
 */
int asyncio_queue_join(asyncio_queue_t *q);

/*
 * Queue.shutdown(immediate) (Python 3.13): put() and put_nowait() fail with
 * ASYNCIO_EQUEUESHUTDOWN from now on; get() goes on returning the remaining
 * items and then fails with it.  With `immediate`, the remaining items are
 * discarded at once (to the drop function), task_done() is counted for each,
 * which may release join(), and get() fails at once.  Every task blocked in
 * put() or get() wakes up and sees the shutdown.  Does not suspend.  Returns
 * 0, -EINVAL, ASYNCIO_EWRONGTHREAD.
 */
int asyncio_queue_shutdown(asyncio_queue_t *q, bool immediate);

/* True once shutdown() has been called (C only). */
bool asyncio_queue_is_shutdown(const asyncio_queue_t *q);

#ifdef __cplusplus
}
#endif
#endif
