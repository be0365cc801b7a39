/*
 * test_dns.c - getaddrinfo / getnameinfo off the loop (include/asyncio/dns.h).
 *
 * Python origin: base_events.getaddrinfo / getnameinfo (run in the default
 * executor) and the gaierror they raise; Lib/test/test_asyncio/
 * test_base_events.py's getaddrinfo tests.
 *
 * Only names the machine resolves without a network are used: "localhost",
 * a name from /etc/hosts (skipped if there is none), and a name under the
 * reserved .invalid domain that can never resolve.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const asyncio_run_options_t plain_run = {NULL, true};

/*
 * The getaddrinfo(3) the library calls: this definition in the test
 * executable comes first at link time, so it sees every call the worker
 * threads make.  It records the hints it was given and, for the host
 * FAKE_HOST, returns fake_eai with errno fake_errno instead of resolving;
 * everything else goes to the C library's.
 */
#define FAKE_HOST "eai.test"
typedef int (*gai_fn_t)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
static atomic_int fake_eai, fake_errno, saw_hints, saw_flags, saw_family;

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res) {
  atomic_store(&saw_hints, hints != NULL);
  atomic_store(&saw_flags, hints ? hints->ai_flags : -1);
  atomic_store(&saw_family, hints ? hints->ai_family : -1);
  if (node && strcmp(node, FAKE_HOST) == 0) {
    errno = atomic_load(&fake_errno);
    return atomic_load(&fake_eai);
  }
  gai_fn_t real = (gai_fn_t)dlsym(RTLD_NEXT, "getaddrinfo");
  return real(node, service, hints, res);
}

static int is_gai_code(int rc) {
  return rc == ASYNCIO_EGAI || (rc <= ASYNCIO_EGAI_NONAME && rc >= ASYNCIO_EGAI_OVERFLOW);
}

static int resolve_localhost(void *arg) {
  (void)arg;
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  CHECK_RC(asyncio_getaddrinfo("localhost", "80", &hints, &res), 0);
  CHECK(res != NULL);
  int found = 0;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    CHECK(ai->ai_family == AF_INET);
    struct sockaddr_in *sin = (struct sockaddr_in *)ai->ai_addr;
    if (sin->sin_addr.s_addr == htonl(INADDR_LOOPBACK) && ntohs(sin->sin_port) == 80) found = 1;
  }
  CHECK(found);
  asyncio_freeaddrinfo(res);
  /* No hints: any family; a numeric host needs no lookup at all. */
  res = NULL;
  CHECK_RC(asyncio_getaddrinfo("localhost", NULL, NULL, &res), 0);
  CHECK(res != NULL);
  asyncio_freeaddrinfo(res);
  res = NULL;
  hints.ai_flags = AI_NUMERICHOST;
  CHECK_RC(asyncio_getaddrinfo("127.0.0.1", "8080", &hints, &res), 0);
  CHECK(res && ntohs(((struct sockaddr_in *)res->ai_addr)->sin_port) == 8080);
  asyncio_freeaddrinfo(res);
  asyncio_freeaddrinfo(NULL);
  return 0;
}

/* loop.getaddrinfo('localhost', 80, family=AF_INET, type=SOCK_STREAM). */
TEST(getaddrinfo_localhost) {
  assert_ok(asyncio_run(resolve_localhost, NULL, &plain_run));
  ASSERT_SOFT();
}

static char hosts_name[256];
static char hosts_addr[64];

/* The first IPv4 entry of /etc/hosts naming something other than localhost. */
static int pick_hosts_name(void) {
  FILE *fp = fopen("/etc/hosts", "re");
  if (!fp) return 0;
  char line[512];
  int found = 0;
  while (!found && fgets(line, sizeof line, fp)) {
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    char *save = NULL;
    char *addr = strtok_r(line, " \t\r\n", &save);
    struct in_addr a;
    if (!addr || inet_pton(AF_INET, addr, &a) != 1) continue;
    for (char *name = strtok_r(NULL, " \t\r\n", &save); name; name = strtok_r(NULL, " \t\r\n", &save)) {
      if (strcmp(name, "localhost") == 0 || strlen(name) >= sizeof hosts_name) continue;
      snprintf(hosts_name, sizeof hosts_name, "%s", name);
      snprintf(hosts_addr, sizeof hosts_addr, "%s", addr);
      found = 1;
      break;
    }
  }
  fclose(fp);
  return found;
}

static int resolve_hosts_name(void *arg) {
  (void)arg;
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  CHECK_RC(asyncio_getaddrinfo(hosts_name, NULL, &hints, &res), 0);
  int found = 0;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    char buf[64];
    inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, buf, sizeof buf);
    if (strcmp(buf, hosts_addr) == 0) found = 1;
  }
  CHECK(found);
  asyncio_freeaddrinfo(res);
  return 0;
}

/* A name listed in /etc/hosts resolves to its listed address (nsswitch). */
TEST(getaddrinfo_etc_hosts_name) {
  if (!pick_hosts_name()) skip();
  assert_ok(asyncio_run(resolve_hosts_name, NULL, &plain_run));
  ASSERT_SOFT();
}

static int resolve_invalid(void *arg) {
  (void)arg;
  struct addrinfo hints = {0}, *res = (struct addrinfo *)1;
  hints.ai_socktype = SOCK_STREAM;
  int rc = asyncio_getaddrinfo("nonexistent.invalid", "80", &hints, &res);
  CHECK(is_gai_code(rc));
  CHECK(res == NULL);
  CHECK(strcmp(asyncio_pyname(rc), "socket.gaierror") == 0);
  CHECK(strcmp(asyncio_strerror(rc), "unknown error") != 0);
  /* An unknown service name for a known host. */
  rc = asyncio_getaddrinfo("localhost", "no-such-service-xyz", &hints, &res);
  CHECK(rc == ASYNCIO_EGAI_SERVICE || rc == ASYNCIO_EGAI_NONAME);
  /* A bad family is the resolver's error too. */
  hints.ai_family = 12345;
  rc = asyncio_getaddrinfo("localhost", "80", &hints, &res);
  CHECK(rc == ASYNCIO_EGAI_FAMILY);
  return 0;
}

/* socket.gaierror: a name that cannot resolve gives a gai code, never a crash. */
TEST(getaddrinfo_unresolvable_name) {
  assert_ok(asyncio_run(resolve_invalid, NULL, &plain_run));
  ASSERT_SOFT();
}

/* Each EAI_ code has its own message and the Python name socket.gaierror. */
TEST(gai_error_codes_explained) {
  const int codes[] = {ASYNCIO_EGAI,         ASYNCIO_EGAI_NONAME,   ASYNCIO_EGAI_AGAIN,
                       ASYNCIO_EGAI_FAIL,    ASYNCIO_EGAI_SERVICE,  ASYNCIO_EGAI_FAMILY,
                       ASYNCIO_EGAI_SOCKTYPE, ASYNCIO_EGAI_BADFLAGS, ASYNCIO_EGAI_NODATA,
                       ASYNCIO_EGAI_ADDRFAMILY, ASYNCIO_EGAI_OVERFLOW};
  for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
    assert_string_equal(asyncio_pyname(codes[i]), "socket.gaierror");
    assert_true(strncmp(asyncio_errname(codes[i]), "ASYNCIO_EGAI", 12) == 0);
    assert_string_not_equal(asyncio_strerror(codes[i]), "unknown error");
  }
  assert_string_equal(asyncio_errname(ASYNCIO_EGAI_NONAME), "ASYNCIO_EGAI_NONAME");
}

static int nameinfo_main(void *arg) {
  (void)arg;
  struct sockaddr_in sin = {0};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(80);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  char host[NI_MAXHOST], serv[NI_MAXSERV];
  CHECK_RC(asyncio_getnameinfo((struct sockaddr *)&sin, sizeof sin, host, sizeof host, serv,
                               sizeof serv, NI_NUMERICSERV),
           0);
  CHECK(strcmp(host, "localhost") == 0);
  CHECK(strcmp(serv, "80") == 0);
  CHECK_RC(asyncio_getnameinfo((struct sockaddr *)&sin, sizeof sin, host, sizeof host, NULL, 0,
                               NI_NUMERICHOST),
           0);
  CHECK(strcmp(host, "127.0.0.1") == 0);
  /* A buffer too small: EAI_OVERFLOW, and the buffer is left alone. */
  char tiny[4] = "xyz";
  CHECK_RC(asyncio_getnameinfo((struct sockaddr *)&sin, sizeof sin, tiny, sizeof tiny, NULL, 0,
                               NI_NUMERICHOST),
           ASYNCIO_EGAI_OVERFLOW);
  CHECK(strcmp(tiny, "xyz") == 0);
  struct sockaddr_in6 sin6 = {0};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_addr = in6addr_loopback;
  sin6.sin6_port = htons(443);
  CHECK_RC(asyncio_getnameinfo((struct sockaddr *)&sin6, sizeof sin6, host, sizeof host, serv,
                               sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV),
           0);
  CHECK(strcmp(host, "::1") == 0);
  CHECK(strcmp(serv, "443") == 0);
  CHECK_RC(asyncio_getnameinfo(NULL, sizeof sin, host, sizeof host, NULL, 0, 0), -EINVAL);
  CHECK_RC(asyncio_getnameinfo((struct sockaddr *)&sin, sizeof sin, NULL, 0, NULL, 0, 0), -EINVAL);
  return 0;
}

/* loop.getnameinfo(('127.0.0.1', 80)). */
TEST(getnameinfo_loopback) {
  assert_ok(asyncio_run(nameinfo_main, NULL, &plain_run));
  ASSERT_SOFT();
}

static int bad_args_main(void *arg) {
  (void)arg;
  struct addrinfo *res;
  CHECK_RC(asyncio_getaddrinfo("localhost", "80", NULL, NULL), -EINVAL);
  CHECK_RC(asyncio_getaddrinfo(NULL, NULL, NULL, &res), -EINVAL);
  return 0;
}

/* Argument checks, and "not from a task". */
TEST(dns_bad_arguments) {
  struct addrinfo *res;
  char host[64];
  struct sockaddr_in sin = {0};
  sin.sin_family = AF_INET;
  assert_rc(asyncio_getaddrinfo("localhost", NULL, NULL, &res), ASYNCIO_ENOTASK);
  assert_rc(asyncio_getnameinfo((struct sockaddr *)&sin, sizeof sin, host, sizeof host, NULL, 0,
                                0),
            ASYNCIO_ENOTASK);
  assert_ok(asyncio_run(bad_args_main, NULL, &plain_run));
  ASSERT_SOFT();
}

/* ---- cancellation ---------------------------------------------------------------- */

static sem_t release_sem;
static atomic_int blocker_started;

static int blocker(void *arg, void **value) {
  (void)arg;
  (void)value;
  atomic_store(&blocker_started, 1);
  while (sem_wait(&release_sem) != 0) {
  }
  return 0;
}

static int lookup_task(void *arg) {
  (void)arg;
  struct addrinfo *res = NULL;
  int rc = asyncio_getaddrinfo("localhost", "80", NULL, &res);
  asyncio_freeaddrinfo(res);
  return rc;
}

static int cancel_queued_main(void *arg) {
  asyncio_executor_t *ex = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  CHECK_RC(asyncio_loop_set_default_executor(loop, ex), 0);
  asyncio_future_t *block;
  CHECK_RC(asyncio_loop_run_in_executor(loop, NULL, blocker, NULL, &block), 0);
  while (!atomic_load(&blocker_started)) asyncio_sleep(0);
  /* The only worker is busy: the lookup waits in the queue. */
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, lookup_task, NULL, NULL), 0);
  asyncio_sleep(0);
  asyncio_sleep(0);
  CHECK(!asyncio_future_done(t));
  CHECK_RC(asyncio_task_cancel(t, NULL), 1);
  CHECK_RC(asyncio_await(t, NULL), -ECANCELED);
  asyncio_task_free(t);
  /* The ambient timeout scope bounds a lookup as well (asyncio.timeout). */
  asyncio_timeout_t *tm = NULL;
  struct addrinfo *res = NULL;
  CHECK_RC(asyncio_timeout_enter(&tm, 0.02), 0);
  int rc = asyncio_getaddrinfo("localhost", "80", NULL, &res);
  CHECK_RC(rc, -ECANCELED);
  CHECK_RC(asyncio_timeout_exit(tm, rc), -ETIMEDOUT);
  asyncio_timeout_free(tm);
  CHECK(res == NULL);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  char host[NI_MAXHOST];
  CHECK_RC(asyncio_timeout_enter(&tm, 0.02), 0);
  rc = asyncio_getnameinfo((struct sockaddr *)&sin, sizeof sin, host, sizeof host, NULL, 0, 0);
  CHECK_RC(rc, -ECANCELED);
  CHECK_RC(asyncio_timeout_exit(tm, rc), -ETIMEDOUT);
  asyncio_timeout_free(tm);
  sem_post(&release_sem);
  CHECK_RC(asyncio_await(block, NULL), 0);
  asyncio_future_free(block);
  /* The pool works on. */
  CHECK_RC(lookup_task(NULL), 0);
  CHECK_RC(asyncio_loop_shutdown_default_executor(loop, -1), 0);
  return 0;
}

/* Cancelled, or timed out by a scope, while queued behind other work: returns
 * at once, never resolves. */
TEST(getaddrinfo_cancel_while_queued) {
  asyncio_executor_t *ex;
  sem_init(&release_sem, 0, 0);
  atomic_store(&blocker_started, 0);
  assert_ok(asyncio_executor_new(&ex, 1));
  assert_ok(asyncio_run(cancel_queued_main, ex, &plain_run));
  ASSERT_SOFT();
  assert_ok(asyncio_executor_free(ex));
  sem_destroy(&release_sem);
}

#define NLOOKUPS 32

static int cancel_many_main(void *arg) {
  (void)arg;
  asyncio_task_t *ts[NLOOKUPS];
  for (int i = 0; i < NLOOKUPS; i++) CHECK_RC(asyncio_create_task(&ts[i], lookup_task, NULL, NULL), 0);
  /* Let each lookup reach a worker (or not): either way the caller returns
   * -ECANCELED at once and the answer is freed when it arrives. */
  asyncio_sleep(0);
  asyncio_sleep(0);
  for (int i = 0; i < NLOOKUPS; i++) {
    if (!asyncio_future_done(ts[i])) {
      CHECK_RC(asyncio_task_cancel(ts[i], NULL), 1);
      CHECK_RC(asyncio_await(ts[i], NULL), -ECANCELED);
    }
    asyncio_task_free(ts[i]);
  }
  return 0;
}

/* Cancelled during resolution: no leak whichever side finishes first. */
TEST(getaddrinfo_cancel_during_resolution) {
  assert_ok(asyncio_run(cancel_many_main, NULL, &plain_run));
  ASSERT_SOFT();
}

static int one_nameinfo(void *arg) {
  (void)arg;
  struct sockaddr_in sin = {0};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  char host[NI_MAXHOST];
  return asyncio_getnameinfo((struct sockaddr *)&sin, sizeof sin, host, sizeof host, NULL, 0, 0);
}

static int nameinfo_cancel_main(void *arg) {
  (void)arg;
  asyncio_task_t *t;
  CHECK_RC(asyncio_create_task(&t, one_nameinfo, NULL, NULL), 0);
  asyncio_sleep(0);
  asyncio_sleep(0);
  CHECK_RC(asyncio_task_cancel(t, NULL), 1);
  CHECK_RC(asyncio_await(t, NULL), -ECANCELED);
  asyncio_task_free(t);
  return 0;
}

/* getnameinfo is cancellable the same way. */
TEST(getnameinfo_cancel) {
  assert_ok(asyncio_run(nameinfo_cancel_main, NULL, &plain_run));
  ASSERT_SOFT();
}

/* ---- loop closed while lookups wait ------------------------------------------------ */

static int blocker_task(void *arg) {
  (void)arg;
  return asyncio_to_thread(blocker, NULL, NULL);
}

typedef struct closing {
  asyncio_task_t *ts[3];
} closing_t;

static int close_pending_main(void *arg) {
  closing_t *c = arg;
  /* The one worker runs the blocker (inside to_thread); the lookups queue behind it. */
  CHECK_RC(asyncio_create_task(&c->ts[0], blocker_task, NULL, NULL), 0);
  while (!atomic_load(&blocker_started)) asyncio_sleep(0);
  CHECK_RC(asyncio_create_task(&c->ts[1], lookup_task, NULL, NULL), 0);
  CHECK_RC(asyncio_create_task(&c->ts[2], one_nameinfo, NULL, NULL), 0);
  asyncio_sleep(0);
  asyncio_sleep(0);
  for (int i = 0; i < 3; i++) CHECK(!asyncio_future_done(c->ts[i]));
  return 0;
}

static void count_destroyed(asyncio_loop_t *loop, const asyncio_error_context_t *ctx, void *ud) {
  (*(int *)ud)++;
}

/*
 * Closing the loop while tasks wait in getaddrinfo / getnameinfo (queued)
 * and to_thread (running): the tasks die pending, and neither the requests
 * nor the futures they awaited may leak (the harness checks).
 */
TEST(lookups_pending_at_loop_close) {
  static closing_t c;
  memset(&c, 0, sizeof c);
  asyncio_executor_t *ex;
  sem_init(&release_sem, 0, 0);
  atomic_store(&blocker_started, 0);
  assert_ok(asyncio_executor_new(&ex, 1));
  asyncio_loop_t *loop = NULL;
  assert_ok(asyncio_loop_new(&loop, NULL));
  int reports = 0;
  assert_ok(asyncio_loop_set_exception_handler(loop, count_destroyed, &reports));
  assert_ok(asyncio_loop_set_default_executor(loop, ex));
  asyncio_task_t *main_task = NULL;
  assert_ok(asyncio_loop_create_task(loop, &main_task, close_pending_main, &c, NULL));
  assert_ok(asyncio_loop_run_until_complete(loop, main_task, NULL));
  ASSERT_SOFT();
  sem_post(&release_sem); /* close waits for the running blocker */
  assert_ok(asyncio_loop_close(loop));
  assert_int_equal(reports, 3); /* "Task was destroyed but it is pending!" */
  for (int i = 0; i < 3; i++) asyncio_task_free(c.ts[i]);
  asyncio_task_free(main_task);
  assert_ok(asyncio_executor_free(ex));
  sem_destroy(&release_sem);
}

/* ---- what reaches getaddrinfo(3), and what comes back ---------------------------------- */

static int null_hints_main(void *arg) {
  (void)arg;
  struct addrinfo *res = NULL;
  atomic_store(&saw_hints, 0);
  atomic_store(&saw_flags, -1);
  CHECK_RC(asyncio_getaddrinfo("127.0.0.1", "80", NULL, &res), 0);
  CHECK(res != NULL);
  asyncio_freeaddrinfo(res);
  /* Python's defaults reach the resolver: a zeroed hints struct, not NULL
   * (which getaddrinfo(3) reads as AI_V4MAPPED | AI_ADDRCONFIG). */
  CHECK(atomic_load(&saw_hints) == 1);
  CHECK(atomic_load(&saw_flags) == 0 && atomic_load(&saw_family) == AF_UNSPEC);
  /* Given hints are passed on. */
  struct addrinfo hints = {0};
  hints.ai_family = AF_INET;
  hints.ai_flags = AI_NUMERICHOST | AI_CANONNAME;
  res = NULL;
  CHECK_RC(asyncio_getaddrinfo("127.0.0.1", NULL, &hints, &res), 0);
  asyncio_freeaddrinfo(res);
  CHECK(atomic_load(&saw_flags) == (AI_NUMERICHOST | AI_CANONNAME));
  CHECK(atomic_load(&saw_family) == AF_INET);
  return 0;
}

/* loop.getaddrinfo(host, port) passes family=type=proto=flags=0. */
TEST(getaddrinfo_null_hints_are_pythons_defaults) {
  assert_ok(asyncio_run(null_hints_main, NULL, &plain_run));
  ASSERT_SOFT();
}

static int eai_codes_main(void *arg) {
  (void)arg;
  static const struct {
    int eai, err, want;
  } cases[] = {
      {EAI_NONAME, 0, ASYNCIO_EGAI_NONAME},
      {EAI_AGAIN, 0, ASYNCIO_EGAI_AGAIN},
      {EAI_FAIL, 0, ASYNCIO_EGAI_FAIL},
      {EAI_SERVICE, 0, ASYNCIO_EGAI_SERVICE},
      {EAI_FAMILY, 0, ASYNCIO_EGAI_FAMILY},
      {EAI_SOCKTYPE, 0, ASYNCIO_EGAI_SOCKTYPE},
      {EAI_BADFLAGS, 0, ASYNCIO_EGAI_BADFLAGS},
      {EAI_OVERFLOW, 0, ASYNCIO_EGAI_OVERFLOW},
      {EAI_NODATA, 0, ASYNCIO_EGAI_NODATA},
      {EAI_ADDRFAMILY, 0, ASYNCIO_EGAI_ADDRFAMILY},
      /* Python: gaierror(EAI_MEMORY); here the errno every allocation failure has. */
      {EAI_MEMORY, 0, -ENOMEM},
      /* Python: OSError(errno), not gaierror. */
      {EAI_SYSTEM, EMFILE, -EMFILE},
      {EAI_SYSTEM, ENOENT, -ENOENT},
      {EAI_SYSTEM, 0, ASYNCIO_EGAI},
      /* glibc's other codes have no code of their own. */
      {EAI_IDN_ENCODE, 0, ASYNCIO_EGAI},
      {EAI_INTR, 0, ASYNCIO_EGAI},
      {-12345, 0, ASYNCIO_EGAI},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    atomic_store(&fake_eai, cases[i].eai);
    atomic_store(&fake_errno, cases[i].err);
    struct addrinfo *res = (struct addrinfo *)1;
    CHECK_RC(asyncio_getaddrinfo(FAKE_HOST, "80", NULL, &res), cases[i].want);
    CHECK(res == NULL);
  }
  return 0;
}

/* Every EAI_* code getaddrinfo(3) can return maps as dns.h says (socket.gaierror). */
TEST(getaddrinfo_every_eai_code) {
  assert_ok(asyncio_run(eai_codes_main, NULL, &plain_run));
  ASSERT_SOFT();
}
