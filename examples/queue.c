/*
 * queue - a bounded Queue between one producer and two consumers: the
 * producer blocks whenever the queue holds two items, each consumer sleeps
 * 0.01 s per unit of the number it took, and a None per consumer tells them
 * to stop; the producer waits for the queue to be fully processed (join).
 *
 * Python origin: asyncio_queue.py from PyMOTW-3's asyncio chapter
 * ("Synchronization Primitives").  Items are the numbers 0..5 and None;
 * in C an item is a pointer, so item i travels as a pointer to jobs[i] and
 * None as NULL.  asyncio.wait(consumers + [prod]) becomes awaiting the three
 * tasks, created in the same order.
 */
#include <asyncio.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define NUM_CONSUMERS 2

static int jobs[NUM_CONSUMERS * 3];

typedef struct consumer_arg {
  int n;
  asyncio_queue_t *q;
} consumer_arg_t;

static int consumer(void *arg) {
  consumer_arg_t *c = arg;
  printf("consumer %d: starting\n", c->n);
  for (;;) {
    printf("consumer %d: waiting for item\n", c->n);
    void *item;
    int rc = asyncio_queue_get(c->q, &item);
    if (rc < 0) return rc;
    if (item == NULL) {
      printf("consumer %d: has item None\n", c->n);
      /* None is the signal to stop. */
      asyncio_queue_task_done(c->q);
      break;
    }
    int i = *(int *)item;
    printf("consumer %d: has item %d\n", c->n, i);
    rc = asyncio_sleep(0.01 * i);
    if (rc < 0) return rc;
    asyncio_queue_task_done(c->q);
  }
  printf("consumer %d: ending\n", c->n);
  return 0;
}

static int producer(void *arg) {
  asyncio_queue_t *q = arg;
  printf("producer: starting\n");
  /* Add some numbers to the queue to simulate jobs. */
  for (int i = 0; i < NUM_CONSUMERS * 3; i++) {
    jobs[i] = i;
    int rc = asyncio_queue_put(q, &jobs[i]);
    if (rc < 0) return rc;
    printf("producer: added task %d to the queue\n", i);
  }
  /* Add None entries in the queue to signal the consumers to exit. */
  printf("producer: adding stop signals to the queue\n");
  for (int i = 0; i < NUM_CONSUMERS; i++) {
    int rc = asyncio_queue_put(q, NULL);
    if (rc < 0) return rc;
  }
  printf("producer: waiting for queue to empty\n");
  int rc = asyncio_queue_join(q);
  if (rc < 0) return rc;
  printf("producer: ending\n");
  return 0;
}

static int main_coro(void *arg) {
  (void)arg;
  /* Create the queue with a fixed size so the producer will block until
   * the consumers pull some items out. */
  asyncio_queue_t *q;
  int rc = asyncio_queue_new(&q, NUM_CONSUMERS);
  if (rc < 0) return rc;
  consumer_arg_t args[NUM_CONSUMERS];
  asyncio_task_t *tasks[NUM_CONSUMERS + 1];
  int created = 0;
  /* Schedule the consumer tasks, then the producer task. */
  for (; created < NUM_CONSUMERS + 1; created++) {
    if (created < NUM_CONSUMERS) {
      args[created] = (consumer_arg_t){created, q};
      rc = asyncio_create_task(&tasks[created], consumer, &args[created], NULL);
    } else {
      rc = asyncio_create_task(&tasks[created], producer, q, NULL);
    }
    if (rc < 0) break;
  }
  /* Wait for all of the coroutines to finish. */
  for (int i = 0; i < created; i++) {
    if (rc < 0) asyncio_task_cancel(tasks[i], NULL);
    int r = asyncio_await(tasks[i], NULL);
    if (r < 0 && rc >= 0) rc = r;
    asyncio_task_free(tasks[i]);
  }
  int frc = asyncio_queue_free(q);
  return rc < 0 ? rc : frc;
}

int main(int argc, char **argv) {
  /*
   * --virtual-clock (an addition of the port, for the smoke test): the
   * sleeps differ by 10 ms only, less than a loaded machine may delay a
   * wakeup, so CTest runs the loop on virtual time, where the order is exact.
   */
  asyncio_loop_options_t lo = {0};
  if (argc == 2 && strcmp(argv[1], "--virtual-clock") == 0) {
    lo.clock = ASYNCIO_CLOCK_VIRTUAL;
  } else if (argc != 1) {
    fprintf(stderr, "usage: %s [--virtual-clock]\n", argv[0]);
    return 2;
  }
  asyncio_loop_t *loop;
  int rc = asyncio_loop_new(&loop, &lo);
  if (rc < 0) {
    fprintf(stderr, "queue: cannot create the loop: %s\n", asyncio_strerror(rc));
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
    fprintf(stderr, "queue: %s\n", asyncio_strerror(rc < 0 ? rc : crc));
    return 1;
  }
  return 0;
}
