/*
 * asyncio/subprocess.h - child processes (Python: asyncio.subprocess:
 * create_subprocess_exec, create_subprocess_shell, Process; the transport
 * under it is base_subprocess / unix_events' _UnixSubprocessTransport with
 * PidfdChildWatcher).
 *
 * A child is started with fork + execve; its standard streams can be
 * pipes, wrapped in a StreamWriter (stdin) and StreamReaders (stdout,
 * stderr) from asyncio/streams.h.  Its exit is noticed through a pidfd
 * (pidfd_open(2), Linux >= 5.3) watched by the loop, and the child is
 * reaped then: no SIGCHLD handler is installed and no other child of the
 * program is touched.  Where pidfd_open is missing (-ENOSYS) the loop
 * polls waitpid(pid, WNOHANG) on a timer instead (backing off from 1 ms
 * to 50 ms).
 *
 * Lifetime.  asyncio_process_t is owned by the caller (asyncio_process_free).
 * Freeing it while the child runs detaches it, as Python's garbage
 * collector would: the child is neither killed nor waited for, stdin is
 * closed, stdout / stderr keep being read and discarded until EOF, and the
 * loop still reaps the child when it exits (no zombie).  When the loop is
 * closed with a child still running, the child is killed (SIGKILL, what
 * BaseSubprocessTransport.close() does) and reaped before close returns;
 * a handle the caller still holds then answers ASYNCIO_ECLOSED to the
 * calls that need the loop, and must still be freed.
 *
 * All calls are loop-thread only.  The calls marked "suspends" need a
 * running task and are cancellation points that obey timeout scopes
 * (asyncio/timeouts.h).
 */
#ifndef ASYNCIO_SUBPROCESS_H
#define ASYNCIO_SUBPROCESS_H

#include <stddef.h>
#include <sys/types.h>

#include "streams.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct asyncio_process asyncio_process_t;

/*
 * What a child's stdin / stdout / stderr is (the stdin=, stdout=, stderr=
 * arguments):
 *   ASYNCIO_SUBPROCESS_INHERIT  the parent's own descriptor (None; 0, so a
 *                               zeroed options struct inherits everything);
 *   ASYNCIO_SUBPROCESS_PIPE     a pipe, read or written through a stream;
 *   ASYNCIO_SUBPROCESS_DEVNULL  /dev/null;
 *   ASYNCIO_SUBPROCESS_STDOUT   stderr only: wherever stdout goes;
 *   a descriptor n > 0          the child gets a copy of n (the caller keeps
 *                               n).  Descriptor 0 cannot be named, since 0 is
 *                               INHERIT: pass dup(0) instead.
 */
#define ASYNCIO_SUBPROCESS_INHERIT 0
#define ASYNCIO_SUBPROCESS_PIPE (-1)
#define ASYNCIO_SUBPROCESS_DEVNULL (-2)
#define ASYNCIO_SUBPROCESS_STDOUT (-3)

/* Options for create_subprocess_exec / _shell; NULL = Python's defaults. */
typedef struct asyncio_subprocess_options {
  int stdin_mode;  /* ASYNCIO_SUBPROCESS_* or a descriptor (stdin=) */
  int stdout_mode; /* (stdout=) */
  int stderr_mode; /* (stderr=) */
  const char *cwd; /* directory the child starts in (cwd=); NULL = the parent's */
  /*
   * The child's environment, "NAME=value" strings ending with NULL (env=);
   * NULL = the parent's environ.  A given environment's PATH is also the
   * one used to find the program, as Python's subprocess does.
   */
  char *const *env;
  size_t limit; /* the stdout / stderr readers' buffer limit (limit=); 0 = ASYNCIO_STREAM_LIMIT */
} asyncio_subprocess_options_t;

/*
 * Starts `file` with arguments argv (asyncio.create_subprocess_exec(program,
 * *args, stdin, stdout, stderr, limit, cwd, env)).  argv[0] is the name the
 * child sees, as in execv; argv ends with NULL.  A file without '/' is
 * looked up in PATH.  Other descriptors of the parent (>= 3) are not
 * inherited (close_fds=True).  The child gets the default action for
 * signals the parent catches and for SIGPIPE / SIGXFSZ
 * (restore_signals=True).  Suspends the calling task until the pipes are
 * connected (a cancellation point: cancelled or failing after the child
 * started, the child is killed and reaped in the background).
 * Stores the process in *out (the caller frees it).  Returns 0; -EINVAL
 * (NULL out / file / argv / argv[0], a bad mode, STDOUT for stdin or
 * stdout); -EBADF (a passed descriptor that is not open); ASYNCIO_ENOTASK;
 * -ECANCELED; -ENOMEM; the error that kept the program from starting, as
 * Python raises it: -ENOENT (no such program, or no such cwd), -EACCES,
 * -ENOEXEC, -ENOTDIR, ...; -EMFILE and the other errors of pipe2 / fork;
 * -ENOTCONN when a pipe transport failed while it was being connected
 * (e.g. out of memory while registering it with the loop).
 */
int asyncio_create_subprocess_exec(asyncio_process_t **out, const char *file, char *const argv[],
                                   const asyncio_subprocess_options_t *options);

/*
 * Runs cmd with /bin/sh -c (asyncio.create_subprocess_shell(cmd, ...)).
 * Suspends and returns as asyncio_create_subprocess_exec (-EINVAL for a
 * NULL cmd).  A command the shell cannot find is not an error here: the
 * shell exits with 127.
 */
int asyncio_create_subprocess_shell(asyncio_process_t **out, const char *cmd,
                                    const asyncio_subprocess_options_t *options);

/* Process.pid; -EINVAL for NULL.  Stays valid after exit (do not signal it then). */
pid_t asyncio_process_pid(const asyncio_process_t *process);

/*
 * Process.returncode: returns 1 and stores the exit status in *returncode
 * once the child has exited and been reaped (>= 0 an exit code, -N killed
 * by signal N), 0 while it runs (None), -EINVAL.  Does not suspend.
 */
int asyncio_process_returncode(const asyncio_process_t *process, int *returncode);

/*
 * Process.wait(): returns at once when the exit is already known;
 * otherwise suspends until the child has exited and every pipe to it has
 * been closed (Python's transport._wait(): its exit waiters are woken by
 * _call_connection_lost, once the process exited and all pipe transports
 * are lost).  Careful, as in Python: with stdout=PIPE and nobody reading,
 * a child writing much blocks on the full pipe and never exits; a
 * grandchild keeping a pipe open keeps the call waiting.  Stores the exit status in
 * *returncode (nullable).  Returns 0, -ECANCELED (the child keeps
 * running), -EINVAL, ASYNCIO_ENOTASK, ASYNCIO_ECLOSED.
 */
int asyncio_process_wait(asyncio_process_t *process, int *returncode);

/*
 * Process.communicate(input): writes len bytes of input to stdin (when it
 * is a pipe; ignored otherwise) and closes stdin, reads stdout and stderr
 * (those that are pipes) concurrently until EOF, then waits as
 * asyncio_process_wait.  A child that exits without reading its input is
 * not an error (BrokenPipeError / ConnectionResetError are ignored, as in
 * Python).  *out / *err get what was read (the caller owns it: free with
 * asyncio_stream_free_data(data, len); NUL-terminated) or NULL / 0 when
 * the stream is not a pipe; out and outlen (err and errlen) are both NULL
 * or both non-NULL, and NULL drops what is read.  Suspends (a cancellation
 * point: cancelled, the child keeps running, what was read is dropped and
 * nothing is returned).  Returns 0, -ECANCELED, -ENOMEM, a pipe error,
 * -EINVAL, ASYNCIO_ENOTASK, ASYNCIO_EINVALIDSTATE (another task is
 * reading one of the streams), ASYNCIO_ECLOSED.
 */
int asyncio_process_communicate(asyncio_process_t *process, const void *input, size_t len,
                                char **out, size_t *outlen, char **err, size_t *errlen);

/*
 * Process.send_signal(sig) / terminate() (SIGTERM) / kill() (SIGKILL).
 * Never suspend.  Return 0; -ESRCH once the child has been reaped
 * (ProcessLookupError: the pid may belong to another process by then);
 * -EINVAL (NULL, sig outside 0..NSIG-1); ASYNCIO_ECLOSED; the error of
 * kill(2).
 */
int asyncio_process_send_signal(asyncio_process_t *process, int sig);
int asyncio_process_terminate(asyncio_process_t *process);
int asyncio_process_kill(asyncio_process_t *process);

/*
 * Process.stdin / stdout / stderr: the stream, or NULL when that stream is
 * not a pipe (or process is NULL).  Borrowed: valid until
 * asyncio_process_free; do not free them yourself.  Closing stdin is
 * asyncio_stream_close(asyncio_process_stdin(p)).
 */
asyncio_stream_writer_t *asyncio_process_stdin(const asyncio_process_t *process);
asyncio_stream_reader_t *asyncio_process_stdout(const asyncio_process_t *process);
asyncio_stream_reader_t *asyncio_process_stderr(const asyncio_process_t *process);

/*
 * Frees the handle and its streams.  A child still running is detached
 * (see the top of this file): not killed, still reaped when it exits.
 * Returns 0, -EINVAL, -EBUSY while a task waits in wait / communicate or
 * on one of its streams (stdout / stderr may then already be freed; call
 * again once the task is done).  Works after the loop was closed.
 */
int asyncio_process_free(asyncio_process_t *process);

#ifdef __cplusplus
}
#endif
#endif
