/*
 * tls_helpers.h - certificates and contexts for the TLS tests, made in the
 * test process with OpenSSL (no files are shipped): a CA, a server
 * certificate it signs for "localhost", 127.0.0.1 and ::1, and a second,
 * unrelated CA whose trust makes verification fail.  tls_files() also
 * writes them as PEM files into a fresh temporary directory, for the
 * openssl s_server / s_client peers.
 */
#ifndef ASYNCIO_TEST_TLS_HELPERS_H
#define ASYNCIO_TEST_TLS_HELPERS_H

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct tls_pki {
  EVP_PKEY *ca_key, *srv_key, *other_key;
  X509 *ca, *srv, *other;
  char dir[64];                   /* "" until tls_files() */
  char ca_pem[96], cert_pem[96], key_pem[96], other_pem[96];
} tls_pki_t;

static inline EVP_PKEY *tls_keygen(void) { return EVP_EC_gen("P-256"); }

static inline void tls_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
  X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  if (ex) {
    X509_add_ext(cert, ex, -1);
    X509_EXTENSION_free(ex);
  }
}

/* A certificate for key, named cn, signed by issuer/issuer_key (itself if NULL). */
static inline X509 *tls_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
                      long serial, int ca) {
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 30);
  X509_set_pubkey(x, key);
  X509_NAME *name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
  if (ca) {
    tls_ext(x, issuer ? issuer : x, NID_basic_constraints, "critical,CA:TRUE");
    tls_ext(x, issuer ? issuer : x, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    tls_ext(x, issuer, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1");
    tls_ext(x, issuer, NID_ext_key_usage, "serverAuth,clientAuth");
  }
  X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256());
  return x;
}

static inline void tls_pki_init(tls_pki_t *p) {
  memset(p, 0, sizeof *p);
  p->ca_key = tls_keygen();
  p->srv_key = tls_keygen();
  p->other_key = tls_keygen();
  p->ca = tls_cert(p->ca_key, "asyncio test CA", NULL, NULL, 1, 1);
  p->srv = tls_cert(p->srv_key, "localhost", p->ca, p->ca_key, 2, 0);
  p->other = tls_cert(p->other_key, "another CA", NULL, NULL, 3, 1);
}

static inline void tls_write_pem(const char *path, X509 *x, EVP_PKEY *k) {
  FILE *f = fopen(path, "w");
  if (!f) return;
  if (x) PEM_write_X509(f, x);
  if (k) PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
  fclose(f);
}

/* The PEM files, in a temporary directory that tls_pki_free removes. */
static inline int tls_files(tls_pki_t *p) {
  strcpy(p->dir, "/tmp/asyncio-tls-XXXXXX");
  if (!mkdtemp(p->dir)) return -1;
  snprintf(p->ca_pem, sizeof p->ca_pem, "%s/ca.pem", p->dir);
  snprintf(p->cert_pem, sizeof p->cert_pem, "%s/cert.pem", p->dir);
  snprintf(p->key_pem, sizeof p->key_pem, "%s/key.pem", p->dir);
  snprintf(p->other_pem, sizeof p->other_pem, "%s/other.pem", p->dir);
  tls_write_pem(p->ca_pem, p->ca, NULL);
  tls_write_pem(p->cert_pem, p->srv, NULL);
  tls_write_pem(p->key_pem, NULL, p->srv_key);
  tls_write_pem(p->other_pem, p->other, NULL);
  return 0;
}

static inline void tls_pki_free(tls_pki_t *p) {
  if (p->dir[0]) {
    unlink(p->ca_pem);
    unlink(p->cert_pem);
    unlink(p->key_pem);
    unlink(p->other_pem);
    rmdir(p->dir);
  }
  X509_free(p->ca);
  X509_free(p->srv);
  X509_free(p->other);
  EVP_PKEY_free(p->ca_key);
  EVP_PKEY_free(p->srv_key);
  EVP_PKEY_free(p->other_key);
  memset(p, 0, sizeof *p);
}

/* A server context with the server certificate (and the CA as its chain). */
static inline SSL_CTX *tls_server_ctx(tls_pki_t *p) {
  SSL_CTX *ctx = NULL;
  if (asyncio_ssl_create_default_context(ASYNCIO_SSL_PURPOSE_CLIENT_AUTH, NULL, NULL, &ctx) < 0)
    return NULL;
  SSL_CTX_use_certificate(ctx, p->srv);
  SSL_CTX_use_PrivateKey(ctx, p->srv_key);
  return ctx;
}

/* A client context that trusts the test CA (or, with wrong_ca, only the other one). */
static inline SSL_CTX *tls_client_ctx(tls_pki_t *p, int wrong_ca) {
  SSL_CTX *ctx = NULL;
  if (asyncio_ssl_create_default_context(ASYNCIO_SSL_PURPOSE_SERVER_AUTH, NULL, NULL, &ctx) < 0)
    return NULL;
  X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), wrong_ca ? p->other : p->ca);
  return ctx;
}

#endif
