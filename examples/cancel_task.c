/*
 * cancel_task - cancel a task before it ever runs: its coroutine never
 * starts, and awaiting the task reports the cancellation (CancelledError,
 * here -ECANCELED).
 *
 * Python origin: asyncio_cancel_task.py from PyMOTW-3's asyncio chapter
 * ("Executing Tasks Concurrently"), with its explicit loop:
 * run_until_complete(main), then close.  The original prints the task's
 * repr(); C has no repr, so the port prints the same fields (state, name,
 * coroutine) from the task's public accessors.
 */
#include <asyncio.h>
#include <errno.h>
#include <stdio.h>

static int task_func(void *arg) {
  (void)arg;
  printf("in task_func\n");
  static char result[] = "the result";
  asyncio_task_set_result_value(result);
  return 0;
}

/* Task.__repr__ at task granularity: <Task STATE name='NAME' coro=<CORO()>>. */
static void print_task(const char *prefix, asyncio_task_t *task, const char *coro) {
  const char *state;
  if (asyncio_future_cancelled(task))
    state = "cancelled";
  else if (asyncio_future_done(task))
    state = "finished";
  else if (asyncio_task_cancelling(task) > 0)
    state = "cancelling";
  else
    state = "pending";
  printf("%s<Task %s name='%s' coro=<%s()>>\n", prefix, state, asyncio_task_get_name(task), coro);
}

static int main_coro(void *arg) {
  asyncio_loop_t *loop = arg;
  printf("creating task\n");
  asyncio_task_t *task;
  int rc = asyncio_loop_create_task(loop, &task, task_func, NULL, NULL);
  if (rc < 0) return rc;

  printf("canceling task\n");
  asyncio_task_cancel(task, NULL);

  print_task("canceled task ", task, "task_func");
  void *value = NULL;
  rc = asyncio_await(task, &value);
  if (rc == -ECANCELED)
    printf("caught error from canceled task\n");
  else if (rc >= 0)
    printf("task result: '%s'\n", (const char *)value);
  asyncio_task_free(task);
  return rc == -ECANCELED ? 0 : rc;
}

int main(void) {
  asyncio_loop_t *loop;
  int rc = asyncio_loop_new(&loop, NULL);
  if (rc < 0) {
    fprintf(stderr, "cancel_task: cannot create the loop: %s\n", asyncio_strerror(rc));
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
    fprintf(stderr, "cancel_task: %s\n", asyncio_strerror(rc < 0 ? rc : crc));
    return 1;
  }
  return 0;
}
