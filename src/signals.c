/*
 * signals.c - Unix signal handlers run as loop callbacks (Python:
 * asyncio.unix_events._UnixSelectorEventLoop.add_signal_handler,
 * remove_signal_handler and _handle_signal, with the wakeup descriptor the
 * interpreter gets from signal.set_wakeup_fd).
 *
 * How a signal travels:
 *   1. on_signal, the C handler installed with sigaction (SA_RESTART, as
 *      Python's siginterrupt(sig, False)), runs on whatever thread the kernel
 *      picked.  It only does async-signal-safe things: sets the signal's
 *      pending flag and the owning loop's signals_pending and
 *      wakeup_signalled, and writes the loop's wakeup eventfd - the same path
 *      call_soon_threadsafe and the runner's SIGINT take.
 *   2. The loop wakes (a blocked poll returns; a skipped poll is not skipped
 *      because wakeup_signalled is set) and the eventfd's reader calls
 *      asyncio__signals_dispatch, which moves each pending signal's embedded
 *      handle to the ready queue.
 *   3. The next iteration runs fn(arg) like any call_soon callback: on the
 *      loop thread, never inside the signal handler.
 *
 * Invariants:
 *   - A signal has at most one owning loop in the process (owner[sig]); a
 *     second loop's add is -EBUSY.  Only the owner's thread writes the slot.
 *   - Deliveries between two dispatches coalesce into one callback (one
 *     pending flag, one embedded handle); standard signals are coalesced by
 *     the kernel as well, and Python's noop handler loses the same count.
 *   - Each loop's records, and their embedded handles, live from its first
 *     add until its close, so a queued handle never points at freed memory.
 *     The handle's fn/arg are the handler: a replacing add retargets a
 *     delivery already queued; a remove cancels it.
 *   - Nothing here allocates after the first add; delivery never allocates.
 *   - inflight counts C handlers running now: after clearing owner[sig],
 *     removal waits for it to drop to 0, so no handler still holds a loop
 *     whose eventfd or memory is about to go.
 */
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include "internal.h"

typedef struct sig_rec {
  asyncio__handle_t h;  /* embedded, HK_CALLBACK, not pooled: h.fn/h.arg are the handler */
  struct sigaction old; /* the disposition before add, restored by remove */
  uint8_t installed;
} sig_rec_t;

struct asyncio__loop_signals {
  sig_rec_t rec[NSIG];
  int ninstalled;
};

/* Process-wide: read by on_signal on any thread. */
static _Atomic(asyncio_loop_t *) owner[NSIG];
static atomic_int pending[NSIG];
static atomic_int inflight;

static void on_signal(int sig) {
  int saved_errno = errno;
  atomic_fetch_add(&inflight, 1);
  asyncio_loop_t *loop = atomic_load(&owner[sig]);
  if (loop) {
    atomic_store(&pending[sig], 1);
    atomic_store(&loop->signals_pending, 1);
    atomic_store_explicit(&loop->wakeup_signalled, 1, memory_order_relaxed);
    uint64_t one = 1;
    ssize_t r = write(loop->wake_fd, &one, sizeof one);
    (void)r; /* EAGAIN: the counter is saturated, so the loop wakes anyway */
  }
  atomic_fetch_sub(&inflight, 1);
  errno = saved_errno;
}

/* A number sigaction knows (glibc's sigfillset leaves out its own internal signals). */
static int valid_signal(int sig) {
  sigset_t all;
  if (sig <= 0 || sig >= NSIG) return 0;
  sigfillset(&all);
  return sigismember(&all, sig) == 1;
}

/*
 * A handler may be added for: SIGKILL and SIGSTOP cannot be caught; a fault
 * (SIGSEGV, SIGBUS, SIGILL, SIGFPE) re-executes the faulting instruction when
 * the handler returns, so a deferred callback could never run (and SIGSEGV
 * is the stack-overflow guard's, src/coro/stack.c).
 */
static int catchable(int sig) {
  switch (sig) {
  case SIGKILL:
  case SIGSTOP:
  case SIGSEGV:
  case SIGBUS:
  case SIGILL:
  case SIGFPE:
    return 0;
  default:
    return valid_signal(sig);
  }
}

/* Removal may race with on_signal on another thread: wait until none runs. */
static void wait_handlers_done(void) {
  while (atomic_load(&inflight)) sched_yield();
}

static void queue_delivery(asyncio_loop_t *loop, asyncio__handle_t *h) {
  if (h->state == H_IDLE) {
    h->cancelled = 0;
    asyncio__ready_push(loop, h);
  } else if (h->state == H_READY) {
    /* Coalesced with the delivery already queued; if that one was cancelled
     * by a remove and the signal was added again since, it is this one now. */
    h->cancelled = 0;
  }
}

void asyncio__signals_dispatch(asyncio_loop_t *loop) {
  /* Clear first: a signal arriving during the scan sets it (and the eventfd) again. */
  if (!atomic_exchange(&loop->signals_pending, 0)) return;
  struct asyncio__loop_signals *s = loop->signals;
  if (!s || !s->ninstalled) return;
  for (int sig = 1; sig < NSIG; sig++) {
    sig_rec_t *r = &s->rec[sig];
    if (r->installed && atomic_exchange(&pending[sig], 0)) queue_delivery(loop, &r->h);
  }
}

/* Puts back the disposition from before add and gives the signal up. */
static void uninstall(asyncio_loop_t *loop, int sig, sig_rec_t *r) {
  sigaction(sig, &r->old, NULL);
  atomic_store(&owner[sig], NULL);
  atomic_store(&pending[sig], 0);
  r->installed = 0;
  loop->signals->ninstalled--;
  if (r->h.state == H_READY) r->h.cancelled = 1; /* a queued delivery is dropped */
}

ASYNCIO_API int asyncio_loop_add_signal_handler(asyncio_loop_t *loop, int sig,
                                                asyncio_callback_fn fn, void *arg) {
  if (!loop || !fn || !catchable(sig)) return -EINVAL;
  int rc = asyncio__check_thread(loop);
  if (rc) return rc;
  struct asyncio__loop_signals *s = loop->signals;
  if (!s) {
    s = asyncio__calloc(sizeof *s);
    if (!s) return -ENOMEM;
    for (int i = 0; i < NSIG; i++) {
      asyncio__handle_t *h = &s->rec[i].h;
      h->kind = HK_CALLBACK;
      h->state = H_IDLE;
      h->loop = loop;
      h->heap_idx = UINT32_MAX;
      h->gen = 1;
    }
    loop->signals = s;
  }
  sig_rec_t *r = &s->rec[sig];
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  /* SA_ONSTACK: a task's stack may be nearly full; the loop thread has an
   * alternate stack (the overflow guard's), other threads use their own. */
  sa.sa_flags = SA_RESTART | SA_ONSTACK;
  if (r->installed) {
    /* Replace: the saved disposition stays the one from the first add;
     * install again in case someone changed it behind our back. */
    if (sigaction(sig, &sa, NULL) < 0) return -errno;
    r->h.fn = fn;
    r->h.arg = arg;
    return 0;
  }
  asyncio_loop_t *expected = NULL;
  if (!atomic_compare_exchange_strong(&owner[sig], &expected, loop)) return -EBUSY;
  atomic_store(&pending[sig], 0);
  r->h.fn = fn;
  r->h.arg = arg;
  if (sigaction(sig, &sa, &r->old) < 0) {
    rc = -errno;
    atomic_store(&owner[sig], NULL);
    return rc;
  }
  r->installed = 1;
  s->ninstalled++;
  return 0;
}

ASYNCIO_API int asyncio_loop_remove_signal_handler(asyncio_loop_t *loop, int sig) {
  if (!loop || !valid_signal(sig)) return -EINVAL;
  int rc = asyncio__check_owner(loop);
  if (rc) return rc;
  struct asyncio__loop_signals *s = loop->signals;
  if (!s || !s->rec[sig].installed) return 0;
  uninstall(loop, sig, &s->rec[sig]);
  wait_handlers_done();
  return 1;
}

void asyncio__signals_loop_close(asyncio_loop_t *loop) {
  struct asyncio__loop_signals *s = loop->signals;
  for (int sig = 1; sig < NSIG && s->ninstalled; sig++)
    if (s->rec[sig].installed) uninstall(loop, sig, &s->rec[sig]);
  wait_handlers_done();
  atomic_store(&loop->signals_pending, 0);
  loop->signals = NULL;
  asyncio__free(s, sizeof *s);
}

void asyncio__signals_replace_saved(int sig, void (*was)(int), const struct sigaction *now) {
  if (!valid_signal(sig)) return;
  asyncio_loop_t *loop = atomic_load(&owner[sig]);
  /* Only a loop no other thread runs: its records are that thread's. */
  if (!loop || !loop->signals || asyncio__check_owner(loop)) return;
  sig_rec_t *r = &loop->signals->rec[sig];
  if (r->installed && !(r->old.sa_flags & SA_SIGINFO) && r->old.sa_handler == was) r->old = *now;
}
