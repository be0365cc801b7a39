/*
 * stream_helpers.h - shared by the stream tests (test_streams.c,
 * test_stream_args.c): a stream over one end of a socketpair whose other
 * end the test drives with raw reads and writes.
 */
#ifndef ASYNCIO_TEST_STREAM_HELPERS_H
#define ASYNCIO_TEST_STREAM_HELPERS_H

#include "net_helpers.h"

#include <asyncio/streams.h>

typedef asyncio_stream_reader_t reader_t;
typedef asyncio_stream_writer_t writer_t;

/* A stream over one end of a socketpair; the test writes raw bytes into *raw. */
static inline int pair_open(size_t limit, reader_t **r, writer_t **w, int *raw) {
  *raw = -1; /* a failed open leaves nothing to use (the handles are NULL) */
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
  asyncio_connection_options_t co = {.sock = sv[0], .use_sock = true};
  asyncio_stream_options_t o = {.limit = limit, .connection = &co};
  int rc = asyncio_open_connection(NULL, 0, &o, r, w);
  if (rc < 0) {
    close(sv[0]);
    close(sv[1]);
    return rc;
  }
  *raw = sv[1];
  return 0;
}

static inline void raw_write(int fd, const char *s) {
  size_t n = strlen(s);
  CHECK(write(fd, s, n) == (ssize_t)n);
}

static inline void pair_close(reader_t *r, writer_t *w, int raw) {
  CHECK_RC(asyncio_stream_reader_free(r), 0);
  CHECK_RC(asyncio_stream_writer_free(w), 0);
  if (raw >= 0) close(raw);
}

#endif
