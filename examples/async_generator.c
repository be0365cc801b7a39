/*
 * async_generator - an asynchronous generator driven by `async for`.
 *
 * Python origin: "Python Asyncio: The Complete Guide" (Super Fast Python),
 * part 16, "Example of an Asynchronous Generator": a generator that, for
 * i in range(10), sleeps one second and yields i; main() prints every item
 * of `async for item in async_generator()`.
 *
 * The body runs on its own stack; its sleep suspends the consuming task (the
 * body runs on the consumer's behalf), and its yield hands the value to
 * asyncio_asyncgen_next().
 */
#include <asyncio.h>
#include <stdint.h>
#include <stdio.h>

static int async_generator(asyncio_asyncgen_t *gen, void *arg) {
  (void)gen;
  (void)arg;
  for (int i = 0; i < 10; i++) {
    int rc = asyncio_sleep(1.0);
    if (rc < 0) return rc;
    rc = asyncio_asyncgen_yield((void *)(intptr_t)i);
    if (rc < 0) return rc;
  }
  return 0;
}

static int main_coro(void *arg) {
  (void)arg;
  asyncio_asyncgen_t *gen;
  int rc = asyncio_asyncgen_new(&gen, async_generator, NULL, NULL);
  if (rc < 0) return rc;
  void *item;
  ASYNCIO_ASYNC_FOR(rc, asyncio_asyncgen_next(gen, &item)) {
    printf("%d\n", (int)(intptr_t)item);
  }
  asyncio_asyncgen_free(gen);
  return rc;
}

int main(void) {
  int rc = asyncio_run(main_coro, NULL, NULL);
  if (rc < 0) {
    fprintf(stderr, "async_generator: %s\n", asyncio_strerror(rc));
    return 1;
  }
  return 0;
}
