/*
 * test_sendfile.c - loop.sendfile on transports (asyncio_loop_sendfile in
 * include/asyncio/transports.h).
 *
 * Python origin: base_events.sendfile / _sendfile_fallback and
 * selector_events._sendfile_native, and the cases of
 * Lib/test/test_asyncio/test_sendfile.py.  Real TCP connections on
 * 127.0.0.1 (kernel-chosen ports), real pipes, real temporary files.  The
 * receiving end is a plain socket read with asyncio_sock_recv by a task the
 * test starts when it wants the peer to read: until then the sender blocks,
 * which is how the waits are reached without any timing.  Where a test
 * needs the sender to block early, both socket buffers are shrunk, and the
 * file is far larger than they are.
 */
#include "net_helpers.h"

#include <fcntl.h>
#include <sys/stat.h>

#define SMALL_BUF 65536

typedef struct sfc {
  peer_t cli;     /* the transport's protocol */
  peer_t rd;      /* a read pipe's protocol */
  asyncio_transport_t *t;
  int peer;       /* the accepted end, read by the receiver task */
  int file;
  unsigned char *data;
  size_t size;
  /* the sender task */
  off_t offset;
  size_t count;
  asyncio_sendfile_options_t opts;
  size_t sent;
  int rc;
  int started, done;
  /* the receiver task */
  uint64_t sum;
  size_t nrecv;
  int rrc, rdone;
  int mode;
} sfc_t;

static unsigned char *make_file(int *fd, size_t size) {
  char path[] = "/tmp/asyncio-loop-sendfile-XXXXXX";
  *fd = mkostemp(path, O_CLOEXEC);
  assert_true(*fd >= 0);
  unlink(path);
  unsigned char *data = malloc(size);
  assert_non_null(data);
  for (size_t i = 0; i < size; i++) data[i] = (unsigned char)(i * 7 + (i >> 11));
  size_t off = 0;
  while (off < size) {
    ssize_t w = write(*fd, data + off, size - off);
    assert_true(w > 0);
    off += (size_t)w;
  }
  assert_int_equal(lseek(*fd, 0, SEEK_SET), 0);
  return data;
}

static void ctx_init(sfc_t *c, size_t size) {
  memset(c, 0, sizeof *c);
  c->peer = -1;
  c->size = size;
  c->data = make_file(&c->file, size);
}

static void ctx_done(sfc_t *c) {
  free(c->data);
  close(c->file);
  if (c->peer >= 0) close(c->peer);
}

/*
 * A TCP connection on 127.0.0.1: c->t is the client transport (protocol
 * c->cli), c->peer the accepted plain socket.  small shrinks both buffers
 * (the receive buffer before the handshake, through the listening socket).
 */
static int tcp_pair(sfc_t *c, bool small) {
  asyncio_loop_t *loop = asyncio_get_running_loop();
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK(l >= 0);
  int sz = SMALL_BUF;
  if (small) CHECK(setsockopt(l, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz) == 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof a;
  CHECK(bind(l, (struct sockaddr *)&a, sizeof a) == 0);
  CHECK(listen(l, 4) == 0);
  CHECK(getsockname(l, (struct sockaddr *)&a, &al) == 0);
  int rc = asyncio_loop_create_connection(loop, peer_factory, &c->cli, "127.0.0.1",
                                          ntohs(a.sin_port), NULL, &c->t, NULL);
  CHECK_RC(rc, 0);
  c->peer = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  close(l);
  CHECK(c->peer >= 0);
  if (rc || c->peer < 0) return -1;
  if (small) {
    int fd = asyncio_transport_get_fd(c->t);
    CHECK(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz) == 0);
  }
  return 0;
}

/* Reads exactly n bytes from fd. */
static int recv_exactly_loop(int fd, char *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = asyncio_sock_recv(fd, buf + got, n - got);
    if (r <= 0) return r < 0 ? (int)r : -EPIPE;
    got += (size_t)r;
  }
  return 0;
}

/* Reads the peer socket to EOF (or error), hashing the stream. */
static int receiver(void *arg) {
  sfc_t *c = arg;
  static char buf[256 * 1024];
  c->sum = FNV_INIT;
  for (;;) {
    ssize_t r = asyncio_sock_recv(c->peer, buf, sizeof buf);
    if (r <= 0) {
      c->rrc = (int)r;
      break;
    }
    c->nrecv += (size_t)r;
    c->sum = fnv(c->sum, buf, (size_t)r);
  }
  c->rdone = 1;
  return 0;
}

static int sender(void *arg) {
  sfc_t *c = arg;
  c->started = 1;
  c->sent = 12345;
  c->rc = asyncio_loop_sendfile(asyncio_get_running_loop(), c->t, c->file, c->offset, c->count,
                                &c->sent, &c->opts);
  c->done = 1;
  return c->rc;
}

/* Starts the sender and returns once it is suspended (or finished). */
static asyncio_task_t *start_sender(sfc_t *c) {
  asyncio_task_t *task = NULL;
  CHECK_RC(asyncio_create_task(&task, sender, c, NULL), 0);
  while (task && !c->started) asyncio_sleep(0);
  return task;
}

/* Ends the connection from our side and checks what the peer got. */
static int finish(sfc_t *c, asyncio_task_t *rtask, uint64_t want_sum, size_t want_n) {
  CHECK_RC(asyncio_transport_write_eof(c->t), 0);
  CHECK_RC(asyncio_await(rtask, NULL), 0);
  asyncio_task_free(rtask);
  CHECK(c->rrc == 0);
  CHECK(c->nrecv == want_n);
  CHECK(c->sum == want_sum);
  CHECK_RC(asyncio_transport_close(c->t), 0);
  WAIT_UNTIL(c->cli.lost == 1);
  return 0;
}

/* ---- the native path --------------------------------------------------------------------- */

#define BIG ((size_t)5 * 1024 * 1024 + 4321)

static int native_main(void *arg) {
  sfc_t *c = arg;
  if (tcp_pair(c, false)) return -1;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_task_t *rt;
  CHECK_RC(asyncio_create_task(&rt, receiver, c, NULL), 0);
  size_t sent = 1;
  CHECK_RC(asyncio_loop_sendfile(loop, c->t, c->file, 0, 0, &sent, c->mode ? &c->opts : NULL), 0);
  CHECK(sent == c->size);
  CHECK(lseek(c->file, 0, SEEK_CUR) == (off_t)c->size); /* file.seek(offset + sent) */
  CHECK(asyncio_transport_is_reading(c->t));
  CHECK_RC(asyncio_transport_write(c->t, "tail", 4), 0); /* writes allowed again */
  uint64_t sum = fnv(fnv(FNV_INIT, c->data, c->size), "tail", 4);
  return finish(c, rt, sum, c->size + 4);
}

/* A multi-MiB file through sendfile(2), checksummed by the receiver. */
TEST(native_multi_mib_checksum) {
  sfc_t c;
  ctx_init(&c, BIG);
  assert_ok(run_main(native_main, &c));
  ASSERT_SOFT();
  ctx_done(&c);
}

/* The same through the read/write fallback (force_fallback). */
TEST(fallback_forced_multi_mib_checksum) {
  sfc_t c;
  ctx_init(&c, BIG);
  c.mode = 1;
  c.opts.force_fallback = true;
  assert_ok(run_main(native_main, &c));
  ASSERT_SOFT();
  ctx_done(&c);
}

/* ---- offset and count -------------------------------------------------------------------- */

#define MID ((size_t)1024 * 1024 + 777)

static int ranges_main(void *arg) {
  sfc_t *c = arg;
  if (tcp_pair(c, false)) return -1;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_task_t *rt;
  CHECK_RC(asyncio_create_task(&rt, receiver, c, NULL), 0);
  const struct {
    off_t offset;
    size_t count;
  } cases[] = {{1000, 300000},      {(off_t)MID - 10, 0}, {0, MID + 100},   {(off_t)MID + 5, 0},
               {(off_t)MID, 7},     {12345, 1},           {(off_t)MID / 2, 0}};
  uint64_t sum = FNV_INIT;
  size_t total = 0;
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    off_t off = cases[i].offset;
    size_t avail = (size_t)off < MID ? MID - (size_t)off : 0;
    size_t want = cases[i].count && cases[i].count < avail ? cases[i].count : avail;
    CHECK(lseek(c->file, 3, SEEK_SET) == 3);
    size_t sent = 99;
    CHECK_RC(asyncio_loop_sendfile(loop, c->t, c->file, off, cases[i].count, &sent,
                                   c->mode ? &c->opts : NULL),
             0);
    CHECK(sent == want);
    /* The position moves only when something was sent. */
    CHECK(lseek(c->file, 0, SEEK_CUR) == (want ? off + (off_t)want : 3));
    if (want) sum = fnv(sum, c->data + off, want);
    total += want;
  }
  return finish(c, rt, sum, total);
}

/* offset, count, count 0 = to EOF, count past EOF, offset past EOF. */
TEST(native_offset_count_and_eof) {
  sfc_t c;
  ctx_init(&c, MID);
  assert_ok(run_main(ranges_main, &c));
  ASSERT_SOFT();
  ctx_done(&c);
}

TEST(fallback_offset_count_and_eof) {
  sfc_t c;
  ctx_init(&c, MID);
  c.mode = 1;
  c.opts.force_fallback = true;
  assert_ok(run_main(ranges_main, &c));
  ASSERT_SOFT();
  ctx_done(&c);
}

/* ---- buffered data first, writes refused, reading paused ---------------------------------- */

static int order_main(void *arg) {
  sfc_t *c = arg;
  if (tcp_pair(c, true)) return -1;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  /* The peer does not read yet: most of this stays in the write buffer. */
  static char head[1024 * 1024];
  for (size_t i = 0; i < sizeof head; i++) head[i] = (char)(i * 13 + 5);
  CHECK_RC(asyncio_transport_write(c->t, head, sizeof head), 0);
  CHECK(asyncio_transport_get_write_buffer_size(c->t) > 0);
  CHECK(asyncio_transport_is_reading(c->t));
  asyncio_task_t *st = start_sender(c);
  if (!st) return -1;
  CHECK(!c->done); /* waiting for the buffer to drain (the empty waiter) */
  CHECK(!asyncio_transport_is_reading(c->t));
  /* RuntimeError('unable to write; sendfile is in progress') */
  CHECK_RC(asyncio_transport_write(c->t, "x", 1), -EBUSY);
  struct iovec v = {"y", 1};
  CHECK_RC(asyncio_transport_writelines(c->t, &v, 1), -EBUSY);
  /* One sendfile at a time ("Empty waiter is already set"). */
  size_t sent = 5;
  CHECK_RC(asyncio_loop_sendfile(loop, c->t, c->file, 0, 0, &sent, NULL), -EBUSY);
  CHECK(sent == 0);
  /* Reading is paused: what the peer sends now is not delivered yet. */
  CHECK(send(c->peer, "ping", 4, MSG_NOSIGNAL) == 4);
  for (int i = 0; i < 20; i++) asyncio_sleep(0.001);
  CHECK(c->cli.nrecv == 0);
  CHECK(!c->done);
  asyncio_task_t *rt;
  CHECK_RC(asyncio_create_task(&rt, receiver, c, NULL), 0);
  CHECK_RC(asyncio_await(st, NULL), 0);
  asyncio_task_free(st);
  CHECK_RC(c->rc, 0);
  CHECK(c->sent == c->size);
  /* Reading resumed, writes accepted again. */
  CHECK(asyncio_transport_is_reading(c->t));
  WAIT_UNTIL(c->cli.nrecv == 4);
  CHECK(memcmp(c->cli.data, "ping", 4) == 0);
  CHECK_RC(asyncio_transport_write(c->t, "tail", 4), 0);
  uint64_t sum = fnv(fnv(fnv(FNV_INIT, head, sizeof head), c->data, c->size), "tail", 4);
  return finish(c, rt, sum, sizeof head + c->size + 4);
}

/*
 * Bytes written before sendfile go first (selector_events._make_empty_waiter);
 * write() is refused and reading paused meanwhile; both come back after.
 */
TEST(native_buffered_data_first_writes_refused_reading_paused) {
  sfc_t c;
  ctx_init(&c, BIG);
  assert_ok(run_main(order_main, &c));
  ASSERT_SOFT();
  ctx_done(&c);
}

/* In the fallback, the protocol-level flow control paces the blocks. */
static int flow_main(void *arg) {
  sfc_t *c = arg;
  if (tcp_pair(c, true)) return -1;
  c->opts.force_fallback = true;
  asyncio_task_t *st = start_sender(c);
  if (!st) return -1;
  CHECK(!c->done);
  WAIT_UNTIL(c->cli.paused >= 1); /* the buffer went over the high-water mark */
  CHECK(!asyncio_transport_is_reading(c->t));
  CHECK_RC(asyncio_transport_write(c->t, "x", 1), -EBUSY);
  asyncio_task_t *rt;
  CHECK_RC(asyncio_create_task(&rt, receiver, c, NULL), 0);
  CHECK_RC(asyncio_await(st, NULL), 0);
  asyncio_task_free(st);
  CHECK_RC(c->rc, 0);
  CHECK(c->sent == c->size);
  CHECK(c->cli.resumed >= 1);
  CHECK(asyncio_transport_is_reading(c->t));
  return finish(c, rt, fnv(FNV_INIT, c->data, c->size), c->size);
}

TEST(fallback_waits_for_flow_control) {
  sfc_t c;
  ctx_init(&c, BIG);
  assert_ok(run_main(flow_main, &c));
  ASSERT_SOFT();
  ctx_done(&c);
}

/* ---- write pipes --------------------------------------------------------------------------- */

static int pipe_main(void *arg) {
  sfc_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  int p[2];
  CHECK(pipe2(p, O_CLOEXEC) == 0);
  asyncio_transport_t *rt = NULL, *wt = NULL;
  CHECK_RC(asyncio_loop_connect_read_pipe(loop, peer_factory, &c->rd, p[0], &rt, NULL), 0);
  CHECK_RC(asyncio_loop_connect_write_pipe(loop, peer_factory, &c->cli, p[1], &wt, NULL), 0);
  if (!rt || !wt) return -1;
  /* fallback=False: a pipe transport has no native path. */
  asyncio_sendfile_options_t nf = {0};
  nf.no_fallback = true;
  size_t sent = 7;
  CHECK_RC(asyncio_loop_sendfile(loop, wt, c->file, 0, 0, &sent, &nf),
           ASYNCIO_ESENDFILENOTAVAILABLE);
  CHECK(sent == 0);
  /* Reading ends cannot send. */
  CHECK_RC(asyncio_loop_sendfile(loop, rt, c->file, 0, 0, &sent, NULL), -EOPNOTSUPP);
  CHECK_RC(asyncio_loop_sendfile(loop, wt, c->file, 100, 0, &sent, NULL), 0);
  CHECK(sent == c->size - 100);
  CHECK(lseek(c->file, 0, SEEK_CUR) == (off_t)c->size);
  CHECK_RC(asyncio_transport_write(wt, "tail", 4), 0);
  CHECK_RC(asyncio_transport_close(wt), 0);
  WAIT_UNTIL(c->rd.lost == 1);
  CHECK(c->rd.nrecv == c->size - 100 + 4);
  CHECK(c->rd.sum == fnv(fnv(FNV_INIT, c->data + 100, c->size - 100), "tail", 4));
  WAIT_UNTIL(c->cli.lost == 1);
  CHECK(c->cli.lost_err == 0);
  return 0;
}

/* A write pipe transport (connect_write_pipe) goes through the fallback. */
TEST(write_pipe_fallback_and_no_fallback) {
  sfc_t c;
  ctx_init(&c, BIG);
  assert_ok(run_main(pipe_main, &c));
  ASSERT_SOFT();
  ctx_done(&c);
}

/* ---- arguments and states ------------------------------------------------------------------ */

typedef struct cb_arg {
  sfc_t *c;
  int rc;
  int ran;
} cb_arg_t;

static void from_callback(void *arg) {
  cb_arg_t *a = arg;
  a->rc = asyncio_loop_sendfile(asyncio_get_running_loop(), a->c->t, a->c->file, 0, 0, NULL,
                                NULL);
  a->ran = 1;
}

static int args_main(void *arg) {
  sfc_t *c = arg;
  if (tcp_pair(c, false)) return -1;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  size_t sent = 3;
  asyncio_sendfile_options_t both = {true, true};
  CHECK_RC(asyncio_loop_sendfile(NULL, c->t, c->file, 0, 0, &sent, NULL), -EINVAL);
  CHECK(sent == 0);
  CHECK_RC(asyncio_loop_sendfile(loop, NULL, c->file, 0, 0, &sent, NULL), -EINVAL);
  CHECK_RC(asyncio_loop_sendfile(loop, c->t, c->file, -1, 0, &sent, NULL), -EINVAL);
  CHECK_RC(asyncio_loop_sendfile(loop, c->t, c->file, 0, 0, &sent, &both), -EINVAL);
  CHECK_RC(asyncio_loop_sendfile(loop, c->t, -1, 0, 0, &sent, NULL), -EBADF);
  int dead = dup(c->file);
  close(dead);
  CHECK_RC(asyncio_loop_sendfile(loop, c->t, dead, 0, 0, &sent, NULL), -EBADF);
  /* Outside a task (from a callback). */
  cb_arg_t a = {c, 0, 0};
  CHECK_RC(asyncio_loop_call_soon(loop, from_callback, &a, NULL), 0);
  WAIT_UNTIL(a.ran);
  CHECK_RC(a.rc, ASYNCIO_ENOTASK);

  /* A pipe as the file: sendfile(2) is not used, and it cannot seek. */
  int p[2];
  CHECK(pipe2(p, O_CLOEXEC) == 0);
  CHECK(write(p[1], "from a pipe", 11) == 11);
  close(p[1]);
  asyncio_sendfile_options_t nf = {0};
  nf.no_fallback = true;
  CHECK_RC(asyncio_loop_sendfile(loop, c->t, p[0], 0, 0, &sent, &nf),
           ASYNCIO_ESENDFILENOTAVAILABLE);
  CHECK(sent == 0);
  CHECK_RC(asyncio_loop_sendfile(loop, c->t, p[0], 5, 0, &sent, NULL), -ESPIPE);
  CHECK_RC(asyncio_loop_sendfile(loop, c->t, p[0], 0, 0, &sent, NULL), 0); /* the fallback */
  CHECK(sent == 11);
  close(p[0]);
  char buf[16];
  CHECK_RC(recv_exactly_loop(c->peer, buf, 11), 0);
  CHECK(memcmp(buf, "from a pipe", 11) == 0);

  /* A datagram transport: sendfile is not supported. */
  asyncio_transport_t *dt = NULL;
  peer_t dp = {0};
  asyncio_datagram_options_t dopt = {0};
  dopt.local_host = "127.0.0.1";
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &dp, &dopt, &dt, NULL), 0);
  if (dt) {
    CHECK_RC(asyncio_loop_sendfile(loop, dt, c->file, 0, 0, &sent, NULL), -EOPNOTSUPP);
    CHECK_RC(asyncio_transport_close(dt), 0);
    WAIT_UNTIL(dp.lost == 1);
  }

  /* write_eof() and close(): "Transport is closing". */
  CHECK_RC(asyncio_transport_write_eof(c->t), 0);
  CHECK_RC(asyncio_loop_sendfile(loop, c->t, c->file, 0, 0, &sent, NULL), -EPIPE);
  CHECK_RC(asyncio_transport_close(c->t), 0);
  CHECK_RC(asyncio_loop_sendfile(loop, c->t, c->file, 0, 0, &sent, NULL), -EPIPE);
  CHECK(sent == 0);
  WAIT_UNTIL(c->cli.lost == 1);
  return 0;
}

TEST(arguments_and_closing_transport) {
  sfc_t c;
  ctx_init(&c, 4096);
  assert_ok(run_main(args_main, &c));
  ASSERT_SOFT();
  ctx_done(&c);
}

/* ---- the transport goes while sendfile waits ------------------------------------------------ */

enum { M_CLOSE, M_ABORT, M_CLOSE_BUFFERED, M_ABORT_BUFFERED, M_CLOSE_FALLBACK, M_ABORT_FALLBACK };

static int close_main(void *arg) {
  sfc_t *c = arg;
  if (tcp_pair(c, true)) return -1;
  static char head[512 * 1024];
  bool buffered = c->mode == M_CLOSE_BUFFERED || c->mode == M_ABORT_BUFFERED;
  bool abort = c->mode == M_ABORT || c->mode == M_ABORT_BUFFERED || c->mode == M_ABORT_FALLBACK;
  c->opts.force_fallback = c->mode == M_CLOSE_FALLBACK || c->mode == M_ABORT_FALLBACK;
  if (buffered) CHECK_RC(asyncio_transport_write(c->t, head, sizeof head), 0);
  asyncio_task_t *st = start_sender(c);
  if (!st) return -1;
  CHECK(!c->done);
  if (c->opts.force_fallback) WAIT_UNTIL(c->cli.paused >= 1);
  CHECK_RC(abort ? asyncio_transport_abort(c->t) : asyncio_transport_close(c->t), 0);
  CHECK_RC(asyncio_await(st, NULL), -EPIPE);
  asyncio_task_free(st);
  CHECK_RC(c->rc, -EPIPE);
  CHECK(c->sent < c->size);
  if (!buffered) CHECK(c->sent > 0);
  /* connection_lost exactly once, then the transport is gone. */
  WAIT_UNTIL(c->cli.lost == 1);
  CHECK(c->cli.lost_err == 0);
  for (int i = 0; i < 5; i++) asyncio_sleep(0);
  CHECK(c->cli.lost == 1);
  return 0;
}

#define CLOSE_TEST(name, m)                 \
  TEST(name) {                              \
    sfc_t c;                                \
    ctx_init(&c, (size_t)8 * 1024 * 1024); \
    c.mode = m;                             \
    assert_ok(run_main(close_main, &c));    \
    ASSERT_SOFT();                          \
    ctx_done(&c);                           \
  }

/* close() / abort() while sendfile(2) waits for the socket: -EPIPE, no leak. */
CLOSE_TEST(close_during_native, M_CLOSE)
CLOSE_TEST(abort_during_native, M_ABORT)
/* ... while it waits for the write buffer to drain. */
CLOSE_TEST(close_during_empty_wait, M_CLOSE_BUFFERED)
CLOSE_TEST(abort_during_empty_wait, M_ABORT_BUFFERED)
/* ... while the fallback waits for flow control. */
CLOSE_TEST(close_during_fallback, M_CLOSE_FALLBACK)
CLOSE_TEST(abort_during_fallback, M_ABORT_FALLBACK)

/* The peer resets the connection (SO_LINGER 0) while sendfile waits. */
static int reset_main(void *arg) {
  sfc_t *c = arg;
  if (tcp_pair(c, true)) return -1;
  static char head[512 * 1024];
  if (c->mode) CHECK_RC(asyncio_transport_write(c->t, head, sizeof head), 0);
  asyncio_task_t *st = start_sender(c);
  if (!st) return -1;
  CHECK(!c->done);
  struct linger lg = {1, 0};
  CHECK(setsockopt(c->peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
  close(c->peer);
  c->peer = -1;
  asyncio_await(st, NULL);
  asyncio_task_free(st);
  CHECK(c->rc == -ECONNRESET || c->rc == -EPIPE);
  CHECK(c->sent < c->size);
  /* Reading resumed (native wait) or the write error closed it (empty wait): lost either way. */
  WAIT_UNTIL(c->cli.lost == 1);
  if (c->mode) CHECK(c->cli.lost_err == c->rc);
  return 0;
}

TEST(peer_reset_during_native) {
  sfc_t c;
  ctx_init(&c, (size_t)8 * 1024 * 1024);
  assert_ok(run_main(reset_main, &c));
  ASSERT_SOFT();
  ctx_done(&c);
}

TEST(peer_reset_during_empty_wait) {
  sfc_t c;
  ctx_init(&c, (size_t)8 * 1024 * 1024);
  c.mode = 1;
  assert_ok(run_main(reset_main, &c));
  ASSERT_SOFT();
  ctx_done(&c);
}

/* ---- cancellation ---------------------------------------------------------------------------- */

static int cancel_main(void *arg) {
  sfc_t *c = arg;
  if (tcp_pair(c, true)) return -1;
  asyncio_task_t *st = start_sender(c);
  if (!st) return -1;
  CHECK(!c->done);
  if (c->opts.force_fallback) WAIT_UNTIL(c->cli.paused >= 1);
  CHECK_RC(asyncio_task_cancel(st, NULL), 1);
  CHECK_RC(asyncio_await(st, NULL), -ECANCELED);
  asyncio_task_free(st);
  CHECK_RC(c->rc, -ECANCELED);
  CHECK(c->sent > 0 && c->sent < c->size); /* partial, and counted */
  CHECK(lseek(c->file, 0, SEEK_CUR) == (off_t)c->sent);
  /* The transport is usable: reading resumed, writes accepted. */
  CHECK(asyncio_transport_is_reading(c->t));
  CHECK(!asyncio_transport_is_closing(c->t));
  CHECK_RC(asyncio_transport_write(c->t, "after", 5), 0);
  CHECK(send(c->peer, "ping", 4, MSG_NOSIGNAL) == 4);
  WAIT_UNTIL(c->cli.nrecv == 4);
  asyncio_task_t *rt;
  CHECK_RC(asyncio_create_task(&rt, receiver, c, NULL), 0);
  uint64_t sum = fnv(fnv(FNV_INIT, c->data, c->sent), "after", 5);
  return finish(c, rt, sum, c->sent + 5);
}

/* Cancelling the task mid-transfer: -ECANCELED, *sent partial, the transport usable. */
TEST(cancel_during_native) {
  sfc_t c;
  ctx_init(&c, (size_t)8 * 1024 * 1024);
  assert_ok(run_main(cancel_main, &c));
  ASSERT_SOFT();
  ctx_done(&c);
}

TEST(cancel_during_fallback) {
  sfc_t c;
  ctx_init(&c, (size_t)8 * 1024 * 1024);
  c.opts.force_fallback = true;
  assert_ok(run_main(cancel_main, &c));
  ASSERT_SOFT();
  ctx_done(&c);
}

/* A timeout scope bounds it (async with asyncio.timeout()). */
static int timeout_main(void *arg) {
  sfc_t *c = arg;
  if (tcp_pair(c, true)) return -1;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_timeout_t *cm = NULL;
  CHECK_RC(asyncio_timeout_enter(&cm, 0.05), 0);
  size_t sent = 0;
  int rc = asyncio_loop_sendfile(loop, c->t, c->file, 0, 0, &sent, &c->opts);
  CHECK_RC(asyncio_timeout_exit(cm, rc), -ETIMEDOUT);
  CHECK(asyncio_timeout_expired(cm));
  asyncio_timeout_free(cm);
  /* The native path sends before it first waits; the fallback may still be reading. */
  CHECK(sent < c->size);
  if (!c->opts.force_fallback) CHECK(sent > 0);
  c->sent = sent;
  CHECK(asyncio_transport_is_reading(c->t));
  asyncio_task_t *rt;
  CHECK_RC(asyncio_create_task(&rt, receiver, c, NULL), 0);
  return finish(c, rt, fnv(FNV_INIT, c->data, sent), sent);
}

TEST(timeout_scope_native) {
  sfc_t c;
  ctx_init(&c, (size_t)8 * 1024 * 1024);
  assert_ok(run_main(timeout_main, &c));
  ASSERT_SOFT();
  ctx_done(&c);
}

TEST(timeout_scope_fallback) {
  sfc_t c;
  ctx_init(&c, (size_t)8 * 1024 * 1024);
  c.opts.force_fallback = true;
  assert_ok(run_main(timeout_main, &c));
  ASSERT_SOFT();
  ctx_done(&c);
}

/* ---- loop close while sendfile waits ------------------------------------------------------------ */

static void quiet(asyncio_loop_t *loop, const asyncio_error_context_t *ctx, void *ud) {
  (void)loop;
  (void)ctx;
  (*(int *)ud)++;
}

static int leave_pending_main(void *arg) {
  sfc_t *c = arg;
  if (tcp_pair(c, true)) return -1;
  asyncio_task_t *st = start_sender(c);
  if (!st) return -1;
  CHECK(!c->done);
  if (c->opts.force_fallback) WAIT_UNTIL(c->cli.paused >= 1);
  asyncio_task_set_result_value(st); /* handed to the test */
  return 0;
}

static void run_loop_close(bool fallback) {
  sfc_t c;
  ctx_init(&c, (size_t)8 * 1024 * 1024);
  c.opts.force_fallback = fallback;
  asyncio_loop_t *loop = NULL;
  assert_ok(asyncio_loop_new(&loop, NULL));
  int reports = 0;
  assert_ok(asyncio_loop_set_exception_handler(loop, quiet, &reports));
  asyncio_task_t *main_task = NULL;
  assert_ok(asyncio_loop_create_task(loop, &main_task, leave_pending_main, &c, NULL));
  void *st = NULL;
  assert_ok(asyncio_loop_run_until_complete(loop, main_task, &st));
  ASSERT_SOFT();
  assert_non_null(st);
  assert_false(asyncio_future_done(st));
  assert_ok(asyncio_loop_close(loop)); /* destroys the pending sender, then the transport */
  assert_int_equal(c.cli.lost, 0);     /* no callbacks from close */
  asyncio_task_free(st);
  asyncio_task_free(main_task);
  ctx_done(&c);
}

/* Loop close with a sendfile pending: descriptors closed, memory freed. */
TEST(loop_close_during_native) { run_loop_close(false); }
TEST(loop_close_during_fallback) { run_loop_close(true); }
