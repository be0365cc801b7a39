/*
 * call_soon - schedule plain callbacks for the next loop iteration; they run
 * in the order they were scheduled.
 *
 * Python origin: asyncio_call_soon.py from PyMOTW-3's asyncio chapter
 * ("Scheduling Calls to Regular Functions").  The original passes a keyword
 * argument through functools.partial; in C the callback's one argument is a
 * struct, and the "partial" is a second struct with the keyword filled in.
 * Like the original it drives an explicit loop: run_until_complete(main),
 * then close.
 */
#include <asyncio.h>
#include <stdio.h>

typedef struct callback_args {
  int arg;
  const char *kwarg; /* keyword argument, "default" unless bound */
} callback_args_t;

static void callback(void *p) {
  const callback_args_t *a = p;
  printf("callback invoked with %d and %s\n", a->arg, a->kwarg);
}

static int main_coro(void *p) {
  asyncio_loop_t *loop = p;
  static callback_args_t plain = {1, "default"};
  static callback_args_t wrapped = {2, "not default"}; /* partial(callback, kwarg=...) */
  printf("registering callbacks\n");
  int rc = asyncio_loop_call_soon(loop, callback, &plain, NULL);
  if (rc < 0) return rc;
  rc = asyncio_loop_call_soon(loop, callback, &wrapped, NULL);
  if (rc < 0) return rc;
  return asyncio_sleep(0.1);
}

int main(void) {
  asyncio_loop_t *loop;
  int rc = asyncio_loop_new(&loop, NULL);
  if (rc < 0) {
    fprintf(stderr, "call_soon: cannot create the loop: %s\n", asyncio_strerror(rc));
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
    fprintf(stderr, "call_soon: %s\n", asyncio_strerror(rc < 0 ? rc : crc));
    return 1;
  }
  return 0;
}
