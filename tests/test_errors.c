/*
 * test_errors.c - the error model (include/asyncio/errors.h).
 *
 * Python origin: asyncio's exceptions (asyncio.exceptions) and the OSError
 * family; libuv's uv_strerror/uv_err_name for the shape.
 */
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

/* Every library code has the message, symbolic name and Python name of its X-macro row. */
TEST(errors_library_codes_from_the_map) {
#define CHECK_ROW(name, off, msg, py)                                  \
  assert_int_equal(ASYNCIO_E##name, ASYNCIO_ERR_BASE - (off));         \
  assert_string_equal(asyncio_strerror(ASYNCIO_E##name), msg);         \
  assert_string_equal(asyncio_errname(ASYNCIO_E##name), "ASYNCIO_E" #name); \
  assert_string_equal(asyncio_pyname(ASYNCIO_E##name), py);
  ASYNCIO_ERRNO_MAP(CHECK_ROW)
#undef CHECK_ROW
}

/* Library codes are distinct and all below ASYNCIO_ERR_BASE, clear of errno values. */
TEST(errors_library_codes_distinct_below_base) {
  int codes[] = {
#define CODE(name, off, msg, py) ASYNCIO_E##name,
      ASYNCIO_ERRNO_MAP(CODE)
#undef CODE
  };
  size_t n = sizeof codes / sizeof codes[0];
  for (size_t i = 0; i < n; i++) {
    assert_true(codes[i] < ASYNCIO_ERR_BASE);
    assert_true(codes[i] < -133 * 10); /* far from any errno value */
    for (size_t j = i + 1; j < n; j++) assert_int_not_equal(codes[i], codes[j]);
  }
}

/*
 * asyncio.CancelledError, TimeoutError and KeyboardInterrupt are spelled
 * -ECANCELED, -ETIMEDOUT and -EINTR (errors.h).
 */
TEST(errors_errno_python_names) {
  assert_string_equal(asyncio_errname(-ECANCELED), "ECANCELED");
  assert_string_equal(asyncio_pyname(-ECANCELED), "asyncio.CancelledError");
  assert_string_equal(asyncio_errname(-ETIMEDOUT), "ETIMEDOUT");
  assert_string_equal(asyncio_pyname(-ETIMEDOUT), "TimeoutError");
  assert_string_equal(asyncio_errname(-EINTR), "EINTR");
  assert_string_equal(asyncio_pyname(-EINTR), "KeyboardInterrupt");
  /* OSError(errno.EIO) is a plain OSError in Python (no subclass for EIO). */
  assert_string_equal(asyncio_errname(-EIO), "EIO");
  assert_string_equal(asyncio_pyname(-EIO), "OSError");
  assert_string_equal(asyncio_errname(-EINVAL), "EINVAL");
  assert_string_equal(asyncio_errname(-ENOMEM), "ENOMEM");
  assert_string_equal(asyncio_errname(-EBUSY), "EBUSY");
  assert_string_equal(asyncio_errname(-EDEADLK), "EDEADLK");
  assert_string_equal(asyncio_errname(-EPERM), "EPERM");
}

/* errno values get a real message (never the unknown one). */
TEST(errors_errno_messages) {
  const int errs[] = {ECANCELED, ETIMEDOUT, EINTR, EIO, EINVAL, ENOMEM, EBUSY, EPERM,
                      ECONNRESET, EPIPE, EAGAIN, EBADF, ENOENT};
  for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
    const char *m = asyncio_strerror(-errs[i]);
    assert_non_null(m);
    assert_true(m[0] != '\0');
    assert_string_not_equal(m, "unknown error");
    const char *n = asyncio_errname(-errs[i]);
    assert_non_null(n);
    assert_string_not_equal(n, "UNKNOWN");
    assert_non_null(asyncio_pyname(-errs[i]));
  }
}

/* Unknown codes: "unknown error" / "UNKNOWN", never NULL. */
TEST(errors_unknown_codes) {
  int lowest = 0;
#define LOWEST(name, off, msg, py) if (ASYNCIO_E##name < lowest) lowest = ASYNCIO_E##name;
  ASYNCIO_ERRNO_MAP(LOWEST)
#undef LOWEST
  const int unknown[] = {ASYNCIO_ERR_BASE, /* offset 0 is not a code */
                         lowest - 1,       /* one past the last */
                         ASYNCIO_ERR_BASE - 999, -3999, -1000, -99999};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    assert_string_equal(asyncio_strerror(unknown[i]), "unknown error");
    assert_string_equal(asyncio_errname(unknown[i]), "UNKNOWN");
    assert_non_null(asyncio_pyname(unknown[i]));
  }
}

/* "Thread-safe": two threads formatting at once get the same stable strings. */
static void *errname_thread(void *arg) {
  (void)arg;
  for (int i = 0; i < 10000; i++) {
    if (strcmp(asyncio_errname(ASYNCIO_EQUEUEFULL), "ASYNCIO_EQUEUEFULL") != 0) return (void *)1;
    if (strcmp(asyncio_errname(-ECANCELED), "ECANCELED") != 0) return (void *)1;
    if (asyncio_strerror(-EIO) == NULL) return (void *)1;
  }
  return NULL;
}

TEST(errors_thread_safe) {
  pthread_t a, b;
  void *ra, *rb;
  assert_int_equal(pthread_create(&a, NULL, errname_thread, NULL), 0);
  assert_int_equal(pthread_create(&b, NULL, errname_thread, NULL), 0);
  pthread_join(a, &ra);
  pthread_join(b, &rb);
  assert_null(ra);
  assert_null(rb);
}
