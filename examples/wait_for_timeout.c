/*
 * wait_for_timeout - give up waiting for a coroutine after a time limit.
 *
 * Python origin: "Example of Asyncio wait_for() With a Timeout" (part 12.3)
 * of SuperFastPython's "Python Asyncio: The Complete Guide": task_coro()
 * reports a random delay between 1 and 2 seconds and sleeps that long;
 * main() waits for it with wait_for(timeout=0.2), which times out, cancels
 * the coroutine and raises TimeoutError ("Gave up waiting, task canceled").
 *
 * The original draws from an unseeded random(); the port takes the seed on
 * its command line and reproduces Python's random.random() (pyrandom.h).
 * asyncio_wait_for_coro() is wait_for() over a coroutine: it wraps it in a
 * task, as Python does.
 *
 * Usage: wait_for_timeout [SEED]   (default 1)
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

static pyrandom_t rng;

static double py_random(void) {
  uint32_t a = pyrandom__next32(&rng) >> 5, b = pyrandom__next32(&rng) >> 6;
  return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

static const char *py_repr(double v, char *buf, size_t n) {
  for (int p = 1; p <= 17; p++) {
    snprintf(buf, n, "%.*g", p, v);
    if (strtod(buf, NULL) == v) break;
  }
  return buf;
}

static int task_coro(void *arg) {
  (void)arg;
  double value = 1 + py_random();
  char buf[32];
  printf(">task got %s\n", py_repr(value, buf, sizeof buf));
  int rc = asyncio_sleep(value);
  if (rc < 0) return rc;
  printf(">task done\n");
  return 0;
}

static int main_coro(void *arg) {
  (void)arg;
  int rc = asyncio_wait_for_coro(task_coro, NULL, NULL, 0.2, NULL);
  if (rc == -ETIMEDOUT) {
    printf("Gave up waiting, task canceled\n");
    return 0;
  }
  return rc;
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
