/*
 * asyncio/asyncgen.h - asynchronous generators (PEP 525: `async def` bodies
 * that `yield`), `async for`, and the loop's generator shutdown (Python:
 * types.AsyncGeneratorType, loop.shutdown_asyncgens()).
 *
 * A generator body is `int body(asyncio_asyncgen_t *gen, void *arg)`.  It runs
 * on its own stack, produces pointer-sized values with asyncio_asyncgen_yield()
 * and may await anything a task may await (sleep, futures, other generators)
 * between its yields.  The consumer drives it from inside a task:
 *
 *   asyncio_asyncgen_next(gen, &value)  `await anext(gen)` / `__anext__()`
 *   asyncio_asyncgen_asend(gen, v, &value)  `await gen.asend(v)`
 *   asyncio_asyncgen_athrow(gen, err, &value)  `await gen.athrow(exc)`
 *   asyncio_asyncgen_aclose(gen)        `await gen.aclose()`
 *
 * which return 1 with a value (the body yielded), 0 when the generator is
 * exhausted (StopAsyncIteration), or the error the body returned (< 0).
 *
 * The body runs on behalf of the consumer task: asyncio_current_task() inside
 * it is the consumer, an await inside it suspends the consumer, and a
 * cancellation of the consumer is delivered inside the body, at its next
 * suspension point, as -ECANCELED.  Only one consumer can be inside a
 * generator at a time ("asynchronous generator is already running").
 *
 * The body's return value ends the generator: >= 0 is normal exhaustion (the
 * value itself is dropped, as `return` in an async generator carries
 * nothing), < 0 is an error raised to the consumer.  After that every
 * next/asend/athrow returns 0 and aclose returns 0.
 *
 * aclose() delivers ASYNCIO_EGENERATOREXIT (GeneratorExit) as the return value
 * of the yield the body is suspended at.  The body then runs its cleanup (it
 * may await) and returns; returning ASYNCIO_EGENERATOREXIT, or any value >= 0,
 * makes aclose() succeed.  A body that yields again instead is abandoned at
 * that yield (nothing after it runs) and aclose() returns
 * ASYNCIO_EASYNCGENIGNOREDEXIT ("async generator ignored GeneratorExit").
 *
 * Ownership: the creator owns the generator (asyncio_asyncgen_new /
 * asyncio_asyncgen_free).  Its stack is taken from the running loop's stack
 * pool on the first iteration, which also binds the generator to that loop
 * (the firstiter hook); it goes back to the pool when the body ends.  Freeing
 * a generator that is suspended at a yield hands it to its loop, which closes
 * it in a task of its own (the finalizer hook); asyncio.run() and
 * asyncio_runner_close() close every generator still open on the loop
 * (shutdown_asyncgens) before closing it.  A loop closed with generators
 * still suspended releases their stacks without resuming them.
 */
#ifndef ASYNCIO_ASYNCGEN_H
#define ASYNCIO_ASYNCGEN_H

#include <stdbool.h>
#include <stddef.h>

#include "events.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct asyncio_asyncgen asyncio_asyncgen_t;

/* A generator body: yields with asyncio_asyncgen_yield(); returns >= 0 or < 0. */
typedef int (*asyncio_asyncgen_fn)(asyncio_asyncgen_t *gen, void *arg);

/* Options for asyncio_asyncgen_new; NULL means defaults. */
typedef struct asyncio_asyncgen_options {
  const char *name;  /* copied; NULL = "asyncgen-<n>" (__name__/__qualname__) */
  size_t stack_size; /* 0 = the loop's default; else >= ASYNCIO_MIN_STACK_SIZE */
} asyncio_asyncgen_options_t;

/* inspect.getasyncgenstate(): AGEN_CREATED, AGEN_RUNNING, AGEN_SUSPENDED, AGEN_CLOSED. */
typedef enum asyncio_asyncgen_state {
  ASYNCIO_AGEN_CREATED = 0, /* never iterated */
  ASYNCIO_AGEN_RUNNING,     /* the body runs, or awaits, on behalf of a consumer */
  ASYNCIO_AGEN_SUSPENDED,   /* the body waits at a yield */
  ASYNCIO_AGEN_CLOSED       /* the body returned, or the generator was closed */
} asyncio_asyncgen_state_t;

/*
 * Creates a generator that will run body(gen, arg) (calling an `async def`
 * that contains `yield`).  Does not suspend and needs no loop: nothing runs
 * and no stack is taken until the first asyncio_asyncgen_next().  The caller
 * owns the generator.  Returns 0, -EINVAL (NULL out or body, stack_size below
 * ASYNCIO_MIN_STACK_SIZE), -ENOMEM.
 */
int asyncio_asyncgen_new(asyncio_asyncgen_t **out, asyncio_asyncgen_fn body, void *arg,
                         const asyncio_asyncgen_options_t *options);

/*
 * Gives up the caller's ownership (dropping the last reference to a Python
 * async generator).  Does not suspend.  A generator that never ran or has
 * ended is freed at once.  One suspended at a yield is handed to its loop,
 * which closes it as aclose() would, in a task of its own (the
 * loop's _asyncgen_finalizer_hook), and frees it; if the loop cannot start
 * that task it closes the generator at shutdown_asyncgens, and a loop closed
 * first releases it without resuming it.  Returns 0, -EINVAL (NULL),
 * -EBUSY (a consumer is inside the generator: nothing was freed),
 * ASYNCIO_EWRONGTHREAD.
 */
int asyncio_asyncgen_free(asyncio_asyncgen_t *gen);

/*
 * `await anext(gen)` (gen.__anext__()): runs the body until it yields or
 * returns.  A suspension point while the body awaits (the first call binds the
 * generator to the running loop and takes its stack).  Returns 1 and stores the
 * yielded value in *value (nullable), 0 when the generator is exhausted or
 * closed (StopAsyncIteration; *value = NULL), the body's error (< 0, which
 * closes the generator, -ECANCELED included), ASYNCIO_ENOTASK (not inside a
 * task), ASYNCIO_EASYNCGENRUNNING (a consumer is already inside it, or the
 * body calls it on itself), -EINVAL (NULL gen, or a generator bound to another
 * loop), -ENOMEM (no stack for the first run: the generator stays unstarted).
 */
int asyncio_asyncgen_next(asyncio_asyncgen_t *gen, void **value);

/*
 * `await gen.asend(send)`: as asyncio_asyncgen_next, and the yield the body
 * is suspended at hands `send` to it (asyncio_asyncgen_yield_recv).  Sending
 * anything but NULL to a generator that has not started is -EINVAL (Python's
 * "can't send non-None value to a just-started async generator").
 */
int asyncio_asyncgen_asend(asyncio_asyncgen_t *gen, void *send, void **value);

/*
 * `await gen.athrow(exc)`: the yield the body is suspended at returns `err`
 * (< 0) instead of 0; the body handles it or returns it.  A suspension point.
 * Returns as asyncio_asyncgen_next: 1 if the body yields again, 0 if it
 * returns >= 0, its error otherwise (err itself when it does not handle it).
 * On a generator that never started the body does not run: it is closed and
 * err is returned.  On a closed one: 0.  -EINVAL if err >= 0.
 */
int asyncio_asyncgen_athrow(asyncio_asyncgen_t *gen, int err, void **value);

/*
 * `await gen.aclose()`: a generator suspended at a yield gets
 * ASYNCIO_EGENERATOREXIT from that yield, runs its cleanup (which may await:
 * a suspension point) and must return.  A generator that never started is
 * just marked closed (its body never runs); a closed one stays closed.
 * Returns 0, the body's error if its cleanup fails (< 0, -ECANCELED if the
 * consumer is cancelled during the cleanup), ASYNCIO_EASYNCGENIGNOREDEXIT
 * (it yielded again: the rest of its body never runs),
 * ASYNCIO_EASYNCGENRUNNING, -EINVAL, and ASYNCIO_ENOTASK when the body would
 * have to run outside a task.
 */
int asyncio_asyncgen_aclose(asyncio_asyncgen_t *gen);

/*
 * `yield value` in a generator body: hands value to the consumer and waits
 * until it asks for the next one.  Called from the body (or anything it
 * calls), on its own stack.  Returns 0 when resumed by next/asend, the error
 * passed to athrow, or ASYNCIO_EGENERATOREXIT when the generator is being
 * closed (the body must clean up and return, not yield again).  Returns
 * ASYNCIO_ENOTASK outside a task and -EPERM when the calling code is not a
 * generator body; then nothing was yielded.
 */
int asyncio_asyncgen_yield(void *value);

/*
 * `received = yield value`: as asyncio_asyncgen_yield, and stores the value
 * passed to asyncio_asyncgen_asend in *received (NULL after next/athrow/aclose).
 */
int asyncio_asyncgen_yield_recv(void *value, void **received);

/* inspect.getasyncgenstate(gen); ASYNCIO_AGEN_CLOSED for NULL. */
asyncio_asyncgen_state_t asyncio_asyncgen_get_state(const asyncio_asyncgen_t *gen);

/* gen.ag_running: true while a consumer is inside the generator. */
bool asyncio_asyncgen_running(const asyncio_asyncgen_t *gen);

/* gen.__name__: borrowed, valid until the generator is freed; NULL for NULL. */
const char *asyncio_asyncgen_get_name(asyncio_asyncgen_t *gen);

/*
 * `await loop.shutdown_asyncgens()`: closes every generator of the loop (the
 * running loop when NULL) that is suspended at a yield, as aclose() would,
 * one after another (Python gathers them; the difference shows only when
 * cleanups await), and waits for the ones being closed by their finalizer.
 * Errors from a cleanup are reported through the loop's exception handler
 * ("an error occurred during closing of asynchronous generator"), as is a
 * generator that is running on behalf of a task.  Generators started
 * afterwards are still tracked.  A suspension point; must be called from a
 * task of that loop.  Returns 0, -ECANCELED (the calling task was cancelled),
 * ASYNCIO_ENOTASK (not called from a task of that loop), ASYNCIO_ENOLOOP,
 * ASYNCIO_ECLOSED, ASYNCIO_EWRONGTHREAD.
 */
int asyncio_loop_shutdown_asyncgens(asyncio_loop_t *loop);

/*
 * `async for x in it:` - the iteration protocol shared by every asynchronous
 * iterator in the library: a `next` call that suspends and returns 1 with an
 * item, 0 at the end (StopAsyncIteration) or an error (< 0).  The statement
 * after the macro runs once per item; afterwards rc is 0 (exhausted) or the
 * error:
 *
 *   void *v;
 *   int rc;
 *   ASYNCIO_ASYNC_FOR(rc, asyncio_asyncgen_next(gen, &v)) {
 *     use(v);
 *   }
 *   if (rc < 0) return rc;
 *
 * It is a plain `while`: `break` and `continue` work.  As in Python, leaving
 * early does not close the generator; call asyncio_asyncgen_aclose() (what
 * contextlib.aclosing does) or asyncio_asyncgen_free() it.  An async
 * comprehension `[f(x) async for x in it if p(x)]` is this loop appending to
 * an array.
 */
#define ASYNCIO_ASYNC_FOR(rc, next_call) while (((rc) = (next_call)) > 0)

#ifdef __cplusplus
}
#endif
#endif
