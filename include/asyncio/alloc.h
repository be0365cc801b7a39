/*
 * asyncio/alloc.h - the allocator hook (Lua's lua_Alloc).
 *
 * Every allocation the library makes goes through one function:
 *   fn(ud, NULL, 0, n)      allocate n bytes, NULL on failure;
 *   fn(ud, p, old, n)       resize p (old bytes) to n bytes, NULL on failure;
 *   fn(ud, p, old, 0)       free p, return NULL.
 * Task stacks are mapped with mmap and do not go through it.
 * Tests use it to count live allocations and to fail the Nth one.
 */
#ifndef ASYNCIO_ALLOC_H
#define ASYNCIO_ALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void *(*asyncio_alloc_fn)(void *ud, void *ptr, size_t osize, size_t nsize);

/*
 * Installs the allocator (NULL restores malloc/realloc/free).  Call it only
 * while the library holds no allocation (before the first loop, after the
 * last is closed).  Not thread-safe against running loops.
 */
void asyncio_set_allocator(asyncio_alloc_fn fn, void *ud);

/* The allocator in use (the built-in one's function when none was set). */
asyncio_alloc_fn asyncio_get_allocator(void **ud);

#ifdef __cplusplus
}
#endif
#endif
