/*
 * getnameinfo - turn socket addresses back into host and service names
 * without blocking the event loop: each lookup runs getnameinfo(3) on the
 * loop's default executor while the calling task waits.
 *
 * Python origin: asyncio_getnameinfo.py from PyMOTW-3's asyncio chapter
 * ("Working with DNS": loop.getnameinfo((address, port)) for each target,
 * printed as "address: host service").  Like the original it drives an
 * explicit loop: run_until_complete(main), then close.
 *
 * How it differs from the original: that one looks up two public addresses
 * (the pymotw.com server and a python.org one) with reverse DNS, so its
 * answers depend on the network.  This one must print the same thing on any
 * machine, offline too, so it asks about the loopback address, whose name
 * ("localhost") comes from /etc/hosts without a DNS query, for two ports.
 * It passes NI_NUMERICSERV, so the service is printed as its number
 * ("443", not "https"): minimal systems have no /etc/services to name it.
 */
#include <arpa/inet.h>
#include <asyncio.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>

typedef struct target {
  const char *address;
  int port;
} target_t;

static const target_t targets[] = {
    {"127.0.0.1", 443},
    {"127.0.0.1", 80},
};

static int main_coro(void *arg) {
  (void)arg;
  for (size_t i = 0; i < sizeof targets / sizeof *targets; i++) {
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)targets[i].port);
    inet_pton(AF_INET, targets[i].address, &sin.sin_addr);
    char host[NI_MAXHOST], service[NI_MAXSERV];
    int rc = asyncio_getnameinfo((struct sockaddr *)&sin, sizeof sin, host, sizeof host, service,
                                 sizeof service, NI_NUMERICSERV);
    if (rc < 0) {
      fprintf(stderr, "getnameinfo %s: %s\n", targets[i].address, asyncio_strerror(rc));
      return rc;
    }
    printf("%-15s: %s %s\n", targets[i].address, host, service); /* '{:15}: {} {}' */
  }
  return 0;
}

int main(void) {
  asyncio_loop_t *loop;
  int rc = asyncio_loop_new(&loop, NULL);
  if (rc < 0) {
    fprintf(stderr, "getnameinfo: cannot create the loop: %s\n", asyncio_strerror(rc));
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
    fprintf(stderr, "getnameinfo: %s\n", asyncio_strerror(rc < 0 ? rc : crc));
    return 1;
  }
  return 0;
}
