/*
 * asyncio/subprocess.h - child processes (Python: asyncio.subprocess:
 * create_subprocess_exec, create_subprocess_shell, Process; the transport
 * under it is base_subprocess / unix_events' _UnixSubprocessTransport with
 * PidfdChildWatcher).  Also the protocol form of the same thing, further
 * down: loop.subprocess_exec / loop.subprocess_shell with a
 * SubprocessTransport and a SubprocessProtocol (asyncio/protocols.h).
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
  /*
   * The stdout / stderr readers' buffer limit (limit=); 0 = ASYNCIO_STREAM_LIMIT.
   * Stream form only: loop.subprocess_exec has no limit (-EINVAL if set).
   */
  size_t limit;
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

/* ---- the protocol form: loop.subprocess_exec / subprocess_shell --------------------------- */

/*
 * Starts `file` with arguments argv, as asyncio_create_subprocess_exec
 * does (same PATH lookup, close_fds, restore_signals, exec errors), and
 * connects it to a protocol made by factory
 * (loop.subprocess_exec(protocol_factory, program, *args, stdin, stdout,
 * stderr, cwd, env)).  The transport (*transport) is a SubprocessTransport,
 * an asyncio_transport_t of its own kind, and the protocol is a
 * SubprocessProtocol (asyncio/protocols.h): it gets
 *   connection_made(transport)            once, first, after the pipes are connected;
 *   pipe_data_received(transport, fd, ..) for fd 1 (stdout) and 2 (stderr);
 *   pipe_connection_lost(transport, fd, error)  once per pipe (0, 1, 2) when it
 *                                         closes (error 0 for EOF / a clean close);
 *   process_exited(transport)             once, when the child has exited and been
 *                                         reaped (get_returncode is set before);
 *   connection_lost(transport, 0)         once, last: after process_exited AND every
 *                                         pipe_connection_lost (_try_finish);
 *   pause_writing / resume_writing        the stdin pipe's flow control.
 * A pipe's data always comes before its pipe_connection_lost; process_exited
 * may come before or after the pipes' callbacks.  Writing to stdin is
 * asyncio_transport_write(asyncio_subprocess_transport_get_pipe_transport(
 * t, 0), ...), closing it asyncio_transport_write_eof / _close on that pipe.
 *
 * Options.  NULL options are Python's defaults for subprocess_exec: stdin,
 * stdout and stderr are all PIPE.  Given options are taken as written, as
 * for asyncio_create_subprocess_exec: a zeroed struct inherits all three
 * (ASYNCIO_SUBPROCESS_INHERIT is 0, Python's None); set the fields to
 * ASYNCIO_SUBPROCESS_PIPE to get pipes.  limit must be 0.  Python's
 * ValueErrors for universal_newlines / text / encoding / errors, bufsize
 * != 0 and shell=True have no C counterpart: data is bytes, pipes are
 * unbuffered, and exec is never a shell.
 *
 * Suspends the calling task until connection_made has run (a cancellation
 * point).  The factory is called once the child runs and its pipes are
 * connected (Python calls it first): when the call fails before that, no
 * protocol was made and no callback is ever called; the child, if
 * started, is killed and reaped in the background.  If it is cancelled
 * after the factory ran, the transport is closed (the child killed) and
 * the protocol still gets its callbacks up to connection_lost (what
 * Python's transp.close() does there); *transport stays NULL.
 *
 * Lifetime.  The transport is owned by the loop, like every transport: it
 * lives until its protocol's connection_lost has returned, and is freed
 * then; the pipe transports each until their pipe_connection_lost has
 * returned.  asyncio_transport_close (BaseSubprocessTransport.close())
 * closes the pipes (stdin after its buffered data) and kills the child
 * with SIGKILL if it has not exited; the callbacks above still come,
 * exactly once each.  A transport nobody closes whose child keeps
 * running stays until the loop is closed: then the child is killed and
 * reaped (no zombie) and the transport freed without callbacks.
 * Generic transport calls on it: close, is_closing, get_protocol,
 * set_protocol, get_loop work; get_write_buffer_size is 0,
 * is_reading / can_write_eof false; get_peername / get_sockname
 * -ENOTCONN; write, writelines, write_eof, abort, pause_reading,
 * resume_reading, get_fd, get/set_write_buffer_limits, sendto and
 * loop.sendfile return -EOPNOTSUPP.
 *
 * Returns 0 with *transport and *instance (nullable) set; -EINVAL (NULL
 * loop / factory / transport / file / argv / argv[0], a bad mode, STDOUT
 * for stdin or stdout, limit set, a factory that gives no protocol
 * table); -EBADF (a passed descriptor that is not open); ASYNCIO_ENOTASK
 * (not called from a task of loop); ASYNCIO_ECLOSED; ASYNCIO_EWRONGTHREAD;
 * -ECANCELED; -ENOMEM; the factory's error; the errors that kept the
 * program from starting (-ENOENT, -EACCES, -ENOEXEC, ...) and those of
 * pipe2 / fork; -ENOTCONN when a pipe transport failed while it was being
 * connected.
 */
int asyncio_loop_subprocess_exec(asyncio_loop_t *loop, asyncio_protocol_factory_fn factory,
                                 void *factory_arg, const char *file, char *const argv[],
                                 const asyncio_subprocess_options_t *options,
                                 asyncio_transport_t **transport, void **instance);

/*
 * Runs cmd with /bin/sh -c (loop.subprocess_shell(protocol_factory, cmd,
 * ...)).  As asyncio_loop_subprocess_exec (-EINVAL for a NULL cmd; a
 * command the shell cannot find is its exit code 127, not an error).
 */
int asyncio_loop_subprocess_shell(asyncio_loop_t *loop, asyncio_protocol_factory_fn factory,
                                  void *factory_arg, const char *cmd,
                                  const asyncio_subprocess_options_t *options,
                                  asyncio_transport_t **transport, void **instance);

/*
 * SubprocessTransport.get_pid(): the child's pid; -EINVAL for NULL or a
 * transport that is not a subprocess transport.  Stays valid after the
 * exit (do not signal it yourself then).
 */
pid_t asyncio_subprocess_transport_get_pid(const asyncio_transport_t *transport);

/*
 * SubprocessTransport.get_returncode(): returns 1 and stores the exit
 * status in *returncode once the child has exited and been reaped (>= 0
 * an exit code, -N killed by signal N), 0 while it runs (None), -EINVAL
 * (NULL, not a subprocess transport, NULL returncode).  Never suspends.
 */
int asyncio_subprocess_transport_get_returncode(const asyncio_transport_t *transport,
                                                int *returncode);

/*
 * SubprocessTransport.get_pipe_transport(fd): the pipe transport of fd 0
 * (stdin: a write pipe), 1 or 2 (read pipes), or NULL when that stream is
 * not a pipe, fd is not 0..2, transport is not a subprocess transport, or
 * the pipe is gone: a pipe transport is freed once its
 * pipe_connection_lost has returned (Python keeps the closed object).
 * Borrowed: the loop owns it.
 */
asyncio_transport_t *asyncio_subprocess_transport_get_pipe_transport(
    const asyncio_transport_t *transport, int fd);

/*
 * SubprocessTransport.send_signal(sig) / terminate() (SIGTERM) / kill()
 * (SIGKILL).  Never suspend.  Return 0; -ESRCH once the child has been
 * reaped (Python ignores ProcessLookupError until connection_lost, then
 * raises it; here the reaped pid is never signalled, since it may name
 * another process by then); -EINVAL (NULL, not a subprocess transport,
 * sig outside 0..NSIG-1); ASYNCIO_EWRONGTHREAD; the error of kill(2).
 */
int asyncio_subprocess_transport_send_signal(asyncio_transport_t *transport, int sig);
int asyncio_subprocess_transport_terminate(asyncio_transport_t *transport);
int asyncio_subprocess_transport_kill(asyncio_transport_t *transport);

#ifdef __cplusplus
}
#endif
#endif
