/*
 * countasync - the "Hello World" of asyncio: three count() coroutines that
 * each print "One", sleep one second and print "Two", run concurrently.
 *
 * Python origin: countasync.py from Real Python's "Async IO in Python: A
 * Complete Walkthrough".  asyncio.gather(count(), count(), count()) wraps the
 * three coroutines in tasks, in order, and waits for all of them; the port
 * creates the three tasks and awaits each in turn, which prints the same
 * transcript: three "One", then, one second later, three "Two".  The program
 * then reports how long it ran (Python prints __file__; the port prints its
 * own name).
 */
#include <asyncio.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define NCOUNT 3

static double perf_counter(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int count(void *arg) {
  (void)arg;
  printf("One\n");
  int rc = asyncio_sleep(1.0);
  if (rc < 0) return rc;
  printf("Two\n");
  return 0;
}

/*
 * gather(): the first error (or our own cancellation) cancels the tasks not
 * yet awaited, as asyncio.run() would at shutdown; every task is awaited so
 * none is left behind.
 */
static int main_coro(void *arg) {
  (void)arg;
  asyncio_task_t *tasks[NCOUNT];
  int created = 0, rc = 0;
  for (; created < NCOUNT; created++) {
    rc = asyncio_create_task(&tasks[created], count, NULL, NULL);
    if (rc < 0) break;
  }
  for (int i = 0; i < created; i++) {
    if (rc < 0) asyncio_task_cancel(tasks[i], NULL);
    int r = asyncio_await(tasks[i], NULL);
    if (r < 0 && rc >= 0) rc = r;
    asyncio_task_free(tasks[i]);
  }
  return rc < 0 ? rc : 0;
}

int main(int argc, char **argv) {
  const char *prog = argc > 0 ? argv[0] : "countasync";
  if (strrchr(prog, '/')) prog = strrchr(prog, '/') + 1;
  double start = perf_counter();
  int rc = asyncio_run(main_coro, NULL, NULL);
  double elapsed = perf_counter() - start;
  if (rc < 0) {
    fprintf(stderr, "%s: %s\n", prog, asyncio_strerror(rc));
    return 1;
  }
  printf("%s executed in %0.2f seconds.\n", prog, elapsed);
  return 0;
}
