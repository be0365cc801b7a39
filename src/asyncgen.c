/*
 * asyncgen.c - asynchronous generators (Python: PEP 525, Objects/genobject.c's
 * async generator, and the loop's _asyncgen_firstiter_hook,
 * _asyncgen_finalizer_hook and shutdown_asyncgens in asyncio.base_events).
 *
 * A generator body runs on a stack of its own, taken from the loop's pool at
 * the first iteration.  It runs "on behalf of" the consumer task: next()
 * saves the consumer's context and switches to the body; the body switches
 * back when it yields or returns.  While the body runs, the task's current
 * context (t->cur_ctx, t->cur_stack) is the generator's, so a suspension
 * inside the body (an await, a sleep) saves the body's context and the next
 * step of the task resumes the body, not the consumer.  Generators nest: the
 * consumer may itself be a generator body, whose context the inner one saves
 * into and restores (gen->consumer); the task always runs its innermost
 * context.  The innermost running generator is found from t->cur_ctx, which
 * points into it (it is not the task's own context).
 *
 * Invariants:
 *  - state RUNNING <=> a consumer is blocked in gen_resume() and gen->task is
 *    its task; t->cur_ctx == &gen->ctx exactly while the body itself executes
 *    or is suspended in an await (not while a generator it consumes runs).
 *  - gen->stack != NULL <=> the body started and has not ended (RUNNING or
 *    SUSPENDED); the body's frames are only ever abandoned, never unwound,
 *    when the loop closes or the body yields after GeneratorExit.
 *  - A started generator is on its loop's list (loop->asyncgens) until it is
 *    destroyed or the loop closes; the loop closing detaches every one.
 *  - A generator the user freed ("orphan") is destroyed by whoever leaves it
 *    not running and not suspended with no internal user (pins) left: the
 *    closer task, shutdown_asyncgens, or loop close.  One still suspended
 *    belongs to its loop until then.
 */
#include <stdlib.h>

#include "internal.h"

struct asyncio_asyncgen {
  asyncio__coro_t ctx;            /* the body's context (first: see GEN_OF_CTX) */
  asyncio_asyncgen_fn body;
  void *arg;
  asyncio__stack_t *stack;
  size_t stack_size;              /* 0 = the loop's default */
  asyncio_loop_t *loop;           /* bound at the first iteration */
  struct asyncio_asyncgen *prev, *next; /* the loop's list of started generators */
  asyncio__task_t *task;          /* the consumer task while RUNNING */
  asyncio__coro_t *consumer;      /* where a yield returns to */
  asyncio__stack_t *consumer_stack;
  uint8_t consumer_unguarded;
  asyncio_task_t *closer;         /* the finalizer task (a reference), or NULL */
  char *name;
  uint64_t id;
  void *value;                    /* the yielded value */
  void *sent;                     /* asend's value */
  int in_rc;                      /* what the yield returns: 0, athrow's error, GeneratorExit */
  int out_rc;                     /* the body's return value */
  int pins;                       /* internal users: closer task, shutdown */
  uint8_t state;                  /* asyncio_asyncgen_state_t */
  uint8_t closing;                /* aclose in progress: a yield now is an error */
  uint8_t ignored_exit;           /* the body yielded after GeneratorExit */
  uint8_t orphan;                 /* the user freed it */
  uint8_t seen;                   /* visited by the shutdown in progress */
};

#define GEN_OF_CTX(c) ((asyncio_asyncgen_t *)((char *)(c) - offsetof(struct asyncio_asyncgen, ctx)))

static atomic_ullong gen_counter;

/* ---- life cycle ------------------------------------------------------------ */

ASYNCIO_API int asyncio_asyncgen_new(asyncio_asyncgen_t **out, asyncio_asyncgen_fn body,
                                     void *arg, const asyncio_asyncgen_options_t *o) {
  if (out) *out = NULL;
  if (!out || !body) return -EINVAL;
  if (o && o->stack_size && o->stack_size < ASYNCIO_MIN_STACK_SIZE) return -EINVAL;
  asyncio_asyncgen_t *g = asyncio__calloc(sizeof *g);
  if (!g) return -ENOMEM;
  if (o && o->name && !(g->name = asyncio__strdup(o->name))) {
    asyncio__free(g, sizeof *g);
    return -ENOMEM;
  }
  g->body = body;
  g->arg = arg;
  g->stack_size = o ? o->stack_size : 0;
  g->id = atomic_fetch_add(&gen_counter, 1) + 1;
  g->state = ASYNCIO_AGEN_CREATED;
  *out = g;
  return 0;
}

static void list_remove(asyncio_asyncgen_t *g) {
  asyncio_loop_t *loop = g->loop;
  if (!loop) return;
  if (g->prev)
    g->prev->next = g->next;
  else
    loop->asyncgens = g->next;
  if (g->next) g->next->prev = g->prev;
  g->prev = g->next = NULL;
}

/* Returns the body's stack to the pool; the body never runs again. */
static void release_stack(asyncio_asyncgen_t *g) {
  if (!g->stack) return;
  asyncio__coro_destroy(&g->ctx);
  asyncio__stack_put(&g->loop->stacks, g->stack, g->loop->stack_size);
  g->stack = NULL;
}

static void destroy(asyncio_asyncgen_t *g) {
  if (g->closer) {
    /* Not started (it would pin the generator otherwise) or done: a
     * cancelled task that never started never runs its body. */
    asyncio_task_cancel(g->closer, NULL);
    asyncio_task_free(g->closer);
    g->closer = NULL;
  }
  release_stack(g);
  list_remove(g);
  asyncio__strfree(g->name);
  asyncio__free(g, sizeof *g);
}

/* Frees an orphan nobody uses any more, unless its body still has to be closed. */
static void maybe_destroy(asyncio_asyncgen_t *g) {
  if (g->orphan && !g->pins && g->state != ASYNCIO_AGEN_RUNNING &&
      g->state != ASYNCIO_AGEN_SUSPENDED)
    destroy(g);
}

static void report_close_error(asyncio_loop_t *loop, asyncio_asyncgen_t *g, int rc) {
  char msg[160];
  snprintf(msg, sizeof msg, "an error occurred during closing of asynchronous generator %s",
           asyncio_asyncgen_get_name(g));
  asyncio__loop_report(loop, msg, rc, NULL, NULL);
}

/* The finalizer hook's task: loop.create_task(agen.aclose()). */
static int closer_body(void *arg) {
  asyncio_asyncgen_t *g = arg;
  g->pins++;
  int rc = asyncio_asyncgen_aclose(g);
  if (rc < 0 && rc != -ECANCELED && rc != ASYNCIO_EASYNCGENRUNNING)
    report_close_error(g->loop, g, rc);
  g->pins--;
  /* Drop the generator's reference to this task: the loop keeps its own
   * until the body returns, so destroy() must not cancel a running task. */
  asyncio_task_t *self = g->closer;
  g->closer = NULL;
  if (self) asyncio_task_free(self);
  maybe_destroy(g);
  return 0;
}

/* Starts the finalizer task unless one is pending; 0 or a create_task error. */
static int ensure_closer(asyncio_asyncgen_t *g) {
  if (g->closer && !asyncio_future_done(g->closer)) return 0;
  if (g->closer) {
    asyncio_task_free(g->closer);
    g->closer = NULL;
  }
  asyncio_task_options_t o = {0};
  o.name = "asyncgen-finalizer";
  return asyncio_loop_create_task(g->loop, &g->closer, closer_body, g, &o);
}

ASYNCIO_API int asyncio_asyncgen_free(asyncio_asyncgen_t *g) {
  if (!g) return -EINVAL;
  if (g->loop) {
    int rc = asyncio__check_owner(g->loop);
    if (rc) return rc;
  }
  if (g->orphan) return -EINVAL;
  if (g->state == ASYNCIO_AGEN_RUNNING) return -EBUSY;
  g->orphan = 1;
  /* _asyncgen_finalizer_hook: the loop closes it in a task.  If no task can
   * be created it stays on the loop's list for shutdown_asyncgens. */
  if (g->state == ASYNCIO_AGEN_SUSPENDED) (void)ensure_closer(g);
  maybe_destroy(g);
  return 0;
}

/* ---- running the body ------------------------------------------------------- */

static void gen_stack_check(asyncio_asyncgen_t *g) {
  if (UNLIKELY(!g->stack->guarded) && asyncio__stack_check(g->stack)) {
    fprintf(stderr,
            "asyncio: stack overflow in asynchronous generator '%s': it wrote below its "
            "%zu-byte stack; create it with a larger asyncio_asyncgen_options_t.stack_size\n",
            asyncio_asyncgen_get_name(g), g->stack->size);
    abort();
  }
}

/* Makes the consumer the task's current context again (the body stops running). */
static inline void give_back(asyncio_asyncgen_t *g) {
  asyncio__task_t *t = g->task;
  t->cur_ctx = g->consumer;
  t->cur_stack = g->consumer_stack;
  t->unguarded = g->consumer_unguarded;
  asyncio__current_stack = g->consumer_stack;
  gen_stack_check(g);
}

static void gen_entry(void *p) {
  asyncio_asyncgen_t *g = p;
  asyncio__coro_started(&g->ctx, g->consumer);
  g->out_rc = g->body(g, g->arg);
  g->state = ASYNCIO_AGEN_CLOSED;
  give_back(g);
  asyncio__coro_exit(&g->ctx, g->consumer);
}

/*
 * Runs the body (started or resumed) on behalf of task t until it yields or
 * ends; in_rc is what its pending yield returns.  Returns 0 or -ENOMEM (no
 * stack for a first run).
 */
static int gen_resume(asyncio_asyncgen_t *g, asyncio__task_t *t, int in_rc, void *send) {
  asyncio_loop_t *loop = t->f.loop;
  if (g->state == ASYNCIO_AGEN_CREATED) {
    /* _asyncgen_firstiter_hook: the loop tracks it from now on. */
    size_t size = g->stack_size ? g->stack_size : loop->stack_size;
    g->stack = asyncio__stack_get(&loop->stacks, size, loop->stack_size);
    if (UNLIKELY(!g->stack)) return -ENOMEM;
    g->loop = loop;
    g->seen = 1; /* a shutdown in progress closes only the ones it found */
    g->next = loop->asyncgens;
    if (g->next) g->next->prev = g;
    loop->asyncgens = g;
    asyncio__coro_init(&g->ctx, g->stack, gen_entry, g);
  }
  g->state = ASYNCIO_AGEN_RUNNING;
  g->task = t;
  g->in_rc = in_rc;
  g->sent = send;
  g->consumer = t->cur_ctx;
  g->consumer_stack = t->cur_stack;
  g->consumer_unguarded = t->unguarded;
  t->cur_ctx = &g->ctx;
  t->cur_stack = g->stack;
  t->unguarded = !g->stack->guarded;
  asyncio__current_stack = g->stack;
  asyncio__coro_switch(g->consumer, &g->ctx);
  /* The body yielded (SUSPENDED) or ended (CLOSED) and gave the task back. */
  if (g->state == ASYNCIO_AGEN_CLOSED) release_stack(g);
  return 0;
}

/* Checks shared by next/asend/athrow/aclose: the calling task, or an error. */
static int consumer_task(asyncio_asyncgen_t *g, asyncio__task_t **out) {
  asyncio_loop_t *loop = asyncio__running_loop;
  asyncio__task_t *t = loop ? loop->current : NULL;
  *out = t;
  if (!t) return ASYNCIO_ENOTASK;
  if (g->loop && g->loop != loop) return -EINVAL;
  if (g->state == ASYNCIO_AGEN_RUNNING) return ASYNCIO_EASYNCGENRUNNING;
  return 0;
}

/* The outcome of a resumption as anext/asend/athrow report it. */
static int outcome(asyncio_asyncgen_t *g, void **value) {
  if (g->state == ASYNCIO_AGEN_SUSPENDED) {
    if (value) *value = g->value;
    return 1;
  }
  return g->out_rc >= 0 ? 0 : g->out_rc;
}

static int gen_send(asyncio_asyncgen_t *g, int in_rc, void *send, void **value) {
  if (value) *value = NULL;
  if (!g) return -EINVAL;
  asyncio__task_t *t;
  int rc = consumer_task(g, &t);
  if (rc) return rc;
  if (g->state == ASYNCIO_AGEN_CLOSED) return 0;
  if (g->state == ASYNCIO_AGEN_CREATED) {
    if (send) return -EINVAL;
    if (in_rc < 0) {
      /* athrow on a generator that never ran: raised at its first line. */
      g->state = ASYNCIO_AGEN_CLOSED;
      return in_rc;
    }
  }
  rc = gen_resume(g, t, in_rc, send);
  if (rc) return rc;
  return outcome(g, value);
}

ASYNCIO_API int asyncio_asyncgen_next(asyncio_asyncgen_t *g, void **value) {
  return gen_send(g, 0, NULL, value);
}

ASYNCIO_API int asyncio_asyncgen_asend(asyncio_asyncgen_t *g, void *send, void **value) {
  return gen_send(g, 0, send, value);
}

ASYNCIO_API int asyncio_asyncgen_athrow(asyncio_asyncgen_t *g, int err, void **value) {
  if (value) *value = NULL;
  if (!g || err >= 0) return -EINVAL;
  return gen_send(g, err, NULL, value);
}

ASYNCIO_API int asyncio_asyncgen_aclose(asyncio_asyncgen_t *g) {
  if (!g) return -EINVAL;
  if (g->state == ASYNCIO_AGEN_CREATED || g->state == ASYNCIO_AGEN_CLOSED) {
    if (g->loop) {
      int rc = asyncio__check_owner(g->loop);
      if (rc) return rc;
    }
    g->state = ASYNCIO_AGEN_CLOSED;
    return 0;
  }
  asyncio__task_t *t;
  int rc = consumer_task(g, &t);
  if (rc) return rc;
  g->closing = 1;
  gen_resume(g, t, ASYNCIO_EGENERATOREXIT, NULL); /* a started body needs no stack */
  g->closing = 0;
  if (g->ignored_exit) {
    g->ignored_exit = 0;
    return ASYNCIO_EASYNCGENIGNOREDEXIT;
  }
  rc = g->out_rc;
  return rc >= 0 || rc == ASYNCIO_EGENERATOREXIT ? 0 : rc;
}

ASYNCIO_API int asyncio_asyncgen_yield_recv(void *value, void **received) {
  if (received) *received = NULL;
  asyncio_loop_t *loop = asyncio__running_loop;
  asyncio__task_t *t = loop ? loop->current : NULL;
  if (!t) return ASYNCIO_ENOTASK;
  if (!t->cur_ctx || t->cur_ctx == &t->ctx) return -EPERM;
  asyncio_asyncgen_t *g = GEN_OF_CTX(t->cur_ctx);
  if (g->closing) {
    /* "async generator ignored GeneratorExit": the body is abandoned here. */
    g->ignored_exit = 1;
    g->out_rc = ASYNCIO_EASYNCGENIGNOREDEXIT;
    g->state = ASYNCIO_AGEN_CLOSED;
    give_back(g);
    asyncio__coro_exit(&g->ctx, g->consumer);
  }
  g->value = value;
  g->state = ASYNCIO_AGEN_SUSPENDED;
  give_back(g);
  asyncio__coro_switch(&g->ctx, g->consumer);
  /* Resumed by gen_resume on behalf of a consumer (maybe another task). */
  if (received) *received = g->sent;
  return g->in_rc;
}

ASYNCIO_API int asyncio_asyncgen_yield(void *value) {
  return asyncio_asyncgen_yield_recv(value, NULL);
}

/* ---- introspection ------------------------------------------------------- */

ASYNCIO_API asyncio_asyncgen_state_t asyncio_asyncgen_get_state(const asyncio_asyncgen_t *g) {
  return g ? (asyncio_asyncgen_state_t)g->state : ASYNCIO_AGEN_CLOSED;
}

ASYNCIO_API bool asyncio_asyncgen_running(const asyncio_asyncgen_t *g) {
  return g && g->state == ASYNCIO_AGEN_RUNNING;
}

ASYNCIO_API const char *asyncio_asyncgen_get_name(asyncio_asyncgen_t *g) {
  if (!g) return NULL;
  if (!g->name) {
    char buf[40];
    snprintf(buf, sizeof buf, "asyncgen-%llu", (unsigned long long)g->id);
    g->name = asyncio__strdup(buf);
    if (!g->name) return "asyncgen-?";
  }
  return g->name;
}

/* ---- the loop's side ---------------------------------------------------------- */

/* The next generator of the loop this shutdown has not looked at, or NULL. */
static asyncio_asyncgen_t *next_unseen(asyncio_loop_t *loop) {
  for (asyncio_asyncgen_t *g = loop->asyncgens; g; g = g->next)
    if (!g->seen) return g;
  return NULL;
}

ASYNCIO_API int asyncio_loop_shutdown_asyncgens(asyncio_loop_t *loop) {
  asyncio_loop_t *running = asyncio__running_loop;
  if (!loop) loop = running;
  if (!loop) return ASYNCIO_ENOLOOP;
  int rc = asyncio__check_thread(loop);
  if (rc) return rc;
  /* Not a task of that loop: the rule of every call that names a loop. */
  if (loop != running || !loop->current) return ASYNCIO_ENOTASK;
  asyncio__task_t *t = loop->current;
  int cancelled = 0;
  for (asyncio_asyncgen_t *g = loop->asyncgens; g; g = g->next) g->seen = 0;
  /* One at a time, rescanning after each: closing one may free others. */
  asyncio_asyncgen_t *g;
  while (!cancelled && (g = next_unseen(loop)) != NULL) {
    g->seen = 1;
    rc = 0;
    g->pins++;
    if (g->closer && !asyncio_future_done(g->closer)) {
      /* Its finalizer is pending or closing it: wait for that. */
      asyncio_task_t *c = asyncio_future_ref(g->closer);
      rc = asyncio_await(c, NULL);
      asyncio_task_free(c);
    }
    if (rc == 0 && g->state == ASYNCIO_AGEN_RUNNING) {
      rc = ASYNCIO_EASYNCGENRUNNING; /* aclose() would raise it */
    } else if (rc == 0 && g->state == ASYNCIO_AGEN_SUSPENDED) {
      rc = asyncio_asyncgen_aclose(g);
    }
    /* gather(..., return_exceptions=True) then reports only real errors;
     * a cancellation of this task ends the shutdown (the rest stay open). */
    if (rc == -ECANCELED)
      cancelled = asyncio_task_cancelling(&t->f) > 0;
    else if (rc < 0)
      report_close_error(loop, g, rc);
    g->pins--;
    maybe_destroy(g);
  }
  return cancelled ? -ECANCELED : 0;
}

static int shutdown_main(void *arg) { return asyncio_loop_shutdown_asyncgens(arg); }

/* Runner.close: loop.run_until_complete(loop.shutdown_asyncgens()). */
int asyncio__asyncgen_shutdown(asyncio_loop_t *loop) {
  int open = 0;
  for (asyncio_asyncgen_t *g = loop->asyncgens; g && !open; g = g->next)
    open = g->state == ASYNCIO_AGEN_SUSPENDED || g->state == ASYNCIO_AGEN_RUNNING;
  if (!open) return 0;
  asyncio_task_t *task;
  int rc = asyncio_loop_create_task(loop, &task, shutdown_main, loop, NULL);
  if (rc) return rc;
  rc = asyncio_loop_run_until_complete(loop, task, NULL);
  asyncio_task_free(task);
  return rc;
}

/*
 * loop.close(): every generator still on the list is detached.  A body still
 * suspended (at a yield, or in an await of a task close destroyed) never runs
 * again: its stack goes back to the pool unwound, as a pending task's does.
 * Generators the user freed are freed; others stay, closed, for their owner.
 */
void asyncio__asyncgen_loop_close(asyncio_loop_t *loop) {
  while (loop->asyncgens) {
    asyncio_asyncgen_t *g = loop->asyncgens;
    if (g->stack)
      asyncio__loop_report(loop, "asynchronous generator was destroyed but it is suspended!", 0,
                           NULL, NULL);
    if (g->closer) {
      asyncio_task_free(g->closer); /* close destroyed it without running it */
      g->closer = NULL;
    }
    release_stack(g);
    list_remove(g);
    g->loop = NULL;
    g->state = ASYNCIO_AGEN_CLOSED;
    g->pins = 0;
    if (g->orphan) {
      asyncio__strfree(g->name);
      asyncio__free(g, sizeof *g);
    }
  }
}
