/*
 * test_datagram.c - datagram endpoints (UDP, and Unix datagram sockets by
 * path) and pipe transports (create_datagram_endpoint, connect_read_pipe,
 * connect_write_pipe in include/asyncio/transports.h).
 *
 * Python origin: selector_events._SelectorDatagramTransport,
 * base_events.create_datagram_endpoint, unix_events._UnixReadPipeTransport
 * and _UnixWritePipeTransport; Lib/test/test_asyncio/test_selector_events.py
 * (SelectorDatagramTransportTests), test_unix_events.py (pipe transports).
 */
#include "net_helpers.h"

#include <fcntl.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "../src/selector_events.h" /* asyncio__unix_addr: paths as the library spells them */

typedef struct dctx {
  peer_t srv, cli;
  int rc;
} dctx_t;

static int local_port(asyncio_transport_t *t) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (asyncio_transport_get_sockname(t, (struct sockaddr *)&ss, &sl) < 0) return -1;
  return ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                 : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* ---- UDP --------------------------------------------------------------------------- */

static int udp_echo_main(void *arg) {
  dctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  const char *host = c->rc ? "::1" : "127.0.0.1";
  c->srv.echo = true;
  asyncio_datagram_options_t so = {.local_host = host, .local_port = 0};
  asyncio_transport_t *st = NULL, *ct = NULL;
  void *inst = NULL;
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->srv, &so, &st, &inst), 0);
  if (!st) return -1;
  CHECK(inst == &c->srv && c->srv.made == 1);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  CHECK_RC(asyncio_transport_get_peername(st, (struct sockaddr *)&ss, &sl), -ENOTCONN);
  int port = local_port(st);
  asyncio_datagram_options_t co = {.remote_host = host, .remote_port = port};
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->cli, &co, &ct, NULL), 0);
  if (!ct) return -1;
  sl = sizeof ss;
  CHECK_RC(asyncio_transport_get_peername(ct, (struct sockaddr *)&ss, &sl), 0);
  CHECK(!asyncio_transport_can_write_eof(ct));
  CHECK_RC(asyncio_transport_write(ct, "x", 1), -EOPNOTSUPP);
  CHECK_RC(asyncio_transport_sendto(ct, "ping", 4, NULL, 0), 0);
  WAIT_UNTIL(c->cli.ndgrams == 1);
  CHECK(c->cli.ndata == 4 && memcmp(c->cli.data, "ping", 4) == 0);
  CHECK(c->srv.ndgrams == 1);
  CHECK(c->srv.fromlen > 0 && c->srv.from.ss_family == (c->rc ? AF_INET6 : AF_INET));
  /* Connected: sending to another address is refused (Python's ValueError); the peer's is fine. */
  struct sockaddr_in other = {0};
  other.sin_family = AF_INET;
  other.sin_port = htons(9);
  other.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK_RC(asyncio_transport_sendto(ct, "x", 1, (struct sockaddr *)&other, sizeof other), -EINVAL);
  sl = sizeof ss;
  asyncio_transport_get_peername(ct, (struct sockaddr *)&ss, &sl);
  CHECK_RC(asyncio_transport_sendto(ct, "pong", 4, (struct sockaddr *)&ss, sl), 0);
  WAIT_UNTIL(c->cli.ndgrams == 2);
  /* Unconnected: an address is required.  Empty datagrams are sent (Python 3.13; 3.11 and
   * 3.12 drop them). */
  CHECK_RC(asyncio_transport_sendto(st, "x", 1, NULL, 0), -EINVAL);
  CHECK_RC(asyncio_transport_sendto(ct, "", 0, NULL, 0), 0);
  WAIT_UNTIL(c->srv.ndgrams == 3);
  CHECK(c->srv.ndata == 0);
  CHECK_RC(asyncio_transport_close(ct), 0);
  CHECK_RC(asyncio_transport_sendto(ct, "late", 4, NULL, 0), 0); /* ignored */
  CHECK_RC(asyncio_transport_close(st), 0);
  WAIT_UNTIL(c->cli.lost && c->srv.lost);
  CHECK(c->cli.lost_err == 0 && c->srv.lost_err == 0 && c->cli.errs == 0);
  return 0;
}

TEST(udp_echo) {
  dctx_t c = {0};
  assert_ok(run_main(udp_echo_main, &c));
  ASSERT_SOFT();
}

TEST(udp_echo_ipv6) {
  if (!have_ipv6()) skip();
  dctx_t c = {.rc = 1};
  assert_ok(run_main(udp_echo_main, &c));
  ASSERT_SOFT();
}

static int udp_lost_peer_main(void *arg) {
  dctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  /* A port that was just released: nobody listens. */
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sin = {0};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof sin;
  bind(fd, (struct sockaddr *)&sin, sizeof sin);
  getsockname(fd, (struct sockaddr *)&sin, &sl);
  close(fd);
  asyncio_datagram_options_t co = {.remote_host = "127.0.0.1", .remote_port = ntohs(sin.sin_port)};
  asyncio_transport_t *ct = NULL;
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->cli, &co, &ct, NULL), 0);
  if (!ct) return -1;
  /* The ICMP port unreachable comes back as ECONNREFUSED on a connected socket. */
  for (int i = 0; i < 50 && !c->cli.errs; i++) {
    CHECK_RC(asyncio_transport_sendto(ct, "hello?", 6, NULL, 0), 0);
    CHECK_RC(asyncio_sleep(0.001), 0);
  }
  WAIT_UNTIL(c->cli.errs >= 1);
  CHECK(c->cli.last_err == -ECONNREFUSED);
  CHECK(!asyncio_transport_is_closing(ct)); /* error_received does not close */
  CHECK(c->cli.lost == 0);
  CHECK_RC(asyncio_transport_abort(ct), 0);
  WAIT_UNTIL(c->cli.lost);
  return 0;
}

TEST(udp_lost_peer_error_received) {
  dctx_t c = {0};
  assert_ok(run_main(udp_lost_peer_main, &c));
  ASSERT_SOFT();
}

static int udp_args_main(void *arg) {
  dctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_transport_t *t = NULL;
  asyncio_datagram_options_t none = {0};
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->cli, &none, &t, NULL),
           -EINVAL);
  /* family alone: an unbound socket (Python's family=AF_INET). */
  asyncio_datagram_options_t fam = {.family = AF_INET};
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->cli, &fam, &t, NULL), 0);
  if (t) {
    /* reuse_port and allow_broadcast on a bound one */
    asyncio_datagram_options_t b = {.local_host = "127.0.0.1", .reuse_port = true,
                                    .allow_broadcast = true};
    asyncio_transport_t *t2 = NULL;
    CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->srv, &b, &t2, NULL),
             0);
    if (t2) {
      int one = 0;
      socklen_t sl = sizeof one;
      getsockopt(asyncio_transport_get_fd(t2), SOL_SOCKET, SO_BROADCAST, &one, &sl);
      CHECK(one == 1);
      asyncio_transport_close(t2);
    }
    asyncio_transport_close(t);
    WAIT_UNTIL(c->cli.lost && c->srv.lost);
  }
  /* sock= with other options is refused; a stream socket is refused. */
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  asyncio_datagram_options_t bad = {.use_sock = true, .sock = s};
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->cli, &bad, &t, NULL),
           -EINVAL);
  bad.reuse_port = true;
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->cli, &bad, &t, NULL),
           -EINVAL);
  close(s);
  return 0;
}

TEST(udp_arguments_and_options) {
  dctx_t c = {0};
  assert_ok(run_main(udp_args_main, &c));
  ASSERT_SOFT();
}

/*
 * allow_broadcast with a remote address: Python does not connect the socket;
 * the remote address is only the default destination.  So sendto without an
 * address reaches it, a third socket's datagram is received (a connected
 * socket would drop it), and peername is None (-ENOTCONN).
 */
static int g_eagain_once;
static ssize_t sendto_eagain_once(int fd, const void *buf, size_t n, int flags,
                                  const struct sockaddr *addr, socklen_t addrlen) {
  if (g_eagain_once) {
    g_eagain_once = 0;
    errno = EAGAIN;
    return -1;
  }
  return sendto(fd, buf, n, flags, addr, addrlen);
}

static int udp_broadcast_remote_main(void *arg) {
  dctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_datagram_options_t so = {.local_host = "127.0.0.1"};
  asyncio_transport_t *st = NULL, *ct = NULL;
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->srv, &so, &st, NULL), 0);
  if (!st) return -1;
  struct sockaddr_in remote;
  socklen_t sl = sizeof remote;
  CHECK_RC(asyncio_transport_get_sockname(st, (struct sockaddr *)&remote, &sl), 0);
  asyncio_datagram_options_t co = {.local_host = "127.0.0.1",
                                   .remote_host = "127.0.0.1",
                                   .remote_port = ntohs(remote.sin_port),
                                   .allow_broadcast = true};
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->cli, &co, &ct, NULL), 0);
  if (!ct) return -1;
  int fd = asyncio_transport_get_fd(ct);
  int on = 0;
  sl = sizeof on;
  CHECK(getsockopt(fd, SOL_SOCKET, SO_BROADCAST, &on, &sl) == 0 && on == 1);
  struct sockaddr_storage ss;
  sl = sizeof ss;
  CHECK(getpeername(fd, (struct sockaddr *)&ss, &sl) < 0 && errno == ENOTCONN);
  sl = sizeof ss;
  CHECK_RC(asyncio_transport_get_peername(ct, (struct sockaddr *)&ss, &sl), -ENOTCONN);
  struct sockaddr_in me;
  sl = sizeof me;
  CHECK_RC(asyncio_transport_get_sockname(ct, (struct sockaddr *)&me, &sl), 0);

  /* No address: the remote one.  Its own address is accepted too; others are not. */
  CHECK_RC(asyncio_transport_sendto(ct, "one", 3, NULL, 0), 0);
  WAIT_UNTIL(c->srv.ndgrams == 1);
  CHECK(c->srv.ndata == 3 && memcmp(c->srv.data, "one", 3) == 0);
  CHECK(((struct sockaddr_in *)&c->srv.from)->sin_port == me.sin_port);
  CHECK_RC(asyncio_transport_sendto(ct, "two", 3, (struct sockaddr *)&remote, sizeof remote), 0);
  WAIT_UNTIL(c->srv.ndgrams == 2);
  struct sockaddr_in other = remote;
  other.sin_port = htons((uint16_t)(ntohs(remote.sin_port) ^ 1));
  CHECK_RC(asyncio_transport_sendto(ct, "x", 1, (struct sockaddr *)&other, sizeof other), -EINVAL);

  /* A datagram that has to wait in the queue keeps the default destination. */
  asyncio__sys_t saved = asyncio__sys;
  asyncio__sys.sendto = sendto_eagain_once;
  g_eagain_once = 1;
  CHECK_RC(asyncio_transport_sendto(ct, "three", 5, NULL, 0), 0);
  CHECK(g_eagain_once == 0 && asyncio_transport_get_write_buffer_size(ct) > 0);
  WAIT_UNTIL(c->srv.ndgrams == 3);
  asyncio__sys = saved;
  CHECK(c->srv.ndata == 5 && memcmp(c->srv.data, "three", 5) == 0);
  CHECK(c->srv.errs == 0 && c->cli.errs == 0);

  /* Anyone may answer: the remote, and a third socket. */
  CHECK_RC(asyncio_transport_sendto(st, "back", 4, (struct sockaddr *)&me, sizeof me), 0);
  WAIT_UNTIL(c->cli.ndgrams == 1);
  int third = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in tin = {0};
  tin.sin_family = AF_INET;
  tin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(bind(third, (struct sockaddr *)&tin, sizeof tin) == 0);
  sl = sizeof tin;
  getsockname(third, (struct sockaddr *)&tin, &sl);
  CHECK(sendto(third, "third", 5, 0, (struct sockaddr *)&me, sizeof me) == 5);
  WAIT_UNTIL(c->cli.ndgrams == 2);
  CHECK(c->cli.ndata == 5 && memcmp(c->cli.data, "third", 5) == 0);
  CHECK(((struct sockaddr_in *)&c->cli.from)->sin_port == tin.sin_port);
  close(third);

  CHECK_RC(asyncio_transport_close(ct), 0);
  CHECK_RC(asyncio_transport_close(st), 0);
  WAIT_UNTIL(c->cli.lost && c->srv.lost);
  return 0;
}

TEST(udp_broadcast_remote_stays_unconnected) {
  dctx_t c = {0};
  assert_ok(run_main(udp_broadcast_remote_main, &c));
  ASSERT_SOFT();
}

/*
 * The send queue (_SelectorDatagramTransport._buffer): while sendto(2) says
 * EAGAIN (injected) datagrams queue up; each counts its length plus 8 bytes
 * of header (Python 3.13) towards get_write_buffer_size and the water
 * marks.  close() flushes the queue first, and a datagram sent meanwhile
 * joins it (Python's sendto has no closing check); abort() drops it.
 */
static int g_block_sendto;
static ssize_t sendto_blocked(int fd, const void *buf, size_t n, int flags,
                              const struct sockaddr *addr, socklen_t addrlen) {
  if (g_block_sendto) {
    errno = EAGAIN;
    return -1;
  }
  return sendto(fd, buf, n, flags, addr, addrlen);
}

static int udp_queue_main(void *arg) {
  dctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_datagram_options_t so = {.local_host = "127.0.0.1"};
  asyncio_transport_t *st = NULL, *ct = NULL, *ct2 = NULL;
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->srv, &so, &st, NULL), 0);
  if (!st) return -1;
  struct sockaddr_in to;
  socklen_t sl = sizeof to;
  CHECK_RC(asyncio_transport_get_sockname(st, (struct sockaddr *)&to, &sl), 0);
  const struct sockaddr *a = (const struct sockaddr *)&to;
  asyncio_datagram_options_t co = {.local_host = "127.0.0.1"}; /* unconnected: sendto(2) */
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->cli, &co, &ct, NULL), 0);
  if (!ct) return -1;
  asyncio__sys_t saved = asyncio__sys;
  asyncio__sys.sendto = sendto_blocked;

  /* Flow control: high 54 = three 10-byte datagrams with their headers. */
  CHECK_RC(asyncio_transport_set_write_buffer_limits(ct, 54, 18), 0);
  g_block_sendto = 1;
  for (int i = 0; i < 3; i++) CHECK_RC(asyncio_transport_sendto(ct, "0123456789", 10, a, sl), 0);
  CHECK(asyncio_transport_get_write_buffer_size(ct) == 3 * 18);
  CHECK(c->cli.paused == 0);
  CHECK_RC(asyncio_transport_sendto(ct, "", 0, a, sl), 0); /* an empty one counts its header */
  CHECK(asyncio_transport_get_write_buffer_size(ct) == 3 * 18 + 8);
  CHECK(c->cli.paused == 1);
  g_block_sendto = 0;
  WAIT_UNTIL(c->srv.ndgrams == 4);
  CHECK(c->srv.ndata == 0); /* the empty one came last */
  CHECK(asyncio_transport_get_write_buffer_size(ct) == 0);
  CHECK(c->cli.resumed == 1);

  /* close() with datagrams queued: they go out, and so does one sent meanwhile. */
  g_block_sendto = 1;
  CHECK_RC(asyncio_transport_sendto(ct, "q1", 2, a, sl), 0);
  CHECK_RC(asyncio_transport_sendto(ct, "q2", 2, a, sl), 0);
  CHECK_RC(asyncio_transport_close(ct), 0);
  CHECK(asyncio_transport_is_closing(ct));
  CHECK_RC(asyncio_transport_sendto(ct, "q3", 2, a, sl), 0);
  CHECK(asyncio_transport_get_write_buffer_size(ct) == 3 * (2 + 8));
  asyncio_sleep(0);
  CHECK(c->cli.lost == 0); /* still flushing */
  g_block_sendto = 0;
  WAIT_UNTIL(c->cli.lost == 1);
  CHECK(c->cli.lost_err == 0);
  WAIT_UNTIL(c->srv.ndgrams == 7);
  CHECK(c->srv.ndata == 2 && memcmp(c->srv.data, "q3", 2) == 0);

  /* abort() drops the queue: nothing of it arrives. */
  peer_t p2 = {0};
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &p2, &co, &ct2, NULL), 0);
  if (!ct2) return -1;
  g_block_sendto = 1;
  CHECK_RC(asyncio_transport_sendto(ct2, "lost", 4, a, sl), 0);
  CHECK(asyncio_transport_get_write_buffer_size(ct2) == 12);
  CHECK_RC(asyncio_transport_abort(ct2), 0);
  CHECK(asyncio_transport_get_write_buffer_size(ct2) == 0);
  CHECK_RC(asyncio_transport_sendto(ct2, "late", 4, a, sl), 0); /* ignored */
  g_block_sendto = 0;
  WAIT_UNTIL(p2.lost == 1);
  CHECK(p2.lost_err == 0);
  /* A marker sent after the abort arrives next: the dropped one never did. */
  int raw = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  CHECK(sendto(raw, "mark", 4, 0, a, sl) == 4);
  close(raw);
  WAIT_UNTIL(c->srv.ndgrams == 8);
  CHECK(c->srv.ndata == 4 && memcmp(c->srv.data, "mark", 4) == 0);
  asyncio__sys = saved;
  CHECK_RC(asyncio_transport_close(st), 0);
  WAIT_UNTIL(c->srv.lost);
  CHECK(c->cli.errs == 0 && c->srv.errs == 0);
  return 0;
}

TEST(udp_queue_flow_control_close_and_abort) {
  dctx_t c = {0};
  int rc = run_main(udp_queue_main, &c);
  g_block_sendto = 0;
  assert_ok(rc);
  ASSERT_SOFT();
}

/*
 * An AF_UNIX datagram may be larger than any IP one: its limit is the
 * socket buffer.  Python sends it; so do we (-EMSGSIZE is for IP only).
 */
static int unix_big_main(void *arg) {
  dctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) == 0);
  int big = 1 << 20;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  asyncio_datagram_options_t o0 = {.use_sock = true, .sock = sv[0]};
  asyncio_datagram_options_t o1 = {.use_sock = true, .sock = sv[1]};
  asyncio_transport_t *t0 = NULL, *t1 = NULL;
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->cli, &o0, &t0, NULL), 0);
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->srv, &o1, &t1, NULL), 0);
  if (!t0 || !t1) return -1;
  static char payload[100000];
  memset(payload, 'u', sizeof payload);
  CHECK_RC(asyncio_transport_sendto(t0, payload, sizeof payload, NULL, 0), 0);
  WAIT_UNTIL(c->srv.ndgrams == 1 || c->cli.errs);
  CHECK(c->cli.errs == 0);
  CHECK(c->srv.nrecv == sizeof payload);
  CHECK_RC(asyncio_transport_close(t0), 0);
  CHECK_RC(asyncio_transport_close(t1), 0);
  WAIT_UNTIL(c->cli.lost && c->srv.lost);
  return 0;
}

TEST(unix_datagram_larger_than_64k) {
  dctx_t c = {0};
  assert_ok(run_main(unix_big_main, &c));
  ASSERT_SOFT();
}

/* sock= with any of the other options: Python's ValueError, flags included. */
static int udp_sock_modifiers_main(void *arg) {
  dctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  asyncio_transport_t *t = NULL;
  asyncio_datagram_options_t o = {.use_sock = true, .sock = s, .flags = AI_PASSIVE};
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->cli, &o, &t, NULL),
           -EINVAL);
  o.flags = 0;
  o.local_port = 5353;
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->cli, &o, &t, NULL),
           -EINVAL);
  o.local_port = 0;
  o.remote_port = 53;
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->cli, &o, &t, NULL),
           -EINVAL);
  CHECK(t == NULL && c->cli.made == 0);
  o.remote_port = 0;
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->cli, &o, &t, NULL), 0);
  if (t) {
    CHECK_RC(asyncio_transport_close(t), 0); /* the transport owns s now */
    WAIT_UNTIL(c->cli.lost);
  } else {
    close(s);
  }
  return 0;
}

TEST(udp_sock_with_modifiers_refused) {
  dctx_t c = {0};
  assert_ok(run_main(udp_sock_modifiers_main, &c));
  ASSERT_SOFT();
}

/* ---- pipes ------------------------------------------------------------------------------- */

static int pipes_main(void *arg) {
  dctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  int p[2];
  CHECK(pipe2(p, O_CLOEXEC) == 0);
  asyncio_transport_t *rt = NULL, *wt = NULL;
  CHECK_RC(asyncio_loop_connect_read_pipe(loop, peer_factory, &c->srv, p[0], &rt, NULL), 0);
  CHECK_RC(asyncio_loop_connect_write_pipe(loop, peer_factory, &c->cli, p[1], &wt, NULL), 0);
  if (!rt || !wt) return -1;
  CHECK(asyncio_transport_can_write_eof(wt));
  CHECK(!asyncio_transport_can_write_eof(rt));
  CHECK_RC(asyncio_transport_write(rt, "x", 1), -EOPNOTSUPP);
  CHECK_RC(asyncio_transport_pause_reading(wt), -EOPNOTSUPP);
  CHECK(asyncio_transport_is_reading(rt));
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  CHECK_RC(asyncio_transport_get_peername(rt, (struct sockaddr *)&ss, &sl), -ENOTCONN);
  CHECK(asyncio_transport_get_fd(rt) == p[0]);
  /* 1 MiB: more than a pipe holds, so the write pipe buffers and drains. */
  static char big[1 << 20];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (char)(i * 7);
  uint64_t sum = fnv(FNV_INIT, big, sizeof big);
  CHECK_RC(asyncio_transport_write(wt, big, sizeof big), 0);
  CHECK(asyncio_transport_get_write_buffer_size(wt) > 0);
  CHECK_RC(asyncio_transport_close(wt), 0); /* close = write_eof: flush, then close */
  CHECK(asyncio_transport_is_closing(wt));
  CHECK_RC(asyncio_transport_write(wt, "late", 4), 0); /* ignored */
  WAIT_UNTIL(c->srv.lost == 1);
  CHECK(c->srv.nrecv == sizeof big && c->srv.sum == sum);
  CHECK(c->srv.eofs == 1 && c->srv.lost_err == 0);
  WAIT_UNTIL(c->cli.lost == 1);
  CHECK(c->cli.lost_err == 0);
  return 0;
}

TEST(read_and_write_pipes) {
  dctx_t c = {0};
  assert_ok(run_main(pipes_main, &c));
  ASSERT_SOFT();
}

static int pipe_reader_gone_main(void *arg) {
  dctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  int p[2];
  CHECK(pipe2(p, O_CLOEXEC) == 0);
  asyncio_transport_t *wt = NULL;
  CHECK_RC(asyncio_loop_connect_write_pipe(loop, peer_factory, &c->cli, p[1], &wt, NULL), 0);
  if (!wt) return -1;
  if (c->rc) {
    /* Data still buffered when the reader goes: EPIPE (BrokenPipeError). */
    static char big[1 << 20];
    CHECK_RC(asyncio_transport_write(wt, big, sizeof big), 0);
    CHECK(asyncio_transport_get_write_buffer_size(wt) > 0);
  }
  close(p[0]);
  WAIT_UNTIL(c->cli.lost == 1);
  CHECK(c->cli.lost_err == (c->rc ? -EPIPE : 0));
  return 0;
}

TEST(write_pipe_reader_closed) {
  dctx_t c = {0};
  assert_ok(run_main(pipe_reader_gone_main, &c));
  ASSERT_SOFT();
}

TEST(write_pipe_reader_closed_with_data) {
  dctx_t c = {.rc = 1};
  assert_ok(run_main(pipe_reader_gone_main, &c));
  ASSERT_SOFT();
}

static int refusing_factory(void *arg, const asyncio_protocol_t **proto, void **instance) {
  (void)arg;
  (void)proto;
  (void)instance;
  return -EPERM;
}

static int pipe_args_main(void *arg) {
  dctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_transport_t *t = NULL;
  char path[64];
  snprintf(path, sizeof path, "/tmp/asyncio-test-file-%d", (int)getpid());
  int fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  unlink(path);
  CHECK_RC(asyncio_loop_connect_read_pipe(loop, peer_factory, &c->cli, fd, &t, NULL), -EINVAL);
  CHECK_RC(asyncio_loop_connect_write_pipe(loop, peer_factory, &c->cli, fd, &t, NULL), -EINVAL);
  close(fd);
  CHECK_RC(asyncio_loop_connect_read_pipe(loop, peer_factory, &c->cli, -1, &t, NULL), -EBADF);
  int p[2];
  CHECK(pipe2(p, O_CLOEXEC) == 0);
  /* A refusing factory: the descriptors stay the caller's, and blocking, as in Python. */
  CHECK_RC(asyncio_loop_connect_read_pipe(loop, refusing_factory, NULL, p[0], &t, NULL), -EPERM);
  CHECK_RC(asyncio_loop_connect_write_pipe(loop, refusing_factory, NULL, p[1], &t, NULL), -EPERM);
  CHECK(t == NULL);
  CHECK(!(fcntl(p[0], F_GETFL) & O_NONBLOCK) && !(fcntl(p[1], F_GETFL) & O_NONBLOCK));
  /* A read pipe paused, resumed, and closed by the protocol side. */
  CHECK_RC(asyncio_loop_connect_read_pipe(loop, peer_factory, &c->cli, p[0], &t, NULL), 0);
  if (!t) return -1;
  CHECK_RC(asyncio_transport_pause_reading(t), 0);
  CHECK(write(p[1], "abc", 3) == 3);
  for (int i = 0; i < 3; i++) CHECK_RC(asyncio_sleep(0.001), 0);
  CHECK(c->cli.nrecv == 0);
  CHECK_RC(asyncio_transport_resume_reading(t), 0);
  WAIT_UNTIL(c->cli.nrecv == 3);
  CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(c->cli.lost == 1);
  CHECK(c->cli.eofs == 0);
  close(p[1]);
  return 0;
}

TEST(pipe_arguments_and_pause) {
  dctx_t c = {0};
  assert_ok(run_main(pipe_args_main, &c));
  ASSERT_SOFT();
}

/* ---- Unix datagram endpoints ----------------------------------------------------------------- */

typedef struct uctx {
  dctx_t d;
  char srv_path[108], cli_path[108], raw_path[108];
  bool abstract;
} uctx_t;

/* The path of an AF_UNIX address as this library spells it ('@' = abstract). */
static void un_path(const struct sockaddr_storage *ss, socklen_t sl, char *out, size_t cap) {
  const struct sockaddr_un *un = (const struct sockaddr_un *)ss;
  size_t base = offsetof(struct sockaddr_un, sun_path);
  size_t n = sl > base ? sl - base : 0;
  out[0] = 0;
  if (ss->ss_family != AF_UNIX || n == 0 || n >= cap) return;
  if (un->sun_path[0] == 0) {
    out[0] = '@';
    memcpy(out + 1, un->sun_path + 1, n - 1);
    out[n] = 0;
  } else {
    memcpy(out, un->sun_path, n);
    out[n] = 0;
    out[strnlen(out, n)] = 0;
  }
}

static int unix_dgram_main(void *arg) {
  uctx_t *u = arg;
  dctx_t *c = &u->d;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  if (!u->abstract) {
    /* A stale socket file from an earlier run: removed before binding, as Python does. */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un un = {0};
    un.sun_family = AF_UNIX;
    strcpy(un.sun_path, u->srv_path);
    CHECK(bind(fd, (struct sockaddr *)&un, sizeof un) == 0);
    close(fd);
  }
  c->srv.echo = true;
  asyncio_datagram_options_t so = {.family = AF_UNIX, .local_host = u->srv_path};
  asyncio_transport_t *st = NULL, *ct = NULL;
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->srv, &so, &st, NULL), 0);
  if (!st) return -1;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char path[128];
  CHECK_RC(asyncio_transport_get_sockname(st, (struct sockaddr *)&ss, &sl), 0);
  un_path(&ss, sl, path, sizeof path);
  CHECK(strcmp(path, u->srv_path) == 0);
  sl = sizeof ss;
  CHECK_RC(asyncio_transport_get_peername(st, (struct sockaddr *)&ss, &sl), -ENOTCONN);

  /* A client bound to its own path (so the echo can come back) and connected to the server. */
  asyncio_datagram_options_t co = {.family = AF_UNIX, .local_host = u->cli_path,
                                   .remote_host = u->srv_path};
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->cli, &co, &ct, NULL), 0);
  if (!ct) return -1;
  sl = sizeof ss;
  CHECK_RC(asyncio_transport_get_peername(ct, (struct sockaddr *)&ss, &sl), 0);
  un_path(&ss, sl, path, sizeof path);
  CHECK(strcmp(path, u->srv_path) == 0);
  CHECK_RC(asyncio_transport_sendto(ct, "ping", 4, NULL, 0), 0);
  WAIT_UNTIL(c->cli.ndgrams == 1);
  CHECK(c->cli.ndata == 4 && memcmp(c->cli.data, "ping", 4) == 0);
  un_path(&c->cli.from, c->cli.fromlen, path, sizeof path);
  CHECK(strcmp(path, u->srv_path) == 0);
  un_path(&c->srv.from, c->srv.fromlen, path, sizeof path);
  CHECK(strcmp(path, u->cli_path) == 0);
  /* Connected: another destination is refused (Python's ValueError). */
  struct sockaddr_un other = {0};
  other.sun_family = AF_UNIX;
  strcpy(other.sun_path, "/nonexistent/other.sock");
  CHECK_RC(asyncio_transport_sendto(ct, "x", 1, (struct sockaddr *)&other, sizeof other), -EINVAL);

  /* The low-level calls against the same endpoint: sock_sendto / sock_recvfrom by path. */
  int raw = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_storage raw_addr, srv_addr;
  socklen_t raw_len, srv_len;
  CHECK_RC(asyncio__unix_addr(u->raw_path, &raw_addr, &raw_len), 0);
  CHECK_RC(asyncio__unix_addr(u->srv_path, &srv_addr, &srv_len), 0);
  CHECK(bind(raw, (struct sockaddr *)&raw_addr, raw_len) == 0);
  CHECK_RC((int)asyncio_sock_sendto(raw, "raw!", 4, (struct sockaddr *)&srv_addr, srv_len), 4);
  char buf[16];
  struct sockaddr_storage from;
  socklen_t fl = sizeof from;
  CHECK_RC((int)asyncio_sock_recvfrom(raw, buf, sizeof buf, (struct sockaddr *)&from, &fl), 4);
  CHECK(memcmp(buf, "raw!", 4) == 0);
  un_path(&from, fl, path, sizeof path);
  CHECK(strcmp(path, u->srv_path) == 0);
  close(raw);

  /* The server goes away: the connected client's next send fails with ECONNREFUSED,
   * reported through error_received; the endpoint stays open (the lost-peer case). */
  CHECK_RC(asyncio_transport_close(st), 0);
  WAIT_UNTIL(c->srv.lost);
  CHECK_RC(asyncio_transport_sendto(ct, "anyone?", 7, NULL, 0), 0);
  WAIT_UNTIL(c->cli.errs >= 1);
  CHECK(c->cli.last_err == -ECONNREFUSED);
  CHECK(!asyncio_transport_is_closing(ct) && c->cli.lost == 0);
  CHECK_RC(asyncio_transport_close(ct), 0);
  WAIT_UNTIL(c->cli.lost);
  CHECK(c->cli.lost_err == 0 && c->srv.lost_err == 0);
  struct stat stt;
  /* As in Python, closing leaves the socket files behind (the test removes them). */
  if (!u->abstract) CHECK(stat(u->srv_path, &stt) == 0 && S_ISSOCK(stt.st_mode));
  return 0;
}

static void unix_paths(uctx_t *u, const char *prefix) {
  snprintf(u->srv_path, sizeof u->srv_path, "%sasyncio-dgram-srv-%d", prefix, (int)getpid());
  snprintf(u->cli_path, sizeof u->cli_path, "%sasyncio-dgram-cli-%d", prefix, (int)getpid());
  snprintf(u->raw_path, sizeof u->raw_path, "%sasyncio-dgram-raw-%d", prefix, (int)getpid());
}

static void unlink_paths(uctx_t *u) {
  if (u->abstract) return;
  unlink(u->srv_path);
  unlink(u->cli_path);
  unlink(u->raw_path);
}

/* create_datagram_endpoint(family=AF_UNIX, local_addr=path, remote_addr=path). */
TEST(unix_datagram_endpoints) {
  static uctx_t u;
  memset(&u, 0, sizeof u);
  unix_paths(&u, "/tmp/");
  unlink_paths(&u);
  int rc = run_main(unix_dgram_main, &u);
  unlink_paths(&u);
  assert_ok(rc);
  ASSERT_SOFT();
}

/* The same in the Linux abstract namespace ('@' for Python's leading NUL). */
TEST(unix_datagram_endpoints_abstract) {
  static uctx_t u;
  memset(&u, 0, sizeof u);
  u.abstract = true;
  unix_paths(&u, "@");
  assert_ok(run_main(unix_dgram_main, &u));
  ASSERT_SOFT();
}

/* allow_broadcast with a remote path: unconnected too (Python's AF_UNIX branch does the same). */
static int unix_broadcast_remote_main(void *arg) {
  uctx_t *u = arg;
  dctx_t *c = &u->d;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_datagram_options_t so = {.family = AF_UNIX, .local_host = u->srv_path};
  asyncio_transport_t *st = NULL, *ct = NULL;
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->srv, &so, &st, NULL), 0);
  if (!st) return -1;
  asyncio_datagram_options_t co = {.family = AF_UNIX, .local_host = u->cli_path,
                                   .remote_host = u->srv_path, .allow_broadcast = true};
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->cli, &co, &ct, NULL), 0);
  if (!ct) return -1;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  CHECK_RC(asyncio_transport_get_peername(ct, (struct sockaddr *)&ss, &sl), -ENOTCONN);
  CHECK_RC(asyncio_transport_sendto(ct, "ping", 4, NULL, 0), 0);
  WAIT_UNTIL(c->srv.ndgrams == 1);
  char path[128];
  un_path(&c->srv.from, c->srv.fromlen, path, sizeof path);
  CHECK(strcmp(path, u->cli_path) == 0);
  /* A third socket reaches the client: nothing filters by peer. */
  int raw = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_storage raw_addr, cli_addr;
  socklen_t raw_len, cli_len;
  CHECK_RC(asyncio__unix_addr(u->raw_path, &raw_addr, &raw_len), 0);
  CHECK_RC(asyncio__unix_addr(u->cli_path, &cli_addr, &cli_len), 0);
  CHECK(bind(raw, (struct sockaddr *)&raw_addr, raw_len) == 0);
  CHECK(sendto(raw, "raw!", 4, 0, (struct sockaddr *)&cli_addr, cli_len) == 4);
  WAIT_UNTIL(c->cli.ndgrams == 1);
  un_path(&c->cli.from, c->cli.fromlen, path, sizeof path);
  CHECK(strcmp(path, u->raw_path) == 0);
  close(raw);
  CHECK_RC(asyncio_transport_close(ct), 0);
  CHECK_RC(asyncio_transport_close(st), 0);
  WAIT_UNTIL(c->cli.lost && c->srv.lost);
  return 0;
}

TEST(unix_datagram_broadcast_remote_abstract) {
  static uctx_t u;
  memset(&u, 0, sizeof u);
  u.abstract = true;
  unix_paths(&u, "@");
  assert_ok(run_main(unix_broadcast_remote_main, &u));
  ASSERT_SOFT();
}

static int unix_dgram_errors_main(void *arg) {
  uctx_t *u = arg;
  dctx_t *c = &u->d;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_transport_t *t = (void *)1;
  /* Nobody at the remote path. */
  asyncio_datagram_options_t o = {.family = AF_UNIX, .remote_host = u->srv_path};
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->cli, &o, &t, NULL),
           -ENOENT);
  CHECK(t == NULL && c->cli.made == 0);
  /* A path too long for sun_path, an empty path, a port with a path. */
  char longp[200];
  memset(longp, 'a', sizeof longp - 1);
  longp[sizeof longp - 1] = 0;
  o.remote_host = longp;
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->cli, &o, &t, NULL),
           -ENAMETOOLONG);
  o.remote_host = "";
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->cli, &o, &t, NULL),
           -EINVAL);
  asyncio_datagram_options_t p = {.family = AF_UNIX, .local_host = u->srv_path, .local_port = 5};
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->cli, &p, &t, NULL),
           -EINVAL);
  /* A regular file at the local path is not removed: bind fails. */
  int fd = open(u->srv_path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  CHECK(fd >= 0);
  close(fd);
  p.local_port = 0;
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->cli, &p, &t, NULL),
           -EADDRINUSE);
  struct stat st;
  CHECK(stat(u->srv_path, &st) == 0 && S_ISREG(st.st_mode));
  /* family alone: an unbound Unix datagram socket. */
  asyncio_datagram_options_t f = {.family = AF_UNIX};
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &c->cli, &f, &t, NULL), 0);
  if (t) {
    CHECK_RC(asyncio_transport_close(t), 0);
    WAIT_UNTIL(c->cli.lost);
  }
  CHECK(asyncio_loop_create_datagram_endpoint(NULL, dgram_factory, &c->cli, &f, &t, NULL) ==
        -EINVAL);
  return 0;
}

TEST(unix_datagram_endpoint_errors) {
  static uctx_t u;
  memset(&u, 0, sizeof u);
  unix_paths(&u, "/tmp/");
  unlink_paths(&u);
  int rc = run_main(unix_dgram_errors_main, &u);
  unlink_paths(&u);
  assert_ok(rc);
  ASSERT_SOFT();
  /* Outside a task. */
  asyncio_loop_t *loop = NULL;
  assert_ok(asyncio_loop_new(&loop, NULL));
  asyncio_datagram_options_t o = {.family = AF_UNIX, .local_host = u.srv_path};
  asyncio_transport_t *t = NULL;
  assert_rc(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &u.d.cli, &o, &t, NULL),
            ASYNCIO_ENOTASK);
  assert_ok(asyncio_loop_close(loop));
}
