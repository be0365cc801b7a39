/*
 * test_net_args.c - bad arguments to the networking API (transports.h,
 * sockets.h, dns.h): each returns the code its header documents, changes
 * nothing, and leaves the caller's descriptors as they were.  Paths already
 * covered by test_transports.c, test_sockets.c, test_datagram.c,
 * test_sendfile.c and test_dns.c are not repeated here.
 */
#include "net_helpers.h"

#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/un.h>

/* A stream transport over one end of a socketpair; *raw is the other end. */
static int pair_transport(peer_t *p, asyncio_transport_t **t, int *raw) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
  int rc = asyncio_loop_connect_accepted_socket(asyncio_get_running_loop(), peer_factory, p, sv[0],
                                                NULL, t, NULL);
  if (rc < 0) {
    close(sv[0]);
    close(sv[1]);
    return rc;
  }
  *raw = sv[1];
  return 0;
}

/* A UDP endpoint bound to 127.0.0.1; its address in *ss. */
static int udp_transport(peer_t *p, asyncio_transport_t **t, struct sockaddr_storage *ss,
                         socklen_t *sl) {
  asyncio_datagram_options_t o = {.local_host = "127.0.0.1"};
  int rc = asyncio_loop_create_datagram_endpoint(asyncio_get_running_loop(), dgram_factory, p, &o,
                                                 t, NULL);
  if (rc < 0) return rc;
  *sl = sizeof *ss;
  return asyncio_transport_get_sockname(*t, (struct sockaddr *)ss, sl);
}

/* Nothing arrived at the raw end (yet). */
static bool nothing_to_read(int fd) {
  char c;
  return recv(fd, &c, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN;
}

/* Still open, and blocking or not as before. */
static bool fd_unchanged(int fd, int flags) { return fcntl(fd, F_GETFL) == flags; }

/* A factory that says yes but gives no callback table. */
static int tableless_factory(void *arg, const asyncio_protocol_t **proto, void **inst) {
  (void)arg;
  (void)proto;
  *inst = NULL;
  return 0;
}

/* ---- transports: NULL and bad arguments ------------------------------------------------ */

/* Every transport call with a NULL transport, no loop needed. */
TEST(transport_calls_on_null) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  size_t lo = 1, hi = 1;
  void *inst = &lo;
  struct iovec v = {"x", 1};
  assert_rc(asyncio_transport_abort(NULL), -EINVAL);
  assert_rc(asyncio_transport_set_protocol(NULL, &proto_plain, NULL), -EINVAL);
  assert_null(asyncio_transport_get_protocol(NULL, &inst));
  assert_ptr_equal(inst, &lo); /* not written */
  assert_rc(asyncio_transport_get_peername(NULL, (struct sockaddr *)&ss, &sl), -EINVAL);
  assert_rc(asyncio_transport_get_sockname(NULL, (struct sockaddr *)&ss, &sl), -EINVAL);
  assert_int_equal(sl, sizeof ss);
  assert_null(asyncio_transport_get_loop(NULL));
  assert_true(asyncio_transport_is_closing(NULL));
  assert_false(asyncio_transport_is_reading(NULL));
  assert_rc(asyncio_transport_pause_reading(NULL), -EINVAL);
  assert_rc(asyncio_transport_resume_reading(NULL), -EINVAL);
  assert_rc(asyncio_transport_writelines(NULL, &v, 1), -EINVAL);
  assert_rc(asyncio_transport_write_eof(NULL), -EINVAL);
  assert_false(asyncio_transport_can_write_eof(NULL));
  assert_int_equal(asyncio_transport_get_write_buffer_size(NULL), 0);
  assert_rc(asyncio_transport_set_write_buffer_limits(NULL, -1, -1), -EINVAL);
  assert_rc(asyncio_transport_get_write_buffer_limits(NULL, &lo, &hi), -EINVAL);
  assert_true(lo == 1 && hi == 1);
  assert_rc(asyncio_transport_sendto(NULL, "x", 1, NULL, 0), -EINVAL);
}

static int stream_args_main(void *arg) {
  (void)arg;
  peer_t p = {0};
  asyncio_transport_t *t = NULL;
  int raw = -1;
  CHECK_RC(pair_transport(&p, &t, &raw), 0);
  if (!t) return -1;
  CHECK_RC(asyncio_transport_set_protocol(t, NULL, NULL), -EINVAL);
  void *inst = NULL;
  CHECK(asyncio_transport_get_protocol(t, &inst) == &proto_plain && inst == &p);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  CHECK_RC(asyncio_transport_get_peername(t, NULL, &sl), -EINVAL);
  CHECK_RC(asyncio_transport_get_peername(t, (struct sockaddr *)&ss, NULL), -EINVAL);
  CHECK_RC(asyncio_transport_get_sockname(t, NULL, &sl), -EINVAL);
  CHECK_RC(asyncio_transport_get_sockname(t, (struct sockaddr *)&ss, NULL), -EINVAL);
  /* Sizes no object can have: refused before anything is sent (as write(2), writev(2)). */
  static char buf[16];
  CHECK_RC(asyncio_transport_write(t, NULL, 1), -EINVAL);
  CHECK_RC(asyncio_transport_write(t, buf, (size_t)SSIZE_MAX + 1), -EINVAL);
  CHECK_RC(asyncio_transport_write(t, buf, SIZE_MAX), -EINVAL);
  struct iovec v[3] = {{buf, 1}, {NULL, 1}, {buf, 1}};
  CHECK_RC(asyncio_transport_writelines(t, v, -1), -EINVAL);
  CHECK_RC(asyncio_transport_writelines(t, v, 2), -EINVAL); /* a NULL base with a length */
  v[1].iov_base = buf;
  v[0].iov_len = v[1].iov_len = (size_t)SSIZE_MAX / 2 + 1; /* adds up past SSIZE_MAX */
  CHECK_RC(asyncio_transport_writelines(t, v, 2), -EINVAL);
  v[0].iov_len = v[1].iov_len = v[2].iov_len = SIZE_MAX / 2; /* would wrap size_t */
  CHECK_RC(asyncio_transport_writelines(t, v, 3), -EINVAL);
  CHECK_RC(asyncio_transport_sendto(t, "x", 1, NULL, 0), -EOPNOTSUPP);
  size_t lo = 0, hi = 0;
  CHECK_RC(asyncio_transport_get_write_buffer_limits(t, NULL, NULL), 0);
  CHECK_RC(asyncio_transport_get_write_buffer_limits(t, &lo, &hi), 0);
  CHECK(lo == ASYNCIO_WRITE_LOW_WATER && hi == ASYNCIO_WRITE_HIGH_WATER);
  /* Nothing went out, nothing is buffered, the transport works on. */
  CHECK(nothing_to_read(raw));
  CHECK(asyncio_transport_get_write_buffer_size(t) == 0);
  CHECK(!asyncio_transport_is_closing(t) && p.lost == 0);
  CHECK_RC(asyncio_transport_write(t, "ok", 2), 0);
  char got[2];
  CHECK(read(raw, got, 2) == 2 && memcmp(got, "ok", 2) == 0);
  CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(p.lost == 1);
  CHECK(p.lost_err == 0);
  close(raw);
  return 0;
}

/* The argument checks of a live stream transport's calls. */
TEST(stream_transport_bad_arguments) {
  assert_ok(run_main(stream_args_main, NULL));
  ASSERT_SOFT();
}

static int dgram_args_main(void *arg) {
  (void)arg;
  peer_t p = {0};
  asyncio_transport_t *t = NULL;
  struct sockaddr_storage ss;
  socklen_t sl;
  CHECK_RC(udp_transport(&p, &t, &ss, &sl), 0);
  if (!t) return -1;
  const struct sockaddr *a = (const struct sockaddr *)&ss;
  CHECK_RC(asyncio_transport_sendto(t, NULL, 1, a, sl), -EINVAL);
  CHECK_RC(asyncio_transport_sendto(t, "x", 1, a, 0), -EINVAL);
  CHECK_RC(asyncio_transport_sendto(t, "x", 1, a, 1), -EINVAL); /* shorter than its family */
  CHECK_RC(asyncio_transport_sendto(t, "x", 1, a, sizeof(struct sockaddr_storage) + 1), -EINVAL);
  CHECK_RC(asyncio_transport_sendto(t, "x", 1, NULL, sl), -EINVAL); /* a length, no address */
  static char big[65536];
  CHECK_RC(asyncio_transport_sendto(t, big, sizeof big, a, sl), -EMSGSIZE);
  struct iovec v = {"x", 1};
  CHECK_RC(asyncio_transport_writelines(t, &v, 1), -EOPNOTSUPP);
  CHECK_RC(asyncio_transport_write_eof(t), -EOPNOTSUPP);
  CHECK(!asyncio_transport_can_write_eof(t));
  /* Nothing was sent or queued, and nothing reported. */
  for (int i = 0; i < 3; i++) CHECK_RC(asyncio_sleep(0.001), 0);
  CHECK(p.ndgrams == 0 && p.errs == 0);
  CHECK(asyncio_transport_get_write_buffer_size(t) == 0);
  CHECK_RC(asyncio_transport_sendto(t, "ok", 2, a, sl), 0); /* to itself */
  WAIT_UNTIL(p.ndgrams == 1);
  CHECK(p.ndata == 2 && memcmp(p.data, "ok", 2) == 0);
  CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(p.lost == 1);
  return 0;
}

/* The argument checks of a datagram transport's calls. */
TEST(datagram_transport_bad_arguments) {
  assert_ok(run_main(dgram_args_main, NULL));
  ASSERT_SOFT();
}

/* ---- the loop thread only ---------------------------------------------------------------- */

typedef struct wt {
  asyncio_loop_t *loop;
  asyncio_transport_t *t, *dt;
  int fd;      /* a socket the calls must not take */
  int pipe[2]; /* likewise, a pipe */
  int file;
  struct sockaddr_storage ss;
  socklen_t sl;
  int rc[32];
  int n;
} wt_t;

static void *foreign_thread(void *arg) {
  wt_t *w = arg;
  asyncio_loop_t *loop = w->loop;
  peer_t q = {0};
  asyncio_transport_t *out = NULL;
  struct iovec v = {"x", 1};
  int *rc = w->rc;
  int n = 0;
  /* Transport calls that change something. */
  rc[n++] = asyncio_transport_close(w->t);
  rc[n++] = asyncio_transport_abort(w->t);
  rc[n++] = asyncio_transport_set_protocol(w->t, &proto_plain, &q);
  rc[n++] = asyncio_transport_pause_reading(w->t);
  rc[n++] = asyncio_transport_resume_reading(w->t);
  rc[n++] = asyncio_transport_write(w->t, "x", 1);
  rc[n++] = asyncio_transport_writelines(w->t, &v, 1);
  rc[n++] = asyncio_transport_write_eof(w->t);
  rc[n++] = asyncio_transport_set_write_buffer_limits(w->t, 1, 0);
  rc[n++] = asyncio_transport_sendto(w->dt, "x", 1, (struct sockaddr *)&w->ss, w->sl);
  rc[n++] = asyncio_loop_sendfile(loop, w->t, w->file, 0, 0, NULL, NULL);
  /* The calls that make transports. */
  rc[n++] = asyncio_loop_create_connection(loop, peer_factory, &q, "127.0.0.1", 1, NULL, &out,
                                           NULL);
  rc[n++] = asyncio_loop_create_unix_connection(loop, peer_factory, &q, "@nobody", NULL, &out,
                                                NULL);
  rc[n++] = asyncio_loop_connect_accepted_socket(loop, peer_factory, &q, w->fd, NULL, &out, NULL);
  asyncio_datagram_options_t d = {.family = AF_INET};
  rc[n++] = asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &q, &d, &out, NULL);
  asyncio_datagram_options_t du = {.family = AF_UNIX};
  rc[n++] = asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &q, &du, &out, NULL);
  rc[n++] = asyncio_loop_connect_read_pipe(loop, peer_factory, &q, w->pipe[0], &out, NULL);
  rc[n++] = asyncio_loop_connect_write_pipe(loop, peer_factory, &q, w->pipe[1], &out, NULL);
  int nwrong = n;
  /* The low-level calls and DNS have no loop argument: this thread runs no task. */
  char c;
  rc[n++] = (int)asyncio_sock_recv(w->fd, &c, 1);
  rc[n++] = asyncio_sock_sendall(w->fd, "x", 1, NULL);
  struct addrinfo *res = NULL;
  rc[n++] = asyncio_getaddrinfo("127.0.0.1", "80", NULL, &res);
  char host[64];
  rc[n++] = asyncio_getnameinfo((struct sockaddr *)&w->ss, w->sl, host, sizeof host, NULL, 0,
                                NI_NUMERICHOST);
  w->n = n;
  for (int i = 0; i < n; i++)
    if (rc[i] != (i < nwrong ? ASYNCIO_EWRONGTHREAD : ASYNCIO_ENOTASK)) CHECK(!"wrong code");
  CHECK(out == NULL && res == NULL && q.made == 0);
  return NULL;
}

static int wrong_thread_main(void *arg) {
  wt_t *w = arg;
  w->loop = asyncio_get_running_loop();
  peer_t p = {0}, dp = {0};
  int raw = -1;
  CHECK_RC(pair_transport(&p, &w->t, &raw), 0);
  CHECK_RC(udp_transport(&dp, &w->dt, &w->ss, &w->sl), 0);
  if (!w->t || !w->dt) return -1;
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  CHECK(pipe2(w->pipe, O_CLOEXEC) == 0);
  w->fd = sv[0];
  w->file = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  int fl0 = fcntl(sv[0], F_GETFL), flp0 = fcntl(w->pipe[0], F_GETFL);
  int flp1 = fcntl(w->pipe[1], F_GETFL);
  /* The loop is running (in this task) while the other thread calls. */
  pthread_t th;
  CHECK(pthread_create(&th, NULL, foreign_thread, w) == 0);
  pthread_join(th, NULL);
  CHECK(w->n == 22);
  /* Nothing changed. */
  CHECK(fd_unchanged(sv[0], fl0) && fd_unchanged(w->pipe[0], flp0) &&
        fd_unchanged(w->pipe[1], flp1));
  void *inst = NULL;
  CHECK(asyncio_transport_get_protocol(w->t, &inst) == &proto_plain && inst == &p);
  CHECK(asyncio_transport_is_reading(w->t) && !asyncio_transport_is_closing(w->t));
  for (int i = 0; i < 3; i++) CHECK_RC(asyncio_sleep(0.001), 0);
  CHECK(nothing_to_read(raw) && nothing_to_read(sv[1]) && dp.ndgrams == 0);
  CHECK_RC(asyncio_transport_write(w->t, "ok", 2), 0);
  char got[2];
  CHECK(read(raw, got, 2) == 2);
  CHECK_RC(asyncio_transport_close(w->t), 0);
  CHECK_RC(asyncio_transport_close(w->dt), 0);
  WAIT_UNTIL(p.lost == 1 && dp.lost == 1);
  close(raw);
  close(sv[0]);
  close(sv[1]);
  close(w->pipe[0]);
  close(w->pipe[1]);
  close(w->file);
  return 0;
}

/*
 * transports.h: "All transport calls are loop-thread only": from another
 * thread while the loop runs they return ASYNCIO_EWRONGTHREAD and do
 * nothing.  The sock_* calls and DNS, which find the loop through the
 * calling task, say ASYNCIO_ENOTASK there.
 */
TEST(net_calls_from_another_thread) {
  static wt_t w;
  memset(&w, 0, sizeof w);
  assert_ok(run_main(wrong_thread_main, &w));
  ASSERT_SOFT();
}

/* ---- the calls that make transports: which loop ------------------------------------------- */

static int other_loop_main(void *arg) {
  (void)arg;
  peer_t p = {0}, q = {0};
  asyncio_transport_t *t = NULL, *out = (void *)1;
  int raw = -1;
  CHECK_RC(pair_transport(&p, &t, &raw), 0);
  if (!t) return -1;
  int sv[2], pp[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  CHECK(pipe2(pp, O_CLOEXEC) == 0);
  int file = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  asyncio_datagram_options_t d = {.family = AF_INET};
  asyncio_datagram_options_t du = {.family = AF_UNIX};
  /* A second loop, open but not running: this task is not one of its tasks. */
  asyncio_loop_t *other = NULL;
  CHECK_RC(asyncio_loop_new(&other, NULL), 0);
  if (!other) return -1;
  CHECK_RC(asyncio_loop_sendfile(other, t, file, 0, 0, NULL, NULL), -EINVAL); /* t is not its */
  int code = ASYNCIO_ENOTASK;
  asyncio_future_t *keep = NULL;
  for (int round = 0; round < 2; round++) {
    CHECK_RC(asyncio_loop_create_connection(other, peer_factory, &q, "127.0.0.1", 1, NULL, &out,
                                            NULL),
             code);
    CHECK_RC(asyncio_loop_create_unix_connection(other, peer_factory, &q, "@nobody", NULL, &out,
                                                 NULL),
             code);
    CHECK_RC(asyncio_loop_connect_accepted_socket(other, peer_factory, &q, sv[0], NULL, &out, NULL),
             code);
    CHECK_RC(asyncio_loop_create_datagram_endpoint(other, dgram_factory, &q, &d, &out, NULL),
             code);
    CHECK_RC(asyncio_loop_create_datagram_endpoint(other, dgram_factory, &q, &du, &out, NULL),
             code);
    CHECK_RC(asyncio_loop_connect_read_pipe(other, peer_factory, &q, pp[0], &out, NULL), code);
    CHECK_RC(asyncio_loop_connect_write_pipe(other, peer_factory, &q, pp[1], &out, NULL), code);
    CHECK(out == NULL);
    out = (void *)1;
    /* Then closed: a future of it keeps its memory valid. */
    if (round == 0) {
      CHECK_RC(asyncio_future_new(&keep, other), 0);
      CHECK_RC(asyncio_loop_close(other), 0);
      code = ASYNCIO_ECLOSED;
    }
  }
  asyncio_future_free(keep);
  CHECK(q.made == 0);
  /* Everything is still the caller's, and this loop's transport works on. */
  CHECK(fcntl(sv[0], F_GETFL) >= 0 && !(fcntl(pp[0], F_GETFL) & O_NONBLOCK));
  CHECK_RC(asyncio_transport_write(t, "ok", 2), 0);
  char got[2];
  CHECK(read(raw, got, 2) == 2);
  CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(p.lost == 1);
  close(raw);
  close(sv[0]);
  close(sv[1]);
  close(pp[0]);
  close(pp[1]);
  close(file);
  return 0;
}

/*
 * Another loop than the running one: ASYNCIO_ENOTASK while it is open (the
 * caller is not its task), ASYNCIO_ECLOSED once it is closed; sendfile with
 * a transport of another loop is -EINVAL.
 */
TEST(make_calls_with_another_loop) {
  assert_ok(run_main(other_loop_main, NULL));
  ASSERT_SOFT();
}

/* ---- create_connection and friends -------------------------------------------------------- */

static int conn_args_main(void *arg) {
  (void)arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  peer_t q = {0};
  asyncio_transport_t *t = (void *)1;
  CHECK_RC(asyncio_loop_create_connection(NULL, peer_factory, &q, "127.0.0.1", 1, NULL, &t, NULL),
           -EINVAL);
  CHECK(t == NULL);
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &q, "127.0.0.1", 1, NULL, NULL,
                                          NULL),
           -EINVAL);
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &q, "127.0.0.1", -1, NULL, &t,
                                          NULL),
           -EINVAL);
  /* A local port out of range: the numeric fast path used to bind port & 0xffff. */
  size_t nerr = 7;
  asyncio_connection_options_t o = {.local_host = "127.0.0.1", .local_port = 65536 + 80,
                                    .nerrors = &nerr};
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &q, "127.0.0.1", 1, &o, &t, NULL),
           -EINVAL);
  o.local_port = -1;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &q, "127.0.0.1", 1, &o, &t, NULL),
           -EINVAL);
  /* A local port without its host. */
  o.local_host = NULL;
  o.local_port = 5000;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &q, "127.0.0.1", 1, &o, &t, NULL),
           -EINVAL);
  CHECK(nerr == 7); /* refused before anything ran */
  /* A NaN delay (it read as "off"), a negative interleave. */
  asyncio_connection_options_t he = {.happy_eyeballs_delay = NAN};
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &q, "127.0.0.1", 1, &he, &t, NULL),
           -EINVAL);
  asyncio_connection_options_t il = {.interleave = -1};
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &q, "127.0.0.1", 1, &il, &t, NULL),
           -EINVAL);
  /* sock=: a negative descriptor, a closed one, a pipe. */
  asyncio_connection_options_t s = {.use_sock = true, .sock = -1};
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &q, NULL, 0, &s, &t, NULL), -EBADF);
  CHECK_RC(asyncio_loop_create_unix_connection(loop, peer_factory, &q, NULL, &s, &t, NULL),
           -EBADF);
  int pp[2];
  CHECK(pipe2(pp, O_CLOEXEC) == 0);
  s.sock = dup(pp[0]);
  close(s.sock);
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &q, NULL, 0, &s, &t, NULL), -EBADF);
  CHECK_RC(asyncio_loop_create_unix_connection(loop, peer_factory, &q, NULL, &s, &t, NULL),
           -EBADF);
  CHECK_RC(asyncio_loop_connect_accepted_socket(loop, peer_factory, &q, s.sock, NULL, &t, NULL),
           -EBADF);
  CHECK_RC(asyncio_loop_connect_accepted_socket(loop, peer_factory, &q, -1, NULL, &t, NULL),
           -EBADF);
  int flp = fcntl(pp[0], F_GETFL);
  s.sock = pp[0];
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &q, NULL, 0, &s, &t, NULL),
           -ENOTSOCK);
  CHECK_RC(asyncio_loop_create_unix_connection(loop, peer_factory, &q, NULL, &s, &t, NULL),
           -ENOTSOCK);
  CHECK_RC(asyncio_loop_connect_accepted_socket(loop, peer_factory, &q, pp[0], NULL, &t, NULL),
           -ENOTSOCK);
  CHECK(fd_unchanged(pp[0], flp));
  close(pp[0]);
  close(pp[1]);
  /* create_unix_connection: empty and over-long paths, and NULL arguments. */
  char longp[sizeof(((struct sockaddr_un *)0)->sun_path) + 2];
  memset(longp, 'a', sizeof longp - 1);
  longp[sizeof longp - 1] = 0;
  CHECK_RC(asyncio_loop_create_unix_connection(loop, peer_factory, &q, "", NULL, &t, NULL),
           -EINVAL);
  CHECK_RC(asyncio_loop_create_unix_connection(loop, peer_factory, &q, longp, NULL, &t, NULL),
           -ENAMETOOLONG);
  longp[0] = '@';
  CHECK_RC(asyncio_loop_create_unix_connection(loop, peer_factory, &q, longp, NULL, &t, NULL),
           -ENAMETOOLONG);
  CHECK_RC(asyncio_loop_create_unix_connection(NULL, peer_factory, &q, "@x", NULL, &t, NULL),
           -EINVAL);
  CHECK_RC(asyncio_loop_create_unix_connection(loop, NULL, &q, "@x", NULL, &t, NULL), -EINVAL);
  CHECK_RC(asyncio_loop_create_unix_connection(loop, peer_factory, &q, "@x", NULL, NULL, NULL),
           -EINVAL);
  /* connect_accepted_socket: NULL arguments. */
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  CHECK_RC(asyncio_loop_connect_accepted_socket(NULL, peer_factory, &q, sv[0], NULL, &t, NULL),
           -EINVAL);
  CHECK_RC(asyncio_loop_connect_accepted_socket(loop, NULL, &q, sv[0], NULL, &t, NULL), -EINVAL);
  CHECK_RC(asyncio_loop_connect_accepted_socket(loop, peer_factory, &q, sv[0], NULL, NULL, NULL),
           -EINVAL);
  /* A factory that gives no table refuses the connection: -EINVAL, the socket stays ours. */
  CHECK_RC(
      asyncio_loop_connect_accepted_socket(loop, tableless_factory, NULL, sv[0], NULL, &t, NULL),
      -EINVAL);
  s.sock = sv[0];
  CHECK_RC(asyncio_loop_create_connection(loop, tableless_factory, NULL, NULL, 0, &s, &t, NULL),
           -EINVAL);
  CHECK(t == NULL && q.made == 0);
  CHECK(fcntl(sv[0], F_GETFL) >= 0);
  CHECK(write(sv[1], "x", 1) == 1); /* still connected */
  char c;
  CHECK(read(sv[0], &c, 1) == 1);
  close(sv[0]);
  close(sv[1]);
  return 0;
}

/* create_connection, create_unix_connection, connect_accepted_socket: argument checks. */
TEST(connection_bad_arguments) {
  assert_ok(run_main(conn_args_main, NULL));
  ASSERT_SOFT();
}

static int dgram_endpoint_args_main(void *arg) {
  (void)arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  peer_t q = {0};
  asyncio_transport_t *t = (void *)1;
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &q, NULL, &t, NULL),
           -EINVAL);
  CHECK(t == NULL);
  asyncio_datagram_options_t o = {.family = AF_INET};
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, NULL, &q, &o, &t, NULL), -EINVAL);
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &q, &o, NULL, NULL),
           -EINVAL);
  /* Ports out of range with their host. */
  static const int bad_ports[] = {-1, 65536};
  for (int i = 0; i < 2; i++) {
    asyncio_datagram_options_t l = {.local_host = "127.0.0.1", .local_port = bad_ports[i]};
    CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &q, &l, &t, NULL),
             -EINVAL);
    asyncio_datagram_options_t r = {.remote_host = "127.0.0.1", .remote_port = bad_ports[i]};
    CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &q, &r, &t, NULL),
             -EINVAL);
  }
  /* AF_UNIX: flags mean nothing for a path; an over-long abstract name. */
  asyncio_datagram_options_t uf = {.family = AF_UNIX, .local_host = "@x", .flags = AI_PASSIVE};
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &q, &uf, &t, NULL),
           -EINVAL);
  char longp[sizeof(((struct sockaddr_un *)0)->sun_path) + 2];
  memset(longp, 'a', sizeof longp - 1);
  longp[0] = '@';
  longp[sizeof longp - 1] = 0;
  asyncio_datagram_options_t ul = {.family = AF_UNIX, .local_host = longp};
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &q, &ul, &t, NULL),
           -ENAMETOOLONG);
  /* A port without its host. */
  asyncio_datagram_options_t lp = {.family = AF_INET, .local_port = 5000};
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &q, &lp, &t, NULL),
           -EINVAL);
  asyncio_datagram_options_t rp = {.local_host = "127.0.0.1", .remote_port = 5000};
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &q, &rp, &t, NULL),
           -EINVAL);
  /* An address family no socket has. */
  asyncio_datagram_options_t bf = {.family = 12345};
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &q, &bf, &t, NULL),
           -EAFNOSUPPORT);
  /* sock=: negative, closed, not a socket. */
  asyncio_datagram_options_t s = {.use_sock = true, .sock = -1};
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &q, &s, &t, NULL), -EBADF);
  int pp[2];
  CHECK(pipe2(pp, O_CLOEXEC) == 0);
  s.sock = dup(pp[0]);
  close(s.sock);
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &q, &s, &t, NULL), -EBADF);
  int flp = fcntl(pp[0], F_GETFL);
  s.sock = pp[0];
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &q, &s, &t, NULL),
           -ENOTSOCK);
  CHECK(fd_unchanged(pp[0], flp));
  close(pp[0]);
  close(pp[1]);
  CHECK(t == NULL && q.made == 0);
  return 0;
}

/* create_datagram_endpoint: argument checks. */
TEST(datagram_endpoint_bad_arguments) {
  assert_ok(run_main(dgram_endpoint_args_main, NULL));
  ASSERT_SOFT();
}

static int pipe_args_main(void *arg) {
  (void)arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  peer_t q = {0};
  asyncio_transport_t *t = (void *)1;
  int pp[2];
  CHECK(pipe2(pp, O_CLOEXEC) == 0);
  int fl0 = fcntl(pp[0], F_GETFL), fl1 = fcntl(pp[1], F_GETFL);
  /* The wrong end: refused, as read(2) / write(2) would refuse it. */
  CHECK_RC(asyncio_loop_connect_read_pipe(loop, peer_factory, &q, pp[1], &t, NULL), -EBADF);
  CHECK(t == NULL);
  CHECK_RC(asyncio_loop_connect_write_pipe(loop, peer_factory, &q, pp[0], &t, NULL), -EBADF);
  CHECK(fd_unchanged(pp[0], fl0) && fd_unchanged(pp[1], fl1));
  /* NULL arguments, a closed descriptor, a directory. */
  CHECK_RC(asyncio_loop_connect_read_pipe(NULL, peer_factory, &q, pp[0], &t, NULL), -EINVAL);
  CHECK_RC(asyncio_loop_connect_read_pipe(loop, NULL, &q, pp[0], &t, NULL), -EINVAL);
  CHECK_RC(asyncio_loop_connect_write_pipe(loop, peer_factory, &q, pp[1], NULL, NULL), -EINVAL);
  CHECK_RC(asyncio_loop_connect_write_pipe(loop, peer_factory, &q, -1, &t, NULL), -EBADF);
  int dead = dup(pp[0]);
  close(dead);
  CHECK_RC(asyncio_loop_connect_read_pipe(loop, peer_factory, &q, dead, &t, NULL), -EBADF);
  int dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  CHECK_RC(asyncio_loop_connect_read_pipe(loop, peer_factory, &q, dir, &t, NULL), -EINVAL);
  close(dir);
  /* A factory that gives no table: -EINVAL, the descriptor as it was. */
  CHECK_RC(asyncio_loop_connect_read_pipe(loop, tableless_factory, NULL, pp[0], &t, NULL),
           -EINVAL);
  CHECK(fd_unchanged(pp[0], fl0));
  CHECK(t == NULL && q.made == 0);
  /* The right ends still work. */
  peer_t r = {0}, w = {0};
  asyncio_transport_t *rt = NULL, *wt = NULL;
  CHECK_RC(asyncio_loop_connect_read_pipe(loop, peer_factory, &r, pp[0], &rt, NULL), 0);
  CHECK_RC(asyncio_loop_connect_write_pipe(loop, peer_factory, &w, pp[1], &wt, NULL), 0);
  if (!rt || !wt) return -1;
  CHECK_RC(asyncio_transport_write(wt, "ok", 2), 0);
  WAIT_UNTIL(r.nrecv == 2);
  CHECK_RC(asyncio_transport_close(wt), 0);
  WAIT_UNTIL(r.lost == 1 && w.lost == 1);
  CHECK(r.lost_err == 0 && w.lost_err == 0);
  return 0;
}

/* connect_read_pipe / connect_write_pipe: argument checks. */
TEST(pipe_bad_arguments) {
  assert_ok(run_main(pipe_args_main, NULL));
  ASSERT_SOFT();
}

/* ---- sockets.h ----------------------------------------------------------------------------- */

static int sock_args_main(void *arg) {
  (void)arg;
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
  int u = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_storage ss;
  socklen_t sl = loopback_addr(AF_INET, 0, &ss);
  CHECK(bind(u, (struct sockaddr *)&ss, sl) == 0);
  sl = sizeof ss;
  CHECK(getsockname(u, (struct sockaddr *)&ss, &sl) == 0);
  const struct sockaddr *a = (const struct sockaddr *)&ss;
  char buf[8];
  size_t sent = 9;
  int c = 9;
  /* NULL buffers with a length, an address length without its address. */
  CHECK_RC((int)asyncio_sock_recv(sv[0], NULL, 1), -EINVAL);
  CHECK_RC((int)asyncio_sock_recvfrom(u, NULL, 1, NULL, NULL), -EINVAL);
  CHECK_RC((int)asyncio_sock_recvfrom(u, buf, sizeof buf, (struct sockaddr *)&ss, NULL), -EINVAL);
  CHECK_RC(asyncio_sock_sendall(sv[0], NULL, 1, &sent), -EINVAL);
  CHECK(sent == 0);
  CHECK_RC((int)asyncio_sock_sendto(u, NULL, 1, a, sl), -EINVAL);
  CHECK_RC((int)asyncio_sock_sendto(u, "x", 1, NULL, sl), -EINVAL);
  CHECK_RC((int)asyncio_sock_sendto(u, "x", 1, a, 0), -EINVAL);
  int dv[2]; /* a Unix datagram socket's sendto(2) would send to the peer */
  CHECK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, dv) == 0);
  CHECK_RC((int)asyncio_sock_sendto(dv[0], "x", 1, a, 0), -EINVAL);
  CHECK(nothing_to_read(dv[1]));
  close(dv[0]);
  close(dv[1]);
  int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  CHECK_RC(asyncio_sock_connect(s, NULL, sl), -EINVAL);
  CHECK_RC(asyncio_sock_connect(s, a, 0), -EINVAL);
  CHECK_RC(asyncio_sock_connect(-1, a, sl), -EBADF);
  CHECK_RC(asyncio_sock_accept(s, NULL, NULL, NULL), -EINVAL);
  CHECK_RC(asyncio_sock_accept(s, &c, (struct sockaddr *)&ss, NULL), -EINVAL);
  CHECK(c == -1);
  c = 9;
  CHECK_RC(asyncio_sock_accept(-1, &c, NULL, NULL), -EBADF);
  CHECK(c == -1);
  c = 9;
  CHECK_RC(asyncio_sock_accept(s, &c, NULL, NULL), -EINVAL); /* not listening: accept(2) says so */
  CHECK(c == -1);
  /* Not a socket: a (non-blocking) pipe. */
  int pp[2];
  CHECK(pipe2(pp, O_NONBLOCK | O_CLOEXEC) == 0);
  CHECK_RC((int)asyncio_sock_recv(pp[0], buf, sizeof buf), -ENOTSOCK);
  CHECK_RC((int)asyncio_sock_recvfrom(pp[0], buf, sizeof buf, NULL, NULL), -ENOTSOCK);
  CHECK_RC(asyncio_sock_sendall(pp[1], "x", 1, NULL), -ENOTSOCK);
  CHECK_RC((int)asyncio_sock_sendto(pp[1], "x", 1, a, sl), -ENOTSOCK);
  CHECK_RC(asyncio_sock_connect(pp[1], a, sl), -ENOTSOCK);
  CHECK_RC(asyncio_sock_accept(pp[0], &c, NULL, NULL), -ENOTSOCK);
  int file = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  CHECK_RC(asyncio_sock_sendfile(pp[1], file, 0, 0, &sent, NULL), -ENOTSOCK);
  /* sendfile: no file, a negative offset, both options, a datagram socket. */
  CHECK_RC(asyncio_sock_sendfile(-1, file, 0, 0, &sent, NULL), -EBADF);
  CHECK_RC(asyncio_sock_sendfile(sv[0], -1, 0, 0, &sent, NULL), -EBADF);
  int dead = dup(file);
  close(dead);
  CHECK_RC(asyncio_sock_sendfile(sv[0], dead, 0, 0, &sent, NULL), -EBADF);
  CHECK_RC(asyncio_sock_sendfile(sv[0], file, -1, 0, &sent, NULL), -EINVAL);
  asyncio_sendfile_options_t both = {.no_fallback = true, .force_fallback = true};
  CHECK_RC(asyncio_sock_sendfile(sv[0], file, 0, 0, &sent, &both), -EINVAL);
  CHECK_RC(asyncio_sock_sendfile(u, file, 0, 0, &sent, NULL), -EINVAL);
  /* An offset into a file that cannot seek (the fallback reads a pipe). */
  CHECK_RC(asyncio_sock_sendfile(sv[0], pp[0], 1, 0, &sent, NULL), -ESPIPE);
  CHECK(sent == 0);
  CHECK(nothing_to_read(sv[1]) && nothing_to_read(u));
  close(file);
  close(pp[0]);
  close(pp[1]);
  close(s);
  close(u);
  close(sv[0]);
  close(sv[1]);
  return 0;
}

/* The sock_* calls: argument checks, and descriptors that are not sockets. */
TEST(sock_calls_bad_arguments) {
  assert_ok(run_main(sock_args_main, NULL));
  ASSERT_SOFT();
}

/* ---- the default executor shut down ---------------------------------------------------------- */

static int no_executor_main(void *arg) {
  (void)arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  peer_t p = {0};
  asyncio_transport_t *t = NULL;
  int raw = -1;
  CHECK_RC(pair_transport(&p, &t, &raw), 0);
  if (!t) return -1;
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
  int file = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  CHECK_RC(asyncio_loop_shutdown_default_executor(loop, -1), 0);
  /* What needs a worker thread says ASYNCIO_ECLOSED. */
  struct addrinfo *res = (void *)1;
  CHECK_RC(asyncio_getaddrinfo("localhost", "80", NULL, &res), ASYNCIO_ECLOSED);
  CHECK(res == NULL);
  struct sockaddr_storage ss;
  socklen_t sl = loopback_addr(AF_INET, 80, &ss);
  char host[64];
  CHECK_RC(asyncio_getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, NULL, 0, 0),
           ASYNCIO_ECLOSED);
  asyncio_transport_t *out = NULL;
  CHECK_RC(asyncio_loop_create_connection(loop, peer_factory, &p, "localhost", 80, NULL, &out,
                                          NULL),
           ASYNCIO_ECLOSED);
  asyncio_sendfile_options_t fb = {.force_fallback = true};
  size_t sent = 9;
  CHECK_RC(asyncio_sock_sendfile(sv[0], file, 0, 0, &sent, &fb), ASYNCIO_ECLOSED);
  CHECK(sent == 0);
  CHECK_RC(asyncio_loop_sendfile(loop, t, file, 0, 0, &sent, &fb), ASYNCIO_ECLOSED);
  CHECK(sent == 0);
  CHECK(nothing_to_read(sv[1]) && nothing_to_read(raw));
  /* The transport is left as it was: reading, writable. */
  CHECK(asyncio_transport_is_reading(t));
  CHECK_RC(asyncio_transport_write(t, "ok", 2), 0);
  char got[2];
  CHECK(read(raw, got, 2) == 2);
  CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(p.lost == 1);
  close(file);
  close(raw);
  close(sv[0]);
  close(sv[1]);
  return 0;
}

/*
 * After shutdown_default_executor the calls that need a worker thread
 * (resolution, the sendfile fallback) return ASYNCIO_ECLOSED.
 */
TEST(calls_after_executor_shutdown) {
  assert_ok(run_main(no_executor_main, NULL));
  ASSERT_SOFT();
}

/* ---- dns.h --------------------------------------------------------------------------------- */

static int gni_args_main(void *arg) {
  (void)arg;
  struct sockaddr_storage ss;
  socklen_t sl = loopback_addr(AF_INET, 80, &ss);
  const struct sockaddr *a = (const struct sockaddr *)&ss;
  char host[64] = "untouched", serv[16] = "untouched";
  CHECK_RC(asyncio_getnameinfo(NULL, sl, host, sizeof host, serv, sizeof serv, 0), -EINVAL);
  CHECK_RC(asyncio_getnameinfo(a, 0, host, sizeof host, serv, sizeof serv, 0), -EINVAL);
  CHECK_RC(asyncio_getnameinfo(a, sizeof ss + 1, host, sizeof host, serv, sizeof serv, 0),
           -EINVAL);
  CHECK_RC(asyncio_getnameinfo(a, sl, NULL, 0, NULL, 0, 0), -EINVAL);
  CHECK_RC(asyncio_getnameinfo(a, sl, host, 0, serv, 0, 0), -EINVAL); /* no room in either */
  CHECK_RC(asyncio_getnameinfo(a, sl, NULL, sizeof host, NULL, sizeof serv, 0), -EINVAL);
  /* Too short for its family: the resolver's verdict. */
  CHECK_RC(asyncio_getnameinfo(a, 4, host, sizeof host, NULL, 0, NI_NUMERICHOST),
           ASYNCIO_EGAI_FAMILY);
  /* Too small a buffer: nothing written. */
  char tiny[4] = "abc";
  CHECK_RC(asyncio_getnameinfo(a, sl, tiny, sizeof tiny, NULL, 0, NI_NUMERICHOST),
           ASYNCIO_EGAI_OVERFLOW);
  CHECK(strcmp(tiny, "abc") == 0);
  CHECK(strcmp(host, "untouched") == 0 && strcmp(serv, "untouched") == 0);
  /* One of the two is enough. */
  CHECK_RC(asyncio_getnameinfo(a, sl, host, sizeof host, NULL, 0, NI_NUMERICHOST), 0);
  CHECK(strcmp(host, "127.0.0.1") == 0);
  return 0;
}

/* getnameinfo: argument checks (getaddrinfo's are in test_dns.c). */
TEST(getnameinfo_bad_arguments) {
  assert_ok(run_main(gni_args_main, NULL));
  ASSERT_SOFT();
}
