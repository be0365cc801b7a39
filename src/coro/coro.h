/*
 * coro/coro.h - execution contexts and their stacks.
 *
 * A context is a saved stack pointer (the assembly switch pushes the
 * callee-saved registers on the stack it leaves and pops them from the one it
 * enters) or, with the ucontext fallback, a ucontext_t.  Switching is
 * symmetric: asyncio__coro_switch(from, to) saves into `from` and resumes
 * `to`.  Every switch is annotated for AddressSanitizer, ThreadSanitizer and
 * Valgrind so their reports stay meaningful across stacks.
 *
 * The floating-point control words (MXCSR, x87 CW, FPCR) are not switched:
 * tasks share the thread's rounding mode, as threads of a process usually do.
 */
#ifndef ASYNCIO_CORO_H
#define ASYNCIO_CORO_H

#include <stddef.h>
#include <stdint.h>
#ifdef ASYNCIO_CORO_UCONTEXT
#include <ucontext.h>
#endif

typedef struct asyncio__stack asyncio__stack_t;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ASYNCIO__CORO_SAN 1
#endif

typedef struct asyncio__coro {
#ifdef ASYNCIO_CORO_UCONTEXT
  ucontext_t uc;
#else
  void *sp;
#endif
#ifdef ASYNCIO__CORO_SAN
  /* sanitizer bookkeeping */
  void *asan_fake_stack;
  const void *stack_lo; /* the bounds of the stack this context runs on */
  size_t stack_size;
  void *tsan_fiber;
#endif
#if defined(ASYNCIO__CORO_SAN) || defined(ASYNCIO_CORO_UCONTEXT)
  /* asyncio__coro_start without the assembly entry: what to run first */
  struct asyncio__coro *(*start_fn)(void *arg);
  void *start_arg;
  struct asyncio__coro *start_from;
#endif
} asyncio__coro_t;

/*
 * The function a context started by asyncio__coro_start runs.  It returns the
 * context to resume for good: its own stack is abandoned, never unwound.
 */
typedef asyncio__coro_t *(*asyncio__coro_entry_fn)(void *arg);

/*
 * Stacks.  A stack is mapped with MAP_NORESERVE, so only touched pages cost
 * memory, and protected by a guard page below it while the process stays
 * well inside vm.max_map_count (each guarded stack costs two mappings).  Past
 * that budget stacks are carved from shared slabs without guard pages and are
 * protected by a canary region checked at every switch away from the task.
 * The descriptor lives at the top of the stack's own mapping: no malloc.
 */
struct asyncio__stack {
  asyncio__stack_t *next; /* pool link */
  void *lo;               /* lowest usable address (the canary sits here) */
  size_t size;            /* usable bytes below the descriptor */
  void *map;              /* the mapping (guarded) or NULL (slab slot) */
  size_t map_size;
  unsigned vg_id;         /* Valgrind stack id */
  uint8_t guarded;
};

typedef struct asyncio__slab {
  struct asyncio__slab *next;
  size_t map_size;
} asyncio__slab_t;

/*
 * Invariant: nfree + nslab_free >= reserved, so every reservation can be
 * taken without mapping anything.
 */
typedef struct asyncio__stack_pool {
  asyncio__stack_t *free;   /* all the same size: the loop default */
  size_t nfree;
  asyncio__slab_t *slabs;
  asyncio__stack_t *slab_free; /* unguarded slots of the default size */
  size_t nslab_free;
  size_t reserved;          /* stacks promised to tasks that have not started */
} asyncio__stack_pool_t;

/* Returns a stack with at least `size` usable bytes, or NULL (ENOMEM). */
asyncio__stack_t *asyncio__stack_get(asyncio__stack_pool_t *pool, size_t size, size_t dflt);
/*
 * Promises one stack of the default size `dflt`, mapping it now if the pool
 * has none to spare: 0, or -ENOMEM with nothing promised.  Creating a task
 * reserves its stack, so that a task that exists can always start, while the
 * stack itself is taken only at the first step: the one most recently given
 * back, still warm in the cache.
 */
int asyncio__stack_reserve_slow(asyncio__stack_pool_t *pool, size_t dflt);
static inline int asyncio__stack_reserve(asyncio__stack_pool_t *pool, size_t dflt) {
  if (pool->nfree + pool->nslab_free > pool->reserved) {
    pool->reserved++;
    return 0;
  }
  return asyncio__stack_reserve_slow(pool, dflt);
}
/* Takes a reserved stack (the most recently returned); cannot fail. */
static inline asyncio__stack_t *asyncio__stack_take(asyncio__stack_pool_t *pool) {
  asyncio__stack_t *s;
  pool->reserved--;
  if ((s = pool->free) != NULL) {
    pool->free = s->next;
    pool->nfree--;
  } else {
    s = pool->slab_free;
    pool->slab_free = s->next;
    pool->nslab_free--;
  }
  return s;
}
/* Gives a reservation back untaken. */
void asyncio__stack_unreserve(asyncio__stack_pool_t *pool);
void asyncio__stack_put(asyncio__stack_pool_t *pool, asyncio__stack_t *s, size_t dflt);
void asyncio__stack_pool_drain(asyncio__stack_pool_t *pool);
/* 0 if the canary at the bottom of the stack is intact. */
int asyncio__stack_check(const asyncio__stack_t *s);
/*
 * Sets how many stacks the process may give guard pages (normally a
 * quarter of vm.max_map_count); stacks past it come from slabs with a
 * canary.  For tests of that path, which otherwise needs ~16,000 live
 * stacks: call before the first stack is made.
 */
void asyncio__stack_set_guarded_budget(long n);
/* True if addr is in the guard page (or canary area) of s. */
int asyncio__stack_guard_hit(const asyncio__stack_t *s, const void *addr);
/* Installs the SIGSEGV reporter for guard-page hits (once per process). */
void asyncio__stack_install_overflow_handler(void);
/* Called by the overflow handler to name the culprit; set by tasks.c. */
extern const char *(*asyncio__stack_owner_name)(char *buf, size_t n);
extern __thread __attribute__((tls_model("initial-exec"))) asyncio__stack_t *asyncio__current_stack;

/* Prepares ctx to run entry(arg) on stack s when first switched to. */
void asyncio__coro_init(asyncio__coro_t *ctx, asyncio__stack_t *s, void (*entry)(void *),
                        void *arg);
/* Saves the current context into from and resumes to. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || \
    defined(ASYNCIO_CORO_UCONTEXT)
void asyncio__coro_switch(asyncio__coro_t *from, asyncio__coro_t *to);
#else
void asyncio__coro_switch_asm(void **save_sp, void *load_sp);
static inline void asyncio__coro_switch(asyncio__coro_t *from, asyncio__coro_t *to) {
  asyncio__coro_switch_asm(&from->sp, to->sp);
}
#define ASYNCIO__CORO_SWITCH_INLINE 1
#endif

/*
 * Saves the current context into `from` and starts `self` on stack s, running
 * entry(arg); returns when some context switches back to `from`.  When entry
 * returns context c, c is resumed and s is abandoned (as asyncio__coro_exit).
 *
 * The assembly version enters with a call and leaves through that call's
 * return, so a context that runs to completion without switching away keeps
 * calls and returns paired and the return-address predictor right (a first
 * switch that "returns" into a trampoline mispredicts, and so does every
 * return after it).  Other builds use asyncio__coro_init and a switch.
 */
#ifdef ASYNCIO__CORO_SWITCH_INLINE
void asyncio__coro_start_asm(void **save_sp, void *stack_top, asyncio__coro_entry_fn entry,
                             void *arg);
static inline void asyncio__coro_start(asyncio__coro_t *from, asyncio__coro_t *self,
                                       asyncio__stack_t *s, asyncio__coro_entry_fn entry,
                                       void *arg) {
  (void)self;
  /* The descriptor sits at the top of the stack, 64-byte aligned. */
  asyncio__coro_start_asm(&from->sp, (void *)s, entry, arg);
}
#else
void asyncio__coro_start(asyncio__coro_t *from, asyncio__coro_t *self, asyncio__stack_t *s,
                         asyncio__coro_entry_fn entry, void *arg);
#endif
/* As switch, but `from` never resumes (its stack is about to be recycled). */
__attribute__((noreturn)) void asyncio__coro_exit(asyncio__coro_t *from, asyncio__coro_t *to);
/* Called first thing on a new context's stack. */
void asyncio__coro_started(asyncio__coro_t *self, asyncio__coro_t *from);
/* Sets up the context of the thread's own stack (the loop's scheduler). */
void asyncio__coro_thread_init(asyncio__coro_t *c);
/* Releases sanitizer state of a context that will never run again. */
void asyncio__coro_destroy(asyncio__coro_t *ctx);

#endif
