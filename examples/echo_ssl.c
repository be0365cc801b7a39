/*
 * echo_ssl - the streams echo server and client of echo_streams, over TLS.
 *
 * Python origin: asyncio_echo_server_ssl.py and asyncio_echo_client_ssl.py
 * from PyMOTW-3's asyncio chapter ("Using SSL").  The server's context is
 * ssl.create_default_context(Purpose.CLIENT_AUTH) with a certificate
 * loaded, the client's create_default_context(Purpose.SERVER_AUTH) trusting
 * that certificate, with check_hostname off (server_hostname "" here).
 * PyMOTW makes pymotw.crt / pymotw.key with `openssl req`; give their paths
 * as arguments to use such files, or, without arguments, the program makes
 * a throwaway self-signed certificate in memory.  One program runs both
 * sides on 127.0.0.1 with a port the system picks; ports print as <port>.
 *
 * TLS has no half-close (write_eof is not supported over it), so, as in
 * PyMOTW, the client ends its message with a NUL byte and the server
 * stops at it.
 */
#include <arpa/inet.h>
#include <asyncio.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

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

/* ---- the server (async def echo(reader, writer)) ------------------------------------ */

static int handlers_done;

static int echo(asyncio_stream_reader_t *reader, asyncio_stream_writer_t *writer, void *arg) {
  (void)arg;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char host[64] = "?", log[96];
  if (asyncio_stream_get_peername(writer, (struct sockaddr *)&ss, &sl) == 0 &&
      ss.ss_family == AF_INET)
    inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
  snprintf(log, sizeof log, "echo_%s_<port>", host);
  printf("%s: connection accepted\n", log);
  int rc = 0;
  for (;;) {
    char data[128];
    ssize_t n = asyncio_stream_read(reader, data, sizeof data);
    if (n < 0) {
      rc = (int)n;
      break;
    }
    /* terminate = data.endswith(b'\x00'); data = data.rstrip(b'\x00') */
    int terminate = n > 0 && data[n - 1] == '\0';
    while (n > 0 && data[n - 1] == '\0') n--;
    if (n > 0) {
      char prefix[128];
      snprintf(prefix, sizeof prefix, "%s: received ", log);
      print_bytes(prefix, data, (size_t)n);
      rc = asyncio_stream_write(writer, data, (size_t)n);
      if (rc == 0) rc = asyncio_stream_drain(writer);
      if (rc < 0) break;
      snprintf(prefix, sizeof prefix, "%s: sent ", log);
      print_bytes(prefix, data, (size_t)n);
    }
    if (n == 0 || terminate) {
      printf("%s: message terminated, closing connection\n", log);
      asyncio_stream_close(writer);
      break;
    }
  }
  handlers_done++;
  return rc;
}

/* ---- the client (async def echo_client(server_address, messages)) ---------------- */

static const char *const MESSAGES[] = {"This is the message. ", "It will be sent ", "in parts."};

static int echo_client(int port, SSL_CTX *ctx) {
  printf("echo_client: connecting to 127.0.0.1 port <port>\n");
  asyncio_connection_options_t co = {.ssl = ctx, .server_hostname = ""};
  asyncio_stream_options_t o = {.connection = &co};
  asyncio_stream_reader_t *reader;
  asyncio_stream_writer_t *writer;
  int rc = asyncio_open_connection("127.0.0.1", port, &o, &reader, &writer);
  if (rc < 0) return rc;
  for (size_t i = 0; i < sizeof MESSAGES / sizeof *MESSAGES && rc == 0; i++) {
    rc = asyncio_stream_write(writer, MESSAGES[i], strlen(MESSAGES[i]));
    print_bytes("echo_client: sending ", MESSAGES[i], strlen(MESSAGES[i]));
  }
  /* SSL does not support EOF, so send a null byte to end the message. */
  if (rc == 0) rc = asyncio_stream_write(writer, "", 1);
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

/* ---- certificates --------------------------------------------------------------------- */

/* `openssl req -x509 -newkey ... -subj /CN=localhost`, in memory. */
static int make_cert(X509 **cert, EVP_PKEY **key) {
  *key = EVP_EC_gen("P-256");
  *cert = X509_new();
  if (!*key || !*cert) return -1;
  X509_set_version(*cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(*cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(*cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(*cert), 3600);
  X509_set_pubkey(*cert, *key);
  X509_NAME *name = X509_get_subject_name(*cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
                             -1, 0);
  X509_set_issuer_name(*cert, name);
  return X509_sign(*cert, *key, EVP_sha256()) > 0 ? 0 : -1;
}

typedef struct contexts {
  SSL_CTX *server, *client;
} contexts_t;

static int make_contexts(int argc, char **argv, contexts_t *c) {
  int rc = asyncio_ssl_create_default_context(ASYNCIO_SSL_PURPOSE_CLIENT_AUTH, NULL, NULL,
                                              &c->server);
  if (rc < 0) return rc;
  if (argc == 3) { /* ssl_context.load_cert_chain('pymotw.crt', 'pymotw.key') */
    if (SSL_CTX_use_certificate_chain_file(c->server, argv[1]) != 1 ||
        SSL_CTX_use_PrivateKey_file(c->server, argv[2], SSL_FILETYPE_PEM) != 1)
      return ASYNCIO_ESSL;
    /* ssl_context.load_verify_locations('pymotw.crt') */
    return asyncio_ssl_create_default_context(ASYNCIO_SSL_PURPOSE_SERVER_AUTH, argv[1], NULL,
                                              &c->client);
  }
  X509 *cert;
  EVP_PKEY *key;
  rc = make_cert(&cert, &key) == 0 && SSL_CTX_use_certificate(c->server, cert) == 1 &&
               SSL_CTX_use_PrivateKey(c->server, key) == 1
           ? 0
           : ASYNCIO_ESSL;
  if (rc == 0) rc = asyncio_ssl_create_default_context(ASYNCIO_SSL_PURPOSE_SERVER_AUTH, NULL,
                                                       NULL, &c->client);
  if (rc == 0) X509_STORE_add_cert(SSL_CTX_get_cert_store(c->client), cert);
  X509_free(cert);
  EVP_PKEY_free(key);
  return rc;
}

/* ---- main --------------------------------------------------------------------------- */

static int main_coro(void *arg) {
  contexts_t *c = arg;
  asyncio_server_options_t so = {.ssl = c->server};
  asyncio_stream_options_t o = {.server = &so};
  asyncio_server_t *server;
  int rc = asyncio_start_server(echo, NULL, "127.0.0.1", 0, &o, &server);
  if (rc < 0) return rc;
  int fd;
  asyncio_server_sockets(server, &fd, 1);
  struct sockaddr_in sin;
  socklen_t sl = sizeof sin;
  getsockname(fd, (struct sockaddr *)&sin, &sl);
  printf("main: starting up on 127.0.0.1 port <port>\n");

  rc = echo_client(ntohs(sin.sin_port), c->client);
  while (rc == 0 && handlers_done == 0) rc = asyncio_sleep(0);

  printf("main: closing server\n");
  asyncio_server_close(server);
  int wrc = asyncio_server_wait_closed(server);
  asyncio_server_free(server);
  printf("main: closing event loop\n");
  return rc < 0 ? rc : wrc;
}

int main(int argc, char **argv) {
  if (argc != 1 && argc != 3) {
    fprintf(stderr, "usage: echo_ssl [CERT.pem KEY.pem]\n");
    return 2;
  }
  contexts_t c = {0};
  int rc = make_contexts(argc, argv, &c);
  if (rc == 0) rc = asyncio_run(main_coro, &c, NULL);
  SSL_CTX_free(c.server);
  SSL_CTX_free(c.client);
  if (rc < 0) {
    fprintf(stderr, "echo_ssl: %s\n", asyncio_strerror(rc));
    return 1;
  }
  return 0;
}
