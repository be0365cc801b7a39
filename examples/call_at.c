/*
 * call_at - schedule callbacks at absolute loop times.  The loop's clock
 * (loop.time(), monotonic) is not the wall clock (time.time()); each
 * callback prints the loop time it actually ran at.
 *
 * Python origin: asyncio_call_at.py from PyMOTW-3's asyncio chapter
 * ("Scheduling Calls to Regular Functions"), with its explicit loop:
 * run_until_complete(main), then close.  Times are printed as Python prints
 * a float (the shortest repr that reads back to the same value).
 */
#include <asyncio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct callback_args {
  int n;
  asyncio_loop_t *loop;
} callback_args_t;

/* Python's repr(float) for ordinary magnitudes: shortest round-trip digits. */
static const char *float_repr(double v, char *buf, size_t size) {
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, size, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) break;
  }
  if (!strpbrk(buf, ".eEn")) strncat(buf, ".0", size - strlen(buf) - 1);
  return buf;
}

static double wall_time(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void callback(void *arg) {
  const callback_args_t *a = arg;
  char buf[32];
  printf("callback %d invoked at %s\n", a->n, float_repr(asyncio_loop_time(a->loop), buf, sizeof buf));
}

static int main_coro(void *p) {
  asyncio_loop_t *loop = p;
  static callback_args_t args[3];
  char buf[32];
  double now = asyncio_loop_time(loop);
  printf("clock time: %s\n", float_repr(wall_time(), buf, sizeof buf));
  printf("loop  time: %s\n", float_repr(now, buf, sizeof buf));

  printf("registering callbacks\n");
  for (int i = 0; i < 3; i++) args[i] = (callback_args_t){i + 1, loop};
  int rc = asyncio_loop_call_at(loop, now + 0.2, callback, &args[0], NULL);
  if (rc < 0) return rc;
  rc = asyncio_loop_call_at(loop, now + 0.1, callback, &args[1], NULL);
  if (rc < 0) return rc;
  rc = asyncio_loop_call_soon(loop, callback, &args[2], NULL);
  if (rc < 0) return rc;
  return asyncio_sleep(1);
}

int main(void) {
  asyncio_loop_t *loop;
  int rc = asyncio_loop_new(&loop, NULL);
  if (rc < 0) {
    fprintf(stderr, "call_at: cannot create the loop: %s\n", asyncio_strerror(rc));
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
    fprintf(stderr, "call_at: %s\n", asyncio_strerror(rc < 0 ? rc : crc));
    return 1;
  }
  return 0;
}
