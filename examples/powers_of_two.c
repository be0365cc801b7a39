/*
 * powers_of_two - an asynchronous generator consumed by `async for` and by an
 * async comprehension with a filter.
 *
 * Python origin: the powers_of_two() example of Real Python's "Python's
 * asyncio: A Hands-On Walkthrough" (2025), section "Async Iterators, Loops,
 * and Comprehensions".  The generator yields 2**exponent and then sleeps
 * 0.2 s (simulated asynchronous work) before the next one; main() collects
 * five values with `async for`, then five more with
 * [j async for j in powers_of_two(5) if not (j // 3 % 5)], and prints both
 * lists.  In C the generator is a body that calls asyncio_asyncgen_yield(),
 * `async for` is ASYNCIO_ASYNC_FOR, and the comprehension is that loop
 * appending to an array.
 */
#include <asyncio.h>
#include <stdint.h>
#include <stdio.h>

static int powers_of_two(asyncio_asyncgen_t *gen, void *arg) {
  (void)gen;
  int stop = (int)(intptr_t)arg;
  for (int exponent = 0; exponent < stop; exponent++) {
    int rc = asyncio_asyncgen_yield((void *)((intptr_t)1 << exponent));
    if (rc < 0) return rc; /* closed or cancelled while waiting to be resumed */
    rc = asyncio_sleep(0.2); /* simulate some asynchronous work */
    if (rc < 0) return rc;
  }
  return 0;
}

static void print_list(const long *v, int n) {
  printf("[");
  for (int i = 0; i < n; i++) printf(i ? ", %ld" : "%ld", v[i]);
  printf("]\n");
}

static int main_coro(void *arg) {
  (void)arg;
  asyncio_asyncgen_t *gen;
  void *item;
  int rc;

  /* g = []; async for i in powers_of_two(5): g.append(i) */
  long g[5];
  int ng = 0;
  rc = asyncio_asyncgen_new(&gen, powers_of_two, (void *)5, NULL);
  if (rc < 0) return rc;
  ASYNCIO_ASYNC_FOR(rc, asyncio_asyncgen_next(gen, &item)) {
    g[ng++] = (long)(intptr_t)item;
  }
  asyncio_asyncgen_free(gen);
  if (rc < 0) return rc;
  print_list(g, ng);

  /* f = [j async for j in powers_of_two(5) if not (j // 3 % 5)] */
  long f[5];
  int nf = 0;
  rc = asyncio_asyncgen_new(&gen, powers_of_two, (void *)5, NULL);
  if (rc < 0) return rc;
  ASYNCIO_ASYNC_FOR(rc, asyncio_asyncgen_next(gen, &item)) {
    long j = (long)(intptr_t)item;
    if (!(j / 3 % 5)) f[nf++] = j;
  }
  asyncio_asyncgen_free(gen);
  if (rc < 0) return rc;
  print_list(f, nf);
  return 0;
}

int main(void) {
  int rc = asyncio_run(main_coro, NULL, NULL);
  if (rc < 0) {
    fprintf(stderr, "powers_of_two: %s\n", asyncio_strerror(rc));
    return 1;
  }
  return 0;
}
