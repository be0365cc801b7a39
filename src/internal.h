/*
 * internal.h - structures shared by the library's own files.
 *
 * Internal cross-file names are asyncio__<file>_<verb>; all of them have
 * hidden visibility (the whole library is built with -fvisibility=hidden and
 * only public declarations are exported with ASYNCIO_API).
 */
#ifndef ASYNCIO_INTERNAL_H
#define ASYNCIO_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <asyncio.h>

#include "backend/backend.h"
#include "coro/coro.h"

#define ASYNCIO_API __attribute__((visibility("default")))
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define TLS_IE __thread __attribute__((tls_model("initial-exec")))

/* ---- allocation (alloc.c) ---------------------------------------------- */

void *asyncio__alloc(size_t n);
void *asyncio__calloc(size_t n);
void *asyncio__realloc(void *p, size_t old, size_t n);
void asyncio__free(void *p, size_t n);
/* As alloc / calloc / free, for an object that starts on a 64-byte line. */
void *asyncio__alloc_line(size_t n);
void *asyncio__calloc_line(size_t n);
void asyncio__free_line(void *p, size_t n);
char *asyncio__strdup(const char *s); /* NULL in, NULL out */
void asyncio__strfree(char *s);

/* ---- handles (base_events.c) ------------------------------------------- */

enum {
  H_FREE = 0,  /* in the pool */
  H_IDLE,      /* embedded handle not queued */
  H_READY,     /* in the ready queue */
  H_TIMER,     /* in the timer heap */
  H_RUNNING,   /* popped, its callback running */
};

enum {
  HK_CALLBACK = 0, /* fn(arg) */
  HK_DONE,         /* done callback: done_fn(future, arg), then unref future */
  HK_TASK_STEP,    /* resume a task */
  HK_IO,           /* I/O readiness: watcher's fn(fd, arg) */
};

typedef struct asyncio__handle asyncio__handle_t;
struct asyncio__handle {
  /* Running a handle reads the first 40 bytes only; timers use the rest. */
  asyncio__handle_t *next; /* ready queue / free list */
  uint8_t state;
  uint8_t kind;
  uint8_t cancelled;
  uint8_t pooled;    /* returns to the pool after running */
  uint32_t heap_idx;
  union {
    asyncio_callback_fn fn;
    asyncio_done_fn done_fn;
  };
  void *arg;
  void *aux;         /* HK_DONE: the future; HK_TASK_STEP: the task; HK_IO: the watcher */
  asyncio_loop_t *loop;
  uint64_t gen;      /* this slot's generation: bumped when a pooled handle is recycled */
  uint64_t cancel_hist; /* bit i: generation gen-1-i of this slot was cancelled */
  double when;       /* timers */
  uint64_t seq;      /* timer tie-break: scheduling order */
};

/* ---- I/O watchers -------------------------------------------------------- */

typedef struct asyncio__watch {
  /* A read event touches fd to rarg and the reader's first 40 bytes. */
  int fd;
  uint32_t registered; /* ASYNCIO__EV_* mask the backend knows */
  asyncio_io_fn rfn;
  void *rarg;
  asyncio__handle_t reader, writer; /* embedded, HK_IO */
  asyncio_io_fn wfn;
  void *warg;
} asyncio__watch_t;

/* ---- futures and tasks ---------------------------------------------------- */

enum { FUT_PENDING = 0, FUT_CANCELLED, FUT_FINISHED };

typedef struct asyncio__cb {
  asyncio_done_fn fn;
  void *arg;
} asyncio__cb_t;

/*
 * Futures of a special kind (gather.c's gathering future) embed a future as
 * their first member and set vt: cancel replaces Future.cancel (NULL: the
 * plain one), free releases the whole object once the last reference went.
 */
typedef struct asyncio__future_vt {
  int (*cancel)(asyncio_future_t *f, const char *msg);
  void (*free)(asyncio_future_t *f);
} asyncio__future_vt_t;

struct asyncio_future {
  uint32_t refcnt;
  uint8_t state;
  uint8_t is_task;
  uint8_t retrieved;      /* result/exception looked at: no "never retrieved" report */
  uint8_t cb0_used;
  int code;               /* outcome: >= 0 result, < 0 error, -ECANCELED cancelled */
  void *value;
  char *msg;              /* error or cancel message, owned */
  asyncio_loop_t *loop;
  asyncio__cb_t cb0;      /* the first callback needs no allocation */
  asyncio__cb_t *cbs;     /* the others */
  uint32_t ncbs, capcbs;
  uint32_t task_waiters;  /* tasks suspended in asyncio_await on this future */
  const asyncio__future_vt_t *vt; /* NULL for plain futures and tasks */
};

typedef struct asyncio__task {
  struct asyncio_future f;
  /* Set in full by create_task (a recycled object keeps stale values). */
  asyncio_coro_fn fn;
  void *arg;
  asyncio__coro_t ctx;
  asyncio__coro_t *resumer;     /* where a suspension returns to */
  asyncio__stack_t *stack;      /* NULL before the first step: reserved in the pool */
  uint64_t id;                  /* the N of Task-N */
  struct asyncio__task *prev, *next; /* the loop's list of pending tasks */
  char *name;                   /* NULL until named or asked for */
  asyncio__handle_t step;       /* embedded: resumes this task */
  /*
   * The context the task runs in, set when it starts: its own (ctx, stack),
   * or while an async generator body runs on its behalf, that body's
   * (asyncgen.c).  Suspensions save into it and steps resume it.
   */
  asyncio__coro_t *cur_ctx;
  asyncio__stack_t *cur_stack;
  /*
   * From here to the end: zeroed by create_task (one memset).  A new field
   * that starts at zero for a new task belongs here.
   */
  void *result_value;
  asyncio_future_t *fut_waiter; /* the future being awaited (a reference), or NULL */
  asyncio_handle_t timer_waiter;/* the sleep timer, or none */
  const char *parked;           /* in asyncio__task_park: what it waits for */
  char *cancel_msg;
  int num_cancels_requested;
  int wake_rc;
  uint8_t must_cancel;
  uint8_t started;
  uint8_t finished;             /* the coroutine returned: its stack can go */
  uint8_t detached;
  uint8_t unguarded; /* cur_stack has no guard page: check its canary at each switch */
} asyncio__task_t;

#define TASK(fut) ((asyncio__task_t *)(fut))

/*
 * The hot-field layouts above, checked where they are laid out for (64-bit,
 * the context a bare stack pointer): a field added in the wrong place
 * fails the build instead of quietly costing a cache miss per message.
 */
#define ASYNCIO__HANDLE_HOT (offsetof(asyncio__handle_t, loop)) /* what running one reads */
#if UINTPTR_MAX == 0xffffffffffffffffu && !defined(ASYNCIO__CORO_SAN) && \
    !defined(ASYNCIO_CORO_UCONTEXT)
_Static_assert(ASYNCIO__HANDLE_HOT == 40, "asyncio__handle_t: hot fields first");
_Static_assert(offsetof(asyncio__watch_t, reader) + ASYNCIO__HANDLE_HOT <= 64,
               "asyncio__watch_t: a read event takes one cache line");
/* A bigger task leaves its malloc size class and every idle task grows by
 * 16 bytes (the 4.5 KiB budget of docs/bench.md). */
_Static_assert(sizeof(asyncio__task_t) <= 320, "asyncio__task_t: the idle-task budget");
#endif
#define TASK_FREE_MAX 16384

/* ---- the loop ------------------------------------------------------------- */

typedef struct asyncio__ts_node {
  struct asyncio__ts_node *next;
  asyncio_callback_fn fn;
  void *arg;
  asyncio_callback_fn drop; /* nullable: called with arg if close drops the node */
} asyncio__ts_node_t;

/* A slot of the timer heap: the handle's `when` as an ordered integer, and the handle. */
typedef struct asyncio__timer {
  uint64_t key;
  asyncio__handle_t *h;
} asyncio__timer_t;

typedef struct asyncio__chunk {
  struct asyncio__chunk *next;
} asyncio__chunk_t;

struct asyncio_loop {
  /* ready queue (FIFO) */
  asyncio__handle_t *ready_head, *ready_tail;
  size_t ready_count;
  /* timers: a 4-ary min-heap on (when, seq) */
  asyncio__timer_t *heap;
  /*
   * Callbacks left to run in this iteration.  Kept apart from ready_count:
   * when the two are adjacent GCC fuses the paired decrements of the direct
   * hand-off into one 16-byte vector read-modify-write, whose load cannot be
   * forwarded from the two 8-byte stores just before it and stalls.
   */
  size_t ntodo;
  uint32_t heap_n, heap_cap;
  uint32_t timers_cancelled;
  uint64_t timer_seq;
  /* handle pool */
  asyncio__handle_t *handle_free;
  asyncio__chunk_t *handle_chunks;
  uint64_t handle_gen;
  /* I/O */
  asyncio__backend_t backend;
  asyncio__watch_t **watches;
  int nwatches;
  int nregistered;      /* descriptors with a non-empty interest (the wakeup fd is one) */
  atomic_int wakeup_signalled; /* SIGINT or another thread wrote the eventfd */
  /* cross-thread wakeup */
  int wake_fd;
  pthread_mutex_t ts_lock;
  asyncio__ts_node_t *ts_head, *ts_tail;
  atomic_int ts_pending;
  uint8_t ts_closed;           /* set by close, under ts_lock: refuse new work */
  atomic_int external_pending; /* thread work in flight: holds off the virtual clock */
  struct asyncio__loop_threads *threads; /* threads.c: default executor, jobs (lazy) */
  void (*on_wakeup)(asyncio_loop_t *loop, void *arg); /* the runner's SIGINT check */
  void *on_wakeup_arg;
  atomic_int signals_pending;  /* signals.c: a handled signal arrived, not yet dispatched */
  struct asyncio__loop_signals *signals; /* signals.c: add_signal_handler state (lazy) */
  /* tasks */
  asyncio__task_t *tasks_head;
  size_t ntasks;
  asyncio__task_t *task_free; /* recycled task objects */
  size_t ntask_free;
  asyncio__task_t *current;
  int eager_depth;              /* eager starts in progress: no direct hand-off */
  asyncio_task_factory_fn task_factory; /* loop.set_task_factory(); NULL = none */
  void *task_factory_arg;
  asyncio__coro_t sched;        /* the context run_forever runs on */
  asyncio__stack_pool_t stacks;
  struct asyncio_asyncgen *asyncgens; /* started async generators (asyncgen.c) */
  size_t stack_size;
  /* state */
  uint8_t running, stopping, closed, debug, virtual_clock;
  double vtime;
  double slow_callback_duration;
  pthread_t thread;
  asyncio_exception_handler_fn exc_handler;
  void *exc_handler_ud;
  size_t nobjects;  /* live futures and tasks: the struct outlives close until 0 */
  asyncio_loop_t *prev_running; /* restored when run_forever returns */
  struct asyncio__net *net; /* transports and servers (selector_events.c), or NULL */
};

extern TLS_IE asyncio_loop_t *asyncio__running_loop;

/* True if calling a loop-thread-only function from here is allowed. */
static inline int asyncio__check_thread(const asyncio_loop_t *loop) {
  if (UNLIKELY(loop->closed)) return ASYNCIO_ECLOSED;
  if (UNLIKELY(loop->running && asyncio__running_loop != loop)) return ASYNCIO_EWRONGTHREAD;
  return 0;
}

/*
 * True (ASYNCIO_EWRONGTHREAD) if the loop runs in another thread: calls that
 * are allowed on a closed loop (freeing, reading outcomes) only check this.
 */
static inline int asyncio__check_owner(const asyncio_loop_t *loop) {
  if (UNLIKELY(loop->running && asyncio__running_loop != loop)) return ASYNCIO_EWRONGTHREAD;
  return 0;
}

/* Appends an idle (embedded or fresh) handle to the ready queue. */
static inline void asyncio__ready_push(asyncio_loop_t *loop, asyncio__handle_t *h) {
  h->next = NULL;
  h->state = H_READY;
  if (loop->ready_tail)
    loop->ready_tail->next = h;
  else
    loop->ready_head = h;
  loop->ready_tail = h;
  loop->ready_count++;
}

/* Adds a chunk of handles to the pool: its first free handle, or NULL (ENOMEM). */
asyncio__handle_t *asyncio__handle_grow(asyncio_loop_t *loop);
/* A pooled handle, idle, not cancelled, kind HK_CALLBACK; NULL on ENOMEM. */
static inline asyncio__handle_t *asyncio__handle_new(asyncio_loop_t *loop) {
  asyncio__handle_t *h = loop->handle_free;
  if (UNLIKELY(!h) && !(h = asyncio__handle_grow(loop))) return NULL;
  loop->handle_free = h->next;
  h->next = NULL;
  h->heap_idx = UINT32_MAX;
  h->state = H_IDLE;
  h->kind = HK_CALLBACK;
  h->cancelled = 0;
  return h;
}
asyncio_handle_t asyncio__handle_value(asyncio__handle_t *h);
/* Back to the pool (pooled) or idle (embedded). */
void asyncio__handle_release(asyncio_loop_t *loop, asyncio__handle_t *h);
int asyncio__loop_timer(asyncio_loop_t *loop, double when, asyncio__handle_t *h);
void asyncio__loop_object_gone(asyncio_loop_t *loop);
/*
 * Starts the next iteration from inside a suspending task when run_once
 * would do nothing but run the ready queue: no stop requested, nothing from
 * other threads or signals, no timers to look at, not in debug mode and no
 * poll due.  Returns 1 with a fresh budget in loop->ntodo, or 0 to take the
 * normal path.  Inline: it sits on the direct hand-off path of every switch.
 */
static inline int asyncio__loop_iterate_inline(asyncio_loop_t *loop) {
  if (loop->stopping || !loop->ready_count || loop->debug || loop->heap_n) return 0;
  if (atomic_load_explicit(&loop->ts_pending, memory_order_relaxed) ||
      atomic_load_explicit(&loop->wakeup_signalled, memory_order_relaxed))
    return 0;
  if (loop->nregistered > 1) return 0;
  loop->ntodo = loop->ready_count;
  return 1;
}
double asyncio__loop_now(const asyncio_loop_t *loop);
void asyncio__loop_report(asyncio_loop_t *loop, const char *message, int error,
                          const char *error_message, asyncio_future_t *fut);

/*
 * Queues a threadsafe node the caller allocated with asyncio__alloc(sizeof
 * *n) (fn, arg and drop set); from then on the loop owns and frees it.
 * Returns 0, or ASYNCIO_ECLOSED (the caller keeps the node).  Any thread.
 */
int asyncio__loop_ts_push(asyncio_loop_t *loop, asyncio__ts_node_t *n);

/* threads.c: called by asyncio_loop_close first; blocks for running jobs. */
void asyncio__threads_loop_close(asyncio_loop_t *loop);
/* threads.c: a future for shutdown_default_executor (the runner's close), or NULL. */
int asyncio__threads_shutdown_default(asyncio_loop_t *loop, asyncio_future_t **out);
/*
 * threads.c: run_in_executor for the library's own jobs; abandon(arg, rc,
 * value) is called on the loop thread when the outcome will not be delivered
 * (future cancelled, job dropped, loop closed), so arg can be freed.
 */
int asyncio__run_in_executor(asyncio_loop_t *loop, asyncio_executor_t *ex, asyncio_thread_fn fn,
                             void *arg, void (*abandon)(void *arg, int rc, void *value),
                             asyncio_future_t **out);
/*
 * threads.c: awaits such a future and drops the caller's reference, also
 * when the loop is closed while the task waits; *delivered (nullable): the
 * outcome arrived, so arg is the caller's again.
 */
int asyncio__await_job(asyncio_future_t *f, void **value, int *delivered);

/* futures.c */
void asyncio__future_init(asyncio_future_t *f, asyncio_loop_t *loop);
void asyncio__future_complete(asyncio_future_t *f, int state, int code, void *value, char *msg);
int asyncio__future_cancel_base(asyncio_future_t *f, const char *msg);
void asyncio__future_run_done(asyncio__handle_t *h);
int asyncio__future_add_cb(asyncio_future_t *f, asyncio_done_fn fn, void *arg);
void asyncio__future_remove_waiter(asyncio_future_t *f, struct asyncio__task *t);
void asyncio__future_unref(asyncio_future_t *f);
const char *asyncio__future_describe(asyncio_future_t *f, char *buf, size_t n);

/* tasks.c */
void asyncio__task_step(asyncio__task_t *t);
void asyncio__task_suspend(asyncio__task_t *t);
/*
 * The lightest wait, for library objects that track their one waiting task
 * themselves (a stream's reader): no future, nothing written to the task's
 * stack by the waker.  Suspends the current task t until
 * asyncio__task_unpark(t) or a cancellation; returns 0 or -ECANCELED (a
 * cancellation requested after the unpark still wins, as with a future).
 * `what` (static) names the wait in asyncio_print_tasks.
 */
int asyncio__task_park(asyncio__task_t *t, const char *what);
/* Wakes t if it is parked; otherwise does nothing. */
void asyncio__task_unpark(asyncio__task_t *t);
void asyncio__task_destroy_pending(asyncio__task_t *t);
void asyncio__task_free_fields(asyncio__task_t *t);
int asyncio__task_cancel_all(asyncio_loop_t *loop);

/* timeouts.c */
/*
 * async with timeouts.timeout(delay): return await fut, for the current task
 * (delay <= 0: the deadline fires on the next iteration).  The scope lives on
 * the caller's stack and holds no task reference, so a task that loop close
 * destroys while it waits leaks nothing.
 */
int asyncio__await_timeout(asyncio_future_t *fut, double delay, void **value);

/* asyncgen.c */
/* Runner.close: run loop.shutdown_asyncgens() to completion (loop not running). */
int asyncio__asyncgen_shutdown(asyncio_loop_t *loop);
/* loop.close(): detaches every generator, releasing suspended bodies' stacks. */
void asyncio__asyncgen_loop_close(asyncio_loop_t *loop);

/*
 * locks.c: what every synchronization object shares (queues.c uses it too).
 * A waiter is a future in the waiting task's frame: never allocated, never
 * freed (its reference count stays >= 1), awaited with asyncio_await so that
 * cancellation works as for any future.  A wait queue is an intrusive FIFO.
 */
typedef struct asyncio__sync {
  asyncio_loop_t *loop; /* bound lazily; holds one of loop->nobjects */
  uint32_t busy;        /* tasks suspended in a call on this object */
} asyncio__sync_t;

typedef struct asyncio__waiter {
  struct asyncio_future f;
  struct asyncio__waiter *prev, *next;
  uint8_t linked; /* in a wait queue */
} asyncio__waiter_t;

typedef struct asyncio__waitq {
  asyncio__waiter_t *head, *tail;
  size_t n;
} asyncio__waitq_t;

/* 0; ASYNCIO_EWRONGTHREAD; 1 when the bound loop is closed (waiters are gone: forget them). */
int asyncio__sync_check(asyncio__sync_t *s);
/* Binds to the running loop for a wait: 0, ASYNCIO_ENOTASK, -EINVAL (another loop). */
int asyncio__sync_bind(asyncio__sync_t *s);
void asyncio__sync_unbind(asyncio__sync_t *s);
/* A fresh pending waiter in the caller's frame, bound to loop. */
static inline void asyncio__waiter_init(asyncio__waiter_t *w, asyncio_loop_t *loop) {
  memset(w, 0, sizeof *w);
  w->f.refcnt = 1;
  w->f.loop = loop;
}
void asyncio__waitq_push(asyncio__waitq_t *q, asyncio__waiter_t *w);
void asyncio__waitq_remove(asyncio__waitq_t *q, asyncio__waiter_t *w);
/* Suspends on w (pushed by the caller): 0 when woken, -ECANCELED. */
int asyncio__waiter_wait(asyncio__sync_t *s, asyncio__waiter_t *w);
/* Completes a pending waiter (its task is queued). */
void asyncio__waiter_wake(asyncio__waiter_t *w);
static inline bool asyncio__waiter_done(const asyncio__waiter_t *w) {
  return w->f.state != FUT_PENDING;
}
static inline bool asyncio__waiter_cancelled(const asyncio__waiter_t *w) {
  return w->f.state == FUT_CANCELLED;
}

/*
 * signals.c: queues the callbacks of the signals that arrived (the loop
 * thread, from the wakeup eventfd's reader); at loop close, uninstalls every
 * handler the loop added and frees its state (after the ready queue is gone).
 */
void asyncio__signals_dispatch(asyncio_loop_t *loop);
void asyncio__signals_loop_close(asyncio_loop_t *loop);
/*
 * signals.c: if some loop's handler for sig saved `was` as the disposition to
 * restore on removal, it saves *now instead (the runner, ending a run, hands
 * back SIGINT's default when the user's handler replaced the runner's).
 */
void asyncio__signals_replace_saved(int sig, void (*was)(int), const struct sigaction *now);

/* selector_events.c: closes the transports and servers still open, at loop close */
void asyncio__selector_events_close(asyncio_loop_t *loop);

#endif
