/*
 * http_server - a small static-file HTTP/1.1 server written on the streams
 * API (asyncio.start_server, StreamReader.readline, StreamWriter.write /
 * drain).
 *
 * Python origin: it plays the part of `python3 -m http.server --directory
 * DIR` (http.server.SimpleHTTPRequestHandler) for the other streams
 * examples: status_checker and crawler are smoke-tested against it, so the
 * tests need no network and no Python.  It is our own small server, not a
 * port of http.server: GET and HEAD only, files under DIR, index.html for a
 * directory (a directory without its trailing slash is redirected, as
 * http.server does), 404 for what is not there, a Content-Length on every
 * response and `Connection: close` (one request per connection).
 *
 *   http_server [-b HOST] [-p PORT] [--tls-cert FILE] [--print-port] [--until-eof] DIR
 *
 * The port is 0 (the kernel picks one) unless -p is given.  The first line
 * on stdout says where it listens: Python's "Serving HTTP on ..." line, or
 * with --print-port the bare port number, for scripts.
 *
 * With --tls-cert it also serves HTTPS (start_server with ssl=) on a second
 * port the kernel picks, with a throwaway certificate made in memory at
 * start-up (`openssl req -x509 -newkey ec -subj /CN=localhost -addext
 * subjectAltName=IP:127.0.0.1,DNS:localhost`: self-signed, a CA for itself)
 * and written to FILE as PEM, for the clients to trust (a cafile); its key
 * never leaves the process.  The first line is then "PORT TLSPORT" with
 * --print-port, and a second "Serving HTTPS on ..." line without.  Both
 * listeners share the request handler and the log.  Each request then
 * logs one line `HOST "REQUEST LINE" STATUS LENGTH` on stdout (http.server
 * logs to stderr; this one keeps stderr for errors).  It serves until it
 * is killed or interrupted (SIGINT cancels the main task, as in Python),
 * or with --until-eof until stdin (a pipe, FIFO, socket or terminal: epoll
 * cannot watch a regular file or /dev/null) reaches end of file, which lets
 * a test stop it cleanly.  Either way it then closes its listening sockets,
 * lets the requests in progress finish (for up to 5 s) and exits 0.
 *
 * Files are read with plain read() in the loop thread: they are small local
 * files, mostly in the page cache.  A server of large files on slow disks
 * would read them in a worker thread (asyncio_to_thread) or use sendfile.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <asyncio.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_REQUEST_LINE 8192 /* a longer one gets 414 */
#define MAX_HEADERS 100       /* more header lines get 431 */
#define REQUEST_TIMEOUT 10.0  /* seconds to receive the request head */
#define SHUTDOWN_GRACE 5.0    /* seconds for requests in progress at shutdown */
#define CHUNK (64 * 1024)

typedef struct server_config {
  const char *root; /* the directory served */
  asyncio_event_t *stop;
  bool stdin_eof;
} server_config_t;

/* ---- small helpers ------------------------------------------------------------- */

static const char *reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 301:
      return "Moved Permanently";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 414:
      return "URI Too Long";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

static const char *content_type(const char *path) {
  static const struct {
    const char *ext, *type;
  } types[] = {
      {".html", "text/html; charset=utf-8"},
      {".htm", "text/html; charset=utf-8"},
      {".txt", "text/plain; charset=utf-8"},
      {".css", "text/css"},
      {".js", "text/javascript"},
      {".json", "application/json"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".gif", "image/gif"},
      {".svg", "image/svg+xml"},
  };
  const char *dot = strrchr(path, '.');
  if (dot && !strchr(dot, '/'))
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
      if (strcmp(dot, types[i].ext) == 0) return types[i].type;
  return "application/octet-stream";
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/*
 * Turns the path of a request target into a file-system path under root.
 * Percent-escapes are decoded; a NUL byte or a ".." segment is refused (the
 * server never leaves its directory).  Returns 0 or 400.
 */
static int translate_path(const char *root, const char *target, size_t target_len, char *out,
                          size_t cap) {
  size_t n = (size_t)snprintf(out, cap, "%s", root);
  if (n >= cap) return 500;
  for (size_t i = 0; i < target_len; i++) {
    int c = (unsigned char)target[i];
    if (c == '%') {
      int hi = i + 2 < target_len ? hexval(target[i + 1]) : -1;
      int lo = i + 2 < target_len ? hexval(target[i + 2]) : -1;
      if (hi < 0 || lo < 0) return 400;
      c = hi * 16 + lo;
      i += 2;
    }
    if (c == 0) return 400;
    if (n + 1 >= cap) return 414;
    out[n++] = (char)c;
  }
  out[n] = '\0';
  /* Refuse every ".." segment of the decoded path. */
  for (const char *p = out + strlen(root); (p = strstr(p, "..")) != NULL; p += 2)
    if (p[-1] == '/' && (p[2] == '/' || p[2] == '\0')) return 400;
  return 0;
}

/* Writes the status line and the headers.  Returns 0 or the stream's error. */
static int send_head(asyncio_stream_writer_t *w, int status, const char *type, long long length,
                     const char *location) {
  char head[1024];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\n"
                   "Server: asyncio-c-example-http_server\r\n"
                   "Content-Type: %s\r\n"
                   "Content-Length: %lld\r\n"
                   "%s%s%s"
                   "Connection: close\r\n\r\n",
                   status, reason_phrase(status), type, length, location ? "Location: " : "",
                   location ? location : "", location ? "\r\n" : "");
  if (n < 0 || (size_t)n >= sizeof head) return -EOVERFLOW;
  return asyncio_stream_write(w, head, (size_t)n);
}

/* An error response: a small HTML page (its head only for HEAD); *length gets its size. */
static int send_error(asyncio_stream_writer_t *w, int status, bool head_only, const char *location,
                      long long *length) {
  char body[256];
  int n = snprintf(body, sizeof body,
                   "<!DOCTYPE html>\n<html><head><title>%d %s</title></head>\n"
                   "<body><h1>%d %s</h1></body></html>\n",
                   status, reason_phrase(status), status, reason_phrase(status));
  *length = n;
  int rc = send_head(w, status, "text/html; charset=utf-8", n, location);
  if (rc == 0 && !head_only) rc = asyncio_stream_write(w, body, (size_t)n);
  if (rc == 0) rc = asyncio_stream_drain(w);
  return rc;
}

/* Sends the file's bytes, one chunk at a time, waiting in drain() for a slow client. */
static int send_file(asyncio_stream_writer_t *w, int fd, long long length) {
  char *buf = malloc(CHUNK);
  if (!buf) return -ENOMEM;
  int rc = 0;
  while (rc == 0 && length > 0) {
    ssize_t got = read(fd, buf, CHUNK);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) { /* the file shrank or failed: the client sees a short body */
      rc = got < 0 ? -errno : -EIO;
      break;
    }
    if (got > length) got = (ssize_t)length;
    length -= got;
    rc = asyncio_stream_write(w, buf, (size_t)got);
    if (rc == 0) rc = asyncio_stream_drain(w);
  }
  free(buf);
  return rc;
}

static void peer_host(asyncio_stream_writer_t *w, char *buf, size_t n) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  snprintf(buf, n, "-");
  if (asyncio_stream_get_peername(w, (struct sockaddr *)&ss, &sl) < 0) return;
  const void *a = ss.ss_family == AF_INET ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
                                          : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
  if (!inet_ntop(ss.ss_family, a, buf, (socklen_t)n)) snprintf(buf, n, "-");
}

/* ---- one connection ------------------------------------------------------------ */

typedef struct request {
  char line[MAX_REQUEST_LINE];   /* the request line without its CRLF, for the log */
  char parsed[MAX_REQUEST_LINE]; /* a copy, cut into the three fields */
  char *method, *target, *version;
} request_t;

/*
 * Reads the request head: the request line and the header lines up to the
 * empty line (their contents are not needed: no body is read for GET/HEAD).
 * Returns 0, an HTTP status to answer with (400, 414, 431), or < 0 when the
 * client went away or was too slow (nothing to answer).
 */
static int read_request(asyncio_stream_reader_t *r, request_t *req) {
  const char *line;
  ssize_t n = asyncio_stream_readline(r, &line);
  if (n == 0) return -ECONNABORTED; /* connected and closed without a request */
  if (n == ASYNCIO_ELIMITOVERRUN) return 414;
  if (n < 0) return (int)n;
  while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
  if ((size_t)n >= sizeof req->line) return 414;
  memcpy(req->line, line, (size_t)n);
  req->line[n] = '\0';
  req->method = req->target = req->version = NULL;

  for (int count = 0;; count++) {
    ssize_t h = asyncio_stream_readline(r, &line);
    if (h == ASYNCIO_ELIMITOVERRUN) return 431;
    if (h < 0) return (int)h;
    if (h == 0) return -ECONNABORTED; /* EOF inside the head */
    if (line[0] == '\n' || (h == 2 && line[0] == '\r')) break;
    if (count == MAX_HEADERS) return 431;
  }

  /* "METHOD SP request-target SP HTTP-version" */
  char *save = NULL;
  memcpy(req->parsed, req->line, (size_t)n + 1);
  req->method = strtok_r(req->parsed, " ", &save);
  req->target = strtok_r(NULL, " ", &save);
  req->version = strtok_r(NULL, " ", &save);
  if (!req->method || !req->target || !req->version || strtok_r(NULL, " ", &save)) return 400;
  return 0;
}

/*
 * Answers one parsed request.  Returns the status; *length gets the body's
 * length (Content-Length), *io_error the stream's error if sending failed.
 */
static int respond(server_config_t *cfg, asyncio_stream_writer_t *w, request_t *req,
                   long long *length, int *io_error) {
  bool head_only = strcmp(req->method, "HEAD") == 0;
  char path[4096];
  char location[MAX_REQUEST_LINE + 2];
  const char *redirect = NULL;
  int fd = -1;
  int status = 0;
  size_t path_len = strcspn(req->target, "?#");
  struct stat st;

  if (strncmp(req->version, "HTTP/1.", 7) != 0)
    status = 505;
  else if (!head_only && strcmp(req->method, "GET") != 0)
    status = 501;
  else if (req->target[0] != '/')
    status = 400;
  else
    status = translate_path(cfg->root, req->target, path_len, path, sizeof path - 16);
  if (status == 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    if (req->target[path_len - 1] != '/') { /* as http.server: "/docs" -> "/docs/" */
      snprintf(location, sizeof location, "%.*s/%s", (int)path_len, req->target,
               req->target + path_len);
      redirect = location;
      status = 301;
    } else {
      strcat(path, "index.html");
    }
  }
  if (status == 0) {
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      status = errno == ENOENT || errno == ENOTDIR ? 404 : errno == EACCES ? 403 : 500;
    else if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
      status = 404;
  }
  if (status) {
    if (fd >= 0) close(fd);
    *io_error =
        send_error(w, status, head_only && status != 501 && status != 505, redirect, length);
    return status;
  }
  *length = (long long)st.st_size;
  int rc = send_head(w, 200, content_type(path), *length, NULL);
  if (rc == 0 && !head_only) rc = send_file(w, fd, *length);
  if (rc == 0) rc = asyncio_stream_drain(w);
  close(fd);
  *io_error = rc;
  return 200;
}

/*
 * The client_connected_cb: one request per connection.  It always returns 0:
 * a client that hangs up early is normal for a web server, not an error for
 * the loop's exception handler.
 */
static int handle_client(asyncio_stream_reader_t *r, asyncio_stream_writer_t *w, void *arg) {
  server_config_t *cfg = arg;
  request_t *req = malloc(sizeof *req);
  if (!req) return 0;

  asyncio_timeout_t *timeout;
  int status = asyncio_timeout_enter(&timeout, REQUEST_TIMEOUT);
  if (status == 0) {
    status = read_request(r, req);
    status = asyncio_timeout_exit(timeout, status);
    asyncio_timeout_free(timeout);
  }
  char host[INET6_ADDRSTRLEN];
  peer_host(w, host, sizeof host);
  long long length = 0;
  int io_error = 0;
  if (status == 0) {
    status = respond(cfg, w, req, &length, &io_error);
    printf("%s \"%s %s %s\" %d %lld\n", host, req->method, req->target, req->version, status,
           length);
  } else if (status > 0) {
    io_error = send_error(w, status, false, NULL, &length);
    printf("%s \"%s\" %d %lld\n", host, status == 414 ? "(request line too long)" : req->line,
           status, length);
  }
  (void)io_error; /* ECONNRESET, EPIPE: the client went away; nothing to do */
  free(req);
  return 0; /* the library closes the connection, buffered data is still sent */
}

/* ---- TLS: the throwaway certificate ------------------------------------------- */

/* Adds one X.509v3 extension, as `openssl req -addext NAME=VALUE` writes it. */
static int add_ext(X509 *cert, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  int ok = ext && X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok ? 0 : -1;
}

/*
 * The server's context, with a new P-256 key and a self-signed certificate
 * for localhost and 127.0.0.1 valid for a day; the certificate is written to
 * cert_file as PEM.  It is its own CA (basicConstraints CA:TRUE, keyUsage
 * keyCertSign, key identifiers: what `openssl req -x509` gives), so a client
 * that trusts that file alone verifies it, also with X509_V_FLAG_X509_STRICT.
 * Returns 0 with *out set (SSL_CTX_free), or ASYNCIO_ESSL / -errno.
 */
static int make_tls_context(const char *cert_file, SSL_CTX **out) {
  int rc = asyncio_ssl_create_default_context(ASYNCIO_SSL_PURPOSE_CLIENT_AUTH, NULL, NULL, out);
  if (rc < 0) return rc;
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *cert = X509_new();
  rc = ASYNCIO_ESSL;
  if (key && cert && X509_set_version(cert, 2) == 1 &&
      ASN1_INTEGER_set(X509_get_serialNumber(cert), (long)time(NULL)) == 1 &&
      X509_gmtime_adj(X509_getm_notBefore(cert), -3600) &&
      X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600) && X509_set_pubkey(cert, key) == 1 &&
      X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                                 (const unsigned char *)"localhost", -1, -1, 0) == 1 &&
      X509_set_issuer_name(cert, X509_get_subject_name(cert)) == 1 &&
      add_ext(cert, NID_basic_constraints, "critical,CA:TRUE") == 0 &&
      add_ext(cert, NID_key_usage, "critical,digitalSignature,keyCertSign") == 0 &&
      add_ext(cert, NID_subject_key_identifier, "hash") == 0 &&
      add_ext(cert, NID_authority_key_identifier, "keyid:always") == 0 &&
      add_ext(cert, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost") == 0 &&
      X509_sign(cert, key, EVP_sha256()) > 0 && SSL_CTX_use_certificate(*out, cert) == 1 &&
      SSL_CTX_use_PrivateKey(*out, key) == 1)
    rc = 0;
  if (rc == 0) {
    FILE *f = fopen(cert_file, "w");
    if (!f || PEM_write_X509(f, cert) != 1) rc = f ? -EIO : -errno;
    if (f && fclose(f) != 0 && rc == 0) rc = -errno;
  }
  X509_free(cert);
  EVP_PKEY_free(key);
  if (rc < 0) {
    SSL_CTX_free(*out);
    *out = NULL;
  }
  return rc;
}

/* ---- main ---------------------------------------------------------------------- */

static void on_stdin(int fd, void *arg) {
  server_config_t *cfg = arg;
  char buf[512];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n > 0 || (n < 0 && (errno == EINTR || errno == EAGAIN))) return; /* input is ignored */
  asyncio_loop_remove_reader(asyncio_get_running_loop(), fd);
  asyncio_event_set(cfg->stop);
}

typedef struct options {
  const char *host;
  int port;
  bool print_port;
  const char *tls_cert; /* --tls-cert FILE: also serve HTTPS */
  SSL_CTX *tls;
  server_config_t cfg;
} options_t;

/* The port the server's first socket listens on (the one the kernel picked for port 0). */
static int server_port(asyncio_server_t *server, int port) {
  int fd;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (asyncio_server_sockets(server, &fd, 1) > 0 &&
      getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
    port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
  return port;
}

/* Stops accepting; lets the requests in progress finish, then cuts the rest off. */
static void shut_down(asyncio_server_t **servers, size_t n) {
  for (size_t i = 0; i < n; i++) asyncio_server_close(servers[i]);
  asyncio_timeout_t *grace;
  int wrc = asyncio_timeout_enter(&grace, SHUTDOWN_GRACE);
  if (wrc == 0) {
    for (size_t i = 0; i < n && wrc == 0; i++) wrc = asyncio_server_wait_closed(servers[i]);
    wrc = asyncio_timeout_exit(grace, wrc);
    asyncio_timeout_free(grace);
  }
  for (size_t i = 0; i < n; i++) {
    if (wrc < 0) {
      asyncio_server_close_clients(servers[i]);
      asyncio_server_wait_closed(servers[i]);
    }
    asyncio_server_free(servers[i]);
  }
}

static int main_coro(void *arg) {
  options_t *o = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  int rc = asyncio_event_new(&o->cfg.stop);
  if (rc < 0) return rc;

  asyncio_server_t *servers[2];
  size_t nservers = 0;
  rc = asyncio_start_server(handle_client, &o->cfg, o->host, o->port, NULL, &servers[0]);
  if (rc < 0) {
    fprintf(stderr, "http_server: cannot listen on %s port %d: %s\n", o->host, o->port,
            asyncio_strerror(rc));
    asyncio_event_free(o->cfg.stop);
    return rc;
  }
  nservers = 1;
  int port = server_port(servers[0], o->port);
  int tls_port = 0;
  if (o->tls) { /* the same handler on a second port, over TLS */
    asyncio_server_options_t so = {.ssl = o->tls};
    asyncio_stream_options_t opts = {.server = &so};
    rc = asyncio_start_server(handle_client, &o->cfg, o->host, 0, &opts, &servers[1]);
    if (rc < 0)
      fprintf(stderr, "http_server: cannot listen with TLS on %s: %s\n", o->host,
              asyncio_strerror(rc));
    else
      tls_port = server_port(servers[nservers++], 0);
  }
  if (rc == 0 && o->print_port && o->tls)
    printf("%d %d\n", port, tls_port);
  else if (rc == 0 && o->print_port)
    printf("%d\n", port);
  else if (rc == 0) {
    printf("Serving HTTP on %s port %d (http://%s:%d/) ...\n", o->host, port, o->host, port);
    if (o->tls)
      printf("Serving HTTPS on %s port %d (https://%s:%d/) ...\n", o->host, tls_port, o->host,
             tls_port);
  }

  if (rc == 0 && o->cfg.stdin_eof) {
    rc = asyncio_loop_add_reader(loop, STDIN_FILENO, on_stdin, &o->cfg);
    if (rc < 0) fprintf(stderr, "http_server: cannot watch stdin: %s\n", asyncio_strerror(rc));
  }
  if (rc == 0) rc = asyncio_event_wait(o->cfg.stop); /* -ECANCELED on SIGINT */
  if (o->cfg.stdin_eof) asyncio_loop_remove_reader(loop, STDIN_FILENO);

  shut_down(servers, nservers);
  asyncio_event_free(o->cfg.stop);
  return rc;
}

static void usage(void) {
  fprintf(stderr, "usage: http_server [-b HOST] [-p PORT] [--tls-cert FILE] [--print-port] "
                  "[--until-eof] DIR\n");
}

int main(int argc, char **argv) {
  options_t o = {.host = "127.0.0.1", .port = 0};
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "-b") == 0 && i + 1 < argc)
      o.host = argv[++i];
    else if (strcmp(argv[i], "-p") == 0 && i + 1 < argc)
      o.port = atoi(argv[++i]);
    else if (strcmp(argv[i], "--tls-cert") == 0 && i + 1 < argc)
      o.tls_cert = argv[++i];
    else if (strcmp(argv[i], "--print-port") == 0)
      o.print_port = true;
    else if (strcmp(argv[i], "--until-eof") == 0)
      o.cfg.stdin_eof = true;
    else {
      usage();
      return 2;
    }
  }
  if (i + 1 != argc) {
    usage();
    return 2;
  }
  o.cfg.root = argv[i];
  struct stat st;
  if (stat(o.cfg.root, &st) < 0 || !S_ISDIR(st.st_mode)) {
    fprintf(stderr, "http_server: %s is not a directory\n", o.cfg.root);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0); /* the port line must reach a script at once */
  if (o.tls_cert) { /* written before the port line: a client may read it at once */
    int trc = make_tls_context(o.tls_cert, &o.tls);
    if (trc < 0) {
      fprintf(stderr, "http_server: cannot make a certificate in %s: %s\n", o.tls_cert,
              asyncio_strerror(trc));
      return 1;
    }
  }

  int rc = asyncio_run(main_coro, &o, NULL);
  SSL_CTX_free(o.tls);
  if (rc == -EINTR) {
    printf("\nKeyboard interrupt received, exiting.\n");
    return 0;
  }
  if (rc < 0) {
    if (rc != -ECANCELED) fprintf(stderr, "http_server: %s\n", asyncio_strerror(rc));
    return 1;
  }
  return 0;
}
