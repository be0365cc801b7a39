/*
 * test_ssl.c - TLS at the protocol / transport level (include/asyncio/
 * sslproto.h): create_connection / create_server (and their Unix forms)
 * with ssl=, loop.start_tls, against each other and against real
 * `openssl s_server` / `s_client` peers.
 *
 * Python origin: Lib/asyncio/sslproto.py (3.11+) is the spec, and the
 * cases of Lib/test/test_asyncio/test_sslproto.py and test_ssl.py.
 * Certificates are made in the test (tls_helpers.h).  Real sockets on
 * 127.0.0.1, port 0.  No timing is asserted: the small handshake /
 * shutdown timeouts below only make the timeout paths run quickly.
 */
#include "net_helpers.h"
#include "stream_helpers.h"
#include "tls_helpers.h"

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/un.h>
#include <sys/wait.h>

extern char **environ;

typedef struct tctx {
  tls_pki_t pki;
  SSL_CTX *sctx, *cctx;
  pool_t pool;
  peer_t cli;
} tctx_t;

static void tctx_init(tctx_t *c) {
  memset(c, 0, sizeof *c);
  tls_pki_init(&c->pki);
  c->sctx = tls_server_ctx(&c->pki);
  c->cctx = tls_client_ctx(&c->pki, 0);
}

static void tctx_free(tctx_t *c) {
  SSL_CTX_free(c->sctx);
  SSL_CTX_free(c->cctx);
  tls_pki_free(&c->pki);
}

/* Runs fn with a fresh context (static: pools are large), then checks the soft failures. */
static void run_tls(asyncio_coro_fn fn) {
  static tctx_t c;
  tctx_init(&c);
  int rc = run_main(fn, &c);
  tctx_free(&c);
  ASSERT_SOFT(); /* the first failed check says more than the coroutine's result */
  assert_ok(rc);
}

/* A TLS server on 127.0.0.1 (so NULL: the server context, defaults), its pool as the factory. */
static asyncio_server_t *tls_server(tctx_t *c, const asyncio_server_options_t *so, int *port) {
  asyncio_server_options_t d = {.ssl = c->sctx};
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_loop_create_server(asyncio_get_running_loop(), pool_factory, &c->pool,
                                      "127.0.0.1", 0, so ? so : &d, &srv),
           0);
  if (srv) *port = server_port(srv, 0);
  return srv;
}

static int tls_connect(SSL_CTX *ctx, const char *hostname, peer_t *p, int port,
                       asyncio_transport_t **t) {
  asyncio_connection_options_t co = {.ssl = ctx, .server_hostname = hostname};
  return asyncio_loop_create_connection(asyncio_get_running_loop(), peer_factory, p, "127.0.0.1",
                                        port, &co, t, NULL);
}

/* Closes the server, waits for it (and its connections), frees it. */
static void server_done(asyncio_server_t *srv) {
  CHECK_RC(asyncio_server_close(srv), 0);
  CHECK_RC(asyncio_server_wait_closed(srv), 0);
  CHECK_RC(asyncio_server_free(srv), 0);
}

/* ---- child processes (openssl s_server / s_client) ------------------------------------- */

typedef struct child {
  pid_t pid;
  int in, out; /* its stdin (we write) and stdout (we read, non-blocking) */
  char buf[65536];
  size_t n;
} child_t;

static int child_spawn(child_t *ch, char *const argv[]) {
  memset(ch, 0, sizeof *ch);
  ch->pid = -1;
  ch->in = ch->out = -1;
  int pin[2], pout[2];
  if (pipe2(pin, O_CLOEXEC) < 0) return -errno;
  if (pipe2(pout, O_CLOEXEC) < 0) {
    close(pin[0]);
    close(pin[1]);
    return -errno;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
  posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  int rc = posix_spawnp(&ch->pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(pin[0]);
  close(pout[1]);
  if (rc != 0) {
    close(pin[1]);
    close(pout[0]);
    ch->pid = -1;
    return -rc;
  }
  ch->in = pin[1];
  ch->out = pout[0];
  fcntl(ch->out, F_SETFL, fcntl(ch->out, F_GETFL) | O_NONBLOCK);
  return 0;
}

/* Reads what the child wrote so far; returns true (for WAIT_UNTIL) when needle is in it. */
static bool child_has(child_t *ch, const char *needle) {
  for (;;) {
    if (ch->n + 1 >= sizeof ch->buf) break;
    ssize_t k = read(ch->out, ch->buf + ch->n, sizeof ch->buf - 1 - ch->n);
    if (k <= 0) break;
    ch->n += (size_t)k;
  }
  ch->buf[ch->n] = 0;
  return memmem(ch->buf, ch->n, needle, strlen(needle)) != NULL;
}

static bool child_exited(child_t *ch, int *status) {
  if (ch->pid < 0) return true;
  if (waitpid(ch->pid, status, WNOHANG) == ch->pid) {
    ch->pid = -1;
    return true;
  }
  return false;
}

/* Kills (if still running) and reaps the child, and closes the pipes. */
static void child_end(child_t *ch) {
  if (ch->pid > 0) {
    kill(ch->pid, SIGKILL);
    waitpid(ch->pid, NULL, 0);
    ch->pid = -1;
  }
  if (ch->in >= 0) close(ch->in);
  if (ch->out >= 0) close(ch->out);
  ch->in = ch->out = -1;
}

static bool have_openssl_cli(void) {
  const char *path = getenv("PATH");
  char buf[4096];
  if (!path) return false;
  snprintf(buf, sizeof buf, "%s", path);
  for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
    char f[4200];
    snprintf(f, sizeof f, "%s/openssl", d);
    if (access(f, X_OK) == 0) return true;
  }
  return false;
}

/* ---- protocols over TLS both ways ------------------------------------------------ */

static int echo_main(void *arg) {
  tctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  c->pool.tmpl.echo = true;
  asyncio_server_options_t so = {.ssl = c->sctx};
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, "127.0.0.1", 0, &so, &srv), 0);
  if (!srv) return -1;
  int port = server_port(srv, 0);
  asyncio_connection_options_t co = {.ssl = c->cctx, .server_hostname = "localhost"};
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "127.0.0.1", port, &co, &t,
                                          NULL),
           0);
  if (!t) return -1;
  CHECK(c->cli.made == 1);
  CHECK(asyncio_transport_get_ssl_object(t) != NULL);
  CHECK(asyncio_transport_get_sslcontext(t) == c->cctx);
  CHECK(asyncio_transport_get_fd(t) >= 0);
  CHECK(!asyncio_transport_can_write_eof(t));
  CHECK_RC(asyncio_transport_write_eof(t), -EOPNOTSUPP);
  CHECK_RC(asyncio_transport_write(t, "hello", 5), 0);
  WAIT_UNTIL(c->cli.nrecv == 5);
  CHECK(memcmp(c->cli.data, "hello", 5) == 0);
  CHECK_RC(asyncio_transport_close(t), 0);
  CHECK(asyncio_transport_is_closing(t));
  WAIT_UNTIL(c->cli.lost == 1);
  CHECK(c->cli.lost_err == 0);
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].lost == 1);
  CHECK(c->pool.peers[0].eofs == 1);
  CHECK(c->pool.peers[0].lost_err == 0);
  CHECK_RC(asyncio_server_close(srv), 0);
  CHECK_RC(asyncio_server_wait_closed(srv), 0);
  CHECK_RC(asyncio_server_free(srv), 0);
  return 0;
}

TEST(protocol_echo) {
  tctx_t c;
  tctx_init(&c);
  assert_ok(run_main(echo_main, &c));
  tctx_free(&c);
  ASSERT_SOFT();
}

/* ---- 1. our client against openssl s_server ------------------------------------------ */

/*
 * s_server in its plain mode: what the client sends shows on its stdout,
 * what we write to its stdin goes to the client.  Lines must not start
 * with one of its command letters (Q, q, R, r, ...): these start with a
 * digit.  -naccept 1: it exits after the connection.
 */
static int s_server_main(void *arg) {
  tctx_t *c = arg;
  child_t *ch = calloc(1, sizeof *ch);
  char *argv[] = {"openssl", "s_server", "-accept", "127.0.0.1:0", "-naccept", "1", "-cert",
                  c->pki.cert_pem, "-key", c->pki.key_pem, NULL};
  CHECK_RC(child_spawn(ch, argv), 0);
  if (ch->pid < 0) goto out;
  WAIT_UNTIL(child_has(ch, "ACCEPT 127.0.0.1:") && strchr(strstr(ch->buf, "ACCEPT"), '\n'));
  int port = atoi(strstr(ch->buf, "ACCEPT 127.0.0.1:") + strlen("ACCEPT 127.0.0.1:"));
  CHECK(port > 0);
  asyncio_transport_t *t = NULL;
  CHECK_RC(tls_connect(c->cctx, "localhost", &c->cli, port, &t), 0);
  if (!t) goto out;
  CHECK(c->cli.made == 1);
  const char *ping = "0123 ping from asyncio\n";
  CHECK_RC(asyncio_transport_write(t, ping, strlen(ping)), 0);
  WAIT_UNTIL(child_has(ch, ping));
  const char *pong = "4567 pong from openssl s_server\n";
  CHECK(write(ch->in, pong, strlen(pong)) == (ssize_t)strlen(pong));
  WAIT_UNTIL(c->cli.nrecv >= strlen(pong));
  CHECK(c->cli.nrecv == strlen(pong) && memcmp(c->cli.data, pong, strlen(pong)) == 0);
  /* Our close_notify ends its session ("DONE"); it exits (-naccept 1). */
  CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(c->cli.lost == 1);
  CHECK(c->cli.lost_err == 0);
  CHECK(c->cli.eofs <= 1);
  int status = 0;
  WAIT_UNTIL(child_exited(ch, &status));
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
out:
  child_end(ch);
  free(ch);
  return 0;
}

TEST(client_vs_openssl_s_server) {
  if (!have_openssl_cli()) skip();
  static tctx_t c;
  tctx_init(&c);
  assert_int_equal(tls_files(&c.pki), 0);
  assert_ok(run_main(s_server_main, &c));
  tctx_free(&c);
  ASSERT_SOFT();
}

/* ---- 2. openssl s_client against our server ------------------------------------------ */

static int s_client_main(void *arg) {
  tctx_t *c = arg;
  c->pool.tmpl.echo = true;
  int port = 0;
  asyncio_server_t *srv = tls_server(c, NULL, &port);
  if (!srv) return -1;
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  child_t *ch = calloc(1, sizeof *ch);
  char *argv[] = {"openssl",   "s_client", "-connect",  addr,  "-CAfile", c->pki.ca_pem,
                  "-verify_return_error", "-servername", "localhost", "-verify_hostname",
                  "localhost", "-quiet", NULL};
  CHECK_RC(child_spawn(ch, argv), 0);
  if (ch->pid >= 0) {
    const char *line = "0123 hello from s_client\n";
    CHECK(write(ch->in, line, strlen(line)) == (ssize_t)strlen(line));
    WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].nrecv == strlen(line));
    peer_t *p = &c->pool.peers[0];
    CHECK(p->made == 1 && memcmp(p->data, line, strlen(line)) == 0);
    SSL *ssl = asyncio_transport_get_ssl_object(p->t);
    CHECK(ssl != NULL);
    if (ssl) {
      const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
      CHECK(sni && strcmp(sni, "localhost") == 0);
    }
    WAIT_UNTIL(child_has(ch, line)); /* our echo reached its stdout */
    /* Our close_notify: s_client reads end of stream and exits; its EOF ends ours. */
    CHECK_RC(asyncio_transport_close(p->t), 0);
    WAIT_UNTIL(p->lost == 1);
    CHECK(p->lost_err == 0);
    int status = 0;
    WAIT_UNTIL(child_exited(ch, &status));
  }
  child_end(ch);
  free(ch);
  server_done(srv);
  return 0;
}

TEST(openssl_s_client_vs_server) {
  if (!have_openssl_cli()) skip();
  static tctx_t c;
  tctx_init(&c);
  assert_int_equal(tls_files(&c.pki), 0);
  assert_ok(run_main(s_client_main, &c));
  tctx_free(&c);
  ASSERT_SOFT();
}

/* ---- 3. certificate verification ---------------------------------------------------- */

typedef struct vcase {
  int wrong_ca;
  const char *hostname; /* server_hostname; NULL = the host, "127.0.0.1" */
  int expect;
  int sni;              /* the server must see SNI "localhost" (1) or none (0) */
} vcase_t;

/*
 * Each case connects to one server; a failing one must give the client no
 * callback at all and leave the server serving: the good client at the end
 * still gets through, and no pool protocol of a failed handshake saw
 * connection_made or connection_lost.
 */
static int verify_run(tctx_t *c, const vcase_t *cases, int n) {
  int port = 0;
  asyncio_server_t *srv = tls_server(c, NULL, &port);
  if (!srv) return -1;
  SSL_CTX *wrong = tls_client_ctx(&c->pki, 1);
  for (int i = 0; i < n; i++) {
    peer_t p = {0};
    asyncio_transport_t *t = NULL;
    int rc = tls_connect(cases[i].wrong_ca ? wrong : c->cctx, cases[i].hostname, &p, port, &t);
    if (rc != cases[i].expect && !soft_fail[0])
      snprintf(soft_fail, sizeof soft_fail, "case %d (%s): %s, expected %s", i,
               cases[i].hostname ? cases[i].hostname : "NULL", asyncio_errname(rc),
               asyncio_errname(cases[i].expect));
    if (rc == 0) {
      CHECK(p.made == 1 && t != NULL);
      WAIT_UNTIL(c->pool.n == i + 1 && c->pool.peers[i].made == 1);
      SSL *ssl = asyncio_transport_get_ssl_object(c->pool.peers[i].t);
      const char *sni = ssl ? SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) : NULL;
      CHECK(cases[i].sni ? sni && strcmp(sni, "localhost") == 0 : sni == NULL);
      CHECK_RC(asyncio_transport_write(t, "x", 1), 0);
      WAIT_UNTIL(c->pool.peers[i].nrecv == 1);
      CHECK_RC(asyncio_transport_close(t), 0);
      WAIT_UNTIL(p.lost == 1 && c->pool.peers[i].lost == 1);
    } else {
      CHECK(t == NULL);
      /* The server's side of it ends too; let it. */
      WAIT_UNTIL(c->pool.n == i + 1);
      for (int k = 0; k < 20; k++) CHECK_RC(asyncio_sleep(0.001), 0);
      CHECK(p.made == 0 && p.lost == 0 && p.nrecv == 0 && p.eofs == 0);
      CHECK(c->pool.peers[i].made == 0 && c->pool.peers[i].lost == 0);
    }
  }
  /* The server survived. */
  peer_t p = {0};
  asyncio_transport_t *t = NULL;
  CHECK_RC(tls_connect(c->cctx, "localhost", &p, port, &t), 0);
  if (t) {
    WAIT_UNTIL(c->pool.n == n + 1 && c->pool.peers[n].made == 1);
    CHECK_RC(asyncio_transport_close(t), 0);
    WAIT_UNTIL(p.lost == 1 && c->pool.peers[n].lost == 1);
  }
  SSL_CTX_free(wrong);
  server_done(srv);
  return 0;
}

static int verify_wrong_ca_main(void *arg) {
  static const vcase_t cases[] = {
      {1, "localhost", ASYNCIO_ESSLCERTVERIFY, 1},
      {1, "", ASYNCIO_ESSLCERTVERIFY, 0}, /* no name check still checks the chain */
  };
  return verify_run(arg, cases, 2);
}
TEST(verify_wrong_ca) { run_tls(verify_wrong_ca_main); }

static int verify_hostname_main(void *arg) {
  static const vcase_t cases[] = {
      {0, "example.com", ASYNCIO_ESSLCERTVERIFY, 1},
      {0, "localhost", 0, 1},
  };
  return verify_run(arg, cases, 2);
}
TEST(verify_hostname_mismatch) { run_tls(verify_hostname_main); }

/* An IP literal is matched against the IP SANs, and sent as no SNI (RFC 6066). */
static int verify_ip_main(void *arg) {
  static const vcase_t cases[] = {
      {0, "127.0.0.1", 0, 0},
      {0, NULL, 0, 0}, /* server_hostname = host = "127.0.0.1" */
      {0, "127.0.0.2", ASYNCIO_ESSLCERTVERIFY, 0},
      {0, "::1", 0, 0},
      {0, "::2", ASYNCIO_ESSLCERTVERIFY, 0},
  };
  return verify_run(arg, cases, 5);
}
TEST(verify_ip_literal) { run_tls(verify_ip_main); }

/* server_hostname "": no SNI and no name check, but the chain is still verified. */
static int verify_no_name_main(void *arg) {
  static const vcase_t cases[] = {{0, "", 0, 0}};
  return verify_run(arg, cases, 1);
}
TEST(verify_empty_hostname_skips_name_check) { run_tls(verify_no_name_main); }

/* ---- 4. handshake errors ------------------------------------------------------------- */

/* A plain server that accepts and closes at once: -ECONNRESET. */
static int hs_reset_main(void *arg) {
  tctx_t *c = arg;
  c->pool.tmpl.close_on_made = true;
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_loop_create_server(asyncio_get_running_loop(), pool_factory, &c->pool,
                                      "127.0.0.1", 0, NULL, &srv),
           0);
  if (!srv) return -1;
  asyncio_transport_t *t = NULL;
  CHECK_RC(tls_connect(c->cctx, "localhost", &c->cli, server_port(srv, 0), &t), -ECONNRESET);
  CHECK(t == NULL && c->cli.made == 0 && c->cli.lost == 0);
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].lost == 1);
  server_done(srv);
  return 0;
}
TEST(handshake_peer_closes) { run_tls(hs_reset_main); }

/* A plain server that never speaks: ssl_handshake_timeout gives -ECONNABORTED. */
static int hs_timeout_main(void *arg) {
  tctx_t *c = arg;
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_loop_create_server(asyncio_get_running_loop(), pool_factory, &c->pool,
                                      "127.0.0.1", 0, NULL, &srv),
           0);
  if (!srv) return -1;
  asyncio_connection_options_t co = {
      .ssl = c->cctx, .server_hostname = "localhost", .ssl_handshake_timeout = 0.2};
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_connection(asyncio_get_running_loop(), peer_factory, &c->cli,
                                          "127.0.0.1", server_port(srv, 0), &co, &t, NULL),
           -ECONNABORTED);
  CHECK(t == NULL && c->cli.made == 0 && c->cli.lost == 0);
  /* The server's plain protocol saw the ClientHello, then the connection end. */
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].lost == 1);
  CHECK(c->pool.peers[0].nrecv > 0);
  server_done(srv);
  return 0;
}
TEST(handshake_timeout) { run_tls(hs_timeout_main); }

/*
 * A plain client against our TLS server: garbage fails the handshake, and
 * silence runs into the server's handshake timeout.  Either way the server
 * drops the connection and its app protocol never sees connection_made;
 * wait_closed then completes.
 */
static int hs_server_drop_main(void *arg) {
  tctx_t *c = arg;
  asyncio_server_options_t so = {.ssl = c->sctx, .ssl_handshake_timeout = 0.2};
  int port = 0;
  asyncio_server_t *srv = tls_server(c, &so, &port);
  if (!srv) return -1;
  peer_t g = {0}, s = {0};
  asyncio_transport_t *tg = NULL, *ts = NULL;
  CHECK_RC(asyncio_loop_create_connection(asyncio_get_running_loop(), peer_factory, &g,
                                          "127.0.0.1", port, NULL, &tg, NULL),
           0);
  const char *junk = "GET / HTTP/1.0\r\n\r\n";
  if (tg) CHECK_RC(asyncio_transport_write(tg, junk, strlen(junk)), 0);
  CHECK_RC(asyncio_loop_create_connection(asyncio_get_running_loop(), peer_factory, &s,
                                          "127.0.0.1", port, NULL, &ts, NULL),
           0);
  /* Both are dropped: the garbage at once (after a TLS alert), the silent one on the timeout. */
  WAIT_UNTIL(g.lost == 1 && s.lost == 1);
  CHECK(s.nrecv == 0);
  CHECK(c->pool.n == 2);
  for (int i = 0; i < c->pool.n; i++)
    CHECK(c->pool.peers[i].made == 0 && c->pool.peers[i].lost == 0);
  server_done(srv);
  return 0;
}
TEST(handshake_server_drops_plain_clients) { run_tls(hs_server_drop_main); }

