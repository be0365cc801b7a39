/*
 * asyncio/dns.h - name resolution (Python: loop.getaddrinfo(),
 * loop.getnameinfo() in asyncio.base_events, which run socket.getaddrinfo /
 * socket.getnameinfo in the default executor).
 *
 * The C library's resolver blocks, so each call runs it on the loop's
 * default executor (asyncio/threads.h) and suspends the calling task until a
 * worker thread has the answer: the loop never blocks on DNS.
 *
 * Errors: getaddrinfo(3)'s EAI_* codes become library codes (socket.gaierror
 * in Python): ASYNCIO_EGAI_NONAME, _AGAIN, _FAIL, _SERVICE, _FAMILY,
 * _SOCKTYPE, _BADFLAGS, _NODATA, _ADDRFAMILY, _OVERFLOW, and ASYNCIO_EGAI for
 * any other; EAI_MEMORY is -ENOMEM and EAI_SYSTEM is the negative errno the
 * resolver left.  asyncio_strerror() explains each one.
 *
 * Cancellation: both calls are suspension points.  Cancelling the calling
 * task makes the call return -ECANCELED at once; the worker thread cannot be
 * interrupted, so it finishes the lookup and its result is freed when it
 * arrives (the loop keeps running meanwhile; closing the loop waits for it).
 */
#ifndef ASYNCIO_DNS_H
#define ASYNCIO_DNS_H

#include <netdb.h>
#include <stddef.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Resolves host and/or service (loop.getaddrinfo(host, port, family=,
 * type=, proto=, flags=)).  Suspends the calling task while a worker thread
 * runs getaddrinfo(3); never blocks the loop.  host or service may be NULL
 * (not both: -EINVAL, where Python's getaddrinfo(None, None) raises gaierror
 * EAI_NONAME); hints may be NULL: Python's defaults, family, type, proto
 * and flags all 0 (not getaddrinfo(3)'s AI_V4MAPPED | AI_ADDRCONFIG for NULL
 * hints).  Only ai_flags, ai_family, ai_socktype and ai_protocol are read
 * from hints.  host is passed as it is: Python first encodes a str host
 * with the "idna" codec (IDNA 2003); for a non-ASCII name pass its A-label
 * (xn--...) or set AI_IDN.
 * Returns 0 and stores the list in *res, which the caller owns and frees
 * with asyncio_freeaddrinfo(); on error *res is NULL.  Errors: -EINVAL
 * (res NULL, or both host and service NULL), ASYNCIO_ENOTASK (not called
 * from a task), -ECANCELED, -ENOMEM, ASYNCIO_EGAI_* (see above), a negative
 * errno for EAI_SYSTEM, ASYNCIO_ECLOSED if the executor was shut down,
 * -EAGAIN if it could start no worker thread.
 */
int asyncio_getaddrinfo(const char *host, const char *service, const struct addrinfo *hints,
                        struct addrinfo **res);

/* Frees a list returned by asyncio_getaddrinfo() (freeaddrinfo(3)).  NULL-safe. */
void asyncio_freeaddrinfo(struct addrinfo *res);

/*
 * Translates a socket address to a host and service name
 * (loop.getnameinfo(sockaddr, flags)).  Suspends the calling task while a
 * worker thread runs getnameinfo(3).  host/hostlen and serv/servlen are the
 * caller's buffers (either pair may be NULL/0, not both); they are written
 * only on success (NUL-terminated).  flags are getnameinfo's NI_*.
 * Returns 0, or errors as asyncio_getaddrinfo() (ASYNCIO_EGAI_OVERFLOW when
 * a buffer is too small; -EINVAL for a NULL addr, an addrlen of 0 or
 * above sizeof(struct sockaddr_storage), or no buffer with room: neither
 * host with hostlen > 0 nor serv with servlen > 0; an addrlen too short
 * for its family is the resolver's ASYNCIO_EGAI_FAMILY).
 */
int asyncio_getnameinfo(const struct sockaddr *addr, socklen_t addrlen, char *host,
                        size_t hostlen, char *serv, size_t servlen, int flags);

#ifdef __cplusplus
}
#endif
#endif
