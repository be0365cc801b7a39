/*
 * subprocess.c - child processes (Python: asyncio.subprocess
 * create_subprocess_exec / create_subprocess_shell / Process, over
 * base_subprocess.BaseSubprocessTransport and unix_events'
 * _UnixSubprocessTransport with PidfdChildWatcher).
 *
 * Starting and the exit watch are spawn.c's (shared with the protocol
 * form, base_subprocess.c).  The exit status is set first (returncode);
 * the wait() waiters are woken once the process exited and every pipe
 * transport reached connection_lost (_try_finish -> _call_connection_lost
 * wakes _exit_waiters).
 *
 * Ownership.  A process is a loop resource (asyncio__res_t).  It stays
 * allocated while the caller holds the handle or until it is finished
 * (exited and all pipes lost), whichever is later: a handle freed early
 * leaves a detached record that goes by itself once the child is reaped.
 * At loop close a running child is killed and reaped (blocking, but a
 * SIGKILLed child dies at once).  Pipe streams are made by streams.c
 * (asyncio__stream_open_pipe); their connection_lost calls pipe_lost.
 */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <asyncio/subprocess.h>

#include "selector_events.h"
#include "spawn.h"

/* streams.c */
int asyncio__stream_open_pipe(asyncio_loop_t *loop, int fd, int write, size_t limit,
                              void (*on_lost)(void *arg, int error), void *arg,
                              asyncio_transport_t **t, asyncio_stream_reader_t **r,
                              asyncio_stream_writer_t **w, int *fd_taken);
/* streams.c: the pipe streams belong to the caller's process handle from now on. */
void asyncio__stream_pipe_handed(asyncio_stream_reader_t *r, asyncio_stream_writer_t *w);

struct asyncio_process {
  asyncio__res_t res;
  asyncio_loop_t *loop; /* NULL once orphaned by loop close */
  asyncio__child_t child; /* pid, returncode, exited, the watch (spawn.c) */
  asyncio_stream_writer_t *in;
  asyncio_stream_reader_t *out, *err;
  uint32_t npipes; /* pipe transports not yet lost */
  uint32_t busy;   /* tasks in wait / communicate */
  asyncio__waitq_t exitq;
  uint8_t finished; /* exited and every pipe lost */
  uint8_t user;     /* the caller holds the handle */
  uint8_t orphan;   /* the loop was closed */
  uint8_t creating; /* create() still runs: it holds the record, not the caller */
  asyncio_task_t *helper; /* communicate's stderr reader while it runs: loop close frees it */
  int unconnected[3]; /* while creating: our pipe ends not yet given to a transport, or -1 */
};

/* ---- lifetime ------------------------------------------------------------------------ */

static void proc_free(asyncio_process_t *p) {
  if (!p->orphan) asyncio__res_unlink(p->loop, &p->res);
  asyncio__free(p, sizeof *p);
}

/* _try_finish: exited and all pipes lost -> wake wait(); a detached record goes. */
static void maybe_finish(asyncio_process_t *p) {
  if (!p->child.exited || p->npipes || p->finished) return;
  p->finished = 1;
  for (asyncio__waiter_t *w = p->exitq.head; w; w = w->next) asyncio__waiter_wake(w);
  if (!p->user) proc_free(p);
}

static void child_exited(asyncio__child_t *c) {
  maybe_finish((asyncio_process_t *)((char *)c - offsetof(asyncio_process_t, child)));
}

/* Loop close: kill and reap a child still running; forget waiters and streams. */
static void proc_destroy(asyncio__res_t *r) {
  asyncio_process_t *p = (asyncio_process_t *)r;
  asyncio__res_unlink(p->loop, r);
  asyncio__spawn_kill_reap(&p->child);
  p->exitq = (asyncio__waitq_t){0}; /* the waiting tasks were destroyed */
  /* communicate's task, destroyed with its frame, held the helper's handle. */
  if (p->helper) asyncio_task_free(p->helper);
  p->helper = NULL;
  p->busy = 0;
  p->npipes = 0;
  p->finished = 1;
  p->orphan = 1;
  p->loop = NULL;
  /*
   * Closed while create() waited to connect a pipe: its task is gone, so
   * the pipe ends it had not reached yet and the record itself are ours
   * to free (the connected ones belong to their transports).
   */
  if (p->creating) {
    for (int i = 0; i < 3; i++)
      if (p->unconnected[i] >= 0) close(p->unconnected[i]);
    p->user = 0;
  }
  if (!p->user) asyncio__free(p, sizeof *p);
}

static void pipe_lost(void *arg, int error) {
  (void)error;
  asyncio_process_t *p = arg;
  p->npipes--;
  maybe_finish(p);
}

/* ---- starting ------------------------------------------------------------------------- */

static int create(asyncio_process_t **out, const char *file, char *const argv[],
                  const asyncio_subprocess_options_t *o) {
  if (!out) return -EINVAL;
  *out = NULL;
  if (!file || !argv || !argv[0]) return -EINVAL;
  asyncio_subprocess_options_t def = {0};
  if (!o) o = &def;
  int modes[3] = {o->stdin_mode, o->stdout_mode, o->stderr_mode};
  int rc = asyncio__spawn_check_modes(modes);
  if (rc) return rc;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  if (!loop || !loop->current) return ASYNCIO_ENOTASK;
  asyncio__net_t *net;
  rc = asyncio__net_get(loop, &net);
  if (rc) return rc;

  int parent[3];
  pid_t pid = 0;
  rc = asyncio__spawn_child(file, argv, o->env, o->cwd, modes, parent, &pid);
  if (rc) return rc;
  asyncio_process_t *p = asyncio__calloc(sizeof *p);
  if (!p) rc = -ENOMEM;
  if (!rc) {
    p->loop = loop;
    p->user = 1;
    p->creating = 1;
    for (int i = 0; i < 3; i++) p->unconnected[i] = parent[i];
    p->res.destroy = proc_destroy;
    rc = asyncio__spawn_watch(&p->child, loop, pid, child_exited);
    if (rc) {
      asyncio__free(p, sizeof *p);
      p = NULL;
    } else {
      asyncio__res_link(loop, &p->res);
    }
  }
  if (rc) {
    asyncio__spawn_abort(pid, parent);
    return rc;
  }

  /* _connect_pipes: stdin, stdout, stderr, each awaiting connection_made. */
  if (parent[0] >= 0) asyncio__spawn_ignore_sigpipe();
  /* Counted before the first suspension: the child may exit meanwhile, and
   * must not look finished while its pipes are still to come. */
  for (int i = 0; i < 3; i++) p->npipes += parent[i] >= 0;
  for (int i = 0; i < 3; i++) {
    if (parent[i] < 0) continue;
    if (rc) {
      close(parent[i]);
      p->unconnected[i] = -1;
      p->npipes--;
      continue;
    }
    asyncio_transport_t *t;
    asyncio_stream_reader_t *r;
    asyncio_stream_writer_t *w;
    int taken = 0;
    /* From here the fd is the transport's, or closed below: the wait for
     * connection_made comes after the transport took it. */
    p->unconnected[i] = -1;
    rc = asyncio__stream_open_pipe(loop, parent[i], i == 0, o->limit, pipe_lost, p, &t, &r, &w,
                                   &taken);
    if (rc) {
      if (!taken) close(parent[i]);
      p->npipes--; /* no transport, or one that was lost before on_lost was set */
      continue;
    }
    if (i == 0) p->in = w;
    else if (i == 1) p->out = r;
    else p->err = r;
  }
  p->creating = 0;
  if (rc) {
    /* Cancelled or failed after the start: kill it; the record reaps it and goes. */
    if (!p->child.exited) kill(p->child.pid, SIGKILL);
    maybe_finish(p); /* the pipes that never came may have been the last */
    asyncio_process_free(p);
    return rc;
  }
  asyncio__stream_pipe_handed(p->out, p->in);
  asyncio__stream_pipe_handed(p->err, NULL);
  *out = p;
  return 0;
}

ASYNCIO_API int asyncio_create_subprocess_exec(asyncio_process_t **out, const char *file,
                                               char *const argv[],
                                               const asyncio_subprocess_options_t *options) {
  return create(out, file, argv, options);
}

ASYNCIO_API int asyncio_create_subprocess_shell(asyncio_process_t **out, const char *cmd,
                                                const asyncio_subprocess_options_t *options) {
  if (!cmd) {
    if (out) *out = NULL;
    return -EINVAL;
  }
  char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
  return create(out, "/bin/sh", argv, options);
}

/* ---- Process ------------------------------------------------------------------------- */

static int proc_check(const asyncio_process_t *p) {
  if (!p || !p->user) return -EINVAL;
  if (p->orphan) return ASYNCIO_ECLOSED;
  return asyncio__check_owner(p->loop);
}

static int can_wait(const asyncio_process_t *p) {
  if (!asyncio__running_loop || !asyncio__running_loop->current) return ASYNCIO_ENOTASK;
  if (asyncio__running_loop != p->loop) return -EINVAL;
  return 0;
}

ASYNCIO_API pid_t asyncio_process_pid(const asyncio_process_t *process) {
  if (!process || !process->user) return -EINVAL;
  return process->child.pid;
}

ASYNCIO_API int asyncio_process_returncode(const asyncio_process_t *process, int *returncode) {
  if (!process || !process->user || !returncode) return -EINVAL;
  if (!process->child.exited) return 0;
  *returncode = process->child.returncode;
  return 1;
}

ASYNCIO_API int asyncio_process_wait(asyncio_process_t *process, int *returncode) {
  int rc = proc_check(process);
  if (rc) return rc;
  asyncio_process_t *p = process;
  /* _wait: at once once the exit is known; else woken by _call_connection_lost. */
  if (!p->child.exited) {
    if ((rc = can_wait(p))) return rc;
    asyncio__waiter_t w;
    memset(&w, 0, sizeof w);
    w.f.refcnt = 1;
    w.f.loop = p->loop;
    asyncio__waitq_push(&p->exitq, &w);
    p->busy++;
    rc = asyncio_await(&w.f, NULL);
    /* Not reached if the loop was closed meanwhile (the task is destroyed). */
    p->busy--;
    asyncio__waitq_remove(&p->exitq, &w);
    asyncio__strfree(w.f.msg);
    if (rc < 0) return -ECANCELED;
  }
  if (returncode) *returncode = p->child.returncode;
  return 0;
}

ASYNCIO_API int asyncio_process_send_signal(asyncio_process_t *process, int sig) {
  int rc = proc_check(process);
  if (rc) return rc;
  return asyncio__spawn_signal(&process->child, sig);
}

ASYNCIO_API int asyncio_process_terminate(asyncio_process_t *process) {
  return asyncio_process_send_signal(process, SIGTERM);
}

ASYNCIO_API int asyncio_process_kill(asyncio_process_t *process) {
  return asyncio_process_send_signal(process, SIGKILL);
}

ASYNCIO_API asyncio_stream_writer_t *asyncio_process_stdin(const asyncio_process_t *process) {
  return process && process->user ? process->in : NULL;
}

ASYNCIO_API asyncio_stream_reader_t *asyncio_process_stdout(const asyncio_process_t *process) {
  return process && process->user ? process->out : NULL;
}

ASYNCIO_API asyncio_stream_reader_t *asyncio_process_stderr(const asyncio_process_t *process) {
  return process && process->user ? process->err : NULL;
}

/* ---- communicate ---------------------------------------------------------------------- */

typedef struct reading {
  asyncio_stream_reader_t *r;
  char *data;
  size_t len;
  int rc;
} reading_t;

/* The outcome stays in rd, so a failed helper task leaves no unretrieved exception. */
static int read_main(void *arg) {
  reading_t *rd = arg;
  rd->rc = asyncio_stream_read_all(rd->r, &rd->data, &rd->len);
  return 0;
}

static bool ignorable(int rc) {
  return rc == -EPIPE || rc == -ECONNRESET || rc == ASYNCIO_ECLOSED;
}

ASYNCIO_API int asyncio_process_communicate(asyncio_process_t *process, const void *input,
                                            size_t len, char **out, size_t *outlen, char **err,
                                            size_t *errlen) {
  if ((!out) != (!outlen) || (!err) != (!errlen) || (!input && len)) return -EINVAL;
  int rc = proc_check(process);
  if (rc) return rc;
  asyncio_process_t *p = process;
  if ((rc = can_wait(p))) return rc;
  if (out) *out = NULL, *outlen = 0;
  if (err) *err = NULL, *errlen = 0;
  p->busy++;
  /* _feed_stdin: the transport keeps what the pipe does not take and sends
   * it before closing, so writing never waits here; reading goes on at once. */
  if (p->in) {
    if (len) {
      rc = asyncio_stream_write(p->in, input, len);
      if (ignorable(rc)) rc = 0;
    }
    if (!rc) asyncio_stream_close(p->in);
  }
  reading_t ro = {p->out, NULL, 0, 0}, re = {p->err, NULL, 0, 0};
  asyncio_task_t *helper = NULL;
  if (!rc && ro.r && re.r) rc = asyncio_create_task(&helper, read_main, &re, NULL);
  if (helper && !p->helper) p->helper = helper;
  if (!rc) {
    reading_t *mine = ro.r ? &ro : re.r ? &re : NULL;
    if (mine) {
      read_main(mine);
      rc = mine->rc;
    }
  }
  if (helper) {
    if (rc) asyncio_task_cancel(helper, NULL);
    while (!asyncio_future_done(helper)) {
      int wrc = asyncio_await(helper, NULL);
      if (wrc == -ECANCELED && !rc) rc = -ECANCELED;
    }
    if (!rc) rc = re.rc;
    if (p->helper == helper) p->helper = NULL;
    asyncio_task_free(helper);
  }
  if (!rc) rc = asyncio_process_wait(p, NULL);
  p->busy--;
  if (rc) {
    asyncio_stream_free_data(ro.data, ro.len);
    asyncio_stream_free_data(re.data, re.len);
    return rc;
  }
  if (out) *out = ro.data, *outlen = ro.len;
  else asyncio_stream_free_data(ro.data, ro.len);
  if (err) *err = re.data, *errlen = re.len;
  else asyncio_stream_free_data(re.data, re.len);
  return 0;
}

/* ---- free ----------------------------------------------------------------------------- */

ASYNCIO_API int asyncio_process_free(asyncio_process_t *process) {
  if (!process || !process->user) return -EINVAL;
  asyncio_process_t *p = process;
  if (!p->orphan) {
    int rc = asyncio__check_owner(p->loop);
    if (rc) return rc;
    if (p->busy) return -EBUSY;
  }
  /* Readers first: freeing one only drops data; freeing stdin closes it. */
  if (p->out) {
    int rc = asyncio_stream_reader_free(p->out);
    if (rc) return rc;
    p->out = NULL;
  }
  if (p->err) {
    int rc = asyncio_stream_reader_free(p->err);
    if (rc) return rc;
    p->err = NULL;
  }
  if (p->in) {
    int rc = asyncio_stream_writer_free(p->in);
    if (rc) return rc;
    p->in = NULL;
  }
  p->user = 0;
  if (p->orphan || p->finished) {
    if (p->orphan) asyncio__free(p, sizeof *p);
    else proc_free(p);
  }
  return 0;
}
