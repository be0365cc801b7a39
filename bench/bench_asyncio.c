/*
 * bench/bench_asyncio.c - the C side of the benchmarks (issue 2).
 *
 * The same five workloads run in bench/peers/bench_asyncio.py (Python asyncio
 * and uvloop) and bench/peers/bench.go (goroutines); bench/run.sh runs them
 * all and prints one table.  docs/bench.md describes the methodology.
 *
 *   bench_asyncio time [ROW ...]   rows switch, create, call_soon, timers
 *                                  (all when none is named): warm up,
 *                                  calibrate, then BENCH_REPS repetitions of
 *                                  about BENCH_TARGET_MS each; prints
 *                                  "RESULT <row> <median ns per op>"
 *   bench_asyncio memory N         N tasks asleep in asyncio_sleep(3600);
 *                                  prints "RESULT memory <RSS bytes per task>"
 *   bench_asyncio once ROW N       ROW with exactly N operations, no
 *                                  calibration (for callgrind: run.sh takes
 *                                  the difference of two N)
 *
 * Everything runs inside one asyncio_run(), so the loop's pools (task
 * objects, stacks, handles) are warm after the first repetition, as they
 * would be in a long-running program.  This is a benchmark, not a test: it
 * checks return codes only to refuse to print a figure from a broken run.
 */
#define _GNU_SOURCE
#include <asyncio.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CREATE_BATCH 1000   /* tasks created, then awaited, per batch */
#define CALL_SOON_BATCH 1000 /* callbacks queued per batch */
#define TIMER_BATCH 10000   /* timers scheduled per batch */

static int reps = 7;
static double target_ns = 100e6;

static void die(const char *what, int rc) {
  fprintf(stderr, "bench_asyncio: %s: %s (%d)\n", what, asyncio_strerror(rc), rc);
  exit(1);
}

#define CHECK(call)                        \
  do {                                     \
    int rc_ = (call);                      \
    if (rc_ < 0) die(#call, rc_);          \
  } while (0)

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- (1) context switch: two tasks yielding to each other ---------------- */

static int pinger(void *arg) {
  uint64_t n = *(const uint64_t *)arg;
  for (uint64_t i = 0; i < n; i++) CHECK(asyncio_sleep(0));
  return 0;
}

/* n switches: each of the two tasks yields n/2 times. */
static double bench_switch(uint64_t n) {
  uint64_t half = n / 2;
  asyncio_task_t *a, *b;
  uint64_t t0 = now_ns();
  CHECK(asyncio_create_task(&a, pinger, &half, NULL));
  CHECK(asyncio_create_task(&b, pinger, &half, NULL));
  CHECK(asyncio_await(a, NULL));
  CHECK(asyncio_await(b, NULL));
  uint64_t t1 = now_ns();
  asyncio_task_free(a);
  asyncio_task_free(b);
  return (double)(t1 - t0);
}

/* ---- (2) create + complete: a task that returns at once ------------------ */

static int nop(void *arg) {
  (void)arg;
  return 0;
}

static double bench_create(uint64_t n) {
  static asyncio_task_t *tasks[CREATE_BATCH];
  uint64_t t0 = now_ns();
  for (uint64_t done = 0; done < n;) {
    uint64_t b = n - done < CREATE_BATCH ? n - done : CREATE_BATCH;
    for (uint64_t i = 0; i < b; i++) CHECK(asyncio_create_task(&tasks[i], nop, NULL, NULL));
    for (uint64_t i = 0; i < b; i++) {
      CHECK(asyncio_await(tasks[i], NULL));
      asyncio_task_free(tasks[i]);
    }
    done += b;
  }
  return (double)(now_ns() - t0);
}

/* ---- (3) call_soon throughput ------------------------------------------- */

static volatile uint64_t callbacks_run;

static void count_cb(void *arg) {
  (void)arg;
  callbacks_run++;
}

static double bench_call_soon(uint64_t n) {
  asyncio_loop_t *loop = asyncio_get_running_loop();
  uint64_t t0 = now_ns();
  for (uint64_t done = 0; done < n;) {
    uint64_t b = n - done < CALL_SOON_BATCH ? n - done : CALL_SOON_BATCH;
    for (uint64_t i = 0; i < b; i++) CHECK(asyncio_loop_call_soon(loop, count_cb, NULL, NULL));
    /* FIFO: this task resumes after every callback queued above has run. */
    CHECK(asyncio_sleep(0));
    done += b;
  }
  return (double)(now_ns() - t0);
}

/* ---- (4) timers: call_later with varied tiny delays ---------------------- */

static uint64_t timers_fired, timers_wanted;
static asyncio_future_t *timers_done;

static void timer_cb(void *arg) {
  (void)arg;
  if (++timers_fired == timers_wanted) CHECK(asyncio_future_set_result(timers_done, 0, NULL));
}

/*
 * The i-th delay of a batch: a permutation of 0, 10, ..., 9990 ns, the same in
 * every runtime.  Real time, not ASYNCIO_CLOCK_VIRTUAL (Go has no virtual
 * clock): the delays are shorter than scheduling a batch takes, so the
 * timers are due when the loop looks and the figure is CPU time (heap push,
 * heap pop, callback), not waiting.
 */
static double timer_delay(uint64_t i) { return (double)((i * 7919) % 1000) * 10e-9; }

static double bench_timers(uint64_t n) {
  asyncio_loop_t *loop = asyncio_get_running_loop();
  uint64_t t0 = now_ns();
  for (uint64_t done = 0; done < n;) {
    uint64_t b = n - done < TIMER_BATCH ? n - done : TIMER_BATCH;
    CHECK(asyncio_future_new(&timers_done, loop));
    timers_fired = 0;
    timers_wanted = b;
    for (uint64_t i = 0; i < b; i++)
      CHECK(asyncio_loop_call_later(loop, timer_delay(i), timer_cb, NULL, NULL));
    CHECK(asyncio_await(timers_done, NULL));
    asyncio_future_free(timers_done);
    done += b;
  }
  return (double)(now_ns() - t0);
}

/* ---- (5) memory per idle task ------------------------------------------- */

static long statm_resident_bytes(void) {
  long size = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "re");
  if (!f) return -1;
  if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = -1;
  fclose(f);
  return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

/* VmPTE (page tables): not part of RSS, reported alongside it. */
static long status_kib(const char *field) {
  char line[256];
  long v = -1;
  size_t len = strlen(field);
  FILE *f = fopen("/proc/self/status", "re");
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, field, len) == 0 && line[len] == ':') {
      v = strtol(line + len + 1, NULL, 10);
      break;
    }
  fclose(f);
  return v;
}

static int sleeper(void *arg) {
  (void)arg;
  asyncio_sleep(3600); /* -ECANCELED when asyncio_run cancels it at the end */
  return 0;
}

static void bench_memory(uint64_t n) {
  long rss0 = statm_resident_bytes(), pte0 = status_kib("VmPTE");
  for (uint64_t i = 0; i < n; i++) CHECK(asyncio_create_task(NULL, sleeper, NULL, NULL));
  /* FIFO: every task has started and is asleep when this returns. */
  CHECK(asyncio_sleep(0));
  long rss1 = statm_resident_bytes(), pte1 = status_kib("VmPTE");
  printf("RESULT memory %.1f\n", (double)(rss1 - rss0) / (double)n);
  printf("INFO memory_pagetables %.1f\n", (double)(pte1 - pte0) * 1024.0 / (double)n);
}

/* ---- driver ----------------------------------------------------------------- */

typedef struct row {
  const char *name;
  double (*fn)(uint64_t n); /* elapsed ns for n operations */
  uint64_t start_n;
} row_t;

static const row_t rows[] = {
    {"switch", bench_switch, 2000},
    {"create", bench_create, CREATE_BATCH},
    {"call_soon", bench_call_soon, CALL_SOON_BATCH},
    {"timers", bench_timers, TIMER_BATCH},
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
  /* Double n until one run takes 20 ms, then size the repetitions. */
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

typedef struct args {
  int argc;
  char **argv;
} args_t;

static const row_t *find_row(const char *name) {
  for (size_t i = 0; i < NROWS; i++)
    if (strcmp(rows[i].name, name) == 0) return &rows[i];
  fprintf(stderr, "bench_asyncio: unknown row '%s'\n", name);
  exit(2);
}

static int bench_main(void *arg) {
  args_t *a = arg;
  const char *mode = a->argv[1];
  if (strcmp(mode, "time") == 0) {
    if (a->argc <= 2)
      for (size_t i = 0; i < NROWS; i++) measure(&rows[i]);
    for (int i = 2; i < a->argc; i++) measure(find_row(a->argv[i]));
  } else if (strcmp(mode, "memory") == 0) {
    bench_memory(a->argc > 2 ? strtoull(a->argv[2], NULL, 10) : 100000);
  } else if (strcmp(mode, "once") == 0 && a->argc == 4) {
    const row_t *r = find_row(a->argv[2]);
    uint64_t n = strtoull(a->argv[3], NULL, 10);
    printf("RESULT %s %.3f\n", r->name, r->fn(n) / (double)n);
  } else {
    fprintf(stderr, "usage: bench_asyncio time [ROW...] | memory N | once ROW N\n");
    return 2;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_asyncio time [ROW...] | memory N | once ROW N\n");
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
