/*
 * test_ssl_streams.c - streams over TLS: open_connection / start_server
 * with ssl=, and StreamWriter.start_tls (include/asyncio/streams.h,
 * sslproto.h).
 *
 * Python origin: Lib/asyncio/streams.py (StreamWriter.start_tls,
 * StreamReaderProtocol._replace_transport) and the TLS cases of
 * Lib/test/test_asyncio/test_streams.py and test_ssl.py.  Certificates are
 * made in the test (tls_helpers.h); real sockets on 127.0.0.1, port 0.
 */
#include "stream_helpers.h"
#include "tls_helpers.h"

#include "../src/selector_events.h" /* the system-call table, for fault injection */

/* Also here: TLS over sockets the caller made (create_connection(sock=),
 * connect_accepted_socket(ssl=)). */

typedef struct sctx {
  tls_pki_t pki;
  SSL_CTX *sctx, *cctx, *bad;
  int port;
  int handlers, handlers_done, server_rc, upgrade_rc;
  size_t big;
  uint64_t got_sum;
} sctx_t;

static void sctx_init(sctx_t *c) {
  memset(c, 0, sizeof *c);
  tls_pki_init(&c->pki);
  c->sctx = tls_server_ctx(&c->pki);
  c->cctx = tls_client_ctx(&c->pki, 0);
  c->bad = tls_client_ctx(&c->pki, 1);
}

static void sctx_free(sctx_t *c) {
  SSL_CTX_free(c->sctx);
  SSL_CTX_free(c->cctx);
  SSL_CTX_free(c->bad);
  tls_pki_free(&c->pki);
}

/* Runs fn(&c) on a fresh loop with fresh certificates, then the soft checks. */
static void run_tls(asyncio_coro_fn fn) {
  sctx_t c;
  sctx_init(&c);
  assert_ok(run_main(fn, &c));
  sctx_free(&c);
  ASSERT_SOFT();
}

static asyncio_server_t *serve(sctx_t *c, asyncio_stream_handler_fn h, bool tls) {
  asyncio_server_options_t so = {.ssl = tls ? c->sctx : NULL};
  asyncio_stream_options_t o = {.server = &so};
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_start_server(h, c, "127.0.0.1", 0, &o, &srv), 0);
  if (srv) c->port = server_port(srv, 0);
  return srv;
}

static void unserve(asyncio_server_t *srv) {
  CHECK_RC(asyncio_server_close(srv), 0);
  CHECK_RC(asyncio_server_wait_closed(srv), 0);
  CHECK_RC(asyncio_server_free(srv), 0);
}

static int connect_tls_code(sctx_t *c, SSL_CTX *ctx, const char *name, reader_t **r,
                            writer_t **w, long *verify_code) {
  asyncio_connection_options_t co = {
      .ssl = ctx, .server_hostname = name, .ssl_verify_code = verify_code};
  asyncio_stream_options_t o = {.connection = &co};
  return asyncio_open_connection("127.0.0.1", c->port, &o, r, w);
}

static int connect_tls(sctx_t *c, SSL_CTX *ctx, const char *name, reader_t **r, writer_t **w) {
  return connect_tls_code(c, ctx, name, r, w, NULL);
}

/* ---- open_connection / start_server with ssl= -------------------------------------- */

/* Echoes lines until EOF. */
static int line_echo(reader_t *r, writer_t *w, void *arg) {
  sctx_t *c = arg;
  c->handlers++;
  CHECK(asyncio_transport_get_ssl_object(asyncio_stream_transport(w)) != NULL);
  for (;;) {
    const char *line;
    ssize_t n = asyncio_stream_readline(r, &line);
    if (n <= 0) {
      c->server_rc = (int)n;
      break;
    }
    CHECK_RC(asyncio_stream_write(w, line, (size_t)n), 0);
    CHECK_RC(asyncio_stream_drain(w), 0);
  }
  return 0;
}

static int echo_main(void *arg) {
  sctx_t *c = arg;
  asyncio_server_t *srv = serve(c, line_echo, true);
  if (!srv) return -1;
  reader_t *r;
  writer_t *w;
  CHECK_RC(connect_tls(c, c->cctx, "localhost", &r, &w), 0);
  if (!w) return -1;
  asyncio_transport_t *t = asyncio_stream_transport(w);
  SSL *ssl = asyncio_transport_get_ssl_object(t);
  CHECK(ssl != NULL);
  if (ssl) CHECK(SSL_get0_peer_certificate(ssl) != NULL);
  CHECK(!asyncio_stream_can_write_eof(w));
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  CHECK_RC(asyncio_stream_get_peername(w, (struct sockaddr *)&ss, &sl), 0);
  CHECK(ss.ss_family == AF_INET && ntohs(((struct sockaddr_in *)&ss)->sin_port) == c->port);
  for (int i = 0; i < 50; i++) {
    char msg[32];
    int k = snprintf(msg, sizeof msg, "line %d\n", i);
    /* An error the application's own OpenSSL use left on this thread must not
     * be taken for one of the connection's (SSL_get_error reads the queue). */
    if (i % 2) ERR_raise(ERR_LIB_USER, 1);
    CHECK_RC(asyncio_stream_write(w, msg, (size_t)k), 0);
    const char *line;
    CHECK(asyncio_stream_readline(r, &line) == k);
    if (line) CHECK(memcmp(line, msg, (size_t)k) == 0);
  }
  /* close() sends close_notify: the server reads EOF, cleanly. */
  CHECK_RC(asyncio_stream_close(w), 0);
  CHECK_RC(asyncio_stream_wait_closed(w), 0);
  WAIT_UNTIL(c->handlers == 1 && c->server_rc == 0);
  pair_close(r, w, -1);
  unserve(srv);
  return 0;
}

TEST(streams_echo) { run_tls(echo_main); }

static int refused_main(void *arg) {
  sctx_t *c = arg;
  asyncio_server_t *srv = serve(c, line_echo, true);
  if (!srv) return -1;
  reader_t *r = (reader_t *)1;
  writer_t *w = (writer_t *)1;
  /* An untrusted certificate, then a name it does not carry; each says which. */
  long code = -1;
  CHECK_RC(connect_tls_code(c, c->bad, "localhost", &r, &w, &code), ASYNCIO_ESSLCERTVERIFY);
  CHECK(r == NULL && w == NULL);
  CHECK(code == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  CHECK_RC(connect_tls_code(c, c->cctx, "example.com", &r, &w, &code), ASYNCIO_ESSLCERTVERIFY);
  CHECK(code == X509_V_ERR_HOSTNAME_MISMATCH);
  /* Refused before connecting (no reader out-pointer): the old code is cleared all the same. */
  CHECK_RC(connect_tls_code(c, c->cctx, "example.com", NULL, &w, &code), -EINVAL);
  CHECK(code == X509_V_OK);
  /* The server goes on serving. */
  code = -1;
  CHECK_RC(connect_tls_code(c, c->cctx, "localhost", &r, &w, &code), 0);
  CHECK(code == X509_V_OK);
  if (w) {
    CHECK_RC(asyncio_stream_write(w, "x\n", 2), 0);
    const char *line;
    CHECK(asyncio_stream_readline(r, &line) == 2);
    pair_close(r, w, -1);
  }
  WAIT_UNTIL(c->handlers == 1);
  unserve(srv);
  return 0;
}

TEST(streams_verify_failures) { run_tls(refused_main); }

/* ---- bulk transfer with drain() back-pressure ------------------------------------------- */

#define BIG ((size_t)8 * 1024 * 1024)

/* Reads everything, then sends it all back (reversed roles of flow control). */
static int bulk_handler(reader_t *r, writer_t *w, void *arg) {
  sctx_t *c = arg;
  c->handlers++;
  uint64_t sum = FNV_INIT;
  size_t got = 0;
  char buf[65536];
  while (got < BIG) {
    ssize_t n = asyncio_stream_read(r, buf, sizeof buf);
    if (n <= 0) break;
    sum = fnv(sum, buf, (size_t)n);
    got += (size_t)n;
  }
  c->big = got;
  c->got_sum = sum;
  /* Back the same bytes again, 64 KiB at a time, draining each. */
  for (size_t off = 0; off < BIG; off += sizeof buf) {
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (char)((off + i) * 131 % 251);
    int rc = asyncio_stream_write(w, buf, sizeof buf);
    if (rc == 0) rc = asyncio_stream_drain(w);
    if (rc) {
      c->server_rc = rc;
      break;
    }
  }
  return 0;
}

static int bulk_main(void *arg) {
  sctx_t *c = arg;
  asyncio_server_t *srv = serve(c, bulk_handler, true);
  if (!srv) return -1;
  reader_t *r;
  writer_t *w;
  CHECK_RC(connect_tls(c, c->cctx, "localhost", &r, &w), 0);
  if (!w) return -1;
  static char buf[65536];
  uint64_t sum = FNV_INIT;
  size_t max_buffered = 0;
  for (size_t off = 0; off < BIG; off += sizeof buf) {
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (char)((off + i) * 131 % 251);
    sum = fnv(sum, buf, sizeof buf);
    CHECK_RC(asyncio_stream_write(w, buf, sizeof buf), 0);
    size_t b = asyncio_transport_get_write_buffer_size(asyncio_stream_transport(w));
    if (b > max_buffered) max_buffered = b;
    CHECK_RC(asyncio_stream_drain(w), 0);
  }
  /* drain() kept the TLS write buffer near its 512 KiB high-water mark. */
  CHECK(max_buffered <= (size_t)512 * 1024 + sizeof buf);
  size_t got = 0;
  uint64_t back = FNV_INIT;
  while (got < BIG) {
    ssize_t n = asyncio_stream_read(r, buf, sizeof buf);
    if (n <= 0) break;
    back = fnv(back, buf, (size_t)n);
    got += (size_t)n;
  }
  CHECK(got == BIG);
  CHECK(back == sum);
  CHECK(c->big == BIG && c->got_sum == sum);
  CHECK(c->server_rc == 0);
  pair_close(r, w, -1);
  unserve(srv);
  return 0;
}

TEST(streams_bulk_both_ways) { run_tls(bulk_main); }

/* ---- StreamWriter.start_tls ------------------------------------------------------------- */

/* STARTTLS: a plaintext command, an answer, then both ends upgrade. */
static int starttls_handler(reader_t *r, writer_t *w, void *arg) {
  sctx_t *c = arg;
  c->handlers++;
  const char *line;
  ssize_t n = asyncio_stream_readline(r, &line);
  CHECK(n == 9 && line && memcmp(line, "STARTTLS\n", 9) == 0);
  CHECK_RC(asyncio_stream_write(w, "OK\n", 3), 0);
  asyncio_start_tls_options_t o = {.server_side = false}; /* derived: this is the server */
  c->upgrade_rc = asyncio_stream_start_tls(w, c->sctx, &o);
  if (c->upgrade_rc) return 0;
  CHECK(asyncio_transport_get_ssl_object(asyncio_stream_transport(w)) != NULL);
  n = asyncio_stream_readline(r, &line);
  CHECK(n == 7 && line && memcmp(line, "secret\n", 7) == 0);
  CHECK_RC(asyncio_stream_write(w, "sealed\n", 7), 0);
  CHECK_RC(asyncio_stream_drain(w), 0);
  n = asyncio_stream_readline(r, &line); /* the client's close_notify */
  c->server_rc = (int)n;
  return 0;
}

/* A plain connection to the STARTTLS server, up to its "OK": the server, or NULL. */
static asyncio_server_t *starttls_prelude(sctx_t *c, reader_t **r, writer_t **w) {
  asyncio_server_t *srv = serve(c, starttls_handler, false);
  if (!srv) return NULL;
  CHECK_RC(asyncio_open_connection("127.0.0.1", c->port, NULL, r, w), 0);
  if (!*w) {
    unserve(srv);
    return NULL;
  }
  CHECK_RC(asyncio_stream_write(*w, "STARTTLS\n", 9), 0);
  const char *line;
  CHECK(asyncio_stream_readline(*r, &line) == 3);
  return srv;
}

static int starttls_main(void *arg) {
  sctx_t *c = arg;
  reader_t *r;
  writer_t *w;
  asyncio_server_t *srv = starttls_prelude(c, &r, &w);
  if (!srv) return -1;
  asyncio_transport_t *plain = asyncio_stream_transport(w);
  CHECK(asyncio_transport_get_ssl_object(plain) == NULL);
  const char *line;
  long code = -1;
  asyncio_start_tls_options_t o = {.server_hostname = "localhost", .ssl_verify_code = &code};
  CHECK_RC(asyncio_stream_start_tls(w, NULL, &o), -EINVAL);
  CHECK(code == X509_V_OK); /* cleared, also by a call that is refused */
  code = -1;
  CHECK_RC(asyncio_stream_start_tls(w, c->cctx, &o), 0);
  CHECK(code == X509_V_OK);
  asyncio_transport_t *t = asyncio_stream_transport(w);
  CHECK(t != plain && asyncio_transport_get_ssl_object(t) != NULL);
  CHECK_RC(asyncio_stream_write(w, "secret\n", 7), 0);
  CHECK(asyncio_stream_readline(r, &line) == 7);
  if (line) CHECK(memcmp(line, "sealed\n", 7) == 0);
  CHECK_RC(asyncio_stream_close(w), 0);
  CHECK_RC(asyncio_stream_wait_closed(w), 0);
  WAIT_UNTIL(c->handlers == 1 && c->upgrade_rc == 0 && c->server_rc == 0);
  pair_close(r, w, -1);
  unserve(srv);
  return 0;
}

TEST(start_tls_upgrade) { run_tls(starttls_main); }

/* The client does not trust the server: both upgrades fail, the streams end. */
static int starttls_bad_main(void *arg) {
  sctx_t *c = arg;
  c->upgrade_rc = 1;
  reader_t *r;
  writer_t *w;
  asyncio_server_t *srv = starttls_prelude(c, &r, &w);
  if (!srv) return -1;
  long code = -1;
  asyncio_start_tls_options_t o = {.server_hostname = "localhost", .ssl_verify_code = &code};
  CHECK_RC(asyncio_stream_start_tls(w, c->bad, &o), ASYNCIO_ESSLCERTVERIFY);
  CHECK(code == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  /* The connection ended with that error; the stream says so, and nothing is left over. */
  CHECK_RC(asyncio_stream_wait_closed(w), ASYNCIO_ESSLCERTVERIFY);
  CHECK(asyncio_stream_transport(w) == NULL);
  WAIT_UNTIL(c->handlers == 1 && c->upgrade_rc != 1);
  CHECK(c->upgrade_rc < 0);
  pair_close(r, w, -1);
  unserve(srv);
  return 0;
}

TEST(start_tls_refused) { run_tls(starttls_bad_main); }

/*
 * TLS in TLS with streams (an HTTPS proxy's CONNECT, say): both ends
 * already speak TLS when the STARTTLS exchange runs, and upgrade their TLS
 * streams again; the handler's side is the server, as derived.
 */
static int starttls_nested_main(void *arg) {
  sctx_t *c = arg;
  SSL_CTX *inner = tls_client_ctx(&c->pki, 0);
  asyncio_server_t *srv = serve(c, starttls_handler, true);
  if (!srv) return -1;
  reader_t *r;
  writer_t *w;
  CHECK_RC(connect_tls(c, c->cctx, "localhost", &r, &w), 0);
  if (!w) return -1;
  asyncio_transport_t *outer = asyncio_stream_transport(w);
  SSL *outer_ssl = asyncio_transport_get_ssl_object(outer);
  CHECK(outer_ssl != NULL);
  CHECK_RC(asyncio_stream_write(w, "STARTTLS\n", 9), 0);
  const char *line;
  CHECK(asyncio_stream_readline(r, &line) == 3);
  asyncio_start_tls_options_t o = {.server_hostname = "localhost"};
  CHECK_RC(asyncio_stream_start_tls(w, inner, &o), 0);
  asyncio_transport_t *t = asyncio_stream_transport(w);
  SSL *inner_ssl = asyncio_transport_get_ssl_object(t);
  CHECK(t != outer && inner_ssl != NULL && inner_ssl != outer_ssl);
  CHECK(asyncio_transport_get_sslcontext(t) == inner);
  CHECK(asyncio_transport_get_fd(t) >= 0);
  CHECK_RC(asyncio_stream_write(w, "secret\n", 7), 0);
  CHECK(asyncio_stream_readline(r, &line) == 7);
  if (line) CHECK(memcmp(line, "sealed\n", 7) == 0);
  CHECK_RC(asyncio_stream_close(w), 0);
  CHECK_RC(asyncio_stream_wait_closed(w), 0);
  WAIT_UNTIL(c->handlers == 1 && c->upgrade_rc == 0 && c->server_rc == 0);
  pair_close(r, w, -1);
  unserve(srv);
  SSL_CTX_free(inner);
  return 0;
}

TEST(start_tls_over_tls) { run_tls(starttls_nested_main); }

/* start_tls while another task waits on the reader: refused. */
static int waiting_reader(void *arg) {
  reader_t *r = arg;
  char b[8];
  return (int)asyncio_stream_read(r, b, sizeof b);
}

static int busy_main(void *arg) {
  sctx_t *c = arg;
  (void)c;
  reader_t *r;
  writer_t *w;
  int raw;
  CHECK_RC(pair_open(0, &r, &w, &raw), 0);
  if (!w) return -1;
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, waiting_reader, r, NULL), 0);
  CHECK_RC(asyncio_sleep(0), 0);
  CHECK_RC(asyncio_stream_start_tls(w, c->cctx, NULL), ASYNCIO_EINVALIDSTATE);
  asyncio_task_cancel(t, NULL);
  CHECK_RC(asyncio_await(t, NULL), -ECANCELED);
  asyncio_task_free(t);
  pair_close(r, w, raw);
  return 0;
}

TEST(start_tls_reader_busy) { run_tls(busy_main); }

/* ---- failed handshakes leave nothing behind on the server ----------------------------- */

static int never_called(reader_t *r, writer_t *w, void *arg) {
  sctx_t *c = arg;
  c->handlers++;
  return 0;
}

static int failed_handshakes_main(void *arg) {
  sctx_t *c = arg;
  asyncio_server_t *srv = serve(c, never_called, true);
  if (!srv) return -1;
  reader_t *r;
  writer_t *w;
  /* One first, so pools the loop keeps are grown before counting. */
  CHECK_RC(connect_tls(c, c->bad, "localhost", &r, &w), ASYNCIO_ESSLCERTVERIFY);
  CHECK_RC(asyncio_sleep(0.01), 0);
  long base = harness_live_allocs();
  for (int i = 0; i < 20; i++)
    CHECK_RC(connect_tls(c, c->bad, "localhost", &r, &w), ASYNCIO_ESSLCERTVERIFY);
  /* Each server-side connection ends after its client's alert: all memory comes back. */
  WAIT_UNTIL(harness_live_allocs() <= base);
  CHECK(c->handlers == 0);
  unserve(srv);
  return 0;
}

TEST(failed_handshakes_leave_nothing) { run_tls(failed_handshakes_main); }

/* ---- TLS over sockets the caller made: create_connection(sock=) and connect_accepted_socket */

typedef struct sock_side {
  sctx_t *c;
  int fd;
  int rc;
  peer_t peer;
  asyncio_transport_t *t;
} sock_side_t;

static int accepted_side(void *arg) {
  sock_side_t *s = arg;
  asyncio_connection_options_t co = {.ssl = s->c->sctx};
  s->peer.echo = true;
  s->rc = asyncio_loop_connect_accepted_socket(asyncio_get_running_loop(), peer_factory, &s->peer,
                                               s->fd, &co, &s->t, NULL);
  return 0;
}

static int given_sock_main(void *arg) {
  sctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  sock_side_t srv = {.c = c, .fd = sv[1], .rc = 1};
  asyncio_task_t *task;
  CHECK_RC(asyncio_create_task(&task, accepted_side, &srv, NULL), 0);
  /* No host: server_hostname is required with sock=, and refused by the accepting side. */
  peer_t cli = {0};
  asyncio_transport_t *t = NULL;
  asyncio_connection_options_t co = {.sock = sv[0], .use_sock = true, .ssl = c->cctx};
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &cli, NULL, 0, &co, &t, NULL),
           -EINVAL);
  asyncio_connection_options_t bad = {.ssl = c->sctx, .server_hostname = "localhost"};
  CHECK_RC(asyncio_loop_connect_accepted_socket(loop, peer_factory, &cli, sv[1], &bad, &t, NULL),
           -EINVAL);
  co.server_hostname = "localhost";
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &cli, NULL, 0, &co, &t, NULL), 0);
  CHECK_RC(asyncio_await(task, NULL), 0);
  asyncio_task_free(task);
  CHECK(srv.rc == 0 && srv.t != NULL && srv.peer.made == 1);
  if (!t || !srv.t) return -1;
  CHECK(asyncio_transport_get_ssl_object(srv.t) != NULL);
  CHECK(SSL_is_server(asyncio_transport_get_ssl_object(srv.t)));
  CHECK_RC(asyncio_transport_write(t, "ping", 4), 0);
  WAIT_UNTIL(cli.nrecv == 4);
  CHECK(memcmp(cli.data, "ping", 4) == 0);
  CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(cli.lost == 1 && srv.peer.lost == 1);
  CHECK(cli.lost_err == 0 && srv.peer.lost_err == 0 && srv.peer.eofs == 1);
  return 0;
}

TEST(tls_over_given_sockets) { run_tls(given_sock_main); }

/* ---- a server freed while a connection is still in its handshake ------------------------ */

static int g_accepted;

static int counting_accept4(int fd, struct sockaddr *a, socklen_t *l, int fl) {
  int c = accept4(fd, a, l, fl);
  if (c >= 0) g_accepted++;
  return c;
}

/*
 * start_server's factory argument went with the server, yet a connection
 * accepted before the free called the factory with it once its handshake
 * ended.  After asyncio_server_free no factory call may come: such a
 * connection is aborted, and its handler never runs.
 */
static int freed_mid_handshake_main(void *arg) {
  sctx_t *c = arg;
  asyncio_server_t *srv = serve(c, line_echo, true);
  if (!srv) return -1;
  asyncio__sys.accept4 = counting_accept4;
  struct sockaddr_in sin = {0};
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)c->port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK(connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0); /* the kernel completes it */
  WAIT_UNTIL(g_accepted == 1);
  CHECK_RC(asyncio_server_free(srv), 0);
  asyncio_connection_options_t co = {
      .sock = fd, .use_sock = true, .ssl = c->cctx, .server_hostname = "localhost"};
  asyncio_stream_options_t o = {.connection = &co};
  reader_t *r;
  writer_t *w;
  int rc = asyncio_open_connection(NULL, 0, &o, &r, &w);
  if (rc == 0) {
    /* TLS 1.3: the client may finish before the server has read its Finished. */
    char b[8];
    CHECK(asyncio_stream_read(r, b, sizeof b) <= 0);
    pair_close(r, w, -1);
  }
  CHECK(c->handlers == 0);
  return 0;
}

TEST(server_freed_during_handshake) { run_tls(freed_mid_handshake_main); }

/* ---- close() right after a large write: every byte still arrives -------------------------- */

#define BURST ((size_t)4 * 1024 * 1024)

/* Writes BURST bytes in one call (no drain), then returns: the library closes the writer. */
static int burst_handler(reader_t *r, writer_t *w, void *arg) {
  sctx_t *c = arg;
  c->handlers++;
  char *buf = malloc(BURST);
  if (!buf) return -ENOMEM;
  for (size_t i = 0; i < BURST; i++) buf[i] = (char)(i * 7 % 253);
  CHECK_RC(asyncio_stream_write(w, buf, BURST), 0);
  free(buf);
  /* Plaintext the socket could not take yet is still queued: close must send it first. */
  CHECK(asyncio_transport_get_write_buffer_size(asyncio_stream_transport(w)) > 0);
  return 0;
}

static int burst_main(void *arg) {
  sctx_t *c = arg;
  asyncio_server_t *srv = serve(c, burst_handler, true);
  if (!srv) return -1;
  reader_t *r;
  writer_t *w;
  CHECK_RC(connect_tls(c, c->cctx, "localhost", &r, &w), 0);
  if (!w) return -1;
  static char buf[65536];
  size_t got = 0;
  bool same = true;
  for (;;) {
    ssize_t n = asyncio_stream_read(r, buf, sizeof buf);
    if (n <= 0) {
      CHECK(n == 0); /* the server's close_notify, after the data */
      break;
    }
    for (ssize_t i = 0; i < n; i++) same = same && buf[i] == (char)((got + (size_t)i) * 7 % 253);
    got += (size_t)n;
  }
  CHECK(got == BURST);
  CHECK(same);
  WAIT_UNTIL(c->handlers == 1);
  pair_close(r, w, -1);
  unserve(srv);
  return 0;
}

TEST(close_after_large_write_sends_everything) { run_tls(burst_main); }

/* ---- short sends, short receives and EINTR under the TLS records ---------------------- */

static unsigned g_fault_calls;

static ssize_t faulty_send(int fd, const void *b, size_t n, int fl) {
  if (++g_fault_calls % 3 == 0) {
    errno = EINTR;
    return -1;
  }
  if (g_fault_calls % 5 == 0) {
    errno = EAGAIN;
    return -1;
  }
  return send(fd, b, n > 3001 ? 3001 : n, fl);
}

static ssize_t faulty_sendmsg(int fd, const struct msghdr *m, int fl) {
  if (++g_fault_calls % 3 == 0) {
    errno = EINTR;
    return -1;
  }
  struct msghdr mm = *m;
  struct iovec v = m->msg_iov[0];
  if (v.iov_len > 2999) v.iov_len = 2999;
  mm.msg_iov = &v;
  mm.msg_iovlen = 1;
  return sendmsg(fd, &mm, fl);
}

static ssize_t faulty_recv(int fd, void *b, size_t n, int fl) {
  if (++g_fault_calls % 4 == 0) {
    errno = EINTR;
    return -1;
  }
  return recv(fd, b, n > 1777 ? 1777 : n, fl); /* records split at odd places */
}

typedef struct fault_reader {
  reader_t *r;
  size_t want, got;
  uint64_t sum;
} fault_reader_t;

static int fault_read_task(void *arg) {
  fault_reader_t *fr = arg;
  static char buf[65536];
  while (fr->got < fr->want) {
    ssize_t n = asyncio_stream_read(fr->r, buf, sizeof buf);
    if (n <= 0) return n < 0 ? (int)n : -EPIPE;
    fr->sum = fnv(fr->sum, buf, (size_t)n);
    fr->got += (size_t)n;
  }
  return 0;
}

static int echo_chunks(reader_t *r, writer_t *w, void *arg) {
  sctx_t *c = arg;
  c->handlers++;
  char buf[10000];
  for (;;) {
    ssize_t n = asyncio_stream_read(r, buf, sizeof buf);
    if (n <= 0) break;
    if (asyncio_stream_write(w, buf, (size_t)n) < 0 || asyncio_stream_drain(w) < 0) break;
  }
  c->handlers_done++;
  return 0;
}

static int faults_main(void *arg) {
  sctx_t *c = arg;
  asyncio_server_t *srv = serve(c, echo_chunks, true);
  if (!srv) return -1;
  reader_t *r;
  writer_t *w;
  CHECK_RC(connect_tls(c, c->cctx, "localhost", &r, &w), 0);
  if (!w) return -1;
  asyncio__sys_t saved = asyncio__sys;
  asyncio__sys.send = faulty_send;
  asyncio__sys.sendmsg = faulty_sendmsg;
  asyncio__sys.recv = faulty_recv;
  enum { TOTAL = 4 * 1024 * 1024, STEP = 65536 };
  fault_reader_t fr = {.r = r, .want = TOTAL, .sum = FNV_INIT};
  asyncio_task_t *task;
  CHECK_RC(asyncio_create_task(&task, fault_read_task, &fr, NULL), 0);
  static char buf[STEP];
  uint64_t sum = FNV_INIT;
  for (size_t off = 0; off < TOTAL; off += STEP) {
    for (size_t i = 0; i < STEP; i++) buf[i] = (char)((off + i) * 13 % 241);
    sum = fnv(sum, buf, STEP);
    CHECK_RC(asyncio_stream_write(w, buf, STEP), 0);
    CHECK_RC(asyncio_stream_drain(w), 0);
  }
  CHECK_RC(asyncio_await(task, NULL), 0);
  asyncio_task_free(task);
  CHECK(fr.got == TOTAL && fr.sum == sum);
  CHECK_RC(asyncio_stream_close(w), 0);
  CHECK_RC(asyncio_stream_wait_closed(w), 0);
  WAIT_UNTIL(c->handlers_done == 1);
  asyncio__sys = saved;
  pair_close(r, w, -1);
  unserve(srv);
  return 0;
}

TEST(short_io_and_eintr_under_tls) { run_tls(faults_main); }
