/*
 * async_context_manager - an asynchronous context manager and `async with`.
 *
 * Python origin: "Python Asyncio: The Complete Guide" (Super Fast Python),
 * part 17, "Example of an Asynchronous Context Manager and async with": a
 * class whose __aenter__ and __aexit__ each print a line and sleep half a
 * second; a coroutine enters it with `async with`, prints a line inside the
 * block, and leaves.
 *
 * The library's mapping of `async with obj:` is a pair of suspending calls,
 * <type>_enter(obj) before the block and <type>_exit(obj, rc) after it, where
 * rc is the block's outcome (0, or the error leaving it: __aexit__'s
 * exception arguments).  _exit runs even when the block fails, and its
 * return value is the statement's outcome (returning 0 for an error would
 * suppress it, as __aexit__ returning True does).
 */
#include <asyncio.h>
#include <stdio.h>

typedef struct async_context_manager {
  int entered;
} async_context_manager_t;

/* __aenter__: a suspension point. */
static int async_context_manager_enter(async_context_manager_t *cm) {
  printf(">entering the context manager\n");
  cm->entered = 1;
  return asyncio_sleep(0.5);
}

/* __aexit__(exc_type, exc, tb): a suspension point; returns the outcome. */
static int async_context_manager_exit(async_context_manager_t *cm, int rc) {
  printf(">exiting the context manager\n");
  cm->entered = 0;
  int src = asyncio_sleep(0.5);
  return rc < 0 ? rc : src;
}

static int custom_coroutine(void *arg) {
  (void)arg;
  async_context_manager_t manager = {0};
  /* async with AsyncContextManager() as manager: */
  int rc = async_context_manager_enter(&manager);
  if (rc < 0) return rc; /* __aenter__ failed: the block and __aexit__ never run */
  printf("within the manager\n");
  return async_context_manager_exit(&manager, rc);
}

int main(void) {
  int rc = asyncio_run(custom_coroutine, NULL, NULL);
  if (rc < 0) {
    fprintf(stderr, "async_context_manager: %s\n", asyncio_strerror(rc));
    return 1;
  }
  return 0;
}
