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
  asyncio__handle_t *next; /* ready queue / free list */
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
  uint32_t heap_idx;
  uint8_t state;
  uint8_t kind;
  uint8_t cancelled;
  uint8_t pooled;    /* returns to the pool after running */
};

/* ---- I/O watchers -------------------------------------------------------- */

typedef struct asyncio__watch {
  asyncio__handle_t reader, writer; /* embedded, HK_IO */
  asyncio_io_fn rfn, wfn;
  void *rarg, *warg;
  int fd;
  uint32_t registered; /* ASYNCIO__EV_* mask the backend knows */
} asyncio__watch_t;

/* ---- futures and tasks ---------------------------------------------------- */

enum { FUT_PENDING = 0, FUT_CANCELLED, FUT_FINISHED };

typedef struct asyncio__cb {
  asyncio_done_fn fn;
  void *arg;
} asyncio__cb_t;

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
};

typedef struct asyncio__task {
  struct asyncio_future f;
  asyncio_coro_fn fn;
  void *arg;
  void *result_value;
  asyncio__coro_t ctx;
  asyncio__coro_t *resumer;     /* where a suspension returns to */
  asyncio__stack_t *stack;
  size_t stack_size;
  asyncio__handle_t step;       /* embedded: resumes this task */
  asyncio_future_t *fut_waiter; /* the future being awaited (a reference), or NULL */
  asyncio_handle_t timer_waiter;/* the sleep timer, or none */
  struct asyncio__task *prev, *next; /* the loop's list of pending tasks */
  char *name;                   /* NULL until named or asked for */
  uint64_t id;                  /* the N of Task-N */
  char *cancel_msg;
  int num_cancels_requested;
  int wake_rc;
  uint8_t must_cancel;
  uint8_t started;
  uint8_t finished;             /* the coroutine returned: its stack can go */
  uint8_t detached;
  uint8_t eager;
} asyncio__task_t;

#define TASK(fut) ((asyncio__task_t *)(fut))
#define TASK_FREE_MAX 4096

/* ---- the loop ------------------------------------------------------------- */

typedef struct asyncio__ts_node {
  struct asyncio__ts_node *next;
  asyncio_callback_fn fn;
  void *arg;
} asyncio__ts_node_t;

typedef struct asyncio__chunk {
  struct asyncio__chunk *next;
} asyncio__chunk_t;

struct asyncio_loop {
  /* ready queue (FIFO) */
  asyncio__handle_t *ready_head, *ready_tail;
  size_t ready_count;
  size_t ntodo; /* callbacks left to run in this iteration */
  /* timers: a binary min-heap on (when, seq) */
  asyncio__handle_t **heap;
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
  void (*on_wakeup)(asyncio_loop_t *loop, void *arg); /* the runner's SIGINT check */
  void *on_wakeup_arg;
  /* tasks */
  asyncio__task_t *tasks_head;
  size_t ntasks;
  asyncio__task_t *task_free; /* recycled task objects */
  size_t ntask_free;
  asyncio__task_t *current;
  int eager_depth;              /* eager starts in progress: no direct hand-off */
  asyncio__coro_t sched;        /* the context run_forever runs on */
  asyncio__stack_pool_t stacks;
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

asyncio__handle_t *asyncio__handle_new(asyncio_loop_t *loop);
asyncio_handle_t asyncio__handle_value(asyncio__handle_t *h);
/* Back to the pool (pooled) or idle (embedded). */
void asyncio__handle_release(asyncio_loop_t *loop, asyncio__handle_t *h);
int asyncio__loop_timer(asyncio_loop_t *loop, double when, asyncio__handle_t *h);
void asyncio__loop_object_gone(asyncio_loop_t *loop);
int asyncio__loop_iterate_inline(asyncio_loop_t *loop);
double asyncio__loop_now(const asyncio_loop_t *loop);
void asyncio__loop_report(asyncio_loop_t *loop, const char *message, int error,
                          const char *error_message, asyncio_future_t *fut);

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
void asyncio__task_destroy_pending(asyncio__task_t *t);
void asyncio__task_free_fields(asyncio__task_t *t);
int asyncio__task_cancel_all(asyncio_loop_t *loop);

#endif
