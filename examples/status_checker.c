/*
 * status_checker - check the HTTP status of web sites with streams, first
 * one after another, then all at once with gather().
 *
 * Python origin: "Python Asyncio: The Complete Guide" (Super Fast Python),
 * part 21, "Example of Checking Website Status": get_status(url) opens a
 * connection with asyncio.open_connection() (port 80, or 443 with
 * ssl=True for an https URL), writes a request with
 * StreamWriter.write() and drain(), reads the status line with
 * StreamReader.readline() and closes the connection; main() checks the
 * sites sequentially (21.6), and the concurrent version (21.7) runs one
 * get_status() coroutine per site with asyncio.gather() and reports the
 * results in the order of the list.  Each result line is
 * f'{url:30}:\t{status}'.
 *
 *   status_checker [--sequential | --concurrent] [--head] [--cafile FILE] URL...
 *
 * The guide checks ten popular sites; this one checks the URLs on its
 * command line (http[s]://host[:port]/path, or host:port for "/").  With
 * no option it runs both versions, one after the other, each under a
 * heading.  --head sends HEAD instead of GET (the status line is the same).
 * https URLs are checked over TLS, as Python's ssl=True does (the
 * options' ssl_default: the loop's default client context, which verifies
 * the server's certificate against the system's CAs), or with --cafile
 * against the certificates of FILE (one context of
 * create_default_context(cafile=) for every site); the host of the URL
 * must match the certificate (server_hostname).  A certificate that
 * does not verify is reported as an error in the status column, as are
 * sites that cannot be reached.
 */
#define _POSIX_C_SOURCE 200809L
#include <asyncio.h>
#include <errno.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATUS_MAX 256

typedef struct site {
  const char *url;         /* as given */
  char host[256];          /* urllib.parse.urlsplit(url).hostname */
  int port;                /* 80 by default, 443 for https */
  char path[1024];         /* "/" when empty */
  char status[STATUS_MAX]; /* the status line, or what went wrong */
  bool https;
} site_t;

static const char *method = "GET";
static SSL_CTX *tls_context; /* --cafile: ssl.create_default_context(cafile=) */

/*
 * urlsplit() for the few forms used here: scheme://host[:port][/path] and
 * host:port.  Returns 0, or -1 for something that is not such a URL.
 */
static int split_url(site_t *s) {
  const char *p = s->url;
  s->port = 80;
  const char *sep = strstr(p, "://");
  if (sep) {
    if ((size_t)(sep - p) == 5 && strncmp(p, "https", 5) == 0) {
      s->https = true;
      s->port = 443;
    } else if (!((size_t)(sep - p) == 4 && strncmp(p, "http", 4) == 0)) {
      return -1;
    }
    p = sep + 3;
  }
  size_t hostport = strcspn(p, "/?#");
  const char *colon = memchr(p, ':', hostport);
  size_t hostlen = colon ? (size_t)(colon - p) : hostport;
  if (hostlen == 0 || hostlen >= sizeof s->host) return -1;
  memcpy(s->host, p, hostlen);
  s->host[hostlen] = '\0';
  if (colon) {
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (end != p + hostport || port <= 0 || port > 65535) return -1;
    s->port = (int)port;
  }
  const char *path = p + hostport;
  size_t pathlen = strcspn(path, "#");
  if (pathlen + 2 > sizeof s->path) return -1;
  if (path[0] != '/') s->path[0] = '/';
  snprintf(s->path + (path[0] != '/'), sizeof s->path - 1, "%.*s", (int)pathlen, path);
  return 0;
}

/* async def get_status(url): returns the status line, e.g. "HTTP/1.1 200 OK". */
static int get_status(void *arg) {
  site_t *s = arg;
  /* open the connection (ssl=True for https: server_hostname is the host) */
  asyncio_connection_options_t tls = {.ssl = tls_context, .ssl_default = !tls_context};
  asyncio_stream_options_t opts = {.connection = &tls};
  asyncio_stream_reader_t *reader;
  asyncio_stream_writer_t *writer;
  int rc = asyncio_open_connection(s->host, s->port, s->https ? &opts : NULL, &reader, &writer);
  if (rc < 0) {
    if (rc == -ECANCELED) return rc;
    snprintf(s->status, sizeof s->status, "error: %s", asyncio_strerror(rc));
    return 0;
  }
  /* send the request (HTTP/1.1 requires the Host header) */
  char query[2048];
  int n =
      snprintf(query, sizeof query, "%s %s HTTP/1.1\r\nHost: %s\r\n\r\n", method, s->path, s->host);
  rc = n > 0 && (size_t)n < sizeof query ? asyncio_stream_write(writer, query, (size_t)n) : -EINVAL;
  /* wait for the bytes to be written to the socket */
  if (rc == 0) rc = asyncio_stream_drain(writer);
  /* read the single line response */
  const char *line = NULL;
  ssize_t len = rc < 0 ? rc : asyncio_stream_readline(reader, &line);
  if (len >= 0) {
    /* decode and strip white space */
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
      len--;
    snprintf(s->status, sizeof s->status, "%.*s", (int)len, line);
  } else if (len != -ECANCELED) {
    snprintf(s->status, sizeof s->status, "error: %s", asyncio_strerror((int)len));
  }
  /* close the connection (the rest of the response is not read) */
  asyncio_stream_close(writer);
  int wrc = asyncio_stream_wait_closed(writer);
  asyncio_stream_reader_free(reader);
  asyncio_stream_writer_free(writer);
  if (len == -ECANCELED || wrc == -ECANCELED) return -ECANCELED;
  return 0;
}

static void report(const site_t *s) { printf("%-30s:\t%s\n", s->url, s->status); }

/* 21.6: check the sites one after another. */
static int check_sequentially(site_t *sites, size_t n) {
  for (size_t i = 0; i < n; i++) {
    /* get the status for the url */
    int rc = get_status(&sites[i]);
    if (rc < 0) return rc;
    /* report the url and its status */
    report(&sites[i]);
  }
  return 0;
}

/* 21.7: one coroutine per site, all run together by gather(). */
static int check_concurrently(site_t *sites, size_t n) {
  asyncio_coro_call_t *coros = calloc(n, sizeof *coros);
  if (!coros) return -ENOMEM;
  /* create all coroutine requests */
  for (size_t i = 0; i < n; i++) coros[i] = (asyncio_coro_call_t){get_status, &sites[i]};
  /* execute all coroutines and wait */
  asyncio_future_t *g;
  int rc = asyncio_gather_coros(&g, coros, n, NULL);
  free(coros);
  if (rc < 0) return rc;
  rc = asyncio_await(g, NULL);
  asyncio_future_free(g);
  if (rc < 0) return rc;
  /* process all results, in the order of the list */
  for (size_t i = 0; i < n; i++) report(&sites[i]);
  return 0;
}

typedef struct job {
  site_t *sites;
  size_t n;
  bool sequential, concurrent;
} job_t;

static int main_coro(void *arg) {
  job_t *job = arg;
  int rc = 0;
  if (job->sequential) {
    if (job->concurrent) printf("Checking %zu sites sequentially\n", job->n);
    rc = check_sequentially(job->sites, job->n);
  }
  if (rc == 0 && job->concurrent) {
    if (job->sequential) printf("Checking %zu sites concurrently\n", job->n);
    for (size_t i = 0; i < job->n; i++) job->sites[i].status[0] = '\0';
    rc = check_concurrently(job->sites, job->n);
  }
  return rc;
}

static void usage(void) {
  fprintf(stderr,
          "usage: status_checker [--sequential | --concurrent] [--head] [--cafile FILE] URL...\n");
}

int main(int argc, char **argv) {
  job_t job = {.sequential = true, .concurrent = true};
  const char *cafile = NULL;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "--sequential") == 0)
      job.concurrent = false;
    else if (strcmp(argv[i], "--concurrent") == 0)
      job.sequential = false;
    else if (strcmp(argv[i], "--head") == 0)
      method = "HEAD";
    else if (strcmp(argv[i], "--cafile") == 0 && i + 1 < argc)
      cafile = argv[++i];
    else {
      usage();
      return 2;
    }
  }
  if (i == argc || !(job.sequential || job.concurrent)) {
    usage();
    return 2;
  }
  job.n = (size_t)(argc - i);
  job.sites = calloc(job.n, sizeof *job.sites);
  if (!job.sites) return 1;
  for (size_t k = 0; k < job.n; k++) {
    job.sites[k].url = argv[i + (int)k];
    if (split_url(&job.sites[k]) < 0) {
      fprintf(stderr, "status_checker: not an http or https URL: %s\n", job.sites[k].url);
      free(job.sites);
      return 2;
    }
  }
  int rc = 0;
  if (cafile) { /* one context for every https site, made before the loop runs */
    rc = asyncio_ssl_create_default_context(ASYNCIO_SSL_PURPOSE_SERVER_AUTH, cafile, NULL,
                                            &tls_context);
    if (rc < 0) {
      fprintf(stderr, "status_checker: cannot make the TLS context with CA file %s: %s\n",
              cafile, asyncio_strerror(rc));
      free(job.sites);
      return 2;
    }
  }
  rc = asyncio_run(main_coro, &job, NULL);
  SSL_CTX_free(tls_context);
  free(job.sites);
  if (rc < 0) {
    fprintf(stderr, "status_checker: %s\n", asyncio_strerror(rc));
    return 1;
  }
  return 0;
}
