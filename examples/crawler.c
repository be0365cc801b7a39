/*
 * crawler - get the links embedded in several pages' HTML, concurrently,
 * and append them to a file as `source<TAB>link` lines.
 *
 * Python origin: areq.py from Real Python's "Async IO in Python: A Complete
 * Walkthrough".  The original uses aiohttp for the requests and aiofiles
 * for the appends; here both are done with the library itself:
 *   - fetch_html(): a minimal HTTP/1.1 client on the streams API
 *     (open_connection, write + drain, readline for the status line and
 *     the headers, readexactly / read for a body with Content-Length,
 *     chunked, or up to EOF).  Like aiohttp's session it follows redirects
 *     (up to 10), limits the connections in flight to 100 (TCPConnector's
 *     limit, with a Semaphore) and has a timeout; raise_for_status()
 *     becomes a status >= 400 error.  https URLs are fetched over TLS
 *     (open_connection with ssl=) and, as aiohttp does by default, the
 *     server's certificate must verify and match the URL's host: one
 *     ssl.create_default_context() for the session, trusting the system's
 *     CAs, or the certificates of the file given with --cafile.
 *   - parse(): the links of href="..." (HREF_RE), made absolute with a
 *     small urljoin() (RFC 3986 reference resolution), without duplicates
 *     (the Python set).  areq.py joins them with the URL it asked for; this
 *     one with the URL of the page after redirects, as a browser does.
 *   - write_one(): the appends run in a worker thread (asyncio.to_thread,
 *     which is what aiofiles does), one write() per page on a file opened
 *     with O_APPEND, so the lines of concurrent pages do not interleave.
 *   - bulk_crawl_and_write(): one write_one() per URL, run with gather().
 * A page that fails (404, connection refused, a certificate that does not
 * verify, ...) is logged and skipped, as areq.py does.  Like areq.py it
 * reads one level of links, it does not recurse.
 *
 *   crawler [-i urls.txt] [-o foundurls.txt] [--cafile FILE] [URL...]
 *
 * The URLs come from the command line, or from the file given with -i (one
 * per line; urls.txt when there are neither).  The output file
 * (foundurls.txt by default) is rewritten with the "source_url\tparsed_url"
 * header first.  The log goes to stdout in areq.py's format ("%H:%M:%S
 * LEVEL:name: message"; areq.py logs to stderr).  Only http:// and https://
 * URLs can be fetched; others are logged as errors.
 */
#define _POSIX_C_SOURCE 200809L
#include <asyncio.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define MAX_URL 2048
#define MAX_BODY ((size_t)16 * 1024 * 1024) /* a larger page is an error */
#define MAX_REDIRECTS 10                    /* aiohttp's max_redirects */
#define MAX_CONNECTIONS 100                 /* aiohttp's TCPConnector(limit=100) */
#define REQUEST_TIMEOUT 30.0                /* seconds per request, redirects included */

/* ---- logging: logging.basicConfig(format="%(asctime)s %(levelname)s:%(name)s: ...") ---- */

static void logmsg(const char *level, const char *fmt, ...) {
  char stamp[16];
  time_t now = time(NULL);
  struct tm tm;
  localtime_r(&now, &tm);
  strftime(stamp, sizeof stamp, "%H:%M:%S", &tm);
  printf("%s %s:crawler: ", stamp, level);
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
}

/* ---- URLs ---------------------------------------------------------------------- */

/* The parts of an http URL that a request needs (urllib.parse.urlsplit). */
typedef struct url_parts {
  char scheme[16];
  char host[256];
  int port;
  char authority[300]; /* host[:port], for the Host header */
  const char *target;  /* path and query, "/" when empty (points into the URL) */
  size_t target_len;
} url_parts_t;

/* Length of the scheme of `s` (without the ':'), or 0 when it has none. */
static size_t scheme_len(const char *s) {
  if (!isalpha((unsigned char)s[0])) return 0;
  size_t i = 1;
  while (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.') i++;
  return s[i] == ':' ? i : 0;
}

static int split_url(const char *url, url_parts_t *u) {
  size_t sl = scheme_len(url);
  if (sl == 0 || sl >= sizeof u->scheme || strncmp(url + sl, "://", 3) != 0) return -1;
  for (size_t i = 0; i < sl; i++) u->scheme[i] = (char)tolower((unsigned char)url[i]);
  u->scheme[sl] = '\0';
  const char *p = url + sl + 3;
  size_t auth = strcspn(p, "/?#");
  if (auth == 0 || auth >= sizeof u->authority) return -1;
  memcpy(u->authority, p, auth);
  u->authority[auth] = '\0';
  const char *colon = strrchr(u->authority, ':');
  size_t hostlen = colon ? (size_t)(colon - u->authority) : auth;
  if (hostlen == 0 || hostlen >= sizeof u->host) return -1;
  memcpy(u->host, u->authority, hostlen);
  u->host[hostlen] = '\0';
  u->port = strcmp(u->scheme, "https") == 0 ? 443 : 80;
  if (colon && colon[1]) {
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port <= 0 || port > 65535) return -1;
    u->port = (int)port;
  }
  u->target = p + auth;
  u->target_len = strcspn(u->target, "#");
  return 0;
}

/*
 * RFC 3986 5.2.4, remove_dot_segments: resolves the "." and ".." segments of
 * in (len bytes; modified) into out, which has room for len + 1 bytes.
 */
static void remove_dot_segments(char *in, size_t len, char *out) {
  size_t i = 0, o = 0;
  while (i < len) {
    size_t rest = len - i;
    const char *s = in + i;
    if (rest >= 3 && memcmp(s, "../", 3) == 0) { /* A */
      i += 3;
    } else if (rest >= 2 && memcmp(s, "./", 2) == 0) {
      i += 2;
    } else if (rest >= 3 && memcmp(s, "/./", 3) == 0) { /* B: "/./" -> "/" */
      i += 2;
    } else if (rest == 2 && memcmp(s, "/.", 2) == 0) { /* B: "/." at the end -> "/" */
      in[++i] = '/';
    } else if ((rest >= 4 && memcmp(s, "/../", 4) == 0) ||
               (rest == 3 && memcmp(s, "/..", 3) == 0)) {
      if (rest == 3) /* C: -> "/", and the last output segment goes */
        in[i += 2] = '/';
      else
        i += 3;
      while (o > 0 && out[o - 1] != '/') o--;
      if (o > 0) o--;
    } else if ((rest == 1 && s[0] == '.') || (rest == 2 && memcmp(s, "..", 2) == 0)) { /* D */
      i = len;
    } else { /* E: the first segment, with its leading '/', moves to the output */
      do out[o++] = in[i++];
      while (i < len && in[i] != '/');
    }
  }
  out[o] = '\0';
}

/*
 * urllib.parse.urljoin(base, link) for an absolute http(s) base: `link`
 * made absolute (RFC 3986 5.2.2).  A link with a scheme of its own is
 * returned as it is.  Returns 0, or -1 when the result does not fit in cap
 * bytes (or no memory).
 */
static int urljoin(const char *base, const char *link, char *out, size_t cap) {
  int n;
  if (link[0] == '\0' || scheme_len(link)) {
    n = snprintf(out, cap, "%s", link[0] ? link : base);
    return n >= 0 && (size_t)n < cap ? 0 : -1;
  }
  size_t bs =
      scheme_len(base); /* base = scheme ":" ["//" authority] path ["?" query] ["#" fragment] */
  const char *bpath = base + bs + 1;
  bool authority = strncmp(bpath, "//", 2) == 0;
  if (authority) bpath += 2 + strcspn(bpath + 2, "/?#");
  size_t bpath_len = strcspn(bpath, "?#");
  size_t bquery_len = strcspn(bpath + bpath_len, "#");

  if (strncmp(link, "//", 2) == 0) { /* a network-path reference */
    n = snprintf(out, cap, "%.*s%s", (int)bs + 1, base, link);
  } else if (link[0] == '#') { /* the same document */
    n = snprintf(out, cap, "%.*s%s", (int)(bpath + bpath_len + bquery_len - base), base, link);
  } else if (link[0] == '?') { /* the same path, another query */
    n = snprintf(out, cap, "%.*s%s", (int)(bpath + bpath_len - base), base, link);
  } else {
    size_t lpath_len = strcspn(link, "?#");
    char *merged = malloc(bpath_len + lpath_len + 2);
    char *path = malloc(bpath_len + lpath_len + 2);
    if (!merged || !path) {
      free(merged);
      free(path);
      return -1;
    }
    size_t m = 0;
    if (link[0] != '/') { /* merge with the directory of the base path */
      size_t dir = bpath_len;
      while (dir > 0 && bpath[dir - 1] != '/') dir--;
      if (authority && bpath_len == 0) merged[m++] = '/';
      memcpy(merged + m, bpath, dir);
      m += dir;
    }
    memcpy(merged + m, link, lpath_len);
    remove_dot_segments(merged, m + lpath_len, path);
    n = snprintf(out, cap, "%.*s%s%s", (int)(bpath - base), base, path, link + lpath_len);
    free(merged);
    free(path);
  }
  return n >= 0 && (size_t)n < cap ? 0 : -1;
}

/* ---- the HTTP client ------------------------------------------------------------- */

typedef struct response {
  int status;             /* resp.status */
  char reason[128];       /* resp.reason */
  char location[MAX_URL]; /* the Location header, for redirects */
  char *body;             /* malloc'd, NUL-terminated */
  size_t len;
} response_t;

/* A failed request: the status (0 = None, no response) and the message, for the log. */
typedef struct fetch_error {
  int status;
  char message[256];
} fetch_error_t;

static asyncio_semaphore_t *connections; /* TCPConnector(limit=100) */
static SSL_CTX *tls_context;             /* for https: ssl.create_default_context([cafile]) */

/* Appends n bytes to the response body, refusing to grow past MAX_BODY. */
static int body_append(response_t *resp, const void *data, size_t n, size_t *cap) {
  if (resp->len + n > MAX_BODY) return -EFBIG;
  if (resp->len + n + 1 > *cap) {
    size_t ncap = *cap ? *cap : 4096;
    while (ncap < resp->len + n + 1) ncap *= 2;
    char *nb = realloc(resp->body, ncap);
    if (!nb) return -ENOMEM;
    resp->body = nb;
    *cap = ncap;
  }
  memcpy(resp->body + resp->len, data, n);
  resp->len += n;
  resp->body[resp->len] = '\0';
  return 0;
}

/* Reads exactly n body bytes (Content-Length, or one chunk) onto the body. */
static int read_body_bytes(asyncio_stream_reader_t *r, response_t *resp, size_t n, size_t *cap) {
  if (resp->len + n > MAX_BODY) return -EFBIG;
  if (resp->len + n + 1 > *cap) {
    char *nb = realloc(resp->body, resp->len + n + 1);
    if (!nb) return -ENOMEM;
    resp->body = nb;
    *cap = resp->len + n + 1;
  }
  int rc = asyncio_stream_readexactly(r, resp->body + resp->len, n);
  if (rc == 0) resp->len += n;
  resp->body[resp->len] = '\0';
  return rc;
}

/* A Transfer-Encoding: chunked body: hex size lines, data, CRLF; a 0 chunk; trailers. */
static int read_chunked(asyncio_stream_reader_t *r, response_t *resp, size_t *cap) {
  const char *line;
  for (;;) {
    ssize_t n = asyncio_stream_readline(r, &line);
    if (n <= 0) return n == 0 ? ASYNCIO_EINCOMPLETEREAD : (int)n;
    char hex[32];
    snprintf(hex, sizeof hex, "%.*s", (int)(n < 31 ? n : 31), line);
    char *end;
    unsigned long long size = strtoull(hex, &end, 16);
    if (end == hex) return -EPROTO;
    if (size == 0) break;
    if (size > MAX_BODY) return -EFBIG;
    int rc = read_body_bytes(r, resp, (size_t)size, cap);
    if (rc < 0) return rc;
    n = asyncio_stream_readline(r, &line); /* the CRLF after the data */
    if (n <= 0) return n == 0 ? ASYNCIO_EINCOMPLETEREAD : (int)n;
  }
  for (;;) { /* trailer fields up to the empty line */
    ssize_t n = asyncio_stream_readline(r, &line);
    if (n < 0) return (int)n;
    if (n == 0 || line[0] == '\n' || line[0] == '\r') return 0;
  }
}

/*
 * One GET, no redirects: the status line, the headers, and the body.
 * Returns 0 with *resp filled in (any status), or an error with nothing to
 * free.
 */
static int http_get(const url_parts_t *u, response_t *resp) {
  memset(resp, 0, sizeof *resp);
  asyncio_stream_reader_t *r;
  asyncio_stream_writer_t *w;
  /* https: TLS, the certificate checked against the host (server_hostname's default) */
  asyncio_connection_options_t tls = {.ssl = tls_context};
  asyncio_stream_options_t opts = {.connection = &tls};
  bool https = strcmp(u->scheme, "https") == 0;
  int rc = asyncio_open_connection(u->host, u->port, https ? &opts : NULL, &r, &w);
  if (rc < 0) return rc;

  char req[MAX_URL + 512];
  int n = snprintf(req, sizeof req,
                   "GET %.*s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: asyncio-c-crawler\r\n"
                   "Accept: */*\r\nConnection: close\r\n\r\n",
                   (int)u->target_len, u->target, u->target_len ? "" : "/", u->authority);
  rc = n > 0 && (size_t)n < sizeof req ? asyncio_stream_write(w, req, (size_t)n) : -E2BIG;
  if (rc == 0) rc = asyncio_stream_drain(w);

  /* "HTTP/1.1 200 OK" */
  const char *line;
  ssize_t len = rc < 0 ? rc : asyncio_stream_readline(r, &line);
  if (len == 0) len = -EPROTO; /* the server closed without answering */
  if (len > 0) {
    char status_line[256];
    snprintf(status_line, sizeof status_line, "%.*s", (int)(len < 255 ? len : 255), line);
    status_line[strcspn(status_line, "\r\n")] = '\0';
    char *sp = strchr(status_line, ' ');
    if (strncmp(status_line, "HTTP/1.", 7) != 0 || !sp || !isdigit((unsigned char)sp[1]))
      len = -EPROTO;
    else {
      resp->status = atoi(sp + 1);
      const char *reason = strchr(sp + 1, ' ');
      snprintf(resp->reason, sizeof resp->reason, "%s", reason ? reason + 1 : "");
    }
  }

  /* The headers that matter here: Content-Length, Transfer-Encoding, Location. */
  long long content_length = -1;
  bool chunked = false;
  while (len > 0) {
    len = asyncio_stream_readline(r, &line);
    if (len == 0) len = -EPROTO;
    if (len < 0 || line[0] == '\n' || line[0] == '\r') break;
    char header[MAX_URL + 64];
    snprintf(header, sizeof header, "%.*s",
             (int)((size_t)len < sizeof header ? len : (ssize_t)sizeof header - 1), line);
    header[strcspn(header, "\r\n")] = '\0';
    char *value = strchr(header, ':');
    if (!value) continue;
    *value++ = '\0';
    while (*value == ' ' || *value == '\t') value++;
    if (strcasecmp(header, "Content-Length") == 0)
      content_length = strtoll(value, NULL, 10);
    else if (strcasecmp(header, "Transfer-Encoding") == 0 && strstr(value, "chunked"))
      chunked = true;
    else if (strcasecmp(header, "Location") == 0)
      snprintf(resp->location, sizeof resp->location, "%s", value);
  }

  /* The body: chunked, Content-Length bytes, or everything up to EOF. */
  size_t cap = 0;
  rc = len < 0 ? (int)len : 0;
  if (rc == 0 && (resp->status == 204 || resp->status == 304 || resp->status / 100 == 1)) {
    /* no body */
  } else if (rc == 0 && chunked) {
    rc = read_chunked(r, resp, &cap);
  } else if (rc == 0 && content_length >= 0) {
    rc = (size_t)content_length > MAX_BODY ? -EFBIG
                                           : read_body_bytes(r, resp, (size_t)content_length, &cap);
  } else if (rc == 0) {
    char buf[16384];
    ssize_t got;
    while ((got = asyncio_stream_read(r, buf, sizeof buf)) > 0 && rc == 0)
      rc = body_append(resp, buf, (size_t)got, &cap);
    if (got < 0 && rc == 0) rc = (int)got;
  }
  if (rc == 0 && !resp->body) rc = body_append(resp, "", 0, &cap);

  asyncio_stream_close(w);
  int wrc = asyncio_stream_wait_closed(w);
  asyncio_stream_reader_free(r);
  asyncio_stream_writer_free(w);
  if (rc == 0 && wrc == -ECANCELED) rc = wrc;
  if (rc < 0) {
    free(resp->body);
    resp->body = NULL;
  }
  return rc;
}

/*
 * async def fetch_html(url, session): GET with redirects and a timeout, then
 * raise_for_status().  Returns 0 with the page in *html (malloc'd) and the
 * URL it came from after redirects in final (MAX_URL bytes: resp.url), or
 * < 0 with *err filled in for the log.
 */
static int fetch_html(const char *url, char **html, char *final, fetch_error_t *err) {
  err->status = 0;
  err->message[0] = '\0';
  int rc = asyncio_semaphore_acquire(connections);
  if (rc < 0) return rc;
  asyncio_timeout_t *timeout;
  rc = asyncio_timeout_enter(&timeout, REQUEST_TIMEOUT);
  if (rc < 0) {
    asyncio_semaphore_release(connections);
    return rc;
  }
  char current[MAX_URL];
  snprintf(current, sizeof current, "%s", url);
  response_t resp = {0};
  for (int redirects = 0;; redirects++) {
    url_parts_t u;
    if (split_url(current, &u) < 0) {
      rc = -EINVAL;
      snprintf(err->message, sizeof err->message, "invalid URL");
      break;
    }
    if (strcmp(u.scheme, "http") != 0 && strcmp(u.scheme, "https") != 0) {
      rc = -EPROTONOSUPPORT;
      snprintf(err->message, sizeof err->message, "%s: not an http or https URL", u.scheme);
      break;
    }
    rc = http_get(&u, &resp);
    if (rc < 0) break;
    bool redirect = resp.status == 301 || resp.status == 302 || resp.status == 303 ||
                    resp.status == 307 || resp.status == 308;
    if (!redirect || !resp.location[0]) break;
    if (redirects == MAX_REDIRECTS) {
      rc = -ELOOP;
      snprintf(err->message, sizeof err->message, "too many redirects");
      break;
    }
    char next[MAX_URL];
    rc = urljoin(current, resp.location, next, sizeof next);
    free(resp.body);
    resp.body = NULL;
    if (rc < 0) {
      rc = -ENAMETOOLONG;
      break;
    }
    memcpy(current, next, sizeof current);
  }
  rc = asyncio_timeout_exit(timeout, rc);
  asyncio_timeout_free(timeout);
  asyncio_semaphore_release(connections);
  if (rc == 0 && resp.status >= 400) { /* resp.raise_for_status() */
    err->status = resp.status;
    snprintf(err->message, sizeof err->message, "%s", resp.reason);
    free(resp.body);
    return -EPROTO;
  }
  if (rc < 0) {
    free(resp.body);
    if (!err->message[0]) snprintf(err->message, sizeof err->message, "%s", asyncio_strerror(rc));
    return rc;
  }
  logmsg("INFO", "Got response [%d] for URL: %s", resp.status, url);
  *html = resp.body;
  memcpy(final, current, MAX_URL);
  return 0;
}

/* ---- parse, write_one, bulk_crawl_and_write ------------------------------------ */

/* The found set: absolute links, without duplicates, in the order found. */
typedef struct link_set {
  char **items;
  size_t n, cap;
} link_set_t;

static int set_add(link_set_t *s, const char *link) {
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->items[i], link) == 0) return 0;
  if (s->n == s->cap) {
    size_t ncap = s->cap ? 2 * s->cap : 16;
    char **ni = realloc(s->items, ncap * sizeof *ni);
    if (!ni) return -ENOMEM;
    s->items = ni;
    s->cap = ncap;
  }
  if (!(s->items[s->n] = strdup(link))) return -ENOMEM;
  s->n++;
  return 0;
}

static void set_free(link_set_t *s) {
  for (size_t i = 0; i < s->n; i++) free(s->items[i]);
  free(s->items);
}

/*
 * async def parse(url, session): the HREFs in the page at url.  A failed
 * fetch is logged and gives an empty set.  Returns 0 or -ECANCELED/-ENOMEM.
 */
static int parse(const char *url, link_set_t *found) {
  char *html = NULL;
  char base[MAX_URL]; /* links are relative to the page's own URL, after redirects */
  fetch_error_t err;
  int rc = fetch_html(url, &html, base, &err);
  if (rc == -ECANCELED) return rc;
  if (rc < 0) {
    char status[16] = "None";
    if (err.status) snprintf(status, sizeof status, "%d", err.status);
    logmsg("ERROR", "HTTP exception for %s [%s]: %s", url, status, err.message);
    return 0;
  }
  /* HREF_RE = re.compile(r'href="(.*?)"'): '.' does not match a newline */
  for (const char *p = html; (p = strstr(p, "href=\"")) != NULL;) {
    p += 6;
    size_t len = strcspn(p, "\"\n");
    if (p[len] != '"') continue;
    char link[MAX_URL], abslink[MAX_URL];
    if (len >= sizeof link) continue;
    memcpy(link, p, len);
    link[len] = '\0';
    p += len + 1;
    if (urljoin(base, link, abslink, sizeof abslink) < 0) {
      logmsg("ERROR", "Error parsing URL: %s", link);
      continue;
    }
    if ((rc = set_add(found, abslink)) < 0) break;
  }
  free(html);
  if (rc == 0) logmsg("INFO", "Found %zu links for %s", found->n, url);
  return rc;
}

/* An append, run on a worker thread; it owns its argument (it may outlive a cancelled task). */
typedef struct append_job {
  const char *path;
  size_t len;
  char data[];
} append_job_t;

static int append_in_thread(void *arg, void **value) {
  append_job_t *job = arg;
  (void)value;
  int rc = 0;
  int fd = open(job->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) rc = -errno;
  for (size_t off = 0; rc == 0 && off < job->len;) {
    ssize_t n = write(fd, job->data + off, job->len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      rc = -errno;
    else
      off += (size_t)n;
  }
  if (fd >= 0 && close(fd) < 0 && rc == 0) rc = -errno;
  free(job);
  return rc;
}

typedef struct page {
  const char *file;
  const char *url;
} page_t;

/* async def write_one(file, url, **kwargs): write the found HREFs from url to file. */
static int write_one(void *arg) {
  page_t *pg = arg;
  link_set_t res = {0};
  int rc = parse(pg->url, &res);
  if (rc < 0 || res.n == 0) {
    set_free(&res);
    return rc;
  }
  size_t total = 0;
  for (size_t i = 0; i < res.n; i++) total += strlen(pg->url) + strlen(res.items[i]) + 2;
  append_job_t *job = malloc(sizeof *job + total + 1);
  if (!job) {
    set_free(&res);
    return -ENOMEM;
  }
  job->path = pg->file;
  job->len = 0;
  for (size_t i = 0; i < res.n; i++)
    job->len += (size_t)sprintf(job->data + job->len, "%s\t%s\n", pg->url, res.items[i]);
  set_free(&res);
  rc = asyncio_to_thread(append_in_thread, job, NULL); /* async with aiofiles.open(file, "a") */
  if (rc < 0) {
    if (rc != -ECANCELED)
      logmsg("ERROR", "Cannot append to %s: %s", pg->file, asyncio_strerror(rc));
    return rc;
  }
  logmsg("INFO", "Wrote results for source URL: %s", pg->url);
  return 0;
}

typedef struct crawl {
  const char *file;
  char **urls;
  size_t n;
} crawl_t;

/* async def bulk_crawl_and_write(file, urls): crawl and write concurrently. */
static int bulk_crawl_and_write(void *arg) {
  crawl_t *c = arg;
  int rc = asyncio_semaphore_new(&connections, MAX_CONNECTIONS); /* async with ClientSession() */
  if (rc < 0) return rc;
  page_t *pages = calloc(c->n ? c->n : 1, sizeof *pages);
  asyncio_coro_call_t *tasks = calloc(c->n ? c->n : 1, sizeof *tasks);
  if (!pages || !tasks) {
    rc = -ENOMEM;
  } else {
    for (size_t i = 0; i < c->n; i++) {
      pages[i] = (page_t){c->file, c->urls[i]};
      tasks[i] = (asyncio_coro_call_t){write_one, &pages[i]};
    }
    asyncio_future_t *g;
    rc = asyncio_gather_coros(&g, tasks, c->n, NULL);
    if (rc == 0) {
      rc = asyncio_await(g, NULL);
      /*
       * Cancelled (Ctrl-C): the gather cancelled the children, but they
       * unwind later and use pages[] and the semaphore: wait for them.
       */
      for (ssize_t i = 0; rc < 0 && i < asyncio_gather_size(g); i++) {
        asyncio_future_t *child = asyncio_gather_child(g, (size_t)i);
        while (!asyncio_future_done(child)) asyncio_await(child, NULL);
      }
      asyncio_future_free(g);
    }
  }
  free(tasks);
  free(pages);
  asyncio_semaphore_free(connections);
  return rc;
}

/* ---- main ---------------------------------------------------------------------- */

/* urls = set(map(str.strip, infile)): stripped, blank lines and duplicates left out. */
static int add_url(crawl_t *c, const char *s, size_t len) {
  while (len && isspace((unsigned char)*s)) s++, len--;
  while (len && isspace((unsigned char)s[len - 1])) len--;
  if (len == 0) return 0;
  for (size_t i = 0; i < c->n; i++)
    if (strlen(c->urls[i]) == len && strncmp(c->urls[i], s, len) == 0) return 0;
  char **nu = realloc(c->urls, (c->n + 1) * sizeof *nu);
  if (!nu) return -1;
  c->urls = nu;
  if (!(c->urls[c->n] = strndup(s, len))) return -1;
  c->n++;
  return 0;
}

int main(int argc, char **argv) {
  const char *infile = NULL, *outfile = "foundurls.txt", *cafile = NULL;
  crawl_t c = {0};
  int status = 0;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "-i") == 0 && i + 1 < argc)
      infile = argv[++i];
    else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
      outfile = argv[++i];
    else if (strcmp(argv[i], "--cafile") == 0 && i + 1 < argc)
      cafile = argv[++i];
    else {
      fprintf(stderr,
              "usage: crawler [-i urls.txt] [-o foundurls.txt] [--cafile FILE] [URL...]\n");
      return 2;
    }
  }
  if (!infile && i == argc) infile = "urls.txt";
  for (; i < argc; i++)
    if (add_url(&c, argv[i], strlen(argv[i])) < 0) status = 1;
  if (infile) {
    FILE *f = fopen(infile, "r");
    if (!f) {
      perror(infile);
      status = 2;
    } else {
      char line[MAX_URL];
      while (status == 0 && fgets(line, sizeof line, f))
        if (add_url(&c, line, strlen(line)) < 0) status = 1;
      fclose(f);
    }
  }
  if (status == 0) { /* the session's context: redirects may lead to https, so always one */
    int rc = asyncio_ssl_create_default_context(ASYNCIO_SSL_PURPOSE_SERVER_AUTH, cafile, NULL,
                                                &tls_context);
    if (rc < 0) {
      fprintf(stderr, "crawler: cannot make the TLS context%s%s: %s\n",
              cafile ? " with CA file " : "", cafile ? cafile : "", asyncio_strerror(rc));
      status = 2;
    }
  }
  FILE *out = status ? NULL : fopen(outfile, "w");
  if (!status && (!out || fputs("source_url\tparsed_url\n", out) < 0 || fclose(out) != 0)) {
    perror(outfile);
    status = 2;
  }
  if (status == 0) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    c.file = outfile;
    int rc = asyncio_run(bulk_crawl_and_write, &c, NULL);
    if (rc < 0) {
      fprintf(stderr, "crawler: %s\n", asyncio_strerror(rc));
      status = 1;
    }
  }
  SSL_CTX_free(tls_context);
  for (size_t k = 0; k < c.n; k++) free(c.urls[k]);
  free(c.urls);
  return status;
}
