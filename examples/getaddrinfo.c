/*
 * getaddrinfo - look up the addresses of host names without blocking the
 * event loop: each lookup runs getaddrinfo(3) on the loop's default
 * executor while the calling task waits.
 *
 * Python origin: asyncio_getaddrinfo.py from PyMOTW-3's asyncio chapter
 * ("Working with DNS": loop.getaddrinfo(*target, proto=IPPROTO_TCP), one
 * "name: address" line per answer).  Like the original it drives an
 * explicit loop: run_until_complete(main), then close.
 *
 * How it differs from the original: that one queries pymotw.com,
 * doughellmann.com and python.org with the service name 'https', so its
 * answers depend on the network and change over time.  This one must print
 * the same thing on any machine, offline too, so it asks only for names
 * that resolve without a network: "localhost" (from /etc/hosts, limited to
 * IPv4 because whether localhost also maps to ::1 differs between systems)
 * and two numeric addresses, which getaddrinfo(3) parses without a lookup.
 * The port is given as "443" rather than "https" because minimal systems
 * have no /etc/services to translate the name.
 */
#include <arpa/inet.h>
#include <asyncio.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>

typedef struct target {
  const char *host;
  const char *port;
  int family;
} target_t;

static const target_t targets[] = {
    {"localhost", "443", AF_INET},
    {"127.0.0.1", "443", AF_UNSPEC},
    {"::1", "443", AF_UNSPEC},
};

static int main_coro(void *arg) {
  (void)arg;
  for (size_t i = 0; i < sizeof targets / sizeof *targets; i++) {
    struct addrinfo hints = {0}, *info = NULL;
    hints.ai_family = targets[i].family;
    hints.ai_protocol = IPPROTO_TCP; /* proto=socket.IPPROTO_TCP */
    int rc = asyncio_getaddrinfo(targets[i].host, targets[i].port, &hints, &info);
    if (rc < 0) {
      fprintf(stderr, "getaddrinfo %s: %s\n", targets[i].host, asyncio_strerror(rc));
      return rc;
    }
    for (struct addrinfo *host = info; host; host = host->ai_next) {
      char addr[INET6_ADDRSTRLEN] = "?";
      const void *raw = host->ai_family == AF_INET
                            ? (const void *)&((struct sockaddr_in *)host->ai_addr)->sin_addr
                            : (const void *)&((struct sockaddr_in6 *)host->ai_addr)->sin6_addr;
      inet_ntop(host->ai_family, raw, addr, sizeof addr);
      printf("%-20s: %s\n", targets[i].host, addr); /* '{:20}: {}'.format(...) */
    }
    asyncio_freeaddrinfo(info);
  }
  return 0;
}

int main(void) {
  asyncio_loop_t *loop;
  int rc = asyncio_loop_new(&loop, NULL);
  if (rc < 0) {
    fprintf(stderr, "getaddrinfo: cannot create the loop: %s\n", asyncio_strerror(rc));
    return 1;
  }
  asyncio_task_t *task;
  rc = asyncio_loop_create_task(loop, &task, main_coro, NULL, NULL);
  if (rc >= 0) {
    rc = asyncio_loop_run_until_complete(loop, task, NULL);
    asyncio_task_free(task);
  }
  int crc = asyncio_loop_close(loop);
  if (rc < 0 || crc < 0) {
    fprintf(stderr, "getaddrinfo: %s\n", asyncio_strerror(rc < 0 ? rc : crc));
    return 1;
  }
  return 0;
}
