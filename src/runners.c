/*
 * runners.c - asyncio.run() and asyncio.Runner (Python: asyncio.runners).
 *
 * run() = Runner: lazily create a loop, run the main coroutine as a task to
 * completion, then on close cancel what is left, wait for it, and close the
 * loop.  While a run is in progress SIGINT cancels the main task, exactly as
 * Runner._on_sigint does: the first Ctrl-C cancels (and the run reports
 * KeyboardInterrupt as -EINTR if main ends cancelled), a second one restores
 * the default disposition and re-raises.  A SIGINT handler the user adds
 * with asyncio_loop_add_signal_handler during the run replaces this (the
 * user's handler wins, as in Python) until it is removed (signals.c).
 */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

struct asyncio_runner {
  asyncio_loop_t *loop;
  asyncio_loop_options_t loop_options;
  int has_loop_options;
  int no_sigint;
  int closed;
  asyncio_task_t *main_task;
  int interrupt_count;
};

/* The runner whose loop a SIGINT should reach (one run at a time per process
 * installs the handler, as Python only does it in the main thread). */
static asyncio_runner_t *volatile sigint_runner;
static volatile sig_atomic_t sigint_count;
static int sigint_wake_fd = -1;

static void on_sigint(int sig) {
  (void)sig;
  asyncio_runner_t *runner = sigint_runner;
  if (sigint_count == 0 && runner) {
    sigint_count = 1;
    atomic_store_explicit(&runner->loop->wakeup_signalled, 1, memory_order_relaxed);
    uint64_t one = 1;
    ssize_t r = write(sigint_wake_fd, &one, sizeof one);
    (void)r;
    return;
  }
  /* A second Ctrl-C, or one reaching this handler after its run ended (put
   * back by the removal of a handler another thread's loop added): default. */
  signal(SIGINT, SIG_DFL);
  raise(SIGINT);
}

/* Runs on the loop when the eventfd fired: turn a SIGINT into a cancel. */
static void check_sigint(asyncio_loop_t *loop, void *arg) {
  (void)loop;
  asyncio_runner_t *r = arg;
  if (sigint_count == 1 && r->interrupt_count == 0) {
    r->interrupt_count = 1;
    if (r->main_task && !asyncio_future_done(r->main_task)) asyncio_task_cancel(r->main_task, NULL);
  }
}

ASYNCIO_API int asyncio_runner_new(asyncio_runner_t **out, const asyncio_run_options_t *o) {
  if (!out) return -EINVAL;
  *out = NULL;
  asyncio_runner_t *r = asyncio__calloc(sizeof *r);
  if (!r) return -ENOMEM;
  if (o && o->loop) {
    r->loop_options = *o->loop;
    r->has_loop_options = 1;
  }
  r->no_sigint = o && o->no_sigint_handler;
  *out = r;
  return 0;
}

static int lazy_init(asyncio_runner_t *r) {
  if (r->closed) return ASYNCIO_ECLOSED;
  if (r->loop) return 0;
  return asyncio_loop_new(&r->loop, r->has_loop_options ? &r->loop_options : NULL);
}

ASYNCIO_API asyncio_loop_t *asyncio_runner_get_loop(asyncio_runner_t *r) {
  if (!r || lazy_init(r) != 0) return NULL;
  return r->loop;
}

ASYNCIO_API int asyncio_runner_run(asyncio_runner_t *r, asyncio_coro_fn fn, void *arg,
                                   void **value) {
  if (!r || !fn) return -EINVAL;
  if (asyncio__running_loop) return ASYNCIO_ERUNNING;
  int rc = lazy_init(r);
  if (rc) return rc;
  asyncio_task_t *task;
  rc = asyncio_loop_create_task(r->loop, &task, fn, arg, NULL);
  if (rc) return rc;
  r->main_task = task;
  r->interrupt_count = 0;

  struct sigaction old, sa;
  int installed = 0;
  if (!r->no_sigint && !sigint_runner && sigaction(SIGINT, NULL, &old) == 0 &&
      !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL) {
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigint_count = 0;
    sigint_wake_fd = r->loop->wake_fd;
    sigint_runner = r;
    r->loop->on_wakeup = check_sigint;
    r->loop->on_wakeup_arg = r;
    if (sigaction(SIGINT, &sa, NULL) == 0) installed = 1;
  }

  rc = asyncio_loop_run_until_complete(r->loop, task, value);

  if (installed) {
    /*
     * As Runner.run: put the default back only if the handler is still ours.
     * A handler the user added with asyncio_loop_add_signal_handler during
     * the run stays; it saved ours as the one to restore, which is now the
     * default (ours must never come back once the run is over).
     */
    struct sigaction cur;
    if (sigaction(SIGINT, NULL, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) &&
        cur.sa_handler == on_sigint)
      sigaction(SIGINT, &old, NULL);
    else
      asyncio__signals_replace_saved(SIGINT, on_sigint, &old);
    r->loop->on_wakeup = NULL;
    r->loop->on_wakeup_arg = NULL;
    sigint_runner = NULL;
    sigint_wake_fd = -1;
  }
  /* Runner.run: a cancellation that came from Ctrl-C is KeyboardInterrupt. */
  if (rc == -ECANCELED && r->interrupt_count > 0 && asyncio_task_uncancel(task) == 0)
    rc = -EINTR;
  r->main_task = NULL;
  asyncio_task_free(task);
  return rc;
}

ASYNCIO_API int asyncio_runner_close(asyncio_runner_t *r) {
  if (!r) return -EINVAL;
  if (r->closed) return 0;
  if (r->loop && r->loop->running) return ASYNCIO_ERUNNING;
  if (r->loop) {
    asyncio__task_cancel_all(r->loop);
    asyncio__asyncgen_shutdown(r->loop); /* loop.shutdown_asyncgens() */
    /* loop.shutdown_default_executor(): the workers finish their jobs. */
    asyncio_future_t *ex_done = NULL;
    if (asyncio__threads_shutdown_default(r->loop, &ex_done) == 0 && ex_done) {
      asyncio_loop_run_until_complete(r->loop, ex_done, NULL);
      asyncio__future_unref(ex_done);
    }
    asyncio_loop_close(r->loop);
    r->loop = NULL;
  }
  r->closed = 1;
  return 0;
}

ASYNCIO_API int asyncio_runner_free(asyncio_runner_t *r) {
  if (!r) return -EINVAL;
  int rc = asyncio_runner_close(r);
  if (rc) return rc;
  asyncio__free(r, sizeof *r);
  return 0;
}

ASYNCIO_API int asyncio_run_value(asyncio_coro_fn main, void *arg, const asyncio_run_options_t *o,
                                  void **value) {
  if (!main) return -EINVAL;
  if (asyncio__running_loop) return ASYNCIO_ERUNNING;
  asyncio_runner_t *r;
  int rc = asyncio_runner_new(&r, o);
  if (rc) return rc;
  rc = asyncio_runner_run(r, main, arg, value);
  asyncio_runner_free(r);
  return rc;
}

ASYNCIO_API int asyncio_run(asyncio_coro_fn main, void *arg, const asyncio_run_options_t *o) {
  return asyncio_run_value(main, arg, o, NULL);
}
