/*
 * gather - run two phases concurrently with asyncio.gather() and get their
 * results in the order they were passed, not the order they finished.
 *
 * Python origin: asyncio_gather.py from PyMOTW-3's asyncio chapter
 * ("Composing Coroutines with Control Structures: Gathering Results from
 * Coroutines"), with its explicit loop.  phase1 sleeps 2 s and phase2 1 s;
 * gather(phase1(), phase2()) wraps them in tasks, in that order (the
 * book's transcript, from Python 3.7, starts them in set order; since 3.8
 * they start in argument order, as here).
 */
#include <asyncio.h>
#include <stdint.h>
#include <stdio.h>

static int phase1(void *arg) {
  (void)arg;
  printf("in phase1\n");
  int rc = asyncio_sleep(2);
  if (rc < 0) return rc;
  printf("done with phase1\n");
  asyncio_task_set_result_value("phase1 result");
  return 0;
}

static int phase2(void *arg) {
  (void)arg;
  printf("in phase2\n");
  int rc = asyncio_sleep(1);
  if (rc < 0) return rc;
  printf("done with phase2\n");
  asyncio_task_set_result_value("phase2 result");
  return 0;
}

static int main_coro(void *arg) {
  (void)arg;
  printf("starting main\n");
  printf("waiting for phases to complete\n");
  asyncio_coro_call_t phases[2] = {{phase1, NULL}, {phase2, NULL}};
  asyncio_future_t *g;
  int rc = asyncio_gather_coros(&g, phases, 2, NULL);
  if (rc < 0) return rc;
  rc = asyncio_await(g, NULL);
  if (rc >= 0) {
    void *r0 = NULL, *r1 = NULL;
    asyncio_gather_result(g, 0, &r0);
    asyncio_gather_result(g, 1, &r1);
    printf("results: ['%s', '%s']\n", (const char *)r0, (const char *)r1);
  }
  asyncio_future_free(g);
  return rc < 0 ? rc : 0;
}

int main(void) {
  asyncio_loop_t *loop;
  int rc = asyncio_loop_new(&loop, NULL);
  if (rc < 0) {
    fprintf(stderr, "gather: cannot create the loop: %s\n", asyncio_strerror(rc));
    return 1;
  }
  asyncio_task_t *task;
  rc = asyncio_loop_create_task(loop, &task, main_coro, (void *)(intptr_t)0, NULL);
  if (rc >= 0) {
    rc = asyncio_loop_run_until_complete(loop, task, NULL);
    asyncio_task_free(task);
  }
  int crc = asyncio_loop_close(loop);
  if (rc < 0 || crc < 0) {
    fprintf(stderr, "gather: %s\n", asyncio_strerror(rc < 0 ? rc : crc));
    return 1;
  }
  return 0;
}
