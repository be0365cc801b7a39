/*
 * asyncq - producers and consumers on an asyncio queue: each producer puts a
 * few items at random intervals, each consumer takes items as they come;
 * main waits for the producers, then for the queue to be fully processed
 * (join), then cancels the consumers, which would otherwise wait forever.
 *
 * Python origin: asyncq.py from Real Python's "Async IO in Python: A
 * Complete Walkthrough" (random.seed(444); `-p` producers, `-c` consumers).
 * Two things differ from the article's listing, both so that the port
 * prints the article's transcript (`asyncq -p 2 -c 5`):
 * - The listing draws random.randint(0, 10) for the number of items and the
 *   sleeps, but its transcript and its text ("anywhere from 1 to 5 items")
 *   come from the version that draws randint(1, 5), i.e. randsleep's unused
 *   a=1, b=5: with seed 444 only that version prints the transcript.  The
 *   port draws randint(1, 5), with Python's generator (pyrandom.h).
 * - makeitem() returns os.urandom(5).hex(), which no program can reproduce;
 *   the port takes the five bytes from a second MT19937 seeded with 0, so
 *   the hex strings are repeatable but not the article's.
 * gather(*producers) becomes awaiting each producer in turn; the items are
 * (hex string, perf_counter) pairs, allocated by the producer and freed by
 * the consumer that takes them.
 *
 * Usage: asyncq [-p NPROD] [-c NCON] [--virtual-clock]
 *   defaults 5 and 10, as the original.  --virtual-clock (an addition of the
 *   port, for the smoke test) runs the loop on virtual time: the sleeps take
 *   no real time, and timers due at the same moment fire in the order they
 *   were set, where on real time the order of such ties comes from the
 *   microseconds each wakeup is late, which a loaded machine can upset.  The
 *   transcript is the same either way.
 */
#include <asyncio.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pyrandom.h"

static pyrandom_t rng;   /* Python's random, seeded 444 */
static pyrandom_t bytes; /* stands in for os.urandom */

typedef struct item {
  char hex[11]; /* five bytes as hex */
  double t;     /* perf_counter() when it was put */
} item_t;

typedef struct worker {
  int name;
  asyncio_queue_t *q;
} worker_t;

static double perf_counter(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* async def makeitem(size=5) -> str: no suspension. */
static void makeitem(char *out) {
  for (int k = 0; k < 5; k++)
    snprintf(out + 2 * k, 3, "%02x", (unsigned)(pyrandom__next32(&bytes) >> 24));
}

/* async def randsleep(a=1, b=5, caller=None). */
static int randsleep(const char *who, int name) {
  int i = pyrandom_randint(&rng, 1, 5);
  printf("%s %d sleeping for %d seconds.\n", who, name, i);
  return asyncio_sleep(i);
}

static int produce(void *arg) {
  worker_t *w = arg;
  int n = pyrandom_randint(&rng, 1, 5);
  for (int k = 0; k < n; k++) {
    int rc = randsleep("Producer", w->name);
    if (rc < 0) return rc;
    item_t *it = malloc(sizeof *it);
    if (!it) return -ENOMEM;
    makeitem(it->hex);
    it->t = perf_counter();
    rc = asyncio_queue_put(w->q, it);
    if (rc < 0) {
      free(it);
      return rc;
    }
    printf("Producer %d added <%s> to queue.\n", w->name, it->hex);
  }
  return 0;
}

static int consume(void *arg) {
  worker_t *w = arg;
  for (;;) {
    int rc = randsleep("Consumer", w->name);
    if (rc < 0) return rc;
    void *p;
    rc = asyncio_queue_get(w->q, &p);
    if (rc < 0) return rc;
    item_t *it = p;
    double now = perf_counter();
    printf("Consumer %d got element <%s> in %0.5f seconds.\n", w->name, it->hex, now - it->t);
    free(it);
    asyncio_queue_task_done(w->q);
  }
}

typedef struct args {
  int nprod, ncon;
} args_t;

static void drop_item(void *item, void *arg) {
  (void)arg;
  free(item);
}

static int main_coro(void *arg) {
  const args_t *a = arg;
  asyncio_queue_t *q;
  int rc = asyncio_queue_new(&q, 0);
  if (rc < 0) return rc;
  asyncio_queue_set_drop(q, drop_item, NULL);
  int n = a->nprod + a->ncon;
  worker_t *w = calloc((size_t)n ? (size_t)n : 1, sizeof *w);
  asyncio_task_t **t = calloc((size_t)n ? (size_t)n : 1, sizeof *t);
  int created = 0;
  if (!w || !t) rc = -ENOMEM;
  for (; rc >= 0 && created < n; created++) {
    int prod = created < a->nprod;
    w[created] = (worker_t){prod ? created : created - a->nprod, q};
    rc = asyncio_create_task(&t[created], prod ? produce : consume, &w[created], NULL);
    if (rc < 0) break;
  }
  /* await gather(*producers) */
  for (int i = 0; rc >= 0 && i < a->nprod; i++) {
    int r = asyncio_await(t[i], NULL);
    if (r < 0) rc = r;
  }
  /* await q.join(): implicitly awaits the consumers too */
  if (rc >= 0) rc = asyncio_queue_join(q);
  /* for c in consumers: c.cancel(); then wait for them to end (asyncio.run would) */
  for (int i = 0; i < created; i++) asyncio_task_cancel(t[i], NULL);
  for (int i = 0; i < created; i++) {
    asyncio_await(t[i], NULL);
    asyncio_task_free(t[i]);
  }
  free(t);
  free(w);
  int frc = asyncio_queue_free(q);
  return rc < 0 ? rc : frc;
}

static int parse_count(const char *s, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < 0 || v > 100000) return -1;
  *out = (int)v;
  return 0;
}

int main(int argc, char **argv) {
  args_t a = {5, 10};
  asyncio_loop_options_t lo = {0};
  asyncio_run_options_t ro = {0};
  ro.loop = &lo;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--virtual-clock") == 0) {
      lo.clock = ASYNCIO_CLOCK_VIRTUAL;
      continue;
    }
    int *dst = strcmp(argv[i], "-p") == 0 || strcmp(argv[i], "--nprod") == 0   ? &a.nprod
               : strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--ncon") == 0 ? &a.ncon
                                                                               : NULL;
    if (!dst || i + 1 >= argc || parse_count(argv[i + 1], dst) < 0) {
      fprintf(stderr, "usage: %s [-p NPROD] [-c NCON] [--virtual-clock]\n", argv[0]);
      return 2;
    }
    i++;
  }
  pyrandom_seed(&rng, 444);
  pyrandom_seed(&bytes, 0);
  double start = perf_counter();
  int rc = asyncio_run(main_coro, &a, &ro);
  double elapsed = perf_counter() - start;
  if (rc < 0) {
    fprintf(stderr, "%s: %s\n", argv[0], asyncio_strerror(rc));
    return 1;
  }
  printf("Program completed in %0.5f seconds.\n", elapsed);
  return 0;
}
