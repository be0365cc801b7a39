/*
 * test_sockets.c - the loop's low-level socket calls (include/asyncio/sockets.h).
 *
 * Python origin: the sock_* methods of selector_events.py, sock_sendfile in
 * base_events.py / unix_events.py; Lib/test/test_asyncio/test_sock_lowlevel.py
 * and test_sendfile.py.
 *
 * Real sockets only: TCP on 127.0.0.1 and ::1 with kernel-chosen ports, UDP,
 * socketpairs, and Unix-domain sockets bound to a fresh path.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const asyncio_run_options_t plain_run = {NULL, true};

static void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

/* A non-blocking listening TCP socket on the loopback of `family`, port 0. */
static int tcp_listener(int family, struct sockaddr_storage *addr, socklen_t *len) {
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  memset(addr, 0, sizeof *addr);
  if (family == AF_INET) {
    struct sockaddr_in *sin = (struct sockaddr_in *)addr;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *len = sizeof *sin;
  } else {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)addr;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_addr = in6addr_loopback;
    *len = sizeof *sin6;
  }
  if (bind(fd, (struct sockaddr *)addr, *len) < 0 || listen(fd, 16) < 0 ||
      getsockname(fd, (struct sockaddr *)addr, len) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void nb_socketpair(int type, int sv[2]) {
  assert_int_equal(socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

/* Receives exactly n bytes. */
static int recv_exactly(int fd, char *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = asyncio_sock_recv(fd, buf + got, n - got);
    if (r <= 0) return r < 0 ? (int)r : -EPIPE;
    got += (size_t)r;
  }
  return 0;
}

/* ---- round trip --------------------------------------------------------------- */

typedef struct roundtrip {
  int listener;
  struct sockaddr_storage addr;
  socklen_t addrlen;
  int family;
} roundtrip_t;

static int server_task(void *arg) {
  roundtrip_t *rt = arg;
  int conn = -1;
  struct sockaddr_storage peer;
  socklen_t plen = sizeof peer;
  CHECK_RC(asyncio_sock_accept(rt->listener, &conn, (struct sockaddr *)&peer, &plen), 0);
  if (conn < 0) return -1;
  CHECK(peer.ss_family == rt->family);
  int fl = fcntl(conn, F_GETFL), fdfl = fcntl(conn, F_GETFD);
  CHECK(fl & O_NONBLOCK);
  CHECK(fdfl & FD_CLOEXEC);
  char buf[4];
  CHECK_RC(recv_exactly(conn, buf, 4), 0);
  CHECK(memcmp(buf, "ping", 4) == 0);
  size_t sent = 0;
  CHECK_RC(asyncio_sock_sendall(conn, "pong", 4, &sent), 0);
  CHECK(sent == 4);
  close(conn);
  return 0;
}

static int client_task(void *arg) {
  roundtrip_t *rt = arg;
  int fd = socket(rt->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  CHECK_RC(asyncio_sock_connect(fd, (struct sockaddr *)&rt->addr, rt->addrlen), 0);
  CHECK_RC(asyncio_sock_sendall(fd, "ping", 4, NULL), 0);
  char buf[16];
  CHECK_RC(recv_exactly(fd, buf, 4), 0);
  CHECK(memcmp(buf, "pong", 4) == 0);
  CHECK_RC((int)asyncio_sock_recv(fd, buf, sizeof buf), 0); /* EOF */
  close(fd);
  return 0;
}

static int roundtrip_main(void *arg) {
  asyncio_task_t *s, *c;
  /* The server starts first, so its accept really waits. */
  CHECK_RC(asyncio_create_task(&s, server_task, arg, NULL), 0);
  asyncio_sleep(0);
  CHECK_RC(asyncio_create_task(&c, client_task, arg, NULL), 0);
  CHECK_RC(asyncio_await(c, NULL), 0);
  CHECK_RC(asyncio_await(s, NULL), 0);
  asyncio_task_free(c);
  asyncio_task_free(s);
  return 0;
}

static void run_roundtrip(int family) {
  roundtrip_t rt = {0};
  rt.family = family;
  rt.listener = tcp_listener(family, &rt.addr, &rt.addrlen);
  if (rt.listener < 0) {
    if (family == AF_INET6) skip(); /* no IPv6 loopback here */
    fail_msg("no listener");
  }
  assert_ok(asyncio_run(roundtrip_main, &rt, &plain_run));
  close(rt.listener);
  ASSERT_SOFT();
}

/* sock_accept / sock_connect / sock_sendall / sock_recv over TCP on 127.0.0.1. */
TEST(tcp4_accept_connect_roundtrip) { run_roundtrip(AF_INET); }

/* The same over ::1. */
TEST(tcp6_accept_connect_roundtrip) { run_roundtrip(AF_INET6); }

static char unix_path[108];

static int unix_main(void *arg) {
  int listener = (int)(intptr_t)arg;
  struct sockaddr_un sun = {0};
  sun.sun_family = AF_UNIX;
  snprintf(sun.sun_path, sizeof sun.sun_path, "%s", unix_path);
  int c = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  CHECK_RC(asyncio_sock_connect(c, (struct sockaddr *)&sun, sizeof sun), 0);
  int conn = -1;
  CHECK_RC(asyncio_sock_accept(listener, &conn, NULL, NULL), 0);
  CHECK_RC(asyncio_sock_sendall(c, "hello", 5, NULL), 0);
  char buf[8];
  CHECK_RC(recv_exactly(conn, buf, 5), 0);
  CHECK(memcmp(buf, "hello", 5) == 0);
  close(conn);
  close(c);
  return 0;
}

/* The same calls on a real Unix-domain socket bound to a path. */
TEST(unix_socket_roundtrip) {
  snprintf(unix_path, sizeof unix_path, "/tmp/asyncio-test-%d.sock", (int)getpid());
  unlink(unix_path);
  int l = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_un sun = {0};
  sun.sun_family = AF_UNIX;
  snprintf(sun.sun_path, sizeof sun.sun_path, "%s", unix_path);
  assert_int_equal(bind(l, (struct sockaddr *)&sun, sizeof sun), 0);
  assert_int_equal(listen(l, 4), 0);
  assert_ok(asyncio_run(unix_main, (void *)(intptr_t)l, &plain_run));
  close(l);
  unlink(unix_path);
  ASSERT_SOFT();
}

static int refused_main(void *arg) {
  struct sockaddr_in *sin = arg;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  CHECK_RC(asyncio_sock_connect(fd, (struct sockaddr *)sin, sizeof *sin), -ECONNREFUSED);
  close(fd);
  return 0;
}

/* Connecting to a closed port: ConnectionRefusedError. */
TEST(connect_refused) {
  struct sockaddr_storage ss;
  socklen_t len;
  int l = tcp_listener(AF_INET, &ss, &len);
  assert_true(l >= 0);
  close(l); /* the port is free now, nobody listens */
  assert_ok(asyncio_run(refused_main, &ss, &plain_run));
  ASSERT_SOFT();
  assert_string_equal(asyncio_pyname(-ECONNREFUSED), "ConnectionRefusedError");
}

/* ---- bulk transfer -------------------------------------------------------------- */

#define BIG ((size_t)6 * 1024 * 1024)

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

typedef struct bulk {
  int fd[2];
  unsigned char *data;
  uint64_t recv_hash;
  size_t received;
} bulk_t;

static int slow_reader(void *arg) {
  bulk_t *b = arg;
  unsigned char buf[4096];
  uint64_t h = 1469598103934665603ull;
  for (;;) {
    ssize_t r = asyncio_sock_recv(b->fd[1], buf, sizeof buf);
    if (r < 0) return (int)r;
    if (r == 0) break;
    h = fnv1a(h, buf, (size_t)r);
    b->received += (size_t)r;
    asyncio_sleep(0); /* slow: one small read per loop iteration */
  }
  b->recv_hash = h;
  return 0;
}

static int bulk_main(void *arg) {
  bulk_t *b = arg;
  asyncio_task_t *r;
  CHECK_RC(asyncio_create_task(&r, slow_reader, b, NULL), 0);
  size_t sent = 0;
  CHECK_RC(asyncio_sock_sendall(b->fd[0], b->data, BIG, &sent), 0);
  CHECK(sent == BIG);
  shutdown(b->fd[0], SHUT_WR);
  CHECK_RC(asyncio_await(r, NULL), 0);
  asyncio_task_free(r);
  return 0;
}

/* sock_sendall of several MiB against a slow reader: every byte, in order. */
TEST(sendall_large_slow_reader) {
  bulk_t b = {0};
  struct sockaddr_storage ss;
  socklen_t len;
  int l = tcp_listener(AF_INET, &ss, &len);
  assert_true(l >= 0);
  b.fd[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_int_equal(connect(b.fd[0], (struct sockaddr *)&ss, len), 0);
  b.fd[1] = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  assert_true(b.fd[1] >= 0);
  set_nonblocking(b.fd[0]);
  close(l);
  b.data = malloc(BIG);
  uint32_t x = 12345;
  for (size_t i = 0; i < BIG; i++) {
    x = x * 1103515245u + 12345u;
    b.data[i] = (unsigned char)(x >> 16);
  }
  assert_ok(asyncio_run(bulk_main, &b, &plain_run));
  ASSERT_SOFT();
  assert_int_equal(b.received, BIG);
  assert_true(b.recv_hash == fnv1a(1469598103934665603ull, b.data, BIG));
  free(b.data);
  close(b.fd[0]);
  close(b.fd[1]);
}

/* ---- end of stream, reset ------------------------------------------------------ */

static int eof_main(void *arg) {
  int *sv = arg;
  char buf[8];
  /* Data first, then EOF: recv returns what is there, then 0 each time. */
  CHECK_RC((int)asyncio_sock_recv(sv[0], buf, sizeof buf), 3);
  CHECK_RC((int)asyncio_sock_recv(sv[0], buf, sizeof buf), 0);
  CHECK_RC((int)asyncio_sock_recv(sv[0], buf, sizeof buf), 0);
  CHECK_RC((int)asyncio_sock_recv(sv[0], buf, 0), 0);
  return 0;
}

/* sock_recv at EOF returns 0 (b'' in Python). */
TEST(recv_at_eof) {
  int sv[2];
  nb_socketpair(SOCK_STREAM, sv);
  assert_int_equal(write(sv[1], "abc", 3), 3);
  shutdown(sv[1], SHUT_WR);
  assert_ok(asyncio_run(eof_main, sv, &plain_run));
  ASSERT_SOFT();
  close(sv[0]);
  close(sv[1]);
}

typedef struct reset {
  int client, server;
} reset_t;

static int reset_waiter(void *arg) {
  reset_t *r = arg;
  char buf[8];
  return (int)asyncio_sock_recv(r->client, buf, sizeof buf);
}

static int reset_main(void *arg) {
  reset_t *r = arg;
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, reset_waiter, r, NULL), 0);
  asyncio_sleep(0); /* the waiter is suspended in sock_recv */
  CHECK(!asyncio_future_done(t));
  /* SO_LINGER 0: close sends RST instead of FIN. */
  struct linger lg = {1, 0};
  setsockopt(r->server, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(r->server);
  CHECK_RC(asyncio_await(t, NULL), -ECONNRESET);
  asyncio_task_free(t);
  return 0;
}

/* A peer that resets the connection: ConnectionResetError from sock_recv. */
TEST(recv_peer_reset) {
  reset_t r;
  struct sockaddr_storage ss;
  socklen_t len;
  int l = tcp_listener(AF_INET, &ss, &len);
  assert_true(l >= 0);
  r.client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_int_equal(connect(r.client, (struct sockaddr *)&ss, len), 0);
  set_nonblocking(r.client);
  r.server = accept4(l, NULL, NULL, SOCK_CLOEXEC);
  close(l);
  assert_ok(asyncio_run(reset_main, &r, &plain_run));
  ASSERT_SOFT();
  close(r.client);
}

typedef struct sendreset {
  int client, server;
  unsigned char *data;
  size_t n, sent;
  int rc;
  int suspended;
} sendreset_t;

static int reset_sender(void *arg) {
  sendreset_t *r = arg;
  r->suspended = 1;
  r->rc = asyncio_sock_sendall(r->client, r->data, r->n, &r->sent);
  return 0;
}

static int sendall_reset_main(void *arg) {
  sendreset_t *r = arg;
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, reset_sender, r, NULL), 0);
  /* Until the sender waits for room (the peer reads nothing). */
  while (!r->suspended) asyncio_sleep(0);
  asyncio_sleep(0);
  CHECK(!asyncio_future_done(t));
  struct linger lg = {1, 0};
  setsockopt(r->server, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(r->server); /* unread data and linger 0: RST */
  CHECK_RC(asyncio_await(t, NULL), 0);
  asyncio_task_free(t);
  return 0;
}

/* The peer resets while sock_sendall waits: the error, and how much went out. */
TEST(sendall_peer_reset) {
  sendreset_t r = {0};
  struct sockaddr_storage ss;
  socklen_t len;
  int l = tcp_listener(AF_INET, &ss, &len);
  assert_true(l >= 0);
  r.client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_int_equal(connect(r.client, (struct sockaddr *)&ss, len), 0);
  set_nonblocking(r.client);
  r.server = accept4(l, NULL, NULL, SOCK_CLOEXEC);
  assert_true(r.server >= 0);
  close(l);
  r.n = (size_t)64 * 1024 * 1024; /* far more than the socket buffers hold */
  r.data = calloc(1, r.n);
  assert_ok(asyncio_run(sendall_reset_main, &r, &plain_run));
  ASSERT_SOFT();
  assert_true(r.rc == -ECONNRESET || r.rc == -EPIPE);
  assert_true(r.sent > 0 && r.sent < r.n);
  free(r.data);
  close(r.client);
}

/* ---- UDP -------------------------------------------------------------------------- */

typedef struct udp {
  int a, b;
  struct sockaddr_in aaddr, baddr;
} udp_t;

static int udp_receiver(void *arg) {
  udp_t *u = arg;
  char buf[64];
  struct sockaddr_in from;
  socklen_t flen = sizeof from;
  ssize_t n = asyncio_sock_recvfrom(u->b, buf, sizeof buf, (struct sockaddr *)&from, &flen);
  CHECK(n == 5 && memcmp(buf, "hello", 5) == 0);
  CHECK(flen == sizeof from && from.sin_port == u->aaddr.sin_port);
  /* Reply to the sender's address. */
  CHECK_RC((int)asyncio_sock_sendto(u->b, "world", 5, (struct sockaddr *)&from, flen), 5);
  return 0;
}

static int udp_main(void *arg) {
  udp_t *u = arg;
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, udp_receiver, u, NULL), 0);
  asyncio_sleep(0); /* the receiver waits in recvfrom */
  CHECK_RC((int)asyncio_sock_sendto(u->a, "hello", 5, (struct sockaddr *)&u->baddr,
                                    sizeof u->baddr),
           5);
  char buf[64];
  CHECK_RC((int)asyncio_sock_recvfrom(u->a, buf, sizeof buf, NULL, NULL), 5);
  CHECK(memcmp(buf, "world", 5) == 0);
  CHECK_RC(asyncio_await(t, NULL), 0);
  asyncio_task_free(t);
  return 0;
}

/* sock_sendto / sock_recvfrom over UDP on 127.0.0.1. */
TEST(udp_sendto_recvfrom) {
  udp_t u;
  int *fds[2] = {&u.a, &u.b};
  struct sockaddr_in *addrs[2] = {&u.aaddr, &u.baddr};
  for (int i = 0; i < 2; i++) {
    *fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    memset(addrs[i], 0, sizeof *addrs[i]);
    addrs[i]->sin_family = AF_INET;
    addrs[i]->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof *addrs[i];
    assert_int_equal(bind(*fds[i], (struct sockaddr *)addrs[i], len), 0);
    assert_int_equal(getsockname(*fds[i], (struct sockaddr *)addrs[i], &len), 0);
  }
  assert_ok(asyncio_run(udp_main, &u, &plain_run));
  ASSERT_SOFT();
  close(u.a);
  close(u.b);
}

/* ---- sendfile ------------------------------------------------------------------------ */

#define FILE_SIZE ((size_t)1024 * 1024 + 12345)

typedef struct sf {
  int file;
  int sv[2];
  off_t offset;
  size_t count;
  asyncio_sendfile_options_t opts;
  unsigned char *expect;
  size_t expect_len;
  unsigned char *got;
  size_t ngot;
  size_t sent;
  int rc;
} sf_t;

static int sf_reader(void *arg) {
  sf_t *s = arg;
  for (;;) {
    ssize_t r = asyncio_sock_recv(s->sv[1], s->got + s->ngot, FILE_SIZE + 1 - s->ngot);
    if (r < 0) return (int)r;
    if (r == 0) return 0;
    s->ngot += (size_t)r;
  }
}

static int sf_main(void *arg) {
  sf_t *s = arg;
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, sf_reader, s, NULL), 0);
  s->rc = asyncio_sock_sendfile(s->sv[0], s->file, s->offset, s->count, &s->sent, &s->opts);
  shutdown(s->sv[0], SHUT_WR);
  CHECK_RC(asyncio_await(t, NULL), 0);
  asyncio_task_free(t);
  return 0;
}

static unsigned char *make_file(int *fd) {
  char path[] = "/tmp/asyncio-sendfile-XXXXXX";
  *fd = mkostemp(path, O_CLOEXEC);
  assert_true(*fd >= 0);
  unlink(path);
  unsigned char *data = malloc(FILE_SIZE);
  for (size_t i = 0; i < FILE_SIZE; i++) data[i] = (unsigned char)(i * 7 + (i >> 10));
  assert_int_equal(write(*fd, data, FILE_SIZE), (ssize_t)FILE_SIZE);
  return data;
}

static void run_sendfile(int force_fallback) {
  int file;
  unsigned char *data = make_file(&file);
  const struct {
    off_t offset;
    size_t count;
  } cases[] = {{0, 0}, {1000, 300000}, {(off_t)FILE_SIZE - 10, 100}, {(off_t)FILE_SIZE + 5, 0}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    sf_t s = {0};
    s.file = file;
    s.offset = cases[i].offset;
    s.count = cases[i].count;
    s.opts.force_fallback = force_fallback;
    s.got = malloc(FILE_SIZE + 1);
    nb_socketpair(SOCK_STREAM, s.sv);
    lseek(file, 0, SEEK_SET);
    assert_ok(asyncio_run(sf_main, &s, &plain_run));
    ASSERT_SOFT();
    size_t avail = (size_t)s.offset < FILE_SIZE ? FILE_SIZE - (size_t)s.offset : 0;
    size_t want = s.count && s.count < avail ? s.count : avail;
    assert_rc(s.rc, 0);
    assert_int_equal(s.sent, want);
    assert_int_equal(s.ngot, want);
    if (want) assert_memory_equal(s.got, data + s.offset, want);
    /* As Python: the file position ends after the bytes sent. */
    off_t pos = lseek(file, 0, SEEK_CUR);
    assert_int_equal(pos, want ? s.offset + (off_t)want : 0);
    free(s.got);
    close(s.sv[0]);
    close(s.sv[1]);
  }
  free(data);
  close(file);
}

/* sock_sendfile through sendfile(2). */
TEST(sendfile_native) { run_sendfile(0); }

/* sock_sendfile through the read-on-the-executor / sock_sendall fallback. */
TEST(sendfile_fallback) { run_sendfile(1); }

static int sf_pipe_main(void *arg) {
  sf_t *s = arg;
  size_t sent = 99;
  /* A pipe is no regular file: sendfile(2) is not used. */
  s->opts.no_fallback = true;
  CHECK_RC(asyncio_sock_sendfile(s->sv[0], s->file, 0, 0, &sent, &s->opts),
           ASYNCIO_ESENDFILENOTAVAILABLE);
  CHECK(sent == 0);
  s->opts.no_fallback = false;
  CHECK_RC(asyncio_sock_sendfile(s->sv[0], s->file, 5, 0, &sent, &s->opts), -ESPIPE);
  CHECK_RC(asyncio_sock_sendfile(s->sv[0], s->file, 0, 0, &sent, &s->opts), 0);
  CHECK(sent == 11);
  char buf[16];
  CHECK_RC(recv_exactly(s->sv[1], buf, 11), 0);
  CHECK(memcmp(buf, "from a pipe", 11) == 0);
  /* Not a stream socket: ValueError. */
  int d[2];
  socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, d);
  CHECK_RC(asyncio_sock_sendfile(d[0], s->file, 0, 0, NULL, NULL), -EINVAL);
  close(d[0]);
  close(d[1]);
  CHECK_RC(asyncio_sock_sendfile(s->sv[0], s->file, -1, 0, NULL, NULL), -EINVAL);
  asyncio_sendfile_options_t both = {true, true};
  CHECK_RC(asyncio_sock_sendfile(s->sv[0], s->file, 0, 0, NULL, &both), -EINVAL);
  return 0;
}

/* fallback=False raises SendfileNotAvailableError; the fallback reads a pipe. */
TEST(sendfile_not_available_and_pipe_fallback) {
  sf_t s = {0};
  int p[2];
  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  assert_int_equal(write(p[1], "from a pipe", 11), 11);
  close(p[1]);
  s.file = p[0];
  nb_socketpair(SOCK_STREAM, s.sv);
  assert_ok(asyncio_run(sf_pipe_main, &s, &plain_run));
  ASSERT_SOFT();
  close(p[0]);
  close(s.sv[0]);
  close(s.sv[1]);
}


/* ---- loop closed while sock_sendfile's fallback waits ---------------------------------- */


static void count_reports_sf(asyncio_loop_t *loop, const asyncio_error_context_t *ctx, void *ud) {
  (*(int *)ud)++;
}

typedef struct sf_close {
  int file;
  int sv[2];
  int started;
} sf_close_t;

static int sf_close_sender(void *arg) {
  sf_close_t *c = arg;
  asyncio_sendfile_options_t o = {.force_fallback = true};
  c->started = 1;
  return asyncio_sock_sendfile(c->sv[0], c->file, 0, 0, NULL, &o);
}

static int sf_close_watcher(void *arg) {
  sf_close_t *c = arg;
  /* The first block reached the peer, which never reads: the sender is
   * stuck in sock_sendall (or reading its next block on the executor). */
  int queued = 0;
  for (int i = 0; i < 20000 && queued <= 0; i++) {
    ioctl(c->sv[1], FIONREAD, &queued);
    if (queued <= 0) asyncio_sleep(0.001);
  }
  CHECK(queued > 0);
  for (int i = 0; i < 5; i++) asyncio_sleep(0.001);
  return 0;
}

/*
 * A task destroyed by loop close inside sock_sendfile's read/send fallback
 * leaks neither its block buffer nor the read job's future.
 */
TEST(sendfile_fallback_pending_at_loop_close) {
  sf_close_t c = {0};
  unsigned char *data = make_file(&c.file);
  free(data);
  nb_socketpair(SOCK_STREAM, c.sv);
  asyncio_loop_t *loop = NULL;
  assert_ok(asyncio_loop_new(&loop, NULL));
  int reports = 0;
  assert_ok(asyncio_loop_set_exception_handler(loop, count_reports_sf, &reports));
  asyncio_task_t *sender = NULL, *watcher = NULL;
  assert_ok(asyncio_loop_create_task(loop, &sender, sf_close_sender, &c, NULL));
  assert_ok(asyncio_loop_create_task(loop, &watcher, sf_close_watcher, &c, NULL));
  assert_ok(asyncio_loop_run_until_complete(loop, watcher, NULL));
  ASSERT_SOFT();
  assert_true(c.started);
  assert_false(asyncio_future_done(sender));
  assert_ok(asyncio_loop_close(loop));
  assert_int_equal(reports, 1); /* "Task was destroyed but it is pending!" */
  asyncio_task_free(sender);
  asyncio_task_free(watcher);
  close(c.sv[0]);
  close(c.sv[1]);
  close(c.file);
}

/* ---- cancellation and misuse ----------------------------------------------------------- */

static int recv_waiter(void *arg) {
  int fd = *(int *)arg;
  char buf[8];
  return (int)asyncio_sock_recv(fd, buf, sizeof buf);
}

static int cancel_main(void *arg) {
  int *sv = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_task_t *t, *t2;
  CHECK_RC(asyncio_create_task(&t, recv_waiter, &sv[0], NULL), 0);
  asyncio_sleep(0);
  /* A second waiter in the same direction is refused. */
  char buf[8];
  CHECK_RC((int)asyncio_sock_recv(sv[0], buf, sizeof buf), -EBUSY);
  CHECK_RC(asyncio_task_cancel(t, NULL), 1);
  CHECK_RC(asyncio_await(t, NULL), -ECANCELED);
  asyncio_task_free(t);
  /* No watcher is left behind... */
  CHECK_RC(asyncio_loop_remove_reader(loop, sv[0]), 0);
  /* ...and the descriptor still works. */
  CHECK_RC(asyncio_create_task(&t2, recv_waiter, &sv[0], NULL), 0);
  asyncio_sleep(0);
  CHECK(write(sv[1], "ok", 2) == 2);
  CHECK_RC(asyncio_await(t2, NULL), 2);
  asyncio_task_free(t2);
  return 0;
}

/* Cancelling a waiting sock_recv removes its watcher; the fd stays usable. */
TEST(cancel_while_waiting) {
  int sv[2];
  nb_socketpair(SOCK_STREAM, sv);
  assert_ok(asyncio_run(cancel_main, sv, &plain_run));
  ASSERT_SOFT();
  close(sv[0]);
  close(sv[1]);
}

/*
 * Every sock_* call that waits is bounded by the ambient timeout scope: it
 * ends with -ECANCELED, the scope turns that into -ETIMEDOUT, no watcher is
 * left behind, and the descriptor still works.
 */
static int scope_main(void *arg) {
  (void)arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  char buf[64];
  /* recv on a quiet stream socket */
  int sv[2];
  nb_socketpair(SOCK_STREAM, sv);
  EXPECT_TIMEOUT(asyncio_sock_recv(sv[0], buf, sizeof buf));
  CHECK_RC(asyncio_loop_remove_reader(loop, sv[0]), 0); /* no watcher left */
  CHECK(write(sv[1], "ok", 2) == 2);
  CHECK(asyncio_sock_recv(sv[0], buf, sizeof buf) == 2);
  /* sendall into a socket nobody reads: the progress is still reported */
  static char big[8 * 1024 * 1024];
  size_t sent = 0;
  EXPECT_TIMEOUT(asyncio_sock_sendall(sv[0], big, sizeof big, &sent));
  CHECK(sent > 0 && sent < sizeof big);
  CHECK_RC(asyncio_loop_remove_writer(loop, sv[0]), 0);
  close(sv[0]);
  close(sv[1]);
  /* recvfrom on a quiet datagram socket */
  nb_socketpair(SOCK_DGRAM, sv);
  EXPECT_TIMEOUT(asyncio_sock_recvfrom(sv[0], buf, sizeof buf, NULL, NULL));
  CHECK(write(sv[1], "dg", 2) == 2);
  CHECK(asyncio_sock_recvfrom(sv[0], buf, sizeof buf, NULL, NULL) == 2);
  close(sv[0]);
  close(sv[1]);
  /* accept with nobody connecting, then a connection */
  struct sockaddr_storage addr;
  socklen_t alen;
  int l = tcp_listener(AF_INET, &addr, &alen);
  CHECK(l >= 0);
  int c = -1;
  EXPECT_TIMEOUT(asyncio_sock_accept(l, &c, NULL, NULL));
  CHECK(c == -1);
  /* connect to a listener whose accept queue is full (backlog 0): SYNs are dropped */
  CHECK(listen(l, 0) == 0);
  int fill = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  CHECK_RC(asyncio_sock_connect(fill, (struct sockaddr *)&addr, alen), 0);
  int hung = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  EXPECT_TIMEOUT(asyncio_sock_connect(hung, (struct sockaddr *)&addr, alen));
  CHECK_RC(asyncio_loop_remove_writer(loop, hung), 0);
  close(hung);
  CHECK_RC(asyncio_sock_accept(l, &c, NULL, NULL), 0);
  CHECK(c >= 0);
  if (c >= 0) close(c);
  close(fill);
  close(l);
  return 0;
}

TEST(every_wait_obeys_timeout_scope) {
  assert_ok(asyncio_run(scope_main, NULL, &plain_run));
  ASSERT_SOFT();
}

static size_t partial_sent;
static const size_t partial_len = (size_t)16 * 1024 * 1024;

static int sendall_waiter(void *arg) {
  int fd = *(int *)arg;
  static char big[16 * 1024 * 1024];
  return asyncio_sock_sendall(fd, big, partial_len, &partial_sent);
}

static int cancel_sendall_main(void *arg) {
  int *sv = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, sendall_waiter, &sv[0], NULL), 0);
  asyncio_sleep(0); /* the socket buffer filled up; nobody reads */
  CHECK(!asyncio_future_done(t));
  CHECK_RC(asyncio_task_cancel(t, NULL), 1);
  CHECK_RC(asyncio_await(t, NULL), -ECANCELED);
  asyncio_task_free(t);
  CHECK(partial_sent > 0 && partial_sent < partial_len);
  CHECK_RC(asyncio_loop_remove_writer(loop, sv[0]), 0);
  return 0;
}

/* A cancelled sock_sendall reports how much it had sent. */
TEST(sendall_cancel_reports_progress) {
  int sv[2];
  nb_socketpair(SOCK_STREAM, sv);
  partial_sent = 0;
  assert_ok(asyncio_run(cancel_sendall_main, sv, &plain_run));
  ASSERT_SOFT();
  close(sv[0]);
  close(sv[1]);
}

static int accept_waiter(void *arg) {
  int c = -1;
  return asyncio_sock_accept(*(int *)arg, &c, NULL, NULL);
}

static int accept_cancel_main(void *arg) {
  int l = *(int *)arg;
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, accept_waiter, &l, NULL), 0);
  asyncio_sleep(0);
  CHECK_RC(asyncio_task_cancel(t, NULL), 1);
  CHECK_RC(asyncio_await(t, NULL), -ECANCELED);
  asyncio_task_free(t);
  CHECK_RC(asyncio_loop_remove_reader(asyncio_get_running_loop(), l), 0);
  return 0;
}

static int blocking_main(void *arg) {
  int *sv = arg, fd = sv[0];
  char buf[4];
  int c;
  struct sockaddr_in sin = {0};
  sin.sin_family = AF_INET;
  /* The data calls work on a blocking socket without blocking the loop
   * (MSG_DONTWAIT): an empty one suspends, and a timeout scope ends it. */
  EXPECT_TIMEOUT(asyncio_sock_recv(fd, buf, sizeof buf));
  EXPECT_TIMEOUT(asyncio_sock_recvfrom(fd, buf, sizeof buf, NULL, NULL));
  CHECK_RC(asyncio_sock_sendall(fd, "ab", 2, NULL), 0);
  CHECK_RC((int)asyncio_sock_sendto(fd, "cd", 2, NULL, 0), 2);
  CHECK(read(sv[1], buf, 4) == 4 && memcmp(buf, "abcd", 4) == 0);
  CHECK(write(sv[1], "ok", 2) == 2);
  CHECK_RC((int)asyncio_sock_recv(fd, buf, sizeof buf), 2);
  CHECK(write(sv[1], "ok", 2) == 2);
  CHECK_RC((int)asyncio_sock_recvfrom(fd, buf, sizeof buf, NULL, NULL), 2);
  /* connect, accept and sendfile(2) have no per-call flag: refused. */
  CHECK_RC(asyncio_sock_connect(fd, (struct sockaddr *)&sin, sizeof sin), -EINVAL);
  CHECK_RC(asyncio_sock_accept(fd, &c, NULL, NULL), -EINVAL);
  CHECK_RC(asyncio_sock_sendfile(fd, 0, 0, 0, NULL, NULL), -EINVAL);
  CHECK_RC((int)asyncio_sock_recv(-1, buf, sizeof buf), -EBADF);
  CHECK_RC((int)asyncio_sock_recv(999999, buf, sizeof buf), -EBADF);
  CHECK_RC(asyncio_sock_sendall(-1, buf, sizeof buf, NULL), -EBADF);
  return 0;
}

/* "the socket must be non-blocking" for connect, accept and sendfile; bad
 * descriptors; not from a task. */
TEST(blocking_socket_rejected) {
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  assert_ok(asyncio_run(blocking_main, sv, &plain_run));
  ASSERT_SOFT();
  char buf[4];
  assert_rc((int)asyncio_sock_recv(sv[0], buf, sizeof buf), ASYNCIO_ENOTASK);
  close(sv[0]);
  close(sv[1]);
  /* A cancelled accept leaves the listener usable too. */
  struct sockaddr_storage ss;
  socklen_t len;
  int l = tcp_listener(AF_INET, &ss, &len);
  assert_ok(asyncio_run(accept_cancel_main, &l, &plain_run));
  ASSERT_SOFT();
  close(l);
}

static atomic_int go;

static int paced_writer(void *arg) {
  int fd = *(int *)arg;
  for (int r = 0; r < 3; r++) {
    while (!atomic_load(&go)) asyncio_sleep(0);
    atomic_store(&go, 0);
    asyncio_sleep(0); /* the reader is suspended by now */
    if (write(fd, "x", 1) != 1) return -EIO;
  }
  return 0;
}

static int no_alloc_main(void *arg) {
  int *sv = arg;
  asyncio_task_t *w;
  CHECK_RC(asyncio_create_task(&w, paced_writer, &sv[1], NULL), 0);
  char c;
  long before = 0;
  for (int r = 0; r < 3; r++) {
    if (r == 1) before = harness_total_allocs(); /* after the first wait: the fd's watch exists */
    atomic_store(&go, 1);
    CHECK_RC((int)asyncio_sock_recv(sv[0], &c, 1), 1);
  }
  CHECK(harness_total_allocs() == before);
  CHECK_RC(asyncio_await(w, NULL), 0);
  asyncio_task_free(w);
  return 0;
}

/* A sock_* wait allocates nothing once the descriptor has been watched. */
TEST(wait_does_not_allocate) {
  int sv[2];
  nb_socketpair(SOCK_STREAM, sv);
  atomic_store(&go, 0);
  assert_ok(asyncio_run(no_alloc_main, sv, &plain_run));
  ASSERT_SOFT();
  close(sv[0]);
  close(sv[1]);
}

static int recv_nomem_main(void *arg) {
  int *sv = arg;
  char c;
  /* The descriptor's watch is allocated on its first wait. */
  harness_fail_alloc_after(1);
  CHECK_RC((int)asyncio_sock_recv(sv[0], &c, 1), -ENOMEM);
  harness_fail_alloc_after(0);
  CHECK(write(sv[1], "y", 1) == 1);
  CHECK_RC((int)asyncio_sock_recv(sv[0], &c, 1), 1);
  return 0;
}

/* No memory for the watcher: -ENOMEM before suspending, the socket unharmed. */
TEST(recv_watch_allocation_failure) {
  int sv[2];
  nb_socketpair(SOCK_STREAM, sv);
  assert_ok(asyncio_run(recv_nomem_main, sv, &plain_run));
  ASSERT_SOFT();
  close(sv[0]);
  close(sv[1]);
}

/* ---- edge cases where CPython's behaviour is the specification --------------------------- */

static int sendall_empty_main(void *arg) {
  int *sv = arg;
  size_t sent = 99;
  /* A healthy socket: success, and nothing arrives. */
  CHECK_RC(asyncio_sock_sendall(sv[0], NULL, 0, &sent), 0);
  CHECK(sent == 0);
  char c;
  CHECK(recv(sv[1], &c, 1, 0) < 0 && errno == EAGAIN);
  /* Shut down for writing: Python's first sock.send(b'') raises BrokenPipeError. */
  CHECK(shutdown(sv[0], SHUT_WR) == 0);
  sent = 99;
  CHECK_RC(asyncio_sock_sendall(sv[0], "", 0, &sent), -EPIPE);
  CHECK(sent == 0);
  return 0;
}

/* sock_sendall(sock, b'') still makes one send: a broken socket says so. */
TEST(sendall_empty_reports_broken_pipe) {
  int sv[2];
  nb_socketpair(SOCK_STREAM, sv);
  assert_ok(asyncio_run(sendall_empty_main, sv, &plain_run));
  ASSERT_SOFT();
  close(sv[0]);
  close(sv[1]);
}

typedef struct reconnect {
  int listener, fill, hung;
  struct sockaddr_storage addr;
  socklen_t alen;
} reconnect_t;

static int connect_waiter(void *arg) {
  reconnect_t *r = arg;
  return asyncio_sock_connect(r->hung, (struct sockaddr *)&r->addr, r->alen);
}

static int reconnect_main(void *arg) {
  reconnect_t *r = arg;
  /* The listener's accept queue (backlog 0) is full: the next SYN is dropped
   * and the connect stays in progress in the kernel. */
  CHECK_RC(asyncio_sock_connect(r->fill, (struct sockaddr *)&r->addr, r->alen), 0);
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, connect_waiter, r, NULL), 0);
  asyncio_sleep(0);
  CHECK(!asyncio_future_done(t));
  CHECK_RC(asyncio_task_cancel(t, NULL), 1);
  CHECK_RC(asyncio_await(t, NULL), -ECANCELED);
  asyncio_task_free(t);
  /* Room in the queue: the kernel's retransmitted SYN will get through. */
  int c = -1;
  CHECK_RC(asyncio_sock_accept(r->listener, &c, NULL, NULL), 0);
  if (c >= 0) close(c);
  /* connect(2) says EALREADY now; Python's BlockingIOError waits for the outcome. */
  CHECK_RC(asyncio_sock_connect(r->hung, (struct sockaddr *)&r->addr, r->alen), 0);
  c = -1;
  CHECK_RC(asyncio_sock_accept(r->listener, &c, NULL, NULL), 0);
  if (c >= 0) {
    CHECK_RC(asyncio_sock_sendall(r->hung, "hi", 2, NULL), 0);
    char buf[2];
    CHECK_RC(recv_exactly(c, buf, 2), 0);
    close(c);
  }
  /* Linux reports the finished connect to one more connect(2) (0), then
   * EISCONN, Python's OSError: nothing is waited for either time. */
  CHECK_RC(asyncio_sock_connect(r->hung, (struct sockaddr *)&r->addr, r->alen), 0);
  CHECK_RC(asyncio_sock_connect(r->hung, (struct sockaddr *)&r->addr, r->alen), -EISCONN);
  return 0;
}

/* A cancelled sock_connect, retried while the kernel still connects, waits for it. */
TEST(connect_again_while_in_progress) {
  reconnect_t r;
  r.listener = tcp_listener(AF_INET, &r.addr, &r.alen);
  assert_true(r.listener >= 0);
  assert_int_equal(listen(r.listener, 0), 0);
  r.fill = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  r.hung = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  assert_ok(asyncio_run(reconnect_main, &r, &plain_run));
  ASSERT_SOFT();
  close(r.hung);
  close(r.fill);
  close(r.listener);
}

static int sf_sigpipe_main(void *arg) {
  sf_t *s = arg;
  size_t sent = 99;
  CHECK_RC(asyncio_sock_sendfile(s->sv[0], s->file, 0, 0, &sent, &s->opts), -EPIPE);
  CHECK(sent == 0);
  return 0;
}

static int sigpipe_pending(void) {
  sigset_t p;
  sigpending(&p);
  return sigismember(&p, SIGPIPE);
}

/*
 * sendfile(2) into a socket shut down for writing raises SIGPIPE (it has no
 * MSG_NOSIGNAL), which kills a process that left it at SIG_DFL.  Python
 * ignores SIGPIPE; here the call returns -EPIPE and leaves the signal
 * disposition, the mask and an application's own pending SIGPIPE alone.
 */
TEST(sendfile_into_shut_down_socket_no_sigpipe) {
  int file;
  unsigned char *data = make_file(&file);
  struct sigaction dfl = {0}, saved;
  dfl.sa_handler = SIG_DFL;
  sigaction(SIGPIPE, &dfl, &saved);
  sigset_t pipe_set, mask;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  for (int blocked = 0; blocked < 2; blocked++) {
    sf_t s = {0};
    s.file = file;
    s.opts.no_fallback = true; /* sendfile(2) itself, not sock_sendall */
    nb_socketpair(SOCK_STREAM, s.sv);
    assert_int_equal(shutdown(s.sv[0], SHUT_WR), 0);
    if (blocked) {
      /* The application blocks SIGPIPE and has one of its own pending. */
      pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
      raise(SIGPIPE);
      assert_true(sigpipe_pending());
    }
    assert_ok(asyncio_run(sf_sigpipe_main, &s, &plain_run));
    ASSERT_SOFT();
    pthread_sigmask(SIG_SETMASK, NULL, &mask);
    assert_int_equal(sigismember(&mask, SIGPIPE), blocked);
    assert_int_equal(sigpipe_pending(), blocked);
    if (blocked) {
      const struct timespec zero = {0, 0};
      assert_int_equal(sigtimedwait(&pipe_set, NULL, &zero), SIGPIPE);
      pthread_sigmask(SIG_UNBLOCK, &pipe_set, NULL);
    }
    close(s.sv[0]);
    close(s.sv[1]);
  }
  sigaction(SIGPIPE, &saved, NULL);
  free(data);
  close(file);
}

static int sf_proc_main(void *arg) {
  sf_t *s = arg;
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, sf_reader, s, NULL), 0);
  s->rc = asyncio_sock_sendfile(s->sv[0], s->file, 0, 0, &s->sent, NULL);
  shutdown(s->sv[0], SHUT_WR);
  CHECK_RC(asyncio_await(t, NULL), 0);
  asyncio_task_free(t);
  return 0;
}

/*
 * A /proc file is regular but reports size 0 and refuses sendfile(2): its
 * contents go through the fallback.  (Python's count=None sends nothing:
 * it takes st_size for the block size.)
 */
TEST(sendfile_size_zero_proc_file) {
  int file = open("/proc/version", O_RDONLY | O_CLOEXEC);
  if (file < 0) skip();
  char want[4096];
  ssize_t wn = read(file, want, sizeof want);
  assert_true(wn > 0);
  struct stat st;
  assert_int_equal(fstat(file, &st), 0);
  assert_true(S_ISREG(st.st_mode));
  sf_t s = {0};
  s.file = file;
  s.got = malloc(FILE_SIZE + 1);
  nb_socketpair(SOCK_STREAM, s.sv);
  assert_ok(asyncio_run(sf_proc_main, &s, &plain_run));
  ASSERT_SOFT();
  assert_rc(s.rc, 0);
  assert_int_equal(s.sent, (size_t)wn);
  assert_int_equal(s.ngot, (size_t)wn);
  assert_memory_equal(s.got, want, (size_t)wn);
  free(s.got);
  close(s.sv[0]);
  close(s.sv[1]);
  close(file);
}

static int empty_dgram_main(void *arg) {
  int *sv = arg;
  /* sock_sendto(sock, b'', addr) sends an empty datagram; sock_recvfrom
   * returns it as 0 bytes, which on a datagram socket is no EOF. */
  struct sockaddr_storage to;
  socklen_t tl = sizeof to;
  CHECK(getsockname(sv[1], (struct sockaddr *)&to, &tl) == 0);
  CHECK_RC((int)asyncio_sock_sendto(sv[0], "", 0, (struct sockaddr *)&to, tl), 0);
  CHECK_RC((int)asyncio_sock_sendto(sv[0], "x", 1, (struct sockaddr *)&to, tl), 1);
  char buf[8];
  CHECK_RC((int)asyncio_sock_recvfrom(sv[1], buf, sizeof buf, NULL, NULL), 0);
  CHECK_RC((int)asyncio_sock_recvfrom(sv[1], buf, sizeof buf, NULL, NULL), 1);
  /* sock_recv of an empty datagram is 0 as well, and the next one still comes. */
  CHECK_RC((int)asyncio_sock_sendto(sv[0], "", 0, (struct sockaddr *)&to, tl), 0);
  CHECK_RC((int)asyncio_sock_sendto(sv[0], "yz", 2, (struct sockaddr *)&to, tl), 2);
  CHECK_RC((int)asyncio_sock_recv(sv[1], buf, sizeof buf), 0);
  CHECK_RC((int)asyncio_sock_recv(sv[1], buf, sizeof buf), 2);
  return 0;
}

/* Zero-length datagrams through sock_sendto / sock_recvfrom / sock_recv (UDP). */
TEST(udp_empty_datagrams) {
  int sv[2];
  for (int i = 0; i < 2; i++) {
    sv[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(sv[i], (struct sockaddr *)&sin, sizeof sin), 0);
  }
  assert_ok(asyncio_run(empty_dgram_main, sv, &plain_run));
  ASSERT_SOFT();
  close(sv[0]);
  close(sv[1]);
}
