/*
 * asyncio/sslproto.h - TLS over stream socket transports (Python:
 * asyncio.sslproto SSLProtocol / _SSLProtocolTransport, loop.start_tls,
 * ssl.create_default_context).
 *
 * TLS is OpenSSL's, driven through two memory BIOs as CPython's sslproto
 * drives ssl.MemoryBIO: the encrypted bytes travel on an ordinary socket
 * transport (or, after start_tls on a TLS connection, on its app
 * transport), and the application gets a transport of its own (the "app
 * transport") that speaks plaintext.  The contexts are OpenSSL's SSL_CTX:
 * make one with asyncio_ssl_create_default_context() or with OpenSSL itself
 * (include <openssl/ssl.h>; the pointers below are OpenSSL's SSL_CTX and SSL
 * types, declared here without OpenSSL's headers).  The caller keeps its
 * reference to a context; each connection takes one of its own.
 *
 * Where TLS is asked for (the ssl fields of asyncio_connection_options_t and
 * asyncio_server_options_t, and the calls below):
 *   - the handshake runs first; the protocol factory is called once it
 *     succeeded, then connection_made, and create_connection /
 *     open_connection return after that (Python calls the factory before
 *     the handshake; here a failed handshake leaves no protocol instance
 *     that would never hear of its connection).
 *     A failed handshake ends the connection without any protocol callback:
 *     the creating call returns ASYNCIO_ESSLCERTVERIFY (the peer's
 *     certificate did not verify, or did not match server_hostname:
 *     ssl.SSLCertVerificationError; the options' ssl_verify_code gets
 *     OpenSSL's X509_V_ERR_* reason, its verify_code), ASYNCIO_ESSL (any
 *     other TLS error: ssl.SSLError), -ECONNRESET (the peer closed the
 *     connection during the handshake), or -ECONNABORTED (it took longer
 *     than ssl_handshake_timeout, 60 s by default); a server drops the
 *     connection (reported on stderr in debug mode only, as Python logs it);
 *   - close() sends TLS close_notify after the buffered data, waits (at most
 *     ssl_shutdown_timeout, 30 s by default; then connection_lost gets
 *     -ETIMEDOUT) for the peer's, then closes the socket; a peer's
 *     close_notify calls eof_received (its return value is ignored: TLS
 *     has no half-close), then the same shutdown runs;
 *   - the app transport takes every call of asyncio/transports.h, with
 *     these differences, all as Python's: write_eof is -EOPNOTSUPP and
 *     can_write_eof false; the write buffer counts the plaintext not yet
 *     encrypted plus the ciphertext not yet handed to the socket transport,
 *     and its default water marks are 512 KiB / 128 KiB
 *     (FLOW_CONTROL_HIGH_WATER_SSL_WRITE); set_write_buffer_limits may call
 *     pause_writing or resume_writing at once; pause_reading stops
 *     delivering plaintext (the socket keeps being read until 256 KiB of
 *     ciphertext are waiting, then it is paused too, until they are down
 *     to 64 KiB); get_fd, get_peername and get_sockname answer for the
 *     socket underneath; loop.sendfile takes its fallback path (read and
 *     write);
 *   - only the app transport takes the read-buffer calls of Python's
 *     _SSLProtocolTransport (asyncio_transport_get_read_buffer_size,
 *     _get_read_buffer_limits, _set_read_buffer_limits in
 *     asyncio/transports.h), which move those 256 KiB / 64 KiB marks;
 *   - a server's close_clients / abort_clients act on the socket transports
 *     underneath (no close_notify), as Python's do.
 */
#ifndef ASYNCIO_SSLPROTO_H
#define ASYNCIO_SSLPROTO_H

#include <stdbool.h>

#include "events.h"
#include "transports.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ssl_ctx_st; /* OpenSSL's SSL_CTX */
struct ssl_st;     /* OpenSSL's SSL */

/* constants.SSL_HANDSHAKE_TIMEOUT / SSL_SHUTDOWN_TIMEOUT, in seconds. */
#define ASYNCIO_SSL_HANDSHAKE_TIMEOUT 60.0
#define ASYNCIO_SSL_SHUTDOWN_TIMEOUT 30.0

/* ssl.Purpose: what the context's peer is authenticated as. */
enum {
  ASYNCIO_SSL_PURPOSE_SERVER_AUTH = 0, /* a client's context: it checks servers */
  ASYNCIO_SSL_PURPOSE_CLIENT_AUTH = 1, /* a server's context */
};

/*
 * ssl.create_default_context(purpose, cafile=, capath=): a new SSL_CTX with
 * TLS 1.2 as the minimum.  For SERVER_AUTH (clients) it verifies the peer's
 * certificate (SSL_VERIFY_PEER) against cafile / capath when given, else
 * against the system's default locations, and the connection checks the
 * name (see server_hostname below).  For CLIENT_AUTH (servers) it asks for
 * no client certificate; load the server's own with
 * SSL_CTX_use_certificate_chain_file / SSL_CTX_use_PrivateKey_file.
 * cafile and capath may be NULL.  The caller owns *out (SSL_CTX_free).
 * Returns 0, -EINVAL (out NULL, an unknown purpose), ASYNCIO_ESSL (OpenSSL
 * failed, or cafile / capath could not be loaded: ssl.SSLError /
 * FileNotFoundError).  Thread-safe.
 */
int asyncio_ssl_create_default_context(int purpose, const char *cafile, const char *capath,
                                       struct ssl_ctx_st **out);

/* Options for start_tls; NULL = Python's defaults (client side). */
typedef struct asyncio_start_tls_options {
  /* server_side=: this end is the TLS server. */
  bool server_side;
  /*
   * server_hostname= (client side only): the name sent as SNI and, when the
   * context verifies its peer (SSL_VERIFY_PEER), the name (or IP address)
   * the certificate must match.  NULL or "" = neither (Python: the
   * context's check_hostname must then be off).
   */
  const char *server_hostname;
  /* Seconds; 0 = the defaults above; negative or NaN: -EINVAL. */
  double ssl_handshake_timeout;
  double ssl_shutdown_timeout;
  /*
   * Optional: 0 (X509_V_OK) when the call starts; OpenSSL's X509_V_ERR_*
   * reason when it returns ASYNCIO_ESSLCERTVERIFY, as the field of the same
   * name in asyncio_connection_options_t (server_side: the client
   * certificate, when the context asks for one).
   */
  long *ssl_verify_code;
} asyncio_start_tls_options_t;

/*
 * Upgrades an open connection to TLS (loop.start_tls(transport, protocol,
 * sslcontext, *, server_side, server_hostname, ssl_handshake_timeout,
 * ssl_shutdown_timeout)): the transport's protocol is kept as the app
 * protocol (it gets no second connection_made), the transport itself now
 * carries the TLS records and must not be used by the caller any more, and
 * *out gets the app transport to use instead.  Suspends until the
 * handshake is done (a cancellation point: cancelled, or on any error, the
 * transport is closed).  The protocol's connection_lost comes from the app transport,
 * also when the connection ends during the handshake (Python skips it
 * there; the protocol has seen connection_made, so it is owed one).
 * The transport may itself be a TLS app transport whose handshake is done
 * (TLS in TLS, as Python 3.11+ allows: HTTPS through an HTTPS proxy): the
 * new layer's records then travel as that connection's data, and closing
 * the new transport sends its close_notify first, then the outer one's.
 * Returns 0; -EINVAL (NULL loop, transport, ctx or out; another loop's,
 * a closing or a lost transport; one after write_eof, where Python waits
 * for the handshake timeout; a transport that is neither a stream socket
 * nor a TLS app transport past its handshake: Python's TypeError
 * 'transport ... is not supported by start_tls()'; server_hostname with
 * server_side, which Python ignores: the sides are mixed up; a bad
 * timeout); -EBUSY (loop.sendfile runs on the transport);
 * ASYNCIO_ENOTASK; ASYNCIO_EWRONGTHREAD; ASYNCIO_ECLOSED; -ECANCELED;
 * -ENOMEM; the handshake errors above.
 */
int asyncio_loop_start_tls(asyncio_loop_t *loop, asyncio_transport_t *transport,
                           struct ssl_ctx_st *ctx, const asyncio_start_tls_options_t *options,
                           asyncio_transport_t **out);

/*
 * get_extra_info('ssl_object'): the connection's OpenSSL object, for
 * SSL_get0_peer_certificate ('peercert'), SSL_get_current_cipher
 * ('cipher'), SSL_get_version, ... .  NULL for a transport without TLS, and
 * until the handshake is done.  Borrowed: valid until connection_lost.
 */
struct ssl_st *asyncio_transport_get_ssl_object(const asyncio_transport_t *transport);

/* get_extra_info('sslcontext'): the context, or NULL for a transport without TLS. Borrowed. */
struct ssl_ctx_st *asyncio_transport_get_sslcontext(const asyncio_transport_t *transport);

#ifdef __cplusplus
}
#endif
#endif
