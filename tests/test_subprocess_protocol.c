/*
 * test_subprocess_protocol.c - the protocol form of child processes
 * (asyncio_loop_subprocess_exec / _shell, SubprocessTransport,
 * SubprocessProtocol in include/asyncio/subprocess.h and protocols.h).
 *
 * Python origin: Lib/asyncio/base_subprocess.py, unix_events.py
 * (_UnixSubprocessTransport) and Lib/test/test_asyncio/test_subprocess.py
 * (SubprocessTransportTests, test_subprocess_exec / _shell with a
 * recording protocol).  Real children only: /bin/sh, cat, printf, sleep,
 * true.  A recording protocol checks the order constraints in every
 * callback: connection_made first and once; pipe data before that pipe's
 * pipe_connection_lost; each pipe lost once; process_exited once, with the
 * return code already set; connection_lost once, last, after the exit and
 * every pipe.  Nothing asserts timings.  Besides the harness's memory and
 * descriptor checks, tests check that no child is left unreaped.
 */
#include "net_helpers.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

extern int asyncio__subprocess_no_pidfd; /* src/spawn.c: tests only */

static bool no_children(void) {
  errno = 0;
  return waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD;
}

/* ---- a recording SubprocessProtocol -------------------------------------------------------- */

typedef struct rec {
  asyncio_transport_t *t; /* from connection_made */
  int factory_calls;
  int made, exited, lost, lost_error;
  int pipe_lost[3], pipe_err[3];
  bool had_pipe[3]; /* get_pipe_transport(fd) in connection_made */
  char *out[3];     /* fds 1, 2: everything received (malloc) */
  size_t outlen[3];
  int returncode;   /* as seen in process_exited */
  int rc_at_exit;   /* get_returncode's value there */
  int signal_after_exit; /* send_signal(0) in process_exited */
  int paused, resumed;
  bool close_in_made;
  asyncio_event_t *done; /* set by connection_lost */
  char order[256];  /* M, 1/2 (data, once per run), 0L/1L/2L, X, C */
  size_t norder;
} rec_t;

static void rec_init(rec_t *r) {
  memset(r, 0, sizeof *r);
  r->returncode = 12345;
  CHECK_RC(asyncio_event_new(&r->done), 0);
}

static void rec_free(rec_t *r) {
  for (int i = 0; i < 3; i++) free(r->out[i]);
  if (r->done) asyncio_event_free(r->done);
  r->done = NULL;
}

static void note(rec_t *r, char c) {
  if (r->norder + 1 < sizeof r->order) r->order[r->norder++] = c;
}

static void r_made(asyncio_transport_t *t, void *inst) {
  rec_t *r = inst;
  CHECK(r->made == 0 && r->lost == 0 && r->norder == 0);
  r->made++;
  r->t = t;
  note(r, 'M');
  CHECK(asyncio_subprocess_transport_get_pid(t) > 0);
  for (int i = 0; i < 3; i++)
    r->had_pipe[i] = asyncio_subprocess_transport_get_pipe_transport(t, i) != NULL;
  if (r->close_in_made) CHECK_RC(asyncio_transport_close(t), 0);
}

static void r_data(asyncio_transport_t *t, int fd, const void *data, size_t n, void *inst) {
  rec_t *r = inst;
  CHECK(t == r->t && r->made == 1 && r->lost == 0);
  CHECK(fd == 1 || fd == 2);
  if (fd != 1 && fd != 2) return;
  CHECK(r->pipe_lost[fd] == 0 && r->had_pipe[fd] && n > 0);
  if (!r->outlen[fd]) note(r, (char)('0' + fd));
  char *p = realloc(r->out[fd], r->outlen[fd] + n + 1);
  if (!p) return;
  memcpy(p + r->outlen[fd], data, n);
  r->outlen[fd] += n;
  p[r->outlen[fd]] = 0;
  r->out[fd] = p;
}

static void r_pipe_lost(asyncio_transport_t *t, int fd, int error, void *inst) {
  rec_t *r = inst;
  CHECK(t == r->t && r->made == 1 && r->lost == 0);
  CHECK(fd >= 0 && fd <= 2);
  if (fd < 0 || fd > 2) return;
  CHECK(r->had_pipe[fd] && r->pipe_lost[fd] == 0);
  r->pipe_lost[fd]++;
  r->pipe_err[fd] = error;
  note(r, (char)('0' + fd));
  note(r, 'L');
}

static void r_exited(asyncio_transport_t *t, void *inst) {
  rec_t *r = inst;
  CHECK(t == r->t && r->made == 1 && r->lost == 0 && r->exited == 0);
  r->exited++;
  note(r, 'X');
  r->rc_at_exit = asyncio_subprocess_transport_get_returncode(t, &r->returncode);
  r->signal_after_exit = asyncio_subprocess_transport_send_signal(t, 0);
}

static void r_lost(asyncio_transport_t *t, int error, void *inst) {
  rec_t *r = inst;
  CHECK(t == r->t && r->made == 1 && r->lost == 0 && r->exited == 1);
  for (int i = 0; i < 3; i++) CHECK(r->pipe_lost[i] == (r->had_pipe[i] ? 1 : 0));
  for (int i = 0; i < 3; i++) CHECK(asyncio_subprocess_transport_get_pipe_transport(t, i) == NULL);
  r->lost++;
  r->lost_error = error;
  r->t = NULL; /* freed when this returns */
  note(r, 'C');
  asyncio_event_set(r->done);
}

static void r_pause(asyncio_transport_t *t, void *inst) {
  rec_t *r = inst;
  CHECK(t == r->t && r->paused == r->resumed);
  r->paused++;
}

static void r_resume(asyncio_transport_t *t, void *inst) {
  rec_t *r = inst;
  CHECK(t == r->t && r->paused == r->resumed + 1);
  r->resumed++;
}

static const asyncio_protocol_t rec_proto = {
    .connection_made = r_made,
    .connection_lost = r_lost,
    .pause_writing = r_pause,
    .resume_writing = r_resume,
    .pipe_data_received = r_data,
    .pipe_connection_lost = r_pipe_lost,
    .process_exited = r_exited,
};

static int rec_factory(void *arg, const asyncio_protocol_t **p, void **inst) {
  rec_t *r = arg;
  r->factory_calls++;
  *p = &rec_proto;
  *inst = r;
  return 0;
}

/* Starts file/argv (or cmd with the shell) and waits for connection_lost. */
static int run_exec(rec_t *r, const char *file, char *const argv[],
                    const asyncio_subprocess_options_t *o) {
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_transport_t *t = NULL;
  void *inst = NULL;
  int rc = asyncio_loop_subprocess_exec(loop, rec_factory, r, file, argv, o, &t, &inst);
  if (rc) return rc;
  CHECK(t == r->t && inst == r && r->made == 1 && r->factory_calls == 1);
  rc = asyncio_event_wait(r->done);
  CHECK(r->lost == 1 && r->lost_error == 0);
  return rc;
}

static int run_shell(rec_t *r, const char *cmd, const asyncio_subprocess_options_t *o) {
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_transport_t *t = NULL;
  int rc = asyncio_loop_subprocess_shell(loop, rec_factory, r, cmd, o, &t, NULL);
  if (rc) return rc;
  CHECK(t == r->t && r->made == 1);
  rc = asyncio_event_wait(r->done);
  CHECK(r->lost == 1 && r->lost_error == 0);
  return rc;
}

/* ---- stdout and stderr -------------------------------------------------------------------- */

static int fds_main(void *arg) {
  (void)arg;
  rec_t r;
  rec_init(&r);
  /* NULL options: Python's defaults, all three pipes. */
  char *argv[] = {"sh", "-c", "printf out; printf err >&2; exit 3", NULL};
  CHECK_RC(run_exec(&r, "sh", argv, NULL), 0);
  CHECK(r.had_pipe[0] && r.had_pipe[1] && r.had_pipe[2]);
  CHECK(r.out[1] && !strcmp(r.out[1], "out"));
  CHECK(r.out[2] && !strcmp(r.out[2], "err"));
  CHECK(r.pipe_lost[0] == 1 && r.pipe_lost[1] == 1 && r.pipe_lost[2] == 1);
  CHECK(r.pipe_err[0] == 0 && r.pipe_err[1] == 0 && r.pipe_err[2] == 0);
  CHECK(r.exited == 1 && r.rc_at_exit == 1 && r.returncode == 3);
  CHECK(r.signal_after_exit == -ESRCH);
  CHECK(r.order[0] == 'M' && r.order[r.norder - 1] == 'C');
  rec_free(&r);

  /* The shell form. */
  rec_init(&r);
  CHECK_RC(run_shell(&r, "echo hello; echo world >&2; exit 5", NULL), 0);
  CHECK(r.out[1] && !strcmp(r.out[1], "hello\n"));
  CHECK(r.out[2] && !strcmp(r.out[2], "world\n"));
  CHECK(r.returncode == 5);
  rec_free(&r);

  /* A program the shell cannot find is its exit code, not an error. */
  rec_init(&r);
  asyncio_subprocess_options_t o = {.stdin_mode = ASYNCIO_SUBPROCESS_DEVNULL,
                                    .stdout_mode = ASYNCIO_SUBPROCESS_DEVNULL,
                                    .stderr_mode = ASYNCIO_SUBPROCESS_DEVNULL};
  CHECK_RC(run_shell(&r, "no-such-program-here-xyz", &o), 0);
  CHECK(r.returncode == 127);
  rec_free(&r);
  CHECK(no_children());
  return 0;
}

TEST(stdout_and_stderr_fds) {
  (void)state;
  assert_ok(run_main(fds_main, NULL));
  ASSERT_SOFT();
}

/* ---- stdin through get_pipe_transport(t, 0) ----------------------------------------------- */

static uint64_t sum64(const char *d, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)d[i]) * 1099511628211ull;
  return h;
}

static int cat_main(void *arg) {
  (void)arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  char *argv[] = {"cat", NULL};
  rec_t r;
  rec_init(&r);
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_subprocess_exec(loop, rec_factory, &r, "cat", argv, NULL, &t, NULL), 0);
  if (!t) return -1;
  asyncio_transport_t *in = asyncio_subprocess_transport_get_pipe_transport(t, 0);
  CHECK(in != NULL);
  CHECK(asyncio_transport_can_write_eof(in));
  CHECK_RC(asyncio_transport_write(in, "hello\n", 6), 0);
  CHECK_RC(asyncio_transport_write_eof(in), 0);
  CHECK_RC(asyncio_event_wait(r.done), 0);
  CHECK(r.out[1] && !strcmp(r.out[1], "hello\n"));
  CHECK(r.outlen[2] == 0);
  CHECK(r.returncode == 0 && r.lost == 1);
  CHECK(r.paused == 0);
  rec_free(&r);

  /* 1 MiB: more than the pipe takes, so stdin's flow control reaches the protocol. */
  size_t len = (size_t)1 << 20;
  char *data = malloc(len);
  if (!data) return -ENOMEM;
  for (size_t i = 0; i < len; i++) data[i] = (char)(i * 7 + i / 251);
  rec_init(&r);
  t = NULL;
  CHECK_RC(asyncio_loop_subprocess_exec(loop, rec_factory, &r, "cat", argv, NULL, &t, NULL), 0);
  if (t) {
    in = asyncio_subprocess_transport_get_pipe_transport(t, 0);
    CHECK_RC(asyncio_transport_write(in, data, len), 0);
    CHECK(r.paused == 1); /* above the high-water mark at once */
    CHECK_RC(asyncio_transport_write_eof(in), 0);
    CHECK_RC(asyncio_event_wait(r.done), 0);
    CHECK(r.resumed == 1);
    CHECK(r.outlen[1] == len && r.out[1] && sum64(r.out[1], len) == sum64(data, len));
    CHECK(r.returncode == 0);
  }
  free(data);
  rec_free(&r);
  CHECK(no_children());
  return 0;
}

TEST(stdin_pipe_cat_echo_and_flow_control) {
  (void)state;
  assert_ok(run_main(cat_main, NULL));
  ASSERT_SOFT();
}

/* ---- exit codes and signals ----------------------------------------------------------------- */

static int start_sleep(rec_t *r, asyncio_transport_t **t) {
  char *argv[] = {"sleep", "100", NULL};
  return asyncio_loop_subprocess_exec(asyncio_get_running_loop(), rec_factory, r, "sleep", argv,
                                      NULL, t, NULL);
}

static int signals_main(void *arg) {
  (void)arg;
  rec_t r;
  rec_init(&r);
  char *argv[] = {"sh", "-c", "exit 7", NULL};
  CHECK_RC(run_exec(&r, "/bin/sh", argv, NULL), 0);
  CHECK(r.returncode == 7);
  rec_free(&r);

  /* Killed by a signal: the negative signal number, as Python. */
  rec_init(&r);
  CHECK_RC(run_shell(&r, "kill -TERM $$", NULL), 0);
  CHECK(r.returncode == -SIGTERM);
  rec_free(&r);

  int sigs[] = {SIGKILL, SIGTERM, SIGINT};
  for (int k = 0; k < 3; k++) {
    rec_init(&r);
    asyncio_transport_t *t = NULL;
    CHECK_RC(start_sleep(&r, &t), 0);
    if (!t) break;
    int code = 99;
    CHECK_RC(asyncio_subprocess_transport_get_returncode(t, &code), 0); /* None */
    CHECK(code == 99);
    CHECK_RC(asyncio_subprocess_transport_send_signal(t, 0), 0);
    CHECK_RC(asyncio_subprocess_transport_send_signal(t, -1), -EINVAL);
    CHECK_RC(asyncio_subprocess_transport_send_signal(t, NSIG), -EINVAL);
    if (k == 0) CHECK_RC(asyncio_subprocess_transport_kill(t), 0);
    else if (k == 1) CHECK_RC(asyncio_subprocess_transport_terminate(t), 0);
    else CHECK_RC(asyncio_subprocess_transport_send_signal(t, SIGINT), 0);
    CHECK(!asyncio_transport_is_closing(t));
    CHECK_RC(asyncio_event_wait(r.done), 0);
    CHECK(r.returncode == -sigs[k] && r.rc_at_exit == 1);
    CHECK(r.signal_after_exit == -ESRCH); /* never signals a reaped pid */
    rec_free(&r);
  }
  CHECK(no_children());
  return 0;
}

TEST(exit_codes_and_signals) {
  (void)state;
  assert_ok(run_main(signals_main, NULL));
  ASSERT_SOFT();
}

/* ---- DEVNULL, inherited descriptors, stderr=STDOUT ------------------------------------------ */

static int devnull_main(void *arg) {
  (void)arg;
  rec_t r;
  rec_init(&r);
  asyncio_subprocess_options_t o = {.stdin_mode = ASYNCIO_SUBPROCESS_DEVNULL,
                                    .stdout_mode = ASYNCIO_SUBPROCESS_DEVNULL,
                                    .stderr_mode = ASYNCIO_SUBPROCESS_DEVNULL};
  char *argv[] = {"sh", "-c", "cat; echo lost; echo lost >&2; exit 4", NULL};
  CHECK_RC(run_exec(&r, "sh", argv, &o), 0);
  CHECK(!r.had_pipe[0] && !r.had_pipe[1] && !r.had_pipe[2]);
  CHECK(r.outlen[1] == 0 && r.outlen[2] == 0);
  CHECK(!strcmp(r.order, "MXC")); /* no pipe callbacks at all */
  CHECK(r.returncode == 4);
  rec_free(&r);

  /* A zeroed struct inherits all three: no pipes either. */
  rec_init(&r);
  asyncio_subprocess_options_t z = {0};
  char *t[] = {"true", NULL};
  CHECK_RC(run_exec(&r, "true", t, &z), 0);
  CHECK(!strcmp(r.order, "MXC") && r.returncode == 0);
  rec_free(&r);

  /* A descriptor of ours, and stderr=STDOUT into a stdout pipe. */
  int fds[2];
  CHECK(pipe2(fds, O_CLOEXEC) == 0);
  rec_init(&r);
  asyncio_subprocess_options_t m = {.stdin_mode = fds[0],
                                    .stdout_mode = ASYNCIO_SUBPROCESS_PIPE,
                                    .stderr_mode = ASYNCIO_SUBPROCESS_STDOUT};
  CHECK(write(fds[1], "x\n", 2) == 2);
  close(fds[1]);
  char *sh[] = {"sh", "-c", "read v; echo got $v; echo two >&2", NULL};
  CHECK_RC(run_exec(&r, "sh", sh, &m), 0);
  close(fds[0]);
  CHECK(!r.had_pipe[0] && r.had_pipe[1] && !r.had_pipe[2]);
  CHECK(r.out[1] && !strcmp(r.out[1], "got x\ntwo\n"));
  CHECK(r.pipe_lost[1] == 1 && r.returncode == 0);
  rec_free(&r);
  CHECK(no_children());
  return 0;
}

TEST(devnull_inherit_and_stdout_merge) {
  (void)state;
  assert_ok(run_main(devnull_main, NULL));
  ASSERT_SOFT();
}

/* ---- close() -------------------------------------------------------------------------------- */

static int close_main(void *arg) {
  (void)arg;
  rec_t r;
  rec_init(&r);
  asyncio_transport_t *t = NULL;
  CHECK_RC(start_sleep(&r, &t), 0);
  if (!t) return -1;
  pid_t pid = asyncio_subprocess_transport_get_pid(t);
  CHECK(!asyncio_transport_is_closing(t));
  CHECK_RC(asyncio_transport_close(t), 0);
  CHECK(asyncio_transport_is_closing(t));
  CHECK_RC(asyncio_transport_close(t), 0); /* again: nothing */
  /* Still usable until connection_lost. */
  CHECK(asyncio_subprocess_transport_get_pid(t) == pid);
  CHECK_RC(asyncio_event_wait(r.done), 0);
  CHECK(r.returncode == -SIGKILL);
  CHECK(r.pipe_lost[0] == 1 && r.pipe_lost[1] == 1 && r.pipe_lost[2] == 1);
  CHECK(r.exited == 1 && r.lost == 1);
  rec_free(&r);

  /* close() from connection_made. */
  rec_init(&r);
  r.close_in_made = true;
  t = NULL;
  CHECK_RC(start_sleep(&r, &t), 0);
  CHECK(t != NULL && asyncio_transport_is_closing(t));
  CHECK_RC(asyncio_event_wait(r.done), 0);
  CHECK(r.returncode == -SIGKILL && r.lost == 1);
  rec_free(&r);

  /*
   * close() after the exit kills nothing; the pipes still end.  A
   * grandchild keeps them open, so the transport outlives the exit; it
   * prints its pid so that it can be killed afterwards.
   */
  rec_init(&r);
  t = NULL;
  char *argv[] = {"sh", "-c", "sleep 100 & echo $!; exit 0", NULL};
  CHECK_RC(asyncio_loop_subprocess_exec(asyncio_get_running_loop(), rec_factory, &r, "sh", argv,
                                        NULL, &t, NULL), 0);
  if (t) {
    WAIT_UNTIL(r.exited && r.out[1] && strchr(r.out[1], '\n'));
    CHECK(r.returncode == 0 && r.lost == 0);
    CHECK(r.pipe_lost[1] == 0 && !strchr(r.order, 'C'));
    CHECK_RC(asyncio_transport_close(t), 0);
    CHECK_RC(asyncio_event_wait(r.done), 0);
    CHECK(r.returncode == 0 && r.lost == 1 && r.pipe_lost[1] == 1);
    pid_t gc = (pid_t)atoi(r.out[1]);
    CHECK(gc > 0);
    if (gc > 0) kill(gc, SIGKILL);
  }
  rec_free(&r);
  CHECK(no_children());
  return 0;
}

TEST(close_kills_running_child) {
  (void)state;
  assert_ok(run_main(close_main, NULL));
  ASSERT_SOFT();
}

/* ---- errors: no callback, no child ---------------------------------------------------------- */

static int refuse_factory(void *arg, const asyncio_protocol_t **p, void **inst) {
  rec_t *r = arg;
  r->factory_calls++;
  (void)p;
  (void)inst;
  return -EPERM;
}

static int empty_factory(void *arg, const asyncio_protocol_t **p, void **inst) {
  rec_t *r = arg;
  r->factory_calls++;
  (void)p;
  (void)inst;
  return 0;
}

static void outside_task(void *arg) {
  int *rc = arg;
  char *argv[] = {"true", NULL};
  asyncio_transport_t *t = NULL;
  rec_t r;
  memset(&r, 0, sizeof r);
  *rc = asyncio_loop_subprocess_exec(asyncio_get_running_loop(), rec_factory, &r, "true", argv,
                                     NULL, &t, NULL);
}

static int errors_main(void *arg) {
  (void)arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  rec_t r;
  rec_init(&r);
  asyncio_transport_t *t = (asyncio_transport_t *)&r; /* must be reset to NULL */
  char *argv[] = {"true", NULL}, *noargs[] = {NULL};
  CHECK_RC(asyncio_loop_subprocess_exec(NULL, rec_factory, &r, "true", argv, NULL, &t, NULL),
           -EINVAL);
  CHECK(t == NULL);
  CHECK_RC(asyncio_loop_subprocess_exec(loop, NULL, &r, "true", argv, NULL, &t, NULL), -EINVAL);
  CHECK_RC(asyncio_loop_subprocess_exec(loop, rec_factory, &r, "true", argv, NULL, NULL, NULL),
           -EINVAL);
  CHECK_RC(asyncio_loop_subprocess_exec(loop, rec_factory, &r, NULL, argv, NULL, &t, NULL),
           -EINVAL);
  CHECK_RC(asyncio_loop_subprocess_exec(loop, rec_factory, &r, "true", NULL, NULL, &t, NULL),
           -EINVAL);
  CHECK_RC(asyncio_loop_subprocess_exec(loop, rec_factory, &r, "true", noargs, NULL, &t, NULL),
           -EINVAL);
  CHECK_RC(asyncio_loop_subprocess_shell(loop, rec_factory, &r, NULL, NULL, &t, NULL), -EINVAL);
  asyncio_subprocess_options_t o = {.stdin_mode = ASYNCIO_SUBPROCESS_STDOUT};
  CHECK_RC(asyncio_loop_subprocess_exec(loop, rec_factory, &r, "true", argv, &o, &t, NULL),
           -EINVAL);
  o = (asyncio_subprocess_options_t){.stdout_mode = ASYNCIO_SUBPROCESS_STDOUT};
  CHECK_RC(asyncio_loop_subprocess_exec(loop, rec_factory, &r, "true", argv, &o, &t, NULL),
           -EINVAL);
  o = (asyncio_subprocess_options_t){.stderr_mode = -42};
  CHECK_RC(asyncio_loop_subprocess_exec(loop, rec_factory, &r, "true", argv, &o, &t, NULL),
           -EINVAL);
  o = (asyncio_subprocess_options_t){.limit = 100}; /* no limit= in subprocess_exec */
  CHECK_RC(asyncio_loop_subprocess_exec(loop, rec_factory, &r, "true", argv, &o, &t, NULL),
           -EINVAL);
  o = (asyncio_subprocess_options_t){.stdout_mode = 1000}; /* not open */
  CHECK_RC(asyncio_loop_subprocess_exec(loop, rec_factory, &r, "true", argv, &o, &t, NULL),
           -EBADF);

  /* Exec failures are returned; nothing was made, nothing is called. */
  char *nope[] = {"no-such-program-xyz", NULL};
  CHECK_RC(asyncio_loop_subprocess_exec(loop, rec_factory, &r, "no-such-program-xyz", nope, NULL,
                                        &t, NULL),
           -ENOENT);
  CHECK_RC(asyncio_loop_subprocess_exec(loop, rec_factory, &r, "/no/such/dir/prog", nope, NULL,
                                        &t, NULL),
           -ENOENT);
  o = (asyncio_subprocess_options_t){.cwd = "/no/such/dir"};
  CHECK_RC(asyncio_loop_subprocess_exec(loop, rec_factory, &r, "true", argv, &o, &t, NULL),
           -ENOENT);
  CHECK_RC(asyncio_loop_subprocess_exec(loop, rec_factory, &r, "/dev/null", argv, NULL, &t, NULL),
           -EACCES);
  CHECK(t == NULL && r.factory_calls == 0 && r.norder == 0);

  /* A refusing factory: its error; the child it would have had is killed and reaped. */
  CHECK_RC(asyncio_loop_subprocess_exec(loop, refuse_factory, &r, "cat", (char *[]){"cat", NULL},
                                        NULL, &t, NULL),
           -EPERM);
  CHECK_RC(asyncio_loop_subprocess_exec(loop, empty_factory, &r, "cat", (char *[]){"cat", NULL},
                                        NULL, &t, NULL),
           -EINVAL);
  CHECK(t == NULL && r.factory_calls == 2 && r.norder == 0);
  WAIT_UNTIL(no_children());

  /* Not from a task of this loop. */
  int rc = 1;
  CHECK_RC(asyncio_loop_call_soon(loop, outside_task, &rc, NULL), 0);
  WAIT_UNTIL(rc != 1);
  CHECK_RC(rc, ASYNCIO_ENOTASK);
  asyncio_loop_t *other = NULL;
  CHECK_RC(asyncio_loop_new(&other, NULL), 0);
  if (other) {
    CHECK_RC(asyncio_loop_subprocess_exec(other, rec_factory, &r, "true", argv, NULL, &t, NULL),
             ASYNCIO_ENOTASK);
    CHECK_RC(asyncio_loop_close(other), 0);
  }
  rec_free(&r);
  CHECK(no_children());
  return 0;
}

TEST(argument_and_exec_errors) {
  (void)state;
  assert_ok(run_main(errors_main, NULL));
  ASSERT_SOFT();
}

/* ---- the generic transport calls on a subprocess transport ---------------------------------- */

static const asyncio_protocol_t other_proto = {0};

static int generic_main(void *arg) {
  (void)arg;
  rec_t r;
  rec_init(&r);
  asyncio_transport_t *t = NULL;
  CHECK_RC(start_sleep(&r, &t), 0);
  if (!t) return -1;
  asyncio_transport_t *in = asyncio_subprocess_transport_get_pipe_transport(t, 0);
  asyncio_transport_t *out = asyncio_subprocess_transport_get_pipe_transport(t, 1);
  CHECK(in && out && in != out);
  CHECK(asyncio_subprocess_transport_get_pipe_transport(t, 2) != NULL);
  CHECK(asyncio_subprocess_transport_get_pipe_transport(t, 3) == NULL);
  CHECK(asyncio_subprocess_transport_get_pipe_transport(t, -1) == NULL);
  CHECK(asyncio_subprocess_transport_get_pipe_transport(NULL, 0) == NULL);
  CHECK(asyncio_subprocess_transport_get_pipe_transport(in, 0) == NULL); /* a pipe is not one */
  CHECK(asyncio_subprocess_transport_get_pid(NULL) == -EINVAL);
  CHECK(asyncio_subprocess_transport_get_pid(in) == -EINVAL);
  int code;
  CHECK_RC(asyncio_subprocess_transport_get_returncode(t, NULL), -EINVAL);
  CHECK_RC(asyncio_subprocess_transport_get_returncode(out, &code), -EINVAL);
  CHECK_RC(asyncio_subprocess_transport_send_signal(NULL, 0), -EINVAL);
  CHECK_RC(asyncio_subprocess_transport_kill(in), -EINVAL);
  CHECK(asyncio_transport_get_loop(t) == asyncio_get_running_loop());

  CHECK_RC(asyncio_transport_write(t, "x", 1), -EOPNOTSUPP);
  struct iovec v = {"x", 1};
  CHECK_RC(asyncio_transport_writelines(t, &v, 1), -EOPNOTSUPP);
  CHECK_RC(asyncio_transport_write_eof(t), -EOPNOTSUPP);
  CHECK(!asyncio_transport_can_write_eof(t));
  CHECK_RC(asyncio_transport_abort(t), -EOPNOTSUPP);
  CHECK_RC(asyncio_transport_pause_reading(t), -EOPNOTSUPP);
  CHECK_RC(asyncio_transport_resume_reading(t), -EOPNOTSUPP);
  CHECK(!asyncio_transport_is_reading(t));
  CHECK_RC(asyncio_transport_get_fd(t), -EOPNOTSUPP);
  CHECK(asyncio_transport_get_write_buffer_size(t) == 0);
  size_t lo, hi;
  CHECK_RC(asyncio_transport_get_write_buffer_limits(t, &lo, &hi), -EOPNOTSUPP);
  CHECK_RC(asyncio_transport_set_write_buffer_limits(t, 10, 1), -EOPNOTSUPP);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  CHECK_RC(asyncio_transport_get_peername(t, (struct sockaddr *)&ss, &sl), -ENOTCONN);
  CHECK_RC(asyncio_transport_sendto(t, "x", 1, NULL, 0), -EOPNOTSUPP);
  CHECK_RC(asyncio_loop_sendfile(asyncio_get_running_loop(), t, 0, 0, 1, NULL, NULL),
           -EOPNOTSUPP);

  /* set_protocol / get_protocol: callbacks go to the new table (here: none at all). */
  void *inst = NULL;
  CHECK(asyncio_transport_get_protocol(t, &inst) == &rec_proto && inst == &r);
  CHECK_RC(asyncio_transport_set_protocol(t, &other_proto, NULL), 0);
  CHECK(asyncio_transport_get_protocol(t, &inst) == &other_proto && inst == NULL);
  CHECK_RC(asyncio_transport_set_protocol(t, &rec_proto, &r), 0);

  /* The pipes are ordinary pipe transports. */
  CHECK(asyncio_transport_is_reading(out));
  CHECK_RC(asyncio_transport_pause_reading(out), 0);
  CHECK_RC(asyncio_transport_resume_reading(out), 0);
  CHECK_RC(asyncio_transport_close(t), 0);
  CHECK_RC(asyncio_event_wait(r.done), 0);
  CHECK(r.returncode == -SIGKILL);
  rec_free(&r);
  CHECK(no_children());
  return 0;
}

TEST(generic_transport_calls) {
  (void)state;
  assert_ok(run_main(generic_main, NULL));
  ASSERT_SOFT();
}

/* ---- cancellation while connecting ---------------------------------------------------------- */

static rec_t cancel_rec;

static int creator(void *arg) {
  (void)arg;
  asyncio_transport_t *t = NULL;
  char *argv[] = {"sleep", "100", NULL};
  int rc = asyncio_loop_subprocess_exec(asyncio_get_running_loop(), rec_factory, &cancel_rec,
                                        "sleep", argv, NULL, &t, NULL);
  CHECK(t == NULL);
  return rc;
}

static int cancel_main(void *arg) {
  (void)arg;
  rec_init(&cancel_rec);
  asyncio_task_t *task = NULL;
  CHECK_RC(asyncio_create_task(&task, creator, NULL, NULL), 0);
  if (!task) return -1;
  CHECK_RC(asyncio_sleep(0), 0); /* the creator starts the child and waits for stdin's pipe */
  CHECK(!asyncio_future_done(task));
  CHECK_RC(asyncio_task_cancel(task, NULL), 1);
  CHECK_RC(asyncio_await(task, NULL), -ECANCELED);
  CHECK_RC(asyncio_task_free(task), 0);
  CHECK(cancel_rec.factory_calls == 0 && cancel_rec.norder == 0);
  WAIT_UNTIL(no_children()); /* killed and reaped in the background */
  rec_free(&cancel_rec);
  return 0;
}

TEST(cancelled_while_connecting) {
  (void)state;
  assert_ok(run_main(cancel_main, NULL));
  ASSERT_SOFT();
}

/* ---- loop close with a running child ------------------------------------------------------- */

static rec_t kept_rec;
static pid_t kept_pid;

static int leave_running_main(void *arg) {
  (void)arg;
  asyncio_transport_t *t = NULL;
  CHECK_RC(start_sleep(&kept_rec, &t), 0);
  if (!t) return -1;
  kept_pid = asyncio_subprocess_transport_get_pid(t);
  return 0; /* the loop closes with the child running */
}

TEST(loop_close_with_running_child) {
  (void)state;
  memset(&kept_rec, 0, sizeof kept_rec); /* no event: the loop goes before it could be set */
  assert_ok(run_main(leave_running_main, NULL));
  ASSERT_SOFT();
  /* killed and reaped by the loop's close: gone, not a zombie; no more callbacks */
  errno = 0;
  assert_int_equal(waitpid(kept_pid, NULL, WNOHANG), -1);
  assert_int_equal(errno, ECHILD);
  assert_int_equal(kill(kept_pid, 0), -1);
  assert_int_equal(errno, ESRCH);
  assert_int_equal(kept_rec.made, 1);
  assert_int_equal(kept_rec.lost, 0);
  assert_int_equal(kept_rec.exited, 0);
}

/*
 * The loop closed while subprocess_exec waits for connection_made (no
 * pipes, so that is its first suspension): its task is destroyed there, and
 * the waiter future, the record and the child must all go with the loop.
 */
static int exec_then_stop(void *arg) {
  asyncio_loop_t *loop = arg;
  char *argv[] = {"sleep", "100", NULL};
  asyncio_subprocess_options_t o = {.stdin_mode = ASYNCIO_SUBPROCESS_DEVNULL,
                                    .stdout_mode = ASYNCIO_SUBPROCESS_DEVNULL,
                                    .stderr_mode = ASYNCIO_SUBPROCESS_DEVNULL};
  asyncio_transport_t *t = NULL;
  asyncio_loop_stop(loop); /* run_forever returns at the end of this iteration */
  (void)asyncio_loop_subprocess_exec(loop, rec_factory, &kept_rec, "sleep", argv, &o, &t, NULL);
  CHECK(!"subprocess_exec returned: the loop should have closed under it");
  return 0;
}

TEST(loop_close_while_waiting_for_connection_made) {
  (void)state;
  memset(&kept_rec, 0, sizeof kept_rec);
  asyncio_loop_t *loop = NULL;
  assert_ok(asyncio_loop_new(&loop, NULL));
  asyncio_task_t *t = NULL;
  assert_ok(asyncio_loop_create_task(loop, &t, exec_then_stop, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  assert_false(asyncio_future_done(t));
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
  ASSERT_SOFT();
  assert_int_equal(kept_rec.factory_calls, 1);
  assert_int_equal(kept_rec.made, 0);
  assert_true(no_children()); /* killed and reaped by the close */
}

/* ---- the waitpid polling fallback ----------------------------------------------------------- */

TEST(polling_fallback) {
  (void)state;
  asyncio__subprocess_no_pidfd = 1;
  assert_ok(run_main(fds_main, NULL));
  ASSERT_SOFT();
  assert_ok(run_main(close_main, NULL));
  ASSERT_SOFT();
  memset(&kept_rec, 0, sizeof kept_rec);
  assert_ok(run_main(leave_running_main, NULL));
  ASSERT_SOFT();
  assert_int_equal(kill(kept_pid, 0), -1);
  asyncio__subprocess_no_pidfd = 0;
}

/* ---- allocation failures: nothing leaks, no child is left, no callback without success ------- */

static int nomem_main(void *arg) {
  (void)arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  char *argv[] = {"cat", NULL};
  int failures = 0;
  for (long n = 1; n < 200; n++) {
    rec_t r;
    rec_init(&r);
    asyncio_transport_t *t = NULL;
    harness_fail_alloc_after(n);
    int rc = asyncio_loop_subprocess_exec(loop, rec_factory, &r, "cat", argv, NULL, &t, NULL);
    harness_fail_alloc_after(0);
    if (rc == 0) {
      asyncio_transport_t *in = asyncio_subprocess_transport_get_pipe_transport(t, 0);
      CHECK_RC(asyncio_transport_write(in, "hi", 2), 0);
      CHECK_RC(asyncio_transport_write_eof(in), 0);
      CHECK_RC(asyncio_event_wait(r.done), 0);
      /* Either it worked, or stdout's registration with the loop, which
       * happens once connection_made ran, was out of memory: that pipe is
       * lost with the error (and cat dies writing to it). */
      CHECK((r.out[1] && !strcmp(r.out[1], "hi") && r.returncode == 0) ||
            (r.pipe_err[1] == -ENOMEM && r.outlen[1] == 0));
      if (r.pipe_err[1]) {
        rc = r.pipe_err[1];
        failures++;
      }
    } else {
      CHECK(rc == -ENOMEM || rc == -ENOTCONN); /* a pipe transport lost to ENOMEM */
      CHECK(t == NULL && r.factory_calls == 0 && r.norder == 0);
      failures++;
    }
    rec_free(&r);
    WAIT_UNTIL(no_children());
    if (rc == 0) break;
  }
  CHECK(failures > 0);
  return 0;
}

TEST(allocation_failures) {
  (void)state;
  assert_ok(run_main(nomem_main, NULL));
  ASSERT_SOFT();
}
