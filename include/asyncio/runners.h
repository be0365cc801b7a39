/*
 * asyncio/runners.h - asyncio.run() and asyncio.Runner.
 */
#ifndef ASYNCIO_RUNNERS_H
#define ASYNCIO_RUNNERS_H

#include "tasks.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct asyncio_runner asyncio_runner_t;

/* Options for run / Runner; NULL means defaults. */
typedef struct asyncio_run_options {
  /* The loop's options (clock, default stack size, debug); NULL = defaults. */
  const asyncio_loop_options_t *loop;
  /* Do not install the SIGINT handler that cancels the main task. */
  bool no_sigint_handler;
} asyncio_run_options_t;

/*
 * asyncio.run(main(arg)): creates a loop, runs main as a task
 * until it finishes, cancels every task still pending and waits for them,
 * then closes the loop.  Returns main's outcome (its result, its error,
 * -ECANCELED), and stores its pointer result in *value if non-NULL.
 * While it runs, SIGINT (Ctrl-C) cancels the main task; if main then ends
 * cancelled, -EINTR (KeyboardInterrupt) is returned.  A second SIGINT
 * restores the default disposition and re-raises, ending the process as an
 * unhandled KeyboardInterrupt would.  Returns ASYNCIO_ERUNNING if a loop
 * already runs in this thread.
 */
int asyncio_run(asyncio_coro_fn main, void *arg, const asyncio_run_options_t *options);

/* As asyncio_run, with the pointer result. */
int asyncio_run_value(asyncio_coro_fn main, void *arg, const asyncio_run_options_t *options,
                      void **value);

/*
 * asyncio.Runner: one loop for several runs.  The loop is created lazily on
 * the first run.  Returns 0, -EINVAL, -ENOMEM.
 */
int asyncio_runner_new(asyncio_runner_t **out, const asyncio_run_options_t *options);

/*
 * Runner.run(coro): runs fn(arg) as a task until it finishes and returns its
 * outcome as asyncio_run does (other tasks stay pending for the next run).
 * Returns ASYNCIO_ECLOSED after close, ASYNCIO_ERUNNING if called from a
 * running loop.
 */
int asyncio_runner_run(asyncio_runner_t *runner, asyncio_coro_fn fn, void *arg, void **value);

/* Runner.get_loop(): the runner's loop, created if needed; NULL on ENOMEM or after close. */
asyncio_loop_t *asyncio_runner_get_loop(asyncio_runner_t *runner);

/*
 * Runner.close() (the end of `with asyncio.Runner() as r:`): cancels the
 * tasks still pending and waits for them, then closes the loop.  The runner
 * stays allocated: later runs return ASYNCIO_ECLOSED.  Closing twice is a
 * no-op.  Returns 0, -EINVAL, or ASYNCIO_ERUNNING (called from its own loop).
 */
int asyncio_runner_close(asyncio_runner_t *runner);

/*
 * Closes the runner if needed (as asyncio_runner_close) and frees it.
 * Returns 0, -EINVAL, or ASYNCIO_ERUNNING (then nothing was freed).
 */
int asyncio_runner_free(asyncio_runner_t *runner);

#ifdef __cplusplus
}
#endif
#endif
