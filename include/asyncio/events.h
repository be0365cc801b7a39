/*
 * asyncio/events.h - the event loop (Python: asyncio.events, base_events).
 *
 * A loop belongs to the thread that runs it.  Only the *_threadsafe calls may
 * be made from another thread while it runs; every other call made from a
 * foreign thread while the loop runs fails with ASYNCIO_EWRONGTHREAD.
 *
 * Callbacks only ever run from the loop's ready queue, in FIFO order, never
 * re-entrantly from inside the call that scheduled them.
 */
#ifndef ASYNCIO_EVENTS_H
#define ASYNCIO_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct asyncio_loop asyncio_loop_t;
typedef struct asyncio_future asyncio_future_t;
/* A task is a future (asyncio.Task subclasses Future). */
typedef struct asyncio_future asyncio_task_t;

/* A plain callback: Python's callback(*args) with the args folded into one pointer. */
typedef void (*asyncio_callback_fn)(void *arg);

/*
 * A handle to a scheduled callback (asyncio.Handle / TimerHandle), by value.
 * It stays meaningful until the loop is closed: cancelling a handle whose
 * callback already ran, or that was already cancelled, is a harmless no-op
 * (a generation number tells a stale handle from a live one).
 * The zero value ASYNCIO_HANDLE_NONE is a valid "no handle".
 */
typedef struct asyncio_handle {
  void *ptr;
  uint64_t gen;
} asyncio_handle_t;

#define ASYNCIO_HANDLE_NONE ((asyncio_handle_t){0, 0})

/* Clock sources for a loop. */
typedef enum asyncio_clock {
  ASYNCIO_CLOCK_MONOTONIC = 0, /* CLOCK_MONOTONIC, as asyncio's loop.time() */
  /*
   * Virtual time with autojump (trio's MockClock(autojump_threshold=0)): time
   * starts at 0 and stands still while anything can run; when the ready queue
   * is empty, no file descriptor is ready right now and no thread work is in
   * flight, time jumps straight to the next timer.  Timer semantics become
   * exact and a test of "sleep 3600 s" takes microseconds.
   */
  ASYNCIO_CLOCK_VIRTUAL = 1,
} asyncio_clock_t;

/* Options for asyncio_loop_new; NULL means all defaults (Python's). */
typedef struct asyncio_loop_options {
  asyncio_clock_t clock;
  /* Default task stack size in bytes; 0 = ASYNCIO_DEFAULT_STACK_SIZE. */
  size_t stack_size;
  /*
   * Debug mode: 0 (the default, so a zeroed struct gets it) = from the
   * ASYNCIO_DEBUG environment variable (Python's -X dev / PYTHONASYNCIODEBUG);
   * > 0 on; < 0 off.
   */
  int debug;
  /* Seconds a callback may run before debug mode reports it; 0 = 0.1 s. */
  double slow_callback_duration;
} asyncio_loop_options_t;

#define ASYNCIO_DEFAULT_STACK_SIZE ((size_t)256 * 1024)
#define ASYNCIO_MIN_STACK_SIZE ((size_t)16 * 1024)

/*
 * The context passed to an exception handler (Python's context dict).
 * Fields that do not apply are NULL / 0.
 */
typedef struct asyncio_error_context {
  const char *message;    /* always set, e.g. "Task exception was never retrieved" */
  int error;              /* the error code (< 0), or 0 */
  const char *error_message; /* the message attached to the error, or NULL */
  asyncio_future_t *future; /* the future or task concerned (borrowed), or NULL */
  asyncio_handle_t handle;  /* the callback handle concerned, or ASYNCIO_HANDLE_NONE */
} asyncio_error_context_t;

typedef void (*asyncio_exception_handler_fn)(asyncio_loop_t *loop,
                                             const asyncio_error_context_t *context,
                                             void *userdata);

/* I/O readiness callback for add_reader / add_writer. */
typedef void (*asyncio_io_fn)(int fd, void *arg);

/* ---- life cycle -------------------------------------------------------- */

/*
 * Creates a loop (asyncio.new_event_loop()).  Does not suspend.
 * Returns 0 and stores the loop in *out, -EINVAL for bad options, -ENOMEM,
 * or a negative errno from the kernel (epoll_create1, eventfd).
 * The caller owns the loop and must asyncio_loop_close() it.
 */
int asyncio_loop_new(asyncio_loop_t **out, const asyncio_loop_options_t *options);

/*
 * Closes and frees the loop (loop.close()).  Pending callbacks are dropped;
 * tasks that are still pending are freed without running further, each
 * reported to the exception handler as "Task was destroyed but it is
 * pending!".  Returns 0, ASYNCIO_ERUNNING if the loop is running (nothing is
 * done), -EINVAL for NULL.  The loop's memory stays valid (closed) until the
 * last future or task of the loop is freed; after that the loop pointer and
 * its handles must not be used.  Thread work (asyncio/threads.h): jobs still
 * queued are dropped, and close blocks until the loop's running thread
 * functions have returned, then joins the default executor's threads.
 */
int asyncio_loop_close(asyncio_loop_t *loop);

/*
 * Runs until asyncio_loop_stop() (loop.run_forever()).  Not a suspension
 * point: it is the loop.  Returns 0, ASYNCIO_ERUNNING if a loop already runs
 * in this thread, ASYNCIO_ECLOSED, or a negative errno if polling failed.
 */
int asyncio_loop_run_forever(asyncio_loop_t *loop);

/*
 * Runs until the future (or task) is done and returns its outcome, as
 * asyncio_future_result() would: the result code (>= 0), its error, or
 * -ECANCELED; *value (if non-NULL) gets the attached pointer result
 * (loop.run_until_complete()).  If the loop is stopped before the future is
 * done, returns ASYNCIO_EINVALIDSTATE ("Event loop stopped before Future
 * completed.").  The caller keeps its reference to the future.
 */
int asyncio_loop_run_until_complete(asyncio_loop_t *loop, asyncio_future_t *future,
                                    void **value);

/*
 * Asks the running loop to stop after the current iteration (loop.stop()).
 * Callbacks already scheduled still run once.  Returns 0 or -EINVAL.
 */
int asyncio_loop_stop(asyncio_loop_t *loop);

bool asyncio_loop_is_running(const asyncio_loop_t *loop);
bool asyncio_loop_is_closed(const asyncio_loop_t *loop);

/* The loop's clock in seconds (loop.time()): monotonic, or virtual. */
double asyncio_loop_time(const asyncio_loop_t *loop);

/* The loop running in the calling thread, or NULL (asyncio.get_running_loop()). */
asyncio_loop_t *asyncio_get_running_loop(void);

/* ---- scheduling callbacks ---------------------------------------------- */

/*
 * Schedules fn(arg) to run on the next iteration, after everything already
 * scheduled (loop.call_soon()).  Does not suspend.  Stores a handle in *handle
 * if non-NULL.  Returns 0, -EINVAL, ASYNCIO_ECLOSED, ASYNCIO_EWRONGTHREAD or
 * -ENOMEM.
 */
int asyncio_loop_call_soon(asyncio_loop_t *loop, asyncio_callback_fn fn, void *arg,
                           asyncio_handle_t *handle);

/*
 * Schedules fn(arg) to run `delay` seconds from now (loop.call_later()).
 * Callbacks due at the same time run in the order they were scheduled.
 * A negative delay means now.  Returns as asyncio_loop_call_soon(), and
 * -EINVAL for a NaN delay.
 */
int asyncio_loop_call_later(asyncio_loop_t *loop, double delay, asyncio_callback_fn fn,
                            void *arg, asyncio_handle_t *handle);

/* As call_later, at the absolute loop time `when` (loop.call_at()). */
int asyncio_loop_call_at(asyncio_loop_t *loop, double when, asyncio_callback_fn fn, void *arg,
                         asyncio_handle_t *handle);

/*
 * Schedules fn(arg) from any thread and wakes the loop (an eventfd write)
 * (loop.call_soon_threadsafe()).  Safe from signal-free code in any thread.
 * Returns 0, -EINVAL, ASYNCIO_ECLOSED or -ENOMEM.  A call racing with
 * asyncio_loop_close either queues its callback before the close (which
 * drops it, as Python's close drops the ready queue) or returns
 * ASYNCIO_ECLOSED; either way it is safe as long as the loop struct is alive,
 * so another thread may keep calling after close only while some future or
 * task of the loop is still referenced (see asyncio_loop_close).
 */
int asyncio_loop_call_soon_threadsafe(asyncio_loop_t *loop, asyncio_callback_fn fn, void *arg);

/*
 * Cancels a scheduled callback (Handle.cancel()).  A handle that already ran,
 * was cancelled, or is ASYNCIO_HANDLE_NONE is left alone.  Loop thread only.
 */
void asyncio_handle_cancel(asyncio_handle_t handle);

/* True if the handle was cancelled (Handle.cancelled()); false once it ran. */
bool asyncio_handle_cancelled(asyncio_handle_t handle);

/*
 * The loop time a timer handle is due (TimerHandle.when()); returns 0 and
 * stores it in *when, or ASYNCIO_EINVALIDSTATE if the handle is not a live
 * timer.
 */
int asyncio_handle_when(asyncio_handle_t handle, double *when);

/* ---- file descriptors --------------------------------------------------- */

/*
 * Calls fn(fd, arg) whenever fd is readable (loop.add_reader()), replacing
 * any reader already set for fd.  Level-triggered, like asyncio's selector
 * loop.  Returns 0, -EINVAL, -EBADF, ASYNCIO_ECLOSED, ASYNCIO_EWRONGTHREAD,
 * -EPERM (a regular file: epoll cannot watch it) or -ENOMEM.
 */
int asyncio_loop_add_reader(asyncio_loop_t *loop, int fd, asyncio_io_fn fn, void *arg);

/* As add_reader, for writability (loop.add_writer()). */
int asyncio_loop_add_writer(asyncio_loop_t *loop, int fd, asyncio_io_fn fn, void *arg);

/*
 * Stops watching fd for reading (loop.remove_reader()).  Returns 1 if a
 * reader was removed, 0 if none was set, or a negative error.
 */
int asyncio_loop_remove_reader(asyncio_loop_t *loop, int fd);

/* As remove_reader, for writing (loop.remove_writer()). */
int asyncio_loop_remove_writer(asyncio_loop_t *loop, int fd);

/* ---- Unix signals --------------------------------------------------------- */

/*
 * Calls fn(arg) on the loop when signal `sig` arrives
 * (loop.add_signal_handler()).  Does not suspend.  The process-level handler
 * is installed with sigaction (SA_RESTART | SA_ONSTACK); it only records the
 * signal and wakes the loop through its wakeup eventfd, and the loop then
 * runs fn(arg) from its ready queue, like a call_soon callback, on the loop
 * thread (fn may do anything a callback may: cancel tasks, stop the loop).
 * Signals arrive while the loop runs; one that arrives while it is not
 * running is delivered on the next run.
 *
 * Deliveries of the same signal between two loop iterations coalesce into
 * one call (the kernel does not queue standard signals either, and Python's
 * asyncio behaves the same); different signals each get their call.
 * Adding a handler for a signal that already has one on this loop replaces
 * fn/arg; a delivery already queued then goes to the new handler.  arg is
 * borrowed: it must stay valid until the handler is replaced or removed, or
 * the loop is closed.
 *
 * Signals are process-wide: a signal can have a handler on one loop at a
 * time; adding it on another loop is -EBUSY until the first removes it (or
 * is closed).  Any thread may own the handler's loop (Python requires the
 * main thread only because of signal.set_wakeup_fd).
 *
 * asyncio_run / asyncio_runner_run: a SIGINT handler added during the run
 * replaces the runner's Ctrl-C handling (the user's handler wins, as in
 * Python) until it is removed, which restores the runner's; if it is still
 * installed when the run ends, it stays, and removing it later (or closing
 * the loop) restores SIGINT's default disposition.
 *
 * Returns 0; -EINVAL for a NULL loop or fn, a number that is not a signal,
 * SIGKILL or SIGSTOP (cannot be caught), or SIGSEGV, SIGBUS, SIGILL, SIGFPE
 * (a fault re-executes when its handler returns, so a deferred callback
 * could not run; SIGSEGV is also the stack-overflow guard's); -EBUSY (another
 * loop handles sig); ASYNCIO_ECLOSED; ASYNCIO_EWRONGTHREAD (the loop runs in
 * another thread); -ENOMEM (the first add allocates the loop's signal table);
 * or a negative errno from sigaction.  On error nothing changed.
 */
int asyncio_loop_add_signal_handler(asyncio_loop_t *loop, int sig, asyncio_callback_fn fn,
                                    void *arg);

/*
 * Removes the loop's handler for sig (loop.remove_signal_handler()).  Does
 * not suspend.  Restores the disposition sig had before the first add: for
 * most signals SIG_DFL, as Python does; where Python restores
 * default_int_handler for SIGINT, C restores whatever was there (SIG_DFL, or
 * the runner's handler inside asyncio_run).  A delivery queued but not yet
 * run is dropped; once this returns, fn is not called again.
 * Returns 1 if a handler was removed, 0 if the loop had none for sig (also
 * on a closed loop: close removed them), -EINVAL (NULL loop or not a signal
 * number), or ASYNCIO_EWRONGTHREAD.
 * asyncio_loop_close removes every handler the loop still has.
 */
int asyncio_loop_remove_signal_handler(asyncio_loop_t *loop, int sig);

/* ---- errors and debugging ----------------------------------------------- */

/*
 * Sets the handler for errors nobody retrieved (loop.set_exception_handler());
 * NULL restores the default, which prints the context to stderr.
 */
int asyncio_loop_set_exception_handler(asyncio_loop_t *loop, asyncio_exception_handler_fn fn,
                                       void *userdata);

/* The current handler and its userdata; *fn is NULL for the default. */
int asyncio_loop_get_exception_handler(asyncio_loop_t *loop, asyncio_exception_handler_fn *fn,
                                       void **userdata);

/* The default handler: prints "message", the error and the object to stderr. */
void asyncio_loop_default_exception_handler(asyncio_loop_t *loop,
                                            const asyncio_error_context_t *context);

/* Calls the current handler (loop.call_exception_handler()). */
void asyncio_loop_call_exception_handler(asyncio_loop_t *loop,
                                         const asyncio_error_context_t *context);

/*
 * Debug mode (loop.set_debug()): callbacks and task steps slower than
 * slow_callback_duration are reported to stderr, and pending tasks destroyed
 * by close are reported.
 */
int asyncio_loop_set_debug(asyncio_loop_t *loop, bool enabled);
bool asyncio_loop_get_debug(const asyncio_loop_t *loop);
int asyncio_loop_set_slow_callback_duration(asyncio_loop_t *loop, double seconds);
double asyncio_loop_get_slow_callback_duration(const asyncio_loop_t *loop);

/* The name of the I/O backend in use ("epoll"). */
const char *asyncio_loop_backend_name(const asyncio_loop_t *loop);

#ifdef __cplusplus
}
#endif
#endif
