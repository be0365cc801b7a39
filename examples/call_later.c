/*
 * call_later - schedule callbacks after a delay: the one scheduled with
 * call_soon runs first, then the delayed ones in order of their due time,
 * whatever the order they were scheduled in.
 *
 * Python origin: asyncio_call_later.py from PyMOTW-3's asyncio chapter
 * ("Scheduling Calls to Regular Functions"), with its explicit loop:
 * run_until_complete(main), then close.
 */
#include <asyncio.h>
#include <stdint.h>
#include <stdio.h>

static void callback(void *arg) {
  printf("callback %d invoked\n", (int)(intptr_t)arg);
}

static int main_coro(void *p) {
  asyncio_loop_t *loop = p;
  printf("registering callbacks\n");
  int rc = asyncio_loop_call_later(loop, 0.2, callback, (void *)(intptr_t)1, NULL);
  if (rc < 0) return rc;
  rc = asyncio_loop_call_later(loop, 0.1, callback, (void *)(intptr_t)2, NULL);
  if (rc < 0) return rc;
  rc = asyncio_loop_call_soon(loop, callback, (void *)(intptr_t)3, NULL);
  if (rc < 0) return rc;
  return asyncio_sleep(0.4);
}

int main(void) {
  asyncio_loop_t *loop;
  int rc = asyncio_loop_new(&loop, NULL);
  if (rc < 0) {
    fprintf(stderr, "call_later: cannot create the loop: %s\n", asyncio_strerror(rc));
    return 1;
  }
  printf("entering event loop\n");
  asyncio_task_t *task;
  rc = asyncio_loop_create_task(loop, &task, main_coro, loop, NULL);
  if (rc >= 0) {
    rc = asyncio_loop_run_until_complete(loop, task, NULL);
    asyncio_task_free(task);
  }
  printf("closing event loop\n");
  int crc = asyncio_loop_close(loop);
  if (rc < 0 || crc < 0) {
    fprintf(stderr, "call_later: %s\n", asyncio_strerror(rc < 0 ? rc : crc));
    return 1;
  }
  return 0;
}
