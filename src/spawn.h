/*
 * spawn.h - what spawn.c (starting a child, noticing its exit) shares with
 * the two forms of subprocesses: subprocess.c (streams, asyncio_process_t)
 * and base_subprocess.c (protocols, loop.subprocess_exec).  Internal.
 */
#ifndef ASYNCIO_SPAWN_H
#define ASYNCIO_SPAWN_H

#include <sys/types.h>

#include <asyncio/subprocess.h>

#include "internal.h"

/*
 * A started child and the watch on its exit (PidfdChildWatcher, or a
 * waitpid(WNOHANG) timer where pidfd_open is missing).  Embedded in the
 * record of either form.  on_exit runs once, from the loop (the pidfd's
 * reader callback or the timer), right after the child was reaped and
 * returncode / exited were set; the watch is already gone then.
 */
typedef struct asyncio__child {
  asyncio_loop_t *loop;
  pid_t pid;
  int pidfd;           /* -1: none (exited, or the polling fallback) */
  int returncode;      /* >= 0 exit code, -N killed by signal N, 255 reaped by someone else */
  uint8_t exited;      /* reaped: returncode is set */
  asyncio_handle_t poll; /* the fallback's timer */
  double poll_delay;
  void (*on_exit)(struct asyncio__child *c);
} asyncio__child_t;

/*
 * The stdin / stdout / stderr modes (ASYNCIO_SUBPROCESS_* or a descriptor)
 * are valid: 0, -EINVAL (an unknown mode, STDOUT for stdin or stdout),
 * -EBADF (a descriptor that is not open).
 */
int asyncio__spawn_check_modes(const int modes[3]);

/*
 * Forks and execs file with argv (env NULL = environ; cwd NULL = ours),
 * with the standard streams as modes say.  parent[i] gets our end of pipe i
 * (non-blocking, close-on-exec) or -1.  Returns 0 and the pid, or the error
 * that kept the program from starting (-ENOENT, -EACCES, ..., the errors
 * of pipe2 / fork, -ENOMEM); on error nothing is left open and no child
 * is left (an exec failure's child is reaped at once).  Does not suspend.
 */
int asyncio__spawn_child(const char *file, char *const argv[], char *const *env, const char *cwd,
                         const int modes[3], int parent[3], pid_t *pid);

/*
 * Undoes a successful asyncio__spawn_child whose caller failed before it
 * could watch the child: closes the parent ends that are >= 0, kills the
 * child (SIGKILL) and reaps it (blocking, briefly).
 */
void asyncio__spawn_abort(pid_t pid, int parent[3]);

/*
 * Starts watching c->pid on loop; on_exit as above.  Returns 0, or an
 * error (nothing is watched; the caller still has to kill and reap).
 */
int asyncio__spawn_watch(asyncio__child_t *c, asyncio_loop_t *loop, pid_t pid,
                         void (*on_exit)(asyncio__child_t *c));

/*
 * Loop close: stops the watch; a child that has not exited yet is killed
 * (SIGKILL, what BaseSubprocessTransport.close() does) and reaped
 * (blocking, but a SIGKILLed child dies at once).  on_exit is not called.
 */
void asyncio__spawn_kill_reap(asyncio__child_t *c);

/*
 * send_signal(sig): 0; -EINVAL (sig outside 0..NSIG-1); -ESRCH once the
 * child has been reaped (the pid may belong to another process by then);
 * the error of kill(2).
 */
int asyncio__spawn_signal(asyncio__child_t *c, int sig);

/* What Python does at startup: writing to a closed pipe is EPIPE, not death. */
void asyncio__spawn_ignore_sigpipe(void);

#endif
