/*
 * consumer.c - a program outside the source tree that uses an installed
 * asyncio: the install check of scripts/test.sh builds it three ways (CMake
 * package with the shared and the static library, and a pkg-config command
 * line) and runs each.  Prints "ok" and exits 0 when the library works.
 */
#include <asyncio.h>
#include <stdio.h>

static int child(void *arg) {
  int n = *(int *)arg;
  int rc = asyncio_sleep(0.001);
  if (rc < 0) return rc;
  return n * 2;
}

static int amain(void *arg) {
  (void)arg;
  int n = 21;
  asyncio_task_t *task;
  int rc = asyncio_create_task(&task, child, &n, NULL);
  if (rc < 0) return rc;
  rc = asyncio_await(task, NULL);
  asyncio_task_free(task);
  return rc;
}

int main(void) {
  int rc = asyncio_run(amain, NULL, NULL);
  if (rc != 42) {
    fprintf(stderr, "consumer: asyncio_run returned %d (%s)\n", rc, asyncio_errname(rc));
    return 1;
  }
  printf("ok\n");
  return 0;
}
