/*
 * rand - three makerandom() coroutines draw random integers in [0, 10] until
 * one beats their threshold, sleeping between draws, each in its own colour.
 *
 * Python origin: rand.py from Real Python's "Async IO in Python: A Complete
 * Walkthrough": gather(*(makerandom(i, 10 - i - 1) for i in range(3))) after
 * random.seed(444).  The three tasks share one generator, as the original
 * shares the random module.  The generator is Python's own (pyrandom.h), so
 * for the same seed the port prints the same numbers as the original.
 *
 * Usage: rand [SEED]   (default 444, the original's seed)
 */
#include <asyncio.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "pyrandom.h"

#define NTASKS 3

/* ANSI colours: end of colour, cyan, red, magenta. */
static const char *const colors[] = {"\033[0m", "\033[36m", "\033[91m", "\033[35m"};

static pyrandom_t rng;

typedef struct makerandom_args {
  int idx;
  int threshold;
} makerandom_args_t;

/* Returns the winning number (>= 0) or an error. */
static int makerandom(void *arg) {
  const makerandom_args_t *a = arg;
  const char *color = colors[a->idx + 1];
  printf("%sInitiated makerandom(%d).\n", color, a->idx);
  int i = pyrandom_randint(&rng, 0, 10);
  while (i <= a->threshold) {
    printf("%smakerandom(%d) == %d too low; retrying.\n", color, a->idx, i);
    int rc = asyncio_sleep(a->idx + 1);
    if (rc < 0) return rc;
    i = pyrandom_randint(&rng, 0, 10);
  }
  printf("%s--> Finished: makerandom(%d) == %d%s\n", color, a->idx, i, colors[0]);
  return i;
}

/* gather(): results in task order; the first error cancels the rest. */
static int main_coro(void *arg) {
  int *results = arg;
  makerandom_args_t args[NTASKS];
  asyncio_task_t *tasks[NTASKS];
  int created = 0, rc = 0;
  for (; created < NTASKS; created++) {
    args[created] = (makerandom_args_t){created, 10 - created - 1};
    rc = asyncio_create_task(&tasks[created], makerandom, &args[created], NULL);
    if (rc < 0) break;
  }
  for (int i = 0; i < created; i++) {
    if (rc < 0) asyncio_task_cancel(tasks[i], NULL);
    int r = asyncio_await(tasks[i], NULL);
    if (r < 0 && rc >= 0) rc = r;
    results[i] = r;
    asyncio_task_free(tasks[i]);
  }
  return rc < 0 ? rc : 0;
}

int main(int argc, char **argv) {
  unsigned long long seed = 444;
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

  int results[NTASKS];
  int rc = asyncio_run(main_coro, results, NULL);
  if (rc < 0) {
    fprintf(stderr, "%s: %s\n", argv[0], asyncio_strerror(rc));
    return 1;
  }
  printf("\n");
  printf("r1: %d, r2: %d, r3: %d\n", results[0], results[1], results[2]);
  return 0;
}
