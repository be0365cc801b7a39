/*
 * test_steady_state.c - the hot paths allocate nothing once warm.
 *
 * The task switch, the ready queue, timers, I/O dispatch, the locks and the
 * transports (plain, datagram and TLS) keep what they need in pools and in
 * the objects themselves, so a program that has reached its working set
 * makes no allocation per message, wake-up or timer.  Each case runs its
 * workload twice and counts, through the harness's allocator hook, the
 * allocations of the second round: it must be zero.  (OpenSSL's own
 * allocations do not go through the hook; ours around it do.)
 */
#include "stream_helpers.h"
#include "tls_helpers.h"

#include <asyncio/locks.h>

#define ROUNDS 2
#define N 1000

/* The allocations of the last round of a workload. */
static long g_delta;

/* Runs fn(arg) as the main task of a loop with the virtual clock (timers
 * fire at once), then the soft checks. */
static void run_virtual(asyncio_coro_fn fn, void *arg) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *t = NULL;
  assert_ok(asyncio_loop_create_task(loop, &t, fn, arg, NULL));
  assert_ok(asyncio_loop_run_until_complete(loop, t, NULL));
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
  ASSERT_SOFT();
}

static asyncio_task_t *spawn(asyncio_coro_fn fn, void *arg) {
  asyncio_task_t *t = NULL;
  CHECK_RC(asyncio_create_task(&t, fn, arg, NULL), 0);
  return t;
}

static int finish(asyncio_task_t *t) {
  int rc = t ? asyncio_await(t, NULL) : -EINVAL;
  if (t) asyncio_task_free(t);
  return rc;
}

/* Round `round` of a workload starts: the last one is counted. */
static long g_before;
static void round_start(int round) {
  if (round == ROUNDS - 1) g_before = harness_total_allocs();
}
static void rounds_end(void) { g_delta = harness_total_allocs() - g_before; }

/* ---- the task switch and the ready queue ------------------------------------------------ */

static bool g_stop;

static int yielder(void *arg) {
  long *count = arg;
  while (!g_stop) {
    (*count)++;
    CHECK_RC(asyncio_sleep(0), 0);
  }
  return 0;
}

static int switch_main(void *arg) {
  (void)arg;
  long a = 0, b = 0;
  g_stop = false;
  asyncio_task_t *t1 = spawn(yielder, &a), *t2 = spawn(yielder, &b);
  for (int round = 0; round < ROUNDS; round++) {
    round_start(round);
    for (int i = 0; i < N; i++) CHECK_RC(asyncio_sleep(0), 0);
  }
  rounds_end();
  g_stop = true;
  CHECK_RC(finish(t1), 0);
  CHECK_RC(finish(t2), 0);
  CHECK(a >= ROUNDS * N && b >= ROUNDS * N);
  return 0;
}

/* Three tasks taking turns with sleep(0): every switch goes through the ready queue. */
TEST(task_switch_allocates_nothing) {
  run_virtual(switch_main, NULL);
  assert_int_equal(g_delta, 0);
}

typedef struct chain {
  asyncio_loop_t *loop;
  int left, ran;
  bool timer;
} chain_t;

/* Reschedules itself until `left` runs out; a timer chain also schedules
 * and cancels a second timer each time, as a timeout that did not fire. */
static void chain_step(void *arg) {
  chain_t *c = arg;
  c->ran++;
  if (--c->left <= 0) return;
  if (!c->timer) {
    CHECK_RC(asyncio_loop_call_soon(c->loop, chain_step, c, NULL), 0);
    return;
  }
  asyncio_handle_t h;
  CHECK_RC(asyncio_loop_call_later(c->loop, 10.0, chain_step, c, &h), 0);
  asyncio_handle_cancel(h);
  CHECK_RC(asyncio_loop_call_later(c->loop, 0.001 * (c->left % 7), chain_step, c, NULL), 0);
}

static int chain_main(void *arg) {
  bool timer = arg != NULL;
  chain_t c = {.loop = asyncio_get_running_loop(), .timer = timer};
  for (int round = 0; round < ROUNDS; round++) {
    round_start(round);
    c.left = N;
    c.ran = 0;
    CHECK_RC(asyncio_loop_call_soon(c.loop, chain_step, &c, NULL), 0);
    while (c.ran < N) CHECK_RC(asyncio_sleep(timer ? 0.001 : 0), 0);
  }
  rounds_end();
  return 0;
}

/* call_soon: a callback that schedules the next one, a thousand times. */
TEST(call_soon_allocates_nothing) {
  run_virtual(chain_main, NULL);
  assert_int_equal(g_delta, 0);
}

/* call_later, a cancelled timer per step (the heap purges them), and sleep(> 0). */
TEST(timers_allocate_nothing) {
  run_virtual(chain_main, (void *)1);
  assert_int_equal(g_delta, 0);
}

/* ---- the locks --------------------------------------------------------------------------- */

typedef struct sync {
  asyncio_lock_t *lock;
  asyncio_event_t *ev[2];
  asyncio_semaphore_t *sem;
  asyncio_condition_t *cond;
  int turn;
  bool stop;
} sync_t;

/* The partner: answers each event with the other, then contends for the lock,
 * the semaphore and the condition. */
static int partner(void *arg) {
  sync_t *s = arg;
  for (;;) {
    CHECK_RC(asyncio_event_wait(s->ev[0]), 0);
    CHECK_RC(asyncio_event_clear(s->ev[0]), 0);
    if (s->stop) return 0;
    CHECK_RC(asyncio_event_set(s->ev[1]), 0);
    CHECK_RC(asyncio_lock_acquire(s->lock), 0);
    CHECK_RC(asyncio_sleep(0), 0); /* the main task waits for the lock meanwhile */
    CHECK_RC(asyncio_lock_release(s->lock), 0);
    CHECK_RC(asyncio_semaphore_acquire(s->sem), 0);
    CHECK_RC(asyncio_sleep(0), 0);
    CHECK_RC(asyncio_semaphore_release(s->sem), 0);
    CHECK_RC(asyncio_condition_acquire(s->cond), 0);
    s->turn = 1;
    CHECK_RC(asyncio_condition_notify(s->cond, 1), 1); /* the main task waits */
    CHECK_RC(asyncio_condition_release(s->cond), 0);
  }
}

static int locks_main(void *arg) {
  (void)arg;
  sync_t s = {0};
  CHECK_RC(asyncio_lock_new(&s.lock), 0);
  CHECK_RC(asyncio_event_new(&s.ev[0]), 0);
  CHECK_RC(asyncio_event_new(&s.ev[1]), 0);
  CHECK_RC(asyncio_semaphore_new(&s.sem, 1), 0);
  CHECK_RC(asyncio_condition_new(&s.cond, NULL), 0);
  asyncio_task_t *t = spawn(partner, &s);
  for (int round = 0; round < ROUNDS; round++) {
    round_start(round);
    for (int i = 0; i < N; i++) {
      s.turn = 0;
      CHECK_RC(asyncio_condition_acquire(s.cond), 0);
      CHECK_RC(asyncio_event_set(s.ev[0]), 0);
      CHECK_RC(asyncio_event_wait(s.ev[1]), 0);
      CHECK_RC(asyncio_event_clear(s.ev[1]), 0);
      CHECK_RC(asyncio_lock_acquire(s.lock), 0); /* held by the partner: waits */
      CHECK_RC(asyncio_lock_release(s.lock), 0);
      CHECK_RC(asyncio_semaphore_acquire(s.sem), 0);
      CHECK_RC(asyncio_semaphore_release(s.sem), 0);
      while (!s.turn) CHECK_RC(asyncio_condition_wait(s.cond), 0);
      CHECK_RC(asyncio_condition_release(s.cond), 0);
    }
  }
  rounds_end();
  s.stop = true;
  CHECK_RC(asyncio_event_set(s.ev[0]), 0);
  CHECK_RC(finish(t), 0);
  CHECK_RC(asyncio_condition_free(s.cond), 0);
  CHECK_RC(asyncio_semaphore_free(s.sem), 0);
  CHECK_RC(asyncio_event_free(s.ev[0]), 0);
  CHECK_RC(asyncio_event_free(s.ev[1]), 0);
  CHECK_RC(asyncio_lock_free(s.lock), 0);
  return 0;
}

/* Event, Lock, Semaphore and Condition waits between two tasks. */
TEST(lock_waits_allocate_nothing) {
  run_virtual(locks_main, NULL);
  assert_int_equal(g_delta, 0);
}

/* ---- I/O dispatch ------------------------------------------------------------------------ */

typedef struct rd {
  int fd;
  int got;
} rd_t;

static void on_readable(int fd, void *arg) {
  rd_t *r = arg;
  char c;
  if (read(fd, &c, 1) == 1) r->got++;
}

static int reader_main(void *arg) {
  (void)arg;
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
  rd_t r = {.fd = sv[0]};
  asyncio_loop_t *loop = asyncio_get_running_loop();
  CHECK_RC(asyncio_loop_add_reader(loop, sv[0], on_readable, &r), 0);
  for (int round = 0; round < ROUNDS; round++) {
    round_start(round);
    for (int i = 0; i < N; i++) {
      int want = r.got + 1;
      CHECK(write(sv[1], "x", 1) == 1);
      while (r.got < want) CHECK_RC(asyncio_sleep(0), 0);
    }
  }
  rounds_end();
  CHECK(asyncio_loop_remove_reader(loop, sv[0]) == 1);
  close(sv[0]);
  close(sv[1]);
  return 0;
}

/* add_reader: a readiness callback per byte. */
TEST(reader_callbacks_allocate_nothing) {
  run_virtual(reader_main, NULL);
  assert_int_equal(g_delta, 0);
}

/* The plain and the buffered protocol echo what they get; the test is the peer. */
static int proto_echo_main(void *arg) {
  bool buffered = arg != NULL;
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  peer_t p = {.echo = true, .buffered = buffered};
  asyncio_connection_options_t co = {.sock = sv[0], .use_sock = true};
  asyncio_transport_t *t = NULL;
  void *inst;
  CHECK_RC(asyncio_loop_create_connection(asyncio_get_running_loop(), peer_factory, &p, NULL, 0,
                                          &co, &t, &inst),
           0);
  if (!t) return -1;
  for (int round = 0; round < ROUNDS; round++) {
    round_start(round);
    for (int i = 0; i < N; i++) {
      char msg[64], back[64];
      memset(msg, 'a' + i % 26, sizeof msg);
      size_t sent;
      CHECK_RC(asyncio_sock_sendall(sv[1], msg, sizeof msg, &sent), 0);
      size_t got = 0;
      while (got < sizeof back) {
        ssize_t n = asyncio_sock_recv(sv[1], back + got, sizeof back - got);
        CHECK(n > 0);
        if (n <= 0) return -1;
        got += (size_t)n;
      }
      CHECK(memcmp(msg, back, sizeof msg) == 0);
    }
  }
  rounds_end();
  CHECK_RC(asyncio_transport_close(t), 0);
  WAIT_UNTIL(p.lost);
  close(sv[1]);
  return 0;
}

/* A transport and its protocol: data_received, write, and sock_recv / sock_sendall. */
TEST(protocol_echo_allocates_nothing) {
  run_virtual(proto_echo_main, NULL);
  assert_int_equal(g_delta, 0);
}

/* The same with a BufferedProtocol (get_buffer / buffer_updated). */
TEST(buffered_protocol_echo_allocates_nothing) {
  run_virtual(proto_echo_main, (void *)1);
  assert_int_equal(g_delta, 0);
}

/* Datagrams: sendto on one endpoint, datagram_received on the other. */
static int dgram_main(void *arg) {
  (void)arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  peer_t a = {0}, b = {0};
  asyncio_datagram_options_t oa = {.local_host = "127.0.0.1", .local_port = 0};
  asyncio_transport_t *ta = NULL, *tb = NULL;
  void *inst;
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &a, &oa, &ta, &inst), 0);
  if (!ta) return -1;
  struct sockaddr_storage sa;
  socklen_t sl = sizeof sa;
  CHECK_RC(asyncio_transport_get_sockname(ta, (struct sockaddr *)&sa, &sl), 0);
  int port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
  asyncio_datagram_options_t ob = {.remote_host = "127.0.0.1", .remote_port = port};
  CHECK_RC(asyncio_loop_create_datagram_endpoint(loop, dgram_factory, &b, &ob, &tb, &inst), 0);
  if (!tb) return -1;
  for (int round = 0; round < ROUNDS; round++) {
    round_start(round);
    for (int i = 0; i < N; i++) {
      int want = a.ndgrams + 1;
      CHECK_RC(asyncio_transport_sendto(tb, "ping", 4, NULL, 0), 0);
      WAIT_UNTIL(a.ndgrams >= want);
    }
  }
  rounds_end();
  CHECK_RC(asyncio_transport_close(ta), 0);
  CHECK_RC(asyncio_transport_close(tb), 0);
  WAIT_UNTIL(a.lost && b.lost);
  return 0;
}

TEST(datagrams_allocate_nothing) {
  run_virtual(dgram_main, NULL);
  assert_int_equal(g_delta, 0);
}

/* ---- streams over TLS -------------------------------------------------------------------- */

typedef struct tls {
  tls_pki_t pki;
  SSL_CTX *sctx, *cctx;
} tls_t;

static int tls_echo_handler(reader_t *r, writer_t *w, void *arg) {
  (void)arg;
  char buf[256];
  for (;;) {
    ssize_t n = asyncio_stream_read(r, buf, sizeof buf);
    if (n <= 0) return 0;
    if (asyncio_stream_write(w, buf, (size_t)n) < 0 || asyncio_stream_drain(w) < 0) return 0;
  }
}

static int tls_main(void *arg) {
  tls_t *c = arg;
  asyncio_server_options_t so = {.ssl = c->sctx};
  asyncio_stream_options_t sopt = {.server = &so};
  asyncio_server_t *srv = NULL;
  CHECK_RC(asyncio_start_server(tls_echo_handler, NULL, "127.0.0.1", 0, &sopt, &srv), 0);
  if (!srv) return -1;
  asyncio_connection_options_t co = {.ssl = c->cctx, .server_hostname = "localhost"};
  asyncio_stream_options_t copt = {.connection = &co};
  reader_t *r = NULL;
  writer_t *w = NULL;
  CHECK_RC(asyncio_open_connection("127.0.0.1", server_port(srv, 0), &copt, &r, &w), 0);
  if (w) {
    for (int round = 0; round < ROUNDS; round++) {
      round_start(round);
      for (int i = 0; i < N; i++) {
        char msg[64], back[64];
        memset(msg, 'A' + i % 26, sizeof msg);
        CHECK_RC(asyncio_stream_write(w, msg, sizeof msg), 0);
        CHECK_RC(asyncio_stream_drain(w), 0);
        CHECK_RC(asyncio_stream_readexactly(r, back, sizeof back), 0);
        CHECK(memcmp(msg, back, sizeof msg) == 0);
      }
    }
    rounds_end();
    CHECK_RC(asyncio_stream_close(w), 0);
    CHECK_RC(asyncio_stream_wait_closed(w), 0);
    pair_close(r, w, -1);
  }
  CHECK_RC(asyncio_server_close(srv), 0);
  CHECK_RC(asyncio_server_wait_closed(srv), 0);
  CHECK_RC(asyncio_server_free(srv), 0);
  return 0;
}

/* A TLS stream client and a TLS stream server on one loop: records both ways. */
TEST(tls_streams_allocate_nothing) {
  tls_t c;
  tls_pki_init(&c.pki);
  c.sctx = tls_server_ctx(&c.pki);
  c.cctx = tls_client_ctx(&c.pki, 0);
  g_delta = -1;
  assert_ok(run_main(tls_main, &c));
  SSL_CTX_free(c.sctx);
  SSL_CTX_free(c.cctx);
  tls_pki_free(&c.pki);
  ASSERT_SOFT();
  assert_int_equal(g_delta, 0);
}
