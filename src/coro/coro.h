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
} asyncio__coro_t;

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

typedef struct asyncio__stack_pool {
  asyncio__stack_t *free;   /* all the same size: the loop default */
  size_t nfree;
  asyncio__slab_t *slabs;
  asyncio__stack_t *slab_free; /* unguarded slots of the default size */
} asyncio__stack_pool_t;

/* Returns a stack with at least `size` usable bytes, or NULL (ENOMEM). */
asyncio__stack_t *asyncio__stack_get(asyncio__stack_pool_t *pool, size_t size, size_t dflt);
void asyncio__stack_put(asyncio__stack_pool_t *pool, asyncio__stack_t *s, size_t dflt);
void asyncio__stack_pool_drain(asyncio__stack_pool_t *pool);
/* 0 if the canary at the bottom of the stack is intact. */
int asyncio__stack_check(const asyncio__stack_t *s);
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
/* As switch, but `from` never resumes (its stack is about to be recycled). */
__attribute__((noreturn)) void asyncio__coro_exit(asyncio__coro_t *from, asyncio__coro_t *to);
/* Called first thing on a new context's stack. */
void asyncio__coro_started(asyncio__coro_t *self, asyncio__coro_t *from);
/* Sets up the context of the thread's own stack (the loop's scheduler). */
void asyncio__coro_thread_init(asyncio__coro_t *c);
/* Releases sanitizer state of a context that will never run again. */
void asyncio__coro_destroy(asyncio__coro_t *ctx);

#endif
