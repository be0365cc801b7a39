/*
 * pyrandom.h - the generator behind Python's `random` module, for the
 * examples that port programs calling random.seed() and random.randint().
 *
 * Python's random is MT19937 seeded through init_by_array() with the 32-bit
 * words of the seed; randint(a, b) draws the bit length of (b - a + 1) from
 * the top of one 32-bit output and rejects values out of range.  Reproducing
 * that here makes a port print the very numbers its original prints for the
 * same seed, so the transcripts can be compared line for line.
 *
 * Not for cryptography; one generator per program, used from one thread.
 * Header-only (static functions) so that each example stays one .c file.
 */
#ifndef EXAMPLES_PYRANDOM_H
#define EXAMPLES_PYRANDOM_H

#include <stdint.h>

#define PYRANDOM_N 624
#define PYRANDOM_M 397

typedef struct pyrandom {
  uint32_t mt[PYRANDOM_N];
  int index; /* next word of mt to temper; PYRANDOM_N means "regenerate" */
} pyrandom_t;

static void pyrandom__init_genrand(pyrandom_t *r, uint32_t s) {
  r->mt[0] = s;
  for (int i = 1; i < PYRANDOM_N; i++)
    r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
  r->index = PYRANDOM_N;
}

static void pyrandom__init_by_array(pyrandom_t *r, const uint32_t *key, int len) {
  pyrandom__init_genrand(r, 19650218u);
  int i = 1, j = 0;
  for (int k = PYRANDOM_N > len ? PYRANDOM_N : len; k > 0; k--) {
    r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1664525u)) + key[j] +
               (uint32_t)j;
    if (++i >= PYRANDOM_N) {
      r->mt[0] = r->mt[PYRANDOM_N - 1];
      i = 1;
    }
    if (++j >= len) j = 0;
  }
  for (int k = PYRANDOM_N - 1; k > 0; k--) {
    r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1566083941u)) - (uint32_t)i;
    if (++i >= PYRANDOM_N) {
      r->mt[0] = r->mt[PYRANDOM_N - 1];
      i = 1;
    }
  }
  r->mt[0] = 0x80000000u; /* guarantees a non-zero state */
}

static uint32_t pyrandom__next32(pyrandom_t *r) {
  if (r->index >= PYRANDOM_N) {
    for (int k = 0; k < PYRANDOM_N; k++) {
      uint32_t y = (r->mt[k] & 0x80000000u) | (r->mt[(k + 1) % PYRANDOM_N] & 0x7fffffffu);
      r->mt[k] = r->mt[(k + PYRANDOM_M) % PYRANDOM_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    r->index = 0;
  }
  uint32_t y = r->mt[r->index++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

/* random.seed(seed) for a non-negative integer seed. */
static void pyrandom_seed(pyrandom_t *r, uint64_t seed) {
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  pyrandom__init_by_array(r, key, key[1] ? 2 : 1);
}

/* random.randint(a, b): uniform in [a, b]; requires a <= b and b - a < 2^31. */
static int pyrandom_randint(pyrandom_t *r, int a, int b) {
  uint32_t n = (uint32_t)(b - a) + 1u;
  int bits = 0;
  while (bits < 32 && (n >> bits) != 0) bits++; /* n.bit_length() */
  uint32_t v;
  do
    v = pyrandom__next32(r) >> (32 - bits);
  while (v >= n);
  return a + (int)v;
}

#endif
