/*
 * common_questions - the recipes of "Python Asyncio Common Questions" (part
 * 23) of SuperFastPython's "Python Asyncio: The Complete Guide", one after
 * the other in a single program:
 *   23.1 stop a task: Task.cancel(), then await it (CancelledError);
 *   23.5 wait for all background tasks: asyncio.all_tasks() minus
 *        current_task(), passed to asyncio.wait();
 *   23.7 show progress: a done callback on each task prints a dot;
 *   23.8 run a task after a delay: a wrapper coroutine sleeps, then awaits
 *        the coroutine;
 *   23.9 run a follow-up task: a done callback creates the next task.
 * The guide gives these as fragments; the program around them is the
 * port's, and prints the same as the equivalent Python program.
 *
 * C notes: asyncio_all_tasks() lends its pointers, and a detached task is
 * freed once it finishes, so the recipe takes a reference to each task it
 * waits for (Python's set holds them too).  "await coro" is a plain call.
 */
#include <asyncio.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

static int task_coro(void *arg) {
  (void)arg;
  printf(">task running\n");
  int rc = asyncio_sleep(1.0);
  if (rc < 0) return rc;
  printf(">task done\n");
  return 0;
}

/* ---- 23.1 How to Stop a Task? ---- */
static int stop_a_task(void) {
  asyncio_task_t *task;
  int rc = asyncio_create_task(&task, task_coro, NULL, NULL);
  if (rc < 0) return rc;
  rc = asyncio_sleep(0.1);
  if (rc == 0) {
    int was_cancelled = asyncio_task_cancel(task, NULL);
    printf("cancel requested: %s\n", was_cancelled == 1 ? "True" : "False");
    rc = asyncio_await(task, NULL);
    if (rc == -ECANCELED) rc = 0; /* except asyncio.CancelledError: pass */
    printf("task cancelled: %s\n", asyncio_future_cancelled(task) ? "True" : "False");
  }
  asyncio_task_free(task);
  return rc;
}

/* ---- 23.5 How to Wait for All Background Tasks? ---- */
static int background(void *arg) {
  int i = (int)(intptr_t)arg;
  int rc = asyncio_sleep(0.1 * (i + 1));
  if (rc < 0) return rc;
  printf(">background task %d done\n", i);
  return 0;
}

static int wait_for_all(void) {
  for (int i = 0; i < 3; i++) {
    int rc = asyncio_create_task(NULL, background, (void *)(intptr_t)i, NULL); /* fire and forget */
    if (rc < 0) return rc;
  }
  asyncio_task_t *all[16];
  ssize_t n = asyncio_all_tasks(NULL, all, 16);
  if (n < 0) return (int)n;
  if (n > 16) return -ENOMEM;
  /* all_tasks.remove(current_task) */
  asyncio_task_t *current = asyncio_current_task();
  size_t k = 0;
  for (ssize_t i = 0; i < n; i++)
    if (all[i] != current) all[k++] = asyncio_future_ref(all[i]);
  int rc = asyncio_wait(all, k, ASYNCIO_NO_TIMEOUT, ASYNCIO_ALL_COMPLETED, NULL);
  for (size_t i = 0; i < k; i++) asyncio_task_free(all[i]);
  if (rc < 0) return rc;
  printf("all %zu background tasks done\n", k);
  return 0;
}

/* ---- 23.7 How to Show Progress of Running Tasks? ---- */
static void progress(asyncio_future_t *task, void *arg) {
  (void)task;
  (void)arg;
  printf(".");
  fflush(stdout);
}

static int work(void *arg) { return asyncio_sleep(0.05 * ((int)(intptr_t)arg + 1)); }

static int show_progress(void) {
  asyncio_task_t *tasks[5] = {NULL};
  int rc = 0;
  for (int i = 0; i < 5 && rc == 0; i++) {
    rc = asyncio_create_task(&tasks[i], work, (void *)(intptr_t)i, NULL);
    if (rc == 0) rc = asyncio_future_add_done_callback(tasks[i], progress, NULL);
  }
  if (rc == 0) rc = asyncio_wait(tasks, 5, ASYNCIO_NO_TIMEOUT, ASYNCIO_ALL_COMPLETED, NULL);
  for (int i = 0; i < 5; i++)
    if (tasks[i]) asyncio_task_free(tasks[i]);
  if (rc < 0) return rc;
  printf("\nprogress done\n");
  return 0;
}

/* ---- 23.8 How to Run a Task After a Delay? ---- */
static int greet(void *arg) {
  printf(">hello from %s\n", (const char *)arg);
  return 0;
}

typedef struct delayed {
  asyncio_coro_fn fn;
  void *arg;
  double seconds;
} delayed_t;

/* async def delay(coro, seconds): await asyncio.sleep(seconds); await coro */
static int delay(void *arg) {
  delayed_t *d = arg;
  int rc = asyncio_sleep(d->seconds);
  if (rc < 0) return rc;
  return d->fn(d->arg);
}

static int run_after_delay(void) {
  printf("starting a task in 0.2 seconds\n");
  delayed_t d = {greet, "the delayed task", 0.2};
  asyncio_task_t *task;
  int rc = asyncio_create_task(&task, delay, &d, NULL);
  if (rc < 0) return rc;
  rc = asyncio_await(task, NULL);
  asyncio_task_free(task);
  return rc;
}

/* ---- 23.9 How to Run a Follow-Up Task? ---- */
static asyncio_task_t *followup_task;

static int followup(void *arg) {
  (void)arg;
  printf(">follow-up task running\n");
  return 0;
}

static void callback(asyncio_future_t *task, void *arg) {
  (void)task;
  (void)arg;
  asyncio_create_task(&followup_task, followup, NULL, NULL);
}

static int run_followup(void) {
  asyncio_task_t *task;
  int rc = asyncio_create_task(&task, greet, "the first task", NULL);
  if (rc < 0) return rc;
  rc = asyncio_future_add_done_callback(task, callback, NULL);
  if (rc == 0) rc = asyncio_await(task, NULL);
  asyncio_task_free(task);
  if (rc < 0) return rc;
  rc = asyncio_sleep(0);
  if (rc < 0 || !followup_task) return rc < 0 ? rc : -ENOMEM;
  rc = asyncio_await(followup_task, NULL);
  asyncio_task_free(followup_task);
  followup_task = NULL;
  return rc;
}

static int main_coro(void *arg) {
  (void)arg;
  int rc;
  printf("-- stop a task\n");
  if ((rc = stop_a_task()) < 0) return rc;
  printf("-- wait for all background tasks\n");
  if ((rc = wait_for_all()) < 0) return rc;
  printf("-- show progress\n");
  if ((rc = show_progress()) < 0) return rc;
  printf("-- run a task after a delay\n");
  if ((rc = run_after_delay()) < 0) return rc;
  printf("-- run a follow-up task\n");
  return run_followup();
}

int main(void) {
  int rc = asyncio_run(main_coro, NULL, NULL);
  if (rc < 0) {
    fprintf(stderr, "common_questions: %s\n", asyncio_strerror(rc));
    return 1;
  }
  return 0;
}
