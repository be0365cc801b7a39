/*
 * base_events.c - the event loop (Python: asyncio.base_events.BaseEventLoop,
 * selector_events for add_reader/add_writer).
 *
 * One iteration is CPython's _run_once, phase by phase:
 *   1. drain callbacks handed over by other threads (call_soon_threadsafe);
 *   2. purge cancelled timers (lazily: all of them when they are more than
 *      half the heap, else only those at its top);
 *   3. poll for I/O: no wait if anything is ready or we are stopping, else
 *      until the earliest timer, else forever; with the virtual clock, poll
 *      without waiting and, if nothing happened, jump time to that timer;
 *   4. move every due timer to the ready queue;
 *   5. run exactly the callbacks that are ready now; what they schedule runs
 *      on the next iteration, except tasks an I/O callback wakes: they run
 *      right after it (see run_ready).
 * Invariants: a handle is in at most one place (free pool, ready queue, timer
 * heap, or running); cancelled handles stay where they are and are skipped or
 * purged later; nothing here allocates once the pools are warm.
 */
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

TLS_IE asyncio_loop_t *asyncio__running_loop;

#define HANDLE_CHUNK 128
#define MIN_SCHEDULED_TIMERS 100
#define MAX_SELECT_TIMEOUT (24.0 * 3600.0)

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double asyncio__loop_now(const asyncio_loop_t *loop) {
  return loop->virtual_clock ? loop->vtime : mono_now();
}

/* ---- handle pool ---------------------------------------------------------- */

asyncio__handle_t *asyncio__handle_grow(asyncio_loop_t *loop) {
  asyncio__chunk_t *c =
      asyncio__alloc(sizeof(asyncio__chunk_t) + HANDLE_CHUNK * sizeof(asyncio__handle_t));
  if (!c) return NULL;
  c->next = loop->handle_chunks;
  loop->handle_chunks = c;
  asyncio__handle_t *hs = (asyncio__handle_t *)(c + 1);
  memset(hs, 0, HANDLE_CHUNK * sizeof *hs);
  for (int i = HANDLE_CHUNK - 1; i >= 0; i--) {
    hs[i].loop = loop;
    hs[i].pooled = 1;
    hs[i].gen = 1;
    hs[i].next = loop->handle_free;
    loop->handle_free = &hs[i];
  }
  return loop->handle_free;
}

/*
 * A handle value is (slot, generation), so a stale value never matches the
 * slot again.  Whether each of the slot's last 64 generations was cancelled
 * is kept, so Handle.cancelled() stays true for a stale cancelled handle
 * until its slot has been reused 64 more times (documented in events.h).
 */
static inline void handle_release_pooled(asyncio_loop_t *loop, asyncio__handle_t *h) {
  uint64_t hist = h->cancel_hist << 1;
  if (UNLIKELY(h->cancelled)) {
    hist |= 1;
    h->cancelled = 0;
  }
  h->cancel_hist = hist;
  h->gen++;
  h->state = H_FREE;
  h->arg = h->aux = NULL;
  h->next = loop->handle_free;
  loop->handle_free = h;
}

void asyncio__handle_release(asyncio_loop_t *loop, asyncio__handle_t *h) {
  if (!h->pooled) {
    h->state = H_IDLE;
    return;
  }
  handle_release_pooled(loop, h);
}

asyncio_handle_t asyncio__handle_value(asyncio__handle_t *h) {
  asyncio_handle_t v = {h, h->gen};
  return v;
}

static asyncio__handle_t *handle_live(asyncio_handle_t v) {
  asyncio__handle_t *h = v.ptr;
  if (!h || h->gen != v.gen || h->state == H_FREE) return NULL;
  return h;
}

/* ---- timer heap: 4-ary min-heap on (when, seq) ------------------------------ */

/*
 * Each slot holds its timer's `when` as an integer key next to the handle:
 * sifting compares keys in one array, without branches on their outcome
 * (which is random, so branches would be mispredicted half the time), and
 * touches a handle only to break a tie on `seq`.  Four children per node
 * halve the depth of a binary heap.  Positions are not tracked in the
 * handles: timers are removed lazily, never from the middle.
 */

/* An integer with the order of the double (NaN is refused by call_at). */
static inline uint64_t timer_key(double when) {
  union {
    double d;
    uint64_t u;
  } v = {when + 0.0}; /* -0.0 becomes +0.0: equal times stay equal */
  return v.u ^ ((uint64_t)((int64_t)v.u >> 63) | 0x8000000000000000u);
}

static inline int timer_before(const asyncio__timer_t *a, const asyncio__timer_t *b) {
  if (UNLIKELY(a->key == b->key)) return a->h->seq < b->h->seq;
  return a->key < b->key;
}

/* The index of the earlier of slots i and j, chosen without a branch. */
static inline uint32_t timer_min(const asyncio__timer_t *hp, uint32_t i, uint32_t j) {
  uint32_t lt = (uint32_t)timer_before(&hp[j], &hp[i]);
  return i ^ ((i ^ j) & (0u - lt));
}

/* Places e at hole i or above it. */
static void heap_up(asyncio__timer_t *hp, uint32_t i, asyncio__timer_t e) {
  while (i > 0) {
    uint32_t p = (i - 1) / 4;
    if (!timer_before(&e, &hp[p])) break;
    hp[i] = hp[p];
    i = p;
  }
  hp[i] = e;
}

/* Places e at hole i or below it, in a heap of n slots. */
static void heap_down(asyncio__timer_t *hp, uint32_t n, uint32_t i, asyncio__timer_t e) {
  for (;;) {
    uint32_t c = 4 * i + 1, m;
    if (LIKELY(c + 4 <= n)) {
      m = timer_min(hp, timer_min(hp, c, c + 1), timer_min(hp, c + 2, c + 3));
    } else {
      if (c >= n) break;
      m = c;
      for (uint32_t k = c + 1; k < n; k++) m = timer_min(hp, m, k);
    }
    if (!timer_before(&hp[m], &e)) break;
    hp[i] = hp[m];
    i = m;
  }
  hp[i] = e;
}

static asyncio__handle_t *heap_pop(asyncio_loop_t *loop) {
  asyncio__handle_t *top = loop->heap[0].h;
  uint32_t n = --loop->heap_n;
  if (n) heap_down(loop->heap, n, 0, loop->heap[n]);
  top->heap_idx = UINT32_MAX;
  return top;
}

int asyncio__loop_timer(asyncio_loop_t *loop, double when, asyncio__handle_t *h) {
  if (UNLIKELY(loop->heap_n == loop->heap_cap)) {
    uint32_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
    void *p = asyncio__realloc(loop->heap, loop->heap_cap * sizeof *loop->heap,
                               cap * sizeof *loop->heap);
    if (!p) return -ENOMEM;
    loop->heap = p;
    loop->heap_cap = cap;
  }
  h->when = when;
  h->seq = loop->timer_seq++;
  h->state = H_TIMER;
  h->heap_idx = 0; /* in the heap; the position itself is not tracked */
  asyncio__timer_t e = {timer_key(when), h};
  heap_up(loop->heap, loop->heap_n++, e);
  return 0;
}

/* Drops every cancelled timer and re-heapifies (CPython does the same when
 * cancelled handles exceed half of the heap). */
static void purge_cancelled_timers(asyncio_loop_t *loop) {
  uint32_t j = 0;
  for (uint32_t i = 0; i < loop->heap_n; i++) {
    asyncio__handle_t *h = loop->heap[i].h;
    if (h->cancelled) {
      h->heap_idx = UINT32_MAX;
      asyncio__handle_release(loop, h);
    } else {
      loop->heap[j++] = loop->heap[i];
    }
  }
  loop->heap_n = j;
  /* Floyd's heapify: sift down every parent, the last one first. */
  if (j > 1)
    for (uint32_t i = (j - 2) / 4 + 1; i-- > 0;) heap_down(loop->heap, j, i, loop->heap[i]);
  loop->timers_cancelled = 0;
}

/* ---- life cycle ----------------------------------------------------------- */

static void wake_fd_ready(int fd, void *arg);

ASYNCIO_API int asyncio_loop_new(asyncio_loop_t **out, const asyncio_loop_options_t *o) {
  if (!out) return -EINVAL;
  *out = NULL;
  if (o && (o->clock != ASYNCIO_CLOCK_MONOTONIC && o->clock != ASYNCIO_CLOCK_VIRTUAL))
    return -EINVAL;
  if (o && o->stack_size && o->stack_size < ASYNCIO_MIN_STACK_SIZE) return -EINVAL;
  if (o && (o->slow_callback_duration < 0 || isnan(o->slow_callback_duration))) return -EINVAL;
  asyncio_loop_t *loop = asyncio__calloc(sizeof *loop);
  if (!loop) return -ENOMEM;
  loop->wake_fd = -1;
  loop->backend.fd = -1;
  int rc = asyncio__backend_init(&loop->backend);
  if (rc < 0) goto fail;
  loop->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (loop->wake_fd < 0) {
    rc = -errno;
    goto fail;
  }
  pthread_mutex_init(&loop->ts_lock, NULL);
  loop->virtual_clock = o && o->clock == ASYNCIO_CLOCK_VIRTUAL;
  loop->stack_size = o && o->stack_size ? o->stack_size : ASYNCIO_DEFAULT_STACK_SIZE;
  loop->slow_callback_duration =
      o && o->slow_callback_duration > 0 ? o->slow_callback_duration : 0.1;
  int dbg = o ? o->debug : 0;
  if (dbg == 0) {
    const char *e = getenv("ASYNCIO_DEBUG");
    dbg = e && *e && strcmp(e, "0") != 0;
  }
  loop->debug = dbg > 0;
  rc = asyncio_loop_add_reader(loop, loop->wake_fd, wake_fd_ready, loop);
  if (rc < 0) {
    /* The watch table may have been allocated, and the watch too if the
     * backend then refused the descriptor. */
    for (int fd = 0; fd < loop->nwatches; fd++)
      if (loop->watches[fd]) asyncio__free_line(loop->watches[fd], sizeof(asyncio__watch_t));
    asyncio__free(loop->watches, (size_t)loop->nwatches * sizeof *loop->watches);
    pthread_mutex_destroy(&loop->ts_lock);
    goto fail;
  }
  *out = loop;
  return 0;
fail:
  if (loop->wake_fd >= 0) close(loop->wake_fd);
  asyncio__backend_close(&loop->backend);
  asyncio__free(loop, sizeof *loop);
  return rc;
}

/*
 * The last step: after close, and once no future or task refers to the loop.
 * The handle chunks live until here because a future that outlives close may
 * still hold pooled handles for its done callbacks.
 */
static void loop_free_struct(asyncio_loop_t *loop) {
  while (loop->handle_chunks) {
    asyncio__chunk_t *c = loop->handle_chunks;
    loop->handle_chunks = c->next;
    asyncio__free(c, sizeof(asyncio__chunk_t) + HANDLE_CHUNK * sizeof(asyncio__handle_t));
  }
  pthread_mutex_destroy(&loop->ts_lock);
  asyncio__free(loop, sizeof *loop);
}

void asyncio__loop_object_gone(asyncio_loop_t *loop) {
  if (--loop->nobjects == 0 && loop->closed == 2) loop_free_struct(loop);
}

ASYNCIO_API int asyncio_loop_close(asyncio_loop_t *loop) {
  if (!loop) return -EINVAL;
  if (loop->running) return ASYNCIO_ERUNNING;
  if (loop->closed) return 0;
  loop->closed = 1;
  /*
   * A thread racing with close either got its callback in before this (it is
   * dropped here) or finds ts_closed set; the wakeup fd is closed only after.
   * Before the wait for running jobs: a job may block on a cfuture whose
   * coroutine's start is queued here, and dropping it completes the cfuture.
   */
  pthread_mutex_lock(&loop->ts_lock);
  loop->ts_closed = 1;
  asyncio__ts_node_t *n = loop->ts_head;
  loop->ts_head = loop->ts_tail = NULL;
  pthread_mutex_unlock(&loop->ts_lock);
  while (n) {
    asyncio__ts_node_t *next = n->next;
    if (n->drop) n->drop(n->arg);
    asyncio__free(n, sizeof *n);
    n = next;
  }
  /* Thread work next: blocks until this loop's running jobs are done. */
  asyncio__threads_loop_close(loop);
  /* Queued callbacks are dropped; done callbacks hold future references. */
  while (loop->ready_head) {
    asyncio__handle_t *h = loop->ready_head;
    loop->ready_head = h->next;
    if (h->kind == HK_DONE) {
      asyncio_future_t *f = h->aux;
      asyncio__handle_release(loop, h);
      asyncio__future_unref(f);
    } else {
      asyncio__handle_release(loop, h);
    }
  }
  loop->ready_tail = NULL;
  loop->ready_count = 0;
  /* Signal handlers the loop added go (loop.close() removes them too); their
   * embedded handles just left the ready queue, so their state can go. */
  if (loop->signals) asyncio__signals_loop_close(loop);
  /* Pending tasks die here without running again (Python logs "Task was
   * destroyed but it is pending!" from their __del__). */
  while (loop->tasks_head) {
    asyncio__task_t *t = loop->tasks_head;
    asyncio__loop_report(loop, "Task was destroyed but it is pending!", 0, NULL, &t->f);
    asyncio__task_destroy_pending(t);
  }
  /* Async generators still open are detached; their stacks go back now. */
  asyncio__asyncgen_loop_close(loop);
  for (uint32_t i = 0; i < loop->heap_n; i++) asyncio__handle_release(loop, loop->heap[i].h);
  loop->heap_n = 0;
  asyncio__free(loop->heap, loop->heap_cap * sizeof *loop->heap);
  loop->heap = NULL;
  /* Transports and servers still open are closed silently, before their watches go. */
  if (loop->net) asyncio__selector_events_close(loop);
  for (int fd = 0; fd < loop->nwatches; fd++)
    if (loop->watches[fd]) asyncio__free_line(loop->watches[fd], sizeof(asyncio__watch_t));
  asyncio__free(loop->watches, (size_t)loop->nwatches * sizeof *loop->watches);
  loop->watches = NULL;
  loop->nwatches = 0;
  while (loop->task_free) {
    asyncio__task_t *t = loop->task_free;
    loop->task_free = t->next;
    asyncio__free(t, sizeof *t);
  }
  loop->ntask_free = 0;
  asyncio__stack_pool_drain(&loop->stacks);
  asyncio__backend_close(&loop->backend);
  close(loop->wake_fd);
  loop->wake_fd = -1;
  /* Futures and tasks the user still holds keep the struct (closed) alive. */
  loop->closed = 2;
  if (loop->nobjects == 0) loop_free_struct(loop);
  return 0;
}

ASYNCIO_API bool asyncio_loop_is_running(const asyncio_loop_t *loop) {
  return loop && loop->running;
}

ASYNCIO_API bool asyncio_loop_is_closed(const asyncio_loop_t *loop) {
  return !loop || loop->closed;
}

ASYNCIO_API double asyncio_loop_time(const asyncio_loop_t *loop) {
  return loop ? asyncio__loop_now(loop) : 0.0;
}

ASYNCIO_API asyncio_loop_t *asyncio_get_running_loop(void) { return asyncio__running_loop; }

ASYNCIO_API const char *asyncio_loop_backend_name(const asyncio_loop_t *loop) {
  return loop ? loop->backend.name : NULL;
}

/* ---- scheduling ------------------------------------------------------------ */

ASYNCIO_API int asyncio_loop_call_soon(asyncio_loop_t *loop, asyncio_callback_fn fn, void *arg,
                                       asyncio_handle_t *handle) {
  if (UNLIKELY(!loop || !fn)) return -EINVAL;
  int rc = asyncio__check_thread(loop);
  if (UNLIKELY(rc)) return rc;
  asyncio__handle_t *h = asyncio__handle_new(loop);
  if (UNLIKELY(!h)) return -ENOMEM;
  h->fn = fn;
  h->arg = arg;
  asyncio__ready_push(loop, h);
  if (handle) *handle = asyncio__handle_value(h);
  return 0;
}

ASYNCIO_API int asyncio_loop_call_at(asyncio_loop_t *loop, double when, asyncio_callback_fn fn,
                                     void *arg, asyncio_handle_t *handle) {
  if (UNLIKELY(!loop || !fn || isnan(when))) return -EINVAL;
  int rc = asyncio__check_thread(loop);
  if (UNLIKELY(rc)) return rc;
  asyncio__handle_t *h = asyncio__handle_new(loop);
  if (UNLIKELY(!h)) return -ENOMEM;
  h->fn = fn;
  h->arg = arg;
  rc = asyncio__loop_timer(loop, when, h);
  if (UNLIKELY(rc)) {
    asyncio__handle_release(loop, h);
    return rc;
  }
  if (handle) *handle = asyncio__handle_value(h);
  return 0;
}

ASYNCIO_API int asyncio_loop_call_later(asyncio_loop_t *loop, double delay,
                                        asyncio_callback_fn fn, void *arg,
                                        asyncio_handle_t *handle) {
  if (UNLIKELY(!loop || isnan(delay))) return -EINVAL;
  if (delay < 0) delay = 0;
  return asyncio_loop_call_at(loop, asyncio__loop_now(loop) + delay, fn, arg, handle);
}

static void wake_loop(asyncio_loop_t *loop) {
  uint64_t one = 1;
  atomic_store_explicit(&loop->wakeup_signalled, 1, memory_order_relaxed);
  ssize_t r = write(loop->wake_fd, &one, sizeof one);
  (void)r; /* EAGAIN: the counter is saturated, so the loop will wake anyway */
}

ASYNCIO_API int asyncio_loop_call_soon_threadsafe(asyncio_loop_t *loop, asyncio_callback_fn fn,
                                                  void *arg) {
  if (!loop || !fn) return -EINVAL;
  asyncio__ts_node_t *n = asyncio__alloc(sizeof *n);
  if (!n) return -ENOMEM;
  n->fn = fn;
  n->arg = arg;
  n->drop = NULL;
  int rc = asyncio__loop_ts_push(loop, n);
  if (rc) asyncio__free(n, sizeof *n);
  return rc;
}

int asyncio__loop_ts_push(asyncio_loop_t *loop, asyncio__ts_node_t *n) {
  n->next = NULL;
  pthread_mutex_lock(&loop->ts_lock);
  if (loop->ts_closed) {
    pthread_mutex_unlock(&loop->ts_lock);
    return ASYNCIO_ECLOSED;
  }
  if (loop->ts_tail)
    loop->ts_tail->next = n;
  else
    loop->ts_head = n;
  loop->ts_tail = n;
  atomic_store_explicit(&loop->ts_pending, 1, memory_order_release);
  /* Under the lock, so close cannot close the eventfd in between. */
  wake_loop(loop);
  pthread_mutex_unlock(&loop->ts_lock);
  return 0;
}

/* Moves callbacks from other threads to the ready queue. */
static void drain_threadsafe(asyncio_loop_t *loop) {
  pthread_mutex_lock(&loop->ts_lock);
  asyncio__ts_node_t *n = loop->ts_head;
  loop->ts_head = loop->ts_tail = NULL;
  atomic_store_explicit(&loop->ts_pending, 0, memory_order_relaxed);
  pthread_mutex_unlock(&loop->ts_lock);
  while (n) {
    asyncio__ts_node_t *next = n->next;
    asyncio__handle_t *h = asyncio__handle_new(loop);
    if (h) {
      h->fn = n->fn;
      h->arg = n->arg;
      asyncio__ready_push(loop, h);
      asyncio__free(n, sizeof *n);
    } else {
      /* Out of memory: keep the rest for the next iteration. */
      pthread_mutex_lock(&loop->ts_lock);
      asyncio__ts_node_t *last = n;
      while (last->next) last = last->next;
      last->next = loop->ts_head;
      loop->ts_head = n;
      if (!loop->ts_tail) loop->ts_tail = last;
      atomic_store_explicit(&loop->ts_pending, 1, memory_order_relaxed);
      pthread_mutex_unlock(&loop->ts_lock);
      return;
    }
    n = next;
  }
}

static void wake_fd_ready(int fd, void *arg) {
  asyncio_loop_t *loop = arg;
  uint64_t v;
  ssize_t r = read(fd, &v, sizeof v);
  (void)r;
  /* After the read: a signal arriving from here on writes the eventfd again. */
  if (atomic_load_explicit(&loop->signals_pending, memory_order_acquire))
    asyncio__signals_dispatch(loop);
  if (loop->on_wakeup) loop->on_wakeup(loop, loop->on_wakeup_arg);
}

ASYNCIO_API void asyncio_handle_cancel(asyncio_handle_t v) {
  asyncio__handle_t *h = handle_live(v);
  if (!h || h->cancelled) return;
  /* A running handle is only marked, as CPython's Handle.cancel() does. */
  h->cancelled = 1;
  if (h->state == H_TIMER) h->loop->timers_cancelled++;
}

ASYNCIO_API bool asyncio_handle_cancelled(asyncio_handle_t v) {
  asyncio__handle_t *h = v.ptr;
  if (!h) return false;
  if (h->gen == v.gen) return h->cancelled;
  if (v.gen > h->gen || h->gen - v.gen > 64) return false;
  return (h->cancel_hist >> (h->gen - v.gen - 1)) & 1u;
}

ASYNCIO_API int asyncio_handle_when(asyncio_handle_t v, double *when) {
  asyncio__handle_t *h = handle_live(v);
  if (!h || h->state != H_TIMER || !when) return ASYNCIO_EINVALIDSTATE;
  *when = h->when;
  return 0;
}

/* ---- file descriptors -------------------------------------------------------- */

static int watch_get(asyncio_loop_t *loop, int fd, asyncio__watch_t **out) {
  if (fd >= loop->nwatches) {
    int n = loop->nwatches ? loop->nwatches : 64;
    while (n <= fd) n *= 2;
    void *p = asyncio__realloc(loop->watches, (size_t)loop->nwatches * sizeof *loop->watches,
                               (size_t)n * sizeof *loop->watches);
    if (!p) return -ENOMEM;
    loop->watches = p;
    memset(loop->watches + loop->nwatches, 0,
           (size_t)(n - loop->nwatches) * sizeof *loop->watches);
    loop->nwatches = n;
  }
  asyncio__watch_t *w = loop->watches[fd];
  if (!w) {
    /* Allocated once per descriptor number and kept: the embedded handles
     * may sit in the ready queue, so the watch must never move. */
    w = asyncio__calloc_line(sizeof *w);
    if (!w) return -ENOMEM;
    w->fd = fd;
    w->reader.kind = w->writer.kind = HK_IO;
    w->reader.loop = w->writer.loop = loop;
    w->reader.aux = w->writer.aux = w;
    w->reader.state = w->writer.state = H_IDLE;
    w->reader.heap_idx = w->writer.heap_idx = UINT32_MAX;
    loop->watches[fd] = w;
  }
  *out = w;
  return 0;
}

static int set_interest(asyncio_loop_t *loop, asyncio__watch_t *w, uint32_t want) {
  int rc = asyncio__backend_modify(&loop->backend, w->fd, w->registered, want);
  if (rc < 0) return rc;
  loop->nregistered += (want != 0) - (w->registered != 0);
  w->registered = want;
  return 0;
}

static int add_watch(asyncio_loop_t *loop, int fd, asyncio_io_fn fn, void *arg, int write_side) {
  if (!loop || !fn || fd < 0) return fd < 0 ? -EBADF : -EINVAL;
  int rc = asyncio__check_thread(loop);
  if (rc) return rc;
  asyncio__watch_t *w;
  rc = watch_get(loop, fd, &w);
  if (rc) return rc;
  uint32_t bit = write_side ? ASYNCIO__EV_WRITE : ASYNCIO__EV_READ;
  rc = set_interest(loop, w, w->registered | bit);
  if (rc) return rc;
  asyncio__handle_t *h = write_side ? &w->writer : &w->reader;
  if (write_side) {
    w->wfn = fn;
    w->warg = arg;
  } else {
    w->rfn = fn;
    w->rarg = arg;
  }
  h->cancelled = 0;
  return 0;
}

static int remove_watch(asyncio_loop_t *loop, int fd, int write_side) {
  if (!loop) return -EINVAL;
  if (fd < 0) return -EBADF;
  int rc = asyncio__check_thread(loop);
  if (rc) return rc;
  if (fd >= loop->nwatches || !loop->watches[fd]) return 0;
  asyncio__watch_t *w = loop->watches[fd];
  uint32_t bit = write_side ? ASYNCIO__EV_WRITE : ASYNCIO__EV_READ;
  if (!(w->registered & bit)) return 0;
  rc = set_interest(loop, w, w->registered & ~bit);
  if (rc) return rc;
  asyncio__handle_t *h = write_side ? &w->writer : &w->reader;
  h->cancelled = 1; /* a readiness already queued is skipped */
  return 1;
}

ASYNCIO_API int asyncio_loop_add_reader(asyncio_loop_t *loop, int fd, asyncio_io_fn fn,
                                        void *arg) {
  return add_watch(loop, fd, fn, arg, 0);
}
ASYNCIO_API int asyncio_loop_add_writer(asyncio_loop_t *loop, int fd, asyncio_io_fn fn,
                                        void *arg) {
  return add_watch(loop, fd, fn, arg, 1);
}
ASYNCIO_API int asyncio_loop_remove_reader(asyncio_loop_t *loop, int fd) {
  return remove_watch(loop, fd, 0);
}
ASYNCIO_API int asyncio_loop_remove_writer(asyncio_loop_t *loop, int fd) {
  return remove_watch(loop, fd, 1);
}

static void io_ready(void *p, int fd, uint32_t events) {
  asyncio_loop_t *loop = p;
  if (fd >= loop->nwatches || !loop->watches[fd]) return;
  asyncio__watch_t *w = loop->watches[fd];
  events &= w->registered;
  if ((events & ASYNCIO__EV_READ) && w->reader.state == H_IDLE)
    asyncio__ready_push(loop, &w->reader);
  if ((events & ASYNCIO__EV_WRITE) && w->writer.state == H_IDLE)
    asyncio__ready_push(loop, &w->writer);
}

/* ---- errors ----------------------------------------------------------------- */

ASYNCIO_API int asyncio_loop_set_exception_handler(asyncio_loop_t *loop,
                                                   asyncio_exception_handler_fn fn, void *ud) {
  if (!loop) return -EINVAL;
  int rc = asyncio__check_owner(loop);
  if (rc) return rc;
  loop->exc_handler = fn;
  loop->exc_handler_ud = fn ? ud : NULL;
  return 0;
}

ASYNCIO_API int asyncio_loop_get_exception_handler(asyncio_loop_t *loop,
                                                   asyncio_exception_handler_fn *fn, void **ud) {
  if (!loop) return -EINVAL;
  if (fn) *fn = loop->exc_handler;
  if (ud) *ud = loop->exc_handler_ud;
  return 0;
}

ASYNCIO_API void asyncio_loop_default_exception_handler(asyncio_loop_t *loop,
                                                        const asyncio_error_context_t *c) {
  (void)loop;
  if (!c) return;
  char buf[192];
  fprintf(stderr, "asyncio: %s\n", c->message ? c->message : "Unhandled error in event loop");
  if (c->error)
    fprintf(stderr, "  error: %s %s (%s)%s%s\n", asyncio_pyname(c->error),
            asyncio_errname(c->error), asyncio_strerror(c->error),
            c->error_message ? ": " : "", c->error_message ? c->error_message : "");
  if (c->future) fprintf(stderr, "  %s\n", asyncio__future_describe(c->future, buf, sizeof buf));
  if (c->handle.ptr) fprintf(stderr, "  handle: %p\n", c->handle.ptr);
  fflush(stderr);
}

ASYNCIO_API void asyncio_loop_call_exception_handler(asyncio_loop_t *loop,
                                                     const asyncio_error_context_t *c) {
  if (!loop || !c) return;
  if (loop->exc_handler && loop->closed != 2) {
    /* Python logs an error raised by the handler itself; C handlers cannot
     * raise, so there is nothing to catch. */
    loop->exc_handler(loop, c, loop->exc_handler_ud);
  } else {
    asyncio_loop_default_exception_handler(loop, c);
  }
}

void asyncio__loop_report(asyncio_loop_t *loop, const char *message, int error,
                          const char *error_message, asyncio_future_t *fut) {
  asyncio_error_context_t c = {0};
  c.message = message;
  c.error = error;
  c.error_message = error_message;
  c.future = fut;
  asyncio_loop_call_exception_handler(loop, &c);
}

ASYNCIO_API int asyncio_loop_set_debug(asyncio_loop_t *loop, bool enabled) {
  if (!loop) return -EINVAL;
  int rc = asyncio__check_owner(loop);
  if (rc) return rc;
  loop->debug = enabled;
  return 0;
}
ASYNCIO_API bool asyncio_loop_get_debug(const asyncio_loop_t *loop) { return loop && loop->debug; }
ASYNCIO_API int asyncio_loop_set_slow_callback_duration(asyncio_loop_t *loop, double s) {
  if (!loop || !(s >= 0)) return -EINVAL;
  loop->slow_callback_duration = s;
  return 0;
}
ASYNCIO_API double asyncio_loop_get_slow_callback_duration(const asyncio_loop_t *loop) {
  return loop ? loop->slow_callback_duration : 0;
}

/* ---- running ----------------------------------------------------------------- */

static inline void run_handle(asyncio_loop_t *loop, asyncio__handle_t *h) {
  if (LIKELY(h->kind == HK_CALLBACK && h->pooled)) {
    /* call_soon and timers: the common case, with the release inlined */
    h->state = H_RUNNING;
    h->fn(h->arg);
    handle_release_pooled(loop, h);
    return;
  }
  switch (h->kind) {
  case HK_TASK_STEP:
    h->state = H_IDLE;
    asyncio__task_step(h->aux);
    break;
  case HK_IO: {
    asyncio__watch_t *w = h->aux;
    h->state = H_IDLE;
    if (h == &w->reader)
      w->rfn(w->fd, w->rarg);
    else
      w->wfn(w->fd, w->warg);
    break;
  }
  case HK_DONE:
    h->state = H_RUNNING;
    asyncio__future_run_done(h);
    break;
  default:
    h->state = H_RUNNING;
    h->fn(h->arg);
    asyncio__handle_release(loop, h);
    break;
  }
}

static void describe_handle(asyncio__handle_t *h, char *buf, size_t n) {
  switch (h->kind) {
  case HK_TASK_STEP:
    asyncio__future_describe(h->aux, buf, n);
    break;
  case HK_IO:
    snprintf(buf, n, "<Handle I/O callback fd=%d>", ((asyncio__watch_t *)h->aux)->fd);
    break;
  case HK_DONE:
    snprintf(buf, n, "<Handle done callback %p>", (void *)(uintptr_t)h->done_fn);
    break;
  default:
    snprintf(buf, n, "<Handle callback %p(%p)>", (void *)(uintptr_t)h->fn, h->arg);
  }
}

/* Debug mode: each handle is timed and a slow one reported. */
static __attribute__((noinline)) void run_handle_debug(asyncio_loop_t *loop,
                                                       asyncio__handle_t *h) {
  char desc[192];
  describe_handle(h, desc, sizeof desc);
  double t0 = mono_now();
  run_handle(loop, h);
  double dt = mono_now() - t0;
  if (dt >= loop->slow_callback_duration)
    fprintf(stderr, "asyncio: Executing %s took %.3f seconds\n", desc, dt);
}

static void run_ready(asyncio_loop_t *loop) {
  /* In the loop struct: a suspending task may consume part of the budget
   * by switching straight to the next ready task. */
  loop->ntodo = loop->ready_count;
  while (loop->ntodo) {
    loop->ntodo--;
    asyncio__handle_t *h = loop->ready_head;
    loop->ready_head = h->next;
    if (!loop->ready_head) loop->ready_tail = NULL;
    loop->ready_count--;
    if (UNLIKELY(h->cancelled | loop->debug)) {
      if (!h->cancelled) {
        run_handle_debug(loop, h);
        continue;
      }
      if (h->kind == HK_DONE) {
        asyncio_future_t *f = h->aux;
        asyncio__handle_release(loop, h);
        asyncio__future_unref(f);
      } else {
        h->cancelled = h->kind == HK_IO ? 0 : h->cancelled;
        asyncio__handle_release(loop, h);
      }
      continue;
    }
    if (h->kind == HK_IO) {
      /*
       * When an I/O callback wakes tasks (the task that waited for this
       * data) and schedules nothing else, those steps run right after it,
       * in this batch, as its continuation, instead of after the rest of
       * the batch and one more, zero-timeout, poll.  So a stream server
       * answers each connection as soon as it has read it, as a protocol
       * does from data_received, and the peer gets work back while we read
       * the next connection.  Bounded by the events of one poll, so I/O is
       * not starved; what those tasks schedule waits for the next
       * iteration, as in CPython, and so does everything when the callback
       * also scheduled a plain callback (a signal delivery,
       * connection_lost).  Which events one poll returns is timing, so no
       * program can rely on the order this changes.  Debug mode, which
       * times every handle on its own, keeps CPython's order.
       */
      asyncio__handle_t *tail = loop->ready_tail;
      size_t before = loop->ready_count;
      run_handle(loop, h);
      if (loop->ready_count > before) {
        asyncio__handle_t *first = tail ? tail->next : loop->ready_head;
        bool steps = true;
        for (asyncio__handle_t *n = first; n && steps; n = n->next)
          steps = n->kind == HK_TASK_STEP;
        if (steps) {
          if (tail) { /* move them ahead of what waits for the next iteration */
            loop->ready_tail->next = loop->ready_head;
            loop->ready_head = first;
            tail->next = NULL;
            loop->ready_tail = tail;
          }
          loop->ntodo += loop->ready_count - before;
        }
      }
      continue;
    }
    run_handle(loop, h);
  }
}

static int run_once(asyncio_loop_t *loop) {
  if (atomic_load_explicit(&loop->ts_pending, memory_order_acquire)) drain_threadsafe(loop);

  /* CPython's rule: more than 100 timers scheduled, more than half cancelled. */
  if (loop->heap_n > MIN_SCHEDULED_TIMERS && loop->timers_cancelled * 2 > loop->heap_n) {
    purge_cancelled_timers(loop);
  } else {
    while (loop->heap_n && loop->heap[0].h->cancelled) {
      asyncio__handle_t *h = heap_pop(loop);
      loop->timers_cancelled--;
      asyncio__handle_release(loop, h);
    }
  }

  int timeout_ms;
  int jump = 0;
  if (loop->ready_count || loop->stopping) {
    /*
     * Work is waiting, so the poll could only be non-blocking.  With no
     * descriptor of the user's registered it can only report our own wakeup
     * eventfd, whose work (threadsafe callbacks, SIGINT) is checked without
     * it; otherwise poll every iteration, as CPython does.  This is what
     * keeps a task switch free of system calls.
     */
    if (loop->nregistered <= 1) {
      if (!atomic_load_explicit(&loop->wakeup_signalled, memory_order_relaxed)) goto skip_poll;
    }
    timeout_ms = 0;
  } else if (loop->heap_n && !isinf(loop->heap[0].h->when)) {
    if (loop->virtual_clock) {
      timeout_ms = atomic_load(&loop->external_pending) ? -1 : 0;
      jump = timeout_ms == 0;
    } else {
      double t = loop->heap[0].h->when - mono_now();
      if (t > MAX_SELECT_TIMEOUT) t = MAX_SELECT_TIMEOUT;
      /* Round up, as CPython does, so we never wake before the deadline. */
      timeout_ms = t <= 0 ? 0 : (int)ceil(t * 1e3);
    }
  } else {
    timeout_ms = -1;
  }

  atomic_store_explicit(&loop->wakeup_signalled, 0, memory_order_relaxed);
  int n = asyncio__backend_poll(&loop->backend, timeout_ms, io_ready, loop);
  if (UNLIKELY(n < 0)) return n;
  if (jump && n == 0 && !loop->ready_count && loop->heap_n &&
      !atomic_load_explicit(&loop->ts_pending, memory_order_acquire)) {
    if (loop->heap[0].h->when > loop->vtime) loop->vtime = loop->heap[0].h->when;
  }

skip_poll:;
  if (loop->heap_n) {
    double end = asyncio__loop_now(loop) + 1e-9;
    while (loop->heap_n) {
      asyncio__handle_t *h = loop->heap[0].h;
      if (h->cancelled) {
        heap_pop(loop);
        loop->timers_cancelled--;
        asyncio__handle_release(loop, h);
        continue;
      }
      if (h->when >= end) break;
      heap_pop(loop);
      asyncio__ready_push(loop, h);
    }
  }

  run_ready(loop);
  return 0;
}

ASYNCIO_API int asyncio_loop_run_forever(asyncio_loop_t *loop) {
  if (!loop) return -EINVAL;
  if (loop->closed) return ASYNCIO_ECLOSED;
  if (loop->running || asyncio__running_loop) return ASYNCIO_ERUNNING;
  asyncio__stack_install_overflow_handler();
  loop->running = 1;
  loop->thread = pthread_self();
  loop->prev_running = asyncio__running_loop;
  asyncio__running_loop = loop;
  asyncio__coro_thread_init(&loop->sched);
  int rc = 0;
  for (;;) {
    rc = run_once(loop);
    if (rc < 0 || loop->stopping) break;
  }
  loop->stopping = 0;
  loop->running = 0;
  asyncio__running_loop = loop->prev_running;
  return rc;
}

ASYNCIO_API int asyncio_loop_stop(asyncio_loop_t *loop) {
  if (!loop) return -EINVAL;
  int rc = asyncio__check_thread(loop);
  if (rc) return rc;
  loop->stopping = 1;
  return 0;
}

static void stop_cb(asyncio_future_t *f, void *arg) {
  (void)arg;
  asyncio_loop_stop(asyncio_future_get_loop(f));
}

ASYNCIO_API int asyncio_loop_run_until_complete(asyncio_loop_t *loop, asyncio_future_t *f,
                                                void **value) {
  if (!loop || !f) return -EINVAL;
  if (f->loop != loop) return -EINVAL;
  if (loop->closed) return ASYNCIO_ECLOSED;
  if (loop->running || asyncio__running_loop) return ASYNCIO_ERUNNING;
  asyncio_future_ref(f);
  int rc = 0;
  if (!asyncio_future_done(f)) {
    rc = asyncio__future_add_cb(f, stop_cb, NULL);
    if (rc == 0) {
      rc = asyncio_loop_run_forever(loop);
      asyncio_future_remove_done_callback(f, stop_cb, NULL);
    }
  }
  if (rc == 0) {
    if (!asyncio_future_done(f))
      rc = ASYNCIO_EINVALIDSTATE; /* "Event loop stopped before Future completed." */
    else
      rc = asyncio_future_result(f, value);
  }
  asyncio__future_unref(f);
  return rc;
}
