/*
 * cancel_task2 - cancel a task while it waits: the cancellation surfaces
 * inside the task at its suspension point (asyncio_sleep returns
 * -ECANCELED), the task cleans up and passes it on, and the coroutine
 * awaiting the task sees it cancelled too.
 *
 * Python origin: asyncio_cancel_task2.py from PyMOTW-3's asyncio chapter
 * ("Executing Tasks Concurrently"), with its explicit loop:
 * run_until_complete(main), then close.  `except CancelledError: ...; raise`
 * becomes "on -ECANCELED, print and return -ECANCELED".
 */
#include <asyncio.h>
#include <errno.h>
#include <stdio.h>

static int task_func(void *arg) {
  (void)arg;
  printf("in task_func, sleeping\n");
  int rc = asyncio_sleep(1);
  if (rc == -ECANCELED) {
    printf("task_func was canceled\n");
    return rc;
  }
  if (rc < 0) return rc;
  static char result[] = "the result";
  asyncio_task_set_result_value(result);
  return 0;
}

static void task_canceller(void *arg) {
  asyncio_task_t *t = arg;
  printf("in task_canceller\n");
  asyncio_task_cancel(t, NULL);
  printf("canceled the task\n");
}

static int main_coro(void *arg) {
  asyncio_loop_t *loop = arg;
  printf("creating task\n");
  asyncio_task_t *task;
  int rc = asyncio_loop_create_task(loop, &task, task_func, NULL, NULL);
  if (rc < 0) return rc;
  /* our reference keeps the task alive until the callback has run */
  rc = asyncio_loop_call_soon(loop, task_canceller, task, NULL);
  if (rc >= 0) {
    rc = asyncio_await(task, NULL);
    if (rc == -ECANCELED) {
      printf("main() also sees task as canceled\n");
      rc = 0;
    }
  } else {
    asyncio_task_cancel(task, NULL);
  }
  asyncio_task_free(task);
  return rc;
}

int main(void) {
  asyncio_loop_t *loop;
  int rc = asyncio_loop_new(&loop, NULL);
  if (rc < 0) {
    fprintf(stderr, "cancel_task2: cannot create the loop: %s\n", asyncio_strerror(rc));
    return 1;
  }
  asyncio_task_t *task;
  rc = asyncio_loop_create_task(loop, &task, main_coro, loop, NULL);
  if (rc >= 0) {
    rc = asyncio_loop_run_until_complete(loop, task, NULL);
    asyncio_task_free(task);
  }
  int crc = asyncio_loop_close(loop);
  if (rc < 0 || crc < 0) {
    fprintf(stderr, "cancel_task2: %s\n", asyncio_strerror(rc < 0 ? rc : crc));
    return 1;
  }
  return 0;
}
