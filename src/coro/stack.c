/*
 * coro/stack.c - task stacks: mapping, guarding, pooling, overflow reports.
 *
 * Strategy (measured and documented in docs/design.md):
 *  - A stack is an anonymous MAP_NORESERVE mapping: a million 256 KiB stacks
 *    reserve 256 GiB of address space but only the pages a task touches
 *    become resident, and overcommit accounting does not refuse them.
 *  - While the process has guarded stacks for less than a quarter of
 *    vm.max_map_count, each stack gets a PROT_NONE guard page below it
 *    (two mappings per stack).  An overflow faults on the guard page and the
 *    SIGSEGV handler (on an alternate signal stack) names the task.
 *  - Past that budget stacks come from slabs of 64 slots sharing one mapping
 *    and have no guard page.  The lowest 64 bytes of each slot must stay zero
 *    (untouched anonymous memory reads as the shared zero page, so this costs
 *    no resident memory); the task layer checks them at every switch away from
 *    the task and aborts with the task's name when they changed.
 *  - Stacks of the loop's default size are pooled per loop and reused; other
 *    sizes are unmapped when their task ends.  A task reserves its stack when
 *    it is created (so creation reports ENOMEM, not the first step) and
 *    takes one only when it starts: the most recently returned, warm one.
 */
#include "coro.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define HAVE_VALGRIND 1
#endif
#endif
#ifndef HAVE_VALGRIND
#define VALGRIND_STACK_REGISTER(lo, hi) 0
#define VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#endif

/*
 * A task destroyed while suspended (at loop close) never unwinds, so
 * AddressSanitizer's redzones around its frames stay poisoned: the next task
 * on that stack, or on a new mapping at the same address after an unmap,
 * would be reported for touching them.  A stack goes back clean.
 */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define ASAN_CLEAN(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define ASAN_CLEAN(p, n) ((void)(p), (void)(n))
#endif

#define CANARY_BYTES 64
#define SLAB_SLOTS 64
/* About the guarded budget (max_map_count / 4): a 10,000-task burst reuses its stacks. */
#define POOL_MAX 16384

static size_t page_size;
static atomic_long guarded_live;
static long guarded_budget;

__thread __attribute__((tls_model("initial-exec"))) asyncio__stack_t *asyncio__current_stack;
const char *(*asyncio__stack_owner_name)(char *buf, size_t n);

static void init_limits(void) {
  if (page_size) return;
  long ps = sysconf(_SC_PAGESIZE);
  long max_maps = 65530;
  FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
  if (f) {
    if (fscanf(f, "%ld", &max_maps) != 1) max_maps = 65530;
    fclose(f);
  }
  guarded_budget = max_maps / 4;
  page_size = ps > 0 ? (size_t)ps : 4096;
}

static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

/* The descriptor sits in the top 64 bytes of the mapping. */
static asyncio__stack_t *place_desc(char *map, size_t map_size, char *lo) {
  asyncio__stack_t *s = (asyncio__stack_t *)(map + map_size - 64);
  memset(s, 0, sizeof *s);
  s->lo = lo;
  s->size = (size_t)((char *)s - lo);
  s->vg_id = VALGRIND_STACK_REGISTER(lo, (char *)s);
  return s;
}

static asyncio__stack_t *map_guarded(size_t size) {
  size_t map_size = round_up(size + 64, page_size) + page_size;
  char *map = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (map == MAP_FAILED) return NULL;
  if (mprotect(map, page_size, PROT_NONE) != 0) {
    munmap(map, map_size);
    return NULL;
  }
  asyncio__stack_t *s = place_desc(map, map_size, map + page_size);
  s->map = map;
  s->map_size = map_size;
  s->guarded = 1;
  atomic_fetch_add(&guarded_live, 1);
  return s;
}

static asyncio__stack_t *map_single_unguarded(size_t size) {
  size_t map_size = round_up(size + 64, page_size);
  char *map = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (map == MAP_FAILED) return NULL;
  asyncio__stack_t *s = place_desc(map, map_size, map);
  s->map = map;
  s->map_size = map_size;
  return s;
}

static int grow_slab(asyncio__stack_pool_t *pool, size_t size) {
  size_t slot = round_up(size + 64, page_size);
  size_t map_size = page_size + slot * SLAB_SLOTS;
  char *map = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (map == MAP_FAILED) return -1;
  asyncio__slab_t *slab = (asyncio__slab_t *)map;
  slab->map_size = map_size;
  slab->next = pool->slabs;
  pool->slabs = slab;
  for (int i = SLAB_SLOTS - 1; i >= 0; i--) {
    char *slot_lo = map + page_size + (size_t)i * slot;
    asyncio__stack_t *s = place_desc(slot_lo, slot, slot_lo);
    s->next = pool->slab_free;
    pool->slab_free = s;
  }
  pool->nslab_free += SLAB_SLOTS;
  return 0;
}

static void unmap_stack(asyncio__stack_t *s) {
  ASAN_CLEAN(s->lo, s->size);
  VALGRIND_STACK_DEREGISTER(s->vg_id);
  if (s->guarded) atomic_fetch_sub(&guarded_live, 1);
  munmap(s->map, s->map_size);
}

/* Pops a pooled stack of the default size: guarded ones first. */
static asyncio__stack_t *pool_pop(asyncio__stack_pool_t *pool) {
  asyncio__stack_t *s = pool->free;
  if (s) {
    pool->free = s->next;
    pool->nfree--;
    return s;
  }
  s = pool->slab_free;
  pool->slab_free = s->next;
  pool->nslab_free--;
  return s;
}

/* Adds one stack of the default size to the pool: 0 or -1 (ENOMEM). */
static int pool_grow(asyncio__stack_pool_t *pool, size_t dflt) {
  if (atomic_load(&guarded_live) < guarded_budget) {
    asyncio__stack_t *s = map_guarded(dflt);
    if (s) {
      s->next = pool->free;
      pool->free = s;
      pool->nfree++;
      return 0;
    }
  }
  return grow_slab(pool, dflt);
}

/* Sizes this large cannot be mapped; refusing them keeps the arithmetic
 * below from wrapping around into a small mapping. */
#define STACK_SIZE_MAX (SIZE_MAX / 4)

asyncio__stack_t *asyncio__stack_get(asyncio__stack_pool_t *pool, size_t size, size_t dflt) {
  init_limits();
  if (size > STACK_SIZE_MAX) return NULL;
  if (size == dflt) {
    /* Pooled stacks beyond those promised to tasks that have not started. */
    if (pool->nfree + pool->nslab_free <= pool->reserved && pool_grow(pool, dflt) != 0)
      return NULL;
    return pool_pop(pool);
  }
  if (atomic_load(&guarded_live) < guarded_budget) {
    asyncio__stack_t *s = map_guarded(size);
    if (s) return s;
  }
  return map_single_unguarded(size);
}

/* asyncio__stack_reserve when the pool has no stack to spare (coro.h). */
int asyncio__stack_reserve_slow(asyncio__stack_pool_t *pool, size_t dflt) {
  init_limits();
  if (dflt > STACK_SIZE_MAX) return -ENOMEM;
  if (pool->nfree + pool->nslab_free <= pool->reserved && pool_grow(pool, dflt) != 0)
    return -ENOMEM;
  pool->reserved++;
  return 0;
}

void asyncio__stack_unreserve(asyncio__stack_pool_t *pool) {
  pool->reserved--;
  /* Keep the pool within its bound once the reservations that grew it go. */
  if (pool->nfree > POOL_MAX && pool->nfree + pool->nslab_free > pool->reserved) {
    asyncio__stack_t *s = pool->free;
    pool->free = s->next;
    pool->nfree--;
    unmap_stack(s);
  }
}

void asyncio__stack_put(asyncio__stack_pool_t *pool, asyncio__stack_t *s, size_t dflt) {
  ASAN_CLEAN(s->lo, s->size);
  if (!s->map) { /* slab slot */
    s->next = pool->slab_free;
    pool->slab_free = s;
    pool->nslab_free++;
    return;
  }
  if (s->size >= dflt && s->size < dflt + page_size && s->guarded && pool->nfree < POOL_MAX) {
    s->next = pool->free;
    pool->free = s;
    pool->nfree++;
    return;
  }
  unmap_stack(s);
}

void asyncio__stack_pool_drain(asyncio__stack_pool_t *pool) {
  while (pool->free) {
    asyncio__stack_t *s = pool->free;
    pool->free = s->next;
    unmap_stack(s);
  }
  pool->nfree = 0;
  pool->slab_free = NULL;
  pool->nslab_free = 0;
  pool->reserved = 0;
  while (pool->slabs) {
    asyncio__slab_t *slab = pool->slabs;
    pool->slabs = slab->next;
    ASAN_CLEAN(slab, slab->map_size); /* slots of tasks that never came back */
    munmap(slab, slab->map_size);
  }
}

void asyncio__stack_set_guarded_budget(long n) {
  init_limits();
  guarded_budget = n;
}

int asyncio__stack_check(const asyncio__stack_t *s) {
  const uint64_t *w = (const uint64_t *)s->lo;
  uint64_t acc = 0;
  for (int i = 0; i < CANARY_BYTES / 8; i++) acc |= w[i];
  return acc != 0;
}

int asyncio__stack_guard_hit(const asyncio__stack_t *s, const void *addr) {
  const char *a = addr;
  const char *lo = s->lo;
  if (s->guarded) return a >= lo - page_size && a < lo + CANARY_BYTES;
  return a >= lo - 4096 && a < lo + CANARY_BYTES;
}

/* ---- overflow reports ---------------------------------------------------- */
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)

static struct sigaction prev_segv;

static void write_str(const char *s) {
  ssize_t r = write(2, s, strlen(s));
  (void)r;
}

static void segv_handler(int sig, siginfo_t *si, void *uc) {
  asyncio__stack_t *s = asyncio__current_stack;
  if (s && asyncio__stack_guard_hit(s, si->si_addr)) {
    char name[128];
    const char *n = asyncio__stack_owner_name ? asyncio__stack_owner_name(name, sizeof name) : "?";
    write_str("asyncio: stack overflow in task '");
    write_str(n);
    write_str("': the task used more than its stack size; create it with a larger "
              "asyncio_task_options_t.stack_size\n");
    signal(SIGSEGV, SIG_DFL); /* returning re-executes the fault: default action */
    return;
  }
  if (prev_segv.sa_flags & SA_SIGINFO) {
    if (prev_segv.sa_sigaction) {
      prev_segv.sa_sigaction(sig, si, uc);
      return;
    }
  } else if (prev_segv.sa_handler != SIG_DFL && prev_segv.sa_handler != SIG_IGN &&
             prev_segv.sa_handler) {
    prev_segv.sa_handler(sig);
    return;
  }
  signal(SIGSEGV, SIG_DFL);
}

static pthread_once_t handler_once = PTHREAD_ONCE_INIT;
static __thread int have_altstack;

static void install_handler(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = segv_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &prev_segv);
}
#endif

void asyncio__stack_install_overflow_handler(void) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return; /* the sanitizer's own SIGSEGV handler reports overflows */
#else
  init_limits();
  if (!have_altstack) {
    /* A thread needs its own alternate stack: the handler cannot run on the
     * stack that just overflowed.  It lives as long as the thread. */
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && (cur.ss_flags & SS_DISABLE)) {
      size_t sz = 64 * 1024;
      void *m = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (m != MAP_FAILED) {
        stack_t ss = {.ss_sp = m, .ss_size = sz, .ss_flags = 0};
        if (sigaltstack(&ss, NULL) != 0) munmap(m, sz);
      }
    }
    have_altstack = 1;
  }
  pthread_once(&handler_once, install_handler);
#endif
}
