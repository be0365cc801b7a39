/*
 * model_rng.h - the fixed-seed PRNG of the model tests (test_stream_model.c,
 * test_write_model.c): the same seed plays the same script in every build,
 * whatever libc's rand() does.
 */
#ifndef ASYNCIO_TEST_MODEL_RNG_H
#define ASYNCIO_TEST_MODEL_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct rng {
  uint64_t s; /* never 0 */
} rng_t;

/* xorshift64*: the high half. */
static inline uint32_t rnd(rng_t *r) {
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  return (uint32_t)((r->s * 2685821657736338717ull) >> 32);
}

static inline size_t below(rng_t *r, size_t n) { return n ? rnd(r) % n : 0; }

#endif
