/*
 * echo_protocol - an echo server and its client, both written as protocols
 * (callback tables) on top of transports.
 *
 * Python origin: asyncio_echo_server_protocol.py and
 * asyncio_echo_client_protocol.py from PyMOTW-3's asyncio chapter
 * ("Asynchronous I/O with Protocol Class Abstractions").  The originals are
 * two programs talking over ('localhost', 10000) and logging to stderr;
 * here one program starts the server in-process on 127.0.0.1 with a port
 * the system picks (so parallel runs never collide), runs the client
 * against it, and prints both logs to stdout in the order they happen.
 * Ports are left out of the log lines so the transcript is stable.
 *
 * The server protocol echoes what it receives and answers EOF with EOF.
 * The client sends its message in three writes, then EOF, and finishes when
 * the server closes the connection.
 */
#include <arpa/inet.h>
#include <asyncio.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* Python's repr() of a bytes object, for the log lines: b'...'. */
static void print_bytes(const char *prefix, const void *data, size_t n) {
  const unsigned char *p = data;
  printf("%sb'", prefix);
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '\'' || p[i] == '\\')
      printf("\\%c", p[i]);
    else if (p[i] >= 32 && p[i] < 127)
      putchar(p[i]);
    else
      printf("\\x%02x", p[i]);
  }
  printf("'\n");
}

static const char *peer_host(asyncio_transport_t *t, char *buf, size_t n) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (asyncio_transport_get_peername(t, (struct sockaddr *)&ss, &sl) < 0) return "?";
  const void *a = ss.ss_family == AF_INET ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
                                          : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
  return inet_ntop(ss.ss_family, a, buf, (socklen_t)n) ? buf : "?";
}

/* ---- the server's protocol (class EchoServer(asyncio.Protocol)) -------------- */

typedef struct echo_server {
  asyncio_transport_t *transport;
  char log[96]; /* the logger's name: EchoServer_<address> */
} echo_server_t;

static echo_server_t server_instance; /* one client in this demo */

static void server_connection_made(asyncio_transport_t *t, void *p) {
  echo_server_t *self = p;
  char host[64];
  self->transport = t;
  snprintf(self->log, sizeof self->log, "EchoServer_%s", peer_host(t, host, sizeof host));
  printf("%s: connection accepted\n", self->log);
}

static void server_data_received(asyncio_transport_t *t, const void *data, size_t n, void *p) {
  echo_server_t *self = p;
  char prefix[128];
  snprintf(prefix, sizeof prefix, "%s: received ", self->log);
  print_bytes(prefix, data, n);
  asyncio_transport_write(t, data, n);
  snprintf(prefix, sizeof prefix, "%s: sent ", self->log);
  print_bytes(prefix, data, n);
}

static bool server_eof_received(asyncio_transport_t *t, void *p) {
  echo_server_t *self = p;
  printf("%s: received EOF\n", self->log);
  if (asyncio_transport_can_write_eof(t)) asyncio_transport_write_eof(t);
  return false; /* the transport closes itself, as when Python's method returns None */
}

static void server_connection_lost(asyncio_transport_t *t, int error, void *p) {
  echo_server_t *self = p;
  if (error)
    printf("%s: ERROR: %s\n", self->log, asyncio_strerror(error));
  else
    printf("%s: closing\n", self->log);
  self->transport = NULL;
}

static const asyncio_protocol_t echo_server_protocol = {
    .connection_made = server_connection_made,
    .data_received = server_data_received,
    .eof_received = server_eof_received,
    .connection_lost = server_connection_lost,
};

static int echo_server_factory(void *arg, const asyncio_protocol_t **protocol, void **instance) {
  (void)arg;
  memset(&server_instance, 0, sizeof server_instance);
  *protocol = &echo_server_protocol;
  *instance = &server_instance;
  return 0;
}

/* ---- the client's protocol (class EchoClient(asyncio.Protocol)) -------------- */

static const char *const MESSAGES[] = {"This is the message. ", "It will be sent ", "in parts."};

typedef struct echo_client {
  asyncio_transport_t *transport;
  asyncio_future_t *f; /* done when the server closed the connection */
} echo_client_t;

static void client_connection_made(asyncio_transport_t *t, void *p) {
  echo_client_t *self = p;
  char host[64];
  self->transport = t;
  printf("EchoClient: connecting to %s\n", peer_host(t, host, sizeof host));
  /* This could be writelines(), except that would hide each part being sent. */
  for (size_t i = 0; i < sizeof MESSAGES / sizeof *MESSAGES; i++) {
    asyncio_transport_write(t, MESSAGES[i], strlen(MESSAGES[i]));
    print_bytes("EchoClient: sending ", MESSAGES[i], strlen(MESSAGES[i]));
  }
  if (asyncio_transport_can_write_eof(t)) asyncio_transport_write_eof(t);
  printf("EchoClient: sending EOF\n");
}

static void client_data_received(asyncio_transport_t *t, const void *data, size_t n, void *p) {
  (void)t, (void)p;
  print_bytes("EchoClient: received ", data, n);
}

static bool client_eof_received(asyncio_transport_t *t, void *p) {
  echo_client_t *self = p;
  printf("EchoClient: received EOF\n");
  asyncio_transport_close(t);
  if (!asyncio_future_done(self->f)) asyncio_future_set_result(self->f, 1, NULL);
  return false;
}

static void client_connection_lost(asyncio_transport_t *t, int error, void *p) {
  echo_client_t *self = p;
  (void)t, (void)error;
  printf("EchoClient: server closed connection\n");
  self->transport = NULL;
  if (!asyncio_future_done(self->f)) asyncio_future_set_result(self->f, 1, NULL);
}

static const asyncio_protocol_t echo_client_protocol = {
    .connection_made = client_connection_made,
    .data_received = client_data_received,
    .eof_received = client_eof_received,
    .connection_lost = client_connection_lost,
};

static int echo_client_factory(void *arg, const asyncio_protocol_t **protocol, void **instance) {
  *protocol = &echo_client_protocol;
  *instance = arg;
  return 0;
}

/* ---- main ------------------------------------------------------------------------ */

static int main_coro(void *arg) {
  (void)arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  asyncio_server_t *server;
  int rc = asyncio_loop_create_server(loop, echo_server_factory, NULL, "127.0.0.1", 0, NULL,
                                      &server);
  if (rc < 0) return rc;
  int fd;
  asyncio_server_sockets(server, &fd, 1);
  struct sockaddr_in sin;
  socklen_t sl = sizeof sin;
  getsockname(fd, (struct sockaddr *)&sin, &sl);
  printf("main: starting up on 127.0.0.1\n");

  echo_client_t client = {0};
  rc = asyncio_future_new(&client.f, loop);
  if (rc == 0) {
    printf("main: connecting to 127.0.0.1\n");
    asyncio_transport_t *transport;
    rc = asyncio_loop_create_connection(loop, echo_client_factory, &client, "127.0.0.1",
                                        ntohs(sin.sin_port), NULL, &transport, NULL);
    if (rc == 0) {
      printf("main: waiting for client to complete\n");
      rc = asyncio_await(client.f, NULL);
      if (rc > 0) rc = 0;
    }
    /* Let both connection_lost callbacks run before the server goes. */
    while (rc == 0 && (client.transport || server_instance.transport)) rc = asyncio_sleep(0);
    asyncio_future_free(client.f);
  }
  printf("main: closing server\n");
  asyncio_server_close(server);
  int wrc = asyncio_server_wait_closed(server);
  asyncio_server_free(server);
  printf("main: closing event loop\n");
  return rc < 0 ? rc : wrc;
}

int main(void) {
  int rc = asyncio_run(main_coro, NULL, NULL);
  if (rc < 0) {
    fprintf(stderr, "echo_protocol: %s\n", asyncio_strerror(rc));
    return 1;
  }
  return 0;
}
