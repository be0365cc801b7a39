/*
 * event - an Event lets several coroutines wait for something to happen:
 * two coroutines wait, a callback sets the event 0.1 s later, and both go
 * on at once (unlike a Lock, nobody has to hold anything).
 *
 * Python origin: asyncio_event.py from PyMOTW-3's asyncio chapter
 * ("Synchronization Primitives"), the version with main(loop) whose
 * transcript the chapter shows.  asyncio.wait([coro1(), coro2()]) wraps
 * the coroutines in tasks in the iteration order of a set, which in that
 * transcript started coro2 first; the port creates the tasks in that order.
 */
#include <asyncio.h>
#include <errno.h>
#include <stdio.h>

static void set_event(void *arg) {
  printf("setting event in callback\n");
  asyncio_event_set(arg);
}

static int coro1(void *arg) {
  printf("coro1 waiting for event\n");
  int rc = asyncio_event_wait(arg);
  if (rc < 0) return rc;
  printf("coro1 triggered\n");
  return 0;
}

static int coro2(void *arg) {
  printf("coro2 waiting for event\n");
  int rc = asyncio_event_wait(arg);
  if (rc < 0) return rc;
  printf("coro2 triggered\n");
  return 0;
}

static int main_coro(void *arg) {
  asyncio_loop_t *loop = arg;
  /* Create a shared event. */
  asyncio_event_t *event;
  int rc = asyncio_event_new(&event);
  if (rc < 0) return rc;
  printf("event start state: %s\n", asyncio_event_is_set(event) ? "True" : "False");
  rc = asyncio_loop_call_later(loop, 0.1, set_event, event, NULL);
  /* asyncio.wait([coro1(event), coro2(event)]) */
  asyncio_coro_fn fns[] = {coro2, coro1};
  asyncio_task_t *tasks[2];
  int created = 0;
  for (; rc >= 0 && created < 2; created++)
    if ((rc = asyncio_create_task(&tasks[created], fns[created], event, NULL)) < 0) break;
  for (int i = 0; i < created; i++) {
    if (rc < 0) asyncio_task_cancel(tasks[i], NULL);
    int r = asyncio_await(tasks[i], NULL);
    if (r < 0 && rc >= 0) rc = r;
    asyncio_task_free(tasks[i]);
  }
  if (rc >= 0) printf("event end state: %s\n", asyncio_event_is_set(event) ? "True" : "False");
  int frc = asyncio_event_free(event);
  return rc < 0 ? rc : frc;
}

int main(void) {
  asyncio_loop_t *loop;
  int rc = asyncio_loop_new(&loop, NULL);
  if (rc < 0) {
    fprintf(stderr, "event: cannot create the loop: %s\n", asyncio_strerror(rc));
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
    fprintf(stderr, "event: %s\n", asyncio_strerror(rc < 0 ? rc : crc));
    return 1;
  }
  return 0;
}
