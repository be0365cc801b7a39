/*
 * exception_group - gather(..., return_exceptions=True) over three failing
 * coroutines, their errors collected into a group and handled per type.
 *
 * Python origin: the "Async Exception Handling" example of Real Python's
 * "Python's asyncio: A Hands-On Walkthrough": coro_a, coro_b and coro_c
 * sleep 1, 2 and 0.5 seconds and raise ValueError, TypeError and
 * IndexError; main() gathers them with return_exceptions=True and raises an
 * ExceptionGroup of the exceptions in the results; the caller handles it
 * with one `except*` clause per type, in the order ValueError, TypeError,
 * IndexError.
 *
 * In C an error is a code: the program says which code stands for which
 * Python exception (ValueError is -EINVAL, as in asyncio_pyname(); the other
 * two are the program's own choice) and keeps each coroutine's message next
 * to it.  main() returns ASYNCIO_EEXCEPTIONGROUP (ExceptionGroup) with the
 * group filled in, and the handler splits it by code as `except*` does.
 */
#include <asyncio.h>
#include <errno.h>
#include <stdio.h>

#define VALUE_ERROR (-EINVAL)
#define TYPE_ERROR (-EPROTOTYPE)
#define INDEX_ERROR (-ERANGE)

typedef struct failing {
  double delay;
  int error;
  const char *message;
} failing_t;

static const failing_t coros[3] = {
    {1.0, VALUE_ERROR, "Error in coro A"},
    {2.0, TYPE_ERROR, "Error in coro B"},
    {0.5, INDEX_ERROR, "Error in coro C"},
};

/* async def coro_x(): await asyncio.sleep(delay); raise Error(message) */
static int coro(void *arg) {
  const failing_t *c = arg;
  int rc = asyncio_sleep(c->delay);
  if (rc < 0) return rc;
  return c->error;
}

/* An ExceptionGroup("Errors", exceptions): the failed coroutines, in result order. */
typedef struct group {
  const failing_t *members[3];
  int n;
} group_t;

static int main_coro(void *arg) {
  group_t *group = arg;
  asyncio_coro_call_t calls[3];
  for (int i = 0; i < 3; i++) calls[i] = (asyncio_coro_call_t){coro, (void *)&coros[i]};
  asyncio_gather_options_t o = {.return_exceptions = true};
  asyncio_future_t *g;
  int rc = asyncio_gather_coros(&g, calls, 3, &o);
  if (rc < 0) return rc;
  rc = asyncio_await(g, NULL);
  if (rc >= 0) {
    /* exceptions = [e for e in results if isinstance(e, Exception)] */
    for (size_t i = 0; i < 3; i++)
      if (asyncio_gather_result(g, i, NULL) < 0) group->members[group->n++] = &coros[i];
    rc = group->n ? ASYNCIO_EEXCEPTIONGROUP : 0;
  }
  asyncio_future_free(g);
  return rc;
}

/* except* NAME as group: print the members whose code is `error`. */
static void handle(const group_t *group, int error, const char *name) {
  int n = 0;
  for (int i = 0; i < group->n; i++) n += group->members[i]->error == error;
  if (!n) return;
  printf("[%s handled] (", name);
  int k = 0;
  for (int i = 0; i < group->n; i++) {
    if (group->members[i]->error != error) continue;
    printf("%s%s('%s')", k ? ", " : "", name, group->members[i]->message);
    k++;
  }
  printf(n == 1 ? ",)\n" : ")\n");
}

int main(void) {
  group_t group = {{NULL}, 0};
  int rc = asyncio_run(main_coro, &group, NULL);
  if (rc == ASYNCIO_EEXCEPTIONGROUP) {
    handle(&group, VALUE_ERROR, "ValueError");
    handle(&group, TYPE_ERROR, "TypeError");
    handle(&group, INDEX_ERROR, "IndexError");
    return 0;
  }
  if (rc < 0) {
    fprintf(stderr, "exception_group: %s\n", asyncio_strerror(rc));
    return 1;
  }
  return 0;
}
