/*
 * mygen - async comprehensions over an asynchronous generator of powers of 2.
 *
 * Python origin: mygen() and main() of Real Python's "Async IO in Python: A
 * Complete Walkthrough" (2019), section "Other Features: async for and Async
 * Generators + Comprehensions".  mygen(u=10) yields 2**i and sleeps 0.1 s
 * after each value; main() builds g = [i async for i in mygen()] and
 * f = [j async for j in mygen() if not (j // 3 % 5)] and returns both, which
 * the REPL session then shows.  The port returns the two arrays through its
 * argument and prints them after asyncio_run() as the REPL did.  As the
 * article stresses, nothing here runs concurrently: the comprehensions only
 * let the loop run other tasks while the generator sleeps.
 */
#include <asyncio.h>
#include <stdint.h>
#include <stdio.h>

#define U 10

static int mygen(asyncio_asyncgen_t *gen, void *arg) {
  (void)gen;
  int u = (int)(intptr_t)arg;
  for (int i = 0; i < u; i++) {
    int rc = asyncio_asyncgen_yield((void *)((intptr_t)1 << i));
    if (rc < 0) return rc;
    rc = asyncio_sleep(0.1);
    if (rc < 0) return rc;
  }
  return 0;
}

struct lists {
  long g[U], f[U];
  int ng, nf;
};

static int main_coro(void *arg) {
  struct lists *out = arg;
  asyncio_asyncgen_t *gen;
  void *item;
  int rc;

  /* g = [i async for i in mygen()] */
  rc = asyncio_asyncgen_new(&gen, mygen, (void *)U, NULL);
  if (rc < 0) return rc;
  ASYNCIO_ASYNC_FOR(rc, asyncio_asyncgen_next(gen, &item)) {
    out->g[out->ng++] = (long)(intptr_t)item;
  }
  asyncio_asyncgen_free(gen);
  if (rc < 0) return rc;

  /* f = [j async for j in mygen() if not (j // 3 % 5)] */
  rc = asyncio_asyncgen_new(&gen, mygen, (void *)U, NULL);
  if (rc < 0) return rc;
  ASYNCIO_ASYNC_FOR(rc, asyncio_asyncgen_next(gen, &item)) {
    long j = (long)(intptr_t)item;
    if (!(j / 3 % 5)) out->f[out->nf++] = j;
  }
  asyncio_asyncgen_free(gen);
  return rc;
}

static void print_list(const long *v, int n) {
  printf("[");
  for (int i = 0; i < n; i++) printf(i ? ", %ld" : "%ld", v[i]);
  printf("]\n");
}

int main(void) {
  struct lists l = {0};
  int rc = asyncio_run(main_coro, &l, NULL);
  if (rc < 0) {
    fprintf(stderr, "mygen: %s\n", asyncio_strerror(rc));
    return 1;
  }
  print_list(l.g, l.ng); /* >>> g */
  print_list(l.f, l.nf); /* >>> f */
  return 0;
}
