/*
 * subprocess_protocol - run a command as a child process through the
 * protocol API: a SubprocessProtocol collects what the child writes to its
 * stdout, and the table it printed is parsed once the process is done.
 *
 * Python origin: asyncio_subprocess_protocol.py from PyMOTW-3's asyncio
 * chapter ("Using the Protocol Abstraction with Subprocesses":
 * loop.subprocess_exec(factory, 'df', '-hl', stdin=None, stderr=None), a
 * DFProtocol whose pipe_data_received collects stdout and whose
 * process_exited reads get_returncode() and parses, a Future cmd_done the
 * coroutine awaits, transport.close() in finally).  Like the original it
 * drives an explicit loop: run_until_complete(run_df(loop)), then close.
 *
 * How it differs from the original:
 *   - it runs printf(1) with a fixed df-like table instead of `df -hl`,
 *     whose output depends on the machine's disks (as examples/subprocess.c
 *     does), so the transcript is the same everywhere;
 *   - the child prints only once its stdin is closed, which run_df does
 *     right after "waiting for process to complete".  Without that, a
 *     quick child's output and exit could be seen before that line, or its
 *     exit before its output (both are possible in Python too; df is just
 *     slow), and the transcript would not be fixed.  So stdin is a pipe,
 *     closed through get_pipe_transport(0), where the original inherits it;
 *   - the results are parsed in connection_lost, which comes after the exit
 *     AND the end of every pipe, so all of stdout is there for sure; the
 *     original parses in process_exited and relies on df's output having
 *     arrived first.  process_exited still prints what the original prints;
 *   - the child's pid changes on every run, so it is printed as <pid>.
 */
#include <asyncio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXCOLS 8
#define MAXROWS 8

/* What `df -hl` might print, fixed. */
static const char table[] =
    "Filesystem      Size  Used Avail Use%% Mounted\\n"
    "/dev/sda1        98G   61G   33G  65%% /\\n"
    "/dev/sda2       916G  412G  458G  48%% /home\\n"
    "tmpfs           7.8G  2.1M  7.8G   1%% /run\\n";

static const char *const FD_NAMES[] = {"stdin", "stdout", "stderr"};

typedef struct result {
  int returncode;
  size_t nrows, ncols;
  char headers[MAXCOLS][32];
  char cells[MAXROWS][MAXCOLS][32];
} result_t;

/* DFProtocol(done_future) */
typedef struct df_protocol {
  asyncio_future_t *done; /* cmd_done */
  asyncio_transport_t *transport;
  char buffer[4096];
  size_t used;
  result_t *results;
} df_protocol_t;

/* Splits on whitespace into at most MAXCOLS fields (str.split()). */
static size_t split(char *s, char out[][32]) {
  size_t n = 0;
  char *save = NULL;
  for (char *tok = strtok_r(s, " \t", &save); tok && n < MAXCOLS;
       tok = strtok_r(NULL, " \t", &save))
    snprintf(out[n++], 32, "%s", tok);
  return n;
}

/* _parse_results: one row of headers, then one row per filesystem. */
static void parse_results(result_t *r, char *output) {
  printf("parsing results\n");
  char *save = NULL;
  char *line = strtok_r(output, "\n", &save);
  if (!line) return;
  r->ncols = split(line, r->headers);
  while ((line = strtok_r(NULL, "\n", &save)) && r->nrows < MAXROWS)
    split(line, r->cells[r->nrows++]);
}

static void connection_made(asyncio_transport_t *transport, void *inst) {
  df_protocol_t *self = inst;
  (void)asyncio_subprocess_transport_get_pid(transport); /* printed as <pid>: it changes */
  printf("process started <pid>\n");
  self->transport = transport;
}

static void pipe_data_received(asyncio_transport_t *transport, int fd, const void *data,
                               size_t n, void *inst) {
  (void)transport;
  df_protocol_t *self = inst;
  printf("read %zu bytes from %s\n", n, FD_NAMES[fd]);
  if (fd == 1 && self->used + n < sizeof self->buffer) {
    memcpy(self->buffer + self->used, data, n);
    self->used += n;
  }
}

static void process_exited(asyncio_transport_t *transport, void *inst) {
  df_protocol_t *self = inst;
  printf("process exited\n");
  asyncio_subprocess_transport_get_returncode(transport, &self->results->returncode);
  printf("return code %d\n", self->results->returncode);
}

/* The last callback: the exit is known and stdout has ended. */
static void connection_lost(asyncio_transport_t *transport, int error, void *inst) {
  (void)transport;
  (void)error;
  df_protocol_t *self = inst;
  self->transport = NULL; /* freed when this returns */
  if (!self->results->returncode) {
    self->buffer[self->used] = 0;
    parse_results(self->results, self->buffer);
  }
  asyncio_future_set_result(self->done, 0, NULL);
}

static const asyncio_protocol_t df_protocol = {
    .connection_made = connection_made,
    .connection_lost = connection_lost,
    .pipe_data_received = pipe_data_received,
    .process_exited = process_exited,
};

/* functools.partial(DFProtocol, cmd_done) */
static int df_factory(void *arg, const asyncio_protocol_t **protocol, void **instance) {
  *protocol = &df_protocol;
  *instance = arg;
  return 0;
}

static int run_df(void *arg) {
  df_protocol_t *proto = arg;
  asyncio_loop_t *loop = asyncio_get_running_loop();
  printf("in run_df\n");
  int rc = asyncio_future_new(&proto->done, loop);
  if (rc < 0) return rc;
  /* The table comes after cat sees the end of stdin (see the top of the file). */
  char *argv[] = {"sh", "-c", "cat >/dev/null; printf \"$1\"", "sh", (char *)table, NULL};
  asyncio_subprocess_options_t o = {.stdin_mode = ASYNCIO_SUBPROCESS_PIPE,
                                    .stdout_mode = ASYNCIO_SUBPROCESS_PIPE};
  printf("launching process\n");
  asyncio_transport_t *transport = NULL;
  rc = asyncio_loop_subprocess_exec(loop, df_factory, proto, "sh", argv, &o, &transport, NULL);
  if (rc < 0) {
    fprintf(stderr, "cannot start the command: %s\n", asyncio_strerror(rc));
    asyncio_future_free(proto->done);
    return rc;
  }
  printf("waiting for process to complete\n");
  asyncio_transport_close(asyncio_subprocess_transport_get_pipe_transport(transport, 0));
  rc = asyncio_await(proto->done, NULL);
  /* finally: transport.close() -- already gone once cmd_done is set. */
  if (rc < 0 && proto->transport) asyncio_transport_close(proto->transport);
  asyncio_future_free(proto->done);
  return rc < 0 ? rc : 0;
}

int main(void) {
  static result_t results;
  static df_protocol_t proto = {.results = &results};
  asyncio_loop_t *loop;
  int rc = asyncio_loop_new(&loop, NULL);
  if (rc < 0) {
    fprintf(stderr, "subprocess_protocol: cannot create the loop: %s\n", asyncio_strerror(rc));
    return 1;
  }
  asyncio_task_t *task = NULL;
  rc = asyncio_loop_create_task(loop, &task, run_df, &proto, NULL);
  if (rc == 0) rc = asyncio_loop_run_until_complete(loop, task, NULL);
  if (task) asyncio_task_free(task);
  asyncio_loop_close(loop);
  if (rc < 0) {
    fprintf(stderr, "subprocess_protocol: %s\n", asyncio_strerror(rc));
    return 1;
  }
  if (results.returncode) {
    printf("error exit %d\n", results.returncode);
    return 0;
  }
  printf("\nFree space:\n");
  for (size_t i = 0; i < results.nrows; i++) {
    const char *mounted = "?", *avail = "?";
    for (size_t c = 0; c < results.ncols; c++) {
      if (!strcmp(results.headers[c], "Mounted")) mounted = results.cells[i][c];
      if (!strcmp(results.headers[c], "Avail")) avail = results.cells[i][c];
    }
    printf("%-25s: %s\n", mounted, avail);
  }
  return 0;
}
