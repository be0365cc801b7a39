/*
 * echo_streams - an echo server and its client, both written with streams
 * (a reader and a writer per connection, used from tasks).
 *
 * Python origin: asyncio_echo_server_coroutine.py and
 * asyncio_echo_client_coroutine.py from PyMOTW-3's asyncio chapter
 * ("Asynchronous I/O Using Coroutines and Streams").  The originals are two
 * programs talking over ('localhost', 10000) and logging to stderr; here
 * one program starts the server in-process on 127.0.0.1 with a port the
 * system picks (so parallel runs never collide), runs the client against
 * it, and prints both logs to stdout in the order they happen.  Port
 * numbers are printed as <port> so the transcript is stable.
 *
 * The server's handler reads up to 128 bytes at a time and echoes them
 * until EOF.  The client sends its message in three writes, then EOF, and
 * reads the echo until the server closes the connection.
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

/* ---- the server (async def echo(reader, writer)) -------------------------------- */

static int handlers_done;

static int echo(asyncio_stream_reader_t *reader, asyncio_stream_writer_t *writer, void *arg) {
  (void)arg;
  /* writer.get_extra_info('peername'): the logger is echo_<host>_<port>. */
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char host[64] = "?", log[96];
  if (asyncio_stream_get_peername(writer, (struct sockaddr *)&ss, &sl) == 0) {
    const void *a = ss.ss_family == AF_INET
                        ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
                        : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
    inet_ntop(ss.ss_family, a, host, sizeof host);
  }
  snprintf(log, sizeof log, "echo_%s_<port>", host);
  printf("%s: connection accepted\n", log);
  int rc = 0;
  for (;;) {
    char data[128];
    ssize_t n = asyncio_stream_read(reader, data, sizeof data);
    if (n > 0) {
      char prefix[128];
      snprintf(prefix, sizeof prefix, "%s: received ", log);
      print_bytes(prefix, data, (size_t)n);
      rc = asyncio_stream_write(writer, data, (size_t)n);
      if (rc == 0) rc = asyncio_stream_drain(writer);
      if (rc < 0) break;
      snprintf(prefix, sizeof prefix, "%s: sent ", log);
      print_bytes(prefix, data, (size_t)n);
    } else {
      rc = (int)n;
      printf("%s: closing\n", log);
      asyncio_stream_close(writer);
      break;
    }
  }
  handlers_done++;
  return rc; /* the library frees reader and writer now */
}

/* ---- the client (async def echo_client(address, messages)) ----------------------- */

static const char *const MESSAGES[] = {"This is the message. ", "It will be sent ", "in parts."};

static int echo_client(int port) {
  printf("echo_client: connecting to 127.0.0.1 port <port>\n");
  asyncio_stream_reader_t *reader;
  asyncio_stream_writer_t *writer;
  int rc = asyncio_open_connection("127.0.0.1", port, NULL, &reader, &writer);
  if (rc < 0) return rc;
  /* This could be writelines(), except that would hide each part being sent. */
  for (size_t i = 0; i < sizeof MESSAGES / sizeof *MESSAGES && rc == 0; i++) {
    rc = asyncio_stream_write(writer, MESSAGES[i], strlen(MESSAGES[i]));
    print_bytes("echo_client: sending ", MESSAGES[i], strlen(MESSAGES[i]));
  }
  if (rc == 0 && asyncio_stream_can_write_eof(writer)) rc = asyncio_stream_write_eof(writer);
  if (rc == 0) rc = asyncio_stream_drain(writer);
  if (rc == 0) printf("echo_client: waiting for response\n");
  while (rc == 0) {
    char data[128];
    ssize_t n = asyncio_stream_read(reader, data, sizeof data);
    if (n > 0) {
      print_bytes("echo_client: received ", data, (size_t)n);
    } else {
      if (n == 0) printf("echo_client: closing\n");
      rc = (int)n;
      asyncio_stream_close(writer);
      break;
    }
  }
  if (rc == 0) rc = asyncio_stream_wait_closed(writer);
  asyncio_stream_reader_free(reader);
  asyncio_stream_writer_free(writer);
  return rc;
}

/* ---- main ------------------------------------------------------------------------ */

static int main_coro(void *arg) {
  (void)arg;
  asyncio_server_t *server;
  int rc = asyncio_start_server(echo, NULL, "127.0.0.1", 0, NULL, &server);
  if (rc < 0) return rc;
  int fd;
  asyncio_server_sockets(server, &fd, 1);
  struct sockaddr_in sin;
  socklen_t sl = sizeof sin;
  getsockname(fd, (struct sockaddr *)&sin, &sl);
  printf("main: starting up on 127.0.0.1 port <port>\n");

  rc = echo_client(ntohs(sin.sin_port));
  /* The handler logs "closing" before its connection ends; let it finish. */
  while (rc == 0 && handlers_done == 0) rc = asyncio_sleep(0);

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
    fprintf(stderr, "echo_streams: %s\n", asyncio_strerror(rc));
    return 1;
  }
  return 0;
}
