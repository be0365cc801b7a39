/*
 * spawn.c - starting a child and noticing its exit (Python:
 * subprocess.Popen's fork + exec as _posixsubprocess does it, which
 * unix_events._UnixSubprocessTransport._start calls; unix_events
 * PidfdChildWatcher).  Shared by both forms of subprocesses: subprocess.c
 * (create_subprocess_exec, streams) and base_subprocess.c
 * (loop.subprocess_exec, protocols).
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
 * (-ENOSYS) a timer polls waitpid instead.  No SIGCHLD handler: no other
 * child of the program is ever touched.  The pid stays ours until we reap
 * it, so signalling it before that cannot hit another process; after it,
 * signals are refused (-ESRCH).
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "selector_events.h"
#include "spawn.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char **environ;

/* Tests only: act as if pidfd_open were missing, to run the polling fallback. */
ASYNCIO_API int asyncio__subprocess_no_pidfd;
int asyncio__subprocess_no_pidfd = 0;

#define POLL_MIN 0.001
#define POLL_MAX 0.05

/* ---- the exit watch ------------------------------------------------------------------ */

static int status_code(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return -WTERMSIG(st);
  return 255;
}

static void stop_watching(asyncio__child_t *c) {
  if (c->pidfd >= 0) {
    asyncio_loop_remove_reader(c->loop, c->pidfd);
    close(c->pidfd);
    c->pidfd = -1;
  }
  asyncio_handle_cancel(c->poll);
  c->poll = ASYNCIO_HANDLE_NONE;
}

/* Reaps the child if it has exited: 1 reaped, 0 still running. */
static int try_reap(asyncio__child_t *c) {
  int st = 0;
  pid_t r;
  do r = waitpid(c->pid, &st, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == 0) return 0;
  /* ECHILD: someone else reaped it; Python reports 255 then. */
  c->returncode = r == c->pid ? status_code(st) : 255;
  c->exited = 1;
  return 1;
}

static void pidfd_ready(int fd, void *arg) {
  (void)fd;
  asyncio__child_t *c = arg;
  if (!try_reap(c)) return;
  stop_watching(c);
  c->on_exit(c);
}

static void poll_tick(void *arg) {
  asyncio__child_t *c = arg;
  c->poll = ASYNCIO_HANDLE_NONE;
  if (try_reap(c)) {
    c->on_exit(c);
    return;
  }
  c->poll_delay = c->poll_delay * 2 < POLL_MAX ? c->poll_delay * 2 : POLL_MAX;
  if (asyncio_loop_call_later(c->loop, c->poll_delay, poll_tick, c, &c->poll) < 0) {
    /* Out of memory: keep trying on the next iteration's timer slot. */
    c->poll = ASYNCIO_HANDLE_NONE;
    asyncio_loop_call_soon(c->loop, poll_tick, c, &c->poll);
  }
}

int asyncio__spawn_watch(asyncio__child_t *c, asyncio_loop_t *loop, pid_t pid,
                         void (*on_exit)(asyncio__child_t *c)) {
  c->loop = loop;
  c->pid = pid;
  c->pidfd = -1;
  c->exited = 0;
  c->poll = ASYNCIO_HANDLE_NONE;
  c->on_exit = on_exit;
  int fd = asyncio__subprocess_no_pidfd ? (errno = ENOSYS, -1)
                                        : (int)syscall(SYS_pidfd_open, pid, 0);
  if (fd >= 0) {
    int fl = fcntl(fd, F_GETFD);
    if (fl >= 0) fcntl(fd, F_SETFD, fl | FD_CLOEXEC); /* pidfds are CLOEXEC; be sure */
    int rc = asyncio_loop_add_reader(loop, fd, pidfd_ready, c);
    if (rc < 0) {
      close(fd);
      return rc;
    }
    c->pidfd = fd;
    return 0;
  }
  if (errno != ENOSYS && errno != EPERM) return -errno;
  c->poll_delay = POLL_MIN;
  return asyncio_loop_call_later(loop, POLL_MIN, poll_tick, c, &c->poll);
}

void asyncio__spawn_kill_reap(asyncio__child_t *c) {
  if (c->pidfd >= 0) {
    asyncio_loop_remove_reader(c->loop, c->pidfd);
    close(c->pidfd);
    c->pidfd = -1;
  }
  c->poll = ASYNCIO_HANDLE_NONE; /* the loop drops its timers itself */
  if (!c->exited) {
    int st = 0;
    pid_t w;
    kill(c->pid, SIGKILL);
    do w = waitpid(c->pid, &st, 0);
    while (w < 0 && errno == EINTR);
    c->returncode = w == c->pid ? status_code(st) : 255;
    c->exited = 1;
  }
}

int asyncio__spawn_signal(asyncio__child_t *c, int sig) {
  if (sig < 0 || sig >= NSIG) return -EINVAL;
  if (c->exited) return -ESRCH;
  if (kill(c->pid, sig) < 0) return -errno;
  return 0;
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

/* os.get_exec_path(env), and the candidates _posixsubprocess tries in order. */
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
  /* With 0-2 closed in the parent the error pipe may be one of them: the
   * dup2s below would close it, and an exec failure would look like success. */
  if (s->errw < 3) {
    int e = fcntl(s->errw, F_DUPFD_CLOEXEC, 3);
    if (e < 0) child_report(s, errno);
    s->errw = e;
  }
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
  /*
   * _posixsubprocess's search: every candidate is tried, and when none runs
   * the first error that is not "no such file" is reported (a later
   * candidate that runs wins over one that exists but cannot: execvp would
   * stop at the first, say an ENOEXEC file).
   */
  int err = 0;
  for (size_t i = 0; i < s->npaths; i++) {
    execve(s->paths[i], s->argv, s->envp);
    if (errno != ENOENT && errno != ENOTDIR && !err) err = errno;
  }
  child_report(s, err ? err : ENOENT);
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

int asyncio__spawn_check_modes(const int modes[3]) {
  for (int i = 0; i < 3; i++) {
    int rc = check_mode(modes[i], i);
    if (rc) return rc;
  }
  return 0;
}

void asyncio__spawn_ignore_sigpipe(void) {
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL &&
      !(sa.sa_flags & SA_SIGINFO))
    signal(SIGPIPE, SIG_IGN);
}

static void kill_reap(pid_t pid) {
  int st;
  kill(pid, SIGKILL);
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
}

void asyncio__spawn_abort(pid_t pid, int parent[3]) {
  for (int i = 0; i < 3; i++)
    if (parent[i] >= 0) close(parent[i]), parent[i] = -1;
  kill_reap(pid);
}

int asyncio__spawn_child(const char *file, char *const argv[], char *const *env, const char *cwd,
                         const int modes[3], int parent[3], pid_t *pid) {
  spawn_t s;
  memset(&s, 0, sizeof s);
  s.argv = argv;
  s.envp = env ? env : environ;
  s.cwd = cwd;
  for (int i = 0; i < 3; i++) parent[i] = -1;
  int rc = build_paths(&s, file, env);
  if (rc) return rc;

  /* parent[i]: our end of pipe i (-1 if none); child ends and /dev/null in s.src. */
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
  pid_t c = 0;
  if (!rc) rc = fork_exec(&s, &c);
  paths_free(&s);
  for (int i = 0; i < 3; i++)
    if (modes[i] == ASYNCIO_SUBPROCESS_PIPE && s.src[i] >= 0) close(s.src[i]);
  if (devnull >= 0) close(devnull);
  for (int i = 0; i < 3 && !rc; i++)
    if (parent[i] >= 0) rc = asyncio__set_nonblock(parent[i]);
  if (rc) {
    for (int i = 0; i < 3; i++)
      if (parent[i] >= 0) close(parent[i]), parent[i] = -1;
    if (c > 0) kill_reap(c);
    return rc;
  }
  *pid = c;
  return 0;
}
