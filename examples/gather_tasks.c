/*
 * gather_tasks - gather two running tasks; the results come back in the
 * order the tasks were passed, not the order they finished.
 *
 * Python origin: the asyncio.gather() snippet of Real Python's "Python's
 * asyncio: A Hands-On Walkthrough" ("Other asyncio Tools"): two tasks of
 * coro(numbers) (sleep min(numbers), return the list reversed), gathered;
 * main() prints the wall-clock time before and after and returns the
 * gathered list.  The port prints the same transcript (the times are
 * normalized by the smoke test); the list is read back per child with
 * asyncio_gather_result().
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

/* time.strftime("%X") */
static const char *clock_time(char *buf, size_t n) {
  time_t now = time(NULL);
  struct tm tm;
  localtime_r(&now, &tm);
  strftime(buf, n, "%X", &tm);
  return buf;
}

typedef struct run {
  numbers_t args[2];
  const int *result[2];
} run_t;

static int main_coro(void *arg) {
  run_t *r = arg;
  asyncio_task_t *tasks[2] = {NULL, NULL};
  int rc = 0;
  for (int i = 0; i < 2 && rc == 0; i++) rc = asyncio_create_task(&tasks[i], coro, &r->args[i], NULL);
  char buf[64];
  asyncio_future_t *g = NULL;
  if (rc == 0) {
    printf("Start: %s\n", clock_time(buf, sizeof buf));
    rc = asyncio_gather(&g, tasks, 2, NULL);
  }
  if (rc == 0) rc = asyncio_await(g, NULL);
  if (rc >= 0) {
    printf("End: %s\n", clock_time(buf, sizeof buf));
    bool all = asyncio_future_done(tasks[0]) && asyncio_future_done(tasks[1]);
    printf("Both tasks done: %s\n", all ? "True" : "False");
    for (size_t i = 0; i < 2; i++) {
      void *v = NULL;
      asyncio_gather_result(g, i, &v);
      r->result[i] = v;
    }
  }
  asyncio_future_free(g);
  for (int i = 0; i < 2; i++)
    if (tasks[i]) asyncio_task_free(tasks[i]);
  return rc;
}

int main(void) {
  run_t r = {{{{10, 5, 2}, {0}}, {{3, 2, 1}, {0}}}, {NULL, NULL}};
  int rc = asyncio_run(main_coro, &r, NULL);
  if (rc < 0) {
    fprintf(stderr, "gather_tasks: %s\n", asyncio_strerror(rc));
    return 1;
  }
  const int *a = r.result[0], *b = r.result[1];
  printf("result: [[%d, %d, %d], [%d, %d, %d]]\n", a[0], a[1], a[2], b[0], b[1], b[2]);
  return 0;
}
