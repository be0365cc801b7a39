/*
 * countsync - the blocking counterpart of countasync: count() prints "One",
 * blocks the whole program for one second and prints "Two", three times in a
 * row, so it takes three seconds where countasync takes one.
 *
 * Python origin: countsync.py from Real Python's "Async IO in Python: A
 * Complete Walkthrough".  Like the original (which imports only `time`) it
 * uses no asyncio at all: that is the point of the comparison.  The original
 * prints the literal text "__file__" by mistake; the port prints its name, as
 * the article's transcript shows.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double perf_counter(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* time.sleep(): blocks the calling thread, resuming after signal interruptions. */
static void sleep_seconds(double seconds) {
  struct timespec req = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
  while (nanosleep(&req, &req) < 0 && errno == EINTR) {
  }
}

static void count(void) {
  printf("One\n");
  sleep_seconds(1.0);
  printf("Two\n");
}

int main(int argc, char **argv) {
  const char *prog = argc > 0 ? argv[0] : "countsync";
  if (strrchr(prog, '/')) prog = strrchr(prog, '/') + 1;
  double start = perf_counter();
  for (int i = 0; i < 3; i++) count();
  double elapsed = perf_counter() - start;
  printf("%s executed in %0.2f seconds.\n", prog, elapsed);
  return 0;
}
