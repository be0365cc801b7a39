/*
 * test_servers.c - create_server, create_unix_server and asyncio.Server
 * (include/asyncio/servers.h).
 *
 * Python origin: Lib/asyncio/base_events.py (Server, create_server),
 * selector_events.py (_accept_connection with its EMFILE back-off),
 * unix_events.py (create_unix_server, cleanup_socket), and
 * Lib/test/test_asyncio/test_server.py, test_base_events.py.
 */
#include "net_helpers.h"

#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/tcp.h>
#include <semaphore.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "../src/selector_events.h" /* asyncio__sys: injected accept() faults */

typedef struct sctx {
  pool_t pool;
  peer_t cli[4];
  asyncio_server_t *srv;
  int rc, rc2, order_done;
  int done;
} sctx_t;

static int connect_to(peer_t *p, const char *host, int port, asyncio_transport_t **t) {
  return asyncio_loop_create_connection(asyncio_get_running_loop(), peer_factory, p, host, port,
                                        NULL, t, NULL);
}

/* ---- several hosts ------------------------------------------------------------------ */

static int hosts_main(void *arg) {
  sctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  c->pool.tmpl.echo = true;
  const char *hosts[] = {"127.0.0.1", "::1", "127.0.0.1", NULL}; /* duplicates fold */
  asyncio_server_options_t o = {.hosts = hosts};
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, NULL, 0, &o, &srv), 0);
  if (!srv) return -1;
  CHECK(asyncio_server_is_serving(srv));
  CHECK(asyncio_server_get_loop(srv) == loop);
  int fds[4];
  CHECK(asyncio_server_sockets(srv, fds, 4) == 2);
  const char *names[2] = {"127.0.0.1", "::1"};
  asyncio_transport_t *t[2] = {0};
  for (int i = 0; i < 2; i++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fds[i], (struct sockaddr *)&ss, &sl);
    const char *h = ss.ss_family == AF_INET ? names[0] : names[1];
    CHECK_RC(connect_to(&c->cli[i], h, server_port(srv, i), &t[i]), 0);
    if (!t[i]) return -1;
    CHECK_RC(asyncio_transport_write(t[i], "x", 1), 0);
  }
  WAIT_UNTIL(c->cli[0].nrecv == 1 && c->cli[1].nrecv == 1);
  for (int i = 0; i < 2; i++) CHECK_RC(asyncio_transport_close(t[i]), 0);
  WAIT_UNTIL(c->pool.n == 2 && c->pool.peers[0].lost && c->pool.peers[1].lost);
  CHECK_RC(asyncio_server_close(srv), 0);
  CHECK(!asyncio_server_is_serving(srv));
  CHECK(asyncio_server_sockets(srv, fds, 4) == 0);
  CHECK_RC(asyncio_server_wait_closed(srv), 0);
  CHECK_RC(asyncio_server_free(srv), 0);
  return 0;
}

TEST(server_several_hosts) {
  if (!have_ipv6()) skip();
  sctx_t c = {0};
  assert_ok(run_main(hosts_main, &c));
  ASSERT_SOFT();
}

static int all_interfaces_main(void *arg) {
  sctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_server_t *srv = NULL;
  /* host=None: every interface, one socket per family, each with its own port. */
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, NULL, 0, NULL, &srv), 0);
  if (!srv) return -1;
  int n = asyncio_server_sockets(srv, NULL, 0);
  CHECK(n >= 1);
  asyncio_transport_t *t = NULL;
  int fds[4];
  asyncio_server_sockets(srv, fds, 4);
  int port4 = -1;
  for (int i = 0; i < n && i < 4; i++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fds[i], (struct sockaddr *)&ss, &sl);
    if (ss.ss_family == AF_INET) port4 = server_port(srv, i);
  }
  CHECK(port4 > 0);
  CHECK_RC(connect_to(&c->cli[0], "127.0.0.1", port4, &t), 0);
  if (t) CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(c->cli[0].lost && c->pool.n == 1 && c->pool.peers[0].lost);
  CHECK_RC(asyncio_server_free(srv), 0); /* free closes */
  return 0;
}

TEST(server_all_interfaces) {
  sctx_t c = {0};
  assert_ok(run_main(all_interfaces_main, &c));
  ASSERT_SOFT();
}

/* ---- reuse_port / reuse_address ----------------------------------------------------- */

static int reuse_main(void *arg) {
  sctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_server_options_t o = {.reuse_port = true};
  asyncio_server_t *a = NULL, *b = NULL, *x = NULL;
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, "127.0.0.1", 0, &o, &a), 0);
  if (!a) return -1;
  int port = server_port(a, 0);
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, "127.0.0.1", port, &o, &b),
           0);
  /* Without SO_REUSEPORT the port is taken. */
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, "127.0.0.1", port, NULL, &x),
           -EADDRINUSE);
  CHECK(x == NULL);
  if (b) CHECK(server_port(b, 0) == port);
  CHECK_RC(asyncio_server_free(a), 0);
  if (b) CHECK_RC(asyncio_server_free(b), 0);
  /* Bad arguments. */
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, "127.0.0.1", -1, NULL, &x),
           -EINVAL);
  CHECK_RC(asyncio_loop_create_server(loop, NULL, &c->pool, "127.0.0.1", 0, NULL, &x), -EINVAL);
  return 0;
}

TEST(server_reuse_port) {
  sctx_t c = {0};
  assert_ok(run_main(reuse_main, &c));
  ASSERT_SOFT();
}

/* SO_REUSEADDR is on by default for TCP listeners (Python: on POSIX), and
 * reuse_address < 0 turns it off. */

static int reuse_addr_of(int fd) {
  int on = -1;
  socklen_t sl = sizeof on;
  if (getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, &sl) < 0) return -errno;
  return on != 0;
}

static int reuse_address_main(void *arg) {
  sctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  const int settings[] = {0, 1, -1};
  for (int i = 0; i < 3; i++) {
    asyncio_server_options_t o = {.reuse_address = settings[i]};
    asyncio_server_t *srv = NULL;
    /* host=None: every family's socket, each must carry the option. */
    CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, NULL, 0, &o, &srv), 0);
    if (!srv) return -1;
    int fds[4];
    int n = asyncio_server_sockets(srv, fds, 4);
    CHECK(n >= 1 && n <= 4);
    for (int j = 0; j < n && j < 4; j++) CHECK_RC(reuse_addr_of(fds[j]), settings[i] >= 0);
    CHECK_RC(asyncio_server_free(srv), 0);
  }
  return 0;
}

TEST(server_reuse_address) {
  sctx_t c = {0};
  assert_ok(run_main(reuse_address_main, &c));
  ASSERT_SOFT();
}

/* ---- backlog ------------------------------------------------------------------------------- */

/*
 * The backlog a socket listens with, read back from the kernel: for a TCP
 * listener, sock_diag reports sk_max_ack_backlog as idiag_wqueue.  Returns
 * it (>= 0), -ENOENT if the dump does not hold the socket, or
 * -EPROTONOSUPPORT when this system does not answer sock_diag requests (no
 * NETLINK_SOCK_DIAG, no tcp_diag, a sandbox refusing netlink).
 */
static int diag_listen_backlog(int lfd) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  struct stat st;
  if (getsockname(lfd, (struct sockaddr *)&ss, &sl) < 0 || fstat(lfd, &st) < 0) return -errno;
  int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return -EPROTONOSUPPORT;
  struct {
    struct nlmsghdr nh;
    struct inet_diag_req_v2 r;
  } req = {0};
  req.nh.nlmsg_len = sizeof req;
  req.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.r.sdiag_family = (uint8_t)ss.ss_family;
  req.r.sdiag_protocol = IPPROTO_TCP;
  req.r.idiag_states = 1u << 10; /* TCP_LISTEN */
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  int rc = -ENOENT;
  if (sendto(nl, &req, sizeof req, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
    rc = -EPROTONOSUPPORT;
    goto out;
  }
  static long buf[8192]; /* aligned for nlmsghdr */
  for (;;) {
    ssize_t n = recv(nl, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      rc = -EPROTONOSUPPORT;
      goto out;
    }
    int len = (int)n;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_type == NLMSG_DONE) goto out;
      if (h->nlmsg_type == NLMSG_ERROR) {
        rc = -EPROTONOSUPPORT;
        goto out;
      }
      if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
      const struct inet_diag_msg *m = NLMSG_DATA(h);
      if (m->idiag_inode == st.st_ino) rc = (int)m->idiag_wqueue; /* read the rest */
    }
    if (n == 0) goto out;
  }
out:
  close(nl);
  return rc;
}

typedef struct backlog_ctx {
  sctx_t s;
  bool skip;
} backlog_ctx_t;

static int backlog_main(void *arg) {
  backlog_ctx_t *b = arg;
  sctx_t *c = &b->s;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  /* 0 is Python's default, 100; all of these are under any somaxconn cap (128 or more). */
  const int asked[] = {7, 0, 100, 31};
  const int expect[] = {7, 100, 100, 31};
  for (int i = 0; i < 4; i++) {
    asyncio_server_options_t o = {.backlog = asked[i], .start_serving = i == 3 ? -1 : 0};
    asyncio_server_t *srv = NULL;
    CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, "127.0.0.1", 0, &o, &srv),
             0);
    if (!srv) return -1;
    /* start_serving=False: the listen() (and with it the backlog) comes later. */
    if (i == 3) CHECK_RC(asyncio_server_start_serving(srv), 0);
    int fd = -1;
    CHECK(asyncio_server_sockets(srv, &fd, 1) == 1);
    int got = diag_listen_backlog(fd);
    CHECK_RC(asyncio_server_free(srv), 0);
    if (got == -EPROTONOSUPPORT) {
      b->skip = true;
      return 0;
    }
    CHECK_RC(got, expect[i]);
  }
  return 0;
}

TEST(server_backlog) {
  backlog_ctx_t b = {0};
  assert_ok(run_main(backlog_main, &b));
  ASSERT_SOFT();
  if (b.skip) skip(); /* no sock_diag here: the backlog cannot be read back */
}

/* ---- start_serving ----------------------------------------------------------------------- */

static int start_serving_main(void *arg) {
  sctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_server_options_t o = {.start_serving = -1};
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, "127.0.0.1", 0, &o, &srv), 0);
  if (!srv) return -1;
  CHECK(!asyncio_server_is_serving(srv));
  int port = server_port(srv, 0);
  asyncio_transport_t *t = NULL;
  /* Bound but not listening (Python listens in start_serving): refused. */
  CHECK_RC(connect_to(&c->cli[0], "127.0.0.1", port, &t), -ECONNREFUSED);
  CHECK_RC(asyncio_server_start_serving(srv), 0);
  CHECK(asyncio_server_is_serving(srv));
  CHECK_RC(asyncio_server_start_serving(srv), 0); /* idempotent */
  CHECK_RC(connect_to(&c->cli[1], "127.0.0.1", port, &t), 0);
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].made);
  if (t) CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(c->cli[1].lost && c->pool.peers[0].lost);
  CHECK_RC(asyncio_server_close(srv), 0);
  CHECK_RC(asyncio_server_start_serving(srv), ASYNCIO_EINVALIDSTATE);
  CHECK_RC(asyncio_server_serve_forever(srv), ASYNCIO_EINVALIDSTATE);
  CHECK_RC(asyncio_server_free(srv), 0);
  return 0;
}

TEST(server_start_serving_later) {
  sctx_t c = {0};
  assert_ok(run_main(start_serving_main, &c));
  ASSERT_SOFT();
}

/* ---- serve_forever ------------------------------------------------------------------------ */

static int forever_task(void *arg) {
  sctx_t *c = arg;
  c->rc = asyncio_server_serve_forever(c->srv);
  c->done = 1;
  return c->rc;
}

static int serve_forever_main(void *arg) {
  sctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_server_options_t o = {.start_serving = -1};
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, "127.0.0.1", 0, &o, &c->srv),
           0);
  if (!c->srv) return -1;
  asyncio_task_t *task = NULL;
  CHECK_RC(asyncio_create_task(&task, forever_task, c, NULL), 0);
  CHECK_RC(asyncio_sleep(0), 0);
  CHECK(asyncio_server_is_serving(c->srv)); /* serve_forever starts serving */
  CHECK_RC(asyncio_server_serve_forever(c->srv), ASYNCIO_EINVALIDSTATE); /* already */
  CHECK_RC(asyncio_server_free(c->srv), -EBUSY);
  asyncio_transport_t *t = NULL;
  CHECK_RC(connect_to(&c->cli[0], "127.0.0.1", server_port(c->srv, 0), &t), 0);
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].made);
  CHECK_RC(asyncio_task_cancel(task, NULL), 1);
  for (int i = 0; i < 5; i++) CHECK_RC(asyncio_sleep(0.001), 0);
  /* Cancelled: the server closed, and serve_forever waits for the open connection. */
  CHECK(!asyncio_server_is_serving(c->srv));
  CHECK(!c->done);
  if (t) CHECK_RC(asyncio_transport_close(t), 0);
  CHECK_RC(asyncio_await(task, NULL), -ECANCELED);
  CHECK(c->rc == -ECANCELED);
  CHECK(c->pool.peers[0].lost == 1);
  asyncio_task_free(task);
  CHECK_RC(asyncio_server_free(c->srv), 0);
  return 0;
}

TEST(serve_forever_cancelled) {
  sctx_t c = {0};
  assert_ok(run_main(serve_forever_main, &c));
  ASSERT_SOFT();
}

static int serve_forever_close_main(void *arg) {
  sctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, "127.0.0.1", 0, NULL, &c->srv),
           0);
  if (!c->srv) return -1;
  asyncio_task_t *task = NULL;
  CHECK_RC(asyncio_create_task(&task, forever_task, c, NULL), 0);
  CHECK_RC(asyncio_sleep(0), 0);
  CHECK_RC(asyncio_server_close(c->srv), 0);
  CHECK_RC(asyncio_await(task, NULL), 0); /* closed, not cancelled: 0 */
  asyncio_task_free(task);
  CHECK_RC(asyncio_server_free(c->srv), 0);
  return 0;
}

TEST(serve_forever_ended_by_close) {
  sctx_t c = {0};
  assert_ok(run_main(serve_forever_close_main, &c));
  ASSERT_SOFT();
}

static void count_destroyed(asyncio_loop_t *loop, const asyncio_error_context_t *ctx, void *ud);

static int pending_waits_main(void *arg) {
  sctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, "127.0.0.1", 0, NULL, &c->srv),
           0);
  if (!c->srv) return -1;
  return 0;
}

static int wait_closed_task(void *arg) {
  sctx_t *c = arg;
  return asyncio_server_wait_closed(c->srv);
}

/*
 * The loop closed while tasks wait in serve_forever and wait_closed: the
 * tasks are destroyed, and the futures they waited on must go with them.
 */
TEST(loop_close_during_serve_forever_and_wait_closed) {
  sctx_t c = {0};
  asyncio_loop_t *loop = NULL;
  assert_ok(asyncio_loop_new(&loop, NULL));
  int reports = 0;
  assert_ok(asyncio_loop_set_exception_handler(loop, count_destroyed, &reports));
  asyncio_task_t *m = NULL, *f = NULL, *w = NULL;
  assert_ok(asyncio_loop_create_task(loop, &m, pending_waits_main, &c, NULL));
  assert_ok(asyncio_loop_run_until_complete(loop, m, NULL));
  ASSERT_SOFT();
  assert_non_null(c.srv);
  assert_ok(asyncio_loop_create_task(loop, &f, forever_task, &c, NULL));
  assert_ok(asyncio_loop_create_task(loop, &w, wait_closed_task, &c, NULL));
  assert_ok(asyncio_loop_stop(loop));
  assert_ok(asyncio_loop_run_forever(loop));
  assert_false(asyncio_future_done(f));
  assert_false(asyncio_future_done(w));
  assert_ok(asyncio_loop_close(loop));
  assert_int_equal(reports, 2);
  assert_ok(asyncio_server_free(c.srv));
  asyncio_task_free(m);
  asyncio_task_free(f);
  asyncio_task_free(w);
}

/* ---- wait_closed, close_clients, abort_clients ------------------------------------------- */

static int waiter_task(void *arg) {
  sctx_t *c = arg;
  c->rc2 = asyncio_server_wait_closed(c->srv);
  c->order_done = ++g_seq;
  return c->rc2;
}

static int wait_closed_main(void *arg) {
  sctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, "127.0.0.1", 0, NULL, &c->srv),
           0);
  if (!c->srv) return -1;
  asyncio_transport_t *t = NULL;
  CHECK_RC(connect_to(&c->cli[0], "127.0.0.1", server_port(c->srv, 0), &t), 0);
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].made);
  /* 3.12.1: wait_closed called before close waits for close and for the clients. */
  asyncio_task_t *w = NULL;
  CHECK_RC(asyncio_create_task(&w, waiter_task, c, NULL), 0);
  for (int i = 0; i < 3; i++) CHECK_RC(asyncio_sleep(0.001), 0);
  CHECK(!asyncio_future_done(w));
  CHECK_RC(asyncio_server_close(c->srv), 0);
  for (int i = 0; i < 3; i++) CHECK_RC(asyncio_sleep(0.001), 0);
  CHECK(!asyncio_future_done(w)); /* the accepted connection is still open */
  CHECK(c->pool.peers[0].lost == 0);
  if (t) CHECK_RC(asyncio_transport_close(t), 0);
  CHECK_RC(asyncio_await(w, NULL), 0);
  CHECK(c->pool.peers[0].lost == 1);
  CHECK(c->pool.peers[0].order < c->order_done); /* after the server side's connection_lost */
  asyncio_task_free(w);
  CHECK_RC(asyncio_server_wait_closed(c->srv), 0); /* at once now */
  CHECK_RC(asyncio_server_free(c->srv), 0);
  return 0;
}

/* A wait_closed that is cancelled leaves nothing behind: polling with timeouts does not grow. */
static int poll_task(void *arg) { return asyncio_server_wait_closed(arg); }

static int wait_closed_cancelled_main(void *arg) {
  sctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, "127.0.0.1", 0, NULL, &srv),
           0);
  if (!srv) return -1;
  long live = 0;
  for (int i = 0; i < 50; i++) {
    asyncio_task_t *w = NULL;
    CHECK_RC(asyncio_create_task(&w, poll_task, srv, NULL), 0);
    if (!w) break;
    CHECK_RC(asyncio_sleep(0), 0);
    CHECK(!asyncio_future_done(w));
    CHECK_RC(asyncio_task_cancel(w, NULL), 1);
    CHECK_RC(asyncio_await(w, NULL), -ECANCELED);
    asyncio_task_free(w);
    if (i == 9) live = harness_live_allocs();
    if (i == 49 && harness_live_allocs() != live)
      fail_msg("live allocations went from %ld to %ld over 40 cancelled waits", live,
               harness_live_allocs());
  }
  /* A waiter that is not cancelled is still woken by close. */
  asyncio_task_t *w = NULL;
  CHECK_RC(asyncio_create_task(&w, poll_task, srv, NULL), 0);
  CHECK_RC(asyncio_sleep(0), 0);
  CHECK_RC(asyncio_server_close(srv), 0);
  if (w) {
    CHECK_RC(asyncio_await(w, NULL), 0);
    asyncio_task_free(w);
  }
  CHECK_RC(asyncio_server_free(srv), 0);
  return 0;
}

TEST(wait_closed_cancelled_leaves_nothing) {
  sctx_t c = {0};
  assert_ok(run_main(wait_closed_cancelled_main, &c));
  ASSERT_SOFT();
}

TEST(wait_closed_waits_for_connections) {
  sctx_t c = {0};
  assert_ok(run_main(wait_closed_main, &c));
  ASSERT_SOFT();
}

static int clients_main(void *arg) {
  sctx_t *c = arg;
  bool do_abort = c->rc;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, "127.0.0.1", 0, NULL, &c->srv),
           0);
  if (!c->srv) return -1;
  asyncio_transport_t *t[3] = {0};
  for (int i = 0; i < 3; i++) {
    c->cli[i].keep_open = false;
    CHECK_RC(connect_to(&c->cli[i], "127.0.0.1", server_port(c->srv, 0), &t[i]), 0);
  }
  WAIT_UNTIL(c->pool.n == 3 && c->pool.peers[2].made);
  CHECK_RC(asyncio_server_close(c->srv), 0);
  if (do_abort) {
    static char chunk[1 << 20];
    /* Fill a server-side buffer: abort drops it, close would flush it. */
    c->cli[0].pause_on_made = false;
    CHECK_RC(asyncio_transport_pause_reading(t[0]), 0);
    for (int i = 0; i < 8; i++)
      CHECK_RC(asyncio_transport_write(c->pool.peers[0].t, chunk, sizeof chunk), 0);
    CHECK(asyncio_transport_get_write_buffer_size(c->pool.peers[0].t) > 0);
    CHECK_RC(asyncio_server_abort_clients(c->srv), 0);
  } else {
    CHECK_RC(asyncio_server_close_clients(c->srv), 0);
  }
  CHECK_RC(asyncio_server_wait_closed(c->srv), 0);
  for (int i = 0; i < 3; i++) CHECK(c->pool.peers[i].lost == 1 && c->pool.peers[i].lost_err == 0);
  if (do_abort) CHECK_RC(asyncio_transport_resume_reading(t[0]), 0);
  WAIT_UNTIL(c->cli[0].lost && c->cli[1].lost && c->cli[2].lost);
  for (int i = 1; i < 3; i++) CHECK(c->cli[i].eofs == 1); /* an orderly FIN */
  CHECK_RC(asyncio_server_free(c->srv), 0);
  return 0;
}

TEST(close_clients) {
  sctx_t c = {0};
  assert_ok(run_main(clients_main, &c));
  ASSERT_SOFT();
}

TEST(abort_clients) {
  sctx_t c = {.rc = 1};
  assert_ok(run_main(clients_main, &c));
  ASSERT_SOFT();
}

/* ---- EMFILE on accept ------------------------------------------------------------------------ */

typedef struct emfile_ctx {
  sctx_t s;
  int fillers[4096];
  int nfill;
  int reports, last_err;
  struct rlimit old;
} emfile_ctx_t;

static void free_fillers(emfile_ctx_t *e) {
  while (e->nfill) close(e->fillers[--e->nfill]);
}

/* Lowers RLIMIT_NOFILE (the old limit saved in e->old) and fills it with copies of fd. */
static void fill_fd_table(emfile_ctx_t *e, int fd) {
  int probe = dup(fd); /* the lowest free descriptor number */
  close(probe);
  getrlimit(RLIMIT_NOFILE, &e->old);
  struct rlimit lim = e->old;
  lim.rlim_cur = (rlim_t)probe + 64;
  CHECK(setrlimit(RLIMIT_NOFILE, &lim) == 0);
  for (;;) {
    int c = dup(fd);
    if (c < 0) break;
    if (e->nfill == 4096) {
      close(c);
      break;
    }
    e->fillers[e->nfill++] = c;
  }
  CHECK(errno == EMFILE);
}

static void emfile_handler(asyncio_loop_t *loop, const asyncio_error_context_t *ctx, void *ud) {
  emfile_ctx_t *e = ud;
  e->reports++;
  e->last_err = ctx->error;
  /* Free the descriptors: the retry after the back-off must succeed. */
  free_fillers(e);
}

static int emfile_main(void *arg) {
  emfile_ctx_t *e = arg;
  sctx_t *c = &e->s;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_server_options_t o = {.accept_retry_delay = 0.02};
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, "127.0.0.1", 0, &o, &c->srv),
           0);
  if (!c->srv) return -1;
  CHECK_RC(asyncio_loop_set_exception_handler(loop, emfile_handler, e), 0);
  struct sockaddr_in sin = {0};
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)server_port(c->srv, 0));
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  /* Fill the descriptor table under a lowered limit, then let a client in. */
  fill_fd_table(e, cfd);
  CHECK(connect(cfd, (struct sockaddr *)&sin, sizeof sin) == 0); /* the kernel completes it */
  WAIT_UNTIL(c->pool.n == 1);
  CHECK(e->reports == 1); /* one failure, then the back-off: no spinning */
  CHECK(e->last_err == -EMFILE);
  CHECK(e->nfill == 0);
  CHECK(asyncio_server_is_serving(c->srv));
  WAIT_UNTIL(c->pool.peers[0].made);
  close(cfd);
  WAIT_UNTIL(c->pool.peers[0].lost);
  setrlimit(RLIMIT_NOFILE, &e->old);
  CHECK_RC(asyncio_loop_set_exception_handler(loop, NULL, NULL), 0);
  CHECK_RC(asyncio_server_free(c->srv), 0);
  return 0;
}

TEST(accept_emfile_backoff_and_recovery) {
  static emfile_ctx_t e;
  memset(&e, 0, sizeof e);
  assert_ok(run_main(emfile_main, &e));
  free_fillers(&e);
  ASSERT_SOFT();
}

/*
 * The same, but the table stays full across several retry delays while the
 * client waits in the backlog.  accept() goes through asyncio__sys, which
 * notes when each attempt is made: every failed attempt must be followed by
 * a pause of at least accept_retry_delay, so the attempts (and the reports)
 * never outnumber elapsed / delay + 1.  A listener that kept reading would
 * retry at once, every loop iteration.  Then the descriptors come back and
 * the waiting client is accepted.
 */

#define HELD_DELAY 0.05
#define HELD_REPORTS 6

static asyncio_loop_t *g_accept_loop;
static int g_accepts, g_accept_emfiles;
static double g_accept_at[64];

static int counting_accept4(int fd, struct sockaddr *a, socklen_t *l, int fl) {
  int c = accept4(fd, a, l, fl);
  int e = errno;
  if (g_accepts < 64) g_accept_at[g_accepts] = asyncio_loop_time(g_accept_loop);
  g_accepts++;
  if (c < 0 && e == EMFILE) g_accept_emfiles++;
  errno = e;
  return c;
}

static void held_handler(asyncio_loop_t *loop, const asyncio_error_context_t *ctx, void *ud) {
  emfile_ctx_t *e = ud;
  e->reports++;
  e->last_err = ctx->error;
  CHECK(ctx->error == -EMFILE);
}

static asyncio__sys_t g_saved_sys;

static int emfile_held_main(void *arg) {
  emfile_ctx_t *e = arg;
  sctx_t *c = &e->s;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_server_options_t o = {.accept_retry_delay = HELD_DELAY};
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, "127.0.0.1", 0, &o, &c->srv),
           0);
  if (!c->srv) return -1;
  CHECK_RC(asyncio_loop_set_exception_handler(loop, held_handler, e), 0);
  g_accept_loop = loop;
  g_accepts = g_accept_emfiles = 0;
  asyncio__sys.accept4 = counting_accept4;
  struct sockaddr_in sin = {0};
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)server_port(c->srv, 0));
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  fill_fd_table(e, cfd);
  CHECK(connect(cfd, (struct sockaddr *)&sin, sizeof sin) == 0); /* the kernel completes it */
  WAIT_UNTIL(e->reports >= HELD_REPORTS);
  int calls = g_accepts;
  double elapsed = asyncio_loop_time(loop) - g_accept_at[0];
  CHECK(calls <= elapsed / HELD_DELAY + 1 + 1e-6);
  /* One accept() per wakeup, each failing, each reported. */
  CHECK(calls == e->reports && g_accept_emfiles == calls);
  for (int i = 1; i < calls && i < 64; i++)
    CHECK(g_accept_at[i] - g_accept_at[i - 1] >= HELD_DELAY - 1e-6);
  CHECK(c->pool.n == 0);
  CHECK(asyncio_server_is_serving(c->srv)); /* backing off is not closing */
  /* Descriptors back: the next retry takes the client. */
  free_fillers(e);
  setrlimit(RLIMIT_NOFILE, &e->old);
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].made);
  CHECK(e->reports == calls);
  CHECK(g_accept_emfiles == calls);
  close(cfd);
  WAIT_UNTIL(c->pool.peers[0].lost);
  asyncio__sys = g_saved_sys;
  CHECK_RC(asyncio_loop_set_exception_handler(loop, NULL, NULL), 0);
  CHECK_RC(asyncio_server_free(c->srv), 0);
  return 0;
}

TEST(accept_emfile_held_backs_off_each_retry) {
  static emfile_ctx_t e;
  memset(&e, 0, sizeof e);
  g_saved_sys = asyncio__sys;
  int rc = run_main(emfile_held_main, &e);
  /* Whatever happened inside, give back the limit, the descriptors and accept(). */
  asyncio__sys = g_saved_sys;
  free_fillers(&e);
  if (e.old.rlim_cur) setrlimit(RLIMIT_NOFILE, &e.old);
  assert_ok(rc);
  ASSERT_SOFT();
}

/* ---- Unix sockets ---------------------------------------------------------------------------- */

typedef struct unix_ctx {
  sctx_t s;
  char path[108];
  bool abstract;
} unix_ctx_t;

static int unix_main(void *arg) {
  unix_ctx_t *u = arg;
  sctx_t *c = &u->s;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  c->pool.tmpl.echo = true;
  if (!u->abstract) {
    /* A stale socket file from an earlier run. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un un = {0};
    un.sun_family = AF_UNIX;
    strcpy(un.sun_path, u->path);
    CHECK(bind(fd, (struct sockaddr *)&un, sizeof un) == 0);
    close(fd);
  }
  CHECK_RC(asyncio_loop_create_unix_server(loop, pool_factory, &c->pool, u->path, NULL, &c->srv),
           0);
  if (!c->srv) return -1;
  struct stat st;
  if (!u->abstract) CHECK(stat(u->path, &st) == 0 && S_ISSOCK(st.st_mode));
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_unix_connection(loop, peer_factory, &c->cli[0], u->path, NULL, &t,
                                               NULL),
           0);
  if (!t) return -1;
  CHECK_RC(asyncio_transport_write(t, "unix!", 5), 0);
  WAIT_UNTIL(c->cli[0].nrecv == 5);
  CHECK(memcmp(c->cli[0].data, "unix!", 5) == 0);
  CHECK_RC(asyncio_transport_write_eof(t), 0);
  WAIT_UNTIL(c->cli[0].lost && c->pool.peers[0].lost);
  CHECK_RC(asyncio_server_close(c->srv), 0);
  if (!u->abstract) CHECK(stat(u->path, &st) < 0 && errno == ENOENT); /* cleaned up */
  CHECK_RC(asyncio_server_wait_closed(c->srv), 0);
  CHECK_RC(asyncio_server_free(c->srv), 0);
  /* Nobody there any more. */
  CHECK_RC(asyncio_loop_create_unix_connection(loop, peer_factory, &c->cli[1], u->path, NULL, &t,
                                               NULL),
           u->abstract ? -ECONNREFUSED : -ENOENT);
  char longp[200];
  memset(longp, 'a', sizeof longp - 1);
  longp[sizeof longp - 1] = 0;
  CHECK_RC(asyncio_loop_create_unix_connection(loop, peer_factory, &c->cli[1], longp, NULL, &t,
                                               NULL),
           -ENAMETOOLONG);
  return 0;
}

TEST(unix_server_and_client) {
  static unix_ctx_t u;
  memset(&u, 0, sizeof u);
  snprintf(u.path, sizeof u.path, "/tmp/asyncio-test-%d.sock", (int)getpid());
  assert_ok(run_main(unix_main, &u));
  unlink(u.path);
  ASSERT_SOFT();
}

TEST(unix_abstract_namespace) {
  static unix_ctx_t u;
  memset(&u, 0, sizeof u);
  u.abstract = true;
  snprintf(u.path, sizeof u.path, "@asyncio-test-%d", (int)getpid());
  assert_ok(run_main(unix_main, &u));
  ASSERT_SOFT();
}

/*
 * A socket file left behind by a server that died goes before bind even with
 * cleanup_socket off: that option only decides what close does (Python
 * removes the stale file unconditionally).  Any other file at the path stays
 * and bind reports -EADDRINUSE.
 */

static int bind_and_drop(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un un = {0};
  un.sun_family = AF_UNIX;
  strcpy(un.sun_path, path);
  int rc = fd < 0 || bind(fd, (struct sockaddr *)&un, sizeof un) < 0 ? -errno : 0;
  if (fd >= 0) close(fd); /* the file stays, as after a crash */
  return rc;
}

static int unix_stale_main(void *arg) {
  unix_ctx_t *u = arg;
  sctx_t *c = &u->s;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_server_options_t keep = {.cleanup_socket = -1};
  struct stat st, old;
  CHECK_RC(bind_and_drop(u->path), 0);
  CHECK(stat(u->path, &old) == 0 && S_ISSOCK(old.st_mode));
  CHECK_RC(asyncio_loop_create_unix_server(loop, pool_factory, &c->pool, u->path, &keep, &c->srv),
           0);
  if (!c->srv) return -1;
  CHECK(stat(u->path, &st) == 0 && S_ISSOCK(st.st_mode)); /* (tmpfs may reuse the inode) */
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_unix_connection(loop, peer_factory, &c->cli[0], u->path, NULL, &t,
                                               NULL),
           0);
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].made);
  if (t) CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(c->cli[0].lost && c->pool.peers[0].lost);
  CHECK_RC(asyncio_server_close(c->srv), 0);
  /* cleanup_socket off: close leaves the file, stale in its turn. */
  CHECK(stat(u->path, &old) == 0 && S_ISSOCK(old.st_mode) && old.st_ino == st.st_ino);
  CHECK_RC(asyncio_server_free(c->srv), 0);
  c->srv = NULL;
  /* A regular file is not ours to remove. */
  CHECK(unlink(u->path) == 0);
  int fd = open(u->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  CHECK(fd >= 0);
  if (fd >= 0) close(fd);
  asyncio_server_options_t dflt = {0};
  const asyncio_server_options_t *opts[] = {&keep, &dflt};
  for (int i = 0; i < 2; i++) {
    asyncio_server_t *x = NULL;
    CHECK_RC(asyncio_loop_create_unix_server(loop, pool_factory, &c->pool, u->path, opts[i], &x),
             -EADDRINUSE);
    CHECK(x == NULL);
    CHECK(stat(u->path, &st) == 0 && S_ISREG(st.st_mode));
  }
  return 0;
}

TEST(unix_server_removes_stale_socket_without_cleanup) {
  static unix_ctx_t u;
  memset(&u, 0, sizeof u);
  snprintf(u.path, sizeof u.path, "/tmp/asyncio-test-stale-%d.sock", (int)getpid());
  unlink(u.path);
  assert_ok(run_main(unix_stale_main, &u));
  unlink(u.path);
  ASSERT_SOFT();
}

/* ---- factories that refuse, keep_alive ---------------------------------------------------- */

static int refusing_factory(void *arg, const asyncio_protocol_t **proto, void **inst) {
  (*(int *)arg)++;
  return -EPERM;
}

static void count_reports(asyncio_loop_t *loop, const asyncio_error_context_t *ctx, void *ud) {
  sctx_t *c = ud;
  c->rc2++;
  CHECK(ctx->error == -EPERM);
}

static int refuse_main(void *arg) {
  sctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  int calls = 0;
  asyncio_server_options_t o = {.keep_alive = true};
  CHECK_RC(asyncio_loop_create_server(loop, refusing_factory, &calls, "127.0.0.1", 0, &o, &c->srv),
           0);
  if (!c->srv) return -1;
  CHECK_RC(asyncio_loop_set_exception_handler(loop, count_reports, c), 0);
  asyncio_transport_t *t = NULL;
  /* The server's factory refuses: reported, the socket closed, the client sees EOF. */
  CHECK_RC(connect_to(&c->cli[0], "127.0.0.1", server_port(c->srv, 0), &t), 0);
  WAIT_UNTIL(c->cli[0].lost == 1);
  CHECK(calls == 1 && c->rc2 == 1);
  CHECK(c->cli[0].lost_err == 0 || c->cli[0].lost_err == -ECONNRESET);
  /* The client's factory refuses: create_connection returns its error, nothing leaks. */
  int ccalls = 0;
  CHECK_RC(asyncio_loop_create_connection(loop, refusing_factory, &ccalls, "127.0.0.1",
                                          server_port(c->srv, 0), NULL, &t, NULL),
           -EPERM);
  CHECK(ccalls == 1 && t == NULL);
  WAIT_UNTIL(calls == 2);
  CHECK_RC(asyncio_loop_set_exception_handler(loop, NULL, NULL), 0);
  CHECK_RC(asyncio_server_free(c->srv), 0);
  return 0;
}

TEST(factory_refuses_connection) {
  sctx_t c = {0};
  assert_ok(run_main(refuse_main, &c));
  ASSERT_SOFT();
}

static int keepalive_main(void *arg) {
  sctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_server_options_t o = {.keep_alive = true, .backlog = 5};
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, "127.0.0.1", 0, &o, &c->srv),
           0);
  if (!c->srv) return -1;
  asyncio_transport_t *t = NULL;
  CHECK_RC(connect_to(&c->cli[0], "127.0.0.1", server_port(c->srv, 0), &t), 0);
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].made);
  int on = 0;
  socklen_t sl = sizeof on;
  getsockopt(asyncio_transport_get_fd(c->pool.peers[0].t), SOL_SOCKET, SO_KEEPALIVE, &on, &sl);
  CHECK(on == 1);
  int nodelay = 0;
  sl = sizeof nodelay;
  getsockopt(asyncio_transport_get_fd(t), IPPROTO_TCP, TCP_NODELAY, &nodelay, &sl);
  CHECK(nodelay == 1); /* _set_nodelay on client transports too */
  if (t) CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(c->cli[0].lost && c->pool.peers[0].lost);
  CHECK_RC(asyncio_server_free(c->srv), 0);
  return 0;
}

TEST(server_keep_alive_and_nodelay) {
  sctx_t c = {0};
  assert_ok(run_main(keepalive_main, &c));
  ASSERT_SOFT();
}

/*
 * An exception handler that closes the server when accept() runs out of
 * descriptors: the back-off timer must not outlive the server, which the
 * caller then frees.
 */

static int g_emfiles;

static int emfile_accept4(int fd, struct sockaddr *a, socklen_t *l, int fl) {
  if (g_emfiles > 0) {
    g_emfiles--;
    errno = EMFILE;
    return -1;
  }
  return accept4(fd, a, l, fl);
}

static void closing_handler(asyncio_loop_t *loop, const asyncio_error_context_t *ctx, void *ud) {
  sctx_t *c = ud;
  c->rc2++;
  CHECK(ctx->error == -EMFILE);
  CHECK_RC(asyncio_server_close(c->srv), 0);
}

static int emfile_close_main(void *arg) {
  sctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_server_options_t o = {.accept_retry_delay = 0.05};
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, "127.0.0.1", 0, &o, &c->srv),
           0);
  if (!c->srv) return -1;
  CHECK_RC(asyncio_loop_set_exception_handler(loop, closing_handler, c), 0);
  g_emfiles = 1;
  asyncio__sys.accept4 = emfile_accept4;
  struct sockaddr_in sin = {0};
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)server_port(c->srv, 0));
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK(connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
  WAIT_UNTIL(c->rc2 == 1);
  CHECK(!asyncio_server_is_serving(c->srv));
  CHECK_RC(asyncio_server_free(c->srv), 0);
  c->srv = NULL;
  CHECK_RC(asyncio_sleep(0.1), 0); /* past the retry delay */
  CHECK(c->pool.n == 0);
  close(fd);
  CHECK_RC(asyncio_loop_set_exception_handler(loop, NULL, NULL), 0);
  return 0;
}

TEST(emfile_handler_closes_server) {
  sctx_t c = {0};
  assert_ok(run_main(emfile_close_main, &c));
  ASSERT_SOFT();
}

/* accept() failing with ECONNABORTED (the peer gave up) is skipped; the next accept works. */

static int g_aborts;

static int aborting_accept4(int fd, struct sockaddr *a, socklen_t *l, int fl) {
  if (g_aborts > 0) {
    g_aborts--;
    errno = ECONNABORTED;
    return -1;
  }
  return accept4(fd, a, l, fl);
}

static int accept_abort_main(void *arg) {
  sctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, "127.0.0.1", 0, NULL, &c->srv),
           0);
  if (!c->srv) return -1;
  asyncio__sys_t saved = asyncio__sys;
  asyncio__sys.accept4 = aborting_accept4;
  g_aborts = 2;
  asyncio_transport_t *t = NULL;
  CHECK_RC(connect_to(&c->cli[0], "127.0.0.1", server_port(c->srv, 0), &t), 0);
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].made);
  CHECK(g_aborts == 0);
  asyncio__sys = saved;
  if (t) CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(c->cli[0].lost && c->pool.peers[0].lost);
  CHECK_RC(asyncio_server_free(c->srv), 0);
  return 0;
}

TEST(accept_connaborted_is_skipped) {
  sctx_t c = {0};
  assert_ok(run_main(accept_abort_main, &c));
  ASSERT_SOFT();
}

/* ---- create_server interrupted while it resolves ------------------------------------------- */

/*
 * A one-worker executor is kept busy by a job that waits on a semaphore, so
 * the getaddrinfo job create_server submits stays queued: the task is
 * certainly suspended inside the resolution when the test cancels it or
 * closes the loop.  The first host is numeric (resolved without a thread),
 * so create_server already holds the first host's addresses then.
 */

static sem_t g_block_sem;

static int blocking_job(void *arg, void **value) {
  (void)arg;
  (void)value;
  while (sem_wait(&g_block_sem) != 0) {
  }
  return 0;
}

typedef struct resolving {
  sctx_t s;
  asyncio_executor_t *ex;
  asyncio_future_t *blocker;
  asyncio_task_t *creator;
  int started, creator_rc;
} resolving_t;

static int creator_task(void *arg) {
  resolving_t *r = arg;
  static const char *const hosts[] = {"127.0.0.1", "localhost", NULL};
  asyncio_server_options_t o = {.hosts = hosts};
  r->started = 1;
  r->creator_rc = asyncio_loop_create_server(asyncio_get_running_loop(), pool_factory,
                                             &r->s.pool, NULL, 0, &o, &r->s.srv);
  return r->creator_rc;
}

/* Occupies the executor's one worker, then starts the creator inside its resolution. */
static int start_resolving(resolving_t *r) {
  asyncio_loop_t *loop = asyncio_get_running_loop();
  CHECK_RC(asyncio_loop_set_default_executor(loop, r->ex), 0);
  CHECK_RC(asyncio_loop_run_in_executor(loop, NULL, blocking_job, NULL, &r->blocker), 0);
  CHECK_RC(asyncio_create_task(&r->creator, creator_task, r, NULL), 0);
  for (int i = 0; i < 3; i++) CHECK_RC(asyncio_sleep(0), 0);
  CHECK(r->started && !asyncio_future_done(r->creator));
  return 0;
}

static int cancel_resolving_main(void *arg) {
  resolving_t *r = arg;
  start_resolving(r);
  CHECK_RC(asyncio_task_cancel(r->creator, NULL), 1);
  CHECK_RC(asyncio_await(r->creator, NULL), -ECANCELED);
  CHECK(r->creator_rc == -ECANCELED && r->s.srv == NULL);
  asyncio_task_free(r->creator);
  /* The worker is still busy: let it go and collect it. */
  sem_post(&g_block_sem);
  CHECK_RC(asyncio_await(r->blocker, NULL), 0);
  asyncio_future_free(r->blocker);
  CHECK(r->s.pool.n == 0);
  return 0;
}

/* Cancelling create_server while it resolves: -ECANCELED, nothing leaks (harness). */
TEST(create_server_cancelled_while_resolving) {
  static resolving_t r;
  memset(&r, 0, sizeof r);
  sem_init(&g_block_sem, 0, 0);
  assert_ok(asyncio_executor_new(&r.ex, 1));
  assert_ok(run_main(cancel_resolving_main, &r));
  ASSERT_SOFT();
  assert_ok(asyncio_executor_free(r.ex));
  sem_destroy(&g_block_sem);
}

static void count_destroyed(asyncio_loop_t *loop, const asyncio_error_context_t *ctx, void *ud) {
  (*(int *)ud)++;
}

static int close_resolving_main(void *arg) {
  resolving_t *r = arg;
  start_resolving(r);
  /* Drop our interest in the blocker: its result is abandoned when it arrives. */
  CHECK_RC(asyncio_future_cancel(r->blocker, NULL), 1);
  asyncio_future_free(r->blocker);
  r->blocker = NULL;
  return 0;
}

/*
 * Closing the loop while a task waits inside create_server's resolution
 * destroys the task ("Task was destroyed but it is pending!"): what
 * create_server had allocated and resolved so far must go with it.
 */
TEST(create_server_pending_at_loop_close) {
  static resolving_t r;
  memset(&r, 0, sizeof r);
  sem_init(&g_block_sem, 0, 0);
  assert_ok(asyncio_executor_new(&r.ex, 1));
  asyncio_loop_t *loop = NULL;
  assert_ok(asyncio_loop_new(&loop, NULL));
  int reports = 0;
  assert_ok(asyncio_loop_set_exception_handler(loop, count_destroyed, &reports));
  asyncio_task_t *main_task = NULL;
  assert_ok(asyncio_loop_create_task(loop, &main_task, close_resolving_main, &r, NULL));
  assert_ok(asyncio_loop_run_until_complete(loop, main_task, NULL));
  ASSERT_SOFT();
  assert_false(asyncio_future_done(r.creator));
  sem_post(&g_block_sem); /* loop_close waits for the running job */
  assert_ok(asyncio_loop_close(loop));
  assert_int_equal(reports, 1);
  assert_null(r.s.srv);
  asyncio_task_free(r.creator);
  asyncio_task_free(main_task);
  assert_ok(asyncio_executor_free(r.ex));
  sem_destroy(&g_block_sem);
}

static int creator_start_serving_task(void *arg) {
  resolving_t *r = arg;
  r->started = 1;
  r->creator_rc = asyncio_loop_create_server(asyncio_get_running_loop(), pool_factory,
                                             &r->s.pool, "127.0.0.1", 0, NULL, &r->s.srv);
  return r->creator_rc;
}

/*
 * The same for the last suspension inside create_server: the loop iteration
 * it yields after it started serving (Python's sleep(0)).
 */
TEST(create_server_pending_at_loop_close_after_bind) {
  static resolving_t r;
  memset(&r, 0, sizeof r);
  asyncio_loop_t *loop = NULL;
  assert_ok(asyncio_loop_new(&loop, NULL));
  int reports = 0;
  assert_ok(asyncio_loop_set_exception_handler(loop, count_destroyed, &reports));
  asyncio_task_t *t = NULL;
  assert_ok(asyncio_loop_create_task(loop, &t, creator_start_serving_task, &r, NULL));
  /* stop() before run_forever(): exactly one iteration runs. */
  assert_ok(asyncio_loop_stop(loop));
  assert_ok(asyncio_loop_run_forever(loop));
  assert_true(r.started);
  assert_false(asyncio_future_done(t));
  assert_ok(asyncio_loop_close(loop));
  assert_int_equal(reports, 1);
  assert_null(r.s.srv);
  asyncio_task_free(t);
}

/* ---- a factory that closes its server ----------------------------------------------------- */

/*
 * A factory that stops the server at its first connection (a one-shot
 * server).  The connection it makes was accepted before the close, so it is
 * one of the server's clients: wait_closed (3.12.1) waits for it, and
 * close_clients reaches it.  (Python calls the factory later, from a task,
 * where a closed server trips an assertion in _attach; here it runs inside
 * the accept loop, which stops once the server is closed.)
 */
static int closing_factory(void *arg, const asyncio_protocol_t **proto, void **inst) {
  sctx_t *c = arg;
  CHECK_RC(asyncio_server_close(c->srv), 0);
  CHECK(!asyncio_server_is_serving(c->srv));
  if (c->rc) return c->rc; /* and refuses the connection */
  return pool_factory(&c->pool, proto, inst);
}

static int factory_closes_main(void *arg) {
  sctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  CHECK_RC(asyncio_loop_create_server(loop, closing_factory, c, "127.0.0.1", 0, NULL, &c->srv), 0);
  if (!c->srv) return -1;
  asyncio_transport_t *t = NULL;
  CHECK_RC(connect_to(&c->cli[0], "127.0.0.1", server_port(c->srv, 0), &t), 0);
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].made);
  CHECK_RC(asyncio_server_sockets(c->srv, NULL, 0), 0);
  asyncio_task_t *w = NULL;
  CHECK_RC(asyncio_create_task(&w, waiter_task, c, NULL), 0);
  for (int i = 0; i < 3; i++) CHECK_RC(asyncio_sleep(0.001), 0);
  CHECK(!asyncio_future_done(w)); /* the connection the factory made is still open */
  CHECK_RC(asyncio_server_close_clients(c->srv), 0);
  CHECK_RC(asyncio_await(w, NULL), 0);
  CHECK(c->pool.peers[0].lost == 1);
  CHECK(c->pool.peers[0].order < c->order_done);
  asyncio_task_free(w);
  WAIT_UNTIL(c->cli[0].lost == 1);
  CHECK_RC(asyncio_server_free(c->srv), 0);
  return 0;
}

TEST(factory_closing_server_keeps_its_client) {
  sctx_t c = {0};
  assert_ok(run_main(factory_closes_main, &c));
  ASSERT_SOFT();
}

/* ---- sock= ------------------------------------------------------------------------------- */

static int bound_tcp_socket(int type) {
  int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  struct sockaddr_in sin = {0};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
  return fd;
}

static int server_sock_main(void *arg) {
  sctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  int fd = bound_tcp_socket(SOCK_STREAM);
  asyncio_server_options_t o = {.use_sock = true, .sock = fd};
  /* Python's ValueError('host/port and sock can not be specified at the same time'). */
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, NULL, 8080, &o, &c->srv),
           -EINVAL);
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, "127.0.0.1", 0, &o, &c->srv),
           -EINVAL);
  static const char *const hosts[] = {"127.0.0.1", NULL};
  o.hosts = hosts;
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, NULL, 0, &o, &c->srv),
           -EINVAL);
  o.hosts = NULL;
  CHECK(c->srv == NULL);
  CHECK(fcntl(fd, F_GETFD) >= 0); /* refused: still the caller's */
  /* Not a stream socket: ValueError('A Stream Socket was expected'). */
  int ufd = bound_tcp_socket(SOCK_DGRAM);
  asyncio_server_options_t ou = {.use_sock = true, .sock = ufd};
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, NULL, 0, &ou, &c->srv),
           -EINVAL);
  close(ufd);
  /* The right way: the server listens on it, serves, and closes it. */
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, NULL, 0, &o, &c->srv), 0);
  if (!c->srv) return -1;
  int fds[2];
  CHECK(asyncio_server_sockets(c->srv, fds, 2) == 1 && fds[0] == fd);
  asyncio_transport_t *t = NULL;
  CHECK_RC(connect_to(&c->cli[0], "127.0.0.1", server_port(c->srv, 0), &t), 0);
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].made);
  if (t) CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(c->cli[0].lost && c->pool.peers[0].lost);
  CHECK_RC(asyncio_server_free(c->srv), 0);
  return 0;
}

TEST(create_server_with_sock) {
  sctx_t c = {0};
  assert_ok(run_main(server_sock_main, &c));
  ASSERT_SOFT();
}

/*
 * create_unix_server(sock=): Python 3.13 applies cleanup_socket to the path
 * the given socket is bound to, as to one it bound itself.
 */
static int unix_sock_cleanup_main(void *arg) {
  unix_ctx_t *u = arg;
  sctx_t *c = &u->s;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  for (int keep = 0; keep < 2; keep++) {
    unlink(u->path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un un = {0};
    un.sun_family = AF_UNIX;
    strcpy(un.sun_path, u->path);
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&un, sizeof un) == 0);
    asyncio_server_options_t o = {.use_sock = true, .sock = fd, .cleanup_socket = keep ? -1 : 0};
    CHECK_RC(asyncio_loop_create_unix_server(loop, pool_factory, &c->pool, u->path, &o, &c->srv),
             -EINVAL); /* path and sock */
    CHECK_RC(asyncio_loop_create_unix_server(loop, pool_factory, &c->pool, NULL, &o, &c->srv), 0);
    if (!c->srv) return -1;
    asyncio_transport_t *t = NULL;
    peer_t *cli = &c->cli[keep];
    CHECK_RC(asyncio_loop_create_unix_connection(loop, peer_factory, cli, u->path, NULL, &t, NULL),
             0);
    WAIT_UNTIL(c->pool.n == keep + 1 && c->pool.peers[keep].made);
    if (t) CHECK_RC(asyncio_transport_close(t), 0);
    WAIT_UNTIL(cli->lost && c->pool.peers[keep].lost);
    struct stat st;
    CHECK(stat(u->path, &st) == 0);
    CHECK_RC(asyncio_server_close(c->srv), 0);
    if (keep)
      CHECK(stat(u->path, &st) == 0 && S_ISSOCK(st.st_mode)); /* cleanup_socket=False */
    else
      CHECK(stat(u->path, &st) < 0 && errno == ENOENT);
    CHECK_RC(asyncio_server_free(c->srv), 0);
    c->srv = NULL;
  }
  return 0;
}

TEST(unix_server_sock_cleanup) {
  static unix_ctx_t u;
  memset(&u, 0, sizeof u);
  snprintf(u.path, sizeof u.path, "/tmp/asyncio-test-sock-%d.sock", (int)getpid());
  assert_ok(run_main(unix_sock_cleanup_main, &u));
  unlink(u.path);
  ASSERT_SOFT();
}

static void count_refusals(asyncio_loop_t *loop, const asyncio_error_context_t *ctx, void *ud) {
  sctx_t *c = ud;
  c->done++;
  CHECK(ctx->error == -EPERM);
}

/*
 * The same factory refusing the connection it was called for: the server
 * is closed with no client left, so wait_closed returns.
 */
static int factory_closes_refuses_main(void *arg) {
  sctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  CHECK_RC(asyncio_loop_create_server(loop, closing_factory, c, "127.0.0.1", 0, NULL, &c->srv), 0);
  if (!c->srv) return -1;
  CHECK_RC(asyncio_loop_set_exception_handler(loop, count_refusals, c), 0);
  asyncio_task_t *w = NULL;
  CHECK_RC(asyncio_create_task(&w, waiter_task, c, NULL), 0);
  asyncio_transport_t *t = NULL;
  CHECK_RC(connect_to(&c->cli[0], "127.0.0.1", server_port(c->srv, 0), &t), 0);
  CHECK_RC(asyncio_await(w, NULL), 0);
  CHECK(c->done == 1 && c->pool.n == 0);
  asyncio_task_free(w);
  WAIT_UNTIL(c->cli[0].lost == 1); /* the refused socket was closed */
  CHECK_RC(asyncio_loop_set_exception_handler(loop, NULL, NULL), 0);
  CHECK_RC(asyncio_server_free(c->srv), 0);
  return 0;
}

TEST(factory_closing_server_and_refusing) {
  sctx_t c = {.rc = -EPERM};
  assert_ok(run_main(factory_closes_refuses_main, &c));
  ASSERT_SOFT();
}
