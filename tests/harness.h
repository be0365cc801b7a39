/*
 * The test harness: cmocka plus leak checks.
 *
 *   TEST(name) { ... }
 *
 * declares a case; the shared main() runs the case named on the command line
 * (or all of them).  Before each case the harness installs a counting
 * allocator and notes the open file descriptors; after it, it fails the case
 * if an allocation or a descriptor is still live, so every case checks that
 * nothing leaked.  Helpers below make the Nth allocation fail.
 */
#ifndef ASYNCIO_TEST_HARNESS_H
#define ASYNCIO_TEST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <asyncio.h>

typedef void (*harness_test_fn)(void **state);
void harness_register(const char *name, harness_test_fn fn);

#define TEST(name)                                                               \
  static void name(void **state);                                                \
  __attribute__((constructor)) static void harness_reg_##name(void) {             \
    harness_register(#name, name);                                               \
  }                                                                              \
  static void name(void **state)

/* Live allocations made through the library's allocator hook. */
long harness_live_allocs(void);
/* Make the nth allocation from now fail (1 = the next one); 0 disables. */
void harness_fail_alloc_after(long n);
/* Total allocations so far in this case. */
long harness_total_allocs(void);

/* Convenience: a loop with the virtual clock. */
asyncio_loop_t *harness_virtual_loop(void);

/* Assert an int call returned exactly `expected`, printing error names. */
#define assert_rc(call, expected)                                                \
  do {                                                                           \
    int rc__ = (call);                                                           \
    int ex__ = (expected);                                                       \
    if (rc__ != ex__)                                                            \
      fail_msg("%s returned %d (%s), expected %d (%s)", #call, rc__,            \
               asyncio_errname(rc__), ex__, asyncio_errname(ex__));              \
  } while (0)

#define assert_ok(call) assert_rc(call, 0)

/*
 * Soft checks for code running inside tasks and callbacks: a failed cmocka
 * assertion there would longjmp off the task's stack, so record the first
 * failure and assert it with ASSERT_SOFT() after the loop returns.
 */
extern char harness_soft_fail[512];
#define soft_fail harness_soft_fail

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond) && !soft_fail[0])                                                \
      snprintf(soft_fail, sizeof soft_fail, "%s:%d: CHECK(%s) failed", __FILE__, \
               __LINE__, #cond);                                                 \
  } while (0)

#define CHECK_RC(call, expected)                                                 \
  do {                                                                           \
    int c_rc__ = (call);                                                         \
    int c_ex__ = (expected);                                                     \
    if (c_rc__ != c_ex__ && !soft_fail[0])                                       \
      snprintf(soft_fail, sizeof soft_fail,                                      \
               "%s:%d: %s returned %d (%s), expected %d (%s)", __FILE__,         \
               __LINE__, #call, c_rc__, asyncio_errname(c_rc__), c_ex__,         \
               asyncio_errname(c_ex__));                                         \
  } while (0)

#define ASSERT_SOFT()                                                            \
  do {                                                                           \
    if (soft_fail[0]) {                                                          \
      char m__[sizeof soft_fail];                                                \
      memcpy(m__, soft_fail, sizeof m__);                                        \
      soft_fail[0] = 0;                                                          \
      fail_msg("%s", m__);                                                       \
    }                                                                            \
  } while (0)

/*
 * Runs a call that would wait for ever under an asyncio.timeout of 20 ms: it
 * must end with -ECANCELED, which leaving the scope turns into -ETIMEDOUT.
 */
#define EXPECT_TIMEOUT(call)                                                     \
  do {                                                                           \
    asyncio_timeout_t *tm_ = NULL;                                               \
    CHECK_RC(asyncio_timeout_enter(&tm_, 0.02), 0);                              \
    int rc_ = (int)(call);                                                       \
    CHECK_RC(rc_, -ECANCELED);                                                   \
    CHECK_RC(asyncio_timeout_exit(tm_, rc_), -ETIMEDOUT);                        \
    asyncio_timeout_free(tm_);                                                   \
  } while (0)

#endif
