/*
 * bench/bench_timeouts.c - benchmarks of task groups, timeout scopes and
 * wait_for (issue 3).  The same workloads run in
 * bench/peers/bench_timeouts.py (asyncio, or uvloop with --uvloop);
 * bench/run_timeouts.sh runs both and prints a table with ratios.
 *
 *   bench_timeouts time [ROW ...]   rows taskgroup, wait_for, timeout (all
 *                                   when none is named): warm up, calibrate,
 *                                   then BENCH_REPS repetitions of about
 *                                   BENCH_TARGET_MS each; prints
 *                                   "RESULT <row> <median ns per op>"
 *
 * Rows (one "op" each):
 *   taskgroup  one child of a TaskGroup of 10,000 (BENCH_GROUP_SIZE):
 *              enter, create the children (each returns at once), exit
 *              (waits for them all).
 *   wait_for   wait_for(fut, 10 s) on a future a call_soon callback
 *              completes: the deadline never fires (the fast path: arm the
 *              timer, suspend, resume, disarm).
 *   timeout    `async with timeout(10): await sleep(0)`.
 *
 * Everything runs inside one asyncio_run(), so the loop's pools are warm
 * after the first repetition.  Return codes are checked only to refuse to
 * print a figure from a broken run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <asyncio.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t group_size = 10000; /* BENCH_GROUP_SIZE */
#define BATCH 1000

static int reps = 7;
static double target_ns = 100e6;

static void die(const char *what, int rc) {
  fprintf(stderr, "bench_timeouts: %s: %s (%d)\n", what, asyncio_strerror(rc), rc);
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

/* ---- taskgroup ---------------------------------------------------------- */

static int nop(void *arg) {
  (void)arg;
  return 0;
}

/* n children in groups of group_size. */
static double bench_taskgroup(uint64_t n) {
  uint64_t t0 = now_ns();
  for (uint64_t done = 0; done < n; done += group_size) {
    asyncio_taskgroup_t *tg;
    CHECK(asyncio_taskgroup_enter(&tg));
    for (uint64_t i = 0; i < group_size; i++)
      CHECK(asyncio_taskgroup_create_task(tg, NULL, nop, NULL, NULL));
    CHECK(asyncio_taskgroup_exit(tg, 0));
    CHECK(asyncio_taskgroup_free(tg));
  }
  return (double)(now_ns() - t0);
}

/* ---- wait_for ------------------------------------------------------------- */

static void complete(void *arg) { asyncio_future_set_result((asyncio_future_t *)arg, 1, NULL); }

static double bench_wait_for(uint64_t n) {
  asyncio_loop_t *loop = asyncio_get_running_loop();
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < n; i++) {
    asyncio_future_t *f;
    CHECK(asyncio_future_new(&f, loop));
    CHECK(asyncio_loop_call_soon(loop, complete, f, NULL));
    if (asyncio_wait_for(f, 10.0, NULL) != 1) die("wait_for", -1);
    asyncio_future_free(f);
  }
  return (double)(now_ns() - t0);
}

/* ---- timeout scope --------------------------------------------------------- */

static double bench_timeout(uint64_t n) {
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < n; i++) {
    asyncio_timeout_t *cm;
    CHECK(asyncio_timeout_enter(&cm, 10.0));
    CHECK(asyncio_timeout_exit(cm, asyncio_sleep(0)));
    asyncio_timeout_free(cm);
  }
  return (double)(now_ns() - t0);
}

/* ---- driver ------------------------------------------------------------------ */

typedef struct row {
  const char *name;
  double (*fn)(uint64_t n);
  uint64_t start_n;
} row_t;

static row_t rows[] = {
    {"taskgroup", bench_taskgroup, 0},
    {"wait_for", bench_wait_for, BATCH},
    {"timeout", bench_timeout, BATCH},
};
#define NROWS (sizeof rows / sizeof rows[0])

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void measure(const row_t *r) {
  uint64_t n = r->start_n;
  r->fn(n); /* warm-up: pools, stacks, caches */
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
  fprintf(stderr, "bench_timeouts: unknown row %s\n", name);
  exit(2);
}

typedef struct args {
  int argc;
  char **argv;
} args_t;

static int bench_main(void *arg) {
  args_t *a = arg;
  if (a->argc == 2)
    for (size_t i = 0; i < NROWS; i++) measure(&rows[i]);
  for (int i = 2; i < a->argc; i++) measure(find_row(a->argv[i]));
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "time") != 0) {
    fprintf(stderr, "usage: bench_timeouts time [taskgroup|wait_for|timeout ...]\n");
    return 2;
  }
  for (int i = 2; i < argc; i++) find_row(argv[i]);
  const char *e;
  if ((e = getenv("BENCH_REPS")) && atoi(e) > 0) reps = atoi(e);
  if ((e = getenv("BENCH_TARGET_MS")) && atof(e) > 0) target_ns = atof(e) * 1e6;
  if ((e = getenv("BENCH_GROUP_SIZE")) && atoll(e) > 0) group_size = (uint64_t)atoll(e);
  rows[0].start_n = group_size;
  printf("INFO runtime asyncio-for-c %d.%d.%d\n", ASYNCIO_VERSION_MAJOR, ASYNCIO_VERSION_MINOR,
         ASYNCIO_VERSION_PATCH);
  args_t a = {argc, argv};
  asyncio_run_options_t o = {0};
  o.no_sigint_handler = true;
  int rc = asyncio_run(bench_main, &a, &o);
  if (rc < 0) die("asyncio_run", rc);
  return 0;
}
