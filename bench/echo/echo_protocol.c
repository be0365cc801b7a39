/*
 * echo_protocol.c - our protocol echo server for the TCP echo benchmark
 * (issue 5, docs/bench.md): asyncio_loop_create_server with a Protocol
 * whose data_received writes the bytes back, as Python's
 *
 *   class Echo(asyncio.Protocol):
 *       def connection_made(self, transport): self.transport = transport
 *       def data_received(self, data): self.transport.write(data)
 *
 * With --tls CERT.pem KEY.pem it serves TLS (the server options' ssl, a
 * context from asyncio_ssl_create_default_context(CLIENT_AUTH) with the
 * certificate and key loaded) for the TLS echo benchmark (bench/run_tls.sh).
 *
 * Listens on 127.0.0.1 (a port the system picks, printed as "port N") with
 * a backlog of 4096, and serves until killed.  The transport is the
 * protocol instance's only state, so the instance pointer is not needed:
 * every callback gets the transport.
 */
#define NAME "echo_protocol"
#include <arpa/inet.h>
#include <asyncio.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>


#include "echo_main.h"

static void echo_data_received(asyncio_transport_t *t, const void *data, size_t n, void *p) {
  (void)p;
  asyncio_transport_write(t, data, n);
}

static const asyncio_protocol_t echo_protocol = {
    .data_received = echo_data_received,
    /* eof_received NULL: close the transport, as the Python base class does */
};

static int factory(void *arg, const asyncio_protocol_t **protocol, void **instance) {
  (void)arg;
  *protocol = &echo_protocol;
  *instance = NULL;
  return 0;
}

static int main_coro(void *arg) {
  asyncio_server_options_t opts = {0};
  opts.backlog = 4096;
  opts.ssl = arg; /* NULL: plain TCP */
  asyncio_server_t *server;
  int rc = asyncio_loop_create_server(asyncio_get_running_loop(), factory, NULL, "127.0.0.1", 0,
                                      &opts, &server);
  if (rc < 0) return rc;
  int fd;
  struct sockaddr_in sin;
  socklen_t sl = sizeof sin;
  if (asyncio_server_sockets(server, &fd, 1) < 1 ||
      getsockname(fd, (struct sockaddr *)&sin, &sl) < 0)
    return -EINVAL;
  printf("port %d\n", ntohs(sin.sin_port));
  fflush(stdout);
  rc = asyncio_server_serve_forever(server);
  asyncio_server_free(server);
  return rc;
}

int main(int argc, char **argv) { return echo_main(argc, argv, main_coro); }
