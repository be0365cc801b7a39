/* The shared test main: registration, counting allocator, leak checks. */
#include "harness.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TESTS 512

static struct CMUnitTest tests[MAX_TESTS];
static int ntests;

void harness_register(const char *name, harness_test_fn fn) {
  if (ntests == MAX_TESTS) abort();
  tests[ntests].name = name;
  tests[ntests].test_func = fn;
  ntests++;
}

/* Atomic: call_soon_threadsafe allocates from other threads. */
static _Atomic long live, total, fail_at;

/*
 * Each block carries its size in a 16-byte header, so that every free and
 * resize is checked against the hook's contract (alloc.h: `old` is the
 * block's size), which sized allocators (arenas, pools) rely on.
 */
#define HDR 16
static _Atomic long size_mismatches;

static void check_size(void *ptr, size_t osize) {
  size_t had;
  memcpy(&had, (char *)ptr - HDR, sizeof had);
  if (had != osize) {
    if (size_mismatches++ == 0)
      fprintf(stderr, "allocator: block of %zu bytes given back as %zu\n", had, osize);
  }
}

static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (ptr) check_size(ptr, osize);
  if (nsize == 0) {
    if (ptr) {
      live--;
      free((char *)ptr - HDR);
    }
    return NULL;
  }
  total++;
  if (fail_at > 0 && --fail_at == 0) return NULL; /* tests set it single-threaded */
  char *p = realloc(ptr ? (char *)ptr - HDR : NULL, nsize + HDR);
  if (!p) return NULL;
  memcpy(p, &nsize, sizeof nsize);
  if (!ptr) live++;
  return p + HDR;
}

long harness_live_allocs(void) { return live; }
long harness_total_allocs(void) { return total; }
void harness_fail_alloc_after(long n) { fail_at = n; }

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  struct dirent *e;
  if (!d) return -1;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1; /* the directory's own descriptor */
}

char harness_soft_fail[512];

static int fds_before;

static int setup(void **state) {
  (void)state;
  live = total = fail_at = size_mismatches = 0;
  harness_soft_fail[0] = 0;
  asyncio_set_allocator(counting_alloc, NULL);
  fds_before = count_fds();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  fail_at = 0;
  int fds_after = count_fds();
  if (live != 0) {
    fprintf(stderr, "leak check: %ld allocation(s) still live\n", live);
    return -1;
  }
  if (size_mismatches != 0) {
    fprintf(stderr, "allocator: %ld block(s) given back with the wrong size\n", size_mismatches);
    return -1;
  }
  if (fds_after != fds_before) {
    fprintf(stderr, "leak check: %d file descriptor(s) before, %d after\n", fds_before,
            fds_after);
    return -1;
  }
  if (asyncio_get_running_loop() != NULL) {
    fprintf(stderr, "leak check: a loop is still marked running\n");
    return -1;
  }
  asyncio_set_allocator(NULL, NULL);
  return 0;
}

asyncio_loop_t *harness_virtual_loop(void) {
  asyncio_loop_options_t o = {0};
  o.clock = ASYNCIO_CLOCK_VIRTUAL;
  o.debug = 0;
  asyncio_loop_t *loop = NULL;
  int rc = asyncio_loop_new(&loop, &o);
  if (rc != 0) fail_msg("asyncio_loop_new: %s", asyncio_strerror(rc));
  return loop;
}

int main(int argc, char **argv) {
  for (int i = 0; i < ntests; i++) {
    tests[i].setup_func = setup;
    tests[i].teardown_func = teardown;
    tests[i].initial_state = NULL;
  }
  const char *group = argv[0];
  const char *slash = strrchr(group, '/');
  if (slash) group = slash + 1;
  if (argc > 1) {
    for (int i = 0; i < ntests; i++)
      if (strcmp(tests[i].name, argv[1]) == 0)
        return _cmocka_run_group_tests(group, &tests[i], 1, NULL, NULL);
    fprintf(stderr, "no test named %s\n", argv[1]);
    return 2;
  }
  return _cmocka_run_group_tests(group, tests, (size_t)ntests, NULL, NULL);
}
