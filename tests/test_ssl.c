/*
 * test_ssl.c - TLS (include/asyncio/sslproto.h): create_connection /
 * create_server / open_connection / start_server with ssl=, start_tls.
 *
 * Python origin: Lib/asyncio/sslproto.py and Lib/test/test_asyncio/
 * test_sslproto.py, test_ssl.py.  Certificates are made in the test
 * (tls_helpers.h).  Real sockets on 127.0.0.1, port 0.
 */
#include "net_helpers.h"
#include "stream_helpers.h"
#include "tls_helpers.h"

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
