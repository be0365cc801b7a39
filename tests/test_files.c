/*
 * test_files.c - file I/O on the default executor (include/asyncio/files.h).
 *
 * Python origin: the asyncio.to_thread(open/read/write ...) idiom and the
 * aiofiles package; there is no Lib/test counterpart.
 *
 * Every case works on real files in its own mkdtemp directory, removed at
 * the end.  Reads that must block in a worker use a FIFO with a writer that
 * has not written yet (a FIFO with no writer at all reads end-of-file at
 * once on Linux); writing to it releases the worker.  Real-time waits only
 * give a worker time to enter its system call; no assertion depends on
 * them.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

static const asyncio_run_options_t plain_run = {NULL, true};

static char dir[64];

static void make_dir(void) {
  strcpy(dir, "/tmp/asyncio-files-XXXXXX");
  assert_non_null(mkdtemp(dir));
}

/* Removes the files a case may have left and the directory. */
static void remove_dir(void) {
  static const char *names[] = {"data", "fifo", "empty", "sub"};
  char p[128];
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    if (unlink(p) != 0) rmdir(p);
  }
  assert_int_equal(rmdir(dir), 0);
}

static const char *path_of(const char *name) {
  static char p[4][128];
  static int next;
  char *s = p[next++ % 4];
  snprintf(s, sizeof p[0], "%s/%s", dir, name);
  return s;
}

/* ---- write and read back ---------------------------------------------------- */

#define BIG ((size_t)1 << 20)
#define BIG_EXTRA 1000 /* past one chunk: write loops over two jobs */

static uint32_t checksum(const unsigned char *p, size_t n) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  return h;
}

static int big_main(void *arg) {
  (void)arg;
  size_t n = BIG + BIG_EXTRA;
  unsigned char *out = malloc(n), *in = malloc(n + 1);
  uint32_t x = 12345;
  for (size_t i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    out[i] = (unsigned char)(x >> 16);
  }
  int fd = asyncio_file_open(path_of("data"), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  CHECK(fd >= 0);
  CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  CHECK(asyncio_file_write(fd, out, n) == (ssize_t)n);
  CHECK(asyncio_file_write(fd, out, 0) == 0);
  CHECK_RC(asyncio_file_fsync(fd), 0);
  CHECK_RC(asyncio_file_close(fd), 0);
  fd = asyncio_file_open(path_of("data"), O_RDONLY, 0);
  CHECK(fd >= 0);
  size_t got = 0;
  for (;;) {
    ssize_t k = asyncio_file_read(fd, in + got, n + 1 - got);
    CHECK(k >= 0);
    CHECK((size_t)k <= ASYNCIO_FILE_CHUNK);
    if (k <= 0) break;
    got += (size_t)k;
  }
  CHECK(got == n);
  CHECK(checksum(in, got) == checksum(out, n));
  CHECK(memcmp(in, out, n) == 0);
  CHECK_RC(asyncio_file_close(fd), 0);
  struct stat st;
  CHECK_RC(asyncio_file_stat(path_of("data"), &st), 0);
  CHECK(st.st_size == (off_t)n);
  free(out);
  free(in);
  return 0;
}

/* 1 MiB (and a bit) written, synced and read back byte for byte. */
TEST(write_read_back_1mib) {
  make_dir();
  assert_ok(asyncio_run(big_main, NULL, &plain_run));
  ASSERT_SOFT();
  remove_dir();
}

static int offsets_main(void *arg) {
  (void)arg;
  int fd = asyncio_file_open(path_of("data"), O_CREAT | O_RDWR | O_TRUNC, 0600);
  CHECK(fd >= 0);
  CHECK(asyncio_file_pwrite(fd, "world", 5, 6) == 5);
  CHECK(asyncio_file_pwrite(fd, "hello ", 6, 0) == 6);
  char b[32] = {0};
  CHECK(asyncio_file_pread(fd, b, 5, 6) == 5);
  CHECK(memcmp(b, "world", 5) == 0);
  CHECK(asyncio_file_pread(fd, b, sizeof b, 11) == 0); /* end of file */
  /* Neither moved the file offset. */
  memset(b, 0, sizeof b);
  CHECK(asyncio_file_read(fd, b, sizeof b) == 11);
  CHECK(strcmp(b, "hello world") == 0);
  CHECK(asyncio_file_pwrite(fd, "x", 1, -1) == -EINVAL);
  CHECK(asyncio_file_pread(fd, b, 1, -1) == -EINVAL);
  /* write appends at the offset the read left. */
  CHECK(asyncio_file_write(fd, "!", 1) == 1);
  CHECK(asyncio_file_pread(fd, b, sizeof b, 0) == 12);
  CHECK(memcmp(b, "hello world!", 12) == 0);
  CHECK_RC(asyncio_file_close(fd), 0);
  return 0;
}

/* pread/pwrite at offsets leave the file offset alone. */
TEST(pread_pwrite_offsets) {
  make_dir();
  assert_ok(asyncio_run(offsets_main, NULL, &plain_run));
  ASSERT_SOFT();
  remove_dir();
}

static int read_all_main(void *arg) {
  (void)arg;
  const char text[] = "line one\nline two\n";
  int fd = asyncio_file_open(path_of("data"), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  CHECK(asyncio_file_write(fd, text, sizeof text - 1) == (ssize_t)sizeof text - 1);
  CHECK_RC(asyncio_file_close(fd), 0);
  char *data = NULL;
  size_t len = 0;
  CHECK_RC(asyncio_file_read_all(path_of("data"), &data, &len), 0);
  CHECK(len == sizeof text - 1);
  CHECK(data && strcmp(data, text) == 0); /* NUL-terminated */
  asyncio_file_data_free(data);
  /* An empty file: an empty string, not NULL. */
  fd = asyncio_file_open(path_of("empty"), O_CREAT | O_WRONLY, 0600);
  CHECK_RC(asyncio_file_close(fd), 0);
  CHECK_RC(asyncio_file_read_all(path_of("empty"), &data, &len), 0);
  CHECK(data && len == 0 && data[0] == 0);
  asyncio_file_data_free(data);
  /* A file whose size stat does not know. */
  CHECK_RC(asyncio_file_read_all("/proc/self/status", &data, &len), 0);
  CHECK(data && len > 0 && strncmp(data, "Name:", 5) == 0 && strlen(data) == len);
  asyncio_file_data_free(data);
  /* Errors leave NULL and 0. */
  data = (char *)1;
  len = 7;
  CHECK_RC(asyncio_file_read_all(path_of("missing"), &data, &len), -ENOENT);
  CHECK(data == NULL && len == 0);
  CHECK_RC(asyncio_file_read_all(dir, &data, &len), -EISDIR);
  CHECK(data == NULL && len == 0);
  CHECK_RC(asyncio_file_read_all(NULL, &data, &len), -EINVAL);
  CHECK_RC(asyncio_file_read_all(dir, NULL, &len), -EINVAL);
  CHECK_RC(asyncio_file_read_all(dir, &data, NULL), -EINVAL);
  asyncio_file_data_free(NULL);
  return 0;
}

/* read_all: whole files, empty files, /proc files, errors. */
TEST(read_all) {
  make_dir();
  assert_ok(asyncio_run(read_all_main, NULL, &plain_run));
  ASSERT_SOFT();
  remove_dir();
}

static int stat_unlink_main(void *arg) {
  (void)arg;
  int fd = asyncio_file_open(path_of("data"), O_CREAT | O_WRONLY | O_EXCL, 0640);
  CHECK(fd >= 0);
  CHECK(asyncio_file_write(fd, "abc", 3) == 3);
  CHECK_RC(asyncio_file_close(fd), 0);
  CHECK_RC(asyncio_file_open(path_of("data"), O_CREAT | O_WRONLY | O_EXCL, 0640), -EEXIST);
  struct stat st;
  CHECK_RC(asyncio_file_stat(path_of("data"), &st), 0);
  CHECK(S_ISREG(st.st_mode) && st.st_size == 3);
  CHECK_RC(asyncio_file_stat(dir, &st), 0);
  CHECK(S_ISDIR(st.st_mode));
  CHECK_RC(asyncio_file_unlink(path_of("data")), 0);
  CHECK_RC(asyncio_file_stat(path_of("data"), &st), -ENOENT);
  CHECK_RC(asyncio_file_unlink(path_of("data")), -ENOENT);
  CHECK_RC(asyncio_file_stat(NULL, &st), -EINVAL);
  CHECK_RC(asyncio_file_stat(dir, NULL), -EINVAL);
  CHECK_RC(asyncio_file_unlink(NULL), -EINVAL);
  return 0;
}

/* stat and unlink, and their errors. */
TEST(stat_unlink) {
  make_dir();
  assert_ok(asyncio_run(stat_unlink_main, NULL, &plain_run));
  ASSERT_SOFT();
  remove_dir();
}

static int errors_main(void *arg) {
  (void)arg;
  char b[8];
  CHECK_RC(asyncio_file_open(path_of("missing"), O_RDONLY, 0), -ENOENT);
  CHECK_RC(asyncio_file_open(NULL, O_RDONLY, 0), -EINVAL);
  /* A directory opens, but reading it is -EISDIR. */
  int fd = asyncio_file_open(dir, O_RDONLY, 0);
  CHECK(fd >= 0);
  CHECK(asyncio_file_read(fd, b, sizeof b) == -EISDIR);
  CHECK_RC(asyncio_file_close(fd), 0);
  CHECK_RC(asyncio_file_open(dir, O_WRONLY, 0), -EISDIR);
  /* Bad descriptors: negative, and closed. */
  int closed = asyncio_file_open(dir, O_RDONLY, 0);
  CHECK_RC(asyncio_file_close(closed), 0);
  CHECK(asyncio_file_read(-1, b, sizeof b) == -EBADF);
  CHECK(asyncio_file_read(closed, b, sizeof b) == -EBADF);
  CHECK(asyncio_file_pread(closed, b, sizeof b, 0) == -EBADF);
  CHECK(asyncio_file_write(closed, "x", 1) == -EBADF);
  CHECK(asyncio_file_pwrite(-1, "x", 1, 0) == -EBADF);
  CHECK_RC(asyncio_file_fsync(closed), -EBADF);
  CHECK_RC(asyncio_file_fsync(-1), -EBADF);
  CHECK_RC(asyncio_file_close(closed), -EBADF);
  CHECK_RC(asyncio_file_close(-1), -EBADF);
  /* Writing to a read-only descriptor, and a zero-byte write. */
  fd = asyncio_file_open(dir, O_RDONLY, 0);
  CHECK(asyncio_file_write(fd, "x", 1) == -EBADF);
  CHECK(asyncio_file_write(fd, NULL, 0) == -EBADF);
  /* NULL buffers. */
  CHECK(asyncio_file_read(fd, NULL, 1) == -EINVAL);
  CHECK(asyncio_file_write(fd, NULL, 1) == -EINVAL);
  CHECK(asyncio_file_pwrite(fd, NULL, 1, 0) == -EINVAL);
  CHECK_RC(asyncio_file_close(fd), 0);
  return 0;
}

/* Missing file -ENOENT, directory -EISDIR, bad descriptors -EBADF, -EINVAL. */
TEST(errors) {
  make_dir();
  assert_ok(asyncio_run(errors_main, NULL, &plain_run));
  ASSERT_SOFT();
  remove_dir();
}

/* Outside a task every call is ASYNCIO_ENOTASK and touches nothing. */
TEST(not_in_task) {
  char b[4];
  struct stat st;
  char *data = NULL;
  size_t len = 0;
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  assert_rc(asyncio_file_open("/dev/null", O_RDONLY, 0), ASYNCIO_ENOTASK);
  assert_rc((int)asyncio_file_read(fd, b, sizeof b), ASYNCIO_ENOTASK);
  assert_rc((int)asyncio_file_pread(fd, b, sizeof b, 0), ASYNCIO_ENOTASK);
  assert_rc((int)asyncio_file_write(fd, b, sizeof b), ASYNCIO_ENOTASK);
  assert_rc((int)asyncio_file_pwrite(fd, b, sizeof b, 0), ASYNCIO_ENOTASK);
  assert_rc(asyncio_file_fsync(fd), ASYNCIO_ENOTASK);
  assert_rc(asyncio_file_stat("/dev/null", &st), ASYNCIO_ENOTASK);
  assert_rc(asyncio_file_unlink("/nonexistent/x"), ASYNCIO_ENOTASK);
  assert_rc(asyncio_file_read_all("/dev/null", &data, &len), ASYNCIO_ENOTASK);
  assert_null(data);
  assert_rc(asyncio_file_close(fd), ASYNCIO_ENOTASK);
  assert_true(fcntl(fd, F_GETFD) >= 0); /* still open */
  close(fd);
}

/* ---- blocking reads: cancellation, timeouts, progress ------------------------ */

/* A FIFO whose read end blocks: a writer exists but has written nothing. */
static void fifo_open(int *rfd, int *wfd) {
  assert_int_equal(mkfifo(path_of("fifo"), 0600), 0);
  *rfd = open(path_of("fifo"), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  assert_true(*rfd >= 0);
  *wfd = open(path_of("fifo"), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  assert_true(*wfd >= 0);
  assert_int_equal(fcntl(*rfd, F_SETFL, fcntl(*rfd, F_GETFL) & ~O_NONBLOCK), 0);
}

typedef struct {
  int rfd, wfd;
  char buf[64];
  ssize_t rc;
  int ticks;
} blk_t;

static int blocked_reader(void *arg) {
  blk_t *b = arg;
  b->rc = asyncio_file_read(b->rfd, b->buf, sizeof b->buf);
  return b->rc < 0 ? (int)b->rc : 0;
}

/* Waits (bounded) until the worker drained the FIFO. */
static void wait_drained(int rfd) {
  for (int i = 0; i < 500; i++) {
    int avail = 0;
    if (ioctl(rfd, FIONREAD, &avail) != 0 || avail == 0) return;
    asyncio_sleep(0.01);
  }
}

static int cancel_read_main(void *arg) {
  blk_t *b = arg;
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, blocked_reader, b, NULL), 0);
  CHECK_RC(asyncio_sleep(0.05), 0); /* the worker is inside read(2) by now */
  CHECK(!asyncio_future_done(t));
  CHECK_RC(asyncio_task_cancel(t, NULL), 1);
  CHECK_RC(asyncio_await(t, NULL), -ECANCELED);
  CHECK(b->rc == -ECANCELED);
  asyncio_task_free(t);
  /* Release the worker: its read gets these bytes, into its own buffer. */
  CHECK(write(b->wfd, "released", 8) == 8);
  wait_drained(b->rfd);
  close(b->rfd); /* safe at once: the worker reads its own dup */
  close(b->wfd);
  return 0;
}

/* A cancelled read returns -ECANCELED; the worker's bytes never reach buf. */
TEST(cancel_read_in_flight) {
  make_dir();
  blk_t b;
  memset(&b, 0, sizeof b);
  memset(b.buf, 'x', sizeof b.buf);
  b.rc = 1;
  fifo_open(&b.rfd, &b.wfd);
  assert_ok(asyncio_run(cancel_read_main, &b, &plain_run));
  ASSERT_SOFT();
  /* The loop is closed: every worker is done, and buf was never written. */
  for (size_t i = 0; i < sizeof b.buf; i++) assert_int_equal(b.buf[i], 'x');
  remove_dir();
}

static int ticker(void *arg) {
  blk_t *b = arg;
  while (b->ticks < 5) {
    int rc = asyncio_sleep(0.001);
    if (rc) return rc;
    b->ticks++;
  }
  /* Only now is there something to read. */
  CHECK(write(b->wfd, "hello", 5) == 5);
  return 0;
}

static int progress_main(void *arg) {
  blk_t *b = arg;
  asyncio_task_t *r, *t;
  CHECK_RC(asyncio_create_task(&r, blocked_reader, b, NULL), 0);
  CHECK_RC(asyncio_create_task(&t, ticker, b, NULL), 0);
  CHECK_RC(asyncio_await(r, NULL), 0);
  CHECK_RC(asyncio_await(t, NULL), 0);
  CHECK(b->rc == 5 && memcmp(b->buf, "hello", 5) == 0);
  CHECK(b->ticks == 5);
  asyncio_task_free(r);
  asyncio_task_free(t);
  close(b->rfd);
  close(b->wfd);
  return 0;
}

/* While a read blocks in a worker the loop runs other tasks. */
TEST(loop_runs_while_read_blocks) {
  make_dir();
  blk_t b;
  memset(&b, 0, sizeof b);
  fifo_open(&b.rfd, &b.wfd);
  assert_ok(asyncio_run(progress_main, &b, &plain_run));
  ASSERT_SOFT();
  remove_dir();
}

static int timeout_main(void *arg) {
  blk_t *b = arg;
  asyncio_timeout_t *cm;
  CHECK_RC(asyncio_timeout_enter(&cm, 0.05), 0);
  ssize_t rc = asyncio_file_read(b->rfd, b->buf, sizeof b->buf);
  CHECK(rc == -ECANCELED);
  CHECK_RC(asyncio_timeout_exit(cm, (int)rc), -ETIMEDOUT);
  asyncio_timeout_free(cm);
  CHECK(write(b->wfd, "late", 4) == 4);
  wait_drained(b->rfd);
  close(b->rfd);
  close(b->wfd);
  return 0;
}

/* A timeout scope around a blocked read: -ETIMEDOUT, buf untouched. */
TEST(timeout_blocked_read) {
  make_dir();
  blk_t b;
  memset(&b, 0, sizeof b);
  memset(b.buf, 'x', sizeof b.buf);
  fifo_open(&b.rfd, &b.wfd);
  assert_ok(asyncio_run(timeout_main, &b, &plain_run));
  ASSERT_SOFT();
  for (size_t i = 0; i < sizeof b.buf; i++) assert_int_equal(b.buf[i], 'x');
  remove_dir();
}

static int blocked_opener(void *arg) {
  (void)arg;
  /* A FIFO's read side opens only when a writer comes. */
  return asyncio_file_open(path_of("fifo"), O_RDONLY, 0);
}

static int cancel_open_main(void *arg) {
  (void)arg;
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, blocked_opener, NULL, NULL), 0);
  /* A non-blocking writer opens once the worker waits in open(2) as reader. */
  int wfd = -1;
  for (int i = 0; i < 1000 && wfd < 0; i++) {
    wfd = open(path_of("fifo"), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (wfd < 0) asyncio_sleep(0.005);
  }
  CHECK(wfd >= 0);
  /* The worker's open completes now, but its caller is cancelled first:
   * the descriptor it opened is closed, not leaked. */
  CHECK_RC(asyncio_task_cancel(t, NULL), 1);
  CHECK_RC(asyncio_await(t, NULL), -ECANCELED);
  asyncio_task_free(t);
  close(wfd);
  return 0;
}

/* An open that completes after its caller was cancelled leaks nothing. */
TEST(cancel_open_in_flight) {
  make_dir();
  assert_int_equal(mkfifo(path_of("fifo"), 0600), 0);
  assert_ok(asyncio_run(cancel_open_main, NULL, &plain_run));
  ASSERT_SOFT();
  remove_dir(); /* the harness checks that no descriptor is left */
}

static int close_after_shutdown_main(void *arg) {
  (void)arg;
  int fd = asyncio_file_open("/dev/null", O_RDONLY, 0);
  CHECK(fd >= 0);
  CHECK_RC(asyncio_loop_shutdown_default_executor(asyncio_get_running_loop(), -1), 0);
  char b[1];
  CHECK(asyncio_file_read(fd, b, 1) == ASYNCIO_ECLOSED);
  /* No executor, yet close happens anyway. */
  CHECK_RC(asyncio_file_close(fd), ASYNCIO_ECLOSED);
  CHECK(fcntl(fd, F_GETFD) < 0 && errno == EBADF);
  return 0;
}

/* close always closes, even when no worker can run it. */
TEST(close_without_executor) {
  assert_ok(asyncio_run(close_after_shutdown_main, NULL, &plain_run));
  ASSERT_SOFT();
}

/*
 * Loop close after a worker delivered a read's outcome but before the task
 * that waits for it resumed: the task is destroyed without resuming, so
 * close must free the request the job carried.  The window is built, not
 * raced: a one-worker executor runs the read (A), then a job (B) that
 * queues loop.stop through call_soon_threadsafe; meanwhile a callback holds
 * the loop thread until B has run.  The next iteration then takes A's
 * delivery and the stop in one batch, and the task's wake-up is left
 * queued when run_forever returns.  The harness's allocation count is the
 * assertion.
 */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_open;
static int gate_fd;
static int gate_resumed;

static int gate_reader(void *arg) {
  (void)arg;
  char buf[8];
  (void)asyncio_file_pread(gate_fd, buf, sizeof buf, 0);
  gate_resumed = 1;
  return 0;
}

static void gate_stop(void *arg) { asyncio_loop_stop(arg); }

static int gate_poster(void *arg, void **value) {
  (void)value;
  asyncio_loop_call_soon_threadsafe(arg, gate_stop, arg);
  pthread_mutex_lock(&gate_mu);
  gate_open = 1;
  pthread_cond_signal(&gate_cv);
  pthread_mutex_unlock(&gate_mu);
  return 0;
}

static asyncio_future_t *gate_job;

static void gate_hold(void *arg) {
  CHECK_RC(asyncio_loop_run_in_executor(arg, NULL, gate_poster, arg, &gate_job), 0);
  pthread_mutex_lock(&gate_mu);
  while (!gate_open) pthread_cond_wait(&gate_cv, &gate_mu);
  pthread_mutex_unlock(&gate_mu);
}

TEST(close_after_delivery_before_resume) {
  make_dir();
  gate_open = gate_resumed = 0;
  gate_job = NULL;
  gate_fd = open(path_of("data"), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  assert_true(gate_fd >= 0);
  assert_int_equal(write(gate_fd, "abc", 3), 3);
  asyncio_loop_t *loop = NULL;
  asyncio_loop_options_t o = {0};
  o.clock = ASYNCIO_CLOCK_MONOTONIC;
  o.debug = -1;
  assert_ok(asyncio_loop_new(&loop, &o));
  asyncio_executor_t *ex = NULL;
  assert_ok(asyncio_executor_new(&ex, 1));
  assert_ok(asyncio_loop_set_default_executor(loop, ex));
  asyncio_task_t *t = NULL;
  assert_ok(asyncio_loop_create_task(loop, &t, gate_reader, NULL, NULL));
  assert_ok(asyncio_loop_call_soon(loop, gate_hold, loop, NULL));
  assert_ok(asyncio_loop_run_forever(loop));
  ASSERT_SOFT();
  assert_false(gate_resumed);
  assert_false(asyncio_future_done(t));
  assert_ok(asyncio_loop_close(loop));
  asyncio_task_free(t);
  if (gate_job) asyncio_future_free(gate_job);
  assert_ok(asyncio_executor_free(ex));
  close(gate_fd);
  remove_dir();
}

static int alloc_fail_main(void *arg) {
  (void)arg;
  const char *p = path_of("data");
  int fd = asyncio_file_open(p, O_CREAT | O_RDWR | O_TRUNC, 0600);
  CHECK(fd >= 0);
  CHECK(asyncio_file_write(fd, "abc", 3) == 3);
  long n;
  ssize_t rc = -ENOMEM;
  for (n = 1; n < 50 && rc == -ENOMEM; n++) {
    harness_fail_alloc_after(n);
    rc = asyncio_file_pwrite(fd, "xyz", 3, 0);
    harness_fail_alloc_after(0);
  }
  CHECK(rc == 3 && n > 2);
  char b[4] = {0};
  rc = -ENOMEM;
  for (n = 1; n < 50 && rc == -ENOMEM; n++) {
    harness_fail_alloc_after(n);
    rc = asyncio_file_pread(fd, b, 3, 0);
    harness_fail_alloc_after(0);
  }
  CHECK(rc == 3 && memcmp(b, "xyz", 3) == 0);
  char *data = NULL;
  size_t len = 0;
  int irc = -ENOMEM;
  for (n = 1; n < 50 && irc == -ENOMEM; n++) {
    harness_fail_alloc_after(n);
    irc = asyncio_file_read_all(p, &data, &len);
    harness_fail_alloc_after(0);
  }
  CHECK(irc == 0 && len == 3 && data && strcmp(data, "xyz") == 0);
  asyncio_file_data_free(data);
  CHECK_RC(asyncio_file_close(fd), 0);
  return 0;
}

/* Out of memory at any allocation: -ENOMEM and nothing leaks. */
TEST(allocation_failures) {
  make_dir();
  assert_ok(asyncio_run(alloc_fail_main, NULL, &plain_run));
  ASSERT_SOFT();
  remove_dir();
}
