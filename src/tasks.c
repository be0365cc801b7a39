/*
 * tasks.c - asyncio.Task: a coroutine on its own stack (Python:
 * asyncio.tasks, and Task in Modules/_asynciomodule.c).
 *
 * Life of a task: created PENDING with its step handle queued (or run at
 * once when eager); the first step takes a stack from the loop's pool and
 * switches to it; every suspension switches back to whoever resumed it (the
 * loop, or the task that started an eager task); the step handle is queued
 * again when what it waits for happens.  When the coroutine returns, the task
 * completes (result, error or cancelled), its stack goes back to the pool and
 * the loop drops its reference.
 *
 * Cancellation follows Task.cancel / __step exactly: a request increments
 * cancelling(); if the task waits on a future, that future is cancelled and
 * its completion wakes the task with -ECANCELED; otherwise must_cancel is set
 * and the next suspension point returns -ECANCELED.  A request made while
 * the task is running is applied when it next suspends (the future it then
 * waits on is cancelled right away, as __step does with _must_cancel).
 */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "internal.h"

/*
 * The N of Task-N: process-wide, as CPython's counter.  Each thread takes a
 * block of TASK_ID_BLOCK numbers at a time, so creating a task costs no
 * atomic read-modify-write (about 8 ns here, a quarter of a create): names
 * stay unique across threads and increase in creation order within one.
 */
#define TASK_ID_BLOCK 256
static atomic_ullong task_counter;
static TLS_IE uint64_t task_id_next, task_id_end;

static inline uint64_t task_next_id(void) {
  if (UNLIKELY(task_id_next == task_id_end)) {
    task_id_next =
        atomic_fetch_add_explicit(&task_counter, TASK_ID_BLOCK, memory_order_relaxed) + 1;
    task_id_end = task_id_next + TASK_ID_BLOCK;
  }
  return task_id_next++;
}

/* ---- names and introspection ---------------------------------------------- */

static const char *owner_name(char *buf, size_t n) {
  asyncio_loop_t *loop = asyncio__running_loop;
  asyncio__task_t *t = loop ? loop->current : NULL;
  if (!t) return "?";
  if (t->name) return t->name;
  /* async-signal-safe formatting of Task-<id> */
  char digits[24];
  int nd = 0;
  unsigned long long v = t->id;
  do {
    digits[nd++] = (char)('0' + v % 10);
    v /= 10;
  } while (v && nd < (int)sizeof digits);
  size_t i = 0;
  const char *p = "Task-";
  while (*p && i + 1 < n) buf[i++] = *p++;
  while (nd && i + 1 < n) buf[i++] = digits[--nd];
  buf[i] = 0;
  return buf;
}

ASYNCIO_API bool asyncio_future_is_task(const asyncio_future_t *f) { return f && f->is_task; }

ASYNCIO_API const char *asyncio_task_get_name(asyncio_task_t *task) {
  if (!task || !task->is_task) return NULL;
  asyncio__task_t *t = TASK(task);
  if (!t->name) {
    char buf[32];
    snprintf(buf, sizeof buf, "Task-%llu", (unsigned long long)t->id);
    t->name = asyncio__strdup(buf);
    if (!t->name) return "Task-?";
  }
  return t->name;
}

ASYNCIO_API int asyncio_task_set_name(asyncio_task_t *task, const char *name) {
  if (!task || !task->is_task || !name) return -EINVAL;
  int rc = asyncio__check_owner(task->loop);
  if (rc) return rc;
  char *n = asyncio__strdup(name);
  if (!n) return -ENOMEM;
  asyncio__strfree(TASK(task)->name);
  TASK(task)->name = n;
  return 0;
}

ASYNCIO_API asyncio_task_t *asyncio_current_task(void) {
  asyncio_loop_t *loop = asyncio__running_loop;
  return loop && loop->current ? &loop->current->f : NULL;
}

ASYNCIO_API ssize_t asyncio_all_tasks(asyncio_loop_t *loop, asyncio_task_t **out, size_t cap) {
  if (!loop) loop = asyncio__running_loop;
  if (!loop) return ASYNCIO_ENOLOOP;
  if (cap && !out) return -EINVAL;
  int rc = asyncio__check_owner(loop);
  if (rc) return rc;
  size_t n = 0;
  for (asyncio__task_t *t = loop->tasks_head; t; t = t->next) {
    if (n < cap) out[n] = &t->f;
    n++;
  }
  return (ssize_t)n;
}

ASYNCIO_API asyncio_coro_fn asyncio_task_get_coro(const asyncio_task_t *task, void **arg) {
  if (!task || !task->is_task) return NULL;
  if (arg) *arg = TASK(task)->arg;
  return TASK(task)->fn;
}

/* One task's state and what it waits on, for asyncio_print_tasks. */
static void print_task_line(FILE *fp, asyncio_loop_t *loop, asyncio__task_t *t) {
  char buf[192], wbuf[192];
  const char *state = t == loop->current      ? "running"
                      : !t->started           ? "scheduled"
                      : t->fut_waiter         ? "awaiting"
                      : t->timer_waiter.ptr   ? "sleeping"
                      : t->parked             ? "waiting"
                                              : "ready";
  fprintf(fp, "%s %s", asyncio__future_describe(&t->f, buf, sizeof buf), state);
  if (t->fut_waiter) {
    asyncio_future_t *w = t->fut_waiter;
    if (asyncio_future_is_gather(w))
      fprintf(fp, " gather of %zd", asyncio_gather_size(w));
    else
      fprintf(fp, " %s", asyncio__future_describe(w, wbuf, sizeof wbuf));
  }
  if (t->parked) fprintf(fp, " for %s", t->parked);
  if (t->timer_waiter.ptr) {
    double when;
    if (asyncio_handle_when(t->timer_waiter, &when) == 0) fprintf(fp, " until t=%.3f", when);
  }
  fputc('\n', fp);
}

/* Does t wait on c directly: awaiting it, or awaiting a gather that holds it? */
static bool task_waits_on(const asyncio__task_t *t, const asyncio__task_t *c) {
  asyncio_future_t *w = t->fut_waiter;
  if (!w) return false;
  if (w == &c->f) return true;
  if (!asyncio_future_is_gather(w)) return false;
  ssize_t n = asyncio_gather_size(w);
  for (ssize_t i = 0; i < n; i++)
    if (asyncio_gather_child(w, (size_t)i) == &c->f) return true;
  return false;
}

typedef struct print_state {
  FILE *fp;
  asyncio_loop_t *loop;
  asyncio__task_t **seen;
  size_t nseen, cap;
  char prefix[130]; /* "|   " per level, up to 32 levels */
} print_state_t;

static bool print_seen(print_state_t *ps, asyncio__task_t *t) {
  for (size_t i = 0; i < ps->nseen; i++)
    if (ps->seen[i] == t) return true;
  if (ps->nseen < ps->cap) ps->seen[ps->nseen++] = t;
  return false;
}

/* The i-th pending task t waits on, in the order it waits on them, or NULL. */
static asyncio__task_t *waited_task(const asyncio__task_t *t, size_t i) {
  asyncio_future_t *w = t->fut_waiter;
  if (!w) return NULL;
  if (!asyncio_future_is_gather(w))
    return i == 0 && w->is_task && w->state == FUT_PENDING ? TASK(w) : NULL;
  ssize_t n = asyncio_gather_size(w);
  for (ssize_t k = 0; k < n; k++) {
    asyncio_future_t *c = asyncio_gather_child(w, (size_t)k);
    if (c && c->is_task && c->state == FUT_PENDING && i-- == 0) return TASK(c);
  }
  return NULL;
}

/* t's subtree: the pending tasks t waits on, each once (a second awaiter gets a mention). */
static void print_subtree(print_state_t *ps, asyncio__task_t *t, size_t depth) {
  size_t plen = strlen(ps->prefix);
  asyncio__task_t *c;
  for (size_t i = 0; (c = waited_task(t, i)) != NULL; i++) {
    bool last = waited_task(t, i + 1) == NULL;
    fprintf(ps->fp, "%s%s", ps->prefix, last ? "`-- " : "|-- ");
    if (print_seen(ps, c) || depth >= 32) {
      char buf[192];
      fprintf(ps->fp, "%s (shown above)\n", asyncio__future_describe(&c->f, buf, sizeof buf));
      continue;
    }
    print_task_line(ps->fp, ps->loop, c);
    memcpy(ps->prefix + plen, last ? "    " : "|   ", 5);
    print_subtree(ps, c, depth + 1);
    ps->prefix[plen] = '\0';
  }
}

ASYNCIO_API int asyncio_print_tasks(asyncio_loop_t *loop, void *out) {
  FILE *fp = out ? (FILE *)out : stderr;
  if (!loop) loop = asyncio__running_loop;
  if (!loop) return ASYNCIO_ENOLOOP;
  print_state_t ps = {.fp = fp, .loop = loop};
  ps.cap = loop->ntasks;
  ps.seen = ps.cap ? asyncio__alloc(ps.cap * sizeof *ps.seen) : NULL;
  if (ps.cap && !ps.seen) return -ENOMEM;
  /* Roots: tasks no other pending task waits on; below each, what it waits on. */
  int n = 0;
  asyncio__task_t *tail = loop->tasks_head;
  while (tail && tail->next) tail = tail->next;
  for (asyncio__task_t *t = tail; t; t = t->prev) { /* oldest first */
    bool awaited = false;
    for (asyncio__task_t *w = loop->tasks_head; w && !awaited; w = w->next)
      awaited = w != t && task_waits_on(w, t);
    if (awaited) continue;
    print_seen(&ps, t);
    print_task_line(fp, loop, t);
    print_subtree(&ps, t, 0);
  }
  /* Tasks only reachable through a cycle of awaits (not reachable from a root). */
  for (asyncio__task_t *t = tail; t; t = t->prev) {
    if (print_seen(&ps, t)) continue;
    print_task_line(fp, loop, t);
    print_subtree(&ps, t, 0);
  }
  for (asyncio__task_t *t = loop->tasks_head; t; t = t->next) n++;
  asyncio__free(ps.seen, ps.cap * sizeof *ps.seen);
  fflush(fp);
  return n;
}

/* ---- creation ------------------------------------------------------------- */

static void list_remove(asyncio_loop_t *loop, asyncio__task_t *t) {
  if (t->prev)
    t->prev->next = t->next;
  else if (loop->tasks_head == t)
    loop->tasks_head = t->next;
  else
    return;
  if (t->next) t->next->prev = t->prev;
  t->prev = t->next = NULL;
  loop->ntasks--;
}

/* Gives back the stack of a task that ends, or its reservation if it never started. */
static void task_release_stack(asyncio_loop_t *loop, asyncio__task_t *t) {
  if (t->stack) {
    if (t->started) asyncio__coro_destroy(&t->ctx);
    asyncio__stack_put(&loop->stacks, t->stack, loop->stack_size);
    t->stack = NULL;
  } else if (!t->started) {
    asyncio__stack_unreserve(&loop->stacks);
  }
}

/* The Task constructor: inline into both entry points (create_task is a hot path). */
static inline __attribute__((always_inline)) int task_new(asyncio_loop_t *loop,
                                                          asyncio_task_t **out,
                                                          asyncio_coro_fn fn, void *arg,
                                                          const asyncio_task_options_t *o) {
  if (o && o->stack_size && o->stack_size < ASYNCIO_MIN_STACK_SIZE) return -EINVAL;
  asyncio__task_t *t = loop->task_free;
  if (t) {
    /* recycled task objects: no allocator call on the create path */
    loop->task_free = t->next;
    loop->ntask_free--;
  } else if (!(t = asyncio__alloc(sizeof *t))) {
    return -ENOMEM;
  }
  /*
   * The stack is obtained now, so that a task that exists can always start:
   * one of the default size is reserved in the pool and taken at the first
   * step (the most recently freed, warm one); another size is mapped now.
   */
  size_t stack_size = o && o->stack_size ? o->stack_size : loop->stack_size;
  asyncio__stack_t *stack = NULL;
  if (stack_size == loop->stack_size) {
    if (asyncio__stack_reserve(&loop->stacks, stack_size) != 0) goto nomem;
  } else if (!(stack = asyncio__stack_get(&loop->stacks, stack_size, loop->stack_size))) {
    goto nomem;
  }
  char *name = NULL;
  if (o && o->name && !(name = asyncio__strdup(o->name))) {
    if (stack)
      asyncio__stack_put(&loop->stacks, stack, loop->stack_size);
    else
      asyncio__stack_unreserve(&loop->stacks);
    goto nomem;
  }
  /* Every field is set here: a recycled object is not cleared first. */
  t->f = (struct asyncio_future){0};
  asyncio__future_init(&t->f, loop);
  t->f.is_task = 1;
  memset(&t->result_value, 0, sizeof *t - offsetof(asyncio__task_t, result_value));
  t->fn = fn;
  t->arg = arg;
  t->resumer = NULL;
  t->stack = stack;
  t->id = task_next_id();
  t->name = name;
  t->step = (asyncio__handle_t){0};
  t->step.kind = HK_TASK_STEP;
  t->step.state = H_IDLE;
  t->step.loop = loop;
  t->step.aux = t;
  t->step.heap_idx = UINT32_MAX;
  asyncio__stack_owner_name = owner_name;
  /* the loop's reference, dropped when the coroutine has returned */
  if (out)
    t->f.refcnt = 2;
  else
    t->detached = 1;
  t->prev = NULL;
  t->next = loop->tasks_head;
  if (t->next) t->next->prev = t;
  loop->tasks_head = t;
  loop->ntasks++;
  if (out) *out = &t->f;
  if (o && o->eager && loop->running && asyncio__running_loop == loop) {
    /* eager_start: runs until its first suspension, then control returns
     * here (never handed on to other ready tasks). */
    loop->eager_depth++;
    asyncio__task_step(t);
    loop->eager_depth--;
  } else
    asyncio__ready_push(loop, &t->step);
  return 0;
nomem:
  t->next = loop->task_free;
  loop->task_free = t;
  loop->ntask_free++;
  return -ENOMEM;
}

ASYNCIO_API int asyncio_task_new(asyncio_loop_t *loop, asyncio_task_t **out, asyncio_coro_fn fn,
                                 void *arg, const asyncio_task_options_t *o) {
  if (out) *out = NULL;
  if (!loop || !fn) return -EINVAL;
  int rc = asyncio__check_thread(loop);
  if (rc) return rc;
  return task_new(loop, out, fn, arg, o);
}

static int call_factory(asyncio_loop_t *loop, asyncio_task_t **out, asyncio_coro_fn fn,
                        void *arg, const asyncio_task_options_t *o) {
  int rc = loop->task_factory(loop, out, fn, arg, o, loop->task_factory_arg);
  if (rc > 0) rc = -EINVAL; /* not a documented outcome */
  if (rc == 0 && out && !*out) rc = -EINVAL; /* the factory made no task */
  return rc;
}

ASYNCIO_API int asyncio_loop_create_task(asyncio_loop_t *loop, asyncio_task_t **out,
                                         asyncio_coro_fn fn, void *arg,
                                         const asyncio_task_options_t *o) {
  if (out) *out = NULL;
  if (!loop || !fn) return -EINVAL;
  int rc = asyncio__check_thread(loop);
  if (rc) return rc;
  if (UNLIKELY(loop->task_factory)) return call_factory(loop, out, fn, arg, o);
  return task_new(loop, out, fn, arg, o);
}

ASYNCIO_API int asyncio_create_task(asyncio_task_t **out, asyncio_coro_fn fn, void *arg,
                                    const asyncio_task_options_t *o) {
  if (out) *out = NULL;
  asyncio_loop_t *loop = asyncio__running_loop;
  if (!loop) return ASYNCIO_ENOLOOP;
  return asyncio_loop_create_task(loop, out, fn, arg, o);
}

ASYNCIO_API int asyncio_loop_set_task_factory(asyncio_loop_t *loop, asyncio_task_factory_fn factory,
                                              void *factory_arg) {
  if (!loop) return -EINVAL;
  int rc = asyncio__check_owner(loop);
  if (rc) return rc;
  loop->task_factory = factory;
  loop->task_factory_arg = factory ? factory_arg : NULL;
  return 0;
}

ASYNCIO_API asyncio_task_factory_fn asyncio_loop_get_task_factory(asyncio_loop_t *loop,
                                                                  void **factory_arg) {
  if (factory_arg) *factory_arg = loop ? loop->task_factory_arg : NULL;
  return loop ? loop->task_factory : NULL;
}

ASYNCIO_API int asyncio_eager_task_factory(asyncio_loop_t *loop, asyncio_task_t **out,
                                           asyncio_coro_fn fn, void *arg,
                                           const asyncio_task_options_t *o, void *factory_arg) {
  (void)factory_arg;
  asyncio_task_options_t eo = o ? *o : (asyncio_task_options_t){0};
  eo.eager = true;
  return asyncio_task_new(loop, out, fn, arg, &eo);
}

ASYNCIO_API int asyncio_task_free(asyncio_task_t *task) {
  if (!task || !task->is_task) return -EINVAL;
  return asyncio_future_free(task);
}

void asyncio__task_free_fields(asyncio__task_t *t) {
  if (!t->name && !t->cancel_msg) return; /* the usual case: nothing was named */
  asyncio__strfree(t->name);
  asyncio__strfree(t->cancel_msg);
  t->name = t->cancel_msg = NULL;
}

/* ---- running -------------------------------------------------------------- */

/* Completes the task from its coroutine's return value (Task.__step). */
static void task_finish(asyncio__task_t *t, int rc) {
  asyncio_loop_t *loop = t->f.loop;
  list_remove(loop, t);
  if (rc == -ECANCELED || (rc >= 0 && t->must_cancel)) {
    t->must_cancel = 0;
    asyncio__future_complete(&t->f, FUT_CANCELLED, -ECANCELED, NULL,
                             asyncio__strdup(t->cancel_msg));
  } else if (rc >= 0) {
    asyncio__future_complete(&t->f, FUT_FINISHED, rc, t->result_value, NULL);
  } else {
    t->f.retrieved = 0;
    asyncio__future_complete(&t->f, FUT_FINISHED, rc, NULL, NULL);
  }
}

/* The coroutine's first frame: returns the context to resume for good. */
static asyncio__coro_t *task_entry(void *p) {
  asyncio__task_t *t = p;
  int rc = t->fn(t->arg);
  task_finish(t, rc);
  t->finished = 1;
  return t->resumer;
}

static void overflow_abort(asyncio__task_t *t) {
  char buf[32];
  const char *name = t->name;
  if (!name) {
    snprintf(buf, sizeof buf, "Task-%llu", (unsigned long long)t->id);
    name = buf;
  }
  fprintf(stderr,
          "asyncio: stack overflow in task '%s': it wrote below its %zu-byte stack; create it "
          "with a larger asyncio_task_options_t.stack_size\n",
          name, t->stack->size);
  abort();
}

/*
 * Makes n current and runs it until it switches back to `from` (or hands the
 * processor on): the first time on its reserved stack, through a call.
 */
static inline void task_enter(asyncio_loop_t *loop, asyncio__task_t *n, asyncio__coro_t *from) {
  loop->current = n;
  if (LIKELY(n->started)) {
    asyncio__current_stack = n->cur_stack;
    asyncio__coro_switch(from, n->cur_ctx);
    return;
  }
  if (!n->stack) n->stack = asyncio__stack_take(&loop->stacks);
  n->started = 1;
  n->cur_ctx = &n->ctx;
  n->cur_stack = n->stack;
  n->unguarded = !n->stack->guarded;
  asyncio__current_stack = n->stack;
  asyncio__coro_start(from, &n->ctx, n->stack, task_entry, n);
}

void asyncio__task_step(asyncio__task_t *t) {
  asyncio_loop_t *loop = t->f.loop;
  if (UNLIKELY(t->f.state != FUT_PENDING)) return;
  if (UNLIKELY(!t->started && t->must_cancel)) {
    /* Cancelled before it ever ran: the body never starts (coro.throw on a
     * fresh coroutine). */
    task_finish(t, -ECANCELED);
    task_release_stack(loop, t);
    asyncio__future_unref(&t->f);
    return;
  }
  asyncio__task_t *prev = loop->current;
  asyncio__stack_t *prev_stack = asyncio__current_stack;
  t->resumer = prev ? prev->cur_ctx : &loop->sched;
  task_enter(loop, t, t->resumer);
  /* Whoever switched back is still marked current: t, or a task t handed
   * the processor to directly (see asyncio__task_suspend). */
  asyncio__task_t *back = loop->current;
  loop->current = prev;
  asyncio__current_stack = prev_stack;
  if (back->finished) {
    task_release_stack(loop, back);
    asyncio__future_unref(&back->f); /* the loop's reference */
  }
}

static void timer_wake(void *arg) {
  asyncio__task_t *t = arg;
  t->timer_waiter = ASYNCIO_HANDLE_NONE;
  t->wake_rc = 0;
  if (t->step.state == H_IDLE) asyncio__ready_push(t->f.loop, &t->step);
}

/* Stops a sleep: its timer is cancelled and the task wakes with -ECANCELED. */
static int cancel_timer_wait(asyncio__task_t *t) {
  if (!t->timer_waiter.ptr) return 0;
  asyncio_handle_cancel(t->timer_waiter);
  t->timer_waiter = ASYNCIO_HANDLE_NONE;
  t->wake_rc = -ECANCELED;
  if (t->step.state == H_IDLE) asyncio__ready_push(t->f.loop, &t->step);
  return 1;
}

/* Ends a park with -ECANCELED. */
static int cancel_park(asyncio__task_t *t) {
  if (!t->parked) return 0;
  t->parked = NULL;
  t->wake_rc = -ECANCELED;
  if (t->step.state == H_IDLE) asyncio__ready_push(t->f.loop, &t->step);
  return 1;
}

/*
 * Switches back to the resumer until the step handle is queued again.
 * A cancellation requested while the task was running is applied now, to
 * what the task is about to wait on (Task.__step's _must_cancel branch).
 */
static inline __attribute__((always_inline)) void task_suspend(asyncio__task_t *t) {
  asyncio_loop_t *loop = t->f.loop;
  if (UNLIKELY(t->must_cancel)) {
    if (t->fut_waiter) {
      if (asyncio_future_cancel(t->fut_waiter, t->cancel_msg) == 1) t->must_cancel = 0;
    } else if (cancel_timer_wait(t) || cancel_park(t)) {
      t->must_cancel = 0;
    }
  }
  /* The flag, not cur_stack->guarded: the descriptor's line is cold by now. */
  if (UNLIKELY(t->unguarded) && asyncio__stack_check(t->cur_stack)) overflow_abort(t);
  /*
   * Direct hand-off: when the next callback of this iteration is the step of
   * another task, switch straight to it (or start it) instead of bouncing through
   * the loop's stack.  The order of callbacks is unchanged (it is the one
   * run_ready would pick next, counted against the same budget); only the
   * intermediate switch disappears.  Not for eager starts (their resumer is
   * the creating task) nor in debug mode (which times each step).  When
   * this iteration's budget is spent and the next iteration would have
   * nothing to do but run the ready queue, it is started right here.
   */
  if (t->resumer == &loop->sched && !loop->eager_depth && !loop->debug &&
      (loop->ntodo || asyncio__loop_iterate_inline(loop))) {
    asyncio__handle_t *h = loop->ready_head;
    if (h->kind == HK_TASK_STEP) {
      asyncio__task_t *n = h->aux;
      if (n->f.state == FUT_PENDING && (n->started || !n->must_cancel)) {
        loop->ready_head = h->next;
        if (!loop->ready_head) loop->ready_tail = NULL;
        loop->ready_count--;
        loop->ntodo--;
        h->state = H_IDLE;
        if (n == t) return; /* our own step is next: just keep running */
        n->resumer = t->resumer;
        task_enter(loop, n, t->cur_ctx);
        return;
      }
    }
  }
  asyncio__coro_switch(t->cur_ctx, t->resumer);
}

void asyncio__task_suspend(asyncio__task_t *t) { task_suspend(t); }

int asyncio__task_park(asyncio__task_t *t, const char *what) {
  t->parked = what;
  t->wake_rc = 0;
  task_suspend(t);
  t->parked = NULL; /* set already, unless the loop tore us down */
  if (t->must_cancel) {
    t->must_cancel = 0;
    return -ECANCELED;
  }
  return t->wake_rc;
}

void asyncio__task_unpark(asyncio__task_t *t) {
  if (!t->parked) return;
  t->parked = NULL;
  t->wake_rc = 0;
  if (t->step.state == H_IDLE) asyncio__ready_push(t->f.loop, &t->step);
}

ASYNCIO_API int asyncio_sleep(double delay) {
  asyncio_loop_t *loop = asyncio__running_loop;
  asyncio__task_t *t = loop ? loop->current : NULL;
  if (UNLIKELY(!t)) return ASYNCIO_ENOTASK;
  if (delay <= 0) {
    /*
     * asyncio.sleep(0): a bare yield; everything already ready runs first.
     * Nothing but a cancellation request can end it early (there is no
     * timer), so wake_rc is not involved.  The suspension is inlined: this
     * is the switch of two tasks that yield to each other.
     */
    asyncio__ready_push(loop, &t->step);
    task_suspend(t);
    if (UNLIKELY(t->must_cancel)) {
      t->must_cancel = 0;
      return -ECANCELED;
    }
    return 0;
  }
  if (isnan(delay)) return -EINVAL;
  t->wake_rc = 0;
  {
    asyncio__handle_t *h = asyncio__handle_new(loop);
    if (!h) return -ENOMEM;
    h->fn = timer_wake;
    h->arg = t;
    int rc = asyncio__loop_timer(loop, asyncio__loop_now(loop) + delay, h);
    if (rc) {
      asyncio__handle_release(loop, h);
      return rc;
    }
    t->timer_waiter = asyncio__handle_value(h);
  }
  asyncio__task_suspend(t);
  t->timer_waiter = ASYNCIO_HANDLE_NONE;
  if (t->must_cancel) {
    t->must_cancel = 0;
    return -ECANCELED;
  }
  return t->wake_rc;
}

ASYNCIO_API int asyncio_task_set_result_value(void *value) {
  asyncio_loop_t *loop = asyncio__running_loop;
  asyncio__task_t *t = loop ? loop->current : NULL;
  if (!t) return ASYNCIO_ENOTASK;
  t->result_value = value;
  return 0;
}

/* ---- cancellation ----------------------------------------------------------- */

ASYNCIO_API int asyncio_task_cancel(asyncio_task_t *task, const char *msg) {
  if (!task || !task->is_task) return -EINVAL;
  asyncio__task_t *t = TASK(task);
  int rc = asyncio__check_thread(task->loop);
  if (rc) return rc;
  task->retrieved = 1;
  if (task->state != FUT_PENDING) return 0;
  t->num_cancels_requested++;
  if (msg || t->cancel_msg) {
    char *m = asyncio__strdup(msg);
    asyncio__strfree(t->cancel_msg);
    t->cancel_msg = m;
  }
  if (t->fut_waiter) {
    /* Leave fut_waiter: it may be a task that swallows the cancellation. */
    if (asyncio_future_cancel(t->fut_waiter, msg) == 1) return 1;
  } else if (cancel_timer_wait(t) || cancel_park(t)) {
    return 1;
  }
  t->must_cancel = 1;
  return 1;
}

ASYNCIO_API int asyncio_task_cancelling(const asyncio_task_t *task) {
  if (!task || !task->is_task) return -EINVAL;
  return TASK(task)->num_cancels_requested;
}

ASYNCIO_API int asyncio_task_uncancel(asyncio_task_t *task) {
  if (!task || !task->is_task) return -EINVAL;
  int rc = asyncio__check_owner(task->loop);
  if (rc) return rc;
  asyncio__task_t *t = TASK(task);
  if (t->num_cancels_requested > 0) {
    t->num_cancels_requested--;
    if (t->num_cancels_requested == 0) t->must_cancel = 0;
  }
  return t->num_cancels_requested;
}

/* ---- teardown ---------------------------------------------------------------- */

void asyncio__task_destroy_pending(asyncio__task_t *t) {
  asyncio_loop_t *loop = t->f.loop;
  list_remove(loop, t);
  if (t->fut_waiter) {
    asyncio_future_t *f = t->fut_waiter;
    t->fut_waiter = NULL;
    asyncio__future_remove_waiter(f, t);
    asyncio__future_unref(f);
  }
  task_release_stack(loop, t);
  t->step.state = H_IDLE;
  asyncio__future_unref(&t->f); /* the loop's reference */
}

static void count_down(asyncio_future_t *f, void *arg) {
  (void)f;
  asyncio_future_t *all = arg;
  if (--all->code == 0 && all->state == FUT_PENDING) asyncio_future_set_result(all, 0, NULL);
}

/*
 * runners._cancel_all_tasks: cancel every pending task, run the loop until
 * they are all done, then report the ones that ended with an error.
 */
int asyncio__task_cancel_all(asyncio_loop_t *loop) {
  size_t n = loop->ntasks;
  if (!n) return 0;
  asyncio__task_t **ts = asyncio__alloc(n * sizeof *ts);
  if (!ts) return -ENOMEM;
  size_t i = 0;
  for (asyncio__task_t *t = loop->tasks_head; t; t = t->next)
    ts[i++] = TASK(asyncio_future_ref(&t->f));
  asyncio_future_t *all = NULL;
  int rc = asyncio_future_new(&all, loop);
  if (rc == 0) {
    all->code = (int)n; /* the countdown lives in the pending future's code */
    for (i = 0; i < n; i++) {
      asyncio_task_cancel(&ts[i]->f, NULL);
      if (asyncio__future_add_cb(&ts[i]->f, count_down, all) != 0) all->code--;
    }
    if (all->code == 0) asyncio_future_set_result(all, 0, NULL);
    rc = asyncio_loop_run_until_complete(loop, all, NULL);
    for (i = 0; i < n; i++) asyncio_future_remove_done_callback(&ts[i]->f, count_down, all);
    asyncio__future_unref(all);
  }
  for (i = 0; i < n; i++) {
    asyncio_future_t *f = &ts[i]->f;
    if (f->state == FUT_FINISHED && f->code < 0) {
      f->retrieved = 1;
      asyncio__loop_report(loop, "unhandled exception during asyncio.run() shutdown", f->code,
                           f->msg, f);
    }
    asyncio__future_unref(f);
  }
  asyncio__free(ts, n * sizeof *ts);
  return rc;
}
