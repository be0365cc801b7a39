/*
 * test_subprocess.c - child processes (include/asyncio/subprocess.h).
 *
 * Python origin: Lib/asyncio/subprocess.py, base_subprocess.py,
 * unix_events.py (_UnixSubprocessTransport, PidfdChildWatcher) and
 * Lib/test/test_asyncio/test_subprocess.py.  Real children only: true,
 * false, /bin/sh, cat, sleep, printf.  Nothing asserts timings: a child
 * that must outlive a wait is `sleep 100`, killed afterwards.  Besides the
 * harness's memory and descriptor checks, tests check that no child is
 * left unreaped (waitpid(-1, WNOHANG) fails with ECHILD).
 */
#include "net_helpers.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

extern int asyncio__subprocess_no_pidfd; /* src/subprocess.c: tests only */

/* No child of ours is left, running or zombie. */
static bool no_children(void) {
  errno = 0;
  return waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD;
}

static int run_and_wait(const char *file, char *const argv[], const asyncio_subprocess_options_t *o,
                        int *code) {
  asyncio_process_t *p = NULL;
  int rc = asyncio_create_subprocess_exec(&p, file, argv, o);
  if (rc) return rc;
  rc = asyncio_process_wait(p, code);
  CHECK_RC(asyncio_process_free(p), 0);
  return rc;
}

/* ---- return codes -------------------------------------------------------------- */

static int codes_main(void *arg) {
  (void)arg;
  int code = -1;
  char *t[] = {"true", NULL}, *f[] = {"false", NULL};
  char *sh[] = {"sh", "-c", "exit 7", NULL};
  CHECK_RC(run_and_wait("true", t, NULL, &code), 0);
  CHECK(code == 0);
  CHECK_RC(run_and_wait("false", f, NULL, &code), 0);
  CHECK(code == 1);
  CHECK_RC(run_and_wait("/bin/sh", sh, NULL, &code), 0);
  CHECK(code == 7);

  /* returncode is None until the exit is seen, then stays. */
  asyncio_process_t *p = NULL;
  CHECK_RC(asyncio_create_subprocess_exec(&p, "sh", sh, NULL), 0);
  if (!p) return -1;
  CHECK(asyncio_process_pid(p) > 0);
  CHECK_RC(asyncio_process_wait(p, NULL), 0);
  CHECK_RC(asyncio_process_returncode(p, &code), 1);
  CHECK(code == 7);
  code = -1;
  CHECK_RC(asyncio_process_wait(p, &code), 0); /* again: at once */
  CHECK(code == 7);
  CHECK_RC(asyncio_process_free(p), 0);
  CHECK(no_children());
  return 0;
}

TEST(exit_codes) {
  (void)state;
  assert_ok(run_main(codes_main, NULL));
  ASSERT_SOFT();
}

static int signal_main(void *arg) {
  (void)arg;
  char *argv[] = {"sleep", "100", NULL};
  asyncio_process_t *p = NULL;
  CHECK_RC(asyncio_create_subprocess_exec(&p, "sleep", argv, NULL), 0);
  if (!p) return -1;
  int code = 1;
  CHECK_RC(asyncio_process_returncode(p, &code), 0);
  CHECK_RC(asyncio_process_kill(p), 0);
  CHECK_RC(asyncio_process_wait(p, &code), 0);
  CHECK(code == -SIGKILL);
  /* ProcessLookupError once reaped */
  CHECK_RC(asyncio_process_send_signal(p, SIGTERM), -ESRCH);
  CHECK_RC(asyncio_process_kill(p), -ESRCH);
  CHECK_RC(asyncio_process_terminate(p), -ESRCH);
  CHECK_RC(asyncio_process_free(p), 0);

  CHECK_RC(asyncio_create_subprocess_exec(&p, "sleep", argv, NULL), 0);
  if (!p) return -1;
  CHECK_RC(asyncio_process_send_signal(p, -1), -EINVAL);
  CHECK_RC(asyncio_process_send_signal(p, 0), 0); /* alive */
  CHECK_RC(asyncio_process_terminate(p), 0);
  CHECK_RC(asyncio_process_wait(p, &code), 0);
  CHECK(code == -SIGTERM);
  CHECK_RC(asyncio_process_free(p), 0);
  CHECK(no_children());
  return 0;
}

TEST(signal_death_and_esrch) {
  (void)state;
  assert_ok(run_main(signal_main, NULL));
  ASSERT_SOFT();
}

static int after_exit_main(void *arg) {
  (void)arg;
  char *argv[] = {"true", NULL};
  asyncio_process_t *p = NULL;
  CHECK_RC(asyncio_create_subprocess_exec(&p, "true", argv, NULL), 0);
  if (!p) return -1;
  CHECK_RC(asyncio_process_wait(p, NULL), 0);
  CHECK_RC(asyncio_process_send_signal(p, SIGTERM), -ESRCH);
  CHECK_RC(asyncio_process_send_signal(p, 0), -ESRCH);
  CHECK_RC(asyncio_process_kill(p), -ESRCH);
  CHECK_RC(asyncio_process_free(p), 0);
  return 0;
}

TEST(send_signal_after_exit) {
  (void)state;
  assert_ok(run_main(after_exit_main, NULL));
  ASSERT_SOFT();
}

/* ---- pipes ------------------------------------------------------------------------ */

static int lines_main(void *arg) {
  (void)arg;
  char *argv[] = {"printf", "one\\ntwo\\nthree\\n", NULL};
  asyncio_subprocess_options_t o = {.stdout_mode = ASYNCIO_SUBPROCESS_PIPE};
  asyncio_process_t *p = NULL;
  CHECK_RC(asyncio_create_subprocess_exec(&p, "printf", argv, &o), 0);
  if (!p) return -1;
  CHECK(asyncio_process_stdin(p) == NULL);
  CHECK(asyncio_process_stderr(p) == NULL);
  asyncio_stream_reader_t *r = asyncio_process_stdout(p);
  CHECK(r != NULL);
  const char *want[] = {"one\n", "two\n", "three\n"};
  int i = 0;
  const char *line;
  ssize_t n;
  ASYNCIO_STREAM_FOR_LINES(n, r, &line) {
    CHECK(i < 3 && (size_t)n == strlen(want[i]) && !memcmp(line, want[i], (size_t)n));
    i++;
  }
  CHECK(n == 0 && i == 3);
  int code = -1;
  CHECK_RC(asyncio_process_wait(p, &code), 0);
  CHECK(code == 0);
  CHECK_RC(asyncio_process_free(p), 0);
  CHECK(no_children());
  return 0;
}

TEST(stdout_pipe_lines) {
  (void)state;
  assert_ok(run_main(lines_main, NULL));
  ASSERT_SOFT();
}

static uint64_t sum64(const char *d, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)d[i]) * 1099511628211ull;
  return h;
}

static int cat_main(void *arg) {
  (void)arg;
  size_t len = (size_t)1 << 20;
  char *in = malloc(len);
  if (!in) return -ENOMEM;
  for (size_t i = 0; i < len; i++) in[i] = (char)(i * 7 + i / 251);
  char *argv[] = {"cat", NULL};
  asyncio_subprocess_options_t o = {.stdin_mode = ASYNCIO_SUBPROCESS_PIPE,
                                    .stdout_mode = ASYNCIO_SUBPROCESS_PIPE};
  asyncio_process_t *p = NULL;
  CHECK_RC(asyncio_create_subprocess_exec(&p, "cat", argv, &o), 0);
  if (p) {
    char *out = NULL;
    size_t outlen = 0;
    CHECK_RC(asyncio_process_communicate(p, in, len, &out, &outlen, NULL, NULL), 0);
    CHECK(outlen == len && out && sum64(out, outlen) == sum64(in, len) && !memcmp(out, in, len));
    asyncio_stream_free_data(out, outlen);
    int code = -1;
    CHECK_RC(asyncio_process_returncode(p, &code), 1);
    CHECK(code == 0);
    CHECK_RC(asyncio_process_free(p), 0);
  }
  /* The same by hand: write, drain, close, read back. */
  CHECK_RC(asyncio_create_subprocess_exec(&p, "cat", argv, &o), 0);
  if (p) {
    asyncio_stream_writer_t *w = asyncio_process_stdin(p);
    CHECK_RC(asyncio_stream_write(w, "ping\n", 5), 0);
    CHECK_RC(asyncio_stream_drain(w), 0);
    const char *line = NULL;
    CHECK(asyncio_stream_readline(asyncio_process_stdout(p), &line) == 5);
    CHECK(line && !memcmp(line, "ping\n", 5));
    CHECK_RC(asyncio_stream_close(w), 0);
    CHECK(asyncio_stream_readline(asyncio_process_stdout(p), &line) == 0);
    CHECK_RC(asyncio_process_wait(p, NULL), 0);
    CHECK_RC(asyncio_process_free(p), 0);
  }
  free(in);
  CHECK(no_children());
  return 0;
}

TEST(stdin_pipe_cat_communicate_1mib) {
  (void)state;
  assert_ok(run_main(cat_main, NULL));
  ASSERT_SOFT();
}

static int stderr_main(void *arg) {
  (void)arg;
  char *argv[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
  asyncio_subprocess_options_t o = {.stdout_mode = ASYNCIO_SUBPROCESS_PIPE,
                                    .stderr_mode = ASYNCIO_SUBPROCESS_PIPE};
  asyncio_process_t *p = NULL;
  CHECK_RC(asyncio_create_subprocess_exec(&p, "/bin/sh", argv, &o), 0);
  if (p) {
    char *out = NULL, *err = NULL;
    size_t ol = 0, el = 0;
    CHECK_RC(asyncio_process_communicate(p, "ignored", 7, &out, &ol, &err, &el), 0);
    CHECK(ol == 4 && !strcmp(out, "out\n"));
    CHECK(el == 4 && !strcmp(err, "err\n"));
    asyncio_stream_free_data(out, ol);
    asyncio_stream_free_data(err, el);
    int code = 0;
    CHECK_RC(asyncio_process_wait(p, &code), 0);
    CHECK(code == 3);
    CHECK_RC(asyncio_process_free(p), 0);
  }
  /* stderr=STDOUT: one stream, in order. */
  o.stderr_mode = ASYNCIO_SUBPROCESS_STDOUT;
  CHECK_RC(asyncio_create_subprocess_exec(&p, "/bin/sh", argv, &o), 0);
  if (p) {
    CHECK(asyncio_process_stderr(p) == NULL);
    char *out = NULL, *err = (char *)1;
    size_t ol = 0, el = 1;
    CHECK_RC(asyncio_process_communicate(p, NULL, 0, &out, &ol, &err, &el), 0);
    CHECK(ol == 8 && !strcmp(out, "out\nerr\n"));
    CHECK(err == NULL && el == 0);
    asyncio_stream_free_data(out, ol);
    CHECK_RC(asyncio_process_free(p), 0);
  }
  /* Only stderr piped; stdout discarded. */
  o.stdout_mode = ASYNCIO_SUBPROCESS_DEVNULL;
  o.stderr_mode = ASYNCIO_SUBPROCESS_PIPE;
  CHECK_RC(asyncio_create_subprocess_exec(&p, "/bin/sh", argv, &o), 0);
  if (p) {
    char *err = NULL;
    size_t el = 0;
    CHECK_RC(asyncio_process_communicate(p, NULL, 0, NULL, NULL, &err, &el), 0);
    CHECK(el == 4 && !strcmp(err, "err\n"));
    asyncio_stream_free_data(err, el);
    CHECK_RC(asyncio_process_free(p), 0);
  }
  CHECK(no_children());
  return 0;
}

TEST(stderr_pipe_and_stdout_merge) {
  (void)state;
  assert_ok(run_main(stderr_main, NULL));
  ASSERT_SOFT();
}

static int devnull_main(void *arg) {
  (void)arg;
  char *cat[] = {"cat", NULL};
  asyncio_subprocess_options_t o = {.stdin_mode = ASYNCIO_SUBPROCESS_DEVNULL,
                                    .stdout_mode = ASYNCIO_SUBPROCESS_PIPE};
  asyncio_process_t *p = NULL;
  CHECK_RC(asyncio_create_subprocess_exec(&p, "cat", cat, &o), 0);
  if (p) {
    char *out = NULL;
    size_t ol = 1;
    CHECK_RC(asyncio_process_communicate(p, NULL, 0, &out, &ol, NULL, NULL), 0);
    CHECK(out && ol == 0); /* EOF at once from /dev/null */
    asyncio_stream_free_data(out, ol);
    CHECK_RC(asyncio_process_free(p), 0);
  }
  char *pf[] = {"printf", "lost", NULL};
  asyncio_subprocess_options_t d = {.stdout_mode = ASYNCIO_SUBPROCESS_DEVNULL};
  int code = -1;
  CHECK_RC(run_and_wait("printf", pf, &d, &code), 0);
  CHECK(code == 0);
  CHECK(no_children());
  return 0;
}

TEST(devnull) {
  (void)state;
  assert_ok(run_main(devnull_main, NULL));
  ASSERT_SOFT();
}

static int passfd_main(void *arg) {
  (void)arg;
  int fds[2];
  CHECK(pipe(fds) == 0);
  char *argv[] = {"printf", "via fd", NULL};
  asyncio_subprocess_options_t o = {.stdout_mode = fds[1]};
  int code = -1;
  CHECK_RC(run_and_wait("printf", argv, &o, &code), 0);
  CHECK(code == 0);
  close(fds[1]);
  char buf[32] = {0};
  CHECK(read(fds[0], buf, sizeof buf) == 6 && !memcmp(buf, "via fd", 6));
  close(fds[0]);
  /* stdin from a passed descriptor, too */
  CHECK(pipe(fds) == 0);
  CHECK(write(fds[1], "abc", 3) == 3);
  close(fds[1]);
  char *cat[] = {"cat", NULL};
  asyncio_subprocess_options_t c = {.stdin_mode = fds[0], .stdout_mode = ASYNCIO_SUBPROCESS_PIPE};
  asyncio_process_t *p = NULL;
  CHECK_RC(asyncio_create_subprocess_exec(&p, "cat", cat, &c), 0);
  close(fds[0]);
  if (p) {
    char *out = NULL;
    size_t ol = 0;
    CHECK_RC(asyncio_process_communicate(p, NULL, 0, &out, &ol, NULL, NULL), 0);
    CHECK(ol == 3 && !strcmp(out, "abc"));
    asyncio_stream_free_data(out, ol);
    CHECK_RC(asyncio_process_free(p), 0);
  }
  CHECK(no_children());
  return 0;
}

TEST(pass_fd) {
  (void)state;
  assert_ok(run_main(passfd_main, NULL));
  ASSERT_SOFT();
}

static int cwd_env_main(void *arg) {
  (void)arg;
  char *env[] = {"FOO=bar baz", "PATH=/usr/bin:/bin", NULL};
  char *argv[] = {"sh", "-c", "pwd; echo \"$FOO\"; echo \"${HOME-unset}\"", NULL};
  asyncio_subprocess_options_t o = {.stdout_mode = ASYNCIO_SUBPROCESS_PIPE, .cwd = "/", .env = env};
  asyncio_process_t *p = NULL;
  CHECK_RC(asyncio_create_subprocess_exec(&p, "sh", argv, &o), 0);
  if (p) {
    char *out = NULL;
    size_t ol = 0;
    CHECK_RC(asyncio_process_communicate(p, NULL, 0, &out, &ol, NULL, NULL), 0);
    CHECK(out && !strcmp(out, "/\nbar baz\nunset\n"));
    asyncio_stream_free_data(out, ol);
    CHECK_RC(asyncio_process_free(p), 0);
  }
  /* The program is looked up in the given environment's PATH. */
  char *noenv[] = {"PATH=/nonexistent-dir", NULL};
  char *t[] = {"true", NULL};
  asyncio_subprocess_options_t n = {.env = noenv};
  CHECK_RC(asyncio_create_subprocess_exec(&p, "true", t, &n), -ENOENT);
  CHECK(p == NULL);
  CHECK(no_children());
  return 0;
}

TEST(cwd_and_env) {
  (void)state;
  assert_ok(run_main(cwd_env_main, NULL));
  ASSERT_SOFT();
}

/* ---- failures and validation ---------------------------------------------------- */

static int enoent_main(void *arg) {
  (void)arg;
  asyncio_process_t *p = (asyncio_process_t *)1;
  char *argv[] = {"x", NULL};
  asyncio_subprocess_options_t o = {.stdin_mode = ASYNCIO_SUBPROCESS_PIPE,
                                    .stdout_mode = ASYNCIO_SUBPROCESS_PIPE,
                                    .stderr_mode = ASYNCIO_SUBPROCESS_PIPE};
  CHECK_RC(asyncio_create_subprocess_exec(&p, "/nonexistent/program", argv, &o), -ENOENT);
  CHECK(p == NULL);
  CHECK_RC(asyncio_create_subprocess_exec(&p, "no-such-program-asyncio-c", argv, &o), -ENOENT);
  CHECK_RC(asyncio_create_subprocess_exec(&p, "", argv, NULL), -ENOENT);
  CHECK_RC(asyncio_create_subprocess_exec(&p, "/etc/passwd", argv, NULL), -EACCES);
  asyncio_subprocess_options_t c = {.cwd = "/nonexistent-dir"};
  char *t[] = {"true", NULL};
  CHECK_RC(asyncio_create_subprocess_exec(&p, "true", t, &c), -ENOENT);
  CHECK(no_children());

  /* argument checks */
  CHECK_RC(asyncio_create_subprocess_exec(NULL, "true", t, NULL), -EINVAL);
  CHECK_RC(asyncio_create_subprocess_exec(&p, NULL, t, NULL), -EINVAL);
  CHECK_RC(asyncio_create_subprocess_exec(&p, "true", NULL, NULL), -EINVAL);
  char *empty[] = {NULL};
  CHECK_RC(asyncio_create_subprocess_exec(&p, "true", empty, NULL), -EINVAL);
  CHECK_RC(asyncio_create_subprocess_shell(&p, NULL, NULL), -EINVAL);
  asyncio_subprocess_options_t bad = {.stdin_mode = ASYNCIO_SUBPROCESS_STDOUT};
  CHECK_RC(asyncio_create_subprocess_exec(&p, "true", t, &bad), -EINVAL);
  bad = (asyncio_subprocess_options_t){.stdout_mode = ASYNCIO_SUBPROCESS_STDOUT};
  CHECK_RC(asyncio_create_subprocess_exec(&p, "true", t, &bad), -EINVAL);
  bad = (asyncio_subprocess_options_t){.stderr_mode = -42};
  CHECK_RC(asyncio_create_subprocess_exec(&p, "true", t, &bad), -EINVAL);
  bad = (asyncio_subprocess_options_t){.stdout_mode = 987};
  CHECK_RC(asyncio_create_subprocess_exec(&p, "true", t, &bad), -EBADF);
  CHECK(p == NULL);
  int code;
  CHECK(asyncio_process_pid(NULL) == -EINVAL);
  CHECK_RC(asyncio_process_returncode(NULL, &code), -EINVAL);
  CHECK_RC(asyncio_process_wait(NULL, NULL), -EINVAL);
  CHECK_RC(asyncio_process_communicate(NULL, NULL, 0, NULL, NULL, NULL, NULL), -EINVAL);
  CHECK_RC(asyncio_process_send_signal(NULL, SIGTERM), -EINVAL);
  CHECK_RC(asyncio_process_kill(NULL), -EINVAL);
  CHECK_RC(asyncio_process_terminate(NULL), -EINVAL);
  CHECK_RC(asyncio_process_free(NULL), -EINVAL);
  CHECK(asyncio_process_stdin(NULL) == NULL && asyncio_process_stdout(NULL) == NULL &&
        asyncio_process_stderr(NULL) == NULL);
  CHECK_RC(asyncio_create_subprocess_exec(&p, "true", t, NULL), 0);
  if (p) {
    char *out;
    CHECK_RC(asyncio_process_communicate(p, NULL, 0, &out, NULL, NULL, NULL), -EINVAL);
    CHECK_RC(asyncio_process_communicate(p, NULL, 5, NULL, NULL, NULL, NULL), -EINVAL);
    CHECK_RC(asyncio_process_returncode(p, NULL), -EINVAL);
    CHECK_RC(asyncio_process_communicate(p, NULL, 0, NULL, NULL, NULL, NULL), 0);
    CHECK_RC(asyncio_process_free(p), 0);
  }
  CHECK(no_children());
  return 0;
}

TEST(nonexistent_program_and_arguments) {
  (void)state;
  assert_ok(run_main(enoent_main, NULL));
  ASSERT_SOFT();
  asyncio_process_t *p = NULL;
  char *t[] = {"true", NULL};
  assert_rc(asyncio_create_subprocess_exec(&p, "true", t, NULL), ASYNCIO_ENOTASK);
  assert_rc(asyncio_create_subprocess_shell(&p, "true", NULL), ASYNCIO_ENOTASK);
  assert_true(p == NULL);
}

/* Writes `body` to dir/prog with `mode`. */
static void put_prog(const char *dir, const char *body, mode_t mode) {
  char path[128];
  snprintf(path, sizeof path, "%s/prog", dir);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  CHECK(fd >= 0);
  if (fd < 0) return;
  CHECK(write(fd, body, strlen(body)) == (ssize_t)strlen(body));
  close(fd);
  CHECK(chmod(path, mode) == 0);
}

/* Runs "prog" with PATH=path: the exit code, or the creation error. */
static int run_prog(const char *path) {
  char env0[256];
  snprintf(env0, sizeof env0, "PATH=%s", path);
  char *env[] = {env0, NULL};
  char *argv[] = {"prog", NULL};
  asyncio_subprocess_options_t o = {.env = env};
  asyncio_process_t *p = NULL;
  int rc = asyncio_create_subprocess_exec(&p, "prog", argv, &o);
  if (rc < 0) return rc;
  int code = -1;
  CHECK_RC(asyncio_process_wait(p, &code), 0);
  CHECK_RC(asyncio_process_free(p), 0);
  return code;
}

/*
 * The PATH search is _posixsubprocess's: every candidate is tried, and only
 * when none runs is the first error other than "no such file" returned.
 * execvp would stop at a candidate that exists but cannot run (ENOEXEC).
 */
static int path_search_main(void *arg) {
  (void)arg;
  char a[] = "/tmp/asyncio-path-a-XXXXXX", b[] = "/tmp/asyncio-path-b-XXXXXX";
  char c[] = "/tmp/asyncio-path-c-XXXXXX";
  CHECK(mkdtemp(a) && mkdtemp(b) && mkdtemp(c));
  put_prog(a, "\x01\x02 not a program\n", 0755); /* ENOEXEC */
  put_prog(b, "#!/bin/sh\nexit 7\n", 0755);
  put_prog(c, "#!/bin/sh\nexit 8\n", 0644); /* EACCES */
  char path[256];
  snprintf(path, sizeof path, "/nonexistent-asyncio:%s:%s", a, b);
  CHECK_RC(run_prog(path), 7);
  snprintf(path, sizeof path, "%s:%s", c, b);
  CHECK_RC(run_prog(path), 7);
  snprintf(path, sizeof path, "%s:/nonexistent-asyncio:%s", a, c);
  CHECK_RC(run_prog(path), -ENOEXEC); /* the first real error, not the last */
  snprintf(path, sizeof path, "/nonexistent-asyncio:%s", c);
  CHECK_RC(run_prog(path), -EACCES);
  CHECK_RC(run_prog("/nonexistent-asyncio"), -ENOENT);
  char f[160];
  const char *dirs[] = {a, b, c};
  for (int i = 0; i < 3; i++) {
    snprintf(f, sizeof f, "%s/prog", dirs[i]);
    unlink(f);
    rmdir(dirs[i]);
  }
  CHECK(no_children());
  return 0;
}

TEST(path_search_tries_every_candidate) {
  (void)state;
  assert_ok(run_main(path_search_main, NULL));
  ASSERT_SOFT();
}

/*
 * A program started with 0, 1 and 2 closed (a daemon): /dev/null and the
 * exec error pipe then take them, and the child's dup2 onto 0-2 must not
 * close the error pipe before exec, or a missing program looks started.
 */
static int low_fds_main(void *arg) {
  (void)arg;
  char *argv[] = {"no-such-program-asyncio-c", NULL};
  asyncio_subprocess_options_t o = {.stdin_mode = ASYNCIO_SUBPROCESS_DEVNULL,
                                    .stdout_mode = ASYNCIO_SUBPROCESS_DEVNULL,
                                    .stderr_mode = ASYNCIO_SUBPROCESS_DEVNULL};
  int saved[3];
  for (int i = 0; i < 3; i++) saved[i] = fcntl(i, F_DUPFD_CLOEXEC, 3);
  for (int i = 0; i < 3; i++) close(i);
  asyncio_process_t *p = NULL;
  int rc = asyncio_create_subprocess_exec(&p, "no-such-program-asyncio-c", argv, &o);
  int code = 0;
  if (p) {
    /* Before 0-2 come back: the process holds descriptors that may be among them. */
    CHECK_RC(asyncio_process_wait(p, &code), 0);
    CHECK_RC(asyncio_process_free(p), 0);
  }
  for (int i = 0; i < 3; i++) {
    dup2(saved[i], i);
    close(saved[i]);
  }
  CHECK(saved[0] >= 3 && saved[1] >= 3 && saved[2] >= 3);
  CHECK_RC(rc, -ENOENT);
  CHECK(p == NULL);
  CHECK(no_children());
  return 0;
}

TEST(exec_error_with_standard_descriptors_closed) {
  (void)state;
  assert_ok(run_main(low_fds_main, NULL));
  ASSERT_SOFT();
}

static int shell_main(void *arg) {
  (void)arg;
  asyncio_subprocess_options_t o = {.stdout_mode = ASYNCIO_SUBPROCESS_PIPE};
  asyncio_process_t *p = NULL;
  CHECK_RC(asyncio_create_subprocess_shell(&p, "echo $((6 * 7)); exit 5", &o), 0);
  if (p) {
    char *out = NULL;
    size_t ol = 0;
    CHECK_RC(asyncio_process_communicate(p, NULL, 0, &out, &ol, NULL, NULL), 0);
    CHECK(out && !strcmp(out, "42\n"));
    asyncio_stream_free_data(out, ol);
    int code = 0;
    CHECK_RC(asyncio_process_returncode(p, &code), 1);
    CHECK(code == 5);
    CHECK_RC(asyncio_process_free(p), 0);
  }
  /* A missing command is the shell's business: 127. */
  CHECK_RC(asyncio_create_subprocess_shell(&p, "no-such-command-asyncio-c 2>/dev/null", NULL), 0);
  if (p) {
    int code = 0;
    CHECK_RC(asyncio_process_wait(p, &code), 0);
    CHECK(code == 127);
    CHECK_RC(asyncio_process_free(p), 0);
  }
  CHECK(no_children());
  return 0;
}

TEST(shell) {
  (void)state;
  assert_ok(run_main(shell_main, NULL));
  ASSERT_SOFT();
}

/* ---- cancellation and timeouts ----------------------------------------------------- */

static int timeout_main(void *arg) {
  (void)arg;
  char *argv[] = {"sleep", "100", NULL};
  asyncio_process_t *p = NULL;
  CHECK_RC(asyncio_create_subprocess_exec(&p, "sleep", argv, NULL), 0);
  if (!p) return -1;
  asyncio_timeout_t *cm = NULL;
  int rc = asyncio_timeout_enter(&cm, 0.05);
  CHECK_RC(rc, 0);
  if (!rc) rc = asyncio_process_wait(p, NULL);
  CHECK_RC(rc, -ECANCELED);
  CHECK_RC(asyncio_timeout_exit(cm, rc), -ETIMEDOUT);
  asyncio_timeout_free(cm);
  int code = 0;
  CHECK_RC(asyncio_process_returncode(p, &code), 0); /* still running */
  CHECK_RC(asyncio_process_kill(p), 0);
  CHECK_RC(asyncio_process_wait(p, &code), 0);
  CHECK(code == -SIGKILL);
  CHECK_RC(asyncio_process_free(p), 0);
  CHECK(no_children());
  return 0;
}

TEST(wait_timeout_then_kill) {
  (void)state;
  assert_ok(run_main(timeout_main, NULL));
  ASSERT_SOFT();
}

static int communicate_cancel_main(void *arg) {
  bool both = arg != NULL;
  char *argv[] = {"sh", "-c", "echo started; exec sleep 100", NULL};
  asyncio_subprocess_options_t o = {.stdin_mode = ASYNCIO_SUBPROCESS_PIPE,
                                    .stdout_mode = ASYNCIO_SUBPROCESS_PIPE,
                                    .stderr_mode = both ? ASYNCIO_SUBPROCESS_PIPE
                                                        : ASYNCIO_SUBPROCESS_INHERIT};
  asyncio_process_t *p = NULL;
  CHECK_RC(asyncio_create_subprocess_exec(&p, "/bin/sh", argv, &o), 0);
  if (!p) return -1;
  asyncio_timeout_t *cm = NULL;
  int rc = asyncio_timeout_enter(&cm, 0.05);
  CHECK_RC(rc, 0);
  char *out = NULL, *err = NULL;
  size_t ol = 0, el = 0;
  if (!rc) rc = asyncio_process_communicate(p, "x", 1, &out, &ol, &err, &el);
  CHECK_RC(rc, -ECANCELED);
  CHECK(out == NULL && err == NULL);
  CHECK_RC(asyncio_timeout_exit(cm, rc), -ETIMEDOUT);
  asyncio_timeout_free(cm);
  int code = 0;
  CHECK_RC(asyncio_process_returncode(p, &code), 0); /* the child keeps running */
  CHECK_RC(asyncio_process_send_signal(p, 0), 0);
  /* the streams stay usable: stdin was closed by communicate */
  CHECK(asyncio_stream_is_closing(asyncio_process_stdin(p)));
  CHECK_RC(asyncio_process_kill(p), 0);
  CHECK_RC(asyncio_process_wait(p, &code), 0);
  CHECK(code == -SIGKILL);
  CHECK_RC(asyncio_process_free(p), 0);
  CHECK(no_children());
  return 0;
}

TEST(communicate_cancelled) {
  (void)state;
  assert_ok(run_main(communicate_cancel_main, NULL));
  ASSERT_SOFT();
  assert_ok(run_main(communicate_cancel_main, (void *)1));
  ASSERT_SOFT();
}

/* A task cancelled while another waits on the same child. */
typedef struct waitctx {
  asyncio_process_t *p;
  int rc, code;
} waitctx_t;

static int waiter_main(void *arg) {
  waitctx_t *w = arg;
  w->rc = asyncio_process_wait(w->p, &w->code);
  return 0;
}

static int cancel_wait_main(void *arg) {
  (void)arg;
  char *argv[] = {"sleep", "100", NULL};
  asyncio_process_t *p = NULL;
  CHECK_RC(asyncio_create_subprocess_exec(&p, "sleep", argv, NULL), 0);
  if (!p) return -1;
  waitctx_t a = {p, 1, 0}, b = {p, 1, 0};
  asyncio_task_t *ta = NULL, *tb = NULL;
  CHECK_RC(asyncio_create_task(&ta, waiter_main, &a, NULL), 0);
  CHECK_RC(asyncio_create_task(&tb, waiter_main, &b, NULL), 0);
  CHECK_RC(asyncio_sleep(0), 0);
  CHECK_RC(asyncio_process_free(p), -EBUSY); /* tasks wait on it */
  CHECK_RC(asyncio_task_cancel(ta, NULL), 1);
  asyncio_await(ta, NULL);
  CHECK_RC(a.rc, -ECANCELED);
  CHECK_RC(asyncio_process_kill(p), 0);
  CHECK_RC(asyncio_await(tb, NULL), 0);
  CHECK_RC(b.rc, 0);
  CHECK(b.code == -SIGKILL);
  asyncio_task_free(ta);
  asyncio_task_free(tb);
  CHECK_RC(asyncio_process_free(p), 0);
  CHECK(no_children());
  return 0;
}

TEST(wait_cancelled_other_waiter_continues) {
  (void)state;
  assert_ok(run_main(cancel_wait_main, NULL));
  ASSERT_SOFT();
}

/* ---- many, detached, loop close ------------------------------------------------------- */

#define MANY 50

typedef struct one {
  int i, code, rc;
  char out[16];
} one_t;

static int one_main(void *arg) {
  one_t *o = arg;
  char cmd[64];
  snprintf(cmd, sizeof cmd, "echo %d; exit %d", o->i, o->i);
  asyncio_subprocess_options_t so = {.stdout_mode = ASYNCIO_SUBPROCESS_PIPE};
  asyncio_process_t *p = NULL;
  o->rc = asyncio_create_subprocess_shell(&p, cmd, &so);
  if (o->rc) return 0;
  char *out = NULL;
  size_t ol = 0;
  o->rc = asyncio_process_communicate(p, NULL, 0, &out, &ol, NULL, NULL);
  if (!o->rc) {
    snprintf(o->out, sizeof o->out, "%s", out);
    asyncio_stream_free_data(out, ol);
    asyncio_process_returncode(p, &o->code);
  }
  asyncio_process_free(p);
  return 0;
}

static int many_main(void *arg) {
  (void)arg;
  static one_t ones[MANY];
  asyncio_task_t *t[MANY];
  for (int i = 0; i < MANY; i++) {
    ones[i] = (one_t){.i = i, .code = -1, .rc = 1};
    CHECK_RC(asyncio_create_task(&t[i], one_main, &ones[i], NULL), 0);
  }
  for (int i = 0; i < MANY; i++) {
    asyncio_await(t[i], NULL);
    asyncio_task_free(t[i]);
    char want[16];
    snprintf(want, sizeof want, "%d\n", i);
    CHECK_RC(ones[i].rc, 0);
    CHECK(ones[i].code == i);
    CHECK(!strcmp(ones[i].out, want));
  }
  CHECK(no_children());
  return 0;
}

TEST(many_concurrent) {
  (void)state;
  assert_ok(run_main(many_main, NULL));
  ASSERT_SOFT();
}

static pid_t kept_pid;
static asyncio_process_t *kept;

static int leave_running_main(void *arg) {
  bool detach = arg != NULL;
  char *argv[] = {"sleep", "100", NULL};
  asyncio_subprocess_options_t o = {.stdin_mode = ASYNCIO_SUBPROCESS_PIPE,
                                    .stdout_mode = ASYNCIO_SUBPROCESS_PIPE};
  CHECK_RC(asyncio_create_subprocess_exec(&kept, "sleep", argv, &o), 0);
  if (!kept) return -1;
  kept_pid = asyncio_process_pid(kept);
  if (detach) {
    CHECK_RC(asyncio_process_free(kept), 0);
    kept = NULL;
  }
  return 0; /* the loop closes with the child running */
}

TEST(loop_close_with_running_child) {
  (void)state;
  for (int detach = 0; detach < 2; detach++) {
    kept = NULL;
    assert_ok(run_main(leave_running_main, detach ? (void *)1 : NULL));
    ASSERT_SOFT();
    /* killed and reaped by the loop's close: gone, not a zombie */
    errno = 0;
    assert_int_equal(waitpid(kept_pid, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
    assert_int_equal(kill(kept_pid, 0), -1);
    assert_int_equal(errno, ESRCH);
    if (kept) {
      int code = 0;
      assert_int_equal(asyncio_process_returncode(kept, &code), 1);
      assert_int_equal(code, -SIGKILL);
      assert_rc(asyncio_process_wait(kept, NULL), ASYNCIO_ECLOSED);
      assert_rc(asyncio_process_kill(kept), ASYNCIO_ECLOSED);
      assert_true(asyncio_process_stdin(kept) != NULL);
      assert_ok(asyncio_process_free(kept)); /* works after close */
    }
  }
}

/*
 * The loop closed while create_subprocess_exec still waits to connect the
 * child's pipes: its task is destroyed there.  The pipe ends it had not
 * reached yet, the record and the child must all go with the loop (the
 * harness checks descriptors and memory after the case).
 */
static int create_then_stop(void *arg) {
  asyncio_loop_t *loop = arg;
  char *argv[] = {"sleep", "100", NULL};
  asyncio_subprocess_options_t o = {.stdin_mode = ASYNCIO_SUBPROCESS_PIPE,
                                    .stdout_mode = ASYNCIO_SUBPROCESS_PIPE,
                                    .stderr_mode = ASYNCIO_SUBPROCESS_PIPE};
  asyncio_process_t *p = NULL;
  asyncio_loop_stop(loop); /* run_forever returns at the end of this iteration */
  (void)asyncio_create_subprocess_exec(&p, "sleep", argv, &o);
  CHECK(!"create_subprocess_exec returned: the loop should have closed under it");
  return 0;
}

TEST(loop_close_while_connecting_pipes) {
  (void)state;
  asyncio_loop_t *loop = NULL;
  assert_ok(asyncio_loop_new(&loop, NULL));
  asyncio_task_t *t = NULL;
  assert_ok(asyncio_loop_create_task(loop, &t, create_then_stop, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop)); /* the task suspends connecting stdin */
  assert_false(asyncio_future_done(t));
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
  ASSERT_SOFT();
  assert_true(no_children()); /* killed and reaped by the close */
}

/*
 * The loop closed while communicate waits (stdout read in its task, stderr
 * in a helper task): the helper, whose handle lived in the destroyed frame,
 * and the buffers read_all was filling must go with the loop.
 */
static int communicate_then_stop(void *arg) {
  asyncio_loop_t *loop = arg;
  char *argv[] = {"sleep", "100", NULL};
  asyncio_subprocess_options_t o = {.stdin_mode = ASYNCIO_SUBPROCESS_PIPE,
                                    .stdout_mode = ASYNCIO_SUBPROCESS_PIPE,
                                    .stderr_mode = ASYNCIO_SUBPROCESS_PIPE};
  CHECK_RC(asyncio_create_subprocess_exec(&kept, "sleep", argv, &o), 0);
  if (!kept) return -1;
  asyncio_loop_stop(loop); /* run_forever returns at the end of this iteration */
  char *out = NULL, *err = NULL;
  size_t ol = 0, el = 0;
  (void)asyncio_process_communicate(kept, "abc", 3, &out, &ol, &err, &el);
  CHECK(!"communicate returned: the loop should have closed under it");
  return 0;
}

TEST(loop_close_during_communicate) {
  (void)state;
  kept = NULL;
  asyncio_loop_t *loop = NULL;
  assert_ok(asyncio_loop_new(&loop, NULL));
  asyncio_task_t *t = NULL;
  assert_ok(asyncio_loop_create_task(loop, &t, communicate_then_stop, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  assert_false(asyncio_future_done(t));
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
  ASSERT_SOFT();
  assert_true(kept != NULL);
  if (kept) assert_ok(asyncio_process_free(kept));
  assert_true(no_children()); /* killed and reaped by the close */
}

static int detach_main(void *arg) {
  (void)arg;
  /* Exits once its stdin closes, which freeing the handle does. */
  char *argv[] = {"sh", "-c", "read x; echo bye", NULL};
  asyncio_subprocess_options_t o = {.stdin_mode = ASYNCIO_SUBPROCESS_PIPE,
                                    .stdout_mode = ASYNCIO_SUBPROCESS_PIPE};
  asyncio_process_t *p = NULL;
  CHECK_RC(asyncio_create_subprocess_exec(&p, "sh", argv, &o), 0);
  if (!p) return -1;
  pid_t pid = asyncio_process_pid(p);
  CHECK_RC(asyncio_process_free(p), 0);
  /* the detached record reaps it: it disappears without our waitpid */
  WAIT_UNTIL(kill(pid, 0) < 0 && errno == ESRCH);
  CHECK(no_children());
  return 0;
}

TEST(free_detaches_and_reaps) {
  (void)state;
  assert_ok(run_main(detach_main, NULL));
  ASSERT_SOFT();
}

static int limit_main(void *arg) {
  (void)arg;
  char *argv[] = {"printf", "0123456789abcdef\\nok\\n", NULL};
  asyncio_subprocess_options_t o = {.stdout_mode = ASYNCIO_SUBPROCESS_PIPE, .limit = 4};
  asyncio_process_t *p = NULL;
  CHECK_RC(asyncio_create_subprocess_exec(&p, "printf", argv, &o), 0);
  if (!p) return -1;
  const char *line;
  /* the first line is longer than the limit of 4 */
  CHECK(asyncio_stream_readline(asyncio_process_stdout(p), &line) == ASYNCIO_ELIMITOVERRUN);
  char *rest = NULL;
  size_t rl = 0;
  CHECK_RC(asyncio_stream_read_all(asyncio_process_stdout(p), &rest, &rl), 0);
  asyncio_stream_free_data(rest, rl);
  CHECK_RC(asyncio_process_wait(p, NULL), 0);
  CHECK_RC(asyncio_process_free(p), 0);
  return 0;
}

TEST(stream_limit) {
  (void)state;
  assert_ok(run_main(limit_main, NULL));
  ASSERT_SOFT();
}

/* ---- the waitpid polling fallback (no pidfd) --------------------------------------------- */

TEST(polling_fallback) {
  (void)state;
  asyncio__subprocess_no_pidfd = 1;
  assert_ok(run_main(codes_main, NULL));
  ASSERT_SOFT();
  assert_ok(run_main(timeout_main, NULL));
  ASSERT_SOFT();
  assert_ok(run_main(lines_main, NULL));
  ASSERT_SOFT();
  for (int detach = 0; detach < 2; detach++) {
    kept = NULL;
    assert_ok(run_main(leave_running_main, detach ? (void *)1 : NULL));
    ASSERT_SOFT();
    assert_int_equal(kill(kept_pid, 0), -1);
    if (kept) assert_ok(asyncio_process_free(kept));
  }
  asyncio__subprocess_no_pidfd = 0;
}

/* ---- allocation failures: each error path leaks nothing and leaves no child --------- */

static int nomem_main(void *arg) {
  (void)arg;
  char *argv[] = {"cat", NULL};
  asyncio_subprocess_options_t o = {.stdin_mode = ASYNCIO_SUBPROCESS_PIPE,
                                    .stdout_mode = ASYNCIO_SUBPROCESS_PIPE,
                                    .stderr_mode = ASYNCIO_SUBPROCESS_PIPE};
  int failures = 0;
  for (long n = 1; n < 200; n++) {
    asyncio_process_t *p = NULL;
    harness_fail_alloc_after(n);
    int rc = asyncio_create_subprocess_exec(&p, "cat", argv, &o);
    char *out = NULL;
    size_t ol = 0;
    if (rc == 0) rc = asyncio_process_communicate(p, "hi", 2, &out, &ol, NULL, NULL);
    harness_fail_alloc_after(0);
    if (rc == 0) {
      CHECK(ol == 2 && !strcmp(out, "hi"));
      asyncio_stream_free_data(out, ol);
    } else {
      CHECK(rc == -ENOMEM || rc == -ENOTCONN); /* a pipe transport lost to ENOMEM */
      failures++;
      if (p) {
        asyncio_process_kill(p);
        CHECK_RC(asyncio_process_wait(p, NULL), 0);
      }
    }
    if (p) CHECK_RC(asyncio_process_free(p), 0);
    /* children killed on the error paths are reaped by their records */
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
