/*
 * chained - coroutine chaining: for each number n, chain(n) awaits part1(n)
 * and feeds its result to part2(n, ...); each part sleeps a random 0-10 s.
 * All chains run concurrently, so the program takes as long as the slowest.
 *
 * Python origin: chained.py from Real Python's "Async IO in Python: A
 * Complete Walkthrough" (random.seed(444); gather(*(chain(n) for n in args))).
 * part1 and part2 are `async def` functions awaited directly, so in C they
 * are plain calls made on the chain task's stack.  The generator is Python's
 * own (pyrandom.h): `chained 9 6 3` prints the article's transcript.
 *
 * Usage: chained [-s SEED] [N ...]   (numbers default to 1 2 3; the -s option
 * is an addition of the port so that tests can pick a short run)
 */
#include <asyncio.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pyrandom.h"

#define PART1_MAX 32  /* "result<n>-1" */
#define PART2_MAX 96  /* "result<n>-2 derived from " + part1's result */

static pyrandom_t rng;

static double perf_counter(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* async def part1(n) -> str: suspends; writes its result into out. */
static int part1(int n, char *out, size_t size) {
  int i = pyrandom_randint(&rng, 0, 10);
  printf("part1(%d) sleeping for %d seconds.\n", n, i);
  int rc = asyncio_sleep(i);
  if (rc < 0) return rc;
  snprintf(out, size, "result%d-1", n);
  printf("Returning part1(%d) == %s.\n", n, out);
  return 0;
}

/* async def part2(n, arg) -> str. */
static int part2(int n, const char *arg, char *out, size_t size) {
  int i = pyrandom_randint(&rng, 0, 10);
  printf("part2(%d, '%s') sleeping for %d seconds.\n", n, arg, i);
  int rc = asyncio_sleep(i);
  if (rc < 0) return rc;
  snprintf(out, size, "result%d-2 derived from %s", n, arg);
  printf("Returning part2(%d, '%s') == %s.\n", n, arg, out);
  return 0;
}

static int chain(void *arg) {
  int n = *(const int *)arg;
  char p1[PART1_MAX], p2[PART2_MAX];
  double start = perf_counter();
  int rc = part1(n, p1, sizeof p1);
  if (rc < 0) return rc;
  rc = part2(n, p1, p2, sizeof p2);
  if (rc < 0) return rc;
  double end = perf_counter() - start;
  printf("-->Chained result%d => %s (took %0.2f seconds).\n", n, p2, end);
  return 0;
}

typedef struct chain_list {
  const int *numbers;
  size_t count;
} chain_list_t;

/* gather(): the first error (or our own cancellation) cancels the rest. */
static int main_coro(void *arg) {
  const chain_list_t *list = arg;
  asyncio_task_t **tasks = calloc(list->count, sizeof *tasks);
  if (!tasks) return -ENOMEM;
  size_t created = 0;
  int rc = 0;
  for (; created < list->count; created++) {
    rc = asyncio_create_task(&tasks[created], chain, (void *)&list->numbers[created], NULL);
    if (rc < 0) break;
  }
  for (size_t i = 0; i < created; i++) {
    if (rc < 0) asyncio_task_cancel(tasks[i], NULL);
    int r = asyncio_await(tasks[i], NULL);
    if (r < 0 && rc >= 0) rc = r;
    asyncio_task_free(tasks[i]);
  }
  free(tasks);
  return rc < 0 ? rc : 0;
}

static int parse_int(const char *s, long min, long max, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < min || v > max) return -EINVAL;
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  static const int default_numbers[] = {1, 2, 3};
  long seed = 444;
  int first = 1;
  if (argc > 2 && strcmp(argv[1], "-s") == 0) {
    if (parse_int(argv[2], 0, LONG_MAX, &seed) < 0) {
      fprintf(stderr, "%s: invalid seed '%s'\n", argv[0], argv[2]);
      return 2;
    }
    first = 3;
  }

  chain_list_t list = {default_numbers, 3};
  int *numbers = NULL;
  if (argc > first) {
    list.count = (size_t)(argc - first);
    numbers = calloc(list.count, sizeof *numbers);
    if (!numbers) {
      fprintf(stderr, "%s: out of memory\n", argv[0]);
      return 1;
    }
    for (size_t i = 0; i < list.count; i++) {
      long v;
      if (parse_int(argv[first + (int)i], INT_MIN, INT_MAX, &v) < 0) {
        fprintf(stderr, "%s: invalid number '%s'\n", argv[0], argv[first + (int)i]);
        free(numbers);
        return 2;
      }
      numbers[i] = (int)v;
    }
    list.numbers = numbers;
  }

  pyrandom_seed(&rng, (uint64_t)seed);
  double start = perf_counter();
  int rc = asyncio_run(main_coro, &list, NULL);
  double end = perf_counter() - start;
  free(numbers);
  if (rc < 0) {
    fprintf(stderr, "%s: %s\n", argv[0], asyncio_strerror(rc));
    return 1;
  }
  printf("Program finished in %0.2f seconds.\n", end);
  return 0;
}
