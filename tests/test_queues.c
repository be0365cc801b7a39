/*
 * test_queues.c - Queue, LifoQueue, PriorityQueue (include/asyncio/queues.h).
 *
 * Python origin: Lib/asyncio/queues.py (3.13, with shutdown) and
 * Lib/test/test_asyncio/test_queues.py: ordering of the three kinds, blocking
 * put at maxsize and get on empty, FIFO among waiters, a waiter cancelled
 * while queued or after it was woken never losing an item or a free slot,
 * join/task_done, shutdown(immediate=False/True) with blocked putters and
 * getters.
 *
 * Each test runs a main task on a virtual-clock loop; checks inside tasks are
 * soft (CHECK) and asserted after the loop returns.
 */
#include "harness.h"
#include "sync_helpers.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define ITEM(i) ((void *)(intptr_t)(i))
#define INT(p) ((int)(intptr_t)(p))

typedef struct job {
  asyncio_queue_t *q;
  int id;
  int rc;
  void *item;
} job_t;

/* get(); record the item. */
static int getter(void *arg) {
  job_t *j = arg;
  j->rc = asyncio_queue_get(j->q, &j->item);
  if (j->rc == 0) rec(INT(j->item));
  return j->rc;
}

/* put(id); record id once in. */
static int putter(void *arg) {
  job_t *j = arg;
  j->rc = asyncio_queue_put(j->q, ITEM(j->id));
  if (j->rc == 0) rec(j->id);
  return j->rc;
}

/* ---- ordering ------------------------------------------------------------- */

static int by_value(const void *a, const void *b, void *arg) {
  (void)arg;
  int x = INT(a) / 100, y = INT(b) / 100; /* priority = item / 100; ties compare equal */
  return x < y ? -1 : x > y;
}

/* Queue is FIFO, LifoQueue LIFO, PriorityQueue smallest first with heapq's tie order. */
TEST(queue_order_fifo_lifo_priority) {
  reset();
  asyncio_queue_t *q;
  void *it;
  assert_ok(asyncio_queue_new(&q, 0));
  for (int i = 1; i <= 5; i++) assert_ok(asyncio_queue_put_nowait(q, ITEM(i)));
  for (int i = 1; i <= 5; i++) {
    assert_ok(asyncio_queue_get_nowait(q, &it));
    assert_int_equal(INT(it), i);
  }
  assert_ok(asyncio_queue_free(q));

  assert_ok(asyncio_lifoqueue_new(&q, 0));
  for (int i = 1; i <= 5; i++) assert_ok(asyncio_queue_put_nowait(q, ITEM(i)));
  for (int i = 5; i >= 1; i--) {
    assert_ok(asyncio_queue_get_nowait(q, &it));
    assert_int_equal(INT(it), i);
  }
  assert_ok(asyncio_queue_free(q));

  /*
   * (priority, id) as priority*100 + id, compared on the priority only.  The
   * expected order is what Python's heapq gives for the same pushes and pops
   * with a __lt__ on the priority: ties do not come out FIFO.
   */
  static const int pushes[][2] = {{3, 1}, {1, 2}, {3, 3}, {2, 4}, {1, 5},
                                  {3, 6}, {2, 7}, {1, 8}, {5, 9}, {0, 10}};
  static const int expect[] = {10, 2, 5, 8, 11, 7, 4, 3, 6, 1, 12, 9};
  assert_ok(asyncio_priorityqueue_new(&q, 0, by_value, NULL));
  for (size_t i = 0; i < sizeof pushes / sizeof pushes[0]; i++)
    assert_ok(asyncio_queue_put_nowait(q, ITEM(pushes[i][0] * 100 + pushes[i][1])));
  int n = 0;
  for (; n < 3; n++) {
    assert_ok(asyncio_queue_get_nowait(q, &it));
    assert_int_equal(INT(it) % 100, expect[n]);
  }
  assert_ok(asyncio_queue_put_nowait(q, ITEM(111)));
  assert_ok(asyncio_queue_put_nowait(q, ITEM(312)));
  while (!asyncio_queue_empty(q)) {
    assert_ok(asyncio_queue_get_nowait(q, &it));
    assert_int_equal(INT(it) % 100, expect[n]);
    n++;
  }
  assert_int_equal(n, 12);
  assert_ok(asyncio_queue_free(q));
}

/* A ring that wraps keeps FIFO order across growth, unbounded and clamped to maxsize. */
TEST(queue_ring_wraps_and_grows) {
  reset();
  for (int bounded = 0; bounded < 2; bounded++) {
    asyncio_queue_t *q;
    size_t max = bounded ? 13 : 0;
    assert_ok(asyncio_queue_new(&q, max));
    int next_in = 0, next_out = 0;
    void *it;
    /* Fill 6, drain 5, so the head sits mid-buffer; then fill past capacity. */
    for (int round = 0; round < 40; round++) {
      int fill = 6 + round % 5;
      for (int i = 0; i < fill && !asyncio_queue_full(q); i++)
        assert_ok(asyncio_queue_put_nowait(q, ITEM(next_in++)));
      int drain = 5 + round % 3;
      for (int i = 0; i < drain && !asyncio_queue_empty(q); i++) {
        assert_ok(asyncio_queue_get_nowait(q, &it));
        assert_int_equal(INT(it), next_out++);
      }
      if (bounded) assert_true(asyncio_queue_qsize(q) <= 13);
    }
    while (!asyncio_queue_empty(q)) {
      assert_ok(asyncio_queue_get_nowait(q, &it));
      assert_int_equal(INT(it), next_out++);
    }
    assert_int_equal(next_in, next_out);
    assert_true(next_in > 40);
    assert_ok(asyncio_queue_free(q));
  }
}

/* qsize/empty/full/maxsize; put_nowait on full -> QUEUEFULL; get_nowait on empty -> QUEUEEMPTY. */
TEST(queue_nowait_sizes_and_errors) {
  reset();
  asyncio_queue_t *q;
  void *it = ITEM(77);
  assert_ok(asyncio_queue_new(&q, 2));
  assert_int_equal(asyncio_queue_maxsize(q), 2);
  assert_true(asyncio_queue_empty(q));
  assert_false(asyncio_queue_full(q));
  assert_rc(asyncio_queue_get_nowait(q, &it), ASYNCIO_EQUEUEEMPTY);
  assert_int_equal(INT(it), 77); /* untouched */
  assert_ok(asyncio_queue_put_nowait(q, ITEM(1)));
  assert_ok(asyncio_queue_put_nowait(q, ITEM(2)));
  assert_true(asyncio_queue_full(q));
  assert_int_equal(asyncio_queue_qsize(q), 2);
  assert_rc(asyncio_queue_put_nowait(q, ITEM(3)), ASYNCIO_EQUEUEFULL);
  assert_int_equal(asyncio_queue_qsize(q), 2);
  assert_rc(asyncio_queue_put(q, ITEM(3)), ASYNCIO_ENOTASK); /* would have to wait */
  assert_ok(asyncio_queue_get_nowait(q, &it));
  assert_int_equal(INT(it), 1);
  assert_ok(asyncio_queue_get(q, &it)); /* not empty: no task needed */
  assert_int_equal(INT(it), 2);
  assert_rc(asyncio_queue_get(q, &it), ASYNCIO_ENOTASK);
  assert_ok(asyncio_queue_free(q));
  /* maxsize 0: never full. */
  assert_ok(asyncio_queue_new(&q, 0));
  for (int i = 0; i < 1000; i++) assert_ok(asyncio_queue_put_nowait(q, ITEM(i)));
  assert_false(asyncio_queue_full(q));
  assert_int_equal(asyncio_queue_qsize(q), 1000);
  assert_ok(asyncio_queue_free(q)); /* items are not owned: nothing to free */
}

/* Misuse: NULL arguments, a PriorityQueue without a comparison. */
TEST(queue_misuse) {
  reset();
  asyncio_queue_t *q;
  void *it;
  assert_rc(asyncio_queue_new(NULL, 0), -EINVAL);
  assert_rc(asyncio_lifoqueue_new(NULL, 0), -EINVAL);
  assert_rc(asyncio_priorityqueue_new(&q, 0, NULL, NULL), -EINVAL);
  assert_rc(asyncio_queue_put(NULL, NULL), -EINVAL);
  assert_rc(asyncio_queue_put_nowait(NULL, NULL), -EINVAL);
  assert_rc(asyncio_queue_get(NULL, &it), -EINVAL);
  assert_rc(asyncio_queue_get_nowait(NULL, &it), -EINVAL);
  assert_rc(asyncio_queue_task_done(NULL), -EINVAL);
  assert_rc(asyncio_queue_join(NULL), -EINVAL);
  assert_rc(asyncio_queue_shutdown(NULL, false), -EINVAL);
  assert_rc(asyncio_queue_free(NULL), -EINVAL);
  assert_rc(asyncio_queue_set_drop(NULL, NULL, NULL), -EINVAL);
  assert_int_equal(asyncio_queue_qsize(NULL), 0);
  assert_ok(asyncio_queue_new(&q, 0));
  assert_rc(asyncio_queue_get(q, NULL), -EINVAL);
  assert_rc(asyncio_queue_get_nowait(q, NULL), -EINVAL);
  assert_rc(asyncio_queue_task_done(q), -EINVAL); /* ValueError: called too many times */
  assert_ok(asyncio_queue_join(q));               /* nothing unfinished: no wait */
  assert_ok(asyncio_queue_free(q));
}

/* ---- blocking put and get --------------------------------------------------- */

static int put_blocks_main(void *arg) {
  (void)arg;
  asyncio_queue_t *q;
  void *it;
  CHECK_RC(asyncio_queue_new(&q, 1), 0);
  CHECK_RC(asyncio_queue_put(q, ITEM(1)), 0);
  job_t j[3] = {{q, 2, 0, 0}, {q, 3, 0, 0}, {q, 4, 0, 0}};
  asyncio_task_t *t[3];
  for (int i = 0; i < 3; i++) t[i] = spawn(putter, &j[i]);
  yield0();
  CHECK_ORDER(0); /* all three block at maxsize */
  CHECK(asyncio_queue_qsize(q) == 1);
  CHECK_RC(asyncio_queue_free(q), -EBUSY);
  for (int want = 1; want <= 4; want++) {
    CHECK_RC(asyncio_queue_get(q, &it), 0);
    CHECK(INT(it) == want); /* putters got in FIFO */
    yield0();
  }
  CHECK_ORDER(3, 2, 3, 4);
  for (int i = 0; i < 3; i++) CHECK_RC(finish(t[i]), 0);
  CHECK(asyncio_queue_empty(q));
  CHECK_RC(asyncio_queue_free(q), 0);
  return 0;
}

/* put() blocks while the queue is at maxsize; blocked putters get in FIFO as slots free up. */
TEST(queue_put_blocks_at_maxsize) {
  reset();
  assert_rc(run_main(put_blocks_main, NULL), 0);
}

static int get_blocks_main(void *arg) {
  (void)arg;
  asyncio_queue_t *q;
  CHECK_RC(asyncio_lifoqueue_new(&q, 0), 0);
  job_t j[3] = {{q, 1, 0, 0}, {q, 2, 0, 0}, {q, 3, 0, 0}};
  asyncio_task_t *t[3];
  for (int i = 0; i < 3; i++) t[i] = spawn(getter, &j[i]);
  yield0();
  CHECK_ORDER(0);
  CHECK_RC(asyncio_queue_put(q, ITEM(10)), 0);
  CHECK_RC(asyncio_queue_put(q, ITEM(20)), 0); /* both in before anyone runs */
  yield0();
  /* LIFO: the first getter to run takes the last item put. */
  CHECK_ORDER(2, 20, 10);
  CHECK(j[0].item == ITEM(20) && j[1].item == ITEM(10));
  CHECK(!asyncio_future_done(t[2]));
  CHECK_RC(asyncio_queue_put_nowait(q, ITEM(30)), 0);
  for (int i = 0; i < 3; i++) CHECK_RC(finish(t[i]), 0);
  CHECK(j[2].item == ITEM(30));
  CHECK_RC(asyncio_queue_free(q), 0);
  return 0;
}

/* get() blocks on an empty queue; blocked getters are served FIFO. */
TEST(queue_get_blocks_until_put) {
  reset();
  assert_rc(run_main(get_blocks_main, NULL), 0);
}

/* ---- cancellation never loses an item or a slot -------------------------------------- */

static int get_cancel_queued_main(void *arg) {
  (void)arg;
  asyncio_queue_t *q;
  CHECK_RC(asyncio_queue_new(&q, 0), 0);
  job_t a = {q, 1, 0, 0}, b = {q, 2, 0, 0};
  asyncio_task_t *ta = spawn(getter, &a);
  asyncio_task_t *tb = spawn(getter, &b);
  yield0();
  CHECK_RC(asyncio_task_cancel(ta, NULL), 1);
  yield0();
  CHECK_RC(finish(ta), -ECANCELED);
  CHECK_RC(asyncio_queue_put_nowait(q, ITEM(5)), 0);
  CHECK_RC(finish(tb), 0);
  CHECK(b.item == ITEM(5));
  CHECK_ORDER(1, 5);
  CHECK(asyncio_queue_empty(q));
  CHECK_RC(asyncio_queue_free(q), 0);
  return 0;
}

/* A getter cancelled while queued leaves; the next item goes to the next getter. */
TEST(queue_get_cancel_while_queued) {
  reset();
  assert_rc(run_main(get_cancel_queued_main, NULL), 0);
}

static int get_cancel_woken_main(void *arg) {
  (void)arg;
  asyncio_queue_t *q;
  CHECK_RC(asyncio_queue_new(&q, 0), 0);
  job_t a = {q, 1, 0, 0}, b = {q, 2, 0, 0};
  asyncio_task_t *ta = spawn(getter, &a);
  asyncio_task_t *tb = spawn(getter, &b);
  yield0();
  CHECK_RC(asyncio_queue_put_nowait(q, ITEM(5)), 0); /* wakes a ... */
  CHECK_RC(asyncio_task_cancel(ta, NULL), 1);        /* ... cancelled before it runs */
  yield0();
  CHECK_RC(finish(ta), -ECANCELED);
  CHECK(a.item == NULL);
  /* a handed the wakeup to b: the item is not stranded. */
  CHECK_RC(finish(tb), 0);
  CHECK(b.item == ITEM(5));
  CHECK_ORDER(1, 5);
  CHECK_RC(asyncio_queue_free(q), 0);
  return 0;
}

/* A getter woken by put and cancelled before it runs passes the item's wakeup on (test_get_cancelled_race). */
TEST(queue_get_cancel_after_wakeup) {
  reset();
  assert_rc(run_main(get_cancel_woken_main, NULL), 0);
}

static int put_cancel_main(void *arg) {
  (void)arg;
  asyncio_queue_t *q;
  void *it;
  CHECK_RC(asyncio_queue_new(&q, 1), 0);
  CHECK_RC(asyncio_queue_put_nowait(q, ITEM(1)), 0);
  job_t a = {q, 2, 0, 0}, b = {q, 3, 0, 0}, c = {q, 4, 0, 0};
  asyncio_task_t *ta = spawn(putter, &a);
  asyncio_task_t *tb = spawn(putter, &b);
  asyncio_task_t *tc = spawn(putter, &c);
  yield0();
  /* a cancelled while queued. */
  CHECK_RC(asyncio_task_cancel(ta, NULL), 1);
  yield0();
  CHECK_RC(finish(ta), -ECANCELED);
  /* b woken by a free slot, then cancelled before it runs: c gets the slot. */
  CHECK_RC(asyncio_queue_get_nowait(q, &it), 0);
  CHECK(INT(it) == 1);
  CHECK_RC(asyncio_task_cancel(tb, NULL), 1);
  yield0();
  CHECK_RC(finish(tb), -ECANCELED);
  CHECK_RC(finish(tc), 0);
  CHECK_ORDER(1, 4);
  CHECK_RC(asyncio_queue_get_nowait(q, &it), 0);
  CHECK(INT(it) == 4);
  CHECK(asyncio_queue_empty(q));
  CHECK_RC(asyncio_queue_free(q), 0);
  return 0;
}

/* Putters cancelled while queued or after being woken never take or lose a slot. */
TEST(queue_put_cancel_queued_and_woken) {
  reset();
  assert_rc(run_main(put_cancel_main, NULL), 0);
}

/* ---- join / task_done ------------------------------------------------------------ */

static int joiner(void *arg) {
  job_t *j = arg;
  j->rc = asyncio_queue_join(j->q);
  if (j->rc == 0) rec(j->id);
  return j->rc;
}

/* get, then task_done, `id` times with a sleep between. */
static int worker(void *arg) {
  job_t *j = arg;
  void *it;
  for (;;) {
    int rc = asyncio_queue_get(j->q, &it);
    if (rc < 0) return rc;
    CHECK_RC(asyncio_sleep(0.01), 0);
    rec(INT(it));
    CHECK_RC(asyncio_queue_task_done(j->q), 0);
  }
}

static int join_main(void *arg) {
  (void)arg;
  asyncio_queue_t *q;
  CHECK_RC(asyncio_queue_new(&q, 0), 0);
  for (int i = 1; i <= 4; i++) CHECK_RC(asyncio_queue_put_nowait(q, ITEM(i)), 0);
  job_t jj = {q, 99, 0, 0}, w1 = {q, 0, 0, 0}, w2 = {q, 0, 0, 0};
  asyncio_task_t *tj = spawn(joiner, &jj);
  asyncio_task_t *a = spawn(worker, &w1);
  asyncio_task_t *b = spawn(worker, &w2);
  CHECK_RC(asyncio_queue_join(q), 0);
  rec(100);
  yield0();
  /* Every item processed before either join returned. */
  CHECK_ORDER(6, 1, 2, 3, 4, 100, 99);
  CHECK_RC(finish(tj), 0);
  CHECK_RC(asyncio_queue_task_done(q), -EINVAL); /* ValueError */
  CHECK_RC(asyncio_queue_join(q), 0);            /* nothing outstanding */
  CHECK_RC(asyncio_task_cancel(a, NULL), 1);
  CHECK_RC(asyncio_task_cancel(b, NULL), 1);
  CHECK_RC(finish(a), -ECANCELED);
  CHECK_RC(finish(b), -ECANCELED);
  CHECK_RC(asyncio_queue_free(q), 0);
  return 0;
}

/* join() returns once task_done() was called for every item put; too many task_done -> -EINVAL. */
TEST(queue_join_task_done) {
  reset();
  assert_rc(run_main(join_main, NULL), 0);
}

/* ---- shutdown ------------------------------------------------------------------------ */

static int shutdown_graceful_main(void *arg) {
  (void)arg;
  asyncio_queue_t *q;
  void *it;
  /* Blocked getters on an empty queue. */
  CHECK_RC(asyncio_queue_new(&q, 2), 0);
  job_t g1 = {q, 1, 0, 0}, g2 = {q, 2, 0, 0};
  asyncio_task_t *tg1 = spawn(getter, &g1), *tg2 = spawn(getter, &g2);
  yield0();
  CHECK_RC(asyncio_queue_shutdown(q, false), 0);
  CHECK(asyncio_queue_is_shutdown(q));
  CHECK_RC(finish(tg1), ASYNCIO_EQUEUESHUTDOWN);
  CHECK_RC(finish(tg2), ASYNCIO_EQUEUESHUTDOWN);
  CHECK_RC(asyncio_queue_put_nowait(q, ITEM(1)), ASYNCIO_EQUEUESHUTDOWN);
  CHECK_RC(asyncio_queue_put(q, ITEM(1)), ASYNCIO_EQUEUESHUTDOWN);
  CHECK_RC(asyncio_queue_free(q), 0);

  /* Blocked putters on a full queue; the items in it still drain. */
  CHECK_RC(asyncio_queue_new(&q, 2), 0);
  CHECK_RC(asyncio_queue_put_nowait(q, ITEM(10)), 0);
  CHECK_RC(asyncio_queue_put_nowait(q, ITEM(20)), 0);
  job_t p1 = {q, 30, 0, 0}, p2 = {q, 40, 0, 0};
  asyncio_task_t *tp1 = spawn(putter, &p1), *tp2 = spawn(putter, &p2);
  yield0();
  CHECK_RC(asyncio_queue_shutdown(q, false), 0);
  CHECK_RC(finish(tp1), ASYNCIO_EQUEUESHUTDOWN);
  CHECK_RC(finish(tp2), ASYNCIO_EQUEUESHUTDOWN);
  CHECK(asyncio_queue_qsize(q) == 2);
  CHECK_RC(asyncio_queue_get(q, &it), 0);
  CHECK(INT(it) == 10);
  CHECK_RC(asyncio_queue_get_nowait(q, &it), 0);
  CHECK(INT(it) == 20);
  CHECK_RC(asyncio_queue_get(q, &it), ASYNCIO_EQUEUESHUTDOWN);
  CHECK_RC(asyncio_queue_get_nowait(q, &it), ASYNCIO_EQUEUESHUTDOWN);
  /* Not immediate: the items were not marked done. */
  CHECK_RC(asyncio_queue_task_done(q), 0);
  CHECK_RC(asyncio_queue_task_done(q), 0);
  CHECK_RC(asyncio_queue_task_done(q), -EINVAL);
  CHECK_ORDER(0);
  CHECK_RC(asyncio_queue_free(q), 0);
  return 0;
}

/* shutdown(): blocked getters and putters fail with QUEUESHUTDOWN; remaining items still drain. */
TEST(queue_shutdown_graceful) {
  reset();
  assert_rc(run_main(shutdown_graceful_main, NULL), 0);
}

static int dropped[16];
static int ndropped;
static void drop_item(void *item, void *arg) {
  CHECK(arg == (void *)dropped);
  if (ndropped < 16) dropped[ndropped++] = INT(item);
}

static int shutdown_immediate_main(void *arg) {
  (void)arg;
  asyncio_queue_t *q;
  void *it;
  ndropped = 0;
  CHECK_RC(asyncio_queue_new(&q, 3), 0);
  CHECK_RC(asyncio_queue_set_drop(q, drop_item, dropped), 0);
  for (int i = 1; i <= 3; i++) CHECK_RC(asyncio_queue_put_nowait(q, ITEM(i)), 0);
  CHECK_RC(asyncio_queue_get_nowait(q, &it), 0); /* one taken, not yet done */
  CHECK_RC(asyncio_queue_put_nowait(q, ITEM(4)), 0);
  job_t p = {q, 5, 0, 0}, jj = {q, 99, 0, 0};
  asyncio_task_t *tp = spawn(putter, &p);
  asyncio_task_t *tj = spawn(joiner, &jj);
  yield0();
  CHECK_RC(asyncio_queue_shutdown(q, true), 0);
  /* Items 2, 3, 4 dropped and counted done; item 1 is still outstanding. */
  CHECK(ndropped == 3 && dropped[0] == 2 && dropped[1] == 3 && dropped[2] == 4);
  CHECK(asyncio_queue_empty(q));
  CHECK_RC(finish(tp), ASYNCIO_EQUEUESHUTDOWN);
  yield0();
  CHECK(!asyncio_future_done(tj));
  CHECK_RC(asyncio_queue_get_nowait(q, &it), ASYNCIO_EQUEUESHUTDOWN);
  CHECK_RC(asyncio_queue_task_done(q), 0); /* for item 1: join is released */
  CHECK_RC(finish(tj), 0);
  CHECK_ORDER(1, 99);
  CHECK_RC(asyncio_queue_free(q), 0);

  /* Immediate shutdown with blocked getters, and items left at free() time. */
  ndropped = 0;
  CHECK_RC(asyncio_queue_new(&q, 0), 0);
  CHECK_RC(asyncio_queue_set_drop(q, drop_item, dropped), 0);
  job_t g = {q, 1, 0, 0};
  asyncio_task_t *tg = spawn(getter, &g);
  yield0();
  CHECK_RC(asyncio_queue_shutdown(q, true), 0);
  CHECK_RC(finish(tg), ASYNCIO_EQUEUESHUTDOWN);
  CHECK_RC(asyncio_queue_free(q), 0);
  CHECK_RC(asyncio_queue_new(&q, 0), 0);
  CHECK_RC(asyncio_queue_set_drop(q, drop_item, dropped), 0);
  CHECK_RC(asyncio_queue_put_nowait(q, ITEM(7)), 0);
  CHECK_RC(asyncio_queue_free(q), 0);
  CHECK(ndropped == 1 && dropped[0] == 7);
  return 0;
}

/* shutdown(immediate=True): items dropped and counted done (join released), waiters fail. */
TEST(queue_shutdown_immediate) {
  reset();
  assert_rc(run_main(shutdown_immediate_main, NULL), 0);
}

/* ---- memory ---------------------------------------------------------------------------- */

static int pong(void *arg) {
  asyncio_queue_t **qs = arg;
  void *it;
  for (;;) {
    int rc = asyncio_queue_get(qs[0], &it);
    if (rc < 0) return rc == ASYNCIO_EQUEUESHUTDOWN ? 0 : rc;
    CHECK_RC(asyncio_queue_put(qs[1], it), 0);
  }
}

static long steady_allocs;

static int steady_main(void *arg) {
  (void)arg;
  asyncio_queue_t *qs[2];
  void *it;
  CHECK_RC(asyncio_queue_new(&qs[0], 4), 0);
  CHECK_RC(asyncio_priorityqueue_new(&qs[1], 0, by_value, NULL), 0);
  asyncio_task_t *t = spawn(pong, qs);
  for (int round = 0; round < 2; round++) {
    long before = harness_total_allocs();
    for (int i = 0; i < 1000; i++) {
      CHECK_RC(asyncio_queue_put(qs[0], ITEM(i)), 0);
      CHECK_RC(asyncio_queue_get(qs[1], &it), 0);
      CHECK(INT(it) == i);
    }
    steady_allocs = harness_total_allocs() - before; /* the second round counts */
  }
  CHECK_RC(asyncio_queue_shutdown(qs[0], false), 0);
  CHECK_RC(finish(t), 0);
  CHECK_RC(asyncio_queue_free(qs[0]), 0);
  CHECK_RC(asyncio_queue_free(qs[1]), 0);
  return 0;
}

/* Ping-pong through two queues: after warm-up, put/get (blocking ones included) allocate nothing. */
TEST(queue_steady_state_allocates_nothing) {
  reset();
  assert_rc(run_main(steady_main, NULL), 0);
  assert_int_equal(steady_allocs, 0);
}

/* The storage cannot grow: put_nowait returns -ENOMEM and the queue is unchanged. */
TEST(queue_growth_enomem) {
  reset();
  asyncio_queue_t *q;
  void *it;
  assert_ok(asyncio_queue_new(&q, 0));
  for (int i = 0; i < 8; i++) assert_ok(asyncio_queue_put_nowait(q, ITEM(i)));
  harness_fail_alloc_after(1);
  assert_rc(asyncio_queue_put_nowait(q, ITEM(8)), -ENOMEM);
  assert_int_equal(asyncio_queue_qsize(q), 8);
  assert_ok(asyncio_queue_put_nowait(q, ITEM(8)));
  for (int i = 0; i <= 8; i++) {
    assert_ok(asyncio_queue_get_nowait(q, &it));
    assert_int_equal(INT(it), i);
  }
  assert_ok(asyncio_queue_task_done(q));
  assert_ok(asyncio_queue_free(q));
}

static int steal_main(void *arg) {
  (void)arg;
  asyncio_queue_t *q;
  void *it;
  CHECK_RC(asyncio_queue_new(&q, 0), 0);
  job_t a = {q, 1, 0, 0};
  asyncio_task_t *ta = spawn(getter, &a);
  yield0();
  CHECK_RC(asyncio_queue_put_nowait(q, ITEM(5)), 0); /* wakes a ... */
  CHECK_RC(asyncio_queue_get_nowait(q, &it), 0);     /* ... but the item is taken first */
  CHECK(INT(it) == 5);
  yield0();
  CHECK(!asyncio_future_done(ta)); /* a found the queue empty and waits again */
  CHECK_RC(asyncio_queue_put_nowait(q, ITEM(6)), 0);
  CHECK_RC(finish(ta), 0);
  CHECK(a.item == ITEM(6));
  CHECK_ORDER(1, 6);
  CHECK_RC(asyncio_queue_free(q), 0);
  return 0;
}

/* A getter woken for an item someone else took first goes back to waiting (no error, no loss). */
TEST(queue_woken_getter_finds_item_taken) {
  reset();
  assert_rc(run_main(steal_main, NULL), 0);
}

static int for_consumer(void *arg) {
  asyncio_queue_t *q = arg;
  void *it;
  int rc;
  ASYNCIO_QUEUE_FOR(rc, q, &it) {
    rec(INT(it));
    CHECK_RC(asyncio_queue_task_done(q), 0);
  }
  return rc;
}

static int for_main(void *arg) {
  (void)arg;
  asyncio_queue_t *q;
  CHECK_RC(asyncio_queue_new(&q, 2), 0);
  asyncio_task_t *c = spawn(for_consumer, q);
  for (int i = 1; i <= 5; i++) CHECK_RC(asyncio_queue_put(q, ITEM(i)), 0);
  CHECK_RC(asyncio_queue_join(q), 0);
  CHECK(!asyncio_future_done(c)); /* waiting in get() on the empty queue */
  CHECK_RC(asyncio_queue_put_nowait(q, ITEM(6)), 0);
  CHECK_RC(asyncio_queue_shutdown(q, false), 0); /* graceful: 6 is still consumed */
  CHECK_RC(finish(c), ASYNCIO_EQUEUESHUTDOWN);
  CHECK_ORDER(6, 1, 2, 3, 4, 5, 6);
  CHECK_RC(asyncio_queue_free(q), 0);
  return 0;
}

/* ASYNCIO_QUEUE_FOR consumes in order, waits on an empty queue, ends with QUEUESHUTDOWN after draining. */
TEST(queue_for_loop_until_shutdown) {
  reset();
  assert_rc(run_main(for_main, NULL), 0);
}

static int scoped_get(asyncio_queue_t *q, void **it) {
  asyncio_timeout_t *cm;
  int rc = asyncio_timeout_enter(&cm, 0.05);
  if (rc < 0) return rc;
  rc = asyncio_timeout_exit(cm, asyncio_queue_get(q, it));
  asyncio_timeout_free(cm);
  return rc;
}

static int scoped_put(asyncio_queue_t *q, void *it) {
  asyncio_timeout_t *cm;
  int rc = asyncio_timeout_enter(&cm, 0.05);
  if (rc < 0) return rc;
  rc = asyncio_timeout_exit(cm, asyncio_queue_put(q, it));
  asyncio_timeout_free(cm);
  return rc;
}

static int queue_scoped_main(void *arg) {
  (void)arg;
  asyncio_queue_t *q;
  void *it = NULL;
  CHECK_RC(asyncio_queue_new(&q, 1), 0);
  CHECK_RC(scoped_get(q, &it), -ETIMEDOUT); /* empty */
  CHECK_RC(scoped_put(q, ITEM(1)), 0);
  CHECK_RC(scoped_put(q, ITEM(2)), -ETIMEDOUT); /* full: 2 is not in */
  CHECK(asyncio_queue_qsize(q) == 1);
  CHECK_RC(scoped_get(q, &it), 0);
  CHECK(INT(it) == 1);
  CHECK(asyncio_queue_empty(q));
  CHECK_RC(asyncio_queue_task_done(q), 0);
  CHECK_RC(asyncio_queue_free(q), 0);
  return 0;
}

/* get/put under a timeout scope: -ETIMEDOUT, and the queue neither loses nor gains an item. */
TEST(queue_waits_honour_timeout_scope) {
  reset();
  assert_rc(run_main(queue_scoped_main, NULL), 0);
}
