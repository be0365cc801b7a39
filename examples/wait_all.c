/*
 * wait_all - wait for a collection of tasks with asyncio.wait().
 *
 * Python origin: "Example of Waiting for All Tasks" (part 11.3) of
 * SuperFastPython's "Python Asyncio: The Complete Guide": ten tasks each
 * sleep a random fraction of a second and report it; main() waits for all
 * of them (return_when=ALL_COMPLETED) and prints "All done".  The tasks
 * finish in the order of their random delays.
 *
 * The original draws from an unseeded random(); the port takes the seed on
 * its command line and reproduces Python's random.random() for it (see
 * pyrandom.h), so `wait_all N` prints what the original prints after
 * random.seed(N), the numbers in the same shortest round-trip form.
 *
 * Usage: wait_all [SEED]   (default 1)
 */
#include <asyncio.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* header-only; this program draws only random(), not randint() */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "pyrandom.h"
#pragma GCC diagnostic pop

#define NTASKS 10

static pyrandom_t rng;

/* random.random(): 53 random bits from two 32-bit outputs. */
static double py_random(void) {
  uint32_t a = pyrandom__next32(&rng) >> 5, b = pyrandom__next32(&rng) >> 6;
  return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

/* repr(float): the shortest decimal that reads back as the same double. */
static const char *py_repr(double v, char *buf, size_t n) {
  for (int p = 1; p <= 17; p++) {
    snprintf(buf, n, "%.*g", p, v);
    if (strtod(buf, NULL) == v) break;
  }
  return buf;
}

static int task_coro(void *arg) {
  int i = (int)(intptr_t)arg;
  double value = py_random();
  int rc = asyncio_sleep(value);
  if (rc < 0) return rc;
  char buf[32];
  printf(">task %d done with %s\n", i, py_repr(value, buf, sizeof buf));
  return 0;
}

static int main_coro(void *arg) {
  (void)arg;
  asyncio_task_t *tasks[NTASKS];
  int n = 0, rc = 0;
  for (; n < NTASKS; n++) {
    rc = asyncio_create_task(&tasks[n], task_coro, (void *)(intptr_t)n, NULL);
    if (rc < 0) break;
  }
  bool done[NTASKS];
  if (rc == 0) rc = asyncio_wait(tasks, NTASKS, ASYNCIO_NO_TIMEOUT, ASYNCIO_ALL_COMPLETED, done);
  if (rc >= 0) printf("All done\n");
  for (int i = 0; i < n; i++) asyncio_task_free(tasks[i]);
  return rc < 0 ? rc : 0;
}

int main(int argc, char **argv) {
  unsigned long long seed = 1;
  if (argc > 2) {
    fprintf(stderr, "usage: %s [SEED]\n", argv[0]);
    return 2;
  }
  if (argc == 2) {
    char *end;
    errno = 0;
    seed = strtoull(argv[1], &end, 10);
    if (errno != 0 || end == argv[1] || *end != '\0' || argv[1][0] == '-') {
      fprintf(stderr, "%s: invalid seed '%s'\n", argv[0], argv[1]);
      return 2;
    }
  }
  pyrandom_seed(&rng, seed);
  int rc = asyncio_run(main_coro, NULL, NULL);
  if (rc < 0) {
    fprintf(stderr, "%s: %s\n", argv[0], asyncio_strerror(rc));
    return 1;
  }
  return 0;
}
