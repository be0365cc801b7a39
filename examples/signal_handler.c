/*
 * signal_handler - Unix signals delivered as event loop callbacks.
 *
 * Python origin: asyncio_signal.py from PyMOTW-3's asyncio chapter
 * ("Receiving Unix Signals").  Handlers for SIGHUP, SIGUSR1 and SIGINT are
 * added with loop.add_signal_handler(sig, functools.partial(signal_handler,
 * name=...)); a coroutine then sends the process each signal with os.kill
 * and yields, and the handler reports it from the loop.  In C the partial is
 * the callback's argument, the signal's name.
 *
 * Two changes keep the transcript deterministic: the original yields with
 * asyncio.sleep(0.01) and trusts the handler to have run by then, so here
 * each handler also sets an asyncio.Event that the sender waits for; and
 * the first line leaves out the process id.  Like the original it drives an
 * explicit loop (run_until_complete, then close, which removes the
 * handlers), so SIGINT reaches our handler rather than asyncio_run's.
 */
#include <asyncio.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static asyncio_event_t *received; /* set by every handler */

typedef struct signal_name {
  int sig;
  const char *name;
} signal_name_t;

static const signal_name_t handled[] = {
    {SIGHUP, "SIGHUP"},
    {SIGUSR1, "SIGUSR1"},
    {SIGINT, "SIGINT"},
};

/* signal_handler(name): runs on the loop, not inside the C signal handler. */
static void signal_handler(void *arg) {
  const signal_name_t *s = arg;
  printf("signal_handler('%s')\n", s->name);
  asyncio_event_set(received);
}

static int send_signals(void *arg) {
  (void)arg;
  /* SIGHUP twice, as in the original */
  static const signal_name_t *const order[] = {&handled[0], &handled[0], &handled[1],
                                               &handled[2]};
  printf("starting send_signals\n");
  for (size_t i = 0; i < sizeof order / sizeof *order; i++) {
    printf("sending %s\n", order[i]->name);
    if (kill(getpid(), order[i]->sig) < 0) return -1;
    printf("yielding control\n");
    int rc = asyncio_event_wait(received);
    if (rc < 0) return rc;
    asyncio_event_clear(received);
  }
  return 0;
}

int main(void) {
  asyncio_loop_t *loop;
  int rc = asyncio_loop_new(&loop, NULL);
  if (rc < 0) {
    fprintf(stderr, "signal_handler: cannot create the loop: %s\n", asyncio_strerror(rc));
    return 1;
  }
  rc = asyncio_event_new(&received);
  for (size_t i = 0; rc >= 0 && i < sizeof handled / sizeof *handled; i++)
    rc = asyncio_loop_add_signal_handler(loop, handled[i].sig, signal_handler,
                                         (void *)&handled[i]);
  if (rc >= 0) {
    asyncio_task_t *task;
    rc = asyncio_loop_create_task(loop, &task, send_signals, NULL, NULL);
    if (rc >= 0) {
      rc = asyncio_loop_run_until_complete(loop, task, NULL);
      asyncio_task_free(task);
    }
  }
  int crc = asyncio_loop_close(loop);
  if (received) asyncio_event_free(received);
  if (rc < 0 || crc < 0) {
    fprintf(stderr, "signal_handler: %s\n", asyncio_strerror(rc < 0 ? rc : crc));
    return 1;
  }
  return 0;
}
