/*
 * subprocess.c - child processes (Python: asyncio.subprocess
 * create_subprocess_exec / create_subprocess_shell / Process, over
 * base_subprocess.BaseSubprocessTransport and unix_events'
 * _UnixSubprocessTransport with PidfdChildWatcher).
 *
 * Starting.  fork + execve, with every signal blocked around fork so that
 * no handler of the parent runs in the child.  The child resets caught
 * signals (and SIGPIPE / SIGXFSZ) to their defaults, moves its descriptors
 * above 2 before dup2-ing them onto 0, 1, 2 (so a source that is itself 0,
 * 1 or 2 cannot be clobbered), marks everything >= 3 close-on-exec
 * (close_fds=True), changes directory and tries each PATH candidate with
 * execve.  Until exec the child calls only async-signal-safe functions:
 * the PATH candidates are built by the parent.  An exec failure travels
 * back as an errno on a close-on-exec pipe (EOF there means exec worked),
 * so the call returns it, as Popen raises it; the failed child is reaped
 * at once.
 *
 * Exit.  A pidfd on the loop's reader list (PidfdChildWatcher); readable
 * means exited, and waitpid(pid, WNOHANG) reaps it.  Without pidfd_open
 * (-ENOSYS) a timer polls waitpid instead.  The exit status is set first
 * (returncode); the wait() waiters are woken once the process exited and
 * every pipe transport reached connection_lost (_try_finish ->
 * _call_connection_lost wakes _exit_waiters).
 *
 * Ownership.  A process is a loop resource (asyncio__res_t).  It stays
 * allocated while the caller holds the handle or until it is finished
 * (exited and all pipes lost), whichever is later: a handle freed early
 * leaves a detached record that goes by itself once the child is reaped.
 * At loop close a running child is killed and reaped (blocking, but a
 * SIGKILLed child dies at once).  Pipe streams are made by streams.c
 * (asyncio__stream_open_pipe); their connection_lost calls pipe_lost.
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asyncio/subprocess.h>

#include "selector_events.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char **environ;

/* streams.c */
int asyncio__stream_open_pipe(asyncio_loop_t *loop, int fd, int write, size_t limit,
                              void (*on_lost)(void *arg, int error), void *arg,
                              asyncio_transport_t **t, asyncio_stream_reader_t **r,
                              asyncio_stream_writer_t **w, int *fd_taken);

/* Tests only: act as if pidfd_open were missing, to run the polling fallback. */
ASYNCIO_API int asyncio__subprocess_no_pidfd;
int asyncio__subprocess_no_pidfd = 0;

#define POLL_MIN 0.001
#define POLL_MAX 0.05

struct asyncio_process {
  asyncio__res_t res;
  asyncio_loop_t *loop; /* NULL once orphaned by loop close */
  pid_t pid;
  int pidfd;           /* -1: none (exited, or the polling fallback) */
  int returncode;
  asyncio_handle_t poll; /* the fallback's timer */
  double poll_delay;
  asyncio_stream_writer_t *in;
  asyncio_stream_reader_t *out, *err;
  uint32_t npipes; /* pipe transports not yet lost */
  uint32_t busy;   /* tasks in wait / communicate */
  asyncio__waitq_t exitq;
  uint8_t exited;
  uint8_t finished; /* exited and every pipe lost */
  uint8_t user;     /* the caller holds the handle */
  uint8_t orphan;   /* the loop was closed */
};

/* ---- lifetime ------------------------------------------------------------------------ */

static void proc_free(asyncio_process_t *p) {
  if (!p->orphan) asyncio__res_unlink(p->loop, &p->res);
  asyncio__free(p, sizeof *p);
}

static int status_code(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return -WTERMSIG(st);
  return 255;
}

static void stop_watching(asyncio_process_t *p) {
  if (p->pidfd >= 0) {
    asyncio_loop_remove_reader(p->loop, p->pidfd);
    close(p->pidfd);
    p->pidfd = -1;
  }
  asyncio_handle_cancel(p->poll);
  p->poll = ASYNCIO_HANDLE_NONE;
}

/* _try_finish: exited and all pipes lost -> wake wait(); a detached record goes. */
static void maybe_finish(asyncio_process_t *p) {
  if (!p->exited || p->npipes || p->finished) return;
  p->finished = 1;
  for (asyncio__waiter_t *w = p->exitq.head; w; w = w->next) asyncio__waiter_wake(w);
  if (!p->user) proc_free(p);
}

/* Reaps the child if it has exited: 1 reaped, 0 still running. */
static int try_reap(asyncio_process_t *p) {
  int st = 0;
  pid_t r;
  do r = waitpid(p->pid, &st, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == 0) return 0;
  /* ECHILD: someone else reaped it; Python reports 255 then. */
  p->returncode = r == p->pid ? status_code(st) : 255;
  p->exited = 1;
  return 1;
}

static void pidfd_ready(int fd, void *arg) {
  (void)fd;
  asyncio_process_t *p = arg;
  if (!try_reap(p)) return;
  stop_watching(p);
  maybe_finish(p);
}

static void poll_tick(void *arg) {
  asyncio_process_t *p = arg;
  p->poll = ASYNCIO_HANDLE_NONE;
  if (try_reap(p)) {
    maybe_finish(p);
    return;
  }
  p->poll_delay = p->poll_delay * 2 < POLL_MAX ? p->poll_delay * 2 : POLL_MAX;
  if (asyncio_loop_call_later(p->loop, p->poll_delay, poll_tick, p, &p->poll) < 0) {
    /* Out of memory: keep trying on the next iteration's timer slot. */
    p->poll = ASYNCIO_HANDLE_NONE;
    asyncio_loop_call_soon(p->loop, poll_tick, p, &p->poll);
  }
}

/* Starts watching for the exit: a pidfd, else the polling timer. */
static int watch(asyncio_process_t *p) {
  int fd = asyncio__subprocess_no_pidfd ? (errno = ENOSYS, -1)
                                        : (int)syscall(SYS_pidfd_open, p->pid, 0);
  if (fd >= 0) {
    int fl = fcntl(fd, F_GETFD);
    if (fl >= 0) fcntl(fd, F_SETFD, fl | FD_CLOEXEC); /* pidfds are CLOEXEC; be sure */
    int rc = asyncio_loop_add_reader(p->loop, fd, pidfd_ready, p);
    if (rc < 0) {
      close(fd);
      return rc;
    }
    p->pidfd = fd;
    return 0;
  }
  if (errno != ENOSYS && errno != EPERM) return -errno;
  p->poll_delay = POLL_MIN;
  return asyncio_loop_call_later(p->loop, POLL_MIN, poll_tick, p, &p->poll);
}

/* Loop close: kill and reap a child still running; forget waiters and streams. */
static void proc_destroy(asyncio__res_t *r) {
  asyncio_process_t *p = (asyncio_process_t *)r;
  asyncio__res_unlink(p->loop, r);
  if (p->pidfd >= 0) {
    asyncio_loop_remove_reader(p->loop, p->pidfd);
    close(p->pidfd);
    p->pidfd = -1;
  }
  p->poll = ASYNCIO_HANDLE_NONE; /* the loop drops its timers itself */
  if (!p->exited) {
    int st = 0;
    pid_t w;
    kill(p->pid, SIGKILL);
    do w = waitpid(p->pid, &st, 0);
    while (w < 0 && errno == EINTR);
    p->returncode = w == p->pid ? status_code(st) : 255;
    p->exited = 1;
  }
  p->exitq = (asyncio__waitq_t){0}; /* the waiting tasks were destroyed */
  p->busy = 0;
  p->npipes = 0;
  p->finished = 1;
  p->orphan = 1;
  p->loop = NULL;
  if (!p->user) asyncio__free(p, sizeof *p);
}

static void pipe_lost(void *arg, int error) {
  (void)error;
  asyncio_process_t *p = arg;
  p->npipes--;
  maybe_finish(p);
}

/* ---- starting ------------------------------------------------------------------------- */

typedef struct spawn {
  char **paths; /* execve candidates */
  size_t npaths;
  char *const *argv;
  char *const *envp;
  const char *cwd;
  int src[3]; /* descriptor for 0, 1, 2: >= 0 dup it, -1 inherit, -2 (stderr) = stdout */
  int errw;   /* the error pipe's write end */
  sigset_t mask;
} spawn_t;

static void paths_free(spawn_t *s) {
  for (size_t i = 0; i < s->npaths; i++) asyncio__strfree(s->paths[i]);
  if (s->paths) asyncio__free(s->paths, s->npaths * sizeof *s->paths);
  s->paths = NULL;
  s->npaths = 0;
}

static char *join(const char *dir, size_t dlen, const char *file) {
  size_t flen = strlen(file);
  if (!dlen) dir = ".", dlen = 1; /* an empty PATH entry is the current directory */
  char *p = asyncio__alloc(dlen + 1 + flen + 1);
  if (!p) return NULL;
  memcpy(p, dir, dlen);
  p[dlen] = '/';
  memcpy(p + dlen + 1, file, flen + 1);
  return p;
}

/* os.get_exec_path(env) + the candidates execvp would try. */
static int build_paths(spawn_t *s, const char *file, char *const *env) {
  if (!*file) return -ENOENT;
  if (strchr(file, '/')) {
    s->paths = asyncio__alloc(sizeof *s->paths);
    if (!s->paths) return -ENOMEM;
    s->paths[0] = asyncio__strdup(file);
    if (!s->paths[0]) {
      asyncio__free(s->paths, sizeof *s->paths);
      s->paths = NULL;
      return -ENOMEM;
    }
    s->npaths = 1;
    return 0;
  }
  const char *path = NULL;
  if (env) {
    for (char *const *e = env; *e; e++)
      if (!strncmp(*e, "PATH=", 5)) path = *e + 5;
  } else {
    path = getenv("PATH");
  }
  if (!path) path = "/bin:/usr/bin"; /* os.defpath */
  size_t n = 1;
  for (const char *c = path; *c; c++) n += *c == ':';
  s->paths = asyncio__alloc(n * sizeof *s->paths);
  if (!s->paths) return -ENOMEM;
  const char *c = path;
  for (size_t i = 0; i < n; i++) {
    const char *e = strchr(c, ':');
    size_t dlen = e ? (size_t)(e - c) : strlen(c);
    s->paths[i] = join(c, dlen, file);
    if (!s->paths[i]) {
      for (size_t j = 0; j < i; j++) asyncio__strfree(s->paths[j]);
      asyncio__free(s->paths, n * sizeof *s->paths);
      s->paths = NULL;
      return -ENOMEM;
    }
    c = e ? e + 1 : c + dlen;
  }
  s->npaths = n;
  return 0;
}

/* The child, between fork and exec: async-signal-safe calls only. */
static void child_report(const spawn_t *s, int err) {
  ssize_t w;
  do w = write(s->errw, &err, sizeof err);
  while (w < 0 && errno == EINTR);
  _exit(127);
}

__attribute__((noreturn)) static void child_exec(spawn_t *s) {
  for (int sig = 1; sig < NSIG; sig++) {
    struct sigaction sa;
    if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &sa) < 0) continue;
    bool caught = sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN;
    bool restore = (sig == SIGPIPE || sig == SIGXFSZ) && sa.sa_handler == SIG_IGN;
    if (caught || restore) {
      memset(&sa, 0, sizeof sa);
      sa.sa_handler = SIG_DFL;
      sigaction(sig, &sa, NULL);
    }
  }
  int src[3];
  for (int i = 0; i < 3; i++) {
    src[i] = s->src[i];
    if (src[i] >= 0) {
      src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 3);
      if (src[i] < 0) child_report(s, errno);
    }
  }
  for (int i = 0; i < 3; i++) {
    int from = src[i] == -2 ? 1 : src[i];
    if (from >= 0 && dup2(from, i) < 0) child_report(s, errno);
  }
  syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC); /* best effort: close_fds */
  if (s->cwd && chdir(s->cwd) < 0) child_report(s, errno);
  sigprocmask(SIG_SETMASK, &s->mask, NULL);
  int err = ENOENT;
  bool eacces = false;
  for (size_t i = 0; i < s->npaths; i++) {
    execve(s->paths[i], s->argv, s->envp);
    err = errno;
    if (err == EACCES) {
      eacces = true;
    } else if (err != ENOENT && err != ENOTDIR && err != ELOOP && err != ENAMETOOLONG &&
               err != ENODEV && err != ETIMEDOUT && err != ESTALE) {
      break; /* as execvp: a real error stops the search */
    }
  }
  if (eacces && err != ENOEXEC && (err == ENOENT || err == ENOTDIR)) err = EACCES;
  child_report(s, err);
  _exit(127);
}

/*
 * Forks and execs; returns the pid, or an error (the child, if any, is
 * reaped).  The caller's descriptors are untouched.
 */
static int fork_exec(spawn_t *s, pid_t *pid) {
  int ep[2];
  if (pipe2(ep, O_CLOEXEC) < 0) return -errno;
  s->errw = ep[1];
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &s->mask);
  pid_t c = fork();
  if (c == 0) child_exec(s);
  int ferr = errno;
  pthread_sigmask(SIG_SETMASK, &s->mask, NULL);
  close(ep[1]);
  if (c < 0) {
    close(ep[0]);
    return -ferr;
  }
  int err = 0;
  size_t got = 0;
  while (got < sizeof err) {
    ssize_t n = read(ep[0], (char *)&err + got, sizeof err - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  close(ep[0]);
  if (got) {
    int st;
    while (waitpid(c, &st, 0) < 0 && errno == EINTR) {
    }
    return got == sizeof err && err > 0 ? -err : -EIO;
  }
  *pid = c;
  return 0;
}

static int check_mode(int mode, int which) {
  if (mode >= 0) {
    if (mode > 0 && fcntl(mode, F_GETFD) < 0) return -EBADF;
    return 0;
  }
  if (mode == ASYNCIO_SUBPROCESS_PIPE || mode == ASYNCIO_SUBPROCESS_DEVNULL) return 0;
  if (mode == ASYNCIO_SUBPROCESS_STDOUT && which == 2) return 0;
  return -EINVAL;
}

/* What Python does at startup: writing to a closed pipe is EPIPE, not death. */
static void ignore_sigpipe(void) {
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL &&
      !(sa.sa_flags & SA_SIGINFO))
    signal(SIGPIPE, SIG_IGN);
}

static int create(asyncio_process_t **out, const char *file, char *const argv[],
                  const asyncio_subprocess_options_t *o) {
  if (!out) return -EINVAL;
  *out = NULL;
  if (!file || !argv || !argv[0]) return -EINVAL;
  asyncio_subprocess_options_t def = {0};
  if (!o) o = &def;
  int modes[3] = {o->stdin_mode, o->stdout_mode, o->stderr_mode};
  for (int i = 0; i < 3; i++) {
    int rc = check_mode(modes[i], i);
    if (rc) return rc;
  }
  asyncio_loop_t *loop = asyncio_get_running_loop();
  if (!loop || !loop->current) return ASYNCIO_ENOTASK;
  asyncio__net_t *net;
  int rc = asyncio__net_get(loop, &net);
  if (rc) return rc;

  spawn_t s;
  memset(&s, 0, sizeof s);
  s.argv = argv;
  s.envp = o->env ? o->env : environ;
  s.cwd = o->cwd;
  rc = build_paths(&s, file, o->env);
  if (rc) return rc;

  /* parent[i]: our end of pipe i (-1 if none); child ends and /dev/null in s.src. */
  int parent[3] = {-1, -1, -1};
  int devnull = -1;
  for (int i = 0; i < 3; i++) s.src[i] = -1;
  for (int i = 0; i < 3 && !rc; i++) {
    if (modes[i] == ASYNCIO_SUBPROCESS_PIPE) {
      int pp[2];
      if (pipe2(pp, O_CLOEXEC) < 0) {
        rc = -errno;
        break;
      }
      parent[i] = i == 0 ? pp[1] : pp[0];
      s.src[i] = i == 0 ? pp[0] : pp[1];
    } else if (modes[i] == ASYNCIO_SUBPROCESS_DEVNULL) {
      if (devnull < 0) devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
      if (devnull < 0) rc = -errno;
      s.src[i] = devnull;
    } else if (modes[i] == ASYNCIO_SUBPROCESS_STDOUT) {
      s.src[i] = -2;
    } else if (modes[i] > 0) {
      s.src[i] = modes[i];
    }
  }
  pid_t pid = 0;
  if (!rc) rc = fork_exec(&s, &pid);
  paths_free(&s);
  for (int i = 0; i < 3; i++)
    if (modes[i] == ASYNCIO_SUBPROCESS_PIPE && s.src[i] >= 0) close(s.src[i]);
  if (devnull >= 0) close(devnull);
  for (int i = 0; i < 3 && !rc; i++)
    if (parent[i] >= 0) rc = asyncio__set_nonblock(parent[i]);
  asyncio_process_t *p = NULL;
  if (!rc) {
    p = asyncio__calloc(sizeof *p);
    if (!p) rc = -ENOMEM;
  }
  if (!rc) {
    p->loop = loop;
    p->pid = pid;
    p->pidfd = -1;
    p->poll = ASYNCIO_HANDLE_NONE;
    p->user = 1;
    p->res.destroy = proc_destroy;
    rc = watch(p);
    if (rc) {
      asyncio__free(p, sizeof *p);
      p = NULL;
    } else {
      asyncio__res_link(loop, &p->res);
    }
  }
  if (rc) {
    for (int i = 0; i < 3; i++)
      if (parent[i] >= 0) close(parent[i]);
    if (pid > 0) {
      int st;
      kill(pid, SIGKILL);
      while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
      }
    }
    return rc;
  }

  /* _connect_pipes: stdin, stdout, stderr, each awaiting connection_made. */
  if (parent[0] >= 0) ignore_sigpipe();
  /* Counted before the first suspension: the child may exit meanwhile, and
   * must not look finished while its pipes are still to come. */
  for (int i = 0; i < 3; i++) p->npipes += parent[i] >= 0;
  for (int i = 0; i < 3; i++) {
    if (parent[i] < 0) continue;
    if (rc) {
      close(parent[i]);
      p->npipes--;
      continue;
    }
    asyncio_transport_t *t;
    asyncio_stream_reader_t *r;
    asyncio_stream_writer_t *w;
    int taken = 0;
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
  if (rc) {
    /* Cancelled or failed after the start: kill it; the record reaps it and goes. */
    if (!p->exited) kill(p->pid, SIGKILL);
    maybe_finish(p); /* the pipes that never came may have been the last */
    asyncio_process_free(p);
    return rc;
  }
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
  return process->pid;
}

ASYNCIO_API int asyncio_process_returncode(const asyncio_process_t *process, int *returncode) {
  if (!process || !process->user || !returncode) return -EINVAL;
  if (!process->exited) return 0;
  *returncode = process->returncode;
  return 1;
}

ASYNCIO_API int asyncio_process_wait(asyncio_process_t *process, int *returncode) {
  int rc = proc_check(process);
  if (rc) return rc;
  asyncio_process_t *p = process;
  /* _wait: at once once the exit is known; else woken by _call_connection_lost. */
  if (!p->exited) {
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
  if (returncode) *returncode = p->returncode;
  return 0;
}

ASYNCIO_API int asyncio_process_send_signal(asyncio_process_t *process, int sig) {
  int rc = proc_check(process);
  if (rc) return rc;
  if (sig < 0 || sig >= NSIG) return -EINVAL;
  /* The pid stays ours until we reap it, so it cannot name another process. */
  if (process->exited) return -ESRCH;
  if (kill(process->pid, sig) < 0) return -errno;
  return 0;
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
