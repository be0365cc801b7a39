/*
 * lock - a Lock guarding a shared resource: main takes the lock, starts two
 * coroutines that want it, and a callback releases it 0.1 s later; the
 * coroutines then get it one after the other, in the order they asked.
 *
 * Python origin: asyncio_lock.py from PyMOTW-3's asyncio chapter
 * ("Synchronization Primitives"), the version with main(loop) whose
 * transcript the chapter shows.  coro1 uses the lock as a context manager
 * (`with await lock`, today `async with lock`): asyncio_lock_enter/_exit;
 * coro2 acquires and releases by hand.  asyncio.wait([coro1(), coro2()])
 * wraps the coroutines in tasks, which the port creates in the order the
 * transcript shows, and awaits.
 */
#include <asyncio.h>
#include <errno.h>
#include <stdio.h>

static void unlock(void *arg) {
  printf("callback releasing lock\n");
  asyncio_lock_release(arg);
}

static int coro1(void *arg) {
  asyncio_lock_t *lock = arg;
  printf("coro1 waiting for the lock\n");
  int rc = asyncio_lock_enter(lock);
  if (rc < 0) return rc;
  printf("coro1 acquired lock\n");
  rc = asyncio_lock_exit(lock, 0);
  printf("coro1 released lock\n");
  return rc;
}

static int coro2(void *arg) {
  asyncio_lock_t *lock = arg;
  printf("coro2 waiting for the lock\n");
  int rc = asyncio_lock_acquire(lock);
  if (rc < 0) return rc;
  printf("coro2 acquired lock\n");
  printf("coro2 released lock\n");
  return asyncio_lock_release(lock);
}

/* asyncio.wait(coros): run them as tasks and wait for all of them. */
static int wait_all(asyncio_coro_fn *fns, int n, void *arg) {
  asyncio_task_t *tasks[2];
  int created = 0, rc = 0;
  for (; created < n; created++)
    if ((rc = asyncio_create_task(&tasks[created], fns[created], arg, NULL)) < 0) break;
  for (int i = 0; i < created; i++) {
    if (rc < 0) asyncio_task_cancel(tasks[i], NULL);
    int r = asyncio_await(tasks[i], NULL);
    if (r < 0 && rc >= 0) rc = r;
    asyncio_task_free(tasks[i]);
  }
  return rc;
}

static int main_coro(void *arg) {
  asyncio_loop_t *loop = arg;
  /* Create and acquire a shared lock. */
  asyncio_lock_t *lock;
  int rc = asyncio_lock_new(&lock);
  if (rc < 0) return rc;
  printf("acquiring the lock before starting coroutines\n");
  rc = asyncio_lock_acquire(lock);
  if (rc >= 0) {
    printf("lock acquired: %s\n", asyncio_lock_locked(lock) ? "True" : "False");
    /* Schedule a callback to unlock the lock. */
    rc = asyncio_loop_call_later(loop, 0.1, unlock, lock, NULL);
  }
  if (rc >= 0) {
    /* Run the coroutines that want to use the lock. */
    printf("waiting for coroutines\n");
    asyncio_coro_fn fns[] = {coro1, coro2};
    rc = wait_all(fns, 2, lock);
  }
  int frc = asyncio_lock_free(lock);
  return rc < 0 ? rc : frc;
}

int main(void) {
  asyncio_loop_t *loop;
  int rc = asyncio_loop_new(&loop, NULL);
  if (rc < 0) {
    fprintf(stderr, "lock: cannot create the loop: %s\n", asyncio_strerror(rc));
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
    fprintf(stderr, "lock: %s\n", asyncio_strerror(rc < 0 ? rc : crc));
    return 1;
  }
  return 0;
}
