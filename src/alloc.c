/*
 * alloc.c - the allocator hook (Lua's lua_Alloc) and small helpers.
 */
#include <stdint.h>
#include <stdlib.h>

#include "internal.h"

static void *default_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  (void)osize;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  return realloc(ptr, nsize);
}

static asyncio_alloc_fn alloc_fn = default_alloc;
static void *alloc_ud;

ASYNCIO_API void asyncio_set_allocator(asyncio_alloc_fn fn, void *ud) {
  alloc_fn = fn ? fn : default_alloc;
  alloc_ud = fn ? ud : NULL;
}

ASYNCIO_API asyncio_alloc_fn asyncio_get_allocator(void **ud) {
  if (ud) *ud = alloc_ud;
  return alloc_fn;
}

void *asyncio__alloc(size_t n) { return alloc_fn(alloc_ud, NULL, 0, n); }

void *asyncio__calloc(size_t n) {
  void *p = alloc_fn(alloc_ud, NULL, 0, n);
  if (p) memset(p, 0, n);
  return p;
}

void *asyncio__realloc(void *p, size_t old, size_t n) { return alloc_fn(alloc_ud, p, old, n); }

void asyncio__free(void *p, size_t n) {
  if (p) alloc_fn(alloc_ud, p, n, 0);
}

/*
 * Objects of which a server keeps one per connection (watch, transport,
 * stream) start on a cache line, so that their hot fields, grouped at the
 * front, take as few lines as they can: with a thousand connections each
 * of those lines misses between two messages.  (Not the task: the extra
 * line would break the idle-task memory budget.)  The
 * allocator hook promises no alignment, so this asks for a line more and
 * keeps the distance back to the block in the byte before the object.
 */
void *asyncio__alloc_line(size_t n) {
  char *p = asyncio__alloc(n + 64);
  if (!p) return NULL;
  char *a = (char *)(((uintptr_t)p + 64) & ~(uintptr_t)63);
  a[-1] = (char)(a - p); /* 1 to 64 */
  return a;
}

void *asyncio__calloc_line(size_t n) {
  void *a = asyncio__alloc_line(n);
  if (a) memset(a, 0, n);
  return a;
}

void asyncio__free_line(void *a, size_t n) {
  if (a) asyncio__free((char *)a - ((unsigned char *)a)[-1], n + 64);
}

char *asyncio__strdup(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *d = asyncio__alloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

void asyncio__strfree(char *s) {
  if (s) asyncio__free(s, strlen(s) + 1);
}
