/*
 * as_completed - handle background operations as they finish, with
 * asyncio.as_completed().
 *
 * Python origin: asyncio_as_completed.py from PyMOTW-3's asyncio chapter
 * ("Composing Coroutines with Control Structures: Handling Background
 * Operations as They Finish"), with its explicit loop.  phase(i) sleeps
 * 0.5 - 0.1 * i seconds, so the last started finishes first; main takes the
 * answers in completion order: `for next_to_complete in as_completed(...):
 * answer = await next_to_complete`.  That is
 * asyncio_as_completed_next_result(); the port hands the tasks over as it
 * creates them (the book's transcript starts them in set order).
 */
#include <asyncio.h>
#include <stdint.h>
#include <stdio.h>

#define NUM_PHASES 3

static char results[NUM_PHASES][32];

static int phase(void *arg) {
  int i = (int)(intptr_t)arg;
  printf("in phase %d\n", i);
  int rc = asyncio_sleep(0.5 - (0.1 * i));
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
  const char *answers[NUM_PHASES];
  int nanswers = 0;
  asyncio_as_completed_t *it = NULL;
  if (rc == 0) rc = asyncio_as_completed_new(&it, phases, (size_t)n, ASYNCIO_NO_TIMEOUT);
  while (rc >= 0 && asyncio_as_completed_remaining(it) > 0) {
    void *answer = NULL;
    rc = asyncio_as_completed_next_result(it, &answer);
    if (rc < 0) break;
    printf("received answer '%s'\n", (const char *)answer);
    answers[nanswers++] = answer;
  }
  if (rc >= 0) {
    printf("results: [");
    for (int i = 0; i < nanswers; i++) printf("%s'%s'", i ? ", " : "", answers[i]);
    printf("]\n");
  }
  if (it) asyncio_as_completed_free(it);
  for (int i = 0; i < n; i++) asyncio_task_free(phases[i]);
  return rc < 0 ? rc : 0;
}

int main(void) {
  asyncio_loop_t *loop;
  int rc = asyncio_loop_new(&loop, NULL);
  if (rc < 0) {
    fprintf(stderr, "as_completed: cannot create the loop: %s\n", asyncio_strerror(rc));
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
    fprintf(stderr, "as_completed: %s\n", asyncio_strerror(rc < 0 ? rc : crc));
    return 1;
  }
  return 0;
}
