/*
 * async_iterator - a hand-written asynchronous iterator driven by `async for`.
 *
 * Python origin: "Python Asyncio: The Complete Guide" (Super Fast Python),
 * part 15, "Example of an Asynchronous Iterator": a class whose __aiter__
 * returns itself and whose __anext__ counts to ten, sleeping one second
 * before returning each value and raising StopAsyncIteration after the last;
 * main() prints every item of `async for item in AsyncIterator()`.
 *
 * In C an asynchronous iterator is a struct plus a `next` function that may
 * suspend and follows the library's iteration protocol: 1 with an item, 0 at
 * the end (StopAsyncIteration), < 0 an error.  ASYNCIO_ASYNC_FOR drives any
 * such function, as `async for` drives any __anext__.
 */
#include <asyncio.h>
#include <stdint.h>
#include <stdio.h>

typedef struct async_iterator {
  int counter;
} async_iterator_t;

/* __anext__: a suspension point. */
static int async_iterator_next(async_iterator_t *it, int *item) {
  if (it->counter >= 10) return 0; /* raise StopAsyncIteration */
  it->counter++;
  int rc = asyncio_sleep(1.0);
  if (rc < 0) return rc;
  *item = it->counter;
  return 1;
}

static int main_coro(void *arg) {
  (void)arg;
  async_iterator_t it = {0}; /* AsyncIterator(); __aiter__ returns it */
  int item, rc;
  ASYNCIO_ASYNC_FOR(rc, async_iterator_next(&it, &item)) {
    printf("%d\n", item);
  }
  return rc;
}

int main(void) {
  int rc = asyncio_run(main_coro, NULL, NULL);
  if (rc < 0) {
    fprintf(stderr, "async_iterator: %s\n", asyncio_strerror(rc));
    return 1;
  }
  return 0;
}
