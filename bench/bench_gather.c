/*
 * bench_gather.c - asyncio.gather over 10,000 tasks (issue 3), against
 * bench/peers/bench_gather.py (asyncio, uvloop); bench/run_gather.sh runs
 * both and prints the table.
 *
 *   bench_gather [N]   N tasks per gather (default 10000)
 *
 * Rows, each the median of BENCH_REPS (7) runs after one warm-up run, in
 * nanoseconds per task (one gather of N children, from the call until the
 * awaiting task has the outcome, children freed):
 *   gather_coros   gather(*(nop() for _ in range(N))): the gather wraps N
 *                  coroutines that return at once in tasks and awaits them
 *   gather_tasks   N tasks created first, then gather(*tasks) awaited
 *   gather_yield   as gather_coros, each child yielding once (sleep(0))
 * Prints "RESULT <row> <ns per task>".
 */
#include <asyncio.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static size_t n_tasks = 10000;
static int reps = 7;

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int nop(void *arg) {
  (void)arg;
  return 0;
}

static int yield_once(void *arg) {
  (void)arg;
  return asyncio_sleep(0);
}

static asyncio_coro_call_t *calls;
static asyncio_task_t **tasks;

/* One gather over coroutines: create, await, free. */
static int run_coros(asyncio_coro_fn fn) {
  for (size_t i = 0; i < n_tasks; i++) calls[i] = (asyncio_coro_call_t){fn, NULL};
  asyncio_future_t *g;
  int rc = asyncio_gather_coros(&g, calls, n_tasks, NULL);
  if (rc < 0) return rc;
  rc = asyncio_await(g, NULL);
  asyncio_future_free(g);
  return rc;
}

static int run_tasks(void) {
  for (size_t i = 0; i < n_tasks; i++) {
    int rc = asyncio_create_task(&tasks[i], nop, NULL, NULL);
    if (rc < 0) return rc;
  }
  asyncio_future_t *g;
  int rc = asyncio_gather(&g, tasks, n_tasks, NULL);
  if (rc == 0) {
    rc = asyncio_await(g, NULL);
    asyncio_future_free(g);
  }
  for (size_t i = 0; i < n_tasks; i++) asyncio_task_free(tasks[i]);
  return rc;
}

static int run_row(int row) {
  switch (row) {
  case 0: return run_coros(nop);
  case 1: return run_tasks();
  default: return run_coros(yield_once);
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int main_coro(void *arg) {
  (void)arg;
  static const char *names[] = {"gather_coros", "gather_tasks", "gather_yield"};
  double per[64];
  for (int row = 0; row < 3; row++) {
    int rc = run_row(row); /* warm-up: pools and free lists fill */
    if (rc < 0) return rc;
    for (int k = 0; k < reps; k++) {
      double t0 = now_ns();
      rc = run_row(row);
      per[k] = (now_ns() - t0) / (double)n_tasks;
      if (rc < 0) return rc;
    }
    qsort(per, (size_t)reps, sizeof *per, cmp_double);
    printf("RESULT %s %.3f\n", names[row], per[reps / 2]);
    fflush(stdout);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1) n_tasks = strtoul(argv[1], NULL, 10);
  const char *e = getenv("BENCH_REPS");
  if (e && atoi(e) > 0) reps = atoi(e) > 64 ? 64 : atoi(e);
  if (n_tasks == 0) {
    fprintf(stderr, "usage: bench_gather [N > 0]\n");
    return 2;
  }
  calls = malloc(n_tasks * sizeof *calls);
  tasks = malloc(n_tasks * sizeof *tasks);
  if (!calls || !tasks) return 1;
  int rc = asyncio_run(main_coro, NULL, NULL);
  free(calls);
  free(tasks);
  if (rc < 0) {
    fprintf(stderr, "bench_gather: %s\n", asyncio_strerror(rc));
    return 1;
  }
  return 0;
}
