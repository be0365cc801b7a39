/*
 * bench/bench_sync.c - queues and locks under load (issue 4), the C side.
 *
 * The same three workloads run in bench/peers/bench_sync.py (Python asyncio,
 * uvloop with --uvloop) and bench/peers/bench_sync.go (channels and
 * sync.Mutex, GOMAXPROCS=1); bench/run_sync.sh runs them all and prints one
 * table.
 *
 *   pingpong  two tasks bounce one item through two unbounded queues;
 *             ns per round trip (two puts, two gets, two task switches)
 *   mpmc      4 producers and 4 consumers share one queue of maxsize 128;
 *             the producers put N items in all, then one NULL per consumer
 *             as the stop signal; ns per item
 *   lock      4 tasks take turns on one Lock, each holding it across a
 *             yield (sleep(0)) so that the others are queued on it and
 *             every release hands it to the next waiter; ns per
 *             acquire/release
 *
 *   bench_sync time [ROW ...]   warm up, calibrate, BENCH_REPS repetitions
 *                               of about BENCH_TARGET_MS each; prints
 *                               "RESULT <row> <median ns per op>"
 *   bench_sync once ROW N       ROW with exactly N operations
 *
 * Not a test: return codes are checked only to refuse a figure from a broken
 * run.
 */
#define _GNU_SOURCE
#include <asyncio.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MPMC_PRODUCERS 4
#define MPMC_CONSUMERS 4
#define MPMC_MAXSIZE 128
#define LOCK_TASKS 4

static int reps = 7;
static double target_ns = 100e6;

static void die(const char *what, int rc) {
  fprintf(stderr, "bench_sync: %s: %s (%d)\n", what, asyncio_strerror(rc), rc);
  exit(1);
}

#define CHECK(call)               \
  do {                            \
    int rc_ = (call);             \
    if (rc_ < 0) die(#call, rc_); \
  } while (0)

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Awaits a task and drops it; a failed task fails the run. */
static void join(asyncio_task_t *t) {
  CHECK(asyncio_await(t, NULL));
  asyncio_task_free(t);
}

/* ---- (1) ping-pong through two queues ---------------------------------------- */

typedef struct pp {
  asyncio_queue_t *to, *from;
  uint64_t n;
} pp_t;

static int ponger(void *arg) {
  pp_t *p = arg;
  void *item;
  for (uint64_t i = 0; i < p->n; i++) {
    CHECK(asyncio_queue_get(p->to, &item));
    CHECK(asyncio_queue_put(p->from, item));
  }
  return 0;
}

static double bench_pingpong(uint64_t n) {
  pp_t p = {NULL, NULL, n};
  CHECK(asyncio_queue_new(&p.to, 0));
  CHECK(asyncio_queue_new(&p.from, 0));
  asyncio_task_t *t;
  uint64_t t0 = now_ns();
  CHECK(asyncio_create_task(&t, ponger, &p, NULL));
  void *item;
  for (uint64_t i = 0; i < n; i++) {
    CHECK(asyncio_queue_put(p.to, (void *)(uintptr_t)(i + 1)));
    CHECK(asyncio_queue_get(p.from, &item));
  }
  join(t);
  double ns = (double)(now_ns() - t0);
  CHECK(asyncio_queue_free(p.to));
  CHECK(asyncio_queue_free(p.from));
  return ns;
}

/* ---- (2) many producers, many consumers ------------------------------------------- */

typedef struct mp {
  asyncio_queue_t *q;
  uint64_t per_producer;
  uint64_t consumed;
} mp_t;

static int mp_producer(void *arg) {
  mp_t *m = arg;
  for (uint64_t i = 0; i < m->per_producer; i++)
    CHECK(asyncio_queue_put(m->q, (void *)(uintptr_t)(i + 1)));
  return 0;
}

static int mp_consumer(void *arg) {
  mp_t *m = arg;
  void *item;
  for (;;) {
    CHECK(asyncio_queue_get(m->q, &item));
    if (!item) return 0;
    m->consumed++;
  }
}

static double bench_mpmc(uint64_t n) {
  mp_t m = {NULL, n / MPMC_PRODUCERS, 0};
  CHECK(asyncio_queue_new(&m.q, MPMC_MAXSIZE));
  asyncio_task_t *prod[MPMC_PRODUCERS], *cons[MPMC_CONSUMERS];
  uint64_t t0 = now_ns();
  for (int i = 0; i < MPMC_CONSUMERS; i++) CHECK(asyncio_create_task(&cons[i], mp_consumer, &m, NULL));
  for (int i = 0; i < MPMC_PRODUCERS; i++) CHECK(asyncio_create_task(&prod[i], mp_producer, &m, NULL));
  for (int i = 0; i < MPMC_PRODUCERS; i++) join(prod[i]);
  for (int i = 0; i < MPMC_CONSUMERS; i++) CHECK(asyncio_queue_put(m.q, NULL));
  for (int i = 0; i < MPMC_CONSUMERS; i++) join(cons[i]);
  double ns = (double)(now_ns() - t0);
  if (m.consumed != m.per_producer * MPMC_PRODUCERS) die("mpmc: items lost", -1);
  CHECK(asyncio_queue_free(m.q));
  return ns;
}

/* ---- (3) lock hand-off under contention ----------------------------------------------- */

typedef struct lk {
  asyncio_lock_t *lock;
  uint64_t per_task;
} lk_t;

static int lk_worker(void *arg) {
  lk_t *k = arg;
  for (uint64_t i = 0; i < k->per_task; i++) {
    CHECK(asyncio_lock_acquire(k->lock));
    CHECK(asyncio_sleep(0)); /* hold it across a switch: the others queue */
    CHECK(asyncio_lock_release(k->lock));
  }
  return 0;
}

static double bench_lock(uint64_t n) {
  lk_t k = {NULL, n / LOCK_TASKS};
  CHECK(asyncio_lock_new(&k.lock));
  asyncio_task_t *t[LOCK_TASKS];
  uint64_t t0 = now_ns();
  for (int i = 0; i < LOCK_TASKS; i++) CHECK(asyncio_create_task(&t[i], lk_worker, &k, NULL));
  for (int i = 0; i < LOCK_TASKS; i++) join(t[i]);
  double ns = (double)(now_ns() - t0);
  CHECK(asyncio_lock_free(k.lock));
  return ns;
}

/* ---- driver ------------------------------------------------------------------------ */

typedef struct row {
  const char *name;
  double (*fn)(uint64_t n);
  uint64_t start_n; /* also the granule n is rounded to */
} row_t;

static const row_t rows[] = {
    {"pingpong", bench_pingpong, 1000},
    {"mpmc", bench_mpmc, 1000 * MPMC_PRODUCERS},
    {"lock", bench_lock, 1000 * LOCK_TASKS},
};
#define NROWS (sizeof rows / sizeof rows[0])

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void measure(const row_t *r) {
  uint64_t n = r->start_n;
  r->fn(n); /* warm-up */
  double ns;
  while ((ns = r->fn(n)) < 20e6 && n < ((uint64_t)1 << 34)) n *= 2;
  double scaled = (double)n * target_ns / ns;
  n = scaled < (double)r->start_n ? r->start_n : (uint64_t)scaled;
  n -= n % r->start_n;
  double per[64];
  int k = reps < 64 ? reps : 64;
  for (int i = 0; i < k; i++) per[i] = r->fn(n) / (double)n;
  qsort(per, (size_t)k, sizeof per[0], cmp_double);
  printf("RESULT %s %.3f\n", r->name, per[k / 2]);
  printf("INFO %s n=%llu min=%.3f max=%.3f\n", r->name, (unsigned long long)n, per[0],
         per[k - 1]);
  fflush(stdout);
}

static const row_t *find_row(const char *name) {
  for (size_t i = 0; i < NROWS; i++)
    if (strcmp(rows[i].name, name) == 0) return &rows[i];
  fprintf(stderr, "bench_sync: unknown row '%s'\n", name);
  exit(2);
}

typedef struct args {
  int argc;
  char **argv;
} args_t;

static int bench_main(void *arg) {
  args_t *a = arg;
  if (strcmp(a->argv[1], "time") == 0) {
    if (a->argc <= 2)
      for (size_t i = 0; i < NROWS; i++) measure(&rows[i]);
    for (int i = 2; i < a->argc; i++) measure(find_row(a->argv[i]));
  } else if (strcmp(a->argv[1], "once") == 0 && a->argc == 4) {
    const row_t *r = find_row(a->argv[2]);
    uint64_t n = strtoull(a->argv[3], NULL, 10);
    n -= n % r->start_n;
    if (!n) n = r->start_n;
    printf("RESULT %s %.3f\n", r->name, r->fn(n) / (double)n);
  } else {
    fprintf(stderr, "usage: bench_sync time [ROW...] | once ROW N\n");
    return 2;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_sync time [ROW...] | once ROW N\n");
    return 2;
  }
  const char *e;
  if ((e = getenv("BENCH_REPS")) && atoi(e) > 0) reps = atoi(e);
  if ((e = getenv("BENCH_TARGET_MS")) && atof(e) > 0) target_ns = atof(e) * 1e6;
  args_t a = {argc, argv};
  int rc = asyncio_run(bench_main, &a, NULL);
  if (rc < 0) die("asyncio_run", rc);
  return rc;
}
