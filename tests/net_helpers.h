/*
 * net_helpers.h - shared by the transport, server and datagram tests: a
 * recording protocol ("peer") usable as Protocol, BufferedProtocol or
 * DatagramProtocol, factories, and a bounded wait.
 */
#ifndef ASYNCIO_TEST_NET_HELPERS_H
#define ASYNCIO_TEST_NET_HELPERS_H

#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct peer {
  asyncio_transport_t *t;
  int made, lost, lost_err, eofs;
  int paused, resumed;
  bool buffered;      /* use the BufferedProtocol table */
  bool keep_open;     /* eof_received's answer */
  bool echo;          /* write back what arrives */
  bool echo_eof;      /* on EOF: write_eof (then close through eof_received = false) */
  bool flow_echo;     /* pause reading while the transport is paused for writing */
  bool pause_on_made; /* pause_reading in connection_made */
  bool close_on_made;
  size_t nrecv;
  uint64_t sum;
  char data[4096];
  size_t ndata;
  char bbuf[16384];
  int ndgrams, errs, last_err;
  struct sockaddr_storage from;
  socklen_t fromlen;
  int order;          /* sequence number of connection_lost, for ordering checks */
} peer_t;

static int g_seq;

/* FNV-1a over the stream: order-sensitive. */
static inline uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}
#define FNV_INIT 14695981039346656037ull

static void on_data(peer_t *p, asyncio_transport_t *t, const void *data, size_t n) {
  if (!p->nrecv) p->sum = FNV_INIT;
  p->nrecv += n;
  p->sum = fnv(p->sum, data, n);
  size_t room = sizeof p->data - p->ndata;
  size_t k = n < room ? n : room;
  memcpy(p->data + p->ndata, data, k);
  p->ndata += k;
  if (p->echo) CHECK_RC(asyncio_transport_write(t, data, n), 0);
}

static void pr_made(asyncio_transport_t *t, void *u) {
  peer_t *p = u;
  p->t = t;
  p->made++;
  if (p->pause_on_made) CHECK_RC(asyncio_transport_pause_reading(t), 0);
  if (p->close_on_made) CHECK_RC(asyncio_transport_close(t), 0);
}
static void pr_lost(asyncio_transport_t *t, int err, void *u) {
  peer_t *p = u;
  CHECK(p->t == NULL || p->t == t);
  p->lost++;
  p->lost_err = err;
  p->order = ++g_seq;
  p->t = NULL;
}
static void pr_pause(asyncio_transport_t *t, void *u) {
  peer_t *p = u;
  p->paused++;
  if (p->flow_echo) CHECK_RC(asyncio_transport_pause_reading(t), 0);
}
static void pr_resume(asyncio_transport_t *t, void *u) {
  peer_t *p = u;
  p->resumed++;
  if (p->flow_echo) CHECK_RC(asyncio_transport_resume_reading(t), 0);
}
static void pr_data(asyncio_transport_t *t, const void *d, size_t n, void *u) {
  on_data(u, t, d, n);
}
static bool pr_eof(asyncio_transport_t *t, void *u) {
  peer_t *p = u;
  p->eofs++;
  if (p->echo_eof) CHECK_RC(asyncio_transport_write_eof(t), 0);
  return p->keep_open;
}
static int pr_get_buffer(asyncio_transport_t *t, ssize_t hint, void **buf, size_t *len, void *u) {
  peer_t *p = u;
  CHECK(hint == -1);
  *buf = p->bbuf;
  *len = sizeof p->bbuf;
  return 0;
}
static void pr_buffer_updated(asyncio_transport_t *t, size_t n, void *u) {
  peer_t *p = u;
  on_data(p, t, p->bbuf, n);
}
static void pr_dgram(asyncio_transport_t *t, const void *d, size_t n, const struct sockaddr *a,
                     socklen_t al, void *u) {
  peer_t *p = u;
  p->ndgrams++;
  size_t k = n < sizeof p->data ? n : sizeof p->data;
  memcpy(p->data, d, k);
  p->ndata = k;
  p->nrecv += n;
  if (a && al <= sizeof p->from) {
    memcpy(&p->from, a, al);
    p->fromlen = al;
  }
  if (p->echo) CHECK_RC(asyncio_transport_sendto(t, d, n, a, al), 0);
}
static void pr_err(asyncio_transport_t *t, int err, void *u) {
  peer_t *p = u;
  p->errs++;
  p->last_err = err;
}

static const asyncio_protocol_t proto_plain = {
    .connection_made = pr_made,
    .connection_lost = pr_lost,
    .pause_writing = pr_pause,
    .resume_writing = pr_resume,
    .data_received = pr_data,
    .eof_received = pr_eof,
};

static const asyncio_protocol_t proto_buffered = {
    .connection_made = pr_made,
    .connection_lost = pr_lost,
    .pause_writing = pr_pause,
    .resume_writing = pr_resume,
    .eof_received = pr_eof,
    .get_buffer = pr_get_buffer,
    .buffer_updated = pr_buffer_updated,
};

static const asyncio_protocol_t proto_dgram = {
    .connection_made = pr_made,
    .connection_lost = pr_lost,
    .pause_writing = pr_pause,
    .resume_writing = pr_resume,
    .datagram_received = pr_dgram,
    .error_received = pr_err,
};

/* A client factory: the argument is the peer itself. */
static inline int peer_factory(void *arg, const asyncio_protocol_t **proto, void **inst) {
  peer_t *p = arg;
  *proto = p->buffered ? &proto_buffered : &proto_plain;
  *inst = p;
  return 0;
}

static inline int dgram_factory(void *arg, const asyncio_protocol_t **proto, void **inst) {
  *proto = &proto_dgram;
  *inst = arg;
  return 0;
}

/* A server factory: hands out peers from a pool, each a copy of the template. */
typedef struct pool {
  peer_t tmpl;
  peer_t peers[64];
  int n;
} pool_t;

static inline int pool_factory(void *arg, const asyncio_protocol_t **proto, void **inst) {
  pool_t *pl = arg;
  if (pl->n == 64) return -ENOMEM;
  peer_t *p = &pl->peers[pl->n++];
  *p = pl->tmpl;
  *proto = p->buffered ? &proto_buffered : &proto_plain;
  *inst = p;
  return 0;
}

/*
 * Waits (yielding to the loop in 1 ms steps, for at most ~20 s) until cond
 * holds; a soft failure and -ETIMEDOUT from the enclosing coroutine if not.
 * No timing is asserted: the bound only keeps a broken test from hanging.
 */
#define WAIT_UNTIL(cond)                                                          \
  do {                                                                            \
    int w__ = 0;                                                                  \
    while (!(cond)) {                                                             \
      if (++w__ > 20000) {                                                        \
        CHECK(!"timed out waiting for " #cond);                                   \
        return -ETIMEDOUT;                                                        \
      }                                                                           \
      int s__ = asyncio_sleep(0.001);                                             \
      if (s__ < 0) return s__;                                                    \
    }                                                                             \
  } while (0)

/* The port a server's first socket got. */
static inline int server_port(asyncio_server_t *s, int idx) {
  int fds[8];
  int n = asyncio_server_sockets(s, fds, 8);
  if (n <= idx) return -1;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(fds[idx], (struct sockaddr *)&ss, &sl) < 0) return -1;
  if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static inline int run_main(asyncio_coro_fn fn, void *arg) {
  asyncio_run_options_t o = {0};
  o.no_sigint_handler = true;
  return asyncio_run(fn, arg, &o);
}

static inline bool have_ipv6(void) {
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return false;
  struct sockaddr_in6 a = {0};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

/* The loopback address of family (AF_INET or AF_INET6) with port; returns its length. */
static inline socklen_t loopback_addr(int family, int port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (family == AF_INET) {
    struct sockaddr_in *a = (void *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sizeof *a;
  }
  struct sockaddr_in6 *a = (void *)ss;
  a->sin6_family = AF_INET6;
  a->sin6_port = htons((uint16_t)port);
  a->sin6_addr = in6addr_loopback;
  return sizeof *a;
}

/* The port of an AF_INET or AF_INET6 address. */
static inline int addr_port(const struct sockaddr_storage *ss) {
  return ss->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)ss)->sin_port)
                                  : ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

/* A TCP port on host (numeric) that refuses connections: bound, never listening. */
static inline int refused_port(int family, int *holder) {
  int fd = socket(family, SOCK_STREAM, 0);
  struct sockaddr_storage ss;
  socklen_t sl = loopback_addr(family, 0, &ss);
  if (fd < 0 || bind(fd, (struct sockaddr *)&ss, sl) < 0) return -1;
  sl = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  *holder = fd;
  return addr_port(&ss);
}

#endif
