/*
 * test_transports.c - stream transports and create_connection
 * (include/asyncio/transports.h, protocols.h).
 *
 * Python origin: Lib/asyncio/selector_events.py (_SelectorSocketTransport),
 * base_events.py (create_connection, Happy Eyeballs), and the tests in
 * Lib/test/test_asyncio/test_selector_events.py and test_base_events.py.
 * Real sockets on 127.0.0.1 and ::1, port 0.  Nothing asserts real-time
 * timings: waits are bounded only to keep a broken test from hanging.  The
 * Happy Eyeballs stagger is measured on the virtual clock only.
 */
#include "net_helpers.h"

#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/mman.h>

#include "../src/selector_events.h" /* the fake-resolver hook */

typedef struct ctx {
  const char *host;
  bool buffered;
  pool_t pool;
  peer_t cli;
  int rc;
} ctx_t;

static asyncio_server_t *start_server(ctx_t *c, const char *host) {
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_loop_create_server(asyncio_get_running_loop(), pool_factory, &c->pool, host, 0,
                                      NULL, &srv),
           0);
  return srv;
}

static int stop_server(asyncio_server_t *srv) {
  CHECK_RC(asyncio_server_close(srv), 0);
  CHECK_RC(asyncio_server_wait_closed(srv), 0);
  CHECK_RC(asyncio_server_free(srv), 0);
  return 0;
}

/* ---- echo round trips ---------------------------------------------------------- */

static int echo_main(void *arg) {
  ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  c->pool.tmpl.echo = true;
  c->pool.tmpl.buffered = c->buffered;
  asyncio_server_t *srv = start_server(c, c->host);
  if (!srv) return -1;
  int port = server_port(srv, 0);
  c->cli.buffered = c->buffered;
  asyncio_transport_t *t = NULL;
  void *inst = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, c->host, port, NULL, &t,
                                          &inst),
           0);
  if (!t) return -1;
  CHECK(inst == &c->cli);
  CHECK(c->cli.made == 1); /* connection_made ran before create_connection returned */
  CHECK(c->cli.t == t);
  CHECK_RC(asyncio_transport_write(t, "hello ", 6), 0);
  struct iovec iov[2] = {{"wor", 3}, {"ld", 2}};
  CHECK_RC(asyncio_transport_writelines(t, iov, 2), 0);
  WAIT_UNTIL(c->cli.nrecv == 11);
  CHECK(memcmp(c->cli.data, "hello world", 11) == 0);
  CHECK(c->pool.n == 1 && c->pool.peers[0].made == 1);

  /* get_extra_info */
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  CHECK_RC(asyncio_transport_get_peername(t, (struct sockaddr *)&ss, &sl), 0);
  int pport = ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                      : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  CHECK(pport == port);
  sl = sizeof ss;
  CHECK_RC(asyncio_transport_get_sockname(t, (struct sockaddr *)&ss, &sl), 0);
  CHECK(asyncio_transport_get_fd(t) >= 0);
  CHECK(asyncio_transport_get_loop(t) == loop);
  void *gi = NULL;
  CHECK(asyncio_transport_get_protocol(t, &gi) ==
        (c->buffered ? &proto_buffered : &proto_plain));
  CHECK(gi == &c->cli);
  CHECK(asyncio_transport_is_reading(t));
  CHECK(!asyncio_transport_is_closing(t));
  CHECK(asyncio_transport_can_write_eof(t));
  CHECK(asyncio_transport_get_write_buffer_size(t) == 0);

  CHECK_RC(asyncio_transport_close(t), 0);
  CHECK(asyncio_transport_is_closing(t));
  CHECK(!asyncio_transport_is_reading(t));
  CHECK_RC(asyncio_transport_write(t, "x", 1), 0); /* ignored after close, as Python */
  CHECK_RC(asyncio_transport_close(t), 0);         /* idempotent */
  CHECK(c->cli.lost == 0);                         /* never from inside close() */
  WAIT_UNTIL(c->cli.lost == 1);
  CHECK(c->cli.lost_err == 0);
  WAIT_UNTIL(c->pool.peers[0].lost == 1);
  CHECK(c->pool.peers[0].eofs == 1);
  CHECK(c->pool.peers[0].lost_err == 0);
  return stop_server(srv);
}

TEST(echo_protocol) {
  ctx_t c = {.host = "127.0.0.1"};
  assert_ok(run_main(echo_main, &c));
  ASSERT_SOFT();
}

TEST(echo_buffered_protocol) {
  ctx_t c = {.host = "127.0.0.1", .buffered = true};
  assert_ok(run_main(echo_main, &c));
  ASSERT_SOFT();
}

TEST(echo_ipv6) {
  if (!have_ipv6()) skip();
  ctx_t c = {.host = "::1"};
  assert_ok(run_main(echo_main, &c));
  ASSERT_SOFT();
}

/* ---- 64 MiB both ways ---------------------------------------------------------------- */

#define BIG ((size_t)64 * 1024 * 1024)
#define BLOCK ((size_t)256 * 1024)

static int big_main(void *arg) {
  ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  /* The server echoes with flow control: paused for writing -> stops reading. */
  c->pool.tmpl.echo = c->pool.tmpl.flow_echo = c->pool.tmpl.echo_eof = true;
  c->pool.tmpl.buffered = c->buffered;
  asyncio_server_t *srv = start_server(c, "127.0.0.1");
  if (!srv) return -1;
  c->cli.buffered = !c->buffered;
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "127.0.0.1",
                                          server_port(srv, 0), NULL, &t, NULL),
           0);
  if (!t) return -1;
  unsigned char *block = malloc(BLOCK);
  uint64_t sent = FNV_INIT, x = 88172645463325252ull;
  for (size_t off = 0; off < BIG; off += BLOCK) {
    for (size_t i = 0; i < BLOCK; i += 8) { /* xorshift: different bytes everywhere */
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      memcpy(block + i, &x, 8);
    }
    sent = fnv(sent, block, BLOCK);
    CHECK_RC(asyncio_transport_write(t, block, BLOCK), 0);
    /* A well-behaved producer: wait while the protocol is paused. */
    WAIT_UNTIL(c->cli.paused == c->cli.resumed || c->cli.lost);
    CHECK(asyncio_transport_get_write_buffer_size(t) <= 2 * BLOCK + ASYNCIO_WRITE_HIGH_WATER);
  }
  free(block);
  CHECK_RC(asyncio_transport_write_eof(t), 0);
  CHECK_RC(asyncio_transport_write(t, "x", 1), -EPIPE);
  WAIT_UNTIL(c->cli.lost == 1);
  CHECK(c->cli.lost_err == 0);
  CHECK(c->cli.nrecv == BIG);
  CHECK(c->cli.sum == sent);
  CHECK(c->cli.eofs == 1);
  WAIT_UNTIL(c->pool.peers[0].lost == 1);
  CHECK(c->pool.peers[0].nrecv == BIG);
  CHECK(c->pool.peers[0].sum == sent);
  CHECK(c->pool.peers[0].lost_err == 0);
  CHECK(c->cli.paused >= 1); /* 64 MiB cannot go out without hitting the high-water mark */
  return stop_server(srv);
}

TEST(transfer_64mib_both_ways) {
  ctx_t c = {0};
  assert_ok(run_main(big_main, &c));
  ASSERT_SOFT();
}

TEST(transfer_64mib_buffered_server) {
  ctx_t c = {.buffered = true};
  assert_ok(run_main(big_main, &c));
  ASSERT_SOFT();
}

/* ---- backpressure --------------------------------------------------------------------- */

static int backpressure_main(void *arg) {
  ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  c->pool.tmpl.pause_on_made = true; /* a stalled reader */
  asyncio_server_t *srv = start_server(c, "127.0.0.1");
  if (!srv) return -1;
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "127.0.0.1",
                                          server_port(srv, 0), NULL, &t, NULL),
           0);
  if (!t) return -1;
  size_t lo = 0, hi = 0;
  CHECK_RC(asyncio_transport_get_write_buffer_limits(t, &lo, &hi), 0);
  CHECK(lo == 16 * 1024 && hi == 64 * 1024);
  CHECK_RC(asyncio_transport_set_write_buffer_limits(t, 10, 20), -EINVAL);
  CHECK_RC(asyncio_transport_set_write_buffer_limits(t, -1, 1000), 0);
  CHECK_RC(asyncio_transport_get_write_buffer_limits(t, &lo, &hi), 0);
  CHECK(lo == 1000 && hi == 4000);
  CHECK_RC(asyncio_transport_set_write_buffer_limits(t, -1, -1), 0);
  CHECK_RC(asyncio_transport_get_write_buffer_limits(t, &lo, &hi), 0);
  CHECK(lo == 16 * 1024 && hi == 64 * 1024);
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].made);
  CHECK(!asyncio_transport_is_reading(c->pool.peers[0].t));

  static char chunk[64 * 1024];
  uint64_t sent = FNV_INIT;
  size_t total = 0;
  int rounds = 0;
  /* The kernel's buffers absorb some; then pause_writing must come. */
  while (!c->cli.paused && rounds++ < 4096) {
    memset(chunk, rounds & 0xff, sizeof chunk);
    sent = fnv(sent, chunk, sizeof chunk);
    total += sizeof chunk;
    CHECK_RC(asyncio_transport_write(t, chunk, sizeof chunk), 0);
    if (!c->cli.paused) CHECK_RC(asyncio_sleep(0), 0);
  }
  CHECK(c->cli.paused == 1 && c->cli.resumed == 0);
  size_t buffered = asyncio_transport_get_write_buffer_size(t);
  CHECK(buffered > 64 * 1024);
  CHECK(buffered <= 64 * 1024 + sizeof chunk); /* bounded: the producer stopped */
  /* Still paused after a few loop iterations: nothing drains a stalled peer. */
  for (int i = 0; i < 5; i++) CHECK_RC(asyncio_sleep(0.001), 0);
  CHECK(c->cli.resumed == 0);
  CHECK(asyncio_transport_get_write_buffer_size(t) == buffered);

  CHECK_RC(asyncio_transport_resume_reading(c->pool.peers[0].t), 0);
  WAIT_UNTIL(c->cli.resumed == 1);
  CHECK(asyncio_transport_get_write_buffer_size(t) <= 16 * 1024);
  WAIT_UNTIL(c->pool.peers[0].nrecv == total);
  CHECK(c->pool.peers[0].sum == sent);
  CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(c->cli.lost && c->pool.peers[0].lost);
  CHECK(c->cli.lost_err == 0 && c->pool.peers[0].lost_err == 0);
  return stop_server(srv);
}

TEST(backpressure_pause_resume_writing) {
  ctx_t c = {0};
  assert_ok(run_main(backpressure_main, &c));
  ASSERT_SOFT();
}

/* ---- half-close ------------------------------------------------------------------------ */

static int half_close_main(void *arg) {
  ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  c->pool.tmpl.keep_open = true; /* the server keeps its side open after EOF */
  asyncio_server_t *srv = start_server(c, "127.0.0.1");
  if (!srv) return -1;
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "127.0.0.1",
                                          server_port(srv, 0), NULL, &t, NULL),
           0);
  if (!t) return -1;
  CHECK_RC(asyncio_transport_write(t, "ping", 4), 0);
  CHECK_RC(asyncio_transport_write_eof(t), 0);
  CHECK_RC(asyncio_transport_write_eof(t), 0); /* no-op */
  CHECK_RC(asyncio_transport_write(t, "more", 4), -EPIPE);
  CHECK(!asyncio_transport_is_closing(t));
  peer_t *sp = &c->pool.peers[0];
  WAIT_UNTIL(c->pool.n == 1 && sp->eofs == 1);
  CHECK(sp->nrecv == 4 && memcmp(sp->data, "ping", 4) == 0);
  CHECK(sp->lost == 0); /* eof_received returned true: still open */
  CHECK(!asyncio_transport_is_closing(sp->t));
  CHECK(!asyncio_transport_is_reading(sp->t) || 1);
  /* The server answers on its half, then closes; the client sees data, then EOF. */
  CHECK_RC(asyncio_transport_write(sp->t, "pong", 4), 0);
  CHECK_RC(asyncio_transport_close(sp->t), 0);
  WAIT_UNTIL(c->cli.lost == 1);
  CHECK(c->cli.nrecv == 4 && memcmp(c->cli.data, "pong", 4) == 0);
  CHECK(c->cli.eofs == 1); /* eof_received returned false: the transport closed itself */
  CHECK(c->cli.lost_err == 0);
  WAIT_UNTIL(sp->lost == 1);
  CHECK(sp->lost_err == 0);
  return stop_server(srv);
}

TEST(half_close_write_eof_keep_open) {
  ctx_t c = {0};
  assert_ok(run_main(half_close_main, &c));
  ASSERT_SOFT();
}

static int server_eof_main(void *arg) {
  ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_server_t *srv = start_server(c, "127.0.0.1");
  if (!srv) return -1;
  c->cli.keep_open = true;
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "127.0.0.1",
                                          server_port(srv, 0), NULL, &t, NULL),
           0);
  if (!t) return -1;
  peer_t *sp = &c->pool.peers[0];
  WAIT_UNTIL(c->pool.n == 1 && sp->made);
  CHECK_RC(asyncio_transport_write_eof(sp->t), 0); /* server half-closes first */
  WAIT_UNTIL(c->cli.eofs == 1);
  CHECK(c->cli.lost == 0); /* the client kept its side open */
  CHECK_RC(asyncio_transport_write(t, "late", 4), 0);
  WAIT_UNTIL(sp->nrecv == 4);
  CHECK(memcmp(sp->data, "late", 4) == 0);
  CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(c->cli.lost == 1 && sp->lost == 1);
  CHECK(sp->eofs == 1); /* the server's eof_received returned false: closed itself */
  CHECK(c->cli.lost_err == 0 && sp->lost_err == 0);
  return stop_server(srv);
}

TEST(half_close_server_side) {
  ctx_t c = {0};
  assert_ok(run_main(server_eof_main, &c));
  ASSERT_SOFT();
}

/* ---- reset and abort --------------------------------------------------------------------- */

static int reset_main(void *arg) {
  ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  c->pool.tmpl.pause_on_made = true;
  asyncio_server_t *srv = start_server(c, "127.0.0.1");
  if (!srv) return -1;
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "127.0.0.1",
                                          server_port(srv, 0), NULL, &t, NULL),
           0);
  if (!t) return -1;
  peer_t *sp = &c->pool.peers[0];
  WAIT_UNTIL(c->pool.n == 1 && sp->made);
  /* Fill the server's receive buffer and our write buffer. */
  static char chunk[256 * 1024];
  for (int i = 0; i < 32; i++) CHECK_RC(asyncio_transport_write(t, chunk, sizeof chunk), 0);
  CHECK(asyncio_transport_get_write_buffer_size(t) > 0);
  for (int i = 0; i < 3; i++) CHECK_RC(asyncio_sleep(0.001), 0);
  /* Closing with unread data makes the kernel send RST. */
  CHECK_RC(asyncio_transport_abort(sp->t), 0);
  WAIT_UNTIL(c->cli.lost == 1);
  CHECK(c->cli.lost_err == -ECONNRESET || c->cli.lost_err == -EPIPE);
  CHECK(sp->lost == 1 && sp->lost_err == 0);
  return stop_server(srv);
}

TEST(reset_mid_transfer) {
  ctx_t c = {0};
  assert_ok(run_main(reset_main, &c));
  ASSERT_SOFT();
}

static int abort_main(void *arg) {
  ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  c->pool.tmpl.pause_on_made = true;
  asyncio_server_t *srv = start_server(c, "127.0.0.1");
  if (!srv) return -1;
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "127.0.0.1",
                                          server_port(srv, 0), NULL, &t, NULL),
           0);
  if (!t) return -1;
  static char chunk[1024 * 1024];
  for (int i = 0; i < 16; i++) CHECK_RC(asyncio_transport_write(t, chunk, sizeof chunk), 0);
  CHECK(asyncio_transport_get_write_buffer_size(t) > 0);
  /* close() would wait for the stalled peer; abort() drops the buffer. */
  CHECK_RC(asyncio_transport_abort(t), 0);
  CHECK_RC(asyncio_transport_abort(t), 0);
  CHECK(asyncio_transport_get_write_buffer_size(t) == 0);
  WAIT_UNTIL(c->cli.lost == 1);
  CHECK(c->cli.lost_err == 0);
  peer_t *sp = &c->pool.peers[0];
  CHECK_RC(asyncio_transport_resume_reading(sp->t), 0);
  WAIT_UNTIL(sp->lost == 1);
  return stop_server(srv);
}

TEST(abort_drops_buffer) {
  ctx_t c = {0};
  assert_ok(run_main(abort_main, &c));
  ASSERT_SOFT();
}

/*
 * Python's socket transport keeps taking data after close() while it is
 * still flushing its buffer, and sends it before it closes: data written
 * then is delivered, in order, not dropped.
 */
static int write_after_close_main(void *arg) {
  ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  c->pool.tmpl.pause_on_made = true;
  asyncio_server_t *srv = start_server(c, "127.0.0.1");
  if (!srv) return -1;
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "127.0.0.1",
                                          server_port(srv, 0), NULL, &t, NULL),
           0);
  if (!t) return -1;
  size_t chunk = 1024 * 1024, total = 0;
  unsigned char *data = malloc(16 * chunk + 3);
  for (size_t i = 0; i < 16 * chunk + 3; i++) data[i] = (unsigned char)(i * 7 + (i >> 10));
  for (int i = 0; i < 16; i++, total += chunk)
    CHECK_RC(asyncio_transport_write(t, data + total, chunk), 0);
  CHECK(asyncio_transport_get_write_buffer_size(t) > 0);
  CHECK_RC(asyncio_transport_close(t), 0);
  CHECK_RC(asyncio_transport_write(t, data + total, 2), 0); /* still flushing: taken */
  struct iovec iov = {data + total + 2, 1};
  CHECK_RC(asyncio_transport_writelines(t, &iov, 1), 0);
  total += 3;
  peer_t *sp = &c->pool.peers[0];
  CHECK_RC(asyncio_transport_resume_reading(sp->t), 0);
  WAIT_UNTIL(c->cli.lost == 1);
  CHECK(c->cli.lost_err == 0);
  WAIT_UNTIL(sp->lost == 1);
  CHECK(sp->eofs == 1);
  CHECK(sp->nrecv == total);
  CHECK(sp->sum == fnv(FNV_INIT, data, total));
  free(data);
  return stop_server(srv);
}

TEST(write_after_close_while_flushing) {
  ctx_t c = {0};
  assert_ok(run_main(write_after_close_main, &c));
  ASSERT_SOFT();
}

/*
 * The other direction of a reset: the sending peer resets the connection
 * (SO_LINGER 0, then close) in the middle of a transfer.  The receiving
 * transport delivers an in-order prefix of the stream, then connection_lost
 * with ConnectionResetError -- never a clean EOF, since no FIN was sent.
 */
#define RESET_TOTAL ((size_t)4 * 1024 * 1024)

static int reset_by_sender_main(void *arg) {
  ctx_t *c = arg;
  asyncio_server_t *srv = start_server(c, "127.0.0.1");
  if (!srv) return -1;
  struct sockaddr_in sin = {0};
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)server_port(srv, 0));
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  CHECK_RC(asyncio_sock_connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
  unsigned char *data = malloc(RESET_TOTAL);
  for (size_t i = 0; i < RESET_TOTAL; i++) data[i] = (unsigned char)(i * 31 + (i >> 12));
  /* Half of it goes out (the server reads as it comes) ... */
  CHECK_RC(asyncio_sock_sendall(fd, data, RESET_TOTAL / 2, NULL), 0);
  peer_t *sp = &c->pool.peers[0];
  WAIT_UNTIL(c->pool.n == 1 && sp->nrecv > 0);
  /* ... then the rest is queued in the kernel and the connection is reset. */
  ssize_t more = send(fd, data + RESET_TOTAL / 2, RESET_TOTAL / 2, MSG_NOSIGNAL);
  CHECK(more >= 0 || errno == EAGAIN);
  struct linger lg = {1, 0};
  CHECK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
  close(fd);
  WAIT_UNTIL(sp->lost == 1);
  CHECK(sp->lost_err == -ECONNRESET);
  CHECK(sp->eofs == 0);
  CHECK(sp->nrecv <= RESET_TOTAL);
  CHECK(sp->sum == fnv(FNV_INIT, data, sp->nrecv)); /* a prefix, in order */
  free(data);
  return stop_server(srv);
}

TEST(reset_by_sender_mid_transfer) {
  ctx_t c = {0};
  assert_ok(run_main(reset_by_sender_main, &c));
  ASSERT_SOFT();
}

/* ---- connection errors and Happy Eyeballs ---------------------------------------------------- */

static int refused_main(void *arg) {
  ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  int holder = -1;
  int port = refused_port(AF_INET, &holder);
  CHECK(port > 0);
  int errs[4] = {0};
  size_t nerr = 0;
  asyncio_connection_options_t o = {.errors = errs, .errors_cap = 4, .nerrors = &nerr};
  asyncio_transport_t *t = (void *)1;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "127.0.0.1", port, &o, &t,
                                          NULL),
           -ECONNREFUSED);
  CHECK(t == NULL);
  CHECK(nerr == 1 && errs[0] == -ECONNREFUSED);
  CHECK(c->cli.made == 0 && c->cli.lost == 0); /* the factory never ran */
  /* Bad arguments. */
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "127.0.0.1", 70000, NULL,
                                          &t, NULL),
           -EINVAL);
  CHECK_RC(asyncio_loop_create_connection(loop, NULL, &c->cli, "127.0.0.1", 1, NULL, &t, NULL),
           -EINVAL);
  asyncio_connection_options_t both = {.use_sock = true, .sock = holder};
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "127.0.0.1", 1, &both, &t,
                                          NULL),
           -EINVAL);
  close(holder);
  return 0;
}

TEST(connect_refused) {
  ctx_t c = {0};
  assert_ok(run_main(refused_main, &c));
  ASSERT_SOFT();
}

TEST(create_connection_outside_task) {
  asyncio_loop_t *loop = NULL;
  assert_ok(asyncio_loop_new(&loop, NULL));
  peer_t p = {0};
  asyncio_transport_t *t;
  assert_rc(asyncio_loop_create_connection(loop, peer_factory, &p, "127.0.0.1", 1, NULL, &t, NULL),
            ASYNCIO_ENOTASK);
  assert_ok(asyncio_loop_close(loop));
}

/*
 * A "black hole": a listener with backlog 0 whose accept queue is full, so
 * further SYNs are dropped and a connect hangs until cancelled.
 */
typedef struct hole {
  int lfd, fill[2];
} hole_t;

static int make_hole(int family, int port, hole_t *h) {
  h->lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(h->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (family == AF_INET6) setsockopt(h->lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  struct sockaddr_storage ss;
  socklen_t sl = loopback_addr(family, port, &ss);
  if (bind(h->lfd, (struct sockaddr *)&ss, sl) < 0 || listen(h->lfd, 0) < 0) return -1;
  sl = sizeof ss;
  getsockname(h->lfd, (struct sockaddr *)&ss, &sl);
  for (int i = 0; i < 2; i++) {
    h->fill[i] = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    connect(h->fill[i], (struct sockaddr *)&ss, sl);
  }
  /* The first handshake fills the accept queue; wait for it (not for a time). */
  struct pollfd pfd = {.fd = h->fill[0], .events = POLLOUT};
  if (poll(&pfd, 1, 10000) != 1) return -1;
  return family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                           : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static void free_hole(hole_t *h) {
  close(h->fill[0]);
  close(h->fill[1]);
  close(h->lfd);
}

typedef struct cancel_ctx {
  peer_t cli;
  int port;
  int rc;
  int started;
} cancel_ctx_t;

static int connect_task(void *arg) {
  cancel_ctx_t *c = arg;
  asyncio_transport_t *t = NULL;
  c->started = 1;
  c->rc = asyncio_loop_create_connection(asyncio_get_running_loop(), peer_factory, &c->cli,
                                         "127.0.0.1", c->port, NULL, &t, NULL);
  return c->rc;
}

static int cancel_main(void *arg) {
  cancel_ctx_t *c = arg;
  hole_t h;
  c->port = make_hole(AF_INET, 0, &h);
  CHECK(c->port > 0);
  asyncio_task_t *task = NULL;
  CHECK_RC(asyncio_create_task(&task, connect_task, c, NULL), 0);
  for (int i = 0; i < 20; i++) CHECK_RC(asyncio_sleep(0.001), 0);
  CHECK(c->started && !asyncio_future_done(task)); /* still connecting: the SYN was dropped */
  CHECK_RC(asyncio_task_cancel(task, NULL), 1);
  CHECK_RC(asyncio_await(task, NULL), -ECANCELED);
  CHECK(c->rc == -ECANCELED);
  CHECK(c->cli.made == 0);
  asyncio_task_free(task);
  free_hole(&h);
  return 0;
}

TEST(create_connection_cancelled) {
  cancel_ctx_t c = {0};
  assert_ok(run_main(cancel_main, &c));
  ASSERT_SOFT();
}

/*
 * Happy Eyeballs needs a name with addresses of two families.  A fake
 * resolver (the library's test hook) makes "dual.test" resolve to the
 * loopback of fams[0], then of fams[1], whatever /etc/hosts says.
 */
typedef struct he_ctx {
  pool_t pool;
  peer_t cli;
  double delay;
  bool black_hole;
  int fams[2];
  bool skip;
} he_ctx_t;

static int g_fams[2];

static int fake_resolve(const char *host, int port, int family, int socktype,
                        asyncio__addrs_t *out) {
  if (strcmp(host, "dual.test") != 0) return 0;
  out->v = asyncio__alloc(2 * sizeof *out->v);
  if (!out->v) return -ENOMEM;
  out->n = 0;
  for (int i = 0; i < 2; i++) {
    if (family && family != g_fams[i]) continue;
    asyncio__addr_t *a = &out->v[out->n++];
    memset(a, 0, sizeof *a);
    a->family = g_fams[i];
    a->socktype = socktype;
    if (g_fams[i] == AF_INET) {
      struct sockaddr_in *in = (void *)&a->sa;
      in->sin_family = AF_INET;
      in->sin_port = htons((uint16_t)port);
      in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a->len = sizeof *in;
    } else {
      struct sockaddr_in6 *in6 = (void *)&a->sa;
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons((uint16_t)port);
      in6->sin6_addr = in6addr_loopback;
      a->len = sizeof *in6;
    }
  }
  if (!out->n) {
    asyncio__free(out->v, 2 * sizeof *out->v);
    out->v = NULL;
    return ASYNCIO_EGAI_NONAME;
  }
  /* keep the allocation size exact for the allocator hook */
  if (out->n == 1) {
    asyncio__addr_t one = out->v[0];
    asyncio__free(out->v, 2 * sizeof *out->v);
    out->v = asyncio__alloc(sizeof *out->v);
    if (!out->v) return -ENOMEM;
    out->v[0] = one;
  }
  return 1;
}

static int install_fake_resolver(int fams[2]) {
  g_fams[0] = fams[0];
  g_fams[1] = fams[1];
  asyncio__resolve_hook = fake_resolve;
  return 2;
}

static int he_main(void *arg) {
  he_ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  if (!have_ipv6() || install_fake_resolver(c->fams) != 2) {
    c->skip = true;
    return 0;
  }
  /* The server listens on the second family only; the first is dead. */
  asyncio_server_t *srv = NULL;
  const char *live = c->fams[1] == AF_INET ? "127.0.0.1" : "::1";
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, live, 0, NULL, &srv), 0);
  if (!srv) return -1;
  int port = server_port(srv, 0);
  hole_t h;
  int holder = -1;
  if (c->black_hole)
    CHECK(make_hole(c->fams[0], port, &h) == port);
  else
    holder = -1; /* nothing listens on the first family: refused */
  int errs[4] = {0};
  size_t nerr = 0;
  asyncio_connection_options_t o = {
      .happy_eyeballs_delay = c->delay, .errors = errs, .errors_cap = 4, .nerrors = &nerr};
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "dual.test", port, &o, &t,
                                          NULL),
           0);
  if (t) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    CHECK_RC(asyncio_transport_get_peername(t, (struct sockaddr *)&ss, &sl), 0);
    CHECK(ss.ss_family == c->fams[1]);
    if (!c->black_hole) CHECK(nerr == 1 && errs[0] == -ECONNREFUSED);
    if (c->black_hole) CHECK(nerr == 0); /* the hung attempt was closed, not failed */
    CHECK_RC(asyncio_transport_close(t), 0);
    WAIT_UNTIL(c->cli.lost == 1);
  }
  if (c->black_hole) free_hole(&h);
  (void)holder;
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].lost == 1);
  return stop_server(srv);
}

TEST(happy_eyeballs_refused_first) {
  he_ctx_t c = {.delay = 0.25, .fams = {AF_INET6, AF_INET}};
  assert_ok(run_main(he_main, &c));
  ASSERT_SOFT();
  if (c.skip) skip();
}

TEST(sequential_refused_first) {
  he_ctx_t c = {.delay = 0, .fams = {AF_INET, AF_INET6}};
  assert_ok(run_main(he_main, &c));
  ASSERT_SOFT();
  if (c.skip) skip();
}

TEST(happy_eyeballs_black_hole_first) {
  he_ctx_t c = {.delay = 0.05, .black_hole = true, .fams = {AF_INET6, AF_INET}};
  assert_ok(run_main(he_main, &c));
  ASSERT_SOFT();
  if (c.skip) skip();
}

static int all_fail_main(void *arg) {
  he_ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  if (!have_ipv6() || install_fake_resolver(c->fams) != 2) {
    c->skip = true;
    return 0;
  }
  int h4 = -1, h6 = -1;
  int port = refused_port(AF_INET, &h4);
  int errs[4] = {0};
  size_t nerr = 0;
  asyncio_connection_options_t o = {
      .happy_eyeballs_delay = c->delay, .errors = errs, .errors_cap = 4, .nerrors = &nerr};
  asyncio_transport_t *t = NULL;
  /* Both refused: the one error. */
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "dual.test", port, &o, &t,
                                          NULL),
           -ECONNREFUSED);
  CHECK(nerr == 2 && errs[0] == -ECONNREFUSED && errs[1] == -ECONNREFUSED);
  /* Different errors: a local address of one family only fails the other family. */
  o.local_host = "127.0.0.1";
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "dual.test", port, &o, &t,
                                          NULL),
           ASYNCIO_EEXCEPTIONGROUP);
  CHECK(nerr == 2);
  CHECK((errs[0] == -EADDRNOTAVAIL && errs[1] == -ECONNREFUSED) ||
        (errs[1] == -EADDRNOTAVAIL && errs[0] == -ECONNREFUSED));
  CHECK(c->cli.made == 0);
  close(h4);
  (void)h6;
  return 0;
}

TEST(all_attempts_fail) {
  he_ctx_t c = {.delay = 0.25, .fams = {AF_INET6, AF_INET}};
  assert_ok(run_main(all_fail_main, &c));
  ASSERT_SOFT();
  if (c.skip) skip();
}

/*
 * A fake name with any list of addresses: "multi.test" resolves to g_multi,
 * in that order (numeric hosts, ports per address).  Lets a test lay out
 * exactly which attempt hangs, fails or succeeds.
 */
typedef struct maddr {
  int family;
  const char *host;
  int port;
} maddr_t;

static maddr_t g_multi[8];
static size_t g_nmulti;

static int multi_resolve(const char *host, int port, int family, int socktype,
                         asyncio__addrs_t *out) {
  (void)port;
  if (strcmp(host, "multi.test") != 0) return 0;
  size_t n = 0;
  for (size_t i = 0; i < g_nmulti; i++) n += !family || family == g_multi[i].family;
  if (!n) return ASYNCIO_EGAI_NONAME;
  out->v = asyncio__alloc(n * sizeof *out->v);
  if (!out->v) return -ENOMEM;
  out->n = 0;
  for (size_t i = 0; i < g_nmulti; i++) {
    if (family && family != g_multi[i].family) continue;
    asyncio__addr_t *a = &out->v[out->n++];
    memset(a, 0, sizeof *a);
    a->family = g_multi[i].family;
    a->socktype = socktype;
    if (a->family == AF_INET) {
      struct sockaddr_in *in = (void *)&a->sa;
      in->sin_family = AF_INET;
      in->sin_port = htons((uint16_t)g_multi[i].port);
      inet_pton(AF_INET, g_multi[i].host, &in->sin_addr);
      a->len = sizeof *in;
    } else {
      struct sockaddr_in6 *in6 = (void *)&a->sa;
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons((uint16_t)g_multi[i].port);
      inet_pton(AF_INET6, g_multi[i].host, &in6->sin6_addr);
      a->len = sizeof *in6;
    }
  }
  return 1;
}

/* A loopback TCP listener nobody accepts from: connects to it complete in the kernel. */
static int raw_listener(int family, int *port) {
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_storage ss;
  socklen_t sl = loopback_addr(family, 0, &ss);
  if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 8) < 0) {
    close(fd);
    return -1;
  }
  sl = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  *port = addr_port(&ss);
  return fd;
}

static int peer_port(asyncio_transport_t *t) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (asyncio_transport_get_peername(t, (struct sockaddr *)&ss, &sl) < 0) return -1;
  return ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                 : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* asyncio_run on the virtual clock: a stagger delay costs no real time and is measured exactly. */
static int run_virtual(asyncio_coro_fn fn, void *arg) {
  asyncio_loop_options_t lo = {.clock = ASYNCIO_CLOCK_VIRTUAL};
  asyncio_run_options_t o = {.loop = &lo, .no_sigint_handler = true};
  return asyncio_run(fn, arg, &o);
}

/*
 * An attempt that fails synchronously (TCP connect to a multicast address:
 * the kernel says ENETUNREACH before sending anything) starts the next one
 * at once, as staggered_race does, whether it is the first attempt or one
 * that a failure started while an earlier attempt still hangs.
 */
typedef struct sync_fail_ctx {
  peer_t cli;
  bool racing; /* a black hole first, then a refusal, then the synchronous failure */
  double delay, elapsed;
  bool skip;
} sync_fail_ctx_t;

static int sync_fail_main(void *arg) {
  sync_fail_ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  if (!have_ipv6()) {
    c->skip = true;
    return 0;
  }
  asyncio__resolve_hook = multi_resolve;
  int live_port = 0, refused = -1;
  int lfd = raw_listener(AF_INET, &live_port);
  CHECK(lfd >= 0);
  hole_t h;
  g_nmulti = 0;
  if (c->racing) {
    int hport = make_hole(AF_INET6, 0, &h);
    CHECK(hport > 0);
    int rport = refused_port(AF_INET, &refused);
    CHECK(rport > 0);
    /* Alternating families already, so the default interleave keeps this order. */
    g_multi[g_nmulti++] = (maddr_t){AF_INET6, "::1", hport};
    g_multi[g_nmulti++] = (maddr_t){AF_INET, "127.0.0.1", rport};
  }
  g_multi[g_nmulti++] = (maddr_t){AF_INET6, "ff02::1", live_port};
  g_multi[g_nmulti++] = (maddr_t){AF_INET, "127.0.0.1", live_port};
  int errs[4] = {0};
  size_t nerr = 0;
  asyncio_connection_options_t o = {
      .happy_eyeballs_delay = c->delay, .errors = errs, .errors_cap = 4, .nerrors = &nerr};
  asyncio_transport_t *t = NULL;
  double t0 = asyncio_loop_time(loop);
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "multi.test", 0, &o, &t,
                                          NULL),
           0);
  c->elapsed = asyncio_loop_time(loop) - t0;
  if (t) {
    CHECK(peer_port(t) == live_port);
    if (c->racing) {
      /* The hung attempt was closed, not failed. */
      CHECK(nerr == 2 && errs[0] == -ECONNREFUSED && errs[1] == -ENETUNREACH);
    } else {
      CHECK(nerr == 1 && errs[0] == -ENETUNREACH);
    }
    CHECK_RC(asyncio_transport_close(t), 0);
    WAIT_UNTIL(c->cli.lost == 1);
  }
  if (c->racing) {
    free_hole(&h);
    close(refused);
  }
  close(lfd);
  return 0;
}

TEST(happy_eyeballs_sync_failure_first) {
  sync_fail_ctx_t c = {.delay = 10};
  assert_ok(run_virtual(sync_fail_main, &c));
  ASSERT_SOFT();
  if (c.skip) skip();
  /* The live address started at once, not after the delay. */
  assert_true(c.elapsed < c.delay);
}

TEST(happy_eyeballs_sync_failure_while_racing) {
  sync_fail_ctx_t c = {.racing = true, .delay = 10};
  assert_ok(run_virtual(sync_fail_main, &c));
  ASSERT_SOFT();
  if (c.skip) skip();
  /*
   * The hole holds the first attempt for one delay; the refusal then starts
   * the multicast attempt, whose synchronous failure starts the live one
   * at once, not when a second delay has run out.
   */
  if (c.elapsed < c.delay || c.elapsed >= 2 * c.delay)
    fail_msg("connected after %g s of virtual time, expected %g", c.elapsed, c.delay);
}

/*
 * staggered_race starts the next attempt early only when the attempt started
 * last fails.  Here attempt 0 (a black hole on ::1) is still connecting when
 * the delay starts attempt 1 (a black hole on 127.0.0.1); then attempt 0
 * fails (a task shuts its socket down: SYN_SENT turns into ECONNRESET), and
 * attempt 2, the live address, must still wait for attempt 1's delay.
 */
typedef struct older_ctx {
  peer_t cli;
  hole_t h6;
  double delay, elapsed;
  int shut; /* attempt 0's socket was found and shut down */
  bool skip;
} older_ctx_t;

/* The one IPv6 TCP socket in SYN_SENT that is not the hole's own filler. */
static int syn_sent_v6(const hole_t *h) {
  int found = -1;
  for (int fd = 3; fd < 1024; fd++) {
    if (fd == h->fill[0] || fd == h->fill[1] || fd == h->lfd) continue;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    struct tcp_info ti;
    socklen_t tl = sizeof ti;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 || ss.ss_family != AF_INET6) continue;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) < 0 || ti.tcpi_state != TCP_SYN_SENT)
      continue;
    if (found >= 0) return -1; /* ambiguous */
    found = fd;
  }
  return found;
}

static int fail_older(void *arg) {
  older_ctx_t *c = arg;
  CHECK_RC(asyncio_sleep(c->delay * 1.5), 0); /* attempt 1 started at delay */
  int fd = syn_sent_v6(&c->h6);
  CHECK(fd >= 0);
  if (fd >= 0 && shutdown(fd, SHUT_RDWR) == 0) c->shut = 1;
  return 0;
}

static int older_fail_main(void *arg) {
  older_ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  if (!have_ipv6()) {
    c->skip = true;
    return 0;
  }
  asyncio__resolve_hook = multi_resolve;
  hole_t h4;
  int p6 = make_hole(AF_INET6, 0, &c->h6), p4 = make_hole(AF_INET, 0, &h4);
  int live_port = 0;
  int lfd = raw_listener(AF_INET6, &live_port);
  CHECK(p6 > 0 && p4 > 0 && lfd >= 0);
  g_nmulti = 0;
  /* Alternating families already, so the default interleave keeps this order. */
  g_multi[g_nmulti++] = (maddr_t){AF_INET6, "::1", p6};
  g_multi[g_nmulti++] = (maddr_t){AF_INET, "127.0.0.1", p4};
  g_multi[g_nmulti++] = (maddr_t){AF_INET6, "::1", live_port};
  asyncio_task_t *killer = NULL;
  CHECK_RC(asyncio_create_task(&killer, fail_older, c, NULL), 0);
  int errs[4] = {0};
  size_t nerr = 0;
  asyncio_connection_options_t o = {
      .happy_eyeballs_delay = c->delay, .errors = errs, .errors_cap = 4, .nerrors = &nerr};
  asyncio_transport_t *t = NULL;
  double t0 = asyncio_loop_time(loop);
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "multi.test", 0, &o, &t,
                                          NULL),
           0);
  c->elapsed = asyncio_loop_time(loop) - t0;
  if (killer) {
    CHECK_RC(asyncio_await(killer, NULL), 0);
    asyncio_task_free(killer);
  }
  CHECK(c->shut == 1);
  if (t) {
    CHECK(peer_port(t) == live_port);
    CHECK(nerr == 1 && errs[0] == -ECONNRESET); /* attempt 1 was closed, not failed */
    CHECK_RC(asyncio_transport_close(t), 0);
    WAIT_UNTIL(c->cli.lost == 1);
  }
  free_hole(&c->h6);
  free_hole(&h4);
  close(lfd);
  return 0;
}

TEST(happy_eyeballs_older_failure_waits_for_delay) {
  older_ctx_t c = {.delay = 10};
  assert_ok(run_virtual(older_fail_main, &c));
  ASSERT_SOFT();
  if (c.skip) skip();
  /* Attempt 2 started when attempt 1's delay ran out (2 delays), not when attempt 0 failed. */
  if (c.elapsed < 2 * c.delay || c.elapsed >= 3 * c.delay)
    fail_msg("connected after %g s of virtual time, expected %g", c.elapsed, 2 * c.delay);
}

/*
 * options->errors lists the failures by attempt, not by when each failed
 * (Python's list of exceptions is indexed by attempt): attempt 1 (refused)
 * fails first, attempt 0 (a black hole, shut down by a task) after it.
 */
static int errors_order_main(void *arg) {
  older_ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  if (!have_ipv6()) {
    c->skip = true;
    return 0;
  }
  asyncio__resolve_hook = multi_resolve;
  int refused = -1;
  int p6 = make_hole(AF_INET6, 0, &c->h6), p4 = refused_port(AF_INET, &refused);
  CHECK(p6 > 0 && p4 > 0);
  g_nmulti = 0;
  g_multi[g_nmulti++] = (maddr_t){AF_INET6, "::1", p6};
  g_multi[g_nmulti++] = (maddr_t){AF_INET, "127.0.0.1", p4};
  asyncio_task_t *killer = NULL;
  CHECK_RC(asyncio_create_task(&killer, fail_older, c, NULL), 0);
  int errs[4] = {0};
  size_t nerr = 0;
  asyncio_connection_options_t o = {
      .happy_eyeballs_delay = c->delay, .errors = errs, .errors_cap = 4, .nerrors = &nerr};
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "multi.test", 0, &o, &t,
                                          NULL),
           ASYNCIO_EEXCEPTIONGROUP);
  if (killer) {
    CHECK_RC(asyncio_await(killer, NULL), 0);
    asyncio_task_free(killer);
  }
  CHECK(c->shut == 1 && t == NULL && c->cli.made == 0);
  CHECK(nerr == 2 && errs[0] == -ECONNRESET && errs[1] == -ECONNREFUSED);
  free_hole(&c->h6);
  close(refused);
  return 0;
}

TEST(happy_eyeballs_errors_in_attempt_order) {
  older_ctx_t c = {.delay = 10};
  assert_ok(run_virtual(errors_order_main, &c));
  ASSERT_SOFT();
  if (c.skip) skip();
}

/*
 * interleave=: the order in which the addresses are tried.  "multi.test"
 * gives [v6a, v6b, v6c, v4a, v4b]; every address refuses except one that
 * listens, so the number of failures before the connection is that
 * address's place in the attempt order.  Making each address the live one
 * in turn reads the whole order off real connects.
 */
typedef struct il_case {
  int interleave;
  double delay;
  int order[5]; /* indices into [v6a, v6b, v6c, v4a, v4b], in attempt order */
} il_case_t;

typedef struct il_ctx {
  peer_t cli;
  const il_case_t *cases;
  size_t ncases;
  bool skip;
} il_ctx_t;

static int interleave_main(void *arg) {
  il_ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  if (!have_ipv6()) {
    c->skip = true;
    return 0;
  }
  asyncio__resolve_hook = multi_resolve;
  static const int fams[5] = {AF_INET6, AF_INET6, AF_INET6, AF_INET, AF_INET};
  for (size_t ci = 0; ci < c->ncases; ci++) {
    const il_case_t *k = &c->cases[ci];
    for (int live = 0; live < 5; live++) {
      int fds[5];
      g_nmulti = 5;
      for (int i = 0; i < 5; i++) {
        int port = -1;
        fds[i] = -1;
        if (i == live)
          fds[i] = raw_listener(fams[i], &port);
        else
          port = refused_port(fams[i], &fds[i]);
        CHECK(fds[i] >= 0 && port > 0);
        g_multi[i] = (maddr_t){fams[i], fams[i] == AF_INET ? "127.0.0.1" : "::1", port};
      }
      size_t want = 0;
      while (k->order[want] != live) want++;
      int errs[5] = {0};
      size_t nerr = 99;
      asyncio_connection_options_t o = {.happy_eyeballs_delay = k->delay,
                                        .interleave = k->interleave,
                                        .errors = errs,
                                        .errors_cap = 5,
                                        .nerrors = &nerr};
      memset(&c->cli, 0, sizeof c->cli);
      asyncio_transport_t *t = NULL;
      CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "multi.test", 0, &o,
                                              &t, NULL),
               0);
      if (nerr != want && !soft_fail[0])
        snprintf(soft_fail, sizeof soft_fail,
                 "interleave=%d delay=%g: address %d was attempt %zu, expected %zu",
                 k->interleave, k->delay, live, nerr, want);
      for (size_t i = 0; i < nerr && i < 5; i++) CHECK(errs[i] == -ECONNREFUSED);
      if (t) {
        CHECK(peer_port(t) == g_multi[live].port);
        CHECK_RC(asyncio_transport_close(t), 0);
        WAIT_UNTIL(c->cli.lost == 1);
      }
      for (int i = 0; i < 5; i++) close(fds[i]);
    }
  }
  return 0;
}

TEST(interleave_attempt_order) {
  /*
   * _interleave_addrinfos: the first `interleave` - 1 of the first family,
   * then one of each family in turn.  0 without Happy Eyeballs: as
   * resolved; 0 with it: as interleave=1.
   */
  static const il_case_t cases[] = {
      {0, 0, {0, 1, 2, 3, 4}},  {1, 0, {0, 3, 1, 4, 2}}, {2, 0, {0, 1, 3, 2, 4}},
      {3, 0, {0, 1, 2, 3, 4}},  {9, 0, {0, 1, 2, 3, 4}}, {0, 10, {0, 3, 1, 4, 2}},
      {2, 10, {0, 1, 3, 2, 4}},
  };
  il_ctx_t c = {.cases = cases, .ncases = sizeof cases / sizeof cases[0]};
  assert_ok(run_virtual(interleave_main, &c));
  ASSERT_SOFT();
  if (c.skip) skip();
}

/* ---- local_addr and existing sockets ------------------------------------------------------ */

static int local_addr_main(void *arg) {
  ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_server_t *srv = start_server(c, "127.0.0.1");
  if (!srv) return -1;
  /* A local port that is free right now. */
  int holder = -1;
  int lport = refused_port(AF_INET, &holder);
  close(holder);
  asyncio_connection_options_t o = {.local_host = "127.0.0.1", .local_port = lport};
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "127.0.0.1",
                                          server_port(srv, 0), &o, &t, NULL),
           0);
  if (!t) return -1;
  struct sockaddr_in sin;
  socklen_t sl = sizeof sin;
  CHECK_RC(asyncio_transport_get_sockname(t, (struct sockaddr *)&sin, &sl), 0);
  CHECK(sin.sin_family == AF_INET && ntohs(sin.sin_port) == lport);
  CHECK(sin.sin_addr.s_addr == htonl(INADDR_LOOPBACK));
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].made);
  struct sockaddr_in pin;
  sl = sizeof pin;
  CHECK_RC(asyncio_transport_get_peername(c->pool.peers[0].t, (struct sockaddr *)&pin, &sl), 0);
  CHECK(ntohs(pin.sin_port) == lport);
  CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(c->cli.lost && c->pool.peers[0].lost);
  return stop_server(srv);
}

TEST(local_addr) {
  ctx_t c = {0};
  assert_ok(run_main(local_addr_main, &c));
  ASSERT_SOFT();
}

static int sock_main(void *arg) {
  ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  /* create_connection(sock=) and connect_accepted_socket on the two ends. */
  asyncio_connection_options_t o = {.use_sock = true, .sock = sv[0]};
  asyncio_transport_t *a = NULL, *b = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, NULL, 0, &o, &a, NULL), 0);
  peer_t *other = &c->pool.peers[0];
  other->echo = true;
  other->buffered = true;
  CHECK_RC(asyncio_loop_connect_accepted_socket(loop, peer_factory, other, sv[1], NULL, &b, NULL),
           0);
  if (!a || !b) return -1;
  CHECK_RC(asyncio_transport_write(a, "abc", 3), 0);
  WAIT_UNTIL(c->cli.nrecv == 3);
  CHECK(memcmp(c->cli.data, "abc", 3) == 0);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  CHECK_RC(asyncio_transport_get_sockname(a, (struct sockaddr *)&ss, &sl), 0);
  CHECK(ss.ss_family == AF_UNIX);
  CHECK_RC(asyncio_transport_close(a), 0);
  WAIT_UNTIL(c->cli.lost && other->lost);
  CHECK(other->eofs == 1);
  /* Not a stream socket. */
  int d = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  CHECK_RC(asyncio_loop_connect_accepted_socket(loop, peer_factory, other, d, NULL, &b, NULL),
           -EINVAL);
  close(d);
  return 0;
}

TEST(existing_sockets) {
  ctx_t c = {0};
  assert_ok(run_main(sock_main, &c));
  ASSERT_SOFT();
}

/*
 * The sock= argument checks of create_connection and create_unix_connection
 * (Python's ValueErrors): on each refusal the caller still owns the socket.
 */
static int sock_args_main(void *arg) {
  ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_transport_t *t = (void *)1;
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  asyncio_connection_options_t o = {.use_sock = true, .sock = sv[0]};
  /* 'host/port and sock can not be specified at the same time' */
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, NULL, 80, &o, &t, NULL),
           -EINVAL);
  CHECK(t == NULL);
  /* 'path and sock can not be specified at the same time' */
  CHECK_RC(asyncio_loop_create_unix_connection(loop, peer_factory, &c->cli, "@x", &o, &t, NULL),
           -EINVAL);
  /* 'no path and sock were specified' */
  CHECK_RC(asyncio_loop_create_unix_connection(loop, peer_factory, &c->cli, NULL, NULL, &t, NULL),
           -EINVAL);
  /* 'A UNIX Domain Stream Socket was expected': a TCP socket. */
  int tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK(tcp >= 0);
  asyncio_connection_options_t ot = {.use_sock = true, .sock = tcp};
  CHECK_RC(asyncio_loop_create_unix_connection(loop, peer_factory, &c->cli, NULL, &ot, &t, NULL),
           -EINVAL);
  CHECK(fcntl(tcp, F_GETFD) >= 0); /* still the caller's */
  close(tcp);
  /* ... and a Unix datagram socket. */
  int ud = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  asyncio_connection_options_t od = {.use_sock = true, .sock = ud};
  CHECK_RC(asyncio_loop_create_unix_connection(loop, peer_factory, &c->cli, NULL, &od, &t, NULL),
           -EINVAL);
  close(ud);
  CHECK(c->cli.made == 0); /* the factory never ran */
  CHECK(fcntl(sv[0], F_GETFD) >= 0);
  /* A Unix stream socket is taken. */
  CHECK_RC(asyncio_loop_create_unix_connection(loop, peer_factory, &c->cli, NULL, &o, &t, NULL),
           0);
  if (!t) return -1;
  CHECK(c->cli.made == 1);
  CHECK(write(sv[1], "hi", 2) == 2);
  WAIT_UNTIL(c->cli.nrecv == 2);
  CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(c->cli.lost == 1);
  close(sv[1]);
  return 0;
}

TEST(sock_argument_checks) {
  ctx_t c = {0};
  assert_ok(run_main(sock_args_main, &c));
  ASSERT_SOFT();
}

/*
 * base_events._set_nodelay: TCP transports get TCP_NODELAY, whether
 * create_connection made the socket or was given it (sock=,
 * connect_accepted_socket).
 */
static bool nodelay(asyncio_transport_t *t) {
  int v = 0;
  socklen_t sl = sizeof v;
  return getsockopt(asyncio_transport_get_fd(t), IPPROTO_TCP, TCP_NODELAY, &v, &sl) == 0 && v;
}

static int nodelay_main(void *arg) {
  ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_server_t *srv = start_server(c, "127.0.0.1");
  if (!srv) return -1;
  int port = server_port(srv, 0);
  asyncio_transport_t *t = NULL, *a = NULL, *b = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "127.0.0.1", port, NULL,
                                          &t, NULL),
           0);
  if (!t) return -1;
  CHECK(nodelay(t));
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].made);
  CHECK(nodelay(c->pool.peers[0].t)); /* the server side too */
  /* A blocking TCP pair made outside asyncio. */
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sin;
  CHECK(bind(l, (struct sockaddr *)&sin, sizeof sin) == 0 && listen(l, 1) == 0);
  CHECK(getsockname(l, (struct sockaddr *)&sin, &sl) == 0);
  int x = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK(connect(x, (struct sockaddr *)&sin, sizeof sin) == 0);
  int y = accept4(l, NULL, NULL, SOCK_CLOEXEC);
  CHECK(y >= 0);
  close(l);
  peer_t pb = {0};
  asyncio_connection_options_t o = {.use_sock = true, .sock = x};
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->pool.peers[1], NULL, 0, &o, &a,
                                          NULL),
           0);
  CHECK_RC(asyncio_loop_connect_accepted_socket(loop, peer_factory, &pb, y, NULL, &b, NULL), 0);
  if (!a || !b) return -1;
  CHECK(nodelay(a) && nodelay(b));
  CHECK(fcntl(x, F_GETFL) & O_NONBLOCK); /* made non-blocking, as sock.setblocking(False) */
  CHECK(fcntl(y, F_GETFL) & O_NONBLOCK);
  CHECK_RC(asyncio_transport_close(a), 0);
  CHECK_RC(asyncio_transport_close(b), 0);
  CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(c->cli.lost && c->pool.peers[1].lost && pb.lost && c->pool.peers[0].lost);
  return stop_server(srv);
}

TEST(tcp_nodelay) {
  ctx_t c = {0};
  assert_ok(run_main(nodelay_main, &c));
  ASSERT_SOFT();
}

/*
 * _ipaddr_info: a numeric host skips getaddrinfo, and the protocol follows
 * the socket type, so a stream connection asked for with IPPROTO_UDP is
 * TCP, as in Python; IPPROTO_TCP works as well.
 */
static int numeric_proto_main(void *arg) {
  ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_server_t *srv = start_server(c, "127.0.0.1");
  if (!srv) return -1;
  int port = server_port(srv, 0);
  const int protos[2] = {IPPROTO_UDP, IPPROTO_TCP};
  for (int i = 0; i < 2; i++) {
    peer_t p = {0};
    asyncio_connection_options_t o = {.proto = protos[i]};
    asyncio_transport_t *t = NULL;
    CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &p, "127.0.0.1", port, &o, &t,
                                            NULL),
             0);
    if (!t) return -1;
    CHECK_RC(asyncio_transport_write(t, "x", 1), 0);
    WAIT_UNTIL(c->pool.n == i + 1 && c->pool.peers[i].nrecv == 1);
    CHECK_RC(asyncio_transport_close(t), 0);
    WAIT_UNTIL(p.lost == 1);
  }
  return stop_server(srv);
}

TEST(numeric_host_protocol_follows_type) {
  ctx_t c = {0};
  assert_ok(run_main(numeric_proto_main, &c));
  ASSERT_SOFT();
}

/*
 * local_addr that cannot be bound for any local address: _connect_sock
 * raises the last bind error (Python's text: 'error while attempting to
 * bind on address ...'), and no connect is tried.
 */
static int local_bind_fail_main(void *arg) {
  ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_server_t *srv = start_server(c, "127.0.0.1");
  if (!srv) return -1;
  int port = server_port(srv, 0);
  /* The server's own port is in use on 127.0.0.1. */
  int errs[2] = {0};
  size_t nerr = 0;
  asyncio_connection_options_t o = {.local_host = "127.0.0.1", .local_port = port,
                                    .errors = errs, .errors_cap = 2, .nerrors = &nerr};
  asyncio_transport_t *t = (void *)1;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "127.0.0.1", port, &o, &t,
                                          NULL),
           -EADDRINUSE);
  CHECK(t == NULL);
  CHECK(nerr == 1 && errs[0] == -EADDRINUSE);
  CHECK(c->cli.made == 0 && c->pool.n == 0);
  return stop_server(srv);
}

TEST(local_addr_bind_fails) {
  ctx_t c = {0};
  assert_ok(run_main(local_bind_fail_main, &c));
  ASSERT_SOFT();
}

/*
 * sock= that is not connected: Python wraps it without a check (peername
 * None), and the first read fails with ENOTCONN.
 */
static int unconnected_main(void *arg) {
  ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  asyncio_connection_options_t o = {.use_sock = true, .sock = s};
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, NULL, 0, &o, &t, NULL), 0);
  if (!t) return -1;
  CHECK(c->cli.made == 1 && c->cli.lost == 0);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  CHECK_RC(asyncio_transport_get_peername(t, (struct sockaddr *)&ss, &sl), -ENOTCONN);
  WAIT_UNTIL(c->cli.lost == 1);
  CHECK(c->cli.lost_err == -ENOTCONN); /* the transport closed s */
  return 0;
}

TEST(unconnected_sock) {
  ctx_t c = {0};
  assert_ok(run_main(unconnected_main, &c));
  ASSERT_SOFT();
}

/*
 * connection_made closes the transport: connection_lost runs before the
 * creator resumes, so the call returns -ENOTCONN and no transport (Python
 * hands back the closed one).  Nothing is left open on either side.
 */
static int lost_early_main(void *arg) {
  ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_server_t *srv = start_server(c, "127.0.0.1");
  if (!srv) return -1;
  c->cli.close_on_made = true;
  asyncio_transport_t *t = (void *)1;
  void *inst = (void *)1;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "127.0.0.1",
                                          server_port(srv, 0), NULL, &t, &inst),
           -ENOTCONN);
  CHECK(t == NULL);
  CHECK(c->cli.made == 1 && c->cli.lost == 1 && c->cli.lost_err == 0);
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].lost == 1);
  /* The same through sock=. */
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  peer_t p = {.close_on_made = true};
  asyncio_connection_options_t o = {.use_sock = true, .sock = sv[0]};
  CHECK_RC(asyncio_loop_create_unix_connection(loop, peer_factory, &p, NULL, &o, &t, NULL),
           -ENOTCONN);
  CHECK(p.made == 1 && p.lost == 1);
  char b;
  CHECK(read(sv[1], &b, 1) == 0); /* sv[0] was closed with its transport */
  close(sv[1]);
  return stop_server(srv);
}

TEST(lost_before_return) {
  ctx_t c = {0};
  assert_ok(run_main(lost_early_main, &c));
  ASSERT_SOFT();
}

/* ---- pause/resume reading, set_protocol, protocol errors ------------------------------------- */

static int bad_get_buffer(asyncio_transport_t *t, ssize_t hint, void **buf, size_t *len, void *u) {
  *buf = NULL;
  *len = 0;
  return 0;
}

static void count_handler(asyncio_loop_t *loop, const asyncio_error_context_t *ctx, void *ud) {
  (*(int *)ud)++;
}

static int misc_main(void *arg) {
  ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  c->pool.tmpl.echo = true;
  asyncio_server_t *srv = start_server(c, "127.0.0.1");
  if (!srv) return -1;
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "127.0.0.1",
                                          server_port(srv, 0), NULL, &t, NULL),
           0);
  if (!t) return -1;
  CHECK_RC(asyncio_transport_pause_reading(t), 0);
  CHECK_RC(asyncio_transport_pause_reading(t), 0); /* idempotent */
  CHECK(!asyncio_transport_is_reading(t));
  CHECK_RC(asyncio_transport_write(t, "abc", 3), 0);
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].nrecv == 3);
  for (int i = 0; i < 5; i++) CHECK_RC(asyncio_sleep(0.001), 0);
  CHECK(c->cli.nrecv == 0); /* paused: the echo waits in the kernel */
  CHECK_RC(asyncio_transport_resume_reading(t), 0);
  CHECK_RC(asyncio_transport_resume_reading(t), 0);
  WAIT_UNTIL(c->cli.nrecv == 3);

  /* set_protocol: later data goes to the new instance. */
  peer_t second = {0};
  CHECK_RC(asyncio_transport_set_protocol(t, &proto_buffered, &second), 0);
  CHECK_RC(asyncio_transport_write(t, "defg", 4), 0);
  WAIT_UNTIL(second.nrecv == 4);
  CHECK(memcmp(second.data, "defg", 4) == 0);
  CHECK(c->cli.nrecv == 3);

  /* A BufferedProtocol that returns an empty buffer: fatal, reported, connection lost. */
  static asyncio_protocol_t broken;
  broken = proto_buffered;
  broken.get_buffer = bad_get_buffer;
  CHECK_RC(asyncio_transport_set_protocol(t, &broken, &second), 0);
  int reports = 0;
  CHECK_RC(asyncio_loop_set_exception_handler(loop, count_handler, &reports), 0);
  CHECK_RC(asyncio_transport_write(t, "h", 1), 0);
  WAIT_UNTIL(second.lost == 1);
  CHECK(second.lost_err == -ENOBUFS);
  CHECK(reports == 1);
  CHECK_RC(asyncio_loop_set_exception_handler(loop, NULL, NULL), 0);
  WAIT_UNTIL(c->pool.peers[0].lost == 1);
  /* Argument checks. */
  CHECK_RC(asyncio_transport_write(NULL, "x", 1), -EINVAL);
  CHECK_RC(asyncio_transport_close(NULL), -EINVAL);
  CHECK(asyncio_transport_get_fd(NULL) == -EINVAL);
  return stop_server(srv);
}

TEST(pause_reading_set_protocol_and_errors) {
  ctx_t c = {0};
  assert_ok(run_main(misc_main, &c));
  ASSERT_SOFT();
}

/* ---- loop close with open transports ------------------------------------------------------ */

static int leave_open_main(void *arg) {
  ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_server_t *srv = start_server(c, "127.0.0.1");
  if (!srv) return -1;
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "127.0.0.1",
                                          server_port(srv, 0), NULL, &t, NULL),
           0);
  static char chunk[1024 * 1024];
  CHECK_RC(asyncio_transport_write(t, chunk, sizeof chunk), 0);
  WAIT_UNTIL(c->pool.n == 1);
  /* Leave the server, its client and ours open: closing the loop cleans up. */
  asyncio_task_set_result_value(srv);
  return 0;
}

TEST(loop_close_closes_transports) {
  ctx_t c = {0};
  asyncio_run_options_t o = {0};
  o.no_sigint_handler = true;
  void *srv = NULL;
  assert_ok(asyncio_run_value(leave_open_main, &c, &o, &srv));
  ASSERT_SOFT();
  assert_non_null(srv);
  assert_ok(asyncio_server_free(srv));
  assert_int_equal(c.cli.lost, 0); /* no callbacks from close */
}

/* A task destroyed by loop close while it connects: its sockets must not leak. */
static void quiet_handler(asyncio_loop_t *loop, const asyncio_error_context_t *ctx, void *ud) {
  (*(int *)ud)++;
}

static int short_sleep(void *arg) {
  for (int i = 0; i < 10; i++) asyncio_sleep(0.001);
  return 0;
}

TEST(loop_close_during_connect) {
  hole_t h;
  cancel_ctx_t c = {0};
  c.port = make_hole(AF_INET, 0, &h);
  assert_true(c.port > 0);
  asyncio_loop_t *loop = NULL;
  assert_ok(asyncio_loop_new(&loop, NULL));
  int reports = 0;
  assert_ok(asyncio_loop_set_exception_handler(loop, quiet_handler, &reports));
  asyncio_task_t *task = NULL, *sleeper = NULL;
  assert_ok(asyncio_loop_create_task(loop, &task, connect_task, &c, NULL));
  assert_ok(asyncio_loop_create_task(loop, &sleeper, short_sleep, NULL, NULL));
  assert_ok(asyncio_loop_run_until_complete(loop, sleeper, NULL));
  assert_true(c.started && !asyncio_future_done(task));
  assert_ok(asyncio_loop_close(loop)); /* "Task was destroyed but it is pending!" */
  assert_int_equal(reports, 1);
  asyncio_task_free(task);
  asyncio_task_free(sleeper);
  free_hole(&h);
  ASSERT_SOFT();
}

/* The ambient timeout scope bounds create_connection (async with asyncio.timeout()). */
static int timeout_main(void *arg) {
  cancel_ctx_t *c = arg;
  hole_t h;
  c->port = make_hole(AF_INET, 0, &h);
  CHECK(c->port > 0);
  asyncio_timeout_t *to = NULL;
  CHECK_RC(asyncio_timeout_enter(&to, 0.05), 0);
  asyncio_transport_t *t = NULL;
  int rc = asyncio_loop_create_connection(asyncio_get_running_loop(), peer_factory, &c->cli,
                                          "127.0.0.1", c->port, NULL, &t, NULL);
  CHECK_RC(asyncio_timeout_exit(to, rc), -ETIMEDOUT);
  asyncio_timeout_free(to);
  CHECK(t == NULL && c->cli.made == 0);
  free_hole(&h);
  return 0;
}

TEST(create_connection_timeout_scope) {
  cancel_ctx_t c = {0};
  assert_ok(run_main(timeout_main, &c));
  ASSERT_SOFT();
}

/* Every allocation create_connection makes may fail: -ENOMEM, nothing leaked or left open. */
static void silent(asyncio_loop_t *loop, const asyncio_error_context_t *ctx, void *ud) {
  (*(int *)ud)++;
}

static int alloc_fail_main(void *arg) {
  ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  int reports = 0;
  CHECK_RC(asyncio_loop_set_exception_handler(loop, silent, &reports), 0);
  c->pool.tmpl.echo = true;
  asyncio_server_t *srv = start_server(c, "127.0.0.1");
  if (!srv) return -1;
  int port = server_port(srv, 0);
  int ok = 0, nomem = 0;
  for (long n = 1; n <= 40; n++) {
    peer_t p = {0};
    asyncio_transport_t *t = NULL;
    harness_fail_alloc_after(n);
    int rc = asyncio_loop_create_connection(loop, peer_factory, &p, "127.0.0.1", port, NULL, &t,
                                            NULL);
    harness_fail_alloc_after(0);
    CHECK(rc == 0 || rc == -ENOMEM);
    if (rc == 0) {
      ok++;
      CHECK_RC(asyncio_transport_write(t, "ab", 2), 0);
      WAIT_UNTIL(p.nrecv == 2 || p.lost);
      if (!p.lost) CHECK_RC(asyncio_transport_close(t), 0);
      WAIT_UNTIL(p.lost == 1);
    } else {
      nomem++;
      CHECK(p.made == 0 && t == NULL);
    }
  }
  CHECK(ok > 0 && nomem > 0);
  /* Let the server side finish every connection it accepted. */
  for (int i = 0; i < 20; i++) CHECK_RC(asyncio_sleep(0.001), 0);
  asyncio_server_close_clients(srv);
  CHECK_RC(asyncio_server_close(srv), 0);
  CHECK_RC(asyncio_server_wait_closed(srv), 0);
  CHECK_RC(asyncio_server_free(srv), 0);
  CHECK_RC(asyncio_loop_set_exception_handler(loop, NULL, NULL), 0);
  return 0;
}

TEST(create_connection_alloc_failures) {
  static ctx_t c;
  memset(&c, 0, sizeof c);
  assert_ok(run_main(alloc_fail_main, &c));
  ASSERT_SOFT();
}

/* A name, not a number: resolved through asyncio_getaddrinfo on both sides. */
static int resolve_main(void *arg) {
  ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  c->pool.tmpl.echo = true;
  asyncio_server_t *srv = start_server(c, "localhost");
  if (!srv) return -1;
  asyncio_transport_t *t = NULL;
  /* "localhost" may have several addresses with different ports: attempts go in order. */
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "localhost",
                                          server_port(srv, 0), NULL, &t, NULL),
           0);
  if (!t) return -1;
  CHECK_RC(asyncio_transport_write(t, "dns", 3), 0);
  WAIT_UNTIL(c->cli.nrecv == 3);
  CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(c->cli.lost && c->pool.n == 1 && c->pool.peers[0].lost);
  /* A name that does not resolve: the resolver's error. */
  peer_t p = {0};
  int rc = asyncio_loop_create_connection(loop, peer_factory, &p, "no-such-host.invalid", 80,
                                          NULL, &t, NULL);
  CHECK(rc < 0); /* ASYNCIO_EGAI_NONAME, or _AGAIN without a resolver */
  CHECK(p.made == 0);
  return stop_server(srv);
}

TEST(create_connection_resolves_names) {
  ctx_t c = {0};
  assert_ok(run_main(resolve_main, &c));
  ASSERT_SOFT();
}

/* writelines with more buffers than one sendmsg takes, before and after buffering starts. */
static int writelines_main(void *arg) {
  ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  c->pool.tmpl.pause_on_made = true;
  asyncio_server_t *srv = start_server(c, "127.0.0.1");
  if (!srv) return -1;
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "127.0.0.1",
                                          server_port(srv, 0), NULL, &t, NULL),
           0);
  if (!t) return -1;
  static char bufs[200][1000];
  struct iovec iov[200];
  uint64_t sum = FNV_INIT;
  size_t total = 0;
  for (int round = 0; round < 40; round++) { /* ~8 MB: the later rounds go to the buffer */
    for (int i = 0; i < 200; i++) {
      memset(bufs[i], (round * 200 + i) & 0xff, sizeof bufs[i]);
      iov[i].iov_base = bufs[i];
      iov[i].iov_len = (size_t)(1 + (i * 37 + round) % 1000);
      sum = fnv(sum, bufs[i], iov[i].iov_len);
      total += iov[i].iov_len;
    }
    CHECK_RC(asyncio_transport_writelines(t, iov, 200), 0);
  }
  CHECK_RC(asyncio_transport_writelines(t, iov, 0), 0);
  CHECK_RC(asyncio_transport_writelines(t, NULL, 1), -EINVAL);
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].made);
  CHECK(asyncio_transport_get_write_buffer_size(t) > 0);
  CHECK_RC(asyncio_transport_resume_reading(c->pool.peers[0].t), 0);
  CHECK_RC(asyncio_transport_close(t), 0); /* flushes first */
  WAIT_UNTIL(c->cli.lost && c->pool.peers[0].lost);
  CHECK(c->pool.peers[0].nrecv == total);
  CHECK(c->pool.peers[0].sum == sum);
  return stop_server(srv);
}

TEST(writelines_many_buffers_in_order) {
  ctx_t c = {0};
  assert_ok(run_main(writelines_main, &c));
  ASSERT_SOFT();
}

/* ---- injected system-call faults (asyncio__sys) --------------------------------------------- */

static int g_calls, g_reset_fd = -1;

static ssize_t short_send(int fd, const void *b, size_t n, int fl) {
  if (++g_calls % 3 == 0) {
    errno = EINTR;
    return -1;
  }
  return send(fd, b, n > 7000 ? 7000 : n, fl);
}

static ssize_t short_sendmsg(int fd, const struct msghdr *m, int fl) {
  if (++g_calls % 3 == 0) {
    errno = EINTR;
    return -1;
  }
  /* At most 7000 bytes, cut inside whichever buffer reaches it. */
  struct iovec v[64];
  struct msghdr mm = *m;
  size_t left = 7000;
  int k = 0;
  for (size_t i = 0; i < m->msg_iovlen && left && k < 64; i++, k++) {
    v[k] = m->msg_iov[i];
    if (v[k].iov_len > left) v[k].iov_len = left;
    left -= v[k].iov_len;
  }
  mm.msg_iov = v;
  mm.msg_iovlen = (size_t)k;
  return sendmsg(fd, &mm, fl);
}

static ssize_t short_recv(int fd, void *b, size_t n, int fl) {
  if (fd == g_reset_fd) {
    errno = ECONNRESET;
    return -1;
  }
  if (++g_calls % 4 == 0) {
    errno = EINTR;
    return -1;
  }
  return recv(fd, b, n > 5000 ? 5000 : n, fl);
}

static int faults_main(void *arg) {
  ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  c->pool.tmpl.echo = c->pool.tmpl.flow_echo = c->pool.tmpl.echo_eof = true;
  asyncio_server_t *srv = start_server(c, "127.0.0.1");
  if (!srv) return -1;
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "127.0.0.1",
                                          server_port(srv, 0), NULL, &t, NULL),
           0);
  if (!t) return -1;
  asyncio__sys_t saved = asyncio__sys;
  asyncio__sys.send = short_send;
  asyncio__sys.sendmsg = short_sendmsg;
  asyncio__sys.recv = short_recv;
  static unsigned char block[100000];
  uint64_t sum = FNV_INIT;
  size_t total = 0;
  for (int r = 0; r < 40; r++) {
    for (size_t i = 0; i < sizeof block; i++) block[i] = (unsigned char)(i * 31 + r);
    sum = fnv(sum, block, sizeof block);
    total += sizeof block;
    CHECK_RC(asyncio_transport_write(t, block, sizeof block), 0);
    WAIT_UNTIL(c->cli.paused == c->cli.resumed || c->cli.lost);
  }
  CHECK_RC(asyncio_transport_write_eof(t), 0);
  WAIT_UNTIL(c->cli.lost == 1);
  CHECK(c->cli.lost_err == 0);
  CHECK(c->cli.nrecv == total && c->cli.sum == sum);
  WAIT_UNTIL(c->pool.peers[0].lost == 1);

  /* A reset reported by recv() ends the transport with -ECONNRESET. */
  peer_t p = {0};
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &p, "127.0.0.1",
                                          server_port(srv, 0), NULL, &t, NULL),
           0);
  if (t) {
    g_reset_fd = asyncio_transport_get_fd(t);
    CHECK_RC(asyncio_transport_write(t, "x", 1), 0); /* the echo makes it readable */
    WAIT_UNTIL(p.lost == 1);
    CHECK(p.lost_err == -ECONNRESET);
    g_reset_fd = -1;
  }
  asyncio__sys = saved;
  WAIT_UNTIL(c->pool.n == 2 && c->pool.peers[1].lost == 1);
  return stop_server(srv);
}

TEST(injected_short_writes_eintr_and_reset) {
  ctx_t c = {0};
  assert_ok(run_main(faults_main, &c));
  ASSERT_SOFT();
}

/* ---- a transport over a socketpair: the test drives the raw end ------------------------------ */

/* connect_accepted_socket over one end of a socketpair; *raw is the other end. */
static int pair_transport(peer_t *p, asyncio_transport_t **t, int *raw) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
  int rc = asyncio_loop_connect_accepted_socket(asyncio_get_running_loop(), peer_factory, p, sv[0],
                                                NULL, t, NULL);
  if (rc < 0) {
    close(sv[0]);
    close(sv[1]);
    return rc;
  }
  *raw = sv[1];
  return 0;
}

/*
 * eof_received comes at most once (the protocol state machine), also when a
 * protocol that kept the transport open after EOF pauses and resumes
 * reading, or loop.sendfile does that for it.  CPython 3.11-3.13 re-register
 * the reader there and report EOF again; we do not.
 */
static int eof_once_main(void *arg) {
  (void)arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  peer_t p = {0};
  p.keep_open = true;
  asyncio_transport_t *t = NULL;
  int raw = -1;
  CHECK_RC(pair_transport(&p, &t, &raw), 0);
  if (!t) return -1;
  CHECK(shutdown(raw, SHUT_WR) == 0);
  WAIT_UNTIL(p.eofs == 1);
  CHECK(!asyncio_transport_is_closing(t));
  CHECK(asyncio_transport_is_reading(t)); /* as Python: not paused, not closing */
  CHECK_RC(asyncio_transport_pause_reading(t), 0);
  CHECK(!asyncio_transport_is_reading(t));
  CHECK_RC(asyncio_transport_resume_reading(t), 0);
  CHECK(asyncio_transport_is_reading(t));
  for (int i = 0; i < 5; i++) CHECK_RC(asyncio_sleep(0.001), 0);
  CHECK(p.eofs == 1);
  /* sendfile pauses and resumes reading around its work. */
  int f = memfd_create("eof-once", MFD_CLOEXEC);
  CHECK(f >= 0);
  CHECK(write(f, "file", 4) == 4);
  size_t sent = 0;
  CHECK_RC(asyncio_loop_sendfile(loop, t, f, 0, 0, &sent, NULL), 0);
  CHECK(sent == 4);
  close(f);
  for (int i = 0; i < 5; i++) CHECK_RC(asyncio_sleep(0.001), 0);
  CHECK(p.eofs == 1);
  /* The write half still works. */
  CHECK_RC(asyncio_transport_write(t, "late", 4), 0);
  char buf[16];
  ssize_t k = 0;
  for (int i = 0; i < 1000 && k < 8; i++) {
    ssize_t r = recv(raw, buf + k, sizeof buf - (size_t)k, MSG_DONTWAIT);
    if (r > 0)
      k += r;
    else
      CHECK_RC(asyncio_sleep(0.001), 0);
  }
  CHECK(k == 8 && memcmp(buf, "filelate", 8) == 0);
  CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(p.lost == 1);
  CHECK(p.lost_err == 0 && p.eofs == 1);
  close(raw);
  return 0;
}

TEST(eof_received_once_after_pause_resume) {
  assert_ok(run_main(eof_once_main, NULL));
  ASSERT_SOFT();
}

/*
 * set_write_buffer_limits as _FlowControlMixin: None (negative) defaults,
 * high >= low >= 0, pause_writing at once when the buffer is already above
 * the new high-water mark, no resume_writing from a raised mark.  A low
 * mark whose default high (4 * low) does not fit in ssize_t is accepted,
 * as Python's integers have no overflow: high then saturates.
 */
static int limits_main(void *arg) {
  (void)arg;
  peer_t p = {0};
  asyncio_transport_t *t = NULL;
  int raw = -1;
  CHECK_RC(pair_transport(&p, &t, &raw), 0);
  if (!t) return -1;
  size_t lo = 0, hi = 0;
  CHECK_RC(asyncio_transport_set_write_buffer_limits(t, 4000, -1), 0);
  CHECK_RC(asyncio_transport_get_write_buffer_limits(t, &lo, &hi), 0);
  CHECK(lo == 1000 && hi == 4000);
  CHECK_RC(asyncio_transport_set_write_buffer_limits(t, 0, -1), 0);
  CHECK_RC(asyncio_transport_get_write_buffer_limits(t, &lo, &hi), 0);
  CHECK(lo == 0 && hi == 0);
  CHECK_RC(asyncio_transport_set_write_buffer_limits(t, 5, 5), 0);
  CHECK_RC(asyncio_transport_set_write_buffer_limits(t, 4, 5), -EINVAL);
  CHECK_RC(asyncio_transport_get_write_buffer_limits(t, &lo, &hi), 0);
  CHECK(lo == 5 && hi == 5); /* a refused call changes nothing */
  ssize_t big = SSIZE_MAX / 4 + 1;
  CHECK_RC(asyncio_transport_set_write_buffer_limits(t, -1, big), 0);
  CHECK_RC(asyncio_transport_get_write_buffer_limits(t, &lo, &hi), 0);
  CHECK(lo == (size_t)big && hi == (size_t)big * 4);
  CHECK_RC(asyncio_transport_set_write_buffer_limits(t, -1, SSIZE_MAX), 0);
  CHECK_RC(asyncio_transport_get_write_buffer_limits(t, &lo, &hi), 0);
  CHECK(lo == (size_t)SSIZE_MAX && hi == SIZE_MAX);
  CHECK_RC(asyncio_transport_set_write_buffer_limits(t, SSIZE_MAX, -1), 0);
  CHECK_RC(asyncio_transport_get_write_buffer_limits(t, &lo, &hi), 0);
  CHECK(lo == (size_t)SSIZE_MAX / 4 && hi == (size_t)SSIZE_MAX);

  /* Fill the socket and our buffer while the raw end reads nothing. */
  static char chunk[64 * 1024];
  for (int i = 0; i < 64 && asyncio_transport_get_write_buffer_size(t) < 4096; i++)
    CHECK_RC(asyncio_transport_write(t, chunk, sizeof chunk), 0);
  size_t buffered = asyncio_transport_get_write_buffer_size(t);
  CHECK(buffered >= 4096);
  CHECK(p.paused == 0);
  CHECK_RC(asyncio_transport_set_write_buffer_limits(t, 2048, 1024), 0);
  CHECK(p.paused == 1); /* at once */
  CHECK_RC(asyncio_transport_set_write_buffer_limits(t, 1024, 512), 0);
  CHECK(p.paused == 1); /* already paused */
  CHECK_RC(asyncio_transport_set_write_buffer_limits(t, -1, -1), 0);
  CHECK(p.resumed == 0); /* only draining resumes */
  CHECK_RC(asyncio_transport_abort(t), 0);
  WAIT_UNTIL(p.lost == 1);
  close(raw);
  return 0;
}

TEST(write_buffer_limits_validation) {
  assert_ok(run_main(limits_main, NULL));
  ASSERT_SOFT();
}

/*
 * After write_eof every write is refused, also an empty one and an empty
 * writelines (Python checks _eof before looking at the data: RuntimeError).
 */
static int write_after_eof_main(void *arg) {
  (void)arg;
  peer_t p = {0};
  p.keep_open = true;
  asyncio_transport_t *t = NULL;
  int raw = -1;
  CHECK_RC(pair_transport(&p, &t, &raw), 0);
  if (!t) return -1;
  CHECK_RC(asyncio_transport_writelines(t, NULL, 0), 0);
  CHECK_RC(asyncio_transport_write(t, "", 0), 0);
  CHECK_RC(asyncio_transport_write(t, "x", 1), 0);
  CHECK_RC(asyncio_transport_write_eof(t), 0);
  CHECK_RC(asyncio_transport_write(t, "", 0), -EPIPE);
  CHECK_RC(asyncio_transport_writelines(t, NULL, 0), -EPIPE);
  struct iovec v = {"y", 1};
  CHECK_RC(asyncio_transport_writelines(t, &v, 1), -EPIPE);
  char buf[4];
  CHECK(read(raw, buf, sizeof buf) == 1); /* then EOF: shutdown(SHUT_WR) */
  CHECK(read(raw, buf, sizeof buf) == 0);
  CHECK(!asyncio_transport_is_closing(t));
  CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(p.lost == 1);
  CHECK(p.lost_err == 0);
  close(raw);
  return 0;
}

TEST(write_after_write_eof_refused) {
  assert_ok(run_main(write_after_eof_main, NULL));
  ASSERT_SOFT();
}

/* ---- pipe transports (connect_read_pipe / connect_write_pipe) ----------------------------- */

/*
 * A read error on a read pipe: Python's _UnixReadPipeTransport reports it
 * to the exception handler ('Fatal read error on pipe transport'), except
 * EIO, which a pty gives when its other side closes and which only ends the
 * transport.  Either way connection_lost gets the error and eof_received is
 * not called.
 */
typedef struct pipe_err_ctx {
  peer_t p;
  int fail_with;
  int reports, report_err;
} pipe_err_ctx_t;

static int g_read_fail;
static ssize_t failing_read(int fd, void *buf, size_t n) {
  if (g_read_fail) {
    errno = g_read_fail;
    g_read_fail = 0;
    return -1;
  }
  return read(fd, buf, n);
}

static void pipe_err_handler(asyncio_loop_t *loop, const asyncio_error_context_t *ctx, void *ud) {
  pipe_err_ctx_t *c = ud;
  c->reports++;
  c->report_err = ctx->error;
}

static int pipe_read_error_main(void *arg) {
  pipe_err_ctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  CHECK_RC(asyncio_loop_set_exception_handler(loop, pipe_err_handler, c), 0);
  int p[2];
  CHECK(pipe2(p, O_CLOEXEC) == 0);
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_connect_read_pipe(loop, peer_factory, &c->p, p[0], &t, NULL), 0);
  if (!t) return -1;
  asyncio__sys_t saved = asyncio__sys;
  asyncio__sys.read = failing_read;
  g_read_fail = c->fail_with;
  CHECK(write(p[1], "x", 1) == 1);
  WAIT_UNTIL(c->p.lost == 1);
  asyncio__sys = saved;
  CHECK(c->p.lost_err == -c->fail_with);
  CHECK(c->p.eofs == 0 && c->p.nrecv == 0);
  if (c->fail_with == EIO) {
    CHECK(c->reports == 0);
  } else {
    CHECK(c->reports == 1);
    CHECK(c->report_err == -c->fail_with);
  }
  close(p[1]);
  CHECK_RC(asyncio_loop_set_exception_handler(loop, NULL, NULL), 0);
  return 0;
}

TEST(read_pipe_error_reported) {
  pipe_err_ctx_t c = {.fail_with = EINVAL};
  assert_ok(run_main(pipe_read_error_main, &c));
  ASSERT_SOFT();
}

TEST(read_pipe_eio_is_quiet) {
  pipe_err_ctx_t c = {.fail_with = EIO};
  assert_ok(run_main(pipe_read_error_main, &c));
  ASSERT_SOFT();
}
