/*
 * echo_main.h - the command line both of our echo servers share
 * (echo_protocol.c, echo_streams.c):
 *
 *   NAME [--tls CERT.pem KEY.pem]
 *
 * runs main_coro(ctx) under asyncio_run, ctx being NULL for plain TCP or
 * the server context of the TLS echo benchmark (bench/run_tls.sh).
 * Include once, after defining NAME.
 */
#ifndef ECHO_MAIN_H
#define ECHO_MAIN_H

#include <asyncio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

/* As Python's ssl.create_default_context(Purpose.CLIENT_AUTH) + load_cert_chain. */
static SSL_CTX *echo_tls_context(const char *cert, const char *key) {
  SSL_CTX *ctx;
  int rc = asyncio_ssl_create_default_context(ASYNCIO_SSL_PURPOSE_CLIENT_AUTH, NULL, NULL, &ctx);
  if (rc < 0) {
    fprintf(stderr, "%s: %s\n", NAME, asyncio_strerror(rc));
    return NULL;
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
    ERR_print_errors_fp(stderr);
    SSL_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

static int echo_main(int argc, char **argv, asyncio_coro_fn main_coro) {
  SSL_CTX *ctx = NULL;
  if (argc == 4 && strcmp(argv[1], "--tls") == 0) {
    if (!(ctx = echo_tls_context(argv[2], argv[3]))) return 1;
  } else if (argc != 1) {
    fprintf(stderr, "usage: %s [--tls CERT.pem KEY.pem]\n", NAME);
    return 2;
  }
  int rc = asyncio_run(main_coro, ctx, NULL);
  SSL_CTX_free(ctx);
  if (rc < 0) {
    fprintf(stderr, "%s: %s\n", NAME, asyncio_strerror(rc));
    return 1;
  }
  return 0;
}

#endif
