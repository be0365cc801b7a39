/*
 * coro/coro.c - preparing and switching execution contexts.
 *
 * The fast path is the assembly switch (switch_<arch>.S): six pushes, two
 * moves, six pops and a return on x86_64; a fresh context is entered with a
 * call (asyncio__coro_start_asm) so that calls and returns stay paired.  The
 * ucontext fallback serves other architectures; swapcontext costs a
 * sigprocmask system call per switch.
 * Sanitizer hooks compile to nothing in normal builds.
 */
#include "coro.h"

#include <pthread.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define HAVE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HAVE_TSAN 1
#endif
#endif

#ifdef HAVE_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef HAVE_TSAN
#include <sanitizer/tsan_interface.h>
#endif

#ifdef ASYNCIO_CORO_UCONTEXT
static void uc_entry(unsigned hi, unsigned lo, unsigned fhi, unsigned flo) {
  void *arg = (void *)(((uintptr_t)hi << 16 << 16) | lo);
  void (*fn)(void *) = (void (*)(void *))(((uintptr_t)fhi << 16 << 16) | flo);
  fn(arg);
  abort(); /* entry never returns: it exits through asyncio__coro_exit */
}
#else
void asyncio__coro_switch_asm(void **save_sp, void *load_sp);
void asyncio__coro_trampoline(void);
#endif

void asyncio__coro_init(asyncio__coro_t *ctx, asyncio__stack_t *s, void (*entry)(void *),
                        void *arg) {
#ifdef ASYNCIO__CORO_SAN
  ctx->asan_fake_stack = NULL;
  ctx->stack_lo = s->lo;
  ctx->stack_size = s->size;
#ifdef HAVE_TSAN
  ctx->tsan_fiber = __tsan_create_fiber(0);
#else
  ctx->tsan_fiber = NULL;
#endif
#endif
#ifdef ASYNCIO_CORO_UCONTEXT
  getcontext(&ctx->uc);
  ctx->uc.uc_stack.ss_sp = s->lo;
  ctx->uc.uc_stack.ss_size = s->size;
  ctx->uc.uc_link = NULL;
  uintptr_t a = (uintptr_t)arg, f = (uintptr_t)entry;
  makecontext(&ctx->uc, (void (*)(void))uc_entry, 4, (unsigned)(a >> 16 >> 16), (unsigned)a,
              (unsigned)(f >> 16 >> 16), (unsigned)f);
#else
  uintptr_t top = ((uintptr_t)s->lo + s->size) & ~(uintptr_t)15;
  void **sp;
#if defined(__x86_64__)
  sp = (void **)(top - 72);
  sp[0] = 0;                                /* r15 */
  sp[1] = 0;                                /* r14 */
  sp[2] = (void *)entry;                    /* r13 */
  sp[3] = arg;                              /* r12 */
  sp[4] = 0;                                /* rbx */
  sp[5] = 0;                                /* rbp: ends frame-pointer walks */
  sp[6] = (void *)asyncio__coro_trampoline; /* return address */
  sp[7] = 0;
  sp[8] = 0;
#elif defined(__aarch64__)
  sp = (void **)(top - 176);
  for (int i = 0; i < 22; i++) sp[i] = 0;
  sp[0] = arg;                               /* x19 */
  sp[1] = (void *)entry;                     /* x20 */
  sp[11] = (void *)asyncio__coro_trampoline; /* x30 */
#else
#error "no assembly context switch for this architecture: configure with -DASYNCIO_CORO=ucontext"
#endif
  ctx->sp = sp;
#endif
}

static inline void do_switch(asyncio__coro_t *from, asyncio__coro_t *to) {
#ifdef HAVE_TSAN
  if (!from->tsan_fiber) from->tsan_fiber = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
#ifdef ASYNCIO_CORO_UCONTEXT
  swapcontext(&from->uc, &to->uc);
#else
  asyncio__coro_switch_asm(&from->sp, to->sp);
#endif
}

#ifndef ASYNCIO__CORO_SWITCH_INLINE
void asyncio__coro_switch(asyncio__coro_t *from, asyncio__coro_t *to) {
#ifdef HAVE_ASAN
  __sanitizer_start_switch_fiber(&from->asan_fake_stack, to->stack_lo, to->stack_size);
#endif
  do_switch(from, to);
#ifdef HAVE_ASAN
  __sanitizer_finish_switch_fiber(from->asan_fake_stack, NULL, NULL);
#endif
}
#endif

#ifndef ASYNCIO__CORO_SWITCH_INLINE
/* The first function of a context started without the assembly entry. */
static void start_entry(void *p) {
  asyncio__coro_t *self = p;
  asyncio__coro_started(self, self->start_from);
  asyncio__coro_t *to = self->start_fn(self->start_arg);
  asyncio__coro_exit(self, to);
}

void asyncio__coro_start(asyncio__coro_t *from, asyncio__coro_t *self, asyncio__stack_t *s,
                         asyncio__coro_entry_fn entry, void *arg) {
  self->start_fn = entry;
  self->start_arg = arg;
  self->start_from = from;
  asyncio__coro_init(self, s, start_entry, self);
  asyncio__coro_switch(from, self);
}
#endif

void asyncio__coro_exit(asyncio__coro_t *from, asyncio__coro_t *to) {
#ifdef HAVE_ASAN
  /* NULL: this stack's fake frames die with it. */
  __sanitizer_start_switch_fiber(NULL, to->stack_lo, to->stack_size);
#endif
  do_switch(from, to);
  abort();
}

void asyncio__coro_started(asyncio__coro_t *self, asyncio__coro_t *from) {
  (void)self;
  (void)from;
#ifdef HAVE_ASAN
  const void *lo;
  size_t size;
  __sanitizer_finish_switch_fiber(NULL, &lo, &size);
  if (from && !from->stack_lo) {
    from->stack_lo = lo;
    from->stack_size = size;
  }
#endif
}

void asyncio__coro_thread_init(asyncio__coro_t *c) {
  (void)c;
#ifdef ASYNCIO__CORO_SAN
  c->stack_lo = NULL;
  c->stack_size = 0;
#endif
#ifdef HAVE_ASAN
  pthread_attr_t attr;
  void *lo;
  size_t size;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    if (pthread_attr_getstack(&attr, &lo, &size) == 0) {
      c->stack_lo = lo;
      c->stack_size = size;
    }
    pthread_attr_destroy(&attr);
  }
#endif
}

void asyncio__coro_destroy(asyncio__coro_t *ctx) {
  (void)ctx;
#ifdef HAVE_TSAN
  if (ctx->tsan_fiber) __tsan_destroy_fiber(ctx->tsan_fiber);
  ctx->tsan_fiber = NULL;
#endif
}
