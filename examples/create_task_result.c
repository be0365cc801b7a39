/*
 * create_task_result - schedule a coroutine as a task, look at it while it
 * is pending, then await its result.
 *
 * Python origin: the asyncio.create_task() snippet of Real Python's
 * "Python's asyncio: A Hands-On Walkthrough" ("Other asyncio Tools"):
 * coro(numbers) sleeps min(numbers) seconds and returns the list reversed;
 * main() creates the task, prints type(task) and task.done(), and returns
 * `await task`, which asyncio.run() hands back.  The port prints the same
 * lines; the Python type name is spelled out from asyncio_future_is_task().
 */
#include <asyncio.h>
#include <stdio.h>

typedef struct numbers {
  int in[3];
  int out[3];
} numbers_t;

/* async def coro(numbers): await sleep(min(numbers)); return list(reversed(numbers)) */
static int coro(void *arg) {
  numbers_t *x = arg;
  int min = x->in[0];
  for (int i = 1; i < 3; i++)
    if (x->in[i] < min) min = x->in[i];
  int rc = asyncio_sleep(min);
  if (rc < 0) return rc;
  for (int i = 0; i < 3; i++) x->out[i] = x->in[2 - i];
  asyncio_task_set_result_value(x->out);
  return 0;
}

static int main_coro(void *arg) {
  numbers_t *x = arg;
  asyncio_task_t *task;
  int rc = asyncio_create_task(&task, coro, x, NULL);
  if (rc < 0) return rc;
  printf("type(task) = <class '%s'>\n", asyncio_future_is_task(task) ? "_asyncio.Task" : "_asyncio.Future");
  printf("task.done() = %s\n", asyncio_future_done(task) ? "True" : "False");
  void *value = NULL;
  rc = asyncio_await(task, &value);
  asyncio_task_free(task);
  if (rc >= 0) asyncio_task_set_result_value(value);
  return rc;
}

int main(void) {
  numbers_t x = {{3, 2, 1}, {0}};
  void *value = NULL;
  int rc = asyncio_run_value(main_coro, &x, NULL, &value);
  if (rc < 0) {
    fprintf(stderr, "create_task_result: %s\n", asyncio_strerror(rc));
    return 1;
  }
  const int *result = value;
  printf("result: [%d, %d, %d]\n", result[0], result[1], result[2]);
  return 0;
}
