/*
 * wait - start several phases as tasks and wait for all of them with
 * asyncio.wait(); then collect the results of the done set.
 *
 * Python origin: asyncio_wait.py from PyMOTW-3's asyncio chapter
 * ("Composing Coroutines with Control Structures: Waiting for Multiple
 * Coroutines"), with its explicit loop.  Each phase(i) sleeps 0.1 * i
 * seconds and returns a string.  The original passes coroutines to wait(),
 * which wrapped them in tasks (Python 3.11 requires tasks); the port creates
 * the tasks first.  Python's done set has no order; the port lists the
 * results in the order the phases were started.
 */
#include <asyncio.h>
#include <stdint.h>
#include <stdio.h>

#define NUM_PHASES 3

static char results[NUM_PHASES][32];

static int phase(void *arg) {
  int i = (int)(intptr_t)arg;
  printf("in phase %d\n", i);
  int rc = asyncio_sleep(0.1 * i);
  if (rc < 0) return rc;
  printf("done with phase %d\n", i);
  snprintf(results[i], sizeof results[i], "phase %d result", i);
  asyncio_task_set_result_value(results[i]);
  return 0;
}

static int main_coro(void *arg) {
  int num_phases = (int)(intptr_t)arg;
  printf("starting main\n");
  asyncio_task_t *phases[NUM_PHASES];
  int n = 0, rc = 0;
  for (; n < num_phases; n++) {
    rc = asyncio_create_task(&phases[n], phase, (void *)(intptr_t)n, NULL);
    if (rc < 0) break;
  }
  printf("waiting for phases to complete\n");
  bool completed[NUM_PHASES];
  if (rc == 0) rc = asyncio_wait(phases, (size_t)n, ASYNCIO_NO_TIMEOUT, ASYNCIO_ALL_COMPLETED, completed);
  if (rc >= 0) {
    printf("results: [");
    int k = 0;
    for (int i = 0; i < n; i++) {
      void *v = NULL;
      if (!completed[i] || asyncio_future_result(phases[i], &v) < 0) continue;
      printf("%s'%s'", k++ ? ", " : "", (const char *)v);
    }
    printf("]\n");
  }
  for (int i = 0; i < n; i++) asyncio_task_free(phases[i]);
  return rc < 0 ? rc : 0;
}

int main(void) {
  asyncio_loop_t *loop;
  int rc = asyncio_loop_new(&loop, NULL);
  if (rc < 0) {
    fprintf(stderr, "wait: cannot create the loop: %s\n", asyncio_strerror(rc));
    return 1;
  }
  asyncio_task_t *task;
  rc = asyncio_loop_create_task(loop, &task, main_coro, (void *)(intptr_t)NUM_PHASES, NULL);
  if (rc >= 0) {
    rc = asyncio_loop_run_until_complete(loop, task, NULL);
    asyncio_task_free(task);
  }
  int crc = asyncio_loop_close(loop);
  if (rc < 0 || crc < 0) {
    fprintf(stderr, "wait: %s\n", asyncio_strerror(rc < 0 ? rc : crc));
    return 1;
  }
  return 0;
}
