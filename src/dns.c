/*
 * dns.c - name resolution off the loop (Python: loop.getaddrinfo and
 * loop.getnameinfo in asyncio.base_events, which call socket.getaddrinfo /
 * socket.getnameinfo through run_in_executor(None, ...)).
 *
 * Why a thread pool and not c-ares: getaddrinfo(3) is the resolver the rest
 * of the system uses -- nsswitch.conf, /etc/hosts, mDNS/LDAP/systemd-resolved
 * modules, AI_ADDRCONFIG, IDN -- and c-ares reimplements only the DNS part of
 * it, so names that resolve for every other program would fail here.  c-ares
 * would also be a new build dependency and a second set of sockets on the
 * loop.  Python makes the same choice.  The cost is a thread per concurrent
 * lookup (bounded by the executor) and lookups that cannot be interrupted: a
 * cancelled caller returns at once and the worker's answer is freed when it
 * arrives.
 *
 * Ownership: each request copies its arguments into one allocation, because
 * the caller may return (cancelled) while the worker still reads them.  The
 * request is freed by the caller when the future delivered its result, and by
 * the abandon hook otherwise (cancelled, dropped, or the loop closed).
 */
#include <netdb.h>
#include <stdlib.h>

#include "internal.h"

/* EAI_* to library codes; EAI_SYSTEM carries errno. */
static int gai_code(int e, int saved_errno) {
  switch (e) {
  case 0:
    return 0;
  case EAI_NONAME:
    return ASYNCIO_EGAI_NONAME;
  case EAI_AGAIN:
    return ASYNCIO_EGAI_AGAIN;
  case EAI_FAIL:
    return ASYNCIO_EGAI_FAIL;
  case EAI_SERVICE:
    return ASYNCIO_EGAI_SERVICE;
  case EAI_FAMILY:
    return ASYNCIO_EGAI_FAMILY;
  case EAI_SOCKTYPE:
    return ASYNCIO_EGAI_SOCKTYPE;
  case EAI_BADFLAGS:
    return ASYNCIO_EGAI_BADFLAGS;
  case EAI_OVERFLOW:
    return ASYNCIO_EGAI_OVERFLOW;
#ifdef EAI_NODATA
  case EAI_NODATA:
    return ASYNCIO_EGAI_NODATA;
#endif
#ifdef EAI_ADDRFAMILY
  case EAI_ADDRFAMILY:
    return ASYNCIO_EGAI_ADDRFAMILY;
#endif
  case EAI_MEMORY:
    return -ENOMEM;
  case EAI_SYSTEM:
    return saved_errno > 0 ? -saved_errno : ASYNCIO_EGAI;
  default:
    return ASYNCIO_EGAI;
  }
}

/* ---- getaddrinfo ------------------------------------------------------------ */

typedef struct gai_req {
  size_t size;             /* of this allocation */
  char *host, *service;    /* into the tail, or NULL */
  struct addrinfo hints; /* always passed: see asyncio_getaddrinfo */
  struct addrinfo *res;
} gai_req_t;

static int gai_work(void *arg, void **value) {
  gai_req_t *r = arg;
  errno = 0;
  int e = getaddrinfo(r->host, r->service, &r->hints, &r->res);
  int rc = gai_code(e, errno);
  if (rc) r->res = NULL;
  *value = r;
  return rc;
}

static void gai_free_req(gai_req_t *r) {
  if (r->res) freeaddrinfo(r->res);
  asyncio__free(r, r->size);
}

static void gai_abandon(void *arg, int rc, void *value) {
  (void)rc;
  (void)value;
  gai_free_req(arg);
}

ASYNCIO_API int asyncio_getaddrinfo(const char *host, const char *service,
                                    const struct addrinfo *hints, struct addrinfo **res) {
  if (res) *res = NULL;
  if (!res || (!host && !service)) return -EINVAL;
  asyncio_loop_t *loop = asyncio__running_loop;
  if (!loop || !loop->current) return ASYNCIO_ENOTASK;
  size_t hl = host ? strlen(host) + 1 : 0, sl = service ? strlen(service) + 1 : 0;
  size_t size = sizeof(gai_req_t) + hl + sl;
  gai_req_t *r = asyncio__calloc(size);
  if (!r) return -ENOMEM;
  r->size = size;
  char *tail = (char *)(r + 1);
  if (host) {
    r->host = memcpy(tail, host, hl);
    tail += hl;
  }
  if (service) r->service = memcpy(tail, service, sl);
  /*
   * NULL hints are Python's defaults: family, type, proto and flags 0, as
   * socket.getaddrinfo always passes them.  getaddrinfo(3) itself reads NULL
   * hints as flags AI_V4MAPPED | AI_ADDRCONFIG, which drops a family that
   * only loopback has, so the zeroed struct is passed instead.
   */
  if (hints) {
    /* Only the fields getaddrinfo(3) reads from hints. */
    r->hints.ai_flags = hints->ai_flags;
    r->hints.ai_family = hints->ai_family;
    r->hints.ai_socktype = hints->ai_socktype;
    r->hints.ai_protocol = hints->ai_protocol;
  }
  asyncio_future_t *f;
  int rc = asyncio__run_in_executor(loop, NULL, gai_work, r, gai_abandon, &f);
  if (rc) {
    asyncio__free(r, size);
    return rc;
  }
  /* Delivered (result or error): the request is ours; otherwise the abandon
   * hook frees it when the worker is done with it. */
  int delivered = 0;
  rc = asyncio__await_job(f, NULL, &delivered);
  if (delivered) {
    if (rc >= 0) {
      *res = r->res;
      r->res = NULL;
    }
    gai_free_req(r);
  }
  return rc < 0 ? rc : 0;
}

ASYNCIO_API void asyncio_freeaddrinfo(struct addrinfo *res) {
  if (res) freeaddrinfo(res);
}

/* ---- getnameinfo --------------------------------------------------------------- */

typedef struct gni_req {
  struct sockaddr_storage addr;
  socklen_t addrlen;
  int flags;
  int want_host, want_serv;
  char host[NI_MAXHOST];
  char serv[NI_MAXSERV];
} gni_req_t;

static int gni_work(void *arg, void **value) {
  gni_req_t *r = arg;
  errno = 0;
  int e = getnameinfo((struct sockaddr *)&r->addr, r->addrlen, r->want_host ? r->host : NULL,
                      r->want_host ? sizeof r->host : 0, r->want_serv ? r->serv : NULL,
                      r->want_serv ? sizeof r->serv : 0, r->flags);
  *value = r;
  return gai_code(e, errno);
}

static void gni_abandon(void *arg, int rc, void *value) {
  (void)rc;
  (void)value;
  asyncio__free(arg, sizeof(gni_req_t));
}

static int copy_out(char *dst, size_t cap, const char *src) {
  size_t n = strlen(src) + 1;
  if (n > cap) return ASYNCIO_EGAI_OVERFLOW;
  memcpy(dst, src, n);
  return 0;
}

ASYNCIO_API int asyncio_getnameinfo(const struct sockaddr *addr, socklen_t addrlen, char *host,
                                    size_t hostlen, char *serv, size_t servlen, int flags) {
  if (!addr || addrlen == 0 || addrlen > sizeof(struct sockaddr_storage)) return -EINVAL;
  int want_host = host && hostlen, want_serv = serv && servlen;
  if (!want_host && !want_serv) return -EINVAL;
  asyncio_loop_t *loop = asyncio__running_loop;
  if (!loop || !loop->current) return ASYNCIO_ENOTASK;
  gni_req_t *r = asyncio__calloc(sizeof *r);
  if (!r) return -ENOMEM;
  memcpy(&r->addr, addr, addrlen);
  r->addrlen = addrlen;
  r->flags = flags;
  r->want_host = want_host;
  r->want_serv = want_serv;
  asyncio_future_t *f;
  int rc = asyncio__run_in_executor(loop, NULL, gni_work, r, gni_abandon, &f);
  if (rc) {
    asyncio__free(r, sizeof *r);
    return rc;
  }
  int delivered = 0;
  rc = asyncio__await_job(f, NULL, &delivered);
  if (!delivered) return rc;
  if (rc >= 0) {
    /* Both checked before either is written: outputs change only on success. */
    if ((want_host && strlen(r->host) + 1 > hostlen) ||
        (want_serv && strlen(r->serv) + 1 > servlen)) {
      rc = ASYNCIO_EGAI_OVERFLOW;
    } else {
      if (want_host) copy_out(host, hostlen, r->host);
      if (want_serv) copy_out(serv, servlen, r->serv);
      rc = 0;
    }
  }
  asyncio__free(r, sizeof *r);
  return rc;
}
