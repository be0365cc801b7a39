/*
 * threads.c - the thread pool and thread hand-offs (Python: the default
 * executor of asyncio.base_events (run_in_executor, set_default_executor,
 * shutdown_default_executor), asyncio.threads.to_thread,
 * tasks.run_coroutine_threadsafe, and concurrent.futures.ThreadPoolExecutor
 * underneath them).
 *
 * An executor is a FIFO of jobs and up to max_workers threads, started on
 * demand when a job is queued and no worker is idle.  A job belongs to one
 * loop: it is created on the loop thread with its completion node already
 * allocated, so a worker hands the outcome back with asyncio__loop_ts_push
 * and never allocates.  The outcome is delivered (the future completed) on
 * the loop thread, in the order the workers finished.
 *
 * Job life, with the owner of each step:
 *   QUEUED   (loop thread: submit)   in the executor's queue;
 *   RUNNING  (worker, under ex->lock) popped, fn running;
 *   handed back (worker)             completion node pushed to the loop;
 *   DROPPED  (loop thread)           taken off the queue unrun: its future
 *                                    was cancelled, or the loop closes.
 * A job is freed on the loop thread once it was delivered or dropped.  Its
 * future is a special one (asyncio__future_vt_t) whose cancel takes a job
 * that is still queued off the queue at once, as Future.cancel() on a
 * concurrent future does for a pending work item.
 * `inflight` counts jobs queued or running and not yet handed back; loop
 * close waits for it to reach zero, then frees whatever was never delivered.
 * `external_pending` on the loop counts jobs not yet delivered, so the
 * virtual clock waits for them.
 *
 * Invariants: futures are touched only on the loop thread; a worker touches
 * a job only until it pushed its node, and the loop's thread state only
 * under its lock; executors never outlive the jobs that point at them
 * (asyncio_executor_free refuses with -EBUSY).
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

enum { J_QUEUED = 0, J_RUNNING, J_DROPPED };

typedef struct job job_t;
typedef struct asyncio__loop_threads lt_t;

struct job {
  job_t *qprev, *qnext;            /* executor queue, under ex->lock */
  job_t *lprev, *lnext;            /* the loop's registry, loop thread */
  asyncio_executor_t *ex;
  lt_t *lt;
  asyncio_loop_t *loop;
  asyncio_thread_fn fn;
  void *arg;
  void (*abandon)(void *arg, int rc, void *value);
  asyncio_future_t *fut;           /* a reference */
  asyncio__ts_node_t *node;        /* the completion node, NULL once pushed */
  void *value;
  int rc;
  atomic_int state;                /* J_*, changed under ex->lock */
  uint8_t delivered;               /* outcome delivered, dropped or abandoned */
};

struct asyncio_executor {
  pthread_mutex_t lock;
  pthread_cond_t work;             /* idle workers wait here */
  job_t *head, *tail;
  size_t qlen;
  int max_workers, nthreads, nidle;
  pthread_t *threads;
  uint8_t shutdown;
  atomic_int users;                /* loops that use it as their default */
  atomic_int njobs;                /* jobs alive that point at it */
  asyncio_executor_t *retired_next; /* a loop's replaced defaults, joined at close */
};

struct asyncio_cfuture {
  atomic_uint refcnt;
  pthread_mutex_t lock;
  pthread_cond_t cond;             /* CLOCK_MONOTONIC */
  int state;                       /* FUT_*, under lock */
  int code;
  void *value;
  asyncio_loop_t *loop;
  asyncio_coro_fn fn;
  void *arg;
  asyncio_task_t *task;            /* loop thread */
  struct asyncio_cfuture *prev, *next; /* the loop's registry, loop thread */
};

struct asyncio__loop_threads {
  pthread_mutex_t lock;
  pthread_cond_t idle;
  int inflight;                    /* under lock */
  job_t *jobs;                     /* registry, loop thread */
  asyncio_cfuture_t *cfs;          /* started cfutures, loop thread */
  asyncio_executor_t *default_ex;
  uint8_t default_owned;
  uint8_t shutdown_called;
  /* shutdown_default_executor in progress */
  asyncio_executor_t *shutting;
  asyncio_executor_t *retired;     /* owned defaults replaced while jobs used them */
  pthread_t joiner;
  uint8_t joiner_running;
  asyncio__ts_node_t *shutdown_node;
  asyncio_future_t **waiters;      /* references */
  size_t nwaiters, capwaiters;
  /* Job futures a library coroutine awaits holding a reference on its stack
   * (asyncio__await_job); loop close drops those references. */
  struct jobfut *awaited;
};

/* ---- executors ------------------------------------------------------------- */

static int default_max_workers(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) n = 1;
  return n + 4 < 32 ? (int)n + 4 : 32;
}

ASYNCIO_API int asyncio_executor_new(asyncio_executor_t **out, int max_workers) {
  if (!out) return -EINVAL;
  *out = NULL;
  if (max_workers < 0) return -EINVAL;
  if (max_workers == 0) max_workers = default_max_workers();
  asyncio_executor_t *ex = asyncio__calloc(sizeof *ex);
  if (!ex) return -ENOMEM;
  ex->threads = asyncio__calloc((size_t)max_workers * sizeof *ex->threads);
  if (!ex->threads) {
    asyncio__free(ex, sizeof *ex);
    return -ENOMEM;
  }
  ex->max_workers = max_workers;
  pthread_mutex_init(&ex->lock, NULL);
  pthread_cond_init(&ex->work, NULL);
  *out = ex;
  return 0;
}

ASYNCIO_API int asyncio_executor_max_workers(const asyncio_executor_t *ex) {
  return ex ? ex->max_workers : -EINVAL;
}

static void *worker_main(void *p);

/* Under ex->lock.  Starts a worker with every signal blocked. */
static int spawn_worker(asyncio_executor_t *ex) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&ex->threads[ex->nthreads], NULL, worker_main, ex);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc) return -rc;
  ex->nthreads++;
  return 0;
}

/* Stops accepting work, lets the queue drain, joins every worker. */
static void executor_join(asyncio_executor_t *ex) {
  pthread_mutex_lock(&ex->lock);
  ex->shutdown = 1;
  pthread_cond_broadcast(&ex->work);
  int n = ex->nthreads;
  pthread_mutex_unlock(&ex->lock);
  /* No worker starts once shutdown is set, so threads[0..n) is final. */
  for (int i = 0; i < n; i++) pthread_join(ex->threads[i], NULL);
  pthread_mutex_lock(&ex->lock);
  ex->nthreads = 0; /* joined: a second join has nothing to do */
  pthread_mutex_unlock(&ex->lock);
}

static void executor_destroy(asyncio_executor_t *ex) {
  executor_join(ex);
  pthread_cond_destroy(&ex->work);
  pthread_mutex_destroy(&ex->lock);
  asyncio__free(ex->threads, (size_t)ex->max_workers * sizeof *ex->threads);
  asyncio__free(ex, sizeof *ex);
}

static __thread asyncio_executor_t *current_executor; /* set in workers */

ASYNCIO_API int asyncio_executor_free(asyncio_executor_t *ex) {
  if (!ex) return -EINVAL;
  if (current_executor == ex) return -EDEADLK;
  if (atomic_load(&ex->users) || atomic_load(&ex->njobs)) return -EBUSY;
  executor_destroy(ex);
  return 0;
}

/* ---- jobs ------------------------------------------------------------------ */

static void deliver(void *arg);

/* Worker side: hand the outcome back and forget the job. */
static void job_handback(job_t *j, int rc, void *value) {
  lt_t *lt = j->lt;
  asyncio__ts_node_t *n = j->node;
  j->rc = rc;
  j->value = value;
  j->node = NULL;
  n->fn = deliver;
  n->arg = j;
  n->drop = NULL;
  /* Fails once close began: the node stays the job's, and close frees both. */
  if (asyncio__loop_ts_push(j->loop, n) != 0) j->node = n;
  pthread_mutex_lock(&lt->lock);
  if (--lt->inflight == 0) pthread_cond_broadcast(&lt->idle);
  pthread_mutex_unlock(&lt->lock);
}

static void *worker_main(void *p) {
  asyncio_executor_t *ex = p;
  current_executor = ex;
  pthread_mutex_lock(&ex->lock);
  for (;;) {
    while (!ex->head && !ex->shutdown) {
      ex->nidle++;
      pthread_cond_wait(&ex->work, &ex->lock);
      ex->nidle--;
    }
    job_t *j = ex->head;
    if (!j) break; /* shut down and drained */
    ex->head = j->qnext;
    if (ex->head)
      ex->head->qprev = NULL;
    else
      ex->tail = NULL;
    ex->qlen--;
    atomic_store(&j->state, J_RUNNING);
    pthread_mutex_unlock(&ex->lock);
    void *value = NULL;
    int rc = j->fn(j->arg, &value);
    job_handback(j, rc, value);
    pthread_mutex_lock(&ex->lock);
  }
  pthread_mutex_unlock(&ex->lock);
  return NULL;
}

/* Under ex->lock: true if the job was still queued and is now off the queue. */
static int dequeue_locked(asyncio_executor_t *ex, job_t *j) {
  if (atomic_load(&j->state) != J_QUEUED) return 0;
  if (j->qprev)
    j->qprev->qnext = j->qnext;
  else
    ex->head = j->qnext;
  if (j->qnext)
    j->qnext->qprev = j->qprev;
  else
    ex->tail = j->qprev;
  j->qprev = j->qnext = NULL;
  ex->qlen--;
  atomic_store(&j->state, J_DROPPED);
  return 1;
}

/* The job's future: a plain future that knows its job while it lives. */
typedef struct jobfut {
  struct asyncio_future f;
  job_t *job;
  struct jobfut *aprev, *anext; /* lt->awaited, while in asyncio__await_job */
  /* The job's abandon hook and argument, for an outcome delivered to a task
   * that loop close destroys before it resumes (asyncio__threads_loop_close). */
  void (*abandon)(void *arg, int rc, void *value);
  void *arg;
} jobfut_t;

static void job_free(job_t *j) {
  lt_t *lt = j->lt;
  if (j->lprev)
    j->lprev->lnext = j->lnext;
  else
    lt->jobs = j->lnext;
  if (j->lnext) j->lnext->lprev = j->lprev;
  if (j->node) asyncio__free(j->node, sizeof *j->node);
  atomic_fetch_sub(&j->ex->njobs, 1);
  ((jobfut_t *)j->fut)->job = NULL;
  asyncio__future_unref(j->fut);
  asyncio__free(j, sizeof *j);
}


/* Loop thread: a job taken off the queue before it ran. */
static void job_dropped(job_t *j) {
  pthread_mutex_lock(&j->lt->lock);
  if (--j->lt->inflight == 0) pthread_cond_broadcast(&j->lt->idle);
  pthread_mutex_unlock(&j->lt->lock);
  atomic_fetch_sub(&j->loop->external_pending, 1);
  j->delivered = 1;
  if (j->abandon) j->abandon(j->arg, -ECANCELED, NULL);
}

/* Loop thread, from the threadsafe queue: complete the future. */
static void deliver(void *arg) {
  job_t *j = arg;
  asyncio_future_t *f = j->fut;
  atomic_fetch_sub(&j->loop->external_pending, 1);
  j->delivered = 1;
  if (f->state == FUT_PENDING) {
    if (j->rc >= 0) {
      asyncio__future_complete(f, FUT_FINISHED, j->rc, j->value, NULL);
    } else {
      f->retrieved = 0;
      asyncio__future_complete(f, FUT_FINISHED, j->rc, NULL, NULL);
    }
  } else if (j->abandon) {
    /* Cancelled while running: the result has nobody to go to. */
    j->abandon(j->arg, j->rc, j->value);
  }
  job_free(j);
}

/* Loop thread: Future.cancel() of a job's future; a queued job never runs. */
static int jobfut_cancel(asyncio_future_t *f, const char *msg) {
  job_t *j = ((jobfut_t *)f)->job;
  int dropped = 0;
  if (f->state == FUT_PENDING && j && !j->delivered && atomic_load(&j->state) == J_QUEUED) {
    /* Still queued, so the executor is alive (its workers cannot exit). */
    pthread_mutex_lock(&j->ex->lock);
    dropped = dequeue_locked(j->ex, j);
    pthread_mutex_unlock(&j->ex->lock);
    if (dropped) job_dropped(j);
  }
  int rc = asyncio__future_cancel_base(f, msg);
  if (dropped) job_free(j);
  return rc;
}

static void jobfut_free(asyncio_future_t *f) { asyncio__free(f, sizeof(jobfut_t)); }

static const asyncio__future_vt_t jobfut_vt = {jobfut_cancel, jobfut_free};

static lt_t *lt_get(asyncio_loop_t *loop) {
  if (loop->threads) return loop->threads;
  lt_t *lt = asyncio__calloc(sizeof *lt);
  if (!lt) return NULL;
  pthread_mutex_init(&lt->lock, NULL);
  pthread_cond_init(&lt->idle, NULL);
  loop->threads = lt;
  return lt;
}

int asyncio__run_in_executor(asyncio_loop_t *loop, asyncio_executor_t *ex, asyncio_thread_fn fn,
                             void *arg, void (*abandon)(void *arg, int rc, void *value),
                             asyncio_future_t **out) {
  if (out) *out = NULL;
  if (!loop || !fn || !out) return -EINVAL;
  int rc = asyncio__check_thread(loop);
  if (rc) return rc;
  lt_t *lt = lt_get(loop);
  if (!lt) return -ENOMEM;
  if (!ex) {
    if (lt->shutdown_called) return ASYNCIO_ECLOSED; /* "Executor shutdown has been called" */
    if (!lt->default_ex) {
      rc = asyncio_executor_new(&lt->default_ex, 0);
      if (rc) return rc;
      lt->default_owned = 1;
    }
    ex = lt->default_ex;
  }
  job_t *j = asyncio__calloc(sizeof *j);
  if (!j) return -ENOMEM;
  j->node = asyncio__alloc(sizeof *j->node);
  jobfut_t *jf = asyncio__calloc(sizeof *jf);
  if (!j->node || !jf) {
    asyncio__free(jf, sizeof *jf);
    asyncio__free(j->node, sizeof *j->node);
    asyncio__free(j, sizeof *j);
    return -ENOMEM;
  }
  asyncio__future_init(&jf->f, loop);
  jf->f.vt = &jobfut_vt;
  jf->job = j;
  jf->abandon = abandon;
  jf->arg = arg;
  asyncio_future_t *f = &jf->f;
  j->ex = ex;
  j->lt = lt;
  j->loop = loop;
  j->fn = fn;
  j->arg = arg;
  j->abandon = abandon;
  j->fut = f;
  atomic_init(&j->state, J_QUEUED);
  pthread_mutex_lock(&lt->lock);
  lt->inflight++;
  pthread_mutex_unlock(&lt->lock);

  pthread_mutex_lock(&ex->lock);
  if (ex->shutdown) {
    rc = ASYNCIO_ECLOSED;
  } else {
    j->qprev = ex->tail;
    if (ex->tail)
      ex->tail->qnext = j;
    else
      ex->head = j;
    ex->tail = j;
    ex->qlen++;
    /* ThreadPoolExecutor._adjust_thread_count: a new worker only when no
     * idle one can take the job. */
    if ((size_t)ex->nidle < ex->qlen && ex->nthreads < ex->max_workers) {
      int src = spawn_worker(ex);
      if (src && ex->nthreads == 0) {
        dequeue_locked(ex, j);
        rc = src == -ENOMEM ? -ENOMEM : -EAGAIN;
      }
    }
    if (rc == 0) pthread_cond_signal(&ex->work);
  }
  pthread_mutex_unlock(&ex->lock);
  if (rc) {
    pthread_mutex_lock(&lt->lock);
    lt->inflight--;
    pthread_mutex_unlock(&lt->lock);
    jf->job = NULL;
    asyncio__future_unref(f);
    asyncio__free(j->node, sizeof *j->node);
    asyncio__free(j, sizeof *j);
    return rc;
  }
  atomic_fetch_add(&ex->njobs, 1);
  j->lnext = lt->jobs;
  if (j->lnext) j->lnext->lprev = j;
  lt->jobs = j;
  atomic_fetch_add(&loop->external_pending, 1);
  *out = asyncio_future_ref(f);
  return 0;
}

static void awaited_unlink(lt_t *lt, jobfut_t *jf) {
  if (jf->aprev)
    jf->aprev->anext = jf->anext;
  else
    lt->awaited = jf->anext;
  if (jf->anext) jf->anext->aprev = jf->aprev;
  jf->aprev = jf->anext = NULL;
}

/*
 * Awaits a future made by asyncio__run_in_executor and drops the caller's
 * reference to it.  While the task is suspended the reference is recorded
 * in the loop's thread state: if the loop is closed then, the task is
 * destroyed without resuming, and asyncio__threads_loop_close drops the
 * reference instead (no leak); if the outcome had already been delivered
 * then, it also calls the abandon hook, since the caller never takes its
 * argument back.  *delivered (if non-NULL) tells whether the job's outcome
 * arrived (then its argument is the caller's again; otherwise the abandon
 * hook has it).  Returns asyncio_await's result.
 */
int asyncio__await_job(asyncio_future_t *f, void **value, int *delivered) {
  jobfut_t *jf = (jobfut_t *)f;
  lt_t *lt = f->loop->threads; /* exists: the job was submitted through it */
  jf->aprev = NULL;
  jf->anext = lt->awaited;
  if (lt->awaited) lt->awaited->aprev = jf;
  lt->awaited = jf;
  int rc = asyncio_await(f, value);
  awaited_unlink(lt, jf);
  if (delivered) *delivered = f->state == FUT_FINISHED;
  asyncio__future_unref(f);
  return rc;
}

ASYNCIO_API int asyncio_loop_run_in_executor(asyncio_loop_t *loop, asyncio_executor_t *ex,
                                             asyncio_thread_fn fn, void *arg,
                                             asyncio_future_t **out) {
  return asyncio__run_in_executor(loop, ex, fn, arg, NULL, out);
}

ASYNCIO_API int asyncio_to_thread(asyncio_thread_fn fn, void *arg, void **value) {
  asyncio_loop_t *loop = asyncio__running_loop;
  if (!loop || !loop->current) return ASYNCIO_ENOTASK;
  if (!fn) return -EINVAL;
  asyncio_future_t *f;
  int rc = asyncio__run_in_executor(loop, NULL, fn, arg, NULL, &f);
  if (rc) return rc;
  return asyncio__await_job(f, value, NULL);
}

ASYNCIO_API int asyncio_loop_set_default_executor(asyncio_loop_t *loop, asyncio_executor_t *ex) {
  if (!loop || !ex) return -EINVAL;
  int rc = asyncio__check_thread(loop);
  if (rc) return rc;
  lt_t *lt = lt_get(loop);
  if (!lt) return -ENOMEM;
  if (lt->default_ex == ex) return 0;
  asyncio_executor_t *old = lt->default_ex;
  int owned = lt->default_owned;
  atomic_fetch_add(&ex->users, 1);
  lt->default_ex = ex;
  lt->default_owned = 0;
  if (old && !owned) atomic_fetch_sub(&old->users, 1);
  if (old && owned) {
    /* Python leaves the old pool to the garbage collector.  Ours is joined
     * now if nothing uses it (its workers are idle), else at close. */
    if (atomic_load(&old->njobs) == 0) {
      executor_destroy(old);
    } else {
      old->retired_next = lt->retired;
      lt->retired = old;
    }
  }
  return 0;
}

/* ---- shutdown_default_executor -------------------------------------------- */

static void *joiner_main(void *p) {
  asyncio_loop_t *loop = p;
  lt_t *lt = loop->threads;
  executor_join(lt->shutting);
  asyncio__ts_node_t *n = lt->shutdown_node;
  lt->shutdown_node = NULL;
  if (asyncio__loop_ts_push(loop, n) != 0) lt->shutdown_node = n; /* close frees it */
  return NULL;
}

/* Loop thread: every worker of the old default executor has exited. */
static void shutdown_done(void *arg) {
  asyncio_loop_t *loop = arg;
  lt_t *lt = loop->threads;
  if (lt->joiner_running) {
    pthread_join(lt->joiner, NULL);
    lt->joiner_running = 0;
  }
  atomic_fetch_sub(&loop->external_pending, 1);
  if (lt->shutting) {
    /* Its workers are joined; jobs still undelivered may point at it. */
    if (atomic_load(&lt->shutting->njobs) == 0) {
      executor_destroy(lt->shutting);
    } else {
      lt->shutting->retired_next = lt->retired;
      lt->retired = lt->shutting;
    }
    lt->shutting = NULL;
  }
  for (size_t i = 0; i < lt->nwaiters; i++) {
    asyncio_future_t *f = lt->waiters[i];
    if (f->state == FUT_PENDING) asyncio__future_complete(f, FUT_FINISHED, 0, NULL, NULL);
    asyncio__future_unref(f);
  }
  lt->nwaiters = 0;
}

int asyncio__threads_shutdown_default(asyncio_loop_t *loop, asyncio_future_t **out) {
  *out = NULL;
  lt_t *lt = loop->threads;
  if (!lt) return 0; /* no thread was ever used */
  lt->shutdown_called = 1;
  int in_progress = lt->nwaiters > 0 || lt->joiner_running;
  if (!lt->default_ex && !in_progress) return 0;
  if (lt->default_ex && !lt->default_owned) {
    /* A borrowed executor is its owner's to shut down: just let go of it. */
    atomic_fetch_sub(&lt->default_ex->users, 1);
    lt->default_ex = NULL;
    if (!in_progress) return 0;
  }
  if (lt->nwaiters == lt->capwaiters) {
    size_t cap = lt->capwaiters ? lt->capwaiters * 2 : 4;
    void *p = asyncio__realloc(lt->waiters, lt->capwaiters * sizeof *lt->waiters,
                               cap * sizeof *lt->waiters);
    if (!p) return -ENOMEM;
    lt->waiters = p;
    lt->capwaiters = cap;
  }
  asyncio_future_t *f;
  int rc = asyncio_future_new(&f, loop);
  if (rc) return rc;
  if (!in_progress) {
    asyncio__ts_node_t *n = asyncio__alloc(sizeof *n);
    if (!n) {
      asyncio__future_unref(f);
      return -ENOMEM;
    }
    n->fn = shutdown_done;
    n->arg = loop;
    n->drop = NULL;
    lt->shutdown_node = n;
    lt->shutting = lt->default_ex;
    lt->default_ex = NULL;
    lt->default_owned = 0;
    atomic_fetch_add(&loop->external_pending, 1);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int prc = pthread_create(&lt->joiner, NULL, joiner_main, loop);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (prc != 0) {
      /*
       * No thread for the join.  Joining here would block the loop, and a
       * job that waits on the loop (run_coroutine_threadsafe) would then
       * never end: the executor stays the default, and the caller hears it.
       */
      lt->default_ex = lt->shutting;
      lt->default_owned = 1;
      lt->shutting = NULL;
      lt->shutdown_node = NULL;
      asyncio__free(n, sizeof *n);
      atomic_fetch_sub(&loop->external_pending, 1);
      asyncio__future_unref(f);
      return -EAGAIN;
    }
    lt->joiner_running = 1;
  }
  lt->waiters[lt->nwaiters++] = f;
  *out = asyncio_future_ref(f);
  return 0;
}

ASYNCIO_API int asyncio_loop_shutdown_default_executor(asyncio_loop_t *loop, double timeout) {
  asyncio_loop_t *running = asyncio__running_loop;
  if (!running || !running->current) return ASYNCIO_ENOTASK;
  if (!loop || isnan(timeout)) return -EINVAL;
  if (loop != running) return ASYNCIO_ENOTASK; /* a task of another loop */
  if (!lt_get(loop)) return -ENOMEM; /* to remember that shutdown was called */
  asyncio_future_t *f;
  int rc = asyncio__threads_shutdown_default(loop, &f);
  if (rc || !f) return rc;
  /* lt->waiters keeps f alive until the join ends or the loop closes, and the
   * task holds it while it waits: no reference on this stack, which a task
   * destroyed by loop close would leak.  The same goes for the timeout scope,
   * hence not the public, allocated one. */
  asyncio__future_unref(f);
  rc = timeout >= 0 ? asyncio__await_timeout(f, timeout, NULL) : asyncio_await(f, NULL);
  if (rc == -ETIMEDOUT) {
    /* Python warns (RuntimeWarning) and returns; the join goes on in the
     * background and asyncio_loop_close waits for what is left of it. */
    char msg[128];
    snprintf(msg, sizeof msg,
             "shutdown_default_executor: the default executor's threads were not joined "
             "within %g seconds",
             timeout);
    asyncio__loop_report(loop, msg, -ETIMEDOUT, NULL, NULL);
    return 1;
  }
  return rc < 0 ? rc : 0;
}

/* ---- concurrent futures ------------------------------------------------------ */

static void cf_unref(asyncio_cfuture_t *cf) {
  if (atomic_fetch_sub(&cf->refcnt, 1) != 1) return;
  pthread_cond_destroy(&cf->cond);
  pthread_mutex_destroy(&cf->lock);
  asyncio__free(cf, sizeof *cf);
}

/* Any thread: the first outcome wins; waiters wake. */
static int cf_set(asyncio_cfuture_t *cf, int code, void *value) {
  int set = 0;
  pthread_mutex_lock(&cf->lock);
  if (cf->state == FUT_PENDING) {
    cf->state = code == -ECANCELED ? FUT_CANCELLED : FUT_FINISHED;
    cf->code = code;
    cf->value = code >= 0 ? value : NULL;
    set = 1;
    pthread_cond_broadcast(&cf->cond);
  }
  pthread_mutex_unlock(&cf->lock);
  return set;
}

static void cf_unregister(lt_t *lt, asyncio_cfuture_t *cf) {
  if (cf->prev)
    cf->prev->next = cf->next;
  else
    lt->cfs = cf->next;
  if (cf->next) cf->next->prev = cf->prev;
  cf->prev = cf->next = NULL;
}

static void cf_task_done(asyncio_future_t *task, void *arg) {
  asyncio_cfuture_t *cf = arg;
  void *value = NULL;
  int rc = asyncio_future_result(task, &value);
  cf_set(cf, rc, value);
  cf_unregister(task->loop->threads, cf);
  cf->task = NULL;
  asyncio_task_free(task);
  cf_unref(cf);
}

static void cf_start(void *arg) {
  asyncio_cfuture_t *cf = arg;
  asyncio_loop_t *loop = cf->loop;
  pthread_mutex_lock(&cf->lock);
  int pending = cf->state == FUT_PENDING;
  pthread_mutex_unlock(&cf->lock);
  if (!pending) { /* cancelled before it started: the coroutine never runs */
    cf_unref(cf);
    return;
  }
  lt_t *lt = lt_get(loop);
  asyncio_task_t *task = NULL;
  int rc = lt ? asyncio_loop_create_task(loop, &task, cf->fn, cf->arg, NULL) : -ENOMEM;
  if (rc == 0) {
    rc = asyncio_future_add_done_callback(task, cf_task_done, cf);
    if (rc) {
      asyncio_task_cancel(task, NULL);
      asyncio_task_free(task);
    }
  }
  if (rc) {
    cf_set(cf, rc, NULL);
    cf_unref(cf);
    return;
  }
  cf->task = task;
  cf->next = lt->cfs;
  if (cf->next) cf->next->prev = cf;
  lt->cfs = cf;
}

static void cf_drop_start(void *arg) {
  asyncio_cfuture_t *cf = arg;
  cf_set(cf, ASYNCIO_ECLOSED, NULL);
  cf_unref(cf);
}

static void cf_cancel_task(void *arg) {
  asyncio_cfuture_t *cf = arg;
  if (cf->task && !asyncio_future_done(cf->task)) asyncio_task_cancel(cf->task, NULL);
  cf_unref(cf);
}

static void cf_drop_ref(void *arg) { cf_unref(arg); }

ASYNCIO_API int asyncio_run_coroutine_threadsafe(asyncio_loop_t *loop, asyncio_coro_fn fn,
                                                 void *arg, asyncio_cfuture_t **out) {
  if (out) *out = NULL;
  if (!loop || !fn || !out) return -EINVAL;
  asyncio_cfuture_t *cf = asyncio__calloc(sizeof *cf);
  if (!cf) return -ENOMEM;
  asyncio__ts_node_t *n = asyncio__alloc(sizeof *n);
  if (!n) {
    asyncio__free(cf, sizeof *cf);
    return -ENOMEM;
  }
  pthread_mutex_init(&cf->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&cf->cond, &ca);
  pthread_condattr_destroy(&ca);
  atomic_init(&cf->refcnt, 2); /* the caller's and the loop's */
  cf->loop = loop;
  cf->fn = fn;
  cf->arg = arg;
  n->fn = cf_start;
  n->arg = cf;
  n->drop = cf_drop_start;
  int rc = asyncio__loop_ts_push(loop, n);
  if (rc) {
    asyncio__free(n, sizeof *n);
    pthread_cond_destroy(&cf->cond);
    pthread_mutex_destroy(&cf->lock);
    asyncio__free(cf, sizeof *cf);
    return rc;
  }
  *out = cf;
  return 0;
}

ASYNCIO_API int asyncio_cfuture_wait(asyncio_cfuture_t *cf, double timeout) {
  if (!cf || timeout != timeout) return -EINVAL;
  if (timeout > 1e9) timeout = -1; /* beyond time_t's comfort: forever */
  struct timespec dl;
  if (timeout >= 0) {
    clock_gettime(CLOCK_MONOTONIC, &dl);
    double whole = (double)(time_t)timeout;
    dl.tv_sec += (time_t)timeout;
    dl.tv_nsec += (long)((timeout - whole) * 1e9);
    if (dl.tv_nsec >= 1000000000L) {
      dl.tv_sec++;
      dl.tv_nsec -= 1000000000L;
    }
  }
  int rc = 0;
  pthread_mutex_lock(&cf->lock);
  if (cf->state == FUT_PENDING && timeout != 0 && asyncio__running_loop == cf->loop)
    rc = -EDEADLK; /* the loop that must finish it is this thread's */
  while (rc == 0 && cf->state == FUT_PENDING) {
    if (timeout < 0) {
      pthread_cond_wait(&cf->cond, &cf->lock);
    } else if (pthread_cond_timedwait(&cf->cond, &cf->lock, &dl) == ETIMEDOUT &&
               cf->state == FUT_PENDING) {
      rc = -ETIMEDOUT;
    }
  }
  pthread_mutex_unlock(&cf->lock);
  return rc;
}

ASYNCIO_API int asyncio_cfuture_result(asyncio_cfuture_t *cf, double timeout, void **value) {
  int rc = asyncio_cfuture_wait(cf, timeout);
  if (rc) return rc;
  pthread_mutex_lock(&cf->lock);
  rc = cf->code;
  if (rc >= 0 && value) *value = cf->value;
  pthread_mutex_unlock(&cf->lock);
  return rc;
}

ASYNCIO_API int asyncio_cfuture_cancel(asyncio_cfuture_t *cf) {
  if (!cf) return -EINVAL;
  pthread_mutex_lock(&cf->lock);
  if (cf->state != FUT_PENDING) {
    pthread_mutex_unlock(&cf->lock);
    return 0;
  }
  cf->state = FUT_CANCELLED;
  cf->code = -ECANCELED;
  pthread_cond_broadcast(&cf->cond);
  /*
   * Still under the lock: the loop completes every cfuture (under this lock)
   * before it closes, so it is alive while we push.  Without memory for the
   * node the task is simply not told; its outcome is discarded anyway.
   */
  asyncio__ts_node_t *n = asyncio__alloc(sizeof *n);
  if (n) {
    atomic_fetch_add(&cf->refcnt, 1);
    n->fn = cf_cancel_task;
    n->arg = cf;
    n->drop = cf_drop_ref;
    if (asyncio__loop_ts_push(cf->loop, n) != 0) {
      atomic_fetch_sub(&cf->refcnt, 1);
      asyncio__free(n, sizeof *n);
    }
  }
  pthread_mutex_unlock(&cf->lock);
  return 1;
}

ASYNCIO_API bool asyncio_cfuture_done(asyncio_cfuture_t *cf) {
  if (!cf) return false;
  pthread_mutex_lock(&cf->lock);
  bool d = cf->state != FUT_PENDING;
  pthread_mutex_unlock(&cf->lock);
  return d;
}

ASYNCIO_API bool asyncio_cfuture_cancelled(asyncio_cfuture_t *cf) {
  if (!cf) return false;
  pthread_mutex_lock(&cf->lock);
  bool c = cf->state == FUT_CANCELLED;
  pthread_mutex_unlock(&cf->lock);
  return c;
}

ASYNCIO_API int asyncio_cfuture_free(asyncio_cfuture_t *cf) {
  if (!cf) return -EINVAL;
  cf_unref(cf);
  return 0;
}

/* ---- loop close -------------------------------------------------------------- */

void asyncio__threads_loop_close(asyncio_loop_t *loop) {
  lt_t *lt = loop->threads;
  if (!lt) return;
  /* Jobs that no worker took yet never run. */
  for (job_t *j = lt->jobs; j; j = j->lnext) {
    if (j->delivered || atomic_load(&j->state) != J_QUEUED) continue;
    pthread_mutex_lock(&j->ex->lock);
    int dropped = dequeue_locked(j->ex, j);
    pthread_mutex_unlock(&j->ex->lock);
    if (dropped) job_dropped(j); /* freed below */
  }
  /* Started cfutures complete before the wait below: a running job may be
   * blocked on one. */
  while (lt->cfs) {
    asyncio_cfuture_t *cf = lt->cfs;
    cf_unregister(lt, cf);
    if (asyncio_future_done(cf->task)) {
      /* Finished, but its done callback was still queued. */
      void *value = NULL;
      int rc = asyncio_future_result(cf->task, &value);
      cf_set(cf, rc, value);
    } else {
      cf_set(cf, ASYNCIO_ECLOSED, NULL);
    }
    asyncio_task_free(cf->task);
    cf->task = NULL;
    cf_unref(cf);
  }
  /* Running ones are waited for: a thread function cannot be interrupted. */
  pthread_mutex_lock(&lt->lock);
  while (lt->inflight > 0) pthread_cond_wait(&lt->idle, &lt->lock);
  pthread_mutex_unlock(&lt->lock);
  if (lt->joiner_running) {
    pthread_join(lt->joiner, NULL);
    lt->joiner_running = 0;
  }
  /* Outcomes handed back but never delivered are abandoned; close already
   * freed the nodes that reached the threadsafe queue. */
  while (lt->jobs) {
    job_t *j = lt->jobs;
    if (!j->delivered) {
      j->delivered = 1;
      atomic_fetch_sub(&loop->external_pending, 1);
      if (j->abandon) j->abandon(j->arg, j->rc, j->value);
    }
    job_free(j);
  }
  if (lt->default_ex) {
    if (lt->default_owned)
      executor_destroy(lt->default_ex);
    else
      atomic_fetch_sub(&lt->default_ex->users, 1);
  }
  if (lt->shutting) executor_destroy(lt->shutting);
  while (lt->retired) {
    asyncio_executor_t *ex = lt->retired;
    lt->retired = ex->retired_next;
    executor_destroy(ex);
  }
  if (lt->shutdown_node) asyncio__free(lt->shutdown_node, sizeof *lt->shutdown_node);
  for (size_t i = 0; i < lt->nwaiters; i++) asyncio__future_unref(lt->waiters[i]);
  /*
   * Their coroutines never resume: the tasks die pending, after this.  An
   * outcome already delivered to one of them (its wakeup was still queued)
   * would have been taken by the coroutine: the abandon hook releases it.
   * Undelivered ones were abandoned with their jobs above.
   */
  while (lt->awaited) {
    jobfut_t *jf = lt->awaited;
    awaited_unlink(lt, jf);
    if (jf->f.state == FUT_FINISHED && jf->abandon)
      jf->abandon(jf->arg, jf->f.code, jf->f.value);
    asyncio__future_unref(&jf->f);
  }
  asyncio__free(lt->waiters, lt->capwaiters * sizeof *lt->waiters);
  pthread_cond_destroy(&lt->idle);
  pthread_mutex_destroy(&lt->lock);
  asyncio__free(lt, sizeof *lt);
  loop->threads = NULL;
}
