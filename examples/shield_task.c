/*
 * shield_task - protect a task from cancellation with asyncio.shield().
 *
 * Python origin: "Example of Asyncio shield() for a Task" (part 13.3) of
 * SuperFastPython's "Python Asyncio: The Complete Guide": main() wraps a
 * one-second task in shield() and starts another task that cancels the
 * shield after 0.2 s.  Awaiting the shield raises CancelledError, but the
 * task itself runs on: a second later main() prints both objects, the
 * shield cancelled and the task finished with its result.
 *
 * The original prints the objects' repr(); the port prints the same fields
 * from the public accessors (the task's "defined at" shows this file).
 */
#include <asyncio.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

enum { SIMPLE_TASK_LINE = __LINE__ + 2 };
/* async def simple_task(number): await asyncio.sleep(1); return number */
static int simple_task(void *arg) {
  int rc = asyncio_sleep(1.0);
  if (rc < 0) return rc;
  return (int)(intptr_t)arg;
}

/* async def cancel_task(task): sleep 0.2 s, then task.cancel() */
static int cancel_task(void *arg) {
  asyncio_future_t *task = arg;
  int rc = asyncio_sleep(0.2);
  if (rc < 0) return rc;
  int was_cancelled = asyncio_future_cancel(task, NULL);
  printf("cancelled: %s\n", was_cancelled == 1 ? "True" : "False");
  return 0;
}

static void print_future(const char *label, asyncio_future_t *f) {
  if (asyncio_future_cancelled(f))
    printf("%s: <Future cancelled>\n", label);
  else if (asyncio_future_done(f))
    printf("%s: <Future finished>\n", label);
  else
    printf("%s: <Future pending>\n", label);
}

static void print_task(const char *label, asyncio_task_t *t) {
  const char *state = asyncio_future_cancelled(t) ? "cancelled" : asyncio_future_done(t) ? "finished" : "pending";
  printf("%s: <Task %s name='%s' coro=<simple_task() %s, defined at shield_task.c:%d>", label,
         state, asyncio_task_get_name(t), asyncio_future_done(t) ? "done" : "running",
         SIMPLE_TASK_LINE);
  if (asyncio_future_done(t) && !asyncio_future_cancelled(t)) {
    int rc = asyncio_future_result(t, NULL);
    if (rc >= 0)
      printf(" result=%d", rc);
    else
      printf(" exception=%s", asyncio_pyname(rc));
  }
  printf(">\n");
}

static int main_coro(void *arg) {
  (void)arg;
  asyncio_task_t *task, *canceller;
  int rc = asyncio_create_task(&task, simple_task, (void *)(intptr_t)1, NULL);
  if (rc < 0) return rc;
  asyncio_future_t *shielded;
  rc = asyncio_shield(&shielded, task);
  if (rc < 0) {
    asyncio_task_free(task);
    return rc;
  }
  rc = asyncio_create_task(&canceller, cancel_task, shielded, NULL);
  if (rc == 0) {
    rc = asyncio_await(shielded, NULL);
    if (rc == -ECANCELED)
      printf("shielded was cancelled\n");
    else if (rc >= 0)
      printf(">got: %d\n", rc);
    rc = asyncio_sleep(1.0);
    if (rc == 0) {
      print_future("shielded", shielded);
      print_task("task", task);
    }
    asyncio_await(canceller, NULL);
    asyncio_task_free(canceller);
  }
  asyncio_future_free(shielded);
  asyncio_task_free(task);
  return rc;
}

int main(void) {
  int rc = asyncio_run(main_coro, NULL, NULL);
  if (rc < 0) {
    fprintf(stderr, "shield_task: %s\n", asyncio_strerror(rc));
    return 1;
  }
  return 0;
}
