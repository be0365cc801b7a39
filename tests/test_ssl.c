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

static int tls_connect_code(SSL_CTX *ctx, const char *hostname, peer_t *p, int port,
                            asyncio_transport_t **t, long *verify_code) {
  asyncio_connection_options_t co = {
      .ssl = ctx, .server_hostname = hostname, .ssl_verify_code = verify_code};
  return asyncio_loop_create_connection(asyncio_get_running_loop(), peer_factory, p, "127.0.0.1",
                                        port, &co, t, NULL);
}

static int tls_connect(SSL_CTX *ctx, const char *hostname, peer_t *p, int port,
                       asyncio_transport_t **t) {
  return tls_connect_code(ctx, hostname, p, port, t, NULL);
}

/* Closes the server, waits for it (and its connections), frees it. */
static void server_done(asyncio_server_t *srv) {
  CHECK_RC(asyncio_server_close(srv), 0);
  CHECK_RC(asyncio_server_wait_closed(srv), 0);
  CHECK_RC(asyncio_server_free(srv), 0);
}

/* A pseudo-random pattern; any contiguous slice of it is sent. */
#define PAT_PERIOD ((size_t)1 << 20)
#define CHUNK ((size_t)200003)
static unsigned char pattern[PAT_PERIOD + CHUNK];

static void pattern_init(void) {
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < sizeof pattern; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    pattern[i] = (unsigned char)(x >> 24);
  }
}

/* ---- a protocol for bulk transfers, flow control and BufferedProtocol ---------------- */

typedef struct bulk {
  asyncio_transport_t *t;
  int made, lost, lost_err, eofs;
  bool paused;      /* between pause_writing and resume_writing */
  int npause, nresume;
  bool alt_bad;     /* pause_writing / resume_writing did not alternate */
  bool pause_on_made;
  bool echo;
  bool close_on_data; /* close() from the first data_received */
  bool close_on_made; /* close() from connection_made */
  bool pause_on_data; /* pause_reading from each data_received: one delivery per resume */
  SSL_CTX *nest_ctx;  /* TLS in TLS: in connection_made, start_tls(server_side) with it */
  asyncio_transport_t *outer; /* ... on this transport (the one connection_made got) */
  int nest_rc;        /* that start_tls's result; 1 while it runs */
  size_t rw_left;     /* write_more: bytes of the pattern still to write, ... */
  size_t rw_off;      /* ... from here */
  uint64_t rw_sum;    /* what was written */
  int ndata;          /* data_received / buffer_updated calls */
  ssize_t rb_at_data; /* get_read_buffer_size at the last delivery */
  size_t nrecv;
  uint64_t sum;
  bool buffered;    /* BufferedProtocol: get_buffer / buffer_updated */
  char bbuf[1000];  /* small, so that reads fill it and go on */
  int nget;
  bool bad_hint;    /* a hint that is neither -1 nor positive */
  bool got_hint;    /* a positive hint was given */
} bulk_t;

static int nest_server_task(void *arg);

static void bk_made(asyncio_transport_t *t, void *u) {
  bulk_t *b = u;
  b->t = t;
  b->made++;
  b->sum = FNV_INIT;
  if (b->nest_ctx) {
    /* Nothing may be read as plaintext before the upgrade: start_tls resumes. */
    b->outer = t;
    b->nest_rc = 1;
    CHECK_RC(asyncio_transport_pause_reading(t), 0);
    CHECK_RC(asyncio_create_task(NULL, nest_server_task, b, NULL), 0);
  }
  if (b->pause_on_made) CHECK_RC(asyncio_transport_pause_reading(t), 0);
  if (b->close_on_made) CHECK_RC(asyncio_transport_close(t), 0);
}
static void bk_lost(asyncio_transport_t *t, int err, void *u) {
  bulk_t *b = u;
  CHECK(b->t == t || b->t == NULL); /* NULL: an upgrade whose transport it never got */
  b->lost++;
  b->lost_err = err;
  b->t = NULL;
}
static void bk_pause(asyncio_transport_t *t, void *u) {
  bulk_t *b = u;
  if (b->paused) b->alt_bad = true;
  b->paused = true;
  b->npause++;
}
/* Writes the pattern until the transport pauses the protocol or rw_left is used up. */
static void write_more(bulk_t *b, asyncio_transport_t *t) {
  while (b->rw_left > 0 && !b->paused && !b->lost) {
    size_t n = b->rw_left < CHUNK ? b->rw_left : CHUNK;
    const unsigned char *p = pattern + b->rw_off % PAT_PERIOD;
    CHECK_RC(asyncio_transport_write(t, p, n), 0);
    b->rw_sum = fnv(b->rw_sum, p, n);
    b->rw_off += n;
    b->rw_left -= n;
  }
}

static void bk_resume(asyncio_transport_t *t, void *u) {
  bulk_t *b = u;
  if (!b->paused) b->alt_bad = true;
  b->paused = false;
  b->nresume++;
  write_more(b, t); /* from the callback itself, as a protocol may */
}
static void bk_on_data(bulk_t *b, asyncio_transport_t *t, const void *d, size_t n) {
  CHECK(n > 0);
  b->ndata++;
  b->rb_at_data = asyncio_transport_get_read_buffer_size(t);
  b->nrecv += n;
  b->sum = fnv(b->sum, d, n);
  if (b->pause_on_data) CHECK_RC(asyncio_transport_pause_reading(t), 0);
  if (b->echo) CHECK_RC(asyncio_transport_write(t, d, n), 0);
  if (b->close_on_data && !asyncio_transport_is_closing(t)) CHECK_RC(asyncio_transport_close(t), 0);
}
static void bk_data(asyncio_transport_t *t, const void *d, size_t n, void *u) {
  bk_on_data(u, t, d, n);
}
static bool bk_eof(asyncio_transport_t *t, void *u) {
  ((bulk_t *)u)->eofs++;
  return false;
}
static int bk_get_buffer(asyncio_transport_t *t, ssize_t hint, void **buf, size_t *len, void *u) {
  bulk_t *b = u;
  b->nget++;
  if (hint == 0 || hint < -1) b->bad_hint = true;
  if (hint > 0) b->got_hint = true;
  *buf = b->bbuf;
  *len = sizeof b->bbuf;
  return 0;
}
static void bk_updated(asyncio_transport_t *t, size_t n, void *u) {
  bulk_t *b = u;
  CHECK(n <= sizeof b->bbuf);
  bk_on_data(b, t, b->bbuf, n);
}

static const asyncio_protocol_t bulk_proto = {
    .connection_made = bk_made,
    .connection_lost = bk_lost,
    .pause_writing = bk_pause,
    .resume_writing = bk_resume,
    .data_received = bk_data,
    .eof_received = bk_eof,
};
static const asyncio_protocol_t bulk_buffered_proto = {
    .connection_made = bk_made,
    .connection_lost = bk_lost,
    .pause_writing = bk_pause,
    .resume_writing = bk_resume,
    .eof_received = bk_eof,
    .get_buffer = bk_get_buffer,
    .buffer_updated = bk_updated,
};

static int bulk_factory(void *arg, const asyncio_protocol_t **proto, void **inst) {
  bulk_t *b = arg;
  *proto = b->buffered ? &bulk_buffered_proto : &bulk_proto;
  *inst = b;
  return 0;
}

/*
 * A writer: `total` bytes of the pattern through b's transport, in chunks,
 * waiting while the protocol is paused for writing.  Records the checksum
 * of what it wrote and the largest write buffer it saw.
 */
typedef struct bwriter {
  bulk_t *b;
  size_t total, sent, maxbuf;
  uint64_t sum;
} bwriter_t;

static int writer_task(void *arg) {
  bwriter_t *w = arg;
  w->sum = FNV_INIT;
  while (w->sent < w->total) {
    WAIT_UNTIL(!w->b->paused || w->b->lost);
    if (w->b->lost) return -EPIPE;
    size_t n = w->total - w->sent < CHUNK ? w->total - w->sent : CHUNK;
    const unsigned char *p = pattern + (w->sent % PAT_PERIOD);
    CHECK_RC(asyncio_transport_write(w->b->t, p, n), 0);
    w->sum = fnv(w->sum, p, n);
    w->sent += n;
    size_t sz = asyncio_transport_get_write_buffer_size(w->b->t);
    if (sz > w->maxbuf) w->maxbuf = sz;
  }
  return 0;
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

/* How many times needle occurs in what the child wrote so far. */
static int child_count(child_t *ch, const char *needle) {
  (void)child_has(ch, needle);
  int n = 0;
  for (const char *p = ch->buf; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
  return n;
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

/*
 * Starts an openssl s_server (argv) on 127.0.0.1:0 and waits for the port it
 * reports: the port, or <= 0 (a soft failure is recorded).
 */
static int s_server_start(child_t *ch, char *const argv[]) {
  CHECK_RC(child_spawn(ch, argv), 0);
  if (ch->pid < 0) return -1;
  WAIT_UNTIL(child_has(ch, "ACCEPT 127.0.0.1:") && strchr(strstr(ch->buf, "ACCEPT"), '\n'));
  int port = atoi(strstr(ch->buf, "ACCEPT 127.0.0.1:") + strlen("ACCEPT 127.0.0.1:"));
  CHECK(port > 0);
  return port;
}

/* run_tls for the cases with an openssl CLI peer: PEM files too; skipped without the CLI. */
static void run_cli(asyncio_coro_fn fn) {
  if (!have_openssl_cli()) skip();
  static tctx_t c;
  tctx_init(&c);
  assert_int_equal(tls_files(&c.pki), 0);
  assert_ok(run_main(fn, &c));
  tctx_free(&c);
  ASSERT_SOFT();
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
  int port = s_server_start(ch, argv);
  if (port <= 0) goto out;
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

TEST(client_vs_openssl_s_server) { run_cli(s_server_main); }

/*
 * A new handshake in the middle of the connection, started by s_server
 * from its stdin: "r" renegotiates (TLS 1.2), "k" / "K" send a TLS 1.3
 * KeyUpdate (K asks ours to update too).  Our SSL_read then meets
 * handshake records and must answer them (the records it writes while
 * reading go out with the next flush); data keeps flowing both ways.
 */
typedef struct rekey {
  tctx_t *c;
  const char *version; /* -tls1_2 / -tls1_3 */
  const char *command;
} rekey_t;

static int rekey_main(void *arg) {
  rekey_t *rk = arg;
  tctx_t *c = rk->c;
  child_t *ch = calloc(1, sizeof *ch);
  /* stdbuf: s_server reports the commands it ran with printf, which a pipe would hold back. */
  char *argv[] = {"stdbuf", "-oL", "openssl", "s_server", (char *)rk->version, "-accept",
                  "127.0.0.1:0", "-naccept", "1", "-cert", c->pki.cert_pem, "-key",
                  c->pki.key_pem, NULL};
  int port = s_server_start(ch, argv);
  if (port <= 0) goto out;
  asyncio_transport_t *t = NULL;
  CHECK_RC(tls_connect(c->cctx, "localhost", &c->cli, port, &t), 0);
  if (!t) goto out;
  SSL *ssl = asyncio_transport_get_ssl_object(t);
  int before = ssl ? (int)SSL_total_renegotiations(ssl) : 0;
  for (int round = 0; round < 3; round++) {
    char cmd[8];
    snprintf(cmd, sizeof cmd, "%s\n", rk->command);
    CHECK(write(ch->in, cmd, strlen(cmd)) == (ssize_t)strlen(cmd));
    /* s_server drops the rest of a stdin read that held a command: wait for it to act. */
    WAIT_UNTIL(child_count(ch, "SSL_do_handshake -> ") == round + 1);
    char line[64];
    int k = snprintf(line, sizeof line, "%d after %s from s_server\n", round, rk->command);
    size_t had = c->cli.nrecv;
    CHECK(write(ch->in, line, (size_t)k) == k);
    WAIT_UNTIL(c->cli.nrecv >= had + (size_t)k);
    CHECK(c->cli.ndata >= (size_t)k &&
          memcmp(c->cli.data + c->cli.ndata - k, line, (size_t)k) == 0);
    k = snprintf(line, sizeof line, "%d after %s from asyncio\n", round, rk->command);
    CHECK_RC(asyncio_transport_write(t, line, (size_t)k), 0);
    WAIT_UNTIL(child_has(ch, line));
  }
  if (ssl && strcmp(rk->command, "r") == 0) CHECK((int)SSL_total_renegotiations(ssl) > before);
  CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(c->cli.lost == 1);
  CHECK(c->cli.lost_err == 0);
  int status = 0;
  WAIT_UNTIL(child_exited(ch, &status));
out:
  child_end(ch);
  free(ch);
  return 0;
}

static void run_rekey(const char *version, const char *command) {
  if (!have_openssl_cli()) skip();
  static tctx_t c;
  tctx_init(&c);
  assert_int_equal(tls_files(&c.pki), 0);
  rekey_t rk = {&c, version, command};
  assert_ok(run_main(rekey_main, &rk));
  tctx_free(&c);
  ASSERT_SOFT();
}

TEST(s_server_renegotiates_tls12) { run_rekey("-tls1_2", "r"); }
TEST(s_server_key_update_tls13) { run_rekey("-tls1_3", "k"); }
TEST(s_server_key_update_requested_tls13) { run_rekey("-tls1_3", "K"); }

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

TEST(openssl_s_client_vs_server) { run_cli(s_client_main); }

/* ---- 3. certificate verification ---------------------------------------------------- */

typedef struct vcase {
  int wrong_ca;
  const char *hostname; /* server_hostname; NULL = the host, "127.0.0.1" */
  int expect;
  int sni;              /* the server must see SNI "localhost" (1) or none (0) */
  long code;            /* ssl_verify_code afterwards (X509_V_OK when it connected) */
} vcase_t;

/* A failed handshake, with (verify_code) or without the ssl_verify_code pointer. */
static void verify_fail_case(SSL_CTX *ctx, const vcase_t *v, int i, int port,
                             long *verify_code) {
  peer_t p = {0};
  asyncio_transport_t *t = NULL;
  int rc = tls_connect_code(ctx, v->hostname, &p, port, &t, verify_code);
  if (rc != v->expect && !soft_fail[0])
    snprintf(soft_fail, sizeof soft_fail, "case %d (%s): %s, expected %s", i,
             v->hostname ? v->hostname : "NULL", asyncio_errname(rc), asyncio_errname(v->expect));
  if (verify_code && *verify_code != v->code && !soft_fail[0])
    snprintf(soft_fail, sizeof soft_fail, "case %d: verify code %ld (%s), expected %ld", i,
             *verify_code, X509_verify_cert_error_string(*verify_code), v->code);
  CHECK(t == NULL);
  /* The server's side of it ends too; let it.  Its factory never ran. */
  for (int k = 0; k < 20; k++) CHECK_RC(asyncio_sleep(0.001), 0);
  CHECK(p.made == 0 && p.lost == 0 && p.nrecv == 0 && p.eofs == 0);
}

/*
 * Each case connects to one server; a failing one must give the client no
 * callback at all and leave the server serving: the good client at the end
 * still gets through, and no pool protocol of a failed handshake saw
 * connection_made or connection_lost.  A failing case runs twice, the
 * second time without an ssl_verify_code pointer.
 */
static int verify_run(tctx_t *c, const vcase_t *cases, int n) {
  int port = 0;
  asyncio_server_t *srv = tls_server(c, NULL, &port);
  if (!srv) return -1;
  SSL_CTX *wrong = tls_client_ctx(&c->pki, 1);
  int made = 0; /* the server's factory runs only for handshakes that succeed */
  for (int i = 0; i < n; i++) {
    SSL_CTX *ctx = cases[i].wrong_ca ? wrong : c->cctx;
    if (cases[i].expect != 0) {
      long code = -1; /* stale: the call must overwrite it */
      verify_fail_case(ctx, &cases[i], i, port, &code);
      verify_fail_case(ctx, &cases[i], i, port, NULL);
      CHECK(c->pool.n == made);
      continue;
    }
    peer_t p = {0};
    asyncio_transport_t *t = NULL;
    long code = -1;
    int rc = tls_connect_code(ctx, cases[i].hostname, &p, port, &t, &code);
    if (rc != 0 && !soft_fail[0])
      snprintf(soft_fail, sizeof soft_fail, "case %d (%s): %s, expected success", i,
               cases[i].hostname ? cases[i].hostname : "NULL", asyncio_errname(rc));
    CHECK(code == X509_V_OK);
    if (rc == 0) {
      CHECK(p.made == 1 && t != NULL);
      int k = made++;
      WAIT_UNTIL(c->pool.n == k + 1 && c->pool.peers[k].made == 1);
      SSL *ssl = asyncio_transport_get_ssl_object(c->pool.peers[k].t);
      const char *sni = ssl ? SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) : NULL;
      CHECK(cases[i].sni ? sni && strcmp(sni, "localhost") == 0 : sni == NULL);
      CHECK_RC(asyncio_transport_write(t, "x", 1), 0);
      WAIT_UNTIL(c->pool.peers[k].nrecv == 1);
      CHECK_RC(asyncio_transport_close(t), 0);
      WAIT_UNTIL(p.lost == 1 && c->pool.peers[k].lost == 1);
    }
  }
  /* The server survived. */
  peer_t p = {0};
  asyncio_transport_t *t = NULL;
  CHECK_RC(tls_connect(c->cctx, "localhost", &p, port, &t), 0);
  if (t) {
    WAIT_UNTIL(c->pool.n == made + 1 && c->pool.peers[made].made == 1);
    CHECK_RC(asyncio_transport_close(t), 0);
    WAIT_UNTIL(p.lost == 1 && c->pool.peers[made].lost == 1);
  }
  SSL_CTX_free(wrong);
  server_done(srv);
  return 0;
}

static int verify_wrong_ca_main(void *arg) {
  static const vcase_t cases[] = {
      {1, "localhost", ASYNCIO_ESSLCERTVERIFY, 1, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY},
      /* no name check still checks the chain */
      {1, "", ASYNCIO_ESSLCERTVERIFY, 0, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY},
  };
  return verify_run(arg, cases, 2);
}
TEST(verify_wrong_ca) { run_tls(verify_wrong_ca_main); }

static int verify_hostname_main(void *arg) {
  static const vcase_t cases[] = {
      {0, "example.com", ASYNCIO_ESSLCERTVERIFY, 1, X509_V_ERR_HOSTNAME_MISMATCH},
      {0, "localhost", 0, 1, X509_V_OK},
  };
  return verify_run(arg, cases, 2);
}
TEST(verify_hostname_mismatch) { run_tls(verify_hostname_main); }

/* An IP literal is matched against the IP SANs, and sent as no SNI (RFC 6066). */
static int verify_ip_main(void *arg) {
  static const vcase_t cases[] = {
      {0, "127.0.0.1", 0, 0, X509_V_OK},
      {0, NULL, 0, 0, X509_V_OK}, /* server_hostname = host = "127.0.0.1" */
      {0, "127.0.0.2", ASYNCIO_ESSLCERTVERIFY, 0, X509_V_ERR_IP_ADDRESS_MISMATCH},
      {0, "::1", 0, 0, X509_V_OK},
      {0, "::2", ASYNCIO_ESSLCERTVERIFY, 0, X509_V_ERR_IP_ADDRESS_MISMATCH},
  };
  return verify_run(arg, cases, 5);
}
TEST(verify_ip_literal) { run_tls(verify_ip_main); }

/* server_hostname "": no SNI and no name check, but the chain is still verified. */
static int verify_no_name_main(void *arg) {
  static const vcase_t cases[] = {{0, "", 0, 0, X509_V_OK}};
  return verify_run(arg, cases, 1);
}
TEST(verify_empty_hostname_skips_name_check) { run_tls(verify_no_name_main); }

/* ---- ssl=True: the loop's default context ---------------------------------------------- */

/*
 * ssl_default verifies against OpenSSL's default trust store, which
 * SSL_CERT_FILE replaces: the test's CA there, and the default context
 * trusts the test server.  One context serves the loop's connections.
 */
static int ssl_default_main(void *arg) {
  tctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  int port = 0;
  asyncio_server_t *srv = tls_server(c, NULL, &port);
  if (!srv) return -1;
  asyncio_connection_options_t co = {.ssl_default = true, .server_hostname = "localhost"};
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "127.0.0.1", port, &co, &t,
                                          NULL),
           0);
  if (!t) return -1;
  SSL_CTX *dflt = asyncio_transport_get_sslcontext(t);
  CHECK(dflt != NULL && dflt != c->cctx);
  if (dflt) CHECK(SSL_CTX_get_verify_mode(dflt) & SSL_VERIFY_PEER);
  CHECK_RC(asyncio_transport_write(t, "x", 1), 0);
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].nrecv == 1);
  /* Through open_connection, with the host as the name: the same context. */
  asyncio_connection_options_t sco = {.ssl_default = true};
  asyncio_stream_options_t so = {.connection = &sco};
  reader_t *r = NULL;
  writer_t *w = NULL;
  CHECK_RC(asyncio_open_connection("127.0.0.1", port, &so, &r, &w), 0);
  if (w) {
    CHECK(asyncio_transport_get_sslcontext(asyncio_stream_transport(w)) == dflt);
    CHECK_RC(asyncio_stream_write(w, "yz", 2), 0);
    WAIT_UNTIL(c->pool.n == 2 && c->pool.peers[1].nrecv == 2);
    CHECK_RC(asyncio_stream_close(w), 0);
    CHECK_RC(asyncio_stream_wait_closed(w), 0);
    pair_close(r, w, -1);
  }
  /* One context or the other; and a server side needs its certificate. */
  asyncio_connection_options_t both = {.ssl = c->cctx, .ssl_default = true};
  asyncio_transport_t *t2 = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "127.0.0.1", port, &both,
                                          &t2, NULL),
           -EINVAL);
  CHECK_RC(asyncio_loop_create_unix_connection(loop, peer_factory, &c->cli, "@x", &both, &t2,
                                               NULL),
           -EINVAL);
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  asyncio_connection_options_t srv_side = {.ssl_default = true};
  CHECK_RC(asyncio_loop_connect_accepted_socket(loop, peer_factory, &c->cli, sv[0], &srv_side,
                                                &t2, NULL),
           -EINVAL);
  CHECK(t2 == NULL);
  close(sv[0]);
  close(sv[1]);
  CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(c->cli.lost == 1);
  server_done(srv);
  return 0;
}

/* No trusted CA for the test server in the store: the chain fails, with the code. */
static int ssl_default_untrusted_main(void *arg) {
  tctx_t *c = arg;
  int port = 0;
  asyncio_server_t *srv = tls_server(c, NULL, &port);
  if (!srv) return -1;
  long code = -1;
  asyncio_connection_options_t co = {
      .ssl_default = true, .server_hostname = "localhost", .ssl_verify_code = &code};
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_connection(asyncio_get_running_loop(), peer_factory, &c->cli,
                                          "127.0.0.1", port, &co, &t, NULL),
           ASYNCIO_ESSLCERTVERIFY);
  CHECK(t == NULL && code == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  server_done(srv);
  return 0;
}

/* The store is the file named by SSL_CERT_FILE (no directory): the test's CA, or another one. */
static void run_default_store(asyncio_coro_fn fn, bool trusted) {
  static tctx_t c;
  tctx_init(&c);
  assert_int_equal(tls_files(&c.pki), 0);
  setenv("SSL_CERT_FILE", trusted ? c.pki.ca_pem : c.pki.other_pem, 1);
  setenv("SSL_CERT_DIR", c.pki.dir, 1); /* holds no hashed certificates */
  int rc = run_main(fn, &c);
  unsetenv("SSL_CERT_FILE");
  unsetenv("SSL_CERT_DIR");
  tctx_free(&c);
  ASSERT_SOFT();
  assert_ok(rc);
}

TEST(ssl_default_context) { run_default_store(ssl_default_main, true); }
TEST(ssl_default_context_untrusted) { run_default_store(ssl_default_untrusted_main, false); }

/*
 * A server context that requires a client certificate (SSL_VERIFY_PEER |
 * SSL_VERIFY_FAIL_IF_NO_PEER_CERT), on the calls where the server side has
 * a caller waiting: connect_accepted_socket(ssl=) (mode 0) and a
 * server-side loop.start_tls (mode 1).  A client certificate from a CA the
 * server does not trust: ASYNCIO_ESSLCERTVERIFY with the reason; none at
 * all: a TLS error (ASYNCIO_ESSL, Python's SSLError, not a verification
 * failure), the code left at X509_V_OK; a trusted one connects.
 */
typedef struct ccert_srv {
  int fd, mode, rc;
  SSL_CTX *ctx;
  long code;
  peer_t peer;
  asyncio_transport_t *t;
} ccert_srv_t;

static int ccert_server_task(void *arg) {
  ccert_srv_t *s = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  if (s->mode == 0) {
    asyncio_connection_options_t co = {.ssl = s->ctx, .ssl_verify_code = &s->code};
    s->rc = asyncio_loop_connect_accepted_socket(loop, peer_factory, &s->peer, s->fd, &co, &s->t,
                                                 NULL);
    return 0;
  }
  /* Paused until start_tls resumes it, so that no ClientHello is read as plaintext. */
  s->peer.pause_on_made = true;
  asyncio_transport_t *plain = NULL;
  s->rc = asyncio_loop_connect_accepted_socket(loop, peer_factory, &s->peer, s->fd, NULL, &plain,
                                               NULL);
  if (s->rc) return 0;
  s->peer.t = NULL; /* connection_lost names the app transport */
  asyncio_start_tls_options_t o = {.server_side = true, .ssl_verify_code = &s->code};
  s->rc = asyncio_loop_start_tls(loop, plain, s->ctx, &o, &s->t);
  return 0;
}

static int ccert_client(tctx_t *c, int fd, int mode, SSL_CTX *ctx, peer_t *p,
                        asyncio_transport_t **t) {
  asyncio_loop_t *loop = asyncio_get_running_loop();
  if (mode == 0) {
    asyncio_connection_options_t co = {
        .sock = fd, .use_sock = true, .ssl = ctx, .server_hostname = "localhost"};
    return asyncio_loop_create_connection(loop, peer_factory, p, NULL, 0, &co, t, NULL);
  }
  asyncio_connection_options_t co = {.sock = fd, .use_sock = true};
  asyncio_transport_t *plain = NULL;
  int rc = asyncio_loop_create_connection(loop, peer_factory, p, NULL, 0, &co, &plain, NULL);
  if (rc) return rc;
  p->t = NULL;
  asyncio_start_tls_options_t o = {.server_hostname = "localhost"};
  return asyncio_loop_start_tls(loop, plain, ctx, &o, t);
}

static int client_cert_main(void *arg) {
  tctx_t *c = arg;
  SSL_CTX *with_cert = tls_client_ctx(&c->pki, 0), *without = tls_client_ctx(&c->pki, 0);
  SSL_CTX_use_certificate(with_cert, c->pki.srv); /* it has the clientAuth purpose too */
  SSL_CTX_use_PrivateKey(with_cert, c->pki.srv_key);
  SSL_CTX *strict[2]; /* [0] trusts only the other CA, [1] the test CA */
  for (int k = 0; k < 2; k++) {
    strict[k] = tls_server_ctx(&c->pki);
    SSL_CTX_set_verify(strict[k], SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(strict[k]), k ? c->pki.ca : c->pki.other);
  }
  static const struct {
    int trusted, cert, expect;
    long code;
  } cases[] = {
      /* The client sends its CA along (OpenSSL builds the chain from the client context's
       * store): the root it ends in is one the server does not trust. */
      {0, 1, ASYNCIO_ESSLCERTVERIFY, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN},
      {0, 0, ASYNCIO_ESSL, X509_V_OK},
      {1, 1, 0, X509_V_OK},
  };
  for (int mode = 0; mode < 2; mode++) {
    for (int i = 0; i < 3; i++) {
      int sv[2];
      CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
      ccert_srv_t srv = {.fd = sv[1], .mode = mode, .rc = 1, .ctx = strict[cases[i].trusted],
                         .code = -1};
      asyncio_task_t *task = NULL;
      CHECK_RC(asyncio_create_task(&task, ccert_server_task, &srv, NULL), 0);
      if (!task) return -1;
      peer_t p = {0};
      asyncio_transport_t *t = NULL;
      /* In TLS 1.3 the client is done before the server has looked at its certificate: it
       * may connect, then learn of the refusal as the end of the connection. */
      int crc = ccert_client(c, sv[0], mode, cases[i].cert ? with_cert : without, &p, &t);
      CHECK_RC(asyncio_await(task, NULL), 0);
      asyncio_task_free(task);
      if (srv.rc != cases[i].expect && !soft_fail[0])
        snprintf(soft_fail, sizeof soft_fail, "mode %d case %d: server %s, expected %s", mode,
                 i, asyncio_errname(srv.rc), asyncio_errname(cases[i].expect));
      if (srv.code != cases[i].code && !soft_fail[0])
        snprintf(soft_fail, sizeof soft_fail, "mode %d case %d: verify code %ld, expected %ld",
                 mode, i, srv.code, cases[i].code);
      if (cases[i].expect == 0) {
        CHECK_RC(crc, 0);
        CHECK(t != NULL && srv.t != NULL);
        SSL *ssl = srv.t ? asyncio_transport_get_ssl_object(srv.t) : NULL;
        CHECK(ssl && SSL_get0_peer_certificate(ssl) != NULL);
        if (t) CHECK_RC(asyncio_transport_write(t, "x", 1), 0);
        WAIT_UNTIL(srv.peer.nrecv == 1);
        if (t) CHECK_RC(asyncio_transport_close(t), 0);
        WAIT_UNTIL(p.lost == 1 && srv.peer.lost == 1);
      } else {
        CHECK(srv.t == NULL);
        CHECK(crc == 0 || crc == ASYNCIO_ESSL || crc == -ECONNRESET || crc == -ENOTCONN);
        if (crc == 0) WAIT_UNTIL(p.lost == 1);
        /* start_tls's protocols saw connection_made before: they get connection_lost. */
        if (mode == 1) WAIT_UNTIL(srv.peer.lost == 1);
        CHECK(srv.peer.made == mode && srv.peer.lost == mode && srv.peer.nrecv == 0);
      }
    }
  }
  SSL_CTX_free(with_cert);
  SSL_CTX_free(without);
  SSL_CTX_free(strict[0]);
  SSL_CTX_free(strict[1]);
  return 0;
}
TEST(verify_client_certificate) { run_tls(client_cert_main); }

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
 * drops the connection and its factory is never called;
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
  CHECK(c->pool.n == 0); /* the factory runs only once a handshake succeeded */
  server_done(srv);
  return 0;
}
TEST(handshake_server_drops_plain_clients) { run_tls(hs_server_drop_main); }

/* ---- 5. shutdown -------------------------------------------------------------------- */

/*
 * close() on either side: close_notify both ways, then each protocol gets
 * eof_received once (the closing side when the answer comes, as Python's
 * _do_shutdown calls _call_eof_received) and connection_lost(0).
 */
static int close_main(void *arg) {
  tctx_t *c = arg;
  int port = 0;
  asyncio_server_t *srv = tls_server(c, NULL, &port);
  if (!srv) return -1;
  for (int side = 0; side < 2; side++) {
    peer_t cl = {0};
    asyncio_transport_t *t = NULL;
    CHECK_RC(tls_connect(c->cctx, "localhost", &cl, port, &t), 0);
    if (!t) break;
    WAIT_UNTIL(c->pool.n == side + 1 && c->pool.peers[side].made == 1);
    peer_t *sp = &c->pool.peers[side];
    asyncio_transport_t *closer = side == 0 ? t : sp->t;
    CHECK_RC(asyncio_transport_close(closer), 0);
    CHECK(asyncio_transport_is_closing(closer));
    /* Writes after close are dropped quietly (Python only logs them). */
    CHECK_RC(asyncio_transport_write(closer, "dropped", 7), 0);
    WAIT_UNTIL(cl.lost == 1 && sp->lost == 1);
    CHECK(cl.lost_err == 0 && sp->lost_err == 0);
    CHECK(cl.eofs == 1 && sp->eofs == 1);
    CHECK(cl.nrecv == 0 && sp->nrecv == 0);
  }
  server_done(srv);
  return 0;
}
TEST(close_notify_both_ways) { run_tls(close_main); }

/*
 * A peer that never answers close_notify (its app protocol paused reading,
 * so the record waits unread): connection_lost(-ETIMEDOUT) after
 * ssl_shutdown_timeout.  Resumed, the peer then reads the close_notify
 * and ends cleanly too.
 */
static int shutdown_timeout_main(void *arg) {
  tctx_t *c = arg;
  c->pool.tmpl.pause_on_made = true;
  int port = 0;
  asyncio_server_t *srv = tls_server(c, NULL, &port);
  if (!srv) return -1;
  asyncio_connection_options_t co = {
      .ssl = c->cctx, .server_hostname = "localhost", .ssl_shutdown_timeout = 0.2};
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_connection(asyncio_get_running_loop(), peer_factory, &c->cli,
                                          "127.0.0.1", port, &co, &t, NULL),
           0);
  if (!t) return -1;
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].made == 1);
  peer_t *sp = &c->pool.peers[0];
  CHECK_RC(asyncio_transport_write(t, "late", 4), 0);
  CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(c->cli.lost == 1);
  CHECK(c->cli.lost_err == -ETIMEDOUT);
  CHECK(sp->nrecv == 0 && sp->lost == 0);
  CHECK_RC(asyncio_transport_resume_reading(sp->t), 0);
  WAIT_UNTIL(sp->lost == 1);
  CHECK(sp->nrecv == 4 && memcmp(sp->data, "late", 4) == 0);
  CHECK(sp->eofs == 1);
  CHECK(sp->lost_err == 0);
  server_done(srv);
  return 0;
}
TEST(shutdown_timeout) { run_tls(shutdown_timeout_main); }

/*
 * abort(): connection_lost(0) at once, without close_notify or any wait
 * (the shutdown timeout is the default 30 s and the peer never answers),
 * also while a close() is waiting for the peer.
 */
static int abort_main(void *arg) {
  tctx_t *c = arg;
  c->pool.tmpl.pause_on_made = true;
  int port = 0;
  asyncio_server_t *srv = tls_server(c, NULL, &port);
  if (!srv) return -1;
  for (int i = 0; i < 2; i++) {
    peer_t cl = {0};
    asyncio_transport_t *t = NULL;
    CHECK_RC(tls_connect(c->cctx, "localhost", &cl, port, &t), 0);
    if (!t) break;
    WAIT_UNTIL(c->pool.n == i + 1 && c->pool.peers[i].made == 1);
    CHECK_RC(asyncio_transport_write(t, "gone", 4), 0);
    if (i == 1) {
      CHECK_RC(asyncio_transport_close(t), 0);
      for (int k = 0; k < 5; k++) CHECK_RC(asyncio_sleep(0.001), 0);
      CHECK(cl.lost == 0); /* waiting for the peer's close_notify */
    }
    CHECK_RC(asyncio_transport_abort(t), 0);
    CHECK(asyncio_transport_is_closing(t));
    WAIT_UNTIL(cl.lost == 1);
    CHECK(cl.lost_err == 0 && cl.eofs == 0);
    /* The peer, resumed, finds the connection gone. */
    peer_t *sp = &c->pool.peers[i];
    if (sp->t) CHECK_RC(asyncio_transport_resume_reading(sp->t), 0);
    WAIT_UNTIL(sp->lost == 1);
  }
  server_done(srv);
  return 0;
}
TEST(abort_does_not_wait) { run_tls(abort_main); }

/*
 * The peer's TCP EOF without close_notify while wrapped (a truncation
 * Python tolerates): eof_received once, then connection_lost(0).
 */
static int tcp_eof_main(void *arg) {
  tctx_t *c = arg;
  int port = 0;
  asyncio_server_t *srv = tls_server(c, NULL, &port);
  if (!srv) return -1;
  asyncio_transport_t *t = NULL;
  CHECK_RC(tls_connect(c->cctx, "localhost", &c->cli, port, &t), 0);
  if (!t) return -1;
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].made == 1);
  peer_t *sp = &c->pool.peers[0];
  CHECK_RC(asyncio_transport_write(sp->t, "tail", 4), 0);
  WAIT_UNTIL(c->cli.nrecv == 4);
  /* Under the TLS layer's feet: FIN without close_notify. */
  int fd = asyncio_transport_get_fd(sp->t);
  CHECK(fd >= 0);
  if (fd >= 0) CHECK(shutdown(fd, SHUT_WR) == 0);
  WAIT_UNTIL(c->cli.lost == 1);
  CHECK(c->cli.eofs == 1 && c->cli.lost_err == 0);
  CHECK(memcmp(c->cli.data, "tail", 4) == 0);
  /* The client's side closed the socket: the server ends as well. */
  WAIT_UNTIL(sp->lost == 1);
  CHECK(sp->eofs == 1);
  server_done(srv);
  return 0;
}
TEST(tcp_eof_without_close_notify) { run_tls(tcp_eof_main); }

/*
 * The peer's TCP EOF while the app has paused reading (a stream over its
 * limit), then close() instead of resume_reading: the connection ends
 * with connection_lost(0) and the data is never delivered.
 */
static int paused_eof_close_main(void *arg) {
  tctx_t *c = arg;
  int port = 0;
  asyncio_server_t *srv = tls_server(c, NULL, &port);
  if (!srv) return -1;
  asyncio_transport_t *t = NULL;
  CHECK_RC(tls_connect(c->cctx, "localhost", &c->cli, port, &t), 0);
  if (!t) return -1;
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].made == 1);
  peer_t *sp = &c->pool.peers[0];
  CHECK_RC(asyncio_transport_pause_reading(t), 0);
  CHECK_RC(asyncio_transport_write(sp->t, "tail", 4), 0);
  int fd = asyncio_transport_get_fd(sp->t);
  CHECK(fd >= 0);
  if (fd >= 0) CHECK(shutdown(fd, SHUT_WR) == 0);
  /* Loopback: the FIN is queued already; these iterations read it. */
  for (int k = 0; k < 5; k++) CHECK_RC(asyncio_sleep(0.001), 0);
  CHECK(c->cli.lost == 0 && c->cli.nrecv == 0);
  CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(c->cli.lost == 1);
  CHECK(c->cli.lost_err == 0 && c->cli.nrecv == 0);
  WAIT_UNTIL(sp->lost == 1);
  server_done(srv);
  return 0;
}
TEST(paused_eof_then_close) { run_tls(paused_eof_close_main); }

/*
 * The peer's TCP EOF with plaintext still waiting: every byte is delivered
 * before eof_received and connection_lost(0).  Paused: the EOF comes while
 * the app has paused reading, and the protocol pauses again from each
 * data_received (a stream over its limit), so it gets one delivery per
 * resume (Python hands all of it to one data_received, so a pause there
 * loses nothing).  Buffered: a BufferedProtocol whose small buffer takes
 * one read per loop iteration, so the EOF is seen long before the end.
 */
static bulk_t g_pe;

static int eof_drain(tctx_t *c, bool buffered) {
  asyncio_loop_t *loop = asyncio_get_running_loop();
  pattern_init();
  const size_t total = 150000; /* several deliveries, below the read high-water mark */
  memset(&g_pe, 0, sizeof g_pe);
  g_pe.pause_on_data = !buffered;
  g_pe.buffered = buffered;
  int port = 0;
  asyncio_server_t *srv = tls_server(c, NULL, &port);
  if (!srv) return -1;
  asyncio_connection_options_t co = {.ssl = c->cctx, .server_hostname = "localhost"};
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, bulk_factory, &g_pe, "127.0.0.1", port, &co, &t,
                                          NULL),
           0);
  if (!t) return -1;
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].made == 1);
  peer_t *sp = &c->pool.peers[0];
  CHECK_RC(asyncio_transport_write(sp->t, pattern, total), 0);
  /* The server's socket sends what it holds, then its FIN (no close_notify). */
  CHECK_RC(asyncio_server_close_clients(srv), 0);
  WAIT_UNTIL(sp->lost == 1);
  if (!buffered) {
    for (int k = 0; k < 5; k++) CHECK_RC(asyncio_sleep(0.001), 0);
    CHECK(g_pe.ndata == 1 && g_pe.nrecv < total && g_pe.lost == 0);
  }
  for (int i = 0; i < 20000 && !g_pe.lost; i++) {
    if (!asyncio_transport_is_reading(t)) CHECK_RC(asyncio_transport_resume_reading(t), 0);
    CHECK_RC(asyncio_sleep(0.001), 0);
  }
  CHECK(g_pe.lost == 1 && g_pe.lost_err == 0 && g_pe.eofs == 1);
  CHECK(g_pe.nrecv == total && g_pe.sum == fnv(FNV_INIT, pattern, total));
  server_done(srv);
  return 0;
}

static int paused_eof_drain_main(void *arg) { return eof_drain(arg, false); }
TEST(paused_eof_delivers_everything) { run_tls(paused_eof_drain_main); }
static int buffered_eof_drain_main(void *arg) { return eof_drain(arg, true); }
TEST(buffered_protocol_eof_delivers_everything) { run_tls(buffered_eof_drain_main); }

/*
 * close() from data_received while more plaintext waits (the read nests:
 * the flush delivers the rest, from inside close(), as Python's
 * _do_flush does), and close() from connection_made.
 */
typedef struct cdctx {
  bulk_t srv[2], cli[2];
} cdctx_t;

static cdctx_t g_cd;

static int close_in_callbacks_main(void *arg) {
  tctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  pattern_init();
  g_cd.cli[0].close_on_data = true;
  g_cd.srv[1].close_on_made = true;
  for (int i = 0; i < 2; i++) {
    asyncio_server_options_t so = {.ssl = c->sctx};
    asyncio_server_t *srv = NULL;
    CHECK_RC(asyncio_loop_create_server(loop, bulk_factory, &g_cd.srv[i], "127.0.0.1", 0, &so,
                                        &srv),
             0);
    if (!srv) return -1;
    asyncio_connection_options_t co = {.ssl = c->cctx, .server_hostname = "localhost"};
    asyncio_transport_t *t = NULL;
    int rc = asyncio_loop_create_connection(loop, bulk_factory, &g_cd.cli[i], "127.0.0.1",
                                            server_port(srv, 0), &co, &t, NULL);
    CHECK(rc == 0 || (i == 1 && rc == -ENOTCONN));
    if (i == 0 && t) {
      WAIT_UNTIL(g_cd.srv[0].made == 1);
      /* Several records in one go, so that plaintext is still waiting when close() runs. */
      CHECK_RC(asyncio_transport_write(g_cd.srv[0].t, pattern, PAT_PERIOD), 0);
    }
    WAIT_UNTIL(g_cd.cli[i].lost == 1 && g_cd.srv[i].lost == 1);
    if (i == 0) {
      /*
       * The server was still sending when the close_notify went out: its
       * later records make OpenSSL's SSL_shutdown fail with "application
       * data after close notify", as Python's unwrap() raises SSLError
       * there; the server may then find the socket reset.
       */
      CHECK(g_cd.cli[0].lost_err == 0 || g_cd.cli[0].lost_err == ASYNCIO_ESSL);
      CHECK(g_cd.srv[0].lost_err == 0 || g_cd.srv[0].lost_err == -ECONNRESET ||
            g_cd.srv[0].lost_err == -EPIPE);
      CHECK(g_cd.cli[0].eofs <= 1 && g_cd.srv[0].eofs == 1);
    } else {
      CHECK(g_cd.cli[1].lost_err == 0 && g_cd.srv[1].lost_err == 0);
      CHECK(g_cd.cli[1].eofs == 1 && g_cd.srv[1].eofs == 1);
    }
    CHECK(g_cd.cli[i].made == 1 && g_cd.srv[i].made == 1);
    server_done(srv);
  }
  CHECK(g_cd.cli[0].nrecv > 0 && g_cd.cli[0].nrecv <= PAT_PERIOD);
  CHECK(g_cd.cli[0].sum == fnv(FNV_INIT, pattern, g_cd.cli[0].nrecv));
  return 0;
}

TEST(close_in_callbacks) {
  memset(&g_cd, 0, sizeof g_cd);
  run_tls(close_in_callbacks_main);
}

/*
 * A server's close_clients / abort_clients act on the sockets underneath,
 * without close_notify: the client sees a TCP EOF (eof_received, then
 * connection_lost(0)), the server's protocols connection_lost.
 */
static int close_clients_main(void *arg) {
  tctx_t *c = arg;
  int port = 0;
  asyncio_server_t *srv = tls_server(c, NULL, &port);
  if (!srv) return -1;
  peer_t cl[2] = {{0}};
  for (int i = 0; i < 2; i++) {
    asyncio_transport_t *t = NULL;
    CHECK_RC(tls_connect(c->cctx, "localhost", &cl[i], port, &t), 0);
    if (!t) return -1;
    WAIT_UNTIL(c->pool.n == i + 1 && c->pool.peers[i].made == 1);
    CHECK_RC(i == 0 ? asyncio_server_close_clients(srv) : asyncio_server_abort_clients(srv), 0);
    WAIT_UNTIL(cl[i].lost == 1 && c->pool.peers[i].lost == 1);
    CHECK(cl[i].lost_err == 0 || cl[i].lost_err == -ECONNRESET);
    CHECK(cl[i].eofs <= 1);
  }
  server_done(srv);
  return 0;
}
TEST(server_close_and_abort_clients) { run_tls(close_clients_main); }

/* ---- 6. large transfers and write flow control ------------------------------------------ */

typedef struct bctx {
  tctx_t *c;
  bulk_t srv, cli;
  bwriter_t ws, wc;
} bctx_t;

static bctx_t g_b;

/* A TLS server with g_b.srv as its (only) protocol, and a client with g_b.cli. */
static asyncio_server_t *bulk_pair(tctx_t *c) {
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_server_options_t so = {.ssl = c->sctx};
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_loop_create_server(loop, bulk_factory, &g_b.srv, "127.0.0.1", 0, &so, &srv), 0);
  if (!srv) return NULL;
  asyncio_connection_options_t co = {.ssl = c->cctx, .server_hostname = "localhost"};
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, bulk_factory, &g_b.cli, "127.0.0.1",
                                          server_port(srv, 0), &co, &t, NULL),
           0);
  if (!t) {
    server_done(srv);
    return NULL;
  }
  for (int i = 0; i < 20000 && !g_b.srv.made; i++) CHECK_RC(asyncio_sleep(0.001), 0);
  CHECK(g_b.srv.made == 1 && g_b.cli.made == 1);
  return srv;
}

static void bulk_close(asyncio_server_t *srv) {
  if (g_b.cli.t) CHECK_RC(asyncio_transport_close(g_b.cli.t), 0);
  for (int i = 0; i < 20000 && !(g_b.cli.lost && g_b.srv.lost); i++)
    CHECK_RC(asyncio_sleep(0.001), 0);
  CHECK(g_b.cli.lost == 1 && g_b.srv.lost == 1);
  CHECK(g_b.cli.lost_err == 0 && g_b.srv.lost_err == 0);
  server_done(srv);
}

#define BIG ((size_t)64 << 20)

static int big_main(void *arg) {
  tctx_t *c = arg;
  pattern_init();
  asyncio_server_t *srv = bulk_pair(c);
  if (!srv) return -1;
  size_t low = 0, high = 0;
  CHECK_RC(asyncio_transport_get_write_buffer_limits(g_b.cli.t, &low, &high), 0);
  CHECK(low == 128 * 1024 && high == 512 * 1024);
  CHECK_RC(asyncio_transport_get_write_buffer_limits(g_b.srv.t, &low, &high), 0);
  CHECK(low == 128 * 1024 && high == 512 * 1024);
  g_b.wc = (bwriter_t){.b = &g_b.cli, .total = BIG};
  g_b.ws = (bwriter_t){.b = &g_b.srv, .total = BIG};
  asyncio_task_t *tc = NULL, *ts = NULL;
  CHECK_RC(asyncio_create_task(&tc, writer_task, &g_b.wc, NULL), 0);
  CHECK_RC(asyncio_create_task(&ts, writer_task, &g_b.ws, NULL), 0);
  if (tc) CHECK_RC(asyncio_await(tc, NULL), 0);
  if (ts) CHECK_RC(asyncio_await(ts, NULL), 0);
  asyncio_task_free(tc);
  asyncio_task_free(ts);
  WAIT_UNTIL(g_b.srv.nrecv >= BIG && g_b.cli.nrecv >= BIG);
  CHECK(g_b.srv.nrecv == BIG && g_b.srv.sum == g_b.wc.sum);
  CHECK(g_b.cli.nrecv == BIG && g_b.cli.sum == g_b.ws.sum);
  /* App-level flow control ran and stayed bounded. */
  CHECK(g_b.cli.npause > 0 && g_b.srv.npause > 0);
  CHECK(!g_b.cli.alt_bad && !g_b.srv.alt_bad);
  CHECK(g_b.wc.maxbuf < high + CHUNK && g_b.ws.maxbuf < high + CHUNK);
  WAIT_UNTIL(asyncio_transport_get_write_buffer_size(g_b.cli.t) == 0 &&
             asyncio_transport_get_write_buffer_size(g_b.srv.t) == 0);
  CHECK(g_b.cli.npause == g_b.cli.nresume && g_b.srv.npause == g_b.srv.nresume);
  bulk_close(srv);
  return 0;
}

TEST(large_transfer_both_ways) {
  memset(&g_b, 0, sizeof g_b);
  run_tls(big_main);
}

/* set_write_buffer_limits on the app transport, which may pause or resume at once. */
static int limits_main(void *arg) {
  tctx_t *c = arg;
  asyncio_server_t *srv = bulk_pair(c);
  if (!srv) return -1;
  asyncio_transport_t *t = g_b.cli.t;
  size_t low = 0, high = 0;
  CHECK_RC(asyncio_transport_set_write_buffer_limits(t, 1 << 20, 256 << 10), 0);
  CHECK_RC(asyncio_transport_get_write_buffer_limits(t, &low, &high), 0);
  CHECK(high == 1 << 20 && low == 256 << 10);
  CHECK_RC(asyncio_transport_set_write_buffer_limits(t, -1, -1), 0);
  CHECK_RC(asyncio_transport_get_write_buffer_limits(t, &low, &high), 0);
  CHECK(high == 512 << 10 && low == 128 << 10);
  CHECK_RC(asyncio_transport_set_write_buffer_limits(t, -1, 64 << 10), 0);
  CHECK_RC(asyncio_transport_get_write_buffer_limits(t, &low, &high), 0);
  CHECK(high == 256 << 10 && low == 64 << 10);
  CHECK_RC(asyncio_transport_set_write_buffer_limits(t, 100 << 10, -1), 0);
  CHECK_RC(asyncio_transport_get_write_buffer_limits(t, &low, &high), 0);
  CHECK(high == 100 << 10 && low == 25 << 10);
  CHECK_RC(asyncio_transport_set_write_buffer_limits(t, 100, 200), -EINVAL);
  CHECK(g_b.cli.npause == 0);
  /* high 0 with an empty buffer: size >= high, so pause_writing now ... */
  CHECK_RC(asyncio_transport_set_write_buffer_limits(t, 0, -1), 0);
  CHECK(g_b.cli.npause == 1 && g_b.cli.paused);
  /* ... and back to the defaults: size <= low, so resume_writing now. */
  CHECK_RC(asyncio_transport_set_write_buffer_limits(t, -1, -1), 0);
  CHECK(g_b.cli.nresume == 1 && !g_b.cli.paused);
  /* A small high-water mark pauses a big write; sending it all resumes. */
  CHECK_RC(asyncio_transport_set_write_buffer_limits(t, 4096, 1024), 0);
  size_t total = 0;
  /* The kernel takes a lot at once: write until the buffer reaches 4 KiB. */
  for (int i = 0; i < 256 && g_b.cli.npause == 1; i++) {
    CHECK_RC(asyncio_transport_write(t, pattern, 1 << 20), 0);
    total += 1 << 20;
  }
  CHECK(g_b.cli.npause == 2);
  CHECK(asyncio_transport_get_write_buffer_size(t) >= 4096);
  WAIT_UNTIL(g_b.srv.nrecv == total);
  WAIT_UNTIL(g_b.cli.nresume == 2);
  CHECK(asyncio_transport_get_write_buffer_size(t) == 0);
  CHECK(!g_b.cli.alt_bad);
  bulk_close(srv);
  return 0;
}

TEST(write_buffer_limits) {
  memset(&g_b, 0, sizeof g_b);
  run_tls(limits_main);
}

/*
 * writelines with odd-sized pieces while the peer does not read: once the
 * socket is full, part of an iovec array is encrypted and the rest kept
 * (the backlog's skip path).  The stream must arrive intact, in order.
 */
static int writelines_main(void *arg) {
  tctx_t *c = arg;
  pattern_init();
  g_b.srv.pause_on_made = true;
  asyncio_server_t *srv = bulk_pair(c);
  if (!srv) return -1;
  asyncio_transport_t *t = g_b.cli.t;
  uint64_t sum = FNV_INIT;
  size_t total = 0, off = 0;
  for (int i = 0; i < 400 && g_b.cli.npause < 3; i++) {
    struct iovec v[4];
    size_t sizes[4] = {1, 70001, 3, 131071 + (size_t)i};
    for (int k = 0; k < 4; k++) {
      v[k].iov_base = pattern + off;
      v[k].iov_len = sizes[k];
      sum = fnv(sum, pattern + off, sizes[k]);
      total += sizes[k];
      off = (off + sizes[k]) % PAT_PERIOD;
    }
    CHECK_RC(asyncio_transport_writelines(t, v, 4), 0);
    if (g_b.cli.npause == 1 && g_b.cli.paused && i % 7 == 0) {
      /* Let some go, so that pause and resume come several times. */
      CHECK_RC(asyncio_transport_resume_reading(g_b.srv.t), 0);
      WAIT_UNTIL(!g_b.cli.paused);
      CHECK_RC(asyncio_transport_pause_reading(g_b.srv.t), 0);
    }
  }
  CHECK(g_b.cli.npause >= 2);
  CHECK_RC(asyncio_transport_resume_reading(g_b.srv.t), 0);
  WAIT_UNTIL(g_b.srv.nrecv >= total);
  CHECK(g_b.srv.nrecv == total && g_b.srv.sum == sum);
  CHECK(!g_b.cli.alt_bad);
  bulk_close(srv);
  return 0;
}

TEST(writelines_partial) {
  memset(&g_b, 0, sizeof g_b);
  run_tls(writelines_main);
}

/*
 * A protocol that writes from resume_writing, which runs while the
 * backlog drains: the stream must arrive once and in order (the backlog's
 * head may not be encrypted twice).
 */
static int write_on_resume_main(void *arg) {
  tctx_t *c = arg;
  pattern_init();
  g_b.srv.pause_on_made = true; /* so that the backlog fills first */
  asyncio_server_t *srv = bulk_pair(c);
  if (!srv) return -1;
  g_b.cli.rw_left = (size_t)24 << 20;
  g_b.cli.rw_sum = FNV_INIT;
  write_more(&g_b.cli, g_b.cli.t);
  CHECK(g_b.cli.paused && g_b.cli.rw_left > 0);
  CHECK_RC(asyncio_transport_resume_reading(g_b.srv.t), 0);
  WAIT_UNTIL(g_b.cli.rw_left == 0 || g_b.cli.lost);
  WAIT_UNTIL(g_b.srv.nrecv >= g_b.cli.rw_off || g_b.srv.lost);
  CHECK(g_b.srv.nrecv == g_b.cli.rw_off && g_b.srv.sum == g_b.cli.rw_sum);
  CHECK(g_b.cli.nresume > 3 && !g_b.cli.alt_bad);
  bulk_close(srv);
  return 0;
}

TEST(write_from_resume_writing) {
  memset(&g_b, 0, sizeof g_b);
  run_tls(write_on_resume_main);
}

/* ---- 7. reading flow control ----------------------------------------------------------- */

static int fionread(int fd) {
  int n = 0;
  return ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
}

static size_t in_pending(asyncio_transport_t *t) {
  SSL *ssl = asyncio_transport_get_ssl_object(t);
  return ssl ? BIO_ctrl_pending(SSL_get_rbio(ssl)) : 0;
}

/*
 * While the app is paused the ciphertext collects until ~256 KiB wait,
 * then the socket is not read any more (its receive queue fills instead);
 * nothing reaches data_received; resumed, all of it arrives in order.
 */
static int read_pause_check(asyncio_transport_t *t, size_t nrecv_then) {
  WAIT_UNTIL(in_pending(t) >= 256 * 1024);
  int fd = asyncio_transport_get_fd(t);
  WAIT_UNTIL(fionread(fd) > 0);
  for (int i = 0; i < 30; i++) CHECK_RC(asyncio_sleep(0.001), 0);
  CHECK(fionread(fd) > 0);                     /* data is there, ... */
  CHECK(in_pending(t) < 512 * 1024);          /* ... but the socket stays paused */
  CHECK(g_b.cli.nrecv == nrecv_then);
  CHECK(!asyncio_transport_is_reading(t));
  return 0;
}

static int read_flow_main(void *arg) {
  tctx_t *c = arg;
  pattern_init();
  g_b.cli.pause_on_made = true;
  asyncio_server_t *srv = bulk_pair(c);
  if (!srv) return -1;
  asyncio_transport_t *t = g_b.cli.t;
  g_b.ws = (bwriter_t){.b = &g_b.srv, .total = (size_t)12 << 20};
  asyncio_task_t *ts = NULL;
  CHECK_RC(asyncio_create_task(&ts, writer_task, &g_b.ws, NULL), 0);
  read_pause_check(t, 0);
  CHECK(g_b.cli.nrecv == 0);
  /* Resume, then pause again from data_received in the middle of the stream. */
  g_b.cli.pause_on_made = false;
  CHECK_RC(asyncio_transport_resume_reading(t), 0);
  WAIT_UNTIL(g_b.cli.nrecv >= (size_t)3 << 20);
  CHECK_RC(asyncio_transport_pause_reading(t), 0);
  size_t at = g_b.cli.nrecv;
  read_pause_check(t, at);
  CHECK_RC(asyncio_transport_resume_reading(t), 0);
  if (ts) CHECK_RC(asyncio_await(ts, NULL), 0);
  asyncio_task_free(ts);
  WAIT_UNTIL(g_b.cli.nrecv >= g_b.ws.total);
  CHECK(g_b.cli.nrecv == g_b.ws.total && g_b.cli.sum == g_b.ws.sum);
  CHECK(asyncio_transport_is_reading(t));
  bulk_close(srv);
  return 0;
}

TEST(read_flow_control) {
  memset(&g_b, 0, sizeof g_b);
  run_tls(read_flow_main);
}

/*
 * set_read_buffer_limits governs when the socket stops being read: with
 * the app paused, ciphertext collects up to the high-water mark given (past
 * the 256 KiB default), then the socket is left alone (the kernel queue
 * fills, the buffer stays the same); raising the marks above what waits
 * resumes reading at once.  Then the app takes one delivery at a time:
 * while the buffer is above the low-water mark nothing is read from the
 * socket (the buffer only shrinks), and once it is at or below it, reading
 * resumes and the buffer fills up to the high-water mark again.  The
 * stream arrives intact.
 */
#define RB_TOTAL ((size_t)24 << 20)
#define RECV_MAX ((size_t)256 * 1024) /* what one read of the socket may add */

static size_t rb_size(asyncio_transport_t *t) {
  ssize_t n = asyncio_transport_get_read_buffer_size(t);
  CHECK(n >= 0);
  return n < 0 ? 0 : (size_t)n;
}

/* Waits until the buffer reached high and the socket is left unread with data in it. */
static int rb_full(asyncio_transport_t *t, size_t high) {
  WAIT_UNTIL(rb_size(t) >= high);
  int fd = asyncio_transport_get_fd(t);
  WAIT_UNTIL(fionread(fd) > 0);
  size_t at = rb_size(t);
  for (int i = 0; i < 30; i++) CHECK_RC(asyncio_sleep(0.001), 0);
  CHECK(fionread(fd) > 0);
  CHECK(rb_size(t) == at); /* not read: nothing was added */
  CHECK(at < high + RECV_MAX);
  CHECK((size_t)asyncio_transport_get_read_buffer_size(t) == in_pending(t));
  return 0;
}

static int read_limits_main(void *arg) {
  tctx_t *c = arg;
  pattern_init();
  g_b.cli.pause_on_made = true;
  asyncio_server_t *srv = bulk_pair(c);
  if (!srv) return -1;
  asyncio_transport_t *t = g_b.cli.t;
  size_t low = 0, high = 0;
  CHECK_RC(asyncio_transport_get_read_buffer_limits(t, &low, &high), 0);
  CHECK(low == 64 * 1024 && high == 256 * 1024);
  CHECK_RC(asyncio_transport_set_read_buffer_limits(t, 1 << 20, -1), 0);
  CHECK_RC(asyncio_transport_get_read_buffer_limits(t, &low, &high), 0);
  CHECK(low == 256 * 1024 && high == 1 << 20);
  g_b.ws = (bwriter_t){.b = &g_b.srv, .total = RB_TOTAL};
  asyncio_task_t *ts = NULL;
  CHECK_RC(asyncio_create_task(&ts, writer_task, &g_b.ws, NULL), 0);
  if (rb_full(t, 1 << 20)) return -1;
  CHECK(g_b.cli.nrecv == 0);
  /* Above what waits: the socket is read again at once, up to the new mark. */
  CHECK_RC(asyncio_transport_set_read_buffer_limits(t, 4 << 20, 2 << 20), 0);
  if (rb_full(t, 4 << 20)) return -1;
  /*
   * One delivery (at most 64 KiB of plaintext) per resume_reading.  What
   * data_received sees is what the TLS layer decides on right after it:
   * while that is above the low-water mark the socket stays unread, so the
   * buffer is still exactly that when the task looks.
   */
  g_b.cli.pause_on_data = true;
  size_t before = rb_size(t);
  int steps_above = 0;
  for (;;) {
    int had = g_b.cli.ndata;
    CHECK_RC(asyncio_transport_resume_reading(t), 0);
    WAIT_UNTIL(g_b.cli.ndata == had + 1);
    size_t seen = g_b.cli.rb_at_data < 0 ? 0 : (size_t)g_b.cli.rb_at_data;
    CHECK(seen < before);
    if (seen <= (size_t)2 << 20) break;
    CHECK(rb_size(t) == seen);
    before = seen;
    steps_above++;
  }
  CHECK(steps_above > 10);
  /* At the low-water mark reading resumed: the buffer fills to the high-water mark again. */
  if (rb_full(t, 4 << 20)) return -1;
  g_b.cli.pause_on_data = false;
  CHECK_RC(asyncio_transport_resume_reading(t), 0);
  if (ts) CHECK_RC(asyncio_await(ts, NULL), 0);
  asyncio_task_free(ts);
  WAIT_UNTIL(g_b.cli.nrecv >= g_b.ws.total);
  CHECK(g_b.cli.nrecv == g_b.ws.total && g_b.cli.sum == g_b.ws.sum);
  CHECK(rb_size(t) == 0);
  bulk_close(srv);
  return 0;
}

TEST(read_buffer_limits) {
  memset(&g_b, 0, sizeof g_b);
  run_tls(read_limits_main);
}

/*
 * A high-water mark of 0 pauses the socket whenever ciphertext waits, and
 * never when none does: an app that does not pause still gets everything.
 */
static int read_limits_zero_main(void *arg) {
  tctx_t *c = arg;
  pattern_init();
  asyncio_server_t *srv = bulk_pair(c);
  if (!srv) return -1;
  asyncio_transport_t *t = g_b.cli.t;
  size_t low = 1, high = 1;
  CHECK_RC(asyncio_transport_set_read_buffer_limits(t, 0, -1), 0);
  CHECK_RC(asyncio_transport_get_read_buffer_limits(t, &low, &high), 0);
  CHECK(low == 0 && high == 0);
  g_b.ws = (bwriter_t){.b = &g_b.srv, .total = (size_t)4 << 20};
  asyncio_task_t *ts = NULL;
  CHECK_RC(asyncio_create_task(&ts, writer_task, &g_b.ws, NULL), 0);
  WAIT_UNTIL(g_b.cli.nrecv >= (size_t)1 << 20);
  /* Paused: what the last read brought stays, and nothing more is read. */
  CHECK_RC(asyncio_transport_pause_reading(t), 0);
  WAIT_UNTIL(rb_size(t) > 0);
  if (rb_full(t, 1)) return -1;
  CHECK_RC(asyncio_transport_resume_reading(t), 0);
  if (ts) CHECK_RC(asyncio_await(ts, NULL), 0);
  asyncio_task_free(ts);
  WAIT_UNTIL(g_b.cli.nrecv >= g_b.ws.total);
  CHECK(g_b.cli.nrecv == g_b.ws.total && g_b.cli.sum == g_b.ws.sum);
  bulk_close(srv);
  return 0;
}

TEST(read_buffer_limits_zero) {
  memset(&g_b, 0, sizeof g_b);
  run_tls(read_limits_zero_main);
}

/* The read-buffer calls: their defaults and refusals, and the kinds that have none. */
static int read_limits_args_main(void *arg) {
  tctx_t *c = arg;
  asyncio_server_t *srv = bulk_pair(c);
  if (!srv) return -1;
  asyncio_transport_t *t = g_b.cli.t;
  size_t low = 0, high = 0;
  CHECK_RC(asyncio_transport_set_read_buffer_limits(t, -1, 64 << 10), 0);
  CHECK_RC(asyncio_transport_get_read_buffer_limits(t, &low, &high), 0);
  CHECK(high == 256 << 10 && low == 64 << 10);
  CHECK_RC(asyncio_transport_set_read_buffer_limits(t, -1, 100 << 10), 0);
  CHECK_RC(asyncio_transport_get_read_buffer_limits(t, &low, &high), 0);
  CHECK(high == 400 << 10 && low == 100 << 10);
  CHECK_RC(asyncio_transport_set_read_buffer_limits(t, 100 << 10, -1), 0);
  CHECK_RC(asyncio_transport_get_read_buffer_limits(t, &low, &high), 0);
  CHECK(high == 100 << 10 && low == 25 << 10);
  CHECK_RC(asyncio_transport_set_read_buffer_limits(t, 1000, 1000), 0);
  CHECK_RC(asyncio_transport_get_read_buffer_limits(t, &low, &high), 0);
  CHECK(high == 1000 && low == 1000);
  /* high < low: refused, and nothing changes. */
  CHECK_RC(asyncio_transport_set_read_buffer_limits(t, 100, 200), -EINVAL);
  CHECK_RC(asyncio_transport_set_read_buffer_limits(t, 0, 1), -EINVAL);
  CHECK_RC(asyncio_transport_get_read_buffer_limits(t, &low, &high), 0);
  CHECK(high == 1000 && low == 1000);
  /* 4 * low saturates instead of wrapping. */
  CHECK_RC(asyncio_transport_set_read_buffer_limits(t, -1, SSIZE_MAX), 0);
  CHECK_RC(asyncio_transport_get_read_buffer_limits(t, &low, &high), 0);
  CHECK(high == SIZE_MAX && low == (size_t)SSIZE_MAX);
  CHECK_RC(asyncio_transport_set_read_buffer_limits(t, -1, -1), 0);
  CHECK_RC(asyncio_transport_get_read_buffer_limits(t, NULL, &high), 0);
  CHECK_RC(asyncio_transport_get_read_buffer_limits(t, &low, NULL), 0);
  CHECK(high == 256 << 10 && low == 64 << 10);
  CHECK(asyncio_transport_get_read_buffer_size(t) == 0);
  /* The write limits are separate. */
  CHECK_RC(asyncio_transport_get_write_buffer_limits(t, &low, &high), 0);
  CHECK(high == 512 << 10 && low == 128 << 10);
  /* NULL */
  CHECK(asyncio_transport_get_read_buffer_size(NULL) == -EINVAL);
  CHECK_RC(asyncio_transport_get_read_buffer_limits(NULL, &low, &high), -EINVAL);
  CHECK_RC(asyncio_transport_set_read_buffer_limits(NULL, -1, -1), -EINVAL);
  /* A plain stream socket and a datagram transport have no such buffer. */
  asyncio_loop_t *loop = asyncio_get_running_loop();
  peer_t p = {0}, d = {0};
  asyncio_transport_t *pt = NULL, *dt = NULL;
  asyncio_server_t *plain = NULL;
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, "127.0.0.1", 0, NULL, &plain),
           0);
  if (plain)
    CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &p, "127.0.0.1",
                                            server_port(plain, 0), NULL, &pt, NULL),
             0);
  asyncio_datagram_options_t dopt = {.local_host = "127.0.0.1"};
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &d, &dopt, &dt, NULL), 0);
  asyncio_transport_t *others[] = {pt, dt};
  for (int i = 0; i < 2; i++) {
    if (!others[i]) continue;
    CHECK(asyncio_transport_get_read_buffer_size(others[i]) == -EOPNOTSUPP);
    CHECK_RC(asyncio_transport_get_read_buffer_limits(others[i], &low, &high), -EOPNOTSUPP);
    CHECK_RC(asyncio_transport_set_read_buffer_limits(others[i], -1, -1), -EOPNOTSUPP);
    CHECK_RC(asyncio_transport_close(others[i]), 0);
  }
  WAIT_UNTIL((!pt || p.lost == 1) && (!dt || d.lost == 1));
  /* Closing, the transport still takes the call (as every call until connection_lost). */
  CHECK_RC(asyncio_transport_close(t), 0);
  CHECK_RC(asyncio_transport_set_read_buffer_limits(t, 1 << 20, -1), 0);
  bulk_close(srv);
  if (plain) server_done(plain);
  return 0;
}

TEST(read_buffer_limits_arguments) {
  memset(&g_b, 0, sizeof g_b);
  run_tls(read_limits_args_main);
}

/* ---- 8. BufferedProtocol over TLS ------------------------------------------------------ */

static int buffered_main(void *arg) {
  tctx_t *c = arg;
  pattern_init();
  g_b.cli.buffered = g_b.srv.buffered = true;
  g_b.srv.echo = true;
  asyncio_server_t *srv = bulk_pair(c);
  if (!srv) return -1;
  size_t n = PAT_PERIOD + 17;
  CHECK_RC(asyncio_transport_write(g_b.cli.t, pattern, n), 0);
  uint64_t sum = fnv(FNV_INIT, pattern, n);
  WAIT_UNTIL(g_b.cli.nrecv >= n);
  CHECK(g_b.srv.nrecv == n && g_b.srv.sum == sum);
  CHECK(g_b.cli.nrecv == n && g_b.cli.sum == sum);
  CHECK(g_b.cli.nget > 0 && g_b.srv.nget > 0);
  CHECK(!g_b.cli.bad_hint && !g_b.srv.bad_hint);
  CHECK(g_b.cli.got_hint && g_b.srv.got_hint);
  bulk_close(srv);
  CHECK(g_b.cli.eofs == 1 && g_b.srv.eofs == 1);
  return 0;
}

TEST(buffered_protocol) {
  memset(&g_b, 0, sizeof g_b);
  run_tls(buffered_main);
}

/* ---- 9. argument errors ------------------------------------------------------------------ */

static int args_main(void *arg) {
  tctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  peer_t p = {0};
  asyncio_transport_t *t = NULL;
  int port = 9; /* never reached: every call below is refused before connecting */
  const asyncio_connection_options_t bad_co[] = {
      {.server_hostname = "localhost"},          /* without ssl */
      {.ssl_handshake_timeout = 1},
      {.ssl_shutdown_timeout = 1},
      {.ssl = c->cctx, .ssl_handshake_timeout = -1},
      {.ssl = c->cctx, .ssl_handshake_timeout = NAN},
      {.ssl = c->cctx, .ssl_shutdown_timeout = -0.5},
      {.ssl = c->cctx, .ssl_shutdown_timeout = NAN},
  };
  for (size_t i = 0; i < sizeof bad_co / sizeof bad_co[0]; i++) {
    CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &p, "127.0.0.1", port, &bad_co[i],
                                            &t, NULL),
             -EINVAL);
    CHECK_RC(asyncio_loop_create_unix_connection(loop, peer_factory, &p, "/nonexistent/sock",
                                                 &bad_co[i], &t, NULL),
             -EINVAL);
  }
  /* ssl without a host: server_hostname is required. */
  asyncio_connection_options_t nohost = {.ssl = c->cctx};
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &p, NULL, port, &nohost, &t, NULL),
           -EINVAL);
  CHECK_RC(asyncio_loop_create_unix_connection(loop, peer_factory, &p, "/nonexistent/sock", &nohost,
                                               &t, NULL),
           -EINVAL);
  CHECK(t == NULL && p.made == 0);
  /* ssl_verify_code is cleared even by a call refused at once. */
  long code = -1;
  asyncio_connection_options_t bad_code = {.ssl = c->cctx, .ssl_handshake_timeout = -1,
                                           .ssl_verify_code = &code};
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &p, "127.0.0.1", port, &bad_code,
                                          &t, NULL),
           -EINVAL);
  CHECK(code == X509_V_OK);
  code = -1;
  CHECK_RC(asyncio_loop_create_unix_connection(loop, peer_factory, &p, NULL, &bad_code, &t, NULL),
           -EINVAL);
  CHECK(code == X509_V_OK);
  code = -1;
  CHECK_RC(asyncio_loop_connect_accepted_socket(loop, peer_factory, &p, -1, &bad_code, &t, NULL),
           -EINVAL);
  CHECK(code == X509_V_OK);
  code = -1;
  asyncio_start_tls_options_t st_code = {.ssl_verify_code = &code};
  CHECK_RC(asyncio_loop_start_tls(loop, NULL, c->cctx, &st_code, &t), -EINVAL);
  CHECK(code == X509_V_OK);

  const asyncio_server_options_t bad_so[] = {
      {.ssl_handshake_timeout = 1},
      {.ssl_shutdown_timeout = 1},
      {.ssl = c->sctx, .ssl_handshake_timeout = -1},
      {.ssl = c->sctx, .ssl_handshake_timeout = NAN},
      {.ssl = c->sctx, .ssl_shutdown_timeout = -1},
      {.ssl = c->sctx, .ssl_shutdown_timeout = NAN},
  };
  for (size_t i = 0; i < sizeof bad_so / sizeof bad_so[0]; i++) {
    asyncio_server_t *srv = NULL;
    CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, "127.0.0.1", 0, &bad_so[i],
                                        &srv),
             -EINVAL);
    CHECK(srv == NULL);
    char path[64];
    snprintf(path, sizeof path, "/tmp/asyncio-ssl-args-%d.sock", (int)getpid());
    CHECK_RC(asyncio_loop_create_unix_server(loop, pool_factory, &c->pool, path, &bad_so[i], &srv),
             -EINVAL);
    CHECK(srv == NULL && access(path, F_OK) != 0);
  }

  /* start_tls */
  asyncio_start_tls_options_t so = {.server_side = true};
  asyncio_transport_t *out = (asyncio_transport_t *)&p; /* must be cleared */
  CHECK_RC(asyncio_loop_start_tls(loop, NULL, c->cctx, NULL, &out), -EINVAL);
  CHECK(out == NULL);
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, "127.0.0.1", 0, NULL, &srv), 0);
  if (!srv) return -1;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &p, "127.0.0.1", server_port(srv, 0),
                                          NULL, &t, NULL),
           0);
  if (t) {
    CHECK_RC(asyncio_loop_start_tls(loop, t, NULL, NULL, &out), -EINVAL);
    CHECK_RC(asyncio_loop_start_tls(loop, t, c->cctx, NULL, NULL), -EINVAL);
    CHECK_RC(asyncio_loop_start_tls(NULL, t, c->cctx, NULL, &out), -EINVAL);
    asyncio_start_tls_options_t neg = {.ssl_handshake_timeout = -1};
    CHECK_RC(asyncio_loop_start_tls(loop, t, c->cctx, &neg, &out), -EINVAL);
    asyncio_start_tls_options_t nan_ = {.ssl_shutdown_timeout = NAN};
    CHECK_RC(asyncio_loop_start_tls(loop, t, c->cctx, &nan_, &out), -EINVAL);
    /* server_hostname with server_side (the header's contract). */
    asyncio_start_tls_options_t both = {.server_side = true, .server_hostname = "localhost"};
    CHECK_RC(asyncio_loop_start_tls(loop, t, c->sctx, &both, &out), -EINVAL);
    CHECK(p.lost == 0 && !asyncio_transport_is_closing(t)); /* refused: left alone */
    /* After write_eof no handshake can be sent (Python waits for its timeout). */
    CHECK_RC(asyncio_transport_write_eof(t), 0);
    CHECK_RC(asyncio_loop_start_tls(loop, t, c->cctx, NULL, &out), -EINVAL);
    CHECK(out == NULL);
    /* A closed transport. */
    CHECK_RC(asyncio_transport_close(t), 0);
    CHECK_RC(asyncio_loop_start_tls(loop, t, c->sctx, &so, &out), -EINVAL);
    CHECK(out == NULL);
    WAIT_UNTIL(p.lost == 1);
  }
  /* A datagram transport. */
  peer_t d = {0};
  asyncio_datagram_options_t dopt = {.local_host = "127.0.0.1"};
  asyncio_transport_t *dt = NULL;
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &d, &dopt, &dt, NULL), 0);
  if (dt) {
    CHECK_RC(asyncio_loop_start_tls(loop, dt, c->cctx, NULL, &out), -EINVAL);
    CHECK(out == NULL && !asyncio_transport_is_closing(dt));
    CHECK_RC(asyncio_transport_close(dt), 0);
    WAIT_UNTIL(d.lost == 1);
  }
  server_done(srv);

  /* create_default_context */
  SSL_CTX *ctx = (SSL_CTX *)&p;
  CHECK_RC(asyncio_ssl_create_default_context(7, NULL, NULL, &ctx), -EINVAL);
  CHECK(ctx == NULL);
  CHECK_RC(asyncio_ssl_create_default_context(-1, NULL, NULL, &ctx), -EINVAL);
  CHECK_RC(asyncio_ssl_create_default_context(ASYNCIO_SSL_PURPOSE_SERVER_AUTH, NULL, NULL, NULL),
           -EINVAL);
  ctx = (SSL_CTX *)&p;
  CHECK_RC(asyncio_ssl_create_default_context(ASYNCIO_SSL_PURPOSE_SERVER_AUTH,
                                              "/nonexistent/ca.pem", NULL, &ctx),
           ASYNCIO_ESSL);
  CHECK(ctx == NULL);
  CHECK_RC(asyncio_ssl_create_default_context(ASYNCIO_SSL_PURPOSE_CLIENT_AUTH,
                                              "/nonexistent/ca.pem", NULL, &ctx),
           ASYNCIO_ESSL);
  CHECK(ctx == NULL);
  CHECK(ERR_peek_error() == 0); /* OpenSSL's error queue left clean */
  return 0;
}
TEST(argument_errors) { run_tls(args_main); }

/*
 * TLS over a Unix socket end to end (server_hostname is required there),
 * with a client context made from a CA file.
 */
static int unix_main(void *arg) {
  tctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  char path[128];
  snprintf(path, sizeof path, "%s/srv.sock", c->pki.dir);
  c->pool.tmpl.echo = true;
  asyncio_server_options_t so = {.ssl = c->sctx};
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_loop_create_unix_server(loop, pool_factory, &c->pool, path, &so, &srv), 0);
  if (!srv) return -1;
  SSL_CTX *ctx = NULL;
  CHECK_RC(asyncio_ssl_create_default_context(ASYNCIO_SSL_PURPOSE_SERVER_AUTH, c->pki.ca_pem, NULL,
                                              &ctx),
           0);
  asyncio_connection_options_t co = {.ssl = ctx, .server_hostname = "localhost"};
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_unix_connection(loop, peer_factory, &c->cli, path, &co, &t, NULL),
           0);
  if (t) {
    CHECK(asyncio_transport_get_ssl_object(t) != NULL);
    CHECK_RC(asyncio_transport_write(t, "over unix", 9), 0);
    WAIT_UNTIL(c->cli.nrecv == 9);
    CHECK(memcmp(c->cli.data, "over unix", 9) == 0);
    CHECK_RC(asyncio_transport_close(t), 0);
    WAIT_UNTIL(c->cli.lost == 1 && c->pool.peers[0].lost == 1);
    CHECK(c->cli.lost_err == 0 && c->pool.peers[0].lost_err == 0);
  }
  /* The name is still checked over a Unix socket. */
  peer_t p = {0};
  long code = -1;
  co.server_hostname = "example.com";
  co.ssl_verify_code = &code;
  CHECK_RC(asyncio_loop_create_unix_connection(loop, peer_factory, &p, path, &co, &t, NULL),
           ASYNCIO_ESSLCERTVERIFY);
  CHECK(p.made == 0);
  CHECK(code == X509_V_ERR_HOSTNAME_MISMATCH);
  SSL_CTX_free(ctx);
  server_done(srv);
  unlink(path);
  return 0;
}

TEST(unix_socket_tls) {
  static tctx_t c;
  tctx_init(&c);
  assert_int_equal(tls_files(&c.pki), 0);
  assert_ok(run_main(unix_main, &c));
  tctx_free(&c);
  ASSERT_SOFT();
}

/* ---- 10. loop.start_tls ------------------------------------------------------------------- */

typedef struct stls {
  tctx_t *c;
  asyncio_transport_t *t, *app;
  int made, lost, lost_err, eofs;
  char data[256];
  size_t n;
  bool started;
  int rc;
  asyncio_task_t *task;
} stls_t;

static stls_t g_st;

static int srv_upgrade(void *arg) {
  stls_t *s = arg;
  asyncio_start_tls_options_t o = {.server_side = true};
  s->rc = asyncio_loop_start_tls(asyncio_get_running_loop(), s->t, s->c->sctx, &o, &s->app);
  if (s->rc == 0) CHECK_RC(asyncio_transport_write(s->app, "secret hello\n", 13), 0);
  return s->rc;
}

static void st_made(asyncio_transport_t *t, void *u) {
  stls_t *s = u;
  s->t = t;
  s->made++;
}
static void st_lost(asyncio_transport_t *t, int err, void *u) {
  stls_t *s = u;
  CHECK(t == s->app);
  s->lost++;
  s->lost_err = err;
}
static bool st_eof(asyncio_transport_t *t, void *u) {
  ((stls_t *)u)->eofs++;
  return false;
}
static void st_data(asyncio_transport_t *t, const void *d, size_t n, void *u) {
  stls_t *s = u;
  if (s->n + n <= sizeof s->data) {
    memcpy(s->data + s->n, d, n);
    s->n += n;
  }
  if (!s->started && memmem(s->data, s->n, "STARTTLS\n", 9)) {
    /* No byte may reach this protocol in plaintext after STARTTLS: pause
     * first (start_tls resumes), then answer, then upgrade from a task. */
    s->started = true;
    CHECK_RC(asyncio_transport_pause_reading(t), 0);
    CHECK_RC(asyncio_transport_write(t, "GO\n", 3), 0);
    CHECK_RC(asyncio_create_task(&s->task, srv_upgrade, s, NULL), 0);
  }
}
static const asyncio_protocol_t st_proto = {
    .connection_made = st_made,
    .connection_lost = st_lost,
    .data_received = st_data,
    .eof_received = st_eof,
};
static int st_factory(void *arg, const asyncio_protocol_t **proto, void **inst) {
  *proto = &st_proto;
  *inst = arg;
  return 0;
}

static int start_tls_main(void *arg) {
  tctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  g_st.c = c;
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_loop_create_server(loop, st_factory, &g_st, "127.0.0.1", 0, NULL, &srv), 0);
  if (!srv) return -1;
  asyncio_transport_t *t = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &c->cli, "127.0.0.1",
                                          server_port(srv, 0), NULL, &t, NULL),
           0);
  if (!t) return -1;
  CHECK_RC(asyncio_transport_write(t, "hello plain\nSTARTTLS\n", 21), 0);
  WAIT_UNTIL(c->cli.nrecv == 3);
  CHECK(memcmp(c->cli.data, "GO\n", 3) == 0);
  asyncio_start_tls_options_t o = {.server_hostname = "localhost"};
  asyncio_transport_t *app = NULL;
  CHECK_RC(asyncio_loop_start_tls(loop, t, c->cctx, &o, &app), 0);
  if (!app) return -1;
  c->cli.t = app; /* connection_lost will name the app transport */
  CHECK(app != t);
  CHECK(c->cli.made == 1); /* no second connection_made */
  CHECK(asyncio_transport_get_ssl_object(app) != NULL);
  void *inst = NULL;
  CHECK(asyncio_transport_get_protocol(app, &inst) == &proto_plain && inst == &c->cli);
  WAIT_UNTIL(g_st.task && asyncio_future_done(g_st.task));
  CHECK_RC(asyncio_await(g_st.task, NULL), 0);
  CHECK(g_st.made == 1 && g_st.app != NULL && g_st.app != g_st.t);
  WAIT_UNTIL(c->cli.nrecv == 3 + 13);
  CHECK(memcmp(c->cli.data + 3, "secret hello\n", 13) == 0);
  CHECK_RC(asyncio_transport_write(app, "secret reply\n", 13), 0);
  WAIT_UNTIL(g_st.n == 21 + 13);
  CHECK(memcmp(g_st.data, "hello plain\nSTARTTLS\nsecret reply\n", 34) == 0);
  CHECK_RC(asyncio_transport_close(app), 0);
  WAIT_UNTIL(c->cli.lost == 1 && g_st.lost == 1);
  CHECK(c->cli.lost_err == 0 && g_st.lost_err == 0);
  CHECK(c->cli.eofs == 1 && g_st.eofs == 1);
  CHECK(g_st.made == 1 && c->cli.made == 1);
  asyncio_task_free(g_st.task);
  server_done(srv);
  return 0;
}

TEST(start_tls_upgrade) {
  memset(&g_st, 0, sizeof g_st);
  run_tls(start_tls_main);
}

/* start_tls cancelled (or timed out) while the peer never answers the ClientHello. */
typedef struct upg {
  asyncio_transport_t *t;
  SSL_CTX *ctx;
  asyncio_start_tls_options_t o;
  asyncio_transport_t *app;
  int rc;
} upg_t;

static int upgrade_task(void *arg) {
  upg_t *u = arg;
  u->rc = asyncio_loop_start_tls(asyncio_get_running_loop(), u->t, u->ctx, &u->o, &u->app);
  return u->rc;
}

static int start_tls_cancel_main(void *arg) {
  tctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, "127.0.0.1", 0, NULL, &srv), 0);
  if (!srv) return -1;
  int port = server_port(srv, 0);
  peer_t ps[2] = {{0}};
  for (int round = 0; round < 2; round++) {
    peer_t *pp = &ps[round];
    asyncio_transport_t *t = NULL;
    CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, pp, "127.0.0.1", port, NULL, &t,
                                            NULL),
             0);
    if (!t) break;
    pp->t = NULL; /* connection_lost, if it comes, names the app transport */
    upg_t u = {.t = t, .ctx = c->cctx, .o = {.server_hostname = "localhost"}};
    if (round == 1) u.o.ssl_handshake_timeout = 0.2;
    asyncio_task_t *task = NULL;
    CHECK_RC(asyncio_create_task(&task, upgrade_task, &u, NULL), 0);
    if (!task) break;
    peer_t *sp = &c->pool.peers[round];
    WAIT_UNTIL(c->pool.n == round + 1 && sp->nrecv > 0); /* the ClientHello arrived */
    if (round == 0) {
      CHECK_RC(asyncio_task_cancel(task, NULL), 1);
      CHECK_RC(asyncio_await(task, NULL), -ECANCELED);
    } else {
      CHECK_RC(asyncio_await(task, NULL), -ECONNABORTED);
    }
    asyncio_task_free(task);
    CHECK(u.app == NULL);
    /* The transport was closed: the server sees the end, and the protocol,
     * which saw connection_made before the upgrade, gets its connection_lost
     * (exactly once; Python skips it after a handshake timeout). */
    WAIT_UNTIL(sp->lost == 1 && pp->lost == 1);
    for (int k = 0; k < 10; k++) CHECK_RC(asyncio_sleep(0.001), 0);
    CHECK(pp->made == 1 && pp->lost == 1);
    CHECK(pp->lost_err == (round == 0 ? 0 : -ECONNABORTED));
  }
  server_done(srv);
  return 0;
}
TEST(start_tls_cancelled_and_timeout) { run_tls(start_tls_cancel_main); }

/* ---- 11. cancellation of create_connection during the handshake ---------------------------- */

typedef struct conn_task {
  tctx_t *c;
  int port, rc;
  asyncio_transport_t *t;
} conn_task_t;

static int connect_task(void *arg) {
  conn_task_t *k = arg;
  k->rc = tls_connect(k->c->cctx, "localhost", &k->c->cli, k->port, &k->t);
  return k->rc;
}

static int cancel_main(void *arg) {
  tctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_server_t *srv = NULL; /* plain and silent: the handshake never ends */
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &c->pool, "127.0.0.1", 0, NULL, &srv), 0);
  if (!srv) return -1;
  conn_task_t k = {.c = c, .port = server_port(srv, 0)};
  asyncio_task_t *task = NULL;
  CHECK_RC(asyncio_create_task(&task, connect_task, &k, NULL), 0);
  if (!task) return -1;
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].nrecv > 0);
  CHECK(!asyncio_future_done(task));
  CHECK_RC(asyncio_task_cancel(task, NULL), 1);
  CHECK_RC(asyncio_await(task, NULL), -ECANCELED);
  asyncio_task_free(task);
  CHECK(k.rc == -ECANCELED && k.t == NULL);
  WAIT_UNTIL(c->pool.peers[0].lost == 1);
  CHECK(c->cli.made == 0 && c->cli.lost == 0);

  /* The same under an asyncio.timeout scope: -ECANCELED inside, -ETIMEDOUT outside. */
  asyncio_timeout_t *tm = NULL;
  CHECK_RC(asyncio_timeout_enter(&tm, 0.1), 0);
  asyncio_transport_t *t = NULL;
  int rc = tls_connect(c->cctx, "localhost", &c->cli, k.port, &t);
  CHECK_RC(rc, -ECANCELED);
  CHECK_RC(asyncio_timeout_exit(tm, rc), -ETIMEDOUT);
  asyncio_timeout_free(tm);
  CHECK(t == NULL && c->cli.made == 0 && c->cli.lost == 0);
  WAIT_UNTIL(c->pool.n == 2 && c->pool.peers[1].lost == 1);
  server_done(srv);
  return 0;
}
TEST(create_connection_cancelled_in_handshake) { run_tls(cancel_main); }

/* ---- 12. transport information ------------------------------------------------------------- */

static int addr_is(const struct sockaddr_storage *ss, int port) {
  const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
  return ss->ss_family == AF_INET && ntohs(a->sin_port) == port &&
         a->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
}

static int info_main(void *arg) {
  tctx_t *c = arg;
  int port = 0;
  asyncio_server_t *srv = tls_server(c, NULL, &port);
  if (!srv) return -1;
  asyncio_transport_t *t = NULL;
  CHECK_RC(tls_connect(c->cctx, "localhost", &c->cli, port, &t), 0);
  if (!t) return -1;
  WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].made == 1);
  asyncio_transport_t *st = c->pool.peers[0].t;
  struct sockaddr_storage peer, sock, speer, ssock, raw;
  socklen_t l1 = sizeof peer, l2 = sizeof sock, l3 = sizeof speer, l4 = sizeof ssock;
  CHECK_RC(asyncio_transport_get_peername(t, (struct sockaddr *)&peer, &l1), 0);
  CHECK_RC(asyncio_transport_get_sockname(t, (struct sockaddr *)&sock, &l2), 0);
  CHECK_RC(asyncio_transport_get_peername(st, (struct sockaddr *)&speer, &l3), 0);
  CHECK_RC(asyncio_transport_get_sockname(st, (struct sockaddr *)&ssock, &l4), 0);
  CHECK(l1 == sizeof(struct sockaddr_in) && addr_is(&peer, port));
  CHECK(addr_is(&ssock, port));
  CHECK(addr_is(&sock, addr_port(&speer)) && addr_is(&speer, addr_port(&sock)));
  /* get_fd: the socket underneath. */
  int fd = asyncio_transport_get_fd(t);
  CHECK(fd >= 0);
  socklen_t lr = sizeof raw;
  CHECK(fd >= 0 && getsockname(fd, (struct sockaddr *)&raw, &lr) == 0 && lr == l2 &&
        memcmp(&raw, &sock, lr) == 0);
  CHECK(asyncio_transport_get_fd(st) >= 0 && asyncio_transport_get_fd(st) != fd);
  /* The OpenSSL objects. */
  SSL *ssl = asyncio_transport_get_ssl_object(t), *sssl = asyncio_transport_get_ssl_object(st);
  CHECK(ssl != NULL && sssl != NULL && ssl != sssl);
  if (ssl && sssl) {
    CHECK(strcmp(SSL_get_version(ssl), "TLSv1.3") == 0 ||
          strcmp(SSL_get_version(ssl), "TLSv1.2") == 0);
    CHECK(strcmp(SSL_get_version(ssl), SSL_get_version(sssl)) == 0);
    X509 *cert = SSL_get0_peer_certificate(ssl);
    CHECK(cert != NULL && X509_cmp(cert, c->pki.srv) == 0);
    CHECK(SSL_get0_peer_certificate(sssl) == NULL); /* no client certificate asked for */
    CHECK(SSL_get_verify_result(ssl) == X509_V_OK);
    CHECK(SSL_get_current_cipher(ssl) != NULL);
    CHECK(!SSL_is_server(ssl) && SSL_is_server(sssl));
  }
  CHECK(asyncio_transport_get_sslcontext(t) == c->cctx);
  CHECK(asyncio_transport_get_sslcontext(st) == c->sctx);
  CHECK(asyncio_transport_get_ssl_object(NULL) == NULL);
  CHECK(asyncio_transport_get_sslcontext(NULL) == NULL);
  CHECK(asyncio_transport_get_write_buffer_size(t) == 0);
  CHECK(asyncio_transport_is_reading(t) && !asyncio_transport_is_closing(t));
  CHECK(asyncio_transport_get_loop(t) == asyncio_get_running_loop());
  void *inst = NULL;
  CHECK(asyncio_transport_get_protocol(t, &inst) == &proto_plain && inst == &c->cli);
  CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(c->cli.lost == 1 && c->pool.peers[0].lost == 1);
  server_done(srv);
  return 0;
}
TEST(transport_info_and_ssl_object) { run_tls(info_main); }

/* ---- 13. loop.sendfile over TLS (the fallback path) ----------------------------------- */

static int sendfile_main(void *arg) {
  tctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  pattern_init();
  char path[] = "/tmp/asyncio-ssl-sendfile-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0) return -1;
  unlink(path);
  size_t size = (3u << 20) + 5;
  for (size_t off = 0; off < size;) {
    size_t n = size - off < PAT_PERIOD ? size - off : PAT_PERIOD;
    CHECK(write(fd, pattern, n) == (ssize_t)n);
    off += n;
  }
  uint64_t sum = FNV_INIT;
  for (size_t off = 0; off < size;) {
    size_t n = size - off < PAT_PERIOD ? size - off : PAT_PERIOD;
    sum = fnv(sum, pattern, n);
    off += n;
  }
  int port = 0;
  asyncio_server_t *srv = tls_server(c, NULL, &port);
  asyncio_transport_t *t = NULL;
  if (srv) CHECK_RC(tls_connect(c->cctx, "localhost", &c->cli, port, &t), 0);
  if (t) {
    size_t sent = 0;
    CHECK_RC(asyncio_loop_sendfile(loop, t, fd, 0, 0, &sent, NULL), 0);
    CHECK(sent == size);
    CHECK(lseek(fd, 0, SEEK_CUR) == (off_t)size);
    /* A slice: offset 10, 1000 bytes. */
    CHECK_RC(asyncio_loop_sendfile(loop, t, fd, 10, 1000, &sent, NULL), 0);
    CHECK(sent == 1000);
    sum = fnv(sum, pattern + 10, 1000);
    /* no_fallback: TLS has no native path. */
    asyncio_sendfile_options_t nf = {.no_fallback = true};
    CHECK_RC(asyncio_loop_sendfile(loop, t, fd, 0, 0, &sent, &nf), ASYNCIO_ESENDFILENOTAVAILABLE);
    WAIT_UNTIL(c->pool.n == 1 && c->pool.peers[0].nrecv >= size + 1000);
    CHECK(c->pool.peers[0].nrecv == size + 1000 && c->pool.peers[0].sum == sum);
    CHECK_RC(asyncio_transport_write(t, "after", 5), 0); /* usable again */
    WAIT_UNTIL(c->pool.peers[0].nrecv == size + 1005);
    CHECK_RC(asyncio_transport_close(t), 0);
    WAIT_UNTIL(c->cli.lost == 1 && c->pool.peers[0].lost == 1);
  }
  close(fd);
  if (srv) server_done(srv);
  return 0;
}
TEST(sendfile_over_tls) { run_tls(sendfile_main); }

/* ---- 14. the loop closes with TLS connections open --------------------------------------- */

typedef struct lc {
  tctx_t *c;
  asyncio_server_t *srv, *plain;
  peer_t a, b;
} lc_t;

static lc_t g_lc;

static int hang_task(void *arg) {
  asyncio_transport_t *t = NULL;
  return tls_connect(g_lc.c->cctx, "localhost", &g_lc.b, *(int *)arg, &t);
}

static int loop_close_main(void *arg) {
  tctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  g_lc.c = c;
  c->pool.tmpl.echo = true;
  int port = 0;
  g_lc.srv = tls_server(c, NULL, &port);
  if (!g_lc.srv) return -1;
  /* One open and busy, ... */
  asyncio_transport_t *t = NULL, *t2 = NULL;
  CHECK_RC(tls_connect(c->cctx, "localhost", &c->cli, port, &t), 0);
  if (!t) return -1;
  CHECK_RC(asyncio_transport_write(t, "data", 4), 0);
  WAIT_UNTIL(c->cli.nrecv == 4);
  CHECK_RC(asyncio_transport_write(t, pattern, sizeof pattern), 0);
  /* ... one closing (its close_notify on the way), ... */
  CHECK_RC(tls_connect(c->cctx, "localhost", &g_lc.a, port, &t2), 0);
  if (t2) CHECK_RC(asyncio_transport_close(t2), 0);
  /* ... and one in its handshake with a silent plain server (the task is cancelled). */
  static pool_t silent_pool;
  memset(&silent_pool, 0, sizeof silent_pool);
  CHECK_RC(asyncio_loop_create_server(loop, pool_factory, &silent_pool, "127.0.0.1", 0, NULL,
                                      &g_lc.plain),
           0);
  static int plain_port;
  plain_port = g_lc.plain ? server_port(g_lc.plain, 0) : 0;
  CHECK_RC(asyncio_create_task(NULL, hang_task, &plain_port, NULL), 0);
  WAIT_UNTIL(silent_pool.n == 1 && silent_pool.peers[0].nrecv > 0);
  return 0;
}

TEST(loop_close_with_open_connections) {
  static tctx_t c;
  memset(&g_lc, 0, sizeof g_lc);
  pattern_init();
  tctx_init(&c);
  assert_ok(run_main(loop_close_main, &c));
  /* The servers are the caller's: freed after the loop, their clients with it. */
  if (g_lc.srv) assert_ok(asyncio_server_free(g_lc.srv));
  if (g_lc.plain) assert_ok(asyncio_server_free(g_lc.plain));
  tctx_free(&c);
  ASSERT_SOFT();
}

/* ---- 15. TLS in TLS: start_tls on a TLS transport ------------------------------------------ */

/* The server side's upgrade, from its protocol's connection_made (bk_made). */
static int nest_server_task(void *arg) {
  bulk_t *b = arg;
  asyncio_start_tls_options_t o = {.server_side = true};
  asyncio_transport_t *app = NULL;
  b->t = NULL; /* until the upgrade gives the transport to use */
  b->nest_rc = asyncio_loop_start_tls(asyncio_get_running_loop(), b->outer, b->nest_ctx, &o, &app);
  if (b->nest_rc == 0) b->t = app;
  return 0;
}

/*
 * close_notify alerts as the message callbacks of the four contexts see
 * them, in order: "CI>" = client, inner layer, sent; "SO<" = server, outer
 * layer, received.
 */
typedef struct nctx {
  tctx_t *c;
  SSL_CTX *cin, *sin; /* the inner layer's contexts (the outer's are c->cctx / c->sctx) */
  bulk_t srv, cli;
  bwriter_t ws, wc;
  asyncio_transport_t *cli_outer;
  char alerts[16][4];
  int nalerts;
} nctx_t;

static nctx_t g_n;

static void note_close_notify(int write_p, int version, int content_type, const void *buf,
                              size_t len, SSL *ssl, void *arg) {
  const unsigned char *p = buf;
  (void)version;
  (void)ssl;
  if (content_type != SSL3_RT_ALERT || len < 2 || p[1] != SSL_AD_CLOSE_NOTIFY) return;
  if (g_n.nalerts < 16)
    snprintf(g_n.alerts[g_n.nalerts], sizeof g_n.alerts[0], "%s%c", (const char *)arg,
             write_p ? '>' : '<');
  g_n.nalerts++;
}

static int alert_at(const char *ev) {
  int at = -1;
  for (int i = 0; i < g_n.nalerts && i < 16; i++)
    if (strcmp(g_n.alerts[i], ev) == 0) {
      CHECK(at < 0); /* once */
      at = i;
    }
  return at;
}

static void nest_init(tctx_t *c) {
  memset(&g_n, 0, sizeof g_n);
  g_n.c = c;
  g_n.cin = tls_client_ctx(&c->pki, 0);
  g_n.sin = tls_server_ctx(&c->pki);
  SSL_CTX_set_msg_callback(c->cctx, note_close_notify);
  SSL_CTX_set_msg_callback_arg(c->cctx, "CO");
  SSL_CTX_set_msg_callback(c->sctx, note_close_notify);
  SSL_CTX_set_msg_callback_arg(c->sctx, "SO");
  SSL_CTX_set_msg_callback(g_n.cin, note_close_notify);
  SSL_CTX_set_msg_callback_arg(g_n.cin, "CI");
  SSL_CTX_set_msg_callback(g_n.sin, note_close_notify);
  SSL_CTX_set_msg_callback_arg(g_n.sin, "SI");
  g_n.srv.nest_ctx = g_n.sin;
}

static void nest_free(void) {
  SSL_CTX_free(g_n.cin);
  SSL_CTX_free(g_n.sin);
}

/*
 * A TLS server whose protocol upgrades its TLS transport again (server
 * side), and a client that connects with TLS and then runs start_tls on its
 * TLS transport: two TLS layers, each verified, over one socket.  o are the
 * client's inner options (NULL: check "localhost").  Returns the server, or
 * NULL (the inner handshake's error in *rc).
 */
static asyncio_server_t *nest_pair(const asyncio_start_tls_options_t *o, SSL_CTX *cin, int *rc) {
  tctx_t *c = g_n.c;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_server_options_t so = {.ssl = c->sctx};
  asyncio_server_t *srv = NULL;
  *rc = -1;
  CHECK_RC(asyncio_loop_create_server(loop, bulk_factory, &g_n.srv, "127.0.0.1", 0, &so, &srv), 0);
  if (!srv) return NULL;
  asyncio_connection_options_t co = {.ssl = c->cctx, .server_hostname = "localhost"};
  asyncio_transport_t *outer = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, bulk_factory, &g_n.cli, "127.0.0.1",
                                          server_port(srv, 0), &co, &outer, NULL),
           0);
  if (!outer) {
    server_done(srv);
    return NULL;
  }
  g_n.cli_outer = outer;
  asyncio_start_tls_options_t d = {.server_hostname = "localhost"};
  asyncio_transport_t *inner = NULL;
  g_n.cli.t = NULL;
  *rc = asyncio_loop_start_tls(loop, outer, cin ? cin : g_n.cin, o ? o : &d, &inner);
  if (*rc) return srv;
  g_n.cli.t = inner;
  for (int i = 0; i < 20000 && g_n.srv.nest_rc == 1; i++) CHECK_RC(asyncio_sleep(0.001), 0);
  CHECK(g_n.srv.nest_rc == 0 && g_n.srv.t != NULL);
  CHECK(g_n.srv.made == 1 && g_n.cli.made == 1);
  return srv;
}

/*
 * Echo through both layers; each layer has its own SSL object and
 * context, and the inner transport answers for the socket underneath.
 * close() on the inner transport: its close_notify goes both ways first,
 * then the outer layer's, on each side; each protocol gets one
 * eof_received and connection_lost(0).
 */
static int nest_echo_main(void *arg) {
  tctx_t *c = arg;
  nest_init(c);
  g_n.srv.echo = true;
  int rc;
  asyncio_server_t *srv = nest_pair(NULL, NULL, &rc);
  CHECK_RC(rc, 0);
  asyncio_transport_t *t = g_n.cli.t;
  if (!srv || !t) goto out;
  SSL *in = asyncio_transport_get_ssl_object(t);
  SSL *out = asyncio_transport_get_ssl_object(g_n.cli_outer);
  CHECK(in != NULL && out != NULL && in != out);
  CHECK(asyncio_transport_get_sslcontext(t) == g_n.cin);
  CHECK(asyncio_transport_get_sslcontext(g_n.cli_outer) == c->cctx);
  CHECK(asyncio_transport_get_sslcontext(g_n.srv.t) == g_n.sin);
  if (in) CHECK(SSL_get_verify_result(in) == X509_V_OK && SSL_get0_peer_certificate(in));
  int fd = asyncio_transport_get_fd(t);
  CHECK(fd >= 0 && fd == asyncio_transport_get_fd(g_n.cli_outer));
  struct sockaddr_storage a1, a2;
  socklen_t l1 = sizeof a1, l2 = sizeof a2;
  CHECK_RC(asyncio_transport_get_peername(t, (struct sockaddr *)&a1, &l1), 0);
  CHECK(getpeername(fd, (struct sockaddr *)&a2, &l2) == 0 && l1 == l2 && !memcmp(&a1, &a2, l1));
  CHECK(!asyncio_transport_can_write_eof(t));
  const char *msg = "through two layers";
  size_t n = strlen(msg);
  CHECK_RC(asyncio_transport_write(t, msg, n), 0);
  WAIT_UNTIL(g_n.cli.nrecv == n);
  CHECK(g_n.srv.sum == fnv(FNV_INIT, msg, n) && g_n.cli.sum == g_n.srv.sum);
  CHECK(g_n.nalerts == 0);
  CHECK_RC(asyncio_transport_close(t), 0);
  /* A closing TLS transport is not upgraded again. */
  asyncio_transport_t *again = NULL;
  CHECK_RC(asyncio_loop_start_tls(asyncio_get_running_loop(), t, g_n.cin, NULL, &again), -EINVAL);
  CHECK(again == NULL);
  WAIT_UNTIL(g_n.cli.lost == 1 && g_n.srv.lost == 1);
  CHECK(g_n.cli.lost_err == 0 && g_n.srv.lost_err == 0);
  CHECK(g_n.cli.eofs == 1 && g_n.srv.eofs == 1);
  /*
   * Each layer's close_notify both ways, once; each side writes the inner
   * layer's first (the order they are received in is not what the callbacks
   * show: the outer layer decrypts several records before it hands their
   * plaintext on, so it may see its close_notify before the inner layer
   * sees the one that came first; were it really first, the outer layer
   * would fail on the data after it).
   */
  CHECK(g_n.nalerts == 8);
  static const char *const sides[2] = {"C", "S"};
  for (int i = 0; i < 2; i++) {
    char ev[4][4];
    snprintf(ev[0], 4, "%sI>", sides[i]);
    snprintf(ev[1], 4, "%sO>", sides[i]);
    snprintf(ev[2], 4, "%sI<", sides[i]);
    snprintf(ev[3], 4, "%sO<", sides[i]);
    int si = alert_at(ev[0]), so = alert_at(ev[1]), ri = alert_at(ev[2]), ro = alert_at(ev[3]);
    CHECK(si >= 0 && so >= 0 && ri >= 0 && ro >= 0);
    CHECK(si < so);
  }
out:
  if (srv) server_done(srv);
  nest_free();
  return 0;
}
TEST(tls_in_tls_echo_and_close_order) { run_tls(nest_echo_main); }

/* A few MiB each way at once through both layers, with both layers' flow control. */
#define NEST_BIG ((size_t)6 << 20)

static int nest_big_main(void *arg) {
  tctx_t *c = arg;
  pattern_init();
  nest_init(c);
  int rc;
  asyncio_server_t *srv = nest_pair(NULL, NULL, &rc);
  CHECK_RC(rc, 0);
  if (!srv || !g_n.cli.t) goto out;
  g_n.wc = (bwriter_t){.b = &g_n.cli, .total = NEST_BIG};
  g_n.ws = (bwriter_t){.b = &g_n.srv, .total = NEST_BIG};
  asyncio_task_t *tc = NULL, *ts = NULL;
  CHECK_RC(asyncio_create_task(&tc, writer_task, &g_n.wc, NULL), 0);
  CHECK_RC(asyncio_create_task(&ts, writer_task, &g_n.ws, NULL), 0);
  if (tc) CHECK_RC(asyncio_await(tc, NULL), 0);
  if (ts) CHECK_RC(asyncio_await(ts, NULL), 0);
  asyncio_task_free(tc);
  asyncio_task_free(ts);
  WAIT_UNTIL(g_n.srv.nrecv >= NEST_BIG && g_n.cli.nrecv >= NEST_BIG);
  CHECK(g_n.srv.nrecv == NEST_BIG && g_n.srv.sum == g_n.wc.sum);
  CHECK(g_n.cli.nrecv == NEST_BIG && g_n.cli.sum == g_n.ws.sum);
  CHECK(g_n.cli.npause > 0 && g_n.srv.npause > 0);
  CHECK(!g_n.cli.alt_bad && !g_n.srv.alt_bad);
  CHECK(g_n.wc.maxbuf < 512 * 1024 + CHUNK && g_n.ws.maxbuf < 512 * 1024 + CHUNK);
  CHECK_RC(asyncio_transport_close(g_n.cli.t), 0);
  WAIT_UNTIL(g_n.cli.lost == 1 && g_n.srv.lost == 1);
  CHECK(g_n.cli.lost_err == 0 && g_n.srv.lost_err == 0);
out:
  if (srv) server_done(srv);
  nest_free();
  return 0;
}
TEST(tls_in_tls_large_transfer) { run_tls(nest_big_main); }

/*
 * abort() on the inner transport ends both layers at once (no close_notify
 * at all); an inner shutdown that times out, and an inner layer's TLS
 * error, report their error through the outer layer, which passes it down
 * to the socket.
 */
static int nest_abort_main(void *arg) {
  tctx_t *c = arg;
  nest_init(c);
  int rc;
  asyncio_server_t *srv = nest_pair(NULL, NULL, &rc);
  CHECK_RC(rc, 0);
  if (!srv || !g_n.cli.t) goto out;
  CHECK_RC(asyncio_transport_write(g_n.cli.t, "x", 1), 0);
  WAIT_UNTIL(g_n.srv.nrecv == 1);
  CHECK_RC(asyncio_transport_abort(g_n.cli.t), 0);
  WAIT_UNTIL(g_n.cli.lost == 1 && g_n.srv.lost == 1);
  CHECK(g_n.cli.lost_err == 0 && g_n.cli.eofs == 0);
  CHECK(g_n.srv.lost_err == 0 || g_n.srv.lost_err == -ECONNRESET);
  CHECK(g_n.nalerts == 0);
  server_done(srv);
  srv = NULL;

  /* The inner close_notify is never answered: the server's app paused reading. */
  memset(&g_n.srv, 0, sizeof g_n.srv);
  memset(&g_n.cli, 0, sizeof g_n.cli);
  g_n.srv.nest_ctx = g_n.sin;
  asyncio_start_tls_options_t o = {.server_hostname = "localhost", .ssl_shutdown_timeout = 0.2};
  srv = nest_pair(&o, NULL, &rc);
  CHECK_RC(rc, 0);
  if (!srv || !g_n.cli.t || !g_n.srv.t) goto out;
  CHECK_RC(asyncio_transport_pause_reading(g_n.srv.t), 0);
  CHECK_RC(asyncio_transport_close(g_n.cli.t), 0);
  WAIT_UNTIL(g_n.cli.lost == 1);
  CHECK(g_n.cli.lost_err == -ETIMEDOUT);
  WAIT_UNTIL(g_n.srv.lost == 1);
  server_done(srv);
  srv = NULL;

  /*
   * Bytes that are no TLS record reach the client's inner layer (written on
   * the server's outer transport, which its protocol gave up): that layer's
   * error ends the connection, and comes up as connection_lost's error.
   */
  memset(&g_n.srv, 0, sizeof g_n.srv);
  memset(&g_n.cli, 0, sizeof g_n.cli);
  g_n.srv.nest_ctx = g_n.sin;
  srv = nest_pair(NULL, NULL, &rc);
  CHECK_RC(rc, 0);
  if (!srv || !g_n.cli.t || !g_n.srv.t) goto out;
  CHECK_RC(asyncio_transport_write(g_n.srv.outer, "\x17\x03\x03\x00\x05hello", 10), 0);
  WAIT_UNTIL(g_n.cli.lost == 1 && g_n.srv.lost == 1);
  CHECK(g_n.cli.lost_err == ASYNCIO_ESSL);
  CHECK(g_n.cli.nrecv == 0 && g_n.cli.eofs == 0);
out:
  if (srv) server_done(srv);
  nest_free();
  return 0;
}
TEST(tls_in_tls_abort_and_errors) { run_tls(nest_abort_main); }

/*
 * The inner handshake fails verification: start_tls returns it with the
 * reason, the outer connection is closed with it, and each protocol (which
 * saw connection_made before the upgrade) gets its one connection_lost.
 */
static int nest_verify_main(void *arg) {
  tctx_t *c = arg;
  nest_init(c);
  SSL_CTX *wrong = tls_client_ctx(&c->pki, 1);
  long code = -1;
  asyncio_start_tls_options_t o = {.server_hostname = "localhost", .ssl_verify_code = &code};
  int rc;
  asyncio_server_t *srv = nest_pair(&o, wrong, &rc);
  CHECK_RC(rc, ASYNCIO_ESSLCERTVERIFY);
  CHECK(code == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  WAIT_UNTIL(g_n.cli.lost == 1 && g_n.srv.lost == 1 && g_n.srv.nest_rc != 1);
  CHECK(g_n.srv.nest_rc < 0);
  CHECK(g_n.cli.lost_err == ASYNCIO_ESSLCERTVERIFY);
  CHECK(g_n.cli.made == 1 && g_n.srv.made == 1 && g_n.cli.nrecv == 0 && g_n.srv.nrecv == 0);
  for (int k = 0; k < 10; k++) CHECK_RC(asyncio_sleep(0.001), 0);
  CHECK(g_n.cli.lost == 1 && g_n.srv.lost == 1);
  SSL_CTX_free(wrong);
  if (srv) server_done(srv);
  nest_free();
  return 0;
}
TEST(tls_in_tls_verify_failure) { run_tls(nest_verify_main); }

/* The loop closes under an open TLS-in-TLS connection with data in flight: nothing leaks. */
static asyncio_server_t *g_nest_srv;

static int nest_loop_close_main(void *arg) {
  tctx_t *c = arg;
  pattern_init();
  nest_init(c);
  int rc;
  g_nest_srv = nest_pair(NULL, NULL, &rc);
  CHECK_RC(rc, 0);
  if (g_n.cli.t) {
    CHECK_RC(asyncio_transport_write(g_n.cli.t, pattern, PAT_PERIOD), 0);
    CHECK_RC(asyncio_transport_write(g_n.srv.t, pattern, PAT_PERIOD), 0);
    WAIT_UNTIL(g_n.srv.nrecv > 0);
  }
  return 0;
}

TEST(tls_in_tls_loop_close) {
  static tctx_t c;
  g_nest_srv = NULL;
  tctx_init(&c);
  assert_ok(run_main(nest_loop_close_main, &c));
  if (g_nest_srv) assert_ok(asyncio_server_free(g_nest_srv));
  nest_free();
  tctx_free(&c);
  ASSERT_SOFT();
}

/* ---- 16. allocation failures ------------------------------------------------------------- */

static void silent(asyncio_loop_t *loop, const asyncio_error_context_t *ctx, void *ud) {
  (void)loop;
  (void)ctx;
  (*(int *)ud)++;
}

typedef struct big_pool {
  peer_t *peers;
  int n, cap;
} big_pool_t;

static int big_pool_factory(void *arg, const asyncio_protocol_t **proto, void **inst) {
  big_pool_t *bp = arg;
  if (bp->n == bp->cap) return -ENOMEM;
  peer_t *p = &bp->peers[bp->n++];
  memset(p, 0, sizeof *p);
  p->echo = true;
  *proto = &proto_plain;
  *inst = p;
  return 0;
}

/*
 * The nth allocation fails, for n = 1, 2, ... until a connection needs
 * fewer: on either side (the client's create_connection, the server's
 * accept and handshake).  Nothing may crash or leak; the client sees an
 * error or a working connection, and the server keeps serving.
 */
static int alloc_main(void *arg) {
  tctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  int reports = 0;
  CHECK_RC(asyncio_loop_set_exception_handler(loop, silent, &reports), 0);
  big_pool_t bp = {.peers = calloc(1000, sizeof(peer_t)), .cap = 1000};
  asyncio_server_options_t so = {.ssl = c->sctx};
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_loop_create_server(loop, big_pool_factory, &bp, "127.0.0.1", 0, &so, &srv), 0);
  if (!srv || !bp.peers) return -1;
  int port = server_port(srv, 0);
  int ok = 0, failed = 0;
  peer_t *cls = calloc(1000, sizeof(peer_t));
  for (long n = 1; n < 1000; n++) {
    peer_t *p = &cls[n];
    asyncio_transport_t *t = NULL;
    long before = harness_total_allocs();
    harness_fail_alloc_after(n);
    int rc = tls_connect(c->cctx, "localhost", p, port, &t);
    harness_fail_alloc_after(0);
    bool injected = harness_total_allocs() - before >= n;
    if (rc != 0 && rc != -ENOMEM && rc != -ECONNRESET && rc != ASYNCIO_ESSL && !soft_fail[0])
      snprintf(soft_fail, sizeof soft_fail, "n=%ld: %s", n, asyncio_errname(rc));
    if (rc == 0) {
      ok++;
      CHECK(t != NULL && p->made == 1);
      CHECK_RC(asyncio_transport_write(t, "ab", 2), 0);
      WAIT_UNTIL(p->nrecv == 2 || p->lost);
      if (!p->lost) CHECK_RC(asyncio_transport_close(t), 0);
      WAIT_UNTIL(p->lost == 1);
    } else {
      failed++;
      CHECK(t == NULL && p->made == 0 && p->lost == 0);
    }
    if (!injected) {
      CHECK(rc == 0);
      break;
    }
  }
  CHECK(ok > 0 && failed > 0);
  /* A clean connection still works afterwards. */
  peer_t *p = &cls[0];
  asyncio_transport_t *t = NULL;
  CHECK_RC(tls_connect(c->cctx, "localhost", p, port, &t), 0);
  if (t) {
    CHECK_RC(asyncio_transport_write(t, "ok", 2), 0);
    WAIT_UNTIL(p->nrecv == 2);
    CHECK_RC(asyncio_transport_close(t), 0);
    WAIT_UNTIL(p->lost == 1);
  }
  /* Server-side connections whose handshake failed end on their own; the rest are closed. */
  CHECK_RC(asyncio_server_close_clients(srv), 0);
  server_done(srv);
  free(cls);
  free(bp.peers);
  CHECK_RC(asyncio_loop_set_exception_handler(loop, NULL, NULL), 0);
  return 0;
}
TEST(alloc_failures) { run_tls(alloc_main); }

/*
 * The same with a fresh loop for every n: nothing is cached yet (per-loop
 * buffers, free lists), so many more allocations can fail, on both sides.
 */
static long g_alloc_n;
static bool g_alloc_injected;

static int alloc_cold_main(void *arg) {
  tctx_t *c = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  int reports = 0;
  CHECK_RC(asyncio_loop_set_exception_handler(loop, silent, &reports), 0);
  c->pool.tmpl.echo = true;
  int port = 0;
  asyncio_server_t *srv = tls_server(c, NULL, &port);
  if (!srv) return -1;
  asyncio_transport_t *t = NULL;
  long before = harness_total_allocs();
  harness_fail_alloc_after(g_alloc_n);
  int rc = tls_connect(c->cctx, "localhost", &c->cli, port, &t);
  harness_fail_alloc_after(0);
  g_alloc_injected = harness_total_allocs() - before >= g_alloc_n;
  if (rc != 0 && rc != -ENOMEM && rc != -ECONNRESET && rc != ASYNCIO_ESSL && !soft_fail[0])
    snprintf(soft_fail, sizeof soft_fail, "n=%ld: %s", g_alloc_n, asyncio_errname(rc));
  if (rc == 0) {
    CHECK(t != NULL && c->cli.made == 1);
    CHECK_RC(asyncio_transport_write(t, "ab", 2), 0);
    WAIT_UNTIL(c->cli.nrecv == 2 || c->cli.lost);
    if (!c->cli.lost) CHECK_RC(asyncio_transport_close(t), 0);
    WAIT_UNTIL(c->cli.lost == 1);
  } else {
    CHECK(t == NULL && c->cli.made == 0 && c->cli.lost == 0);
  }
  CHECK_RC(asyncio_server_close_clients(srv), 0);
  server_done(srv);
  CHECK_RC(asyncio_loop_set_exception_handler(loop, NULL, NULL), 0);
  return 0;
}

TEST(alloc_failures_fresh_loop) {
  static tctx_t c;
  tctx_init(&c);
  long n;
  for (n = 1; n < 2000; n++) {
    memset(&c.pool, 0, sizeof c.pool);
    memset(&c.cli, 0, sizeof c.cli);
    g_alloc_n = n;
    int rc = run_main(alloc_cold_main, &c);
    if (rc != 0 && !soft_fail[0])
      snprintf(soft_fail, sizeof soft_fail, "n=%ld: run: %s", n, asyncio_errname(rc));
    if (harness_live_allocs() != 0 && !soft_fail[0])
      snprintf(soft_fail, sizeof soft_fail, "n=%ld: %ld allocation(s) leaked", n,
               harness_live_allocs());
    if (soft_fail[0] || !g_alloc_injected) break;
  }
  tctx_free(&c);
  ASSERT_SOFT();
  assert_true(n > 1 && n < 2000);
}
