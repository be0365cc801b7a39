/*
 * as_completed_tasks - handle two tasks in the order they finish.
 *
 * Python origin: the asyncio.as_completed() snippet of Real Python's
 * "Python's asyncio: A Hands-On Walkthrough" ("Other asyncio Tools"):
 * `for task in asyncio.as_completed([task1, task2]): result = await task`,
 * printing each result with the wall-clock time it came in.  The port uses
 * asyncio_as_completed_next_result(), the "iterate and await the next"
 * form, looping as many times as there are tasks (the times are normalized
 * by the smoke test).
 */
#include <asyncio.h>
#include <stdio.h>
#include <time.h>

typedef struct numbers {
  int in[3];
  int out[3];
} numbers_t;

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

static const char *clock_time(char *buf, size_t n) {
  time_t now = time(NULL);
  struct tm tm;
  localtime_r(&now, &tm);
  strftime(buf, n, "%X", &tm);
  return buf;
}

static int main_coro(void *arg) {
  numbers_t *args = arg;
  asyncio_task_t *tasks[2] = {NULL, NULL};
  int rc = 0;
  for (int i = 0; i < 2 && rc == 0; i++) rc = asyncio_create_task(&tasks[i], coro, &args[i], NULL);
  char buf[64];
  asyncio_as_completed_t *it = NULL;
  if (rc == 0) {
    printf("Start: %s\n", clock_time(buf, sizeof buf));
    rc = asyncio_as_completed_new(&it, tasks, 2, ASYNCIO_NO_TIMEOUT);
  }
  while (rc >= 0 && asyncio_as_completed_remaining(it) > 0) {
    void *v = NULL;
    rc = asyncio_as_completed_next_result(it, &v);
    if (rc < 0) break;
    const int *r = v;
    printf("result: [%d, %d, %d] completed at %s\n", r[0], r[1], r[2], clock_time(buf, sizeof buf));
  }
  if (rc >= 0) {
    printf("End: %s\n", clock_time(buf, sizeof buf));
    bool all = asyncio_future_done(tasks[0]) && asyncio_future_done(tasks[1]);
    printf("Both tasks done: %s\n", all ? "True" : "False");
  }
  if (it) asyncio_as_completed_free(it);
  for (int i = 0; i < 2; i++)
    if (tasks[i]) asyncio_task_free(tasks[i]);
  return rc < 0 ? rc : 0;
}

int main(void) {
  numbers_t args[2] = {{{10, 5, 2}, {0}}, {{3, 2, 1}, {0}}};
  int rc = asyncio_run(main_coro, args, NULL);
  if (rc < 0) {
    fprintf(stderr, "as_completed_tasks: %s\n", asyncio_strerror(rc));
    return 1;
  }
  return 0;
}
