/*
 * chat_server - a chat room over TCP: many clients, one room, nick names,
 * join and leave notices, a few commands.  Streams, queues and task groups
 * working together.
 *
 * Python origin: none single; it is the "group chatroom" that Real
 * Python's walkthrough names as a place where async IO shines, written the
 * way asyncio programs are: asyncio.start_server() runs one handler task
 * per connection; after the client has picked a nick, the handler opens an
 * `async with asyncio.TaskGroup()` with two tasks for the connection:
 *   - the reader task reads lines (StreamReader.readline) and acts on them:
 *     a message is broadcast, a command is answered;
 *   - the writer task takes messages from the client's own outgoing
 *     asyncio.Queue and writes them (StreamWriter.write + drain).
 * Broadcasting only puts a message on each client's queue (put_nowait: it
 * never waits), so one slow reader cannot hold the room up.  The queue is
 * bounded (64 messages, --queue-size): a client whose queue is full has
 * stopped reading long enough for the kernel's socket buffers and the
 * transport's 64 KiB high-water mark to fill up too, so it is
 * disconnected ("too slow") rather than given a partial view of the room:
 * its queue is shut down at once and its task group cancelled
 * (TaskGroup.cancel(), Python 3.15).  A message is shared by all the queues
 * it is on (reference counted), not copied per client.
 *
 * Protocol, one line each way: the server asks for a nick; then every line
 * is a message to the others, or a command: /who, /me ACTION, /ping TOKEN
 * (answered with PONG TOKEN), /help, /quit.
 *
 *   chat_server [-b HOST] [-p PORT] [--queue-size N]    serve until Ctrl-C
 *   chat_server --demo [N]                              a scripted demo
 *
 * The demo starts the server on 127.0.0.1 with a port the kernel picks and
 * connects N scripted clients (3 by default, at most 8) in the same
 * program, over real sockets: they join (one picks a nick that is taken),
 * say hello, ask /who, act with /me, and leave (one just hangs up).  After
 * each step the script sends /ping to every client and reads what each
 * received up to its PONG: a client's lines arrive in order, so the
 * transcript is the same on every run.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <asyncio.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NICK_MAX 16
#define LINE_MAX_LEN 1024 /* longer lines are refused */
#define DEFAULT_QUEUE 64  /* messages waiting for one client */
#define NICK_TIMEOUT 60.0 /* seconds to choose a nick */

/* ---- messages: shared by every queue they are on ------------------------------ */

typedef struct message {
  int refs;
  size_t len;
  char text[];
} message_t;

static message_t *message_new(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return NULL;
  message_t *m = malloc(sizeof *m + (size_t)n + 1);
  if (!m) return NULL;
  va_start(ap, fmt);
  vsnprintf(m->text, (size_t)n + 1, fmt, ap);
  va_end(ap);
  m->refs = 1;
  m->len = (size_t)n;
  return m;
}

static void message_unref(message_t *m) {
  if (m && --m->refs == 0) free(m);
}

/* The queue's drop function: items discarded by shutdown(immediate) or free. */
static void drop_message(void *item, void *arg) {
  (void)arg;
  message_unref(item);
}

/* ---- the room ------------------------------------------------------------------ */

typedef struct room room_t;

typedef struct client {
  struct client *prev, *next; /* in the room, once joined */
  room_t *room;
  char nick[NICK_MAX + 1];
  char peer[64];
  asyncio_stream_reader_t *reader;
  asyncio_stream_writer_t *writer;
  asyncio_queue_t *outbox; /* message_t *, for the writer task */
  asyncio_taskgroup_t *tg; /* the reader and writer tasks */
  const char *leave_reason;
} client_t;

struct room {
  client_t *head;
  size_t count;
  size_t queue_size;
  bool log; /* server events on stdout (not in the demo) */
  /*
   * Connection handlers still running, and an event set when there are
   * none: handlers outlive the server's wait_closed() (a writer may still
   * be in drain() when its connection is gone), and they use the room.
   */
  int handlers;
  asyncio_event_t *idle;
};

static void server_log(const room_t *room, const char *fmt, ...) {
  if (!room->log) return;
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
}

static client_t *find_nick(const room_t *room, const char *nick) {
  for (client_t *c = room->head; c; c = c->next)
    if (strcmp(c->nick, nick) == 0) return c;
  return NULL;
}

/* Disconnects a client from outside its own tasks: the policy for a full queue. */
static void kick(client_t *c, const char *reason) {
  if (c->leave_reason) return;
  c->leave_reason = reason;
  asyncio_queue_shutdown(c->outbox, true); /* the queued messages are dropped */
  asyncio_taskgroup_cancel(c->tg);         /* both tasks stop; the handler cleans up */
}

/* Queues m for c (a reference of its own), never waiting. */
static void send_to(client_t *c, message_t *m) {
  if (!m) return;
  m->refs++;
  int rc = asyncio_queue_put_nowait(c->outbox, m);
  if (rc == 0) return;
  message_unref(m);
  if (rc == ASYNCIO_EQUEUEFULL) {
    server_log(c->room, "%s is too slow: disconnected", c->nick);
    kick(c, "too slow");
  }
  /* ASYNCIO_EQUEUESHUTDOWN: c is leaving and gets nothing more */
}

/* Sends m to everyone in the room but `except` (NULL: everyone), then drops the caller's reference.
 */
static void broadcast(room_t *room, const client_t *except, message_t *m) {
  for (client_t *c = room->head; c; c = c->next)
    if (c != except) send_to(c, m);
  message_unref(m);
}

static void reply(client_t *c, message_t *m) {
  send_to(c, m);
  message_unref(m);
}

/* "alice, bob, carol" */
static message_t *who_message(const room_t *room, const char *prefix) {
  size_t cap = strlen(prefix) + 64 + room->count * (NICK_MAX + 2);
  char *list = malloc(cap);
  if (!list) return NULL;
  size_t n = (size_t)snprintf(list, cap, "%s%zu user%s online:", prefix, room->count,
                              room->count == 1 ? "" : "s");
  for (const client_t *c = room->head; c; c = c->next)
    n += (size_t)snprintf(list + n, cap - n, " %s%s", c->nick, c->next ? "," : "");
  message_t *m = message_new("%s\n", list);
  free(list);
  return m;
}

static void room_add(room_t *room, client_t *c) {
  /* appended, so /who lists the users in the order they joined */
  client_t **p = &room->head;
  client_t *prev = NULL;
  while (*p) {
    prev = *p;
    p = &(*p)->next;
  }
  c->prev = prev;
  c->next = NULL;
  *p = c;
  room->count++;
}

static void room_remove(room_t *room, client_t *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    room->head = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
  room->count--;
}

/* ---- a client's two tasks ------------------------------------------------------ */

/* Strips the line end; false for a line that is not text (control characters). */
static bool clean_line(const char *line, ssize_t n, char *out) {
  while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
  for (ssize_t i = 0; i < n; i++)
    if ((unsigned char)line[i] < 32 && line[i] != '\t') return false;
  memcpy(out, line, (size_t)n);
  out[n] = '\0';
  return true;
}

/* Acts on one line from the client.  Returns 1 for /quit. */
static int handle_line(client_t *c, const char *text) {
  room_t *room = c->room;
  if (text[0] != '/') {
    if (text[0]) broadcast(room, c, message_new("<%s> %s\n", c->nick, text));
    return 0;
  }
  const char *arg = strchr(text, ' ');
  size_t cmdlen = arg ? (size_t)(arg - text) : strlen(text);
  arg = arg ? arg + 1 : "";
#define IS(cmd) (cmdlen == sizeof cmd - 1 && strncmp(text, cmd, cmdlen) == 0)
  if (IS("/quit")) {
    reply(c, message_new("Bye, %s!\n", c->nick));
    c->leave_reason = "quit";
    return 1;
  }
  if (IS("/who"))
    reply(c, who_message(room, "* "));
  else if (IS("/me") && arg[0])
    broadcast(room, NULL, message_new("* %s %s\n", c->nick, arg));
  else if (IS("/ping"))
    reply(c, message_new("PONG %s\n", arg));
  else if (IS("/help"))
    reply(c, message_new("* commands: /who, /me ACTION, /ping TOKEN, /help, /quit\n"));
  else
    reply(c, message_new("* unknown command %.*s (try /help)\n", (int)cmdlen, text));
#undef IS
  return 0;
}

/* The reader task: lines from the client until /quit, EOF or an error. */
static int reader_task(void *arg) {
  client_t *c = arg;
  char text[LINE_MAX_LEN + 1];
  int rc = 0;
  for (;;) {
    const char *line;
    ssize_t n = asyncio_stream_readline(c->reader, &line);
    if (n == 0) break; /* EOF */
    if (n == ASYNCIO_ELIMITOVERRUN || (n > 0 && (size_t)n > LINE_MAX_LEN + 2)) {
      reply(c, message_new("* line too long, not sent\n"));
      continue;
    }
    if (n < 0) {
      rc = n == -ECANCELED ? -ECANCELED : 0; /* a reset connection just ends */
      break;
    }
    if (!clean_line(line, n, text)) {
      reply(c, message_new("* control characters are not allowed\n"));
      continue;
    }
    if (handle_line(c, text) == 1) break;
  }
  if (!c->leave_reason && rc == 0) c->leave_reason = "connection closed";
  /* The writer sends what is queued (the "Bye"), then sees the shutdown and ends. */
  asyncio_queue_shutdown(c->outbox, false);
  return rc;
}

/* The writer task: the client's queue to its socket. */
static int writer_task(void *arg) {
  client_t *c = arg;
  for (;;) {
    void *item;
    int rc = asyncio_queue_get(c->outbox, &item);
    if (rc == ASYNCIO_EQUEUESHUTDOWN) return 0;
    if (rc < 0) return rc; /* -ECANCELED */
    message_t *m = item;
    rc = asyncio_stream_write(c->writer, m->text, m->len);
    message_unref(m);
    if (rc == 0) rc = asyncio_stream_drain(c->writer); /* a slow client makes us wait here */
    if (rc == -ECANCELED) return rc;
    if (rc < 0) { /* the connection is gone: stop the reader too */
      if (!c->leave_reason) c->leave_reason = "connection lost";
      asyncio_taskgroup_cancel(c->tg);
      return 0;
    }
  }
}

/* ---- the connection handler ---------------------------------------------------- */

static int write_str(asyncio_stream_writer_t *w, const char *s) {
  int rc = asyncio_stream_write(w, s, strlen(s));
  return rc == 0 ? asyncio_stream_drain(w) : rc;
}

static bool valid_nick(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > NICK_MAX) return false;
  for (size_t i = 0; i < n; i++)
    if (!(s[i] == '-' || s[i] == '_' || (s[i] >= '0' && s[i] <= '9') ||
          (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
      return false;
  return true;
}

/* Asks for a nick until a free, valid one comes.  Returns 0, or < 0 (EOF: -ECONNABORTED). */
static int choose_nick(client_t *c) {
  int rc = write_str(c->writer, "Welcome to the chat! What is your nick?\n");
  char text[LINE_MAX_LEN + 1];
  while (rc == 0) {
    const char *line;
    ssize_t n = asyncio_stream_readline(c->reader, &line);
    if (n == 0) return -ECONNABORTED;
    if (n < 0 && n != ASYNCIO_ELIMITOVERRUN) return (int)n;
    if (n < 0 || (size_t)n > LINE_MAX_LEN || !clean_line(line, n, text) || !valid_nick(text)) {
      rc = write_str(c->writer, "A nick is 1 to 16 letters, digits, '-' or '_'. Try again:\n");
    } else if (find_nick(c->room, text)) {
      char msg[NICK_MAX + 64];
      snprintf(msg, sizeof msg, "The nick %.16s is taken. Try another:\n", text);
      rc = write_str(c->writer, msg);
    } else {
      memcpy(c->nick, text, strlen(text) + 1); /* valid_nick: at most NICK_MAX */
      return 0;
    }
  }
  return rc;
}

static void peer_name(asyncio_stream_writer_t *w, char *buf, size_t n) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (asyncio_stream_get_peername(w, (struct sockaddr *)&ss, &sl) == 0) {
    if (ss.ss_family == AF_INET) {
      struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
      inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
      port = ntohs(sin->sin_port);
    } else if (ss.ss_family == AF_INET6) {
      struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
      inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
      port = ntohs(sin6->sin6_port);
    }
  }
  snprintf(buf, n, "%s:%d", host, port);
}

/* One connection, from the nick question to the leave notice. */
static int serve_client(asyncio_stream_reader_t *reader, asyncio_stream_writer_t *writer,
                        void *arg) {
  client_t c = {.room = arg, .reader = reader, .writer = writer};
  room_t *room = c.room;
  peer_name(writer, c.peer, sizeof c.peer);
  server_log(room, "%s connected", c.peer);

  asyncio_timeout_t *timeout;
  int rc = asyncio_timeout_enter(&timeout, NICK_TIMEOUT);
  if (rc == 0) {
    rc = asyncio_timeout_exit(timeout, choose_nick(&c));
    asyncio_timeout_free(timeout);
  }
  if (rc == 0) rc = asyncio_queue_new(&c.outbox, room->queue_size);
  if (rc < 0) {
    server_log(room, "%s went away: %s", c.peer, asyncio_strerror(rc));
    return rc == -ECANCELED ? rc : 0;
  }
  asyncio_queue_set_drop(c.outbox, drop_message, NULL);

  rc = asyncio_taskgroup_enter(&c.tg);
  if (rc == 0) {
    /* Join: the newcomer hears who is there, the others hear of the newcomer. */
    room_add(room, &c);
    server_log(room, "%s joined from %s", c.nick, c.peer);
    char prefix[NICK_MAX + 16];
    snprintf(prefix, sizeof prefix, "Hello %s! ", c.nick);
    reply(&c, who_message(room, prefix));
    broadcast(room, &c, message_new("* %s has joined\n", c.nick));

    rc = asyncio_taskgroup_create_task(c.tg, NULL, writer_task, &c, NULL);
    if (rc == 0) rc = asyncio_taskgroup_create_task(c.tg, NULL, reader_task, &c, NULL);
    rc = asyncio_taskgroup_exit(c.tg, rc); /* waits for both */

    /* Leave. */
    room_remove(room, &c);
    asyncio_taskgroup_free(c.tg);
    const char *why = c.leave_reason     ? c.leave_reason
                      : rc == -ECANCELED ? "server shutdown"
                                         : "error";
    server_log(room, "%s left (%s)", c.nick, why);
    if (strcmp(why, "too slow") == 0)
      broadcast(room, NULL, message_new("* %s was disconnected (too slow)\n", c.nick));
    else
      broadcast(room, NULL, message_new("* %s has left (%s)\n", c.nick, why));
  }
  asyncio_queue_shutdown(c.outbox, true);
  asyncio_queue_free(c.outbox);     /* what is left goes to drop_message */
  return rc == -ECANCELED ? rc : 0; /* the library closes the connection */
}

/* The client_connected_cb of start_server. */
static int handle_client(asyncio_stream_reader_t *reader, asyncio_stream_writer_t *writer,
                         void *arg) {
  room_t *room = arg;
  room->handlers++;
  asyncio_event_clear(room->idle);
  int rc = serve_client(reader, writer, room);
  if (--room->handlers == 0) asyncio_event_set(room->idle);
  return rc;
}

/* ---- serve mode ---------------------------------------------------------------- */

typedef struct options {
  const char *host;
  int port;
  size_t queue_size;
  int demo_clients; /* 0: serve */
} options_t;

static int server_port(asyncio_server_t *server) {
  int fd;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (asyncio_server_sockets(server, &fd, 1) < 1 ||
      getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
    return -1;
  return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                        : ((struct sockaddr_in *)&ss)->sin_port);
}

/*
 * Closes the server and its clients' connections, and waits until they are
 * gone and their handlers have finished with the room.  Returns 0 or
 * -ECANCELED (a second cancellation while waiting).
 */
static int stop_server(asyncio_server_t *server, room_t *room) {
  asyncio_server_close(server);
  asyncio_server_close_clients(server);
  int rc = asyncio_server_wait_closed(server);
  while (rc == 0 && room->handlers > 0) rc = asyncio_event_wait(room->idle);
  asyncio_server_free(server);
  return rc;
}

static int serve(void *arg) {
  options_t *o = arg;
  static room_t room; /* static: handlers may outlive this call if it is cancelled twice */
  room = (room_t){.queue_size = o->queue_size, .log = true};
  int rc = asyncio_event_new(&room.idle);
  if (rc < 0) return rc;
  asyncio_server_t *server;
  rc = asyncio_start_server(handle_client, &room, o->host, o->port, NULL, &server);
  if (rc < 0) {
    asyncio_event_free(room.idle);
    fprintf(stderr, "chat_server: cannot listen on %s port %d: %s\n", o->host, o->port,
            asyncio_strerror(rc));
    return rc;
  }
  printf("Serving chat on %s port %d (nc %s %d) ...\n", o->host, server_port(server), o->host,
         server_port(server));
  /*
   * Serve until Ctrl-C cancels this task.  Not serve_forever(): on
   * cancellation it waits for every connection to end, and chat clients
   * stay connected; stop_server() closes them first.
   */
  asyncio_event_t *never;
  rc = asyncio_event_new(&never);
  if (rc == 0) {
    rc = asyncio_event_wait(never);
    asyncio_event_free(never);
  }
  int src = stop_server(server, &room);
  if (src == 0) asyncio_event_free(room.idle); /* else handlers may still use it */
  return rc < 0 ? rc : src;
}

/* ---- demo mode: scripted clients ------------------------------------------------- */

static const char *const NAMES[] = {"alice", "bob",   "carol", "dave",
                                    "erin",  "frank", "grace", "heidi"};
#define MAX_DEMO_CLIENTS ((int)(sizeof NAMES / sizeof *NAMES))

typedef struct demo_client {
  const char *name;
  asyncio_stream_reader_t *reader;
  asyncio_stream_writer_t *writer;
} demo_client_t;

typedef struct demo {
  demo_client_t clients[MAX_DEMO_CLIENTS];
  int n;
  int port;
  int pings;
} demo_t;

static int demo_send(demo_client_t *c, const char *text) {
  printf("%-5s >>> %s\n", c->name, text);
  int rc = asyncio_stream_write(c->writer, text, strlen(text));
  if (rc == 0) rc = asyncio_stream_write(c->writer, "\n", 1);
  return rc == 0 ? asyncio_stream_drain(c->writer) : rc;
}

/* Reads one line into buf without its newline.  Returns readline's count: 0 at EOF. */
static ssize_t demo_recv(demo_client_t *c, char *buf, size_t cap) {
  const char *line;
  ssize_t n = asyncio_stream_readline(c->reader, &line);
  if (n <= 0) return n;
  size_t len = (size_t)n;
  while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
  snprintf(buf, cap, "%.*s", (int)len, line);
  return n;
}

/* Reads and prints one line.  Returns 0, -EPIPE at EOF, or an error. */
static int demo_print_line(demo_client_t *c) {
  char buf[LINE_MAX_LEN];
  ssize_t n = demo_recv(c, buf, sizeof buf);
  if (n > 0) printf("%-5s <<< %s\n", c->name, buf);
  return n > 0 ? 0 : n == 0 ? -EPIPE : (int)n;
}

/* Prints what c received, up to the answer to a /ping (not printed). */
static int demo_sync(demo_t *d, demo_client_t *c) {
  char token[32], expect[40], buf[LINE_MAX_LEN];
  snprintf(token, sizeof token, "/ping %d", ++d->pings);
  snprintf(expect, sizeof expect, "PONG %d", d->pings);
  int rc = asyncio_stream_write(c->writer, token, strlen(token));
  if (rc == 0) rc = asyncio_stream_write(c->writer, "\n", 1);
  if (rc == 0) rc = asyncio_stream_drain(c->writer);
  while (rc == 0) {
    ssize_t n = demo_recv(c, buf, sizeof buf);
    if (n <= 0) return n == 0 ? -EPIPE : (int)n;
    if (strcmp(buf, expect) == 0) break;
    printf("%-5s <<< %s\n", c->name, buf);
  }
  return rc;
}

/*
 * After a step by `actor` (NULL: none), prints what every connected client
 * received: the actor first (its own lines were queued before its PONG),
 * then the others, whose lines from the step are queued by then.
 */
static int demo_sync_all(demo_t *d, demo_client_t *actor) {
  int rc = actor && actor->writer ? demo_sync(d, actor) : 0;
  for (int i = 0; rc == 0 && i < d->n; i++)
    if (&d->clients[i] != actor && d->clients[i].writer) rc = demo_sync(d, &d->clients[i]);
  return rc;
}

static int demo_join(demo_t *d, demo_client_t *c, const char *taken) {
  printf("%-5s connects\n", c->name);
  int rc = asyncio_open_connection("127.0.0.1", d->port, NULL, &c->reader, &c->writer);
  if (rc < 0) return rc;
  rc = demo_print_line(c); /* the question */
  if (rc == 0 && taken) {
    rc = demo_send(c, taken);
    if (rc == 0) rc = demo_print_line(c); /* taken */
  }
  if (rc == 0) rc = demo_send(c, c->name);
  if (rc == 0) rc = demo_print_line(c); /* Hello ... */
  return rc == 0 ? demo_sync_all(d, c) : rc;
}

static int demo_say(demo_t *d, demo_client_t *c, const char *text) {
  int rc = demo_send(c, text);
  return rc == 0 ? demo_sync_all(d, c) : rc;
}

/* Leaves with /quit, or by closing its side of the connection (write_eof). */
static int demo_leave(demo_t *d, demo_client_t *c, bool hang_up) {
  int rc;
  if (hang_up) {
    printf("%-5s hangs up\n", c->name);
    rc = asyncio_stream_write_eof(c->writer);
  } else {
    rc = demo_send(c, "/quit");
  }
  if (rc == 0) { /* async for line in reader: what is left, up to EOF (the server closed) */
    const char *line;
    ssize_t n;
    ASYNCIO_STREAM_FOR_LINES(n, c->reader, &line) {
      size_t len = (size_t)n;
      while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
      printf("%-5s <<< %.*s\n", c->name, (int)len, line);
    }
    rc = (int)n; /* 0 at EOF */
  }
  asyncio_stream_close(c->writer);
  asyncio_stream_wait_closed(c->writer);
  asyncio_stream_reader_free(c->reader);
  asyncio_stream_writer_free(c->writer);
  c->reader = NULL;
  c->writer = NULL;
  return rc == 0 ? demo_sync_all(d, NULL) : rc;
}

static int demo_script(demo_t *d) {
  int n = d->n;
  int rc = 0;
  char text[128];
  for (int i = 0; rc == 0 && i < n; i++) /* the second client first asks for a nick in use */
    rc = demo_join(d, &d->clients[i], i == 1 ? d->clients[0].name : NULL);
  for (int i = 0; rc == 0 && i < n; i++) {
    snprintf(text, sizeof text, "Hello everyone, %s here.", d->clients[i].name);
    rc = demo_say(d, &d->clients[i], text);
  }
  if (rc == 0) rc = demo_say(d, &d->clients[n - 1], "/who");
  if (rc == 0) rc = demo_say(d, &d->clients[0], "/me waves");
  if (rc == 0) rc = demo_say(d, &d->clients[0], "/dance");
  for (int i = n - 1; rc == 0 && i >= 0; i--) /* the last to join leaves first; bob hangs up */
    rc = demo_leave(d, &d->clients[i], i == 1);
  return rc;
}

static int demo(void *arg) {
  options_t *o = arg;
  static room_t room;
  room = (room_t){.queue_size = o->queue_size, .log = false};
  int rc = asyncio_event_new(&room.idle);
  if (rc < 0) return rc;
  asyncio_server_t *server;
  rc = asyncio_start_server(handle_client, &room, "127.0.0.1", 0, NULL, &server);
  if (rc < 0) {
    asyncio_event_free(room.idle);
    return rc;
  }
  demo_t d = {.n = o->demo_clients, .port = server_port(server)};
  printf("chat server started on 127.0.0.1 (port chosen by the kernel)\n");
  for (int i = 0; i < d.n; i++) d.clients[i].name = NAMES[i];

  asyncio_timeout_t *timeout; /* a stuck step fails the demo instead of hanging */
  rc = asyncio_timeout_enter(&timeout, 30.0);
  if (rc == 0) {
    rc = asyncio_timeout_exit(timeout, demo_script(&d));
    asyncio_timeout_free(timeout);
  }
  for (int i = 0; i < d.n; i++) { /* after a failure: the clients still connected */
    if (d.clients[i].reader) asyncio_stream_reader_free(d.clients[i].reader);
    if (d.clients[i].writer) asyncio_stream_writer_free(d.clients[i].writer);
  }
  int src = stop_server(server, &room);
  if (src == 0) asyncio_event_free(room.idle);
  printf("chat server closed, %zu users left in the room\n", room.count);
  return rc < 0 ? rc : src;
}

/* ---- main ---------------------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr,
          "usage: chat_server [-b HOST] [-p PORT] [--queue-size N]\n"
          "       chat_server --demo [N]    (N scripted clients, 1 to %d, default 3)\n",
          MAX_DEMO_CLIENTS);
}

int main(int argc, char **argv) {
  options_t o = {.host = "127.0.0.1", .port = 0, .queue_size = DEFAULT_QUEUE};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-b") == 0 && i + 1 < argc) {
      o.host = argv[++i];
    } else if (strcmp(argv[i], "-p") == 0 && i + 1 < argc) {
      o.port = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--queue-size") == 0 && i + 1 < argc) {
      long q = atol(argv[++i]);
      if (q < 1) {
        usage();
        return 2;
      }
      o.queue_size = (size_t)q;
    } else if (strcmp(argv[i], "--demo") == 0) {
      o.demo_clients = 3;
      if (i + 1 < argc && argv[i + 1][0] != '-') o.demo_clients = atoi(argv[++i]);
      if (o.demo_clients < 1 || o.demo_clients > MAX_DEMO_CLIENTS) {
        usage();
        return 2;
      }
    } else {
      usage();
      return 2;
    }
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  int rc = asyncio_run(o.demo_clients ? demo : serve, &o, NULL);
  if (rc == -EINTR) return 0; /* Ctrl-C */
  if (rc < 0) {
    fprintf(stderr, "chat_server: %s\n", asyncio_strerror(rc));
    return 1;
  }
  return 0;
}
