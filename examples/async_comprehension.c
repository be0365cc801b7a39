/*
 * async_comprehension - async comprehensions and await comprehensions.
 *
 * Python origin: "Python Asyncio: The Complete Guide" (Super Fast Python),
 * part 18, "Asynchronous Comprehensions": `[a async for a in aiterable]`
 * collects what an asynchronous iterator produces (here an asynchronous
 * generator, with a filter in the second comprehension), and the "await
 * comprehension" `[await a for a in awaitables]` awaits each awaitable in
 * turn.  The guide shows the two forms as fragments; this program puts them
 * together:
 *
 *   async def async_generator():
 *       for i in range(5):
 *           await asyncio.sleep(0.1)
 *           yield i
 *   async def square(n):
 *       await asyncio.sleep(0.1)
 *       return n * n
 *   async def main():
 *       result = [a async for a in async_generator()]
 *       print(result)
 *       evens = [a async for a in async_generator() if a % 2 == 0]
 *       print(evens)
 *       results = [await square(a) for a in result]
 *       print(results)
 *
 * A comprehension is a loop appending to an array; `await square(a)` is a
 * plain call of a coroutine function (a sub-coroutine runs on the caller's
 * stack and suspends the caller's task).
 */
#include <asyncio.h>
#include <stdint.h>
#include <stdio.h>

#define N 5

static int async_generator(asyncio_asyncgen_t *gen, void *arg) {
  (void)gen;
  (void)arg;
  for (int i = 0; i < N; i++) {
    int rc = asyncio_sleep(0.1);
    if (rc < 0) return rc;
    rc = asyncio_asyncgen_yield((void *)(intptr_t)i);
    if (rc < 0) return rc;
  }
  return 0;
}

/* async def square(n): a coroutine returning n * n through *out. */
static int square(int n, int *out) {
  int rc = asyncio_sleep(0.1);
  if (rc < 0) return rc;
  *out = n * n;
  return 0;
}

static void print_list(const int *v, int n) {
  printf("[");
  for (int i = 0; i < n; i++) printf(i ? ", %d" : "%d", v[i]);
  printf("]\n");
}

/* [a async for a in async_generator() if keep(a)]: appends to out. */
static int collect(int *out, int *n, int evens_only) {
  asyncio_asyncgen_t *gen;
  int rc = asyncio_asyncgen_new(&gen, async_generator, NULL, NULL);
  if (rc < 0) return rc;
  void *item;
  *n = 0;
  ASYNCIO_ASYNC_FOR(rc, asyncio_asyncgen_next(gen, &item)) {
    int a = (int)(intptr_t)item;
    if (!evens_only || a % 2 == 0) out[(*n)++] = a;
  }
  asyncio_asyncgen_free(gen);
  return rc;
}

static int main_coro(void *arg) {
  (void)arg;
  int result[N], evens[N], results[N];
  int nresult, nevens, rc;

  rc = collect(result, &nresult, 0);
  if (rc < 0) return rc;
  print_list(result, nresult);

  rc = collect(evens, &nevens, 1);
  if (rc < 0) return rc;
  print_list(evens, nevens);

  /* results = [await square(a) for a in result] */
  for (int i = 0; i < nresult; i++) {
    rc = square(result[i], &results[i]);
    if (rc < 0) return rc;
  }
  print_list(results, nresult);
  return 0;
}

int main(void) {
  int rc = asyncio_run(main_coro, NULL, NULL);
  if (rc < 0) {
    fprintf(stderr, "async_comprehension: %s\n", asyncio_strerror(rc));
    return 1;
  }
  return 0;
}
