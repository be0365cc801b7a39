/*
 * test_ssl_hostile.c - a TLS stream server and a TLS protocol server under
 * many concurrent clients that misbehave: garbage instead of a
 * ClientHello, a handshake cut short or left hanging, resets mid-stream,
 * aborts, well-behaved echo sessions in between.  Afterwards every handler
 * has finished, every byte of the good sessions came back, and the
 * server's memory is back to what it was (the harness then checks that
 * nothing leaked at all, descriptors included).
 *
 * Python origin: the robustness the TLS tests of
 * Lib/test/test_asyncio/test_ssl.py check one case at a time
 * (test_handshake_timeout, test_create_server_ssl_over_ssl, ...).
 */
#include "stream_helpers.h"
#include "tls_helpers.h"

#include <netinet/in.h>
#include <sys/socket.h>

#define NCLIENTS 24 /* per round; the protocol server's pool holds 64 sessions in all */

typedef struct hctx {
  tls_pki_t pki;
  SSL_CTX *sctx, *cctx;
  int port;
  int handlers, handlers_done;
  int good_done;
  int want_good, want_sessions;
  pool_t pool;
  bool protocol_server;
} hctx_t;

static int echo_lines(reader_t *r, writer_t *w, void *arg) {
  hctx_t *c = arg;
  c->handlers++;
  for (;;) {
    const char *line;
    ssize_t n = asyncio_stream_readline(r, &line);
    if (n <= 0) break;
    if (asyncio_stream_write(w, line, (size_t)n) < 0 || asyncio_stream_drain(w) < 0) break;
  }
  c->handlers_done++;
  return 0;
}

typedef struct client {
  hctx_t *c;
  int kind;
} client_t;

static int raw_connect(hctx_t *c) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = asyncio_sock_connect(fd, (struct sockaddr *)&a, sizeof a);
  if (rc < 0) {
    close(fd);
    return rc;
  }
  return fd;
}

/* Reads until the server ends the connection (EOF or reset). */
static void raw_drain(int fd) {
  char buf[4096];
  for (;;) {
    ssize_t n = asyncio_sock_recv(fd, buf, sizeof buf);
    if (n <= 0) break;
  }
}

static void raw_reset(int fd) {
  struct linger l = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
}

static int client_main(void *arg) {
  client_t *cl = arg;
  hctx_t *c = cl->c;
  asyncio_connection_options_t co = {.ssl = c->cctx, .server_hostname = "localhost"};
  asyncio_stream_options_t so = {.connection = &co};
  reader_t *r = NULL;
  writer_t *w = NULL;
  int fd;
  switch (cl->kind) {
  case 0: /* a good session: lines echoed, then close_notify */
  case 1: {
    CHECK_RC(asyncio_open_connection("127.0.0.1", c->port, &so, &r, &w), 0);
    if (!w) return 0;
    for (int i = 0; i < 10; i++) {
      char msg[64];
      int k = snprintf(msg, sizeof msg, "client %p line %d\n", (void *)cl, i);
      CHECK_RC(asyncio_stream_write(w, msg, (size_t)k), 0);
      const char *line;
      ssize_t n = asyncio_stream_readline(r, &line);
      CHECK(n == k);
      if (n == k) CHECK(memcmp(line, msg, (size_t)k) == 0);
    }
    CHECK_RC(asyncio_stream_close(w), 0);
    CHECK_RC(asyncio_stream_wait_closed(w), 0);
    pair_close(r, w, -1);
    c->good_done++;
    return 0;
  }
  case 2: /* handshake done, half a line, then abort */
    CHECK_RC(asyncio_open_connection("127.0.0.1", c->port, &so, &r, &w), 0);
    if (!w) return 0;
    CHECK_RC(asyncio_stream_write(w, "half a li", 9), 0);
    CHECK_RC(asyncio_stream_drain(w), 0);
    CHECK_RC(asyncio_transport_abort(asyncio_stream_transport(w)), 0);
    (void)asyncio_stream_wait_closed(w);
    pair_close(r, w, -1);
    return 0;
  case 3: /* connect and close at once */
    if ((fd = raw_connect(c)) >= 0) close(fd);
    return 0;
  case 4: /* garbage instead of a ClientHello */
    if ((fd = raw_connect(c)) >= 0) {
      static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
      (void)asyncio_sock_sendall(fd, junk, sizeof junk - 1, NULL);
      raw_drain(fd);
      close(fd);
    }
    return 0;
  case 5: /* a TLS record header that never gets its body: the handshake times out */
    if ((fd = raw_connect(c)) >= 0) {
      static const unsigned char hdr[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01};
      (void)asyncio_sock_sendall(fd, hdr, sizeof hdr, NULL);
      raw_drain(fd);
      close(fd);
    }
    return 0;
  case 6: /* a session reset by the client after the handshake */
    CHECK_RC(asyncio_open_connection("127.0.0.1", c->port, &so, &r, &w), 0);
    if (!w) return 0;
    CHECK_RC(asyncio_stream_write(w, "x\n", 2), 0);
    {
      const char *line;
      CHECK(asyncio_stream_readline(r, &line) == 2);
      int ufd = asyncio_transport_get_fd(asyncio_stream_transport(w));
      CHECK(ufd >= 0);
      struct linger l = {1, 0};
      if (ufd >= 0) setsockopt(ufd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      CHECK_RC(asyncio_transport_abort(asyncio_stream_transport(w)), 0); /* RST */
    }
    (void)asyncio_stream_wait_closed(w);
    pair_close(r, w, -1);
    return 0;
  default: /* a raw client reset mid-handshake */
    if ((fd = raw_connect(c)) >= 0) {
      static const unsigned char hdr[] = {0x16, 0x03, 0x01, 0x00, 0x40, 0x01, 0x00};
      (void)asyncio_sock_sendall(fd, hdr, sizeof hdr, NULL);
      raw_reset(fd);
    }
    return 0;
  }
}

static asyncio_server_t *start(hctx_t *c) {
  asyncio_server_options_t so = {.ssl = c->sctx, .ssl_handshake_timeout = 0.3, .backlog = 128};
  asyncio_server_t *srv = NULL;
  if (c->protocol_server) {
    c->pool.tmpl.echo = true;
    CHECK_RC(asyncio_loop_create_server(asyncio_get_running_loop(), pool_factory, &c->pool,
                                        "127.0.0.1", 0, &so, &srv),
             0);
  } else {
    asyncio_stream_options_t o = {.server = &so};
    CHECK_RC(asyncio_start_server(echo_lines, c, "127.0.0.1", 0, &o, &srv), 0);
  }
  if (srv) c->port = server_port(srv, 0);
  return srv;
}

/* One round: every client, concurrently; then every server-side connection has ended. */
static int round_of_clients(hctx_t *c) {
  static client_t cl[NCLIENTS];
  asyncio_task_t *tasks[NCLIENTS];
  for (int i = 0; i < NCLIENTS; i++) {
    cl[i].c = c;
    cl[i].kind = (i * 5) % 8; /* every kind, interleaved; the same each round */
    CHECK_RC(asyncio_create_task(&tasks[i], client_main, &cl[i], NULL), 0);
  }
  for (int i = 0; i < NCLIENTS; i++) {
    CHECK_RC(asyncio_await(tasks[i], NULL), 0);
    asyncio_task_free(tasks[i]);
  }
  int good = 0, sessions = 0;
  for (int i = 0; i < NCLIENTS; i++) {
    good += cl[i].kind <= 1;
    sessions += cl[i].kind <= 2 || cl[i].kind == 6;
  }
  c->want_good += good;
  c->want_sessions += sessions;
  CHECK(c->good_done == c->want_good);
  if (c->protocol_server) {
    WAIT_UNTIL(c->pool.n == c->want_sessions);
    for (int i = 0; i < c->pool.n; i++) WAIT_UNTIL(c->pool.peers[i].lost == 1);
  } else {
    WAIT_UNTIL(c->handlers == c->want_sessions && c->handlers_done == c->want_sessions);
  }
  return 0;
}

static int hostile_main(void *arg) {
  hctx_t *c = arg;
  asyncio_server_t *srv = start(c);
  if (!srv) return -1;
  /*
   * The first round grows what the loop keeps for reuse (task objects,
   * stacks, handles).  Three more rounds must not grow memory by anything
   * like an allocation per connection: what a misbehaving client caused
   * does not stay allocated.  (Reuse pools may still grow a little when a
   * round happens to run more tasks at once: hence a bound, not equality.)
   */
  int rc = round_of_clients(c);
  if (rc) return rc;
  long base = harness_live_allocs();
  int before = c->want_sessions;
  for (int r = 0; r < 3 && rc == 0; r++) rc = round_of_clients(c);
  if (rc) return rc;
  long settle = 0;
  while (harness_live_allocs() > base && settle++ < 200) CHECK_RC(asyncio_sleep(0.001), 0);
  long grown = harness_live_allocs() - base;
  int conns = c->want_sessions - before;
  CHECK(conns >= 30);
  CHECK(grown < conns / 2);
  CHECK_RC(asyncio_server_close(srv), 0);
  CHECK_RC(asyncio_server_wait_closed(srv), 0);
  CHECK_RC(asyncio_server_free(srv), 0);
  return 0;
}

static void run_hostile(bool protocol_server) {
  static hctx_t c;
  memset(&c, 0, sizeof c);
  tls_pki_init(&c.pki);
  c.sctx = tls_server_ctx(&c.pki);
  c.cctx = tls_client_ctx(&c.pki, 0);
  c.protocol_server = protocol_server;
  int rc = run_main(hostile_main, &c);
  if (soft_fail[0]) fprintf(stderr, "%s\n", soft_fail);
  assert_ok(rc);
  SSL_CTX_free(c.sctx);
  SSL_CTX_free(c.cctx);
  tls_pki_free(&c.pki);
  ASSERT_SOFT();
}

TEST(hostile_clients_stream_server) { run_hostile(false); }

TEST(hostile_clients_protocol_server) { run_hostile(true); }
