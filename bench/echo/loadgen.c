/*
 * loadgen.c - the load generator of the TCP echo benchmark (issue 5,
 * docs/bench.md, bench/run_echo.sh).
 *
 *   loadgen [-b] [-T] [-c CONNS] [-d DEPTH] [-s SIZE] [-w WARMUP_S] [-t SECONDS]
 *           [-p SERVER_PID] [-C CTL_FIFO -A ACK_FIFO] HOST PORT
 *
 * Opens CONNS connections to HOST:PORT, keeps DEPTH messages of SIZE bytes
 * in flight on each (DEPTH 1 is ping-pong), and counts round trips: a
 * message is done when SIZE more bytes came back on its connection, and
 * every finished message is replaced by a new one at once, in one send per
 * readiness for all the messages that finished in it.  After WARMUP_S
 * seconds it counts for SECONDS seconds and prints, one per line:
 *
 *   RESULT rps R            round trips per second in the window
 *   RESULT count N secs S   the same, raw
 *   RESULT server_cpu_us U  CPU time of process SERVER_PID over the window
 *                           (all its threads, ns resolution, from
 *                           clock_getcpuclockid: the same quantity as
 *                           utime+stime in /proc/PID/stat, which counts in
 *                           10 ms ticks)
 *   RESULT loadgen_busy P   this program's CPU time / wall time, percent
 *
 * With -C/-A it brackets the window with a `perf stat --control
 * fifo:CTL,ACK -D -1` started by the driver: "enable" (and the ack) before
 * the first count, "disable" after the last, so the syscall counter and the
 * round-trip counter cover the same interval.
 *
 * -b polls with a zero timeout instead of sleeping in epoll_wait, so the
 * server never has to wake the load generator (it then shows 100% busy).
 *
 * -T speaks TLS (the TLS echo benchmark, bench/run_tls.sh): every connection
 * does a blocking OpenSSL handshake (TLS_client_method, so TLS 1.3 against
 * any of our servers; no certificate verification) once all are connected,
 * before anything is timed; then the socket is non-blocking again.  In the
 * loop a readiness is SSL_read (with read-ahead, so usually one recv for
 * all the records waiting) repeated while OpenSSL still holds bytes that
 * epoll cannot report, and writing is SSL_write in partial-write mode with
 * the same "owed" logic: a write that wants to wait registers EPOLLOUT.
 * Without -T nothing of OpenSSL is used.
 *
 * Single-threaded, epoll, level-triggered, non-blocking.  Each readiness is
 * one recv and (unless the data finished no message) one send, so the load
 * generator costs about what the floor server costs per round trip; its
 * busy figure says how close it came to being the limit.  Nothing here is
 * a test: it exits non-zero on any connection error, stall or EOF so that a
 * broken server prints no figure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RXBUF (64 * 1024)
#define CONNECT_BATCH 128

typedef struct conn {
  int fd;
  SSL *ssl;       /* with -T */
  size_t partial; /* bytes of an unfinished message received */
  size_t owed;    /* bytes not yet sent (only after a short send) */
  int out_on;     /* EPOLLOUT registered */
} conn_t;

static char rxbuf[RXBUF];
static char *txbuf;
static size_t txcap;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double self_cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU seconds of another process, all threads; -1 when it cannot be read. */
static double proc_cpu(pid_t pid) {
  clockid_t id;
  struct timespec ts;
  if (pid <= 0 || clock_getcpuclockid(pid, &id) != 0 || clock_gettime(id, &ts) != 0) return -1;
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what) {
  fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void die_tls(const char *what) {
  fprintf(stderr, "loadgen: %s: TLS error\n", what);
  ERR_print_errors_fp(stderr);
  exit(1);
}

/*
 * One send of up to k bytes of txbuf: the bytes taken, or -1 with errno
 * EAGAIN when the socket (or OpenSSL's pending record) must drain first.  A
 * TLS write that waits is repeated with txbuf again and at least the same
 * length, as SSL_write requires (the owed count never shrinks meanwhile).
 */
static ssize_t send_some(conn_t *c, size_t k) {
  if (!c->ssl) return send(c->fd, txbuf, k, MSG_NOSIGNAL);
  int w = SSL_write(c->ssl, txbuf, (int)k);
  if (w > 0) return w;
  int e = SSL_get_error(c->ssl, w);
  if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
    errno = EAGAIN;
    return -1;
  }
  die_tls("SSL_write");
  return -1;
}

/* One perf control command and its acknowledgement. */
static void perf_ctl(int ctl, int ack, const char *cmd) {
  if (ctl < 0) return;
  if (write(ctl, cmd, strlen(cmd)) < 0) die("perf control write");
  char b[16];
  ssize_t n = read(ack, b, sizeof b);
  if (n <= 0) die("perf control ack");
}

/* Sends what the connection owes; registers for writability if the kernel took less. */
static int flush(int ep, conn_t *c) {
  while (c->owed) {
    size_t k = c->owed < txcap ? c->owed : txcap;
    ssize_t w = send_some(c, k);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) return -1;
      break;
    }
    c->owed -= (size_t)w;
    if ((size_t)w < k) break;
  }
  int want = c->owed != 0;
  if (want != c->out_on) {
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) return -1;
    c->out_on = want;
  }
  return 0;
}

/* Counts the round trips that r more bytes on c finished and adds what they owe; 1 if any. */
static int received(conn_t *c, size_t r, size_t size, uint64_t *done) {
  size_t got = c->partial + r;
  size_t msgs = got / size;
  c->partial = got % size;
  if (!msgs) return 0;
  *done += msgs;
  c->owed += msgs * size;
  return 1;
}

/*
 * The TLS side of a readiness: SSL_read until OpenSSL has nothing left that
 * epoll could not report (read-ahead may have buffered several records);
 * what the kernel still holds, level-triggered epoll reports next time.
 * Returns 0, or 1 when the server closed the connection.
 */
static int tls_readable(conn_t *c, size_t size, uint64_t *done, int *more) {
  for (;;) {
    int r = SSL_read(c->ssl, rxbuf, (int)sizeof rxbuf);
    if (r > 0) {
      *more |= received(c, (size_t)r, size, done);
      if (SSL_has_pending(c->ssl)) continue;
      return 0;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) return 1;
    die_tls("SSL_read");
  }
}

/* The blocking handshake of -T, on a connected socket that is non-blocking before and after. */
static void tls_connect(SSL_CTX *ctx, conn_t *c) {
  int fl = fcntl(c->fd, F_GETFL);
  if (fl < 0 || fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK) < 0) die("fcntl");
  c->ssl = SSL_new(ctx);
  if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) die_tls("SSL_new");
  if (SSL_connect(c->ssl) != 1) die_tls("SSL_connect");
  if (fcntl(c->fd, F_SETFL, fl) < 0) die("fcntl");
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen [-b] [-T] [-c CONNS] [-d DEPTH] [-s SIZE] [-w WARMUP_S] [-t SECONDS]\n"
          "               [-p SERVER_PID] [-C CTL_FIFO -A ACK_FIFO] HOST PORT\n");
  exit(2);
}

int main(int argc, char **argv) {
  int nconn = 1, depth = 1, spin = 0, tls = 0, opt;
  size_t size = 64;
  double warmup = 0.5, window = 1.0;
  pid_t spid = 0;
  const char *ctl_path = NULL, *ack_path = NULL;
  while ((opt = getopt(argc, argv, "bTc:d:s:w:t:p:C:A:")) != -1) {
    switch (opt) {
    case 'b': spin = 1; break;
    case 'T': tls = 1; break;
    case 'c': nconn = atoi(optarg); break;
    case 'd': depth = atoi(optarg); break;
    case 's': size = (size_t)atol(optarg); break;
    case 'w': warmup = atof(optarg); break;
    case 't': window = atof(optarg); break;
    case 'p': spid = (pid_t)atoi(optarg); break;
    case 'C': ctl_path = optarg; break;
    case 'A': ack_path = optarg; break;
    default: usage();
    }
  }
  if (argc - optind != 2 || nconn < 1 || depth < 1 || size < 1 || window <= 0) usage();
  if (!!ctl_path != !!ack_path) usage();
  signal(SIGPIPE, SIG_IGN);

  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)nconn + 64) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[optind + 1]))};
  if (inet_pton(AF_INET, argv[optind], &sa.sin_addr) != 1) usage();

  txcap = RXBUF + size * (size_t)depth;
  txbuf = malloc(txcap);
  conn_t *conns = calloc((size_t)nconn, sizeof *conns);
  struct epoll_event *evs = calloc((size_t)nconn + 1, sizeof *evs);
  if (!txbuf || !conns || !evs) die("malloc");
  for (size_t i = 0; i < txcap; i++) txbuf[i] = (char)('a' + i % 26);

  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");

  /* Connect in batches, so a server with a short listen backlog is not flooded. */
  for (int base = 0; base < nconn; base += CONNECT_BATCH) {
    int end = base + CONNECT_BATCH < nconn ? base + CONNECT_BATCH : nconn;
    for (int i = base; i < end; i++) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) die("socket");
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS)
        die("connect");
      conns[i].fd = fd;
      struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = &conns[i]};
      if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
    }
    int pending = end - base;
    double deadline = now() + 10;
    while (pending) {
      int n = epoll_wait(ep, evs, nconn + 1, 100);
      if (n < 0 && errno != EINTR) die("epoll_wait");
      for (int i = 0; i < n; i++) {
        conn_t *c = evs[i].data.ptr;
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
          errno = err;
          die("connect");
        }
        struct epoll_event ev = {.events = 0, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        pending--;
      }
      if (now() > deadline) {
        errno = ETIMEDOUT;
        die("connect");
      }
    }
  }

  SSL_CTX *ctx = NULL;
  if (tls) {
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) die_tls("SSL_CTX_new");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1);
    for (int i = 0; i < nconn; i++) tls_connect(ctx, &conns[i]);
  }

  /* Start: DEPTH messages on every connection. */
  for (int i = 0; i < nconn; i++) {
    conn_t *c = &conns[i];
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
    c->owed = size * (size_t)depth;
    if (flush(ep, c) < 0) die("send");
  }

  int ctl = -1, ack = -1;
  if (ctl_path) {
    /* perf opens the control fifo for reading and the ack fifo for writing. */
    ctl = open(ctl_path, O_WRONLY | O_CLOEXEC);
    ack = open(ack_path, O_RDONLY | O_CLOEXEC);
    if (ctl < 0 || ack < 0) die("perf fifos");
  }

  uint64_t done = 0, done0 = 0;
  double t_start = now(), t0 = 0, t1 = 0, cpu0 = 0, self0 = 0;
  double t_warm = t_start + warmup, t_end = 0;
  int phase = 0; /* 0 warm-up, 1 measuring */
  double last_progress = t_start;
  uint64_t last_done = 0;
  for (;;) {
    int n = epoll_wait(ep, evs, nconn + 1, spin ? 0 : 50);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (evs[i].events & EPOLLOUT) {
        if (flush(ep, c) < 0) die("send");
      }
      if (!(evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
      if (c->ssl) {
        int idle = c->owed == 0, more = 0;
        if (tls_readable(c, size, &done, &more)) {
          fprintf(stderr, "loadgen: server closed a connection\n");
          return 1;
        }
        if (more && idle && flush(ep, c) < 0) die("send");
        continue;
      }
      ssize_t r = recv(c->fd, rxbuf, sizeof rxbuf, 0);
      if (r < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        die("recv");
      }
      if (r == 0) {
        fprintf(stderr, "loadgen: server closed a connection\n");
        return 1;
      }
      size_t got = c->partial + (size_t)r;
      size_t msgs = got / size;
      c->partial = got % size;
      if (msgs) {
        done += msgs;
        int idle = c->owed == 0;
        c->owed += msgs * size;
        if (idle && flush(ep, c) < 0) die("send");
      }
    }
    double t = now();
    if (done != last_done) {
      last_done = done;
      last_progress = t;
    } else if (t - last_progress > 5) {
      fprintf(stderr, "loadgen: no progress for 5 s (%llu round trips so far)\n",
              (unsigned long long)done);
      return 1;
    }
    if (phase == 0 && t >= t_warm) {
      perf_ctl(ctl, ack, "enable\n");
      cpu0 = proc_cpu(spid);
      self0 = self_cpu();
      t0 = now();
      done0 = done;
      t_end = t0 + window;
      phase = 1;
    } else if (phase == 1 && t >= t_end) {
      t1 = t;
      uint64_t count = done - done0;
      double cpu1 = proc_cpu(spid);
      double self1 = self_cpu();
      perf_ctl(ctl, ack, "disable\n");
      double secs = t1 - t0;
      printf("RESULT rps %.1f\n", (double)count / secs);
      printf("RESULT count %llu secs %.6f\n", (unsigned long long)count, secs);
      if (cpu0 >= 0 && cpu1 >= 0) printf("RESULT server_cpu_us %.1f\n", (cpu1 - cpu0) * 1e6);
      printf("RESULT loadgen_busy %.1f\n", 100.0 * (self1 - self0) / secs);
      fflush(stdout);
      break;
    }
  }
  for (int i = 0; i < nconn; i++) {
    SSL_free(conns[i].ssl);
    close(conns[i].fd);
  }
  SSL_CTX_free(ctx);
  close(ep);
  free(conns);
  free(evs);
  free(txbuf);
  return 0;
}
