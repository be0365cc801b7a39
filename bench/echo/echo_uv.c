/*
 * echo_uv.c - the libuv peer of the TCP echo benchmark (issue 5,
 * docs/bench.md): one uv_loop, a uv_tcp_t per connection, written the way
 * libuv's own echo servers are, except that the echo first tries
 * uv_try_write (no request, no copy) and falls back to uv_write with a
 * copy only when the kernel did not take everything.
 *
 *   echo_uv             listens on 127.0.0.1, a port the system picks,
 *                       prints "port N" and serves until killed
 *
 * Reads go into one shared 64 KiB buffer (the alloc callback hands it out
 * every time), as our transports share one receive buffer per loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static char rbuf[64 * 1024];

typedef struct wreq {
  uv_write_t req;
  uv_buf_t buf;
} wreq_t;

static void on_close(uv_handle_t *h) { free(h); }

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h, (void)hint;
  *buf = uv_buf_init(rbuf, sizeof rbuf);
}

static void on_written(uv_write_t *req, int status) {
  wreq_t *w = (wreq_t *)req;
  free(w->buf.base);
  free(w);
  if (status < 0 && !uv_is_closing((uv_handle_t *)req->handle))
    uv_close((uv_handle_t *)req->handle, on_close);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  if (n < 0) {
    if (!uv_is_closing((uv_handle_t *)s)) uv_close((uv_handle_t *)s, on_close);
    return;
  }
  if (n == 0) return;
  uv_buf_t b = uv_buf_init(buf->base, (unsigned)n);
  int w = uv_try_write(s, &b, 1);
  if (w == n) return;
  if (w < 0 && w != UV_EAGAIN) {
    uv_close((uv_handle_t *)s, on_close);
    return;
  }
  if (w < 0) w = 0;
  wreq_t *r = malloc(sizeof *r);
  char *copy = malloc((size_t)(n - w));
  if (!r || !copy) abort();
  memcpy(copy, buf->base + w, (size_t)(n - w));
  r->buf = uv_buf_init(copy, (unsigned)(n - w));
  if (uv_write(&r->req, s, &r->buf, 1, on_written) < 0) abort();
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  uv_tcp_t *c = malloc(sizeof *c);
  if (!c) abort();
  uv_tcp_init(server->loop, c);
  if (uv_accept(server, (uv_stream_t *)c) < 0) {
    uv_close((uv_handle_t *)c, on_close);
    return;
  }
  uv_tcp_nodelay(c, 1);
  uv_read_start((uv_stream_t *)c, on_alloc, on_read);
}

int main(void) {
  uv_loop_t *loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_in addr;
  uv_tcp_init(loop, &server);
  uv_ip4_addr("127.0.0.1", 0, &addr);
  int rc = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&server, 4096, on_connection);
  int len = sizeof addr;
  if (rc == 0) rc = uv_tcp_getsockname(&server, (struct sockaddr *)&addr, &len);
  if (rc < 0) {
    fprintf(stderr, "echo_uv: %s\n", uv_strerror(rc));
    return 1;
  }
  printf("port %d\n", ntohs(addr.sin_port));
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
