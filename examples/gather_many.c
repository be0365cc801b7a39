/*
 * gather_many - run a list of coroutines concurrently with gather().
 *
 * Python origin: "Example of gather() For Many Coroutines in a List" (part
 * 10.3) of SuperFastPython's "Python Asyncio: The Complete Guide": ten
 * task_coro(i) coroutines, each reporting that it executes and sleeping one
 * second, gathered by main() between "main starting" and "main done".  The
 * port passes the coroutines to asyncio_gather_coros(), which wraps each in
 * a task, in list order.
 */
#include <asyncio.h>
#include <stdint.h>
#include <stdio.h>

#define NCOROS 10

static int task_coro(void *arg) {
  int value = (int)(intptr_t)arg;
  printf(">task %d executing\n", value);
  return asyncio_sleep(1.0);
}

static int main_coro(void *arg) {
  (void)arg;
  printf("main starting\n");
  asyncio_coro_call_t coros[NCOROS];
  for (int i = 0; i < NCOROS; i++) coros[i] = (asyncio_coro_call_t){task_coro, (void *)(intptr_t)i};
  asyncio_future_t *g;
  int rc = asyncio_gather_coros(&g, coros, NCOROS, NULL);
  if (rc < 0) return rc;
  rc = asyncio_await(g, NULL);
  asyncio_future_free(g);
  if (rc < 0) return rc;
  printf("main done\n");
  return 0;
}

int main(void) {
  int rc = asyncio_run(main_coro, NULL, NULL);
  if (rc < 0) {
    fprintf(stderr, "gather_many: %s\n", asyncio_strerror(rc));
    return 1;
  }
  return 0;
}
