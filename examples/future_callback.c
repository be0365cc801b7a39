/*
 * future_callback - done callbacks on a future: they are registered by one
 * coroutine, and run (in registration order, from the event loop) once
 * another sets the future's result.
 *
 * Python origin: asyncio_future_callback.py from PyMOTW-3's asyncio chapter
 * ("Producing Results Asynchronously").  The original binds the callback's
 * second argument with functools.partial; in C the callback's argument
 * carries it.  register_callbacks() is an `async def` awaited directly, so it
 * is a plain call here.  The future is created before the loop runs, as in
 * the original; main's task finishing stops the loop only after the
 * callbacks, which were scheduled first, have run.
 */
#include <asyncio.h>
#include <stdint.h>
#include <stdio.h>

static void callback(asyncio_future_t *future, void *arg) {
  void *value = NULL;
  int rc = asyncio_future_result(future, &value);
  if (rc < 0) {
    printf("%d: future failed: %s\n", (int)(intptr_t)arg, asyncio_strerror(rc));
    return;
  }
  printf("%d: future done: %s\n", (int)(intptr_t)arg, (const char *)value);
}

static int register_callbacks(asyncio_future_t *all_done) {
  printf("registering callbacks on future\n");
  int rc = asyncio_future_add_done_callback(all_done, callback, (void *)(intptr_t)1);
  if (rc < 0) return rc;
  return asyncio_future_add_done_callback(all_done, callback, (void *)(intptr_t)2);
}

static int main_coro(void *arg) {
  asyncio_future_t *all_done = arg;
  int rc = register_callbacks(all_done);
  if (rc < 0) return rc;
  printf("setting result of future\n");
  static char result[] = "the result";
  return asyncio_future_set_result(all_done, 0, result);
}

int main(void) {
  asyncio_loop_t *loop;
  int rc = asyncio_loop_new(&loop, NULL);
  if (rc < 0) {
    fprintf(stderr, "future_callback: cannot create the loop: %s\n", asyncio_strerror(rc));
    return 1;
  }
  asyncio_future_t *all_done;
  rc = asyncio_future_new(&all_done, loop);
  if (rc >= 0) {
    asyncio_task_t *task;
    rc = asyncio_loop_create_task(loop, &task, main_coro, all_done, NULL);
    if (rc >= 0) {
      rc = asyncio_loop_run_until_complete(loop, task, NULL);
      asyncio_task_free(task);
    }
    asyncio_future_free(all_done);
  }
  int crc = asyncio_loop_close(loop);
  if (rc < 0 || crc < 0) {
    fprintf(stderr, "future_callback: %s\n", asyncio_strerror(rc < 0 ? rc : crc));
    return 1;
  }
  return 0;
}
