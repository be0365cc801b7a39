/*
 * wait_timeout - asyncio.wait() with a timeout: it returns the done and the
 * pending tasks without cancelling anything; the program then cancels the
 * pending ones itself.
 *
 * Python origin: asyncio_wait_timeout.py from PyMOTW-3's asyncio chapter
 * ("Composing Coroutines with Control Structures: Waiting for Multiple
 * Coroutines"), with its explicit loop.  phase(i) sleeps 0.1 * i seconds
 * and reports a cancellation; main waits 0.1 s, so only phase 0 (and not
 * phase 1, whose sleep started later than the wait's timer) is done.  The
 * original creates the tasks inside wait(); the port creates them first and
 * cancels the pending ones in the order they were started.
 */
#include <asyncio.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#define NUM_PHASES 3

static char results[NUM_PHASES][32];

static int phase(void *arg) {
  int i = (int)(intptr_t)arg;
  printf("in phase %d\n", i);
  int rc = asyncio_sleep(0.1 * i);
  if (rc == -ECANCELED) {
    printf("phase %d canceled\n", i);
    return rc;
  }
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
  printf("waiting 0.1 for phases to complete\n");
  bool completed[NUM_PHASES];
  if (rc == 0) rc = asyncio_wait(phases, (size_t)n, 0.1, ASYNCIO_ALL_COMPLETED, completed);
  if (rc >= 0) {
    int ndone = rc;
    printf("%d completed and %d pending\n", ndone, n - ndone);
    /* Cancel remaining tasks so they do not generate errors as we exit
     * without finishing them. */
    if (n - ndone > 0) {
      printf("canceling tasks\n");
      for (int i = 0; i < n; i++)
        if (!completed[i]) asyncio_task_cancel(phases[i], NULL);
    }
    printf("exiting main\n");
    rc = 0;
  }
  for (int i = 0; i < n; i++) asyncio_task_free(phases[i]);
  return rc;
}

int main(void) {
  asyncio_loop_t *loop;
  int rc = asyncio_loop_new(&loop, NULL);
  if (rc < 0) {
    fprintf(stderr, "wait_timeout: cannot create the loop: %s\n", asyncio_strerror(rc));
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
    fprintf(stderr, "wait_timeout: %s\n", asyncio_strerror(rc < 0 ? rc : crc));
    return 1;
  }
  return 0;
}
