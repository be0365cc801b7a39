/*
 * echo_streams.c - our streams echo server for the TCP echo benchmark
 * (issue 5, docs/bench.md): asyncio_start_server with a handler task per
 * connection looping read / write / drain, as Python's
 *
 *   async def handle(reader, writer):
 *       while data := await reader.read(16384):
 *           writer.write(data)
 *           await writer.drain()
 *
 * (a reset by the peer ends the handler quietly, as the Python version
 * catching ConnectionError).
 *
 * With --tls CERT.pem KEY.pem it serves TLS (the server options' ssl, a
 * context from asyncio_ssl_create_default_context(CLIENT_AUTH) with the
 * certificate and key loaded) for the TLS echo benchmark (bench/run_tls.sh).
 *
 * Listens on 127.0.0.1 (a port the system picks, printed as "port N") with
 * a backlog of 4096, and serves until killed.  bench/run_echo.sh builds it
 * itself and shows n/a while the library has no streams yet.
 */
#define NAME "echo_streams"
#include <arpa/inet.h>
#include <asyncio.h>
#include <errno.h>
#include <asyncio/streams.h>
#include <netinet/in.h>
#include <stdio.h>


#include "echo_main.h"

static int handle(asyncio_stream_reader_t *reader, asyncio_stream_writer_t *writer, void *arg) {
  (void)arg;
  char buf[16384]; /* touched on the task stack: keep it to 4 pages */
  for (;;) {
    ssize_t n = asyncio_stream_read(reader, buf, sizeof buf);
    int rc = n < 0 ? (int)n : 0;
    if (n > 0) rc = asyncio_stream_write(writer, buf, (size_t)n);
    if (n > 0 && rc == 0) rc = asyncio_stream_drain(writer);
    /* The load generator closes with replies unread: a reset is its goodbye. */
    if (n == 0 || rc == -ECONNRESET || rc == -EPIPE) return 0;
    if (rc < 0) return rc;
  }
}

static int main_coro(void *arg) {
  asyncio_server_options_t sopts = {0};
  sopts.backlog = 4096;
  sopts.ssl = arg; /* NULL: plain TCP */
  asyncio_stream_options_t opts = {0};
  opts.server = &sopts;
  asyncio_server_t *server;
  int rc = asyncio_start_server(handle, NULL, "127.0.0.1", 0, &opts, &server);
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
