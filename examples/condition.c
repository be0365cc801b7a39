/*
 * condition - a Condition wakes a chosen number of waiters: five consumers
 * wait on it; manipulate_condition() notifies one, then two, then all the
 * rest, 0.1 s apart.
 *
 * Python origin: asyncio_condition.py from PyMOTW-3's asyncio chapter
 * ("Synchronization Primitives"), the version with main(loop) whose
 * transcript the chapter shows.  `async with condition` is
 * asyncio_condition_enter/_exit.  main() creates the manipulate_condition
 * task, then asyncio.wait(consumers) wraps the five consumers in tasks in
 * the iteration order of a set, which in that transcript was 3, 1, 2, 0, 4;
 * the port creates them in that order.
 */
#include <asyncio.h>
#include <errno.h>
#include <stdio.h>

#define NCONSUMERS 5

typedef struct consumer_arg {
  asyncio_condition_t *condition;
  int n;
} consumer_arg_t;

static int consumer(void *arg) {
  consumer_arg_t *c = arg;
  int rc = asyncio_condition_enter(c->condition);
  if (rc < 0) return rc;
  printf("consumer %d is waiting\n", c->n);
  rc = asyncio_condition_wait(c->condition);
  if (rc >= 0) printf("consumer %d triggered\n", c->n);
  rc = asyncio_condition_exit(c->condition, rc);
  if (rc < 0) return rc;
  printf("ending consumer %d\n", c->n);
  return 0;
}

static int manipulate_condition(void *arg) {
  asyncio_condition_t *condition = arg;
  printf("starting manipulate_condition\n");
  /* pause to let consumers start */
  int rc = asyncio_sleep(0.1);
  if (rc < 0) return rc;
  for (int i = 1; i < 3; i++) {
    if ((rc = asyncio_condition_enter(condition)) < 0) return rc;
    printf("notifying %d consumers\n", i);
    rc = asyncio_condition_notify(condition, i);
    if ((rc = asyncio_condition_exit(condition, rc)) < 0) return rc;
    if ((rc = asyncio_sleep(0.1)) < 0) return rc;
  }
  if ((rc = asyncio_condition_enter(condition)) < 0) return rc;
  printf("notifying remaining consumers\n");
  rc = asyncio_condition_notify_all(condition);
  if ((rc = asyncio_condition_exit(condition, rc)) < 0) return rc;
  printf("ending manipulate_condition\n");
  return 0;
}

static int main_coro(void *arg) {
  (void)arg;
  /* Create a condition. */
  asyncio_condition_t *condition;
  int rc = asyncio_condition_new(&condition, NULL);
  if (rc < 0) return rc;
  /* Schedule a task to manipulate the condition variable. */
  asyncio_task_t *manipulator;
  rc = asyncio_create_task(&manipulator, manipulate_condition, condition, NULL);
  if (rc < 0) {
    asyncio_condition_free(condition);
    return rc;
  }
  /* Set up tasks watching the condition, and wait for them to be done. */
  static const int set_order[NCONSUMERS] = {3, 1, 2, 0, 4};
  consumer_arg_t args[NCONSUMERS];
  asyncio_task_t *tasks[NCONSUMERS];
  int created = 0;
  for (; created < NCONSUMERS; created++) {
    args[created] = (consumer_arg_t){condition, set_order[created]};
    if ((rc = asyncio_create_task(&tasks[created], consumer, &args[created], NULL)) < 0) break;
  }
  for (int i = 0; i < created; i++) {
    if (rc < 0) asyncio_task_cancel(tasks[i], NULL);
    int r = asyncio_await(tasks[i], NULL);
    if (r < 0 && rc >= 0) rc = r;
    asyncio_task_free(tasks[i]);
  }
  /* The manipulator has ended by now (or is cancelled with the rest). */
  if (rc < 0) asyncio_task_cancel(manipulator, NULL);
  int r = asyncio_await(manipulator, NULL);
  if (r < 0 && rc >= 0) rc = r;
  asyncio_task_free(manipulator);
  int frc = asyncio_condition_free(condition);
  return rc < 0 ? rc : frc;
}

int main(void) {
  asyncio_loop_t *loop;
  int rc = asyncio_loop_new(&loop, NULL);
  if (rc < 0) {
    fprintf(stderr, "condition: cannot create the loop: %s\n", asyncio_strerror(rc));
    return 1;
  }
  asyncio_task_t *task;
  rc = asyncio_loop_create_task(loop, &task, main_coro, NULL, NULL);
  if (rc >= 0) {
    rc = asyncio_loop_run_until_complete(loop, task, NULL);
    asyncio_task_free(task);
  }
  int crc = asyncio_loop_close(loop);
  if (rc < 0 || crc < 0) {
    fprintf(stderr, "condition: %s\n", asyncio_strerror(rc < 0 ? rc : crc));
    return 1;
  }
  return 0;
}
