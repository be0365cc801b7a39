/*
 * sync_helpers.h - what the Lock/Event/... and Queue tests share: a recorder
 * of the order in which tasks got somewhere (CHECK_ORDER compares it as a
 * soft check), and running a main task on a fresh virtual-clock loop.
 * Include after harness.h.
 */
#ifndef ASYNCIO_TEST_SYNC_HELPERS_H
#define ASYNCIO_TEST_SYNC_HELPERS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include "harness.h"

static int order[256];
static int norder;

static inline void reset(void) {
  norder = 0;
  soft_fail[0] = 0;
}

static inline void rec(int v) {
  if (norder < 256) order[norder++] = v;
}

/* True if the recorded order is exactly the n values given. */
static inline bool order_is(int n, ...) {
  if (norder != n) return false;
  va_list ap;
  va_start(ap, n);
  bool ok = true;
  for (int i = 0; i < n; i++)
    if (va_arg(ap, int) != order[i]) ok = false;
  va_end(ap);
  return ok;
}

#define CHECK_ORDER(...)                                                              \
  do {                                                                                \
    if (!order_is(__VA_ARGS__) && !soft_fail[0]) {                                    \
      int o__ = snprintf(soft_fail, sizeof soft_fail, "%s:%d: order is [", __FILE__, \
                         __LINE__);                                                   \
      for (int i__ = 0; i__ < norder && o__ < 400; i__++)                             \
        o__ += snprintf(soft_fail + o__, sizeof soft_fail - (size_t)o__, " %d",       \
                        order[i__]);                                                  \
      snprintf(soft_fail + o__, sizeof soft_fail - (size_t)o__, " ]");                \
    }                                                                                 \
  } while (0)

/* loop.run_until_complete(loop.create_task(fn(arg))), then close the loop. */
static inline int run_main(asyncio_coro_fn fn, void *arg) {
  asyncio_loop_t *loop = harness_virtual_loop();
  asyncio_task_t *t = NULL;
  int rc = asyncio_loop_create_task(loop, &t, fn, arg, NULL);
  if (rc != 0) fail_msg("create_task: %s", asyncio_errname(rc));
  rc = asyncio_loop_run_until_complete(loop, t, NULL);
  assert_ok(asyncio_task_free(t));
  assert_ok(asyncio_loop_close(loop));
  ASSERT_SOFT();
  return rc;
}

static inline asyncio_task_t *spawn(asyncio_coro_fn fn, void *arg) {
  asyncio_task_t *t = NULL;
  CHECK_RC(asyncio_create_task(&t, fn, arg, NULL), 0);
  return t;
}

static inline void yield0(void) { CHECK_RC(asyncio_sleep(0), 0); }

/* Awaits a task (its outcome is returned) and drops the reference. */
static inline int finish(asyncio_task_t *t) {
  int rc = asyncio_await(t, NULL);
  asyncio_task_free(t);
  return rc;
}

#endif
