/*
 * subprocess - run a command as a child process, read its output line by
 * line through a pipe while it runs, wait for it to exit, then parse what
 * it printed.
 *
 * Python origin: asyncio_subprocess_coroutine.py from PyMOTW-3's asyncio
 * chapter ("Calling Subprocesses with Coroutines and Streams":
 * create_subprocess_exec(..., stdout=PIPE), proc.stdout.readline() until
 * b'', proc.wait(), proc.returncode, then a table of free space per mount
 * point).  Like the original it drives an explicit loop:
 * run_until_complete(run_df()), then close.
 *
 * How it differs from the original: that one runs `df -hl`, whose output
 * depends on the machine's disks, so its transcript cannot be checked.
 * This one runs printf(1) with a fixed df-like table instead: the same
 * pipe, the same line-by-line reading, the same parsing, and a transcript
 * that is the same everywhere.  The child's pid changes on every run, so
 * it is printed as <pid>.  C has no bytes repr, so "read" lines print the
 * bytes as Python's repr would for this ASCII text.
 */
#include <asyncio.h>
#include <stdio.h>
#include <string.h>

#define MAXCOLS 8
#define MAXROWS 8

/* What `df -hl` might print, fixed. */
static const char table[] =
    "Filesystem      Size  Used Avail Use%% Mounted\\n"
    "/dev/sda1        98G   61G   33G  65%% /\\n"
    "/dev/sda2       916G  412G  458G  48%% /home\\n"
    "tmpfs           7.8G  2.1M  7.8G   1%% /run\\n";

typedef struct result {
  int returncode;
  size_t nrows;
  char cells[MAXROWS][MAXCOLS][32];
  char headers[MAXCOLS][32];
  size_t ncols;
} result_t;

static void print_repr(const char *line, size_t n) {
  printf("read b'");
  for (size_t i = 0; i < n; i++) {
    if (line[i] == '\n') printf("\\n");
    else if (line[i] == '\'' || line[i] == '\\') printf("\\%c", line[i]);
    else putchar(line[i]);
  }
  printf("'\n");
}

/* Splits on whitespace into at most MAXCOLS fields (str.split()). */
static size_t split(char *s, char out[][32]) {
  size_t n = 0;
  for (char *tok = strtok(s, " \t\n"); tok && n < MAXCOLS; tok = strtok(NULL, " \t\n"))
    snprintf(out[n++], 32, "%s", tok);
  return n;
}

/* _parse_results: the first line names the columns, the others are rows. */
static void parse_results(result_t *r, char *output) {
  printf("parsing results\n");
  char *save = NULL;
  char *line = strtok_r(output, "\n", &save);
  if (!line) return;
  r->ncols = split(line, r->headers);
  while ((line = strtok_r(NULL, "\n", &save)) && r->nrows < MAXROWS) split(line, r->cells[r->nrows++]);
}

static const char *column(const result_t *r, size_t row, const char *name) {
  for (size_t c = 0; c < r->ncols; c++)
    if (!strcmp(r->headers[c], name)) return r->cells[row][c];
  return "?";
}

static int run_df(void *arg) {
  result_t *r = arg;
  printf("in run_df\n");
  char buffer[4096];
  size_t used = 0;
  char *argv[] = {"printf", (char *)table, NULL};
  asyncio_subprocess_options_t o = {.stdout_mode = ASYNCIO_SUBPROCESS_PIPE};
  printf("launching process\n");
  asyncio_process_t *proc;
  int rc = asyncio_create_subprocess_exec(&proc, "printf", argv, &o);
  if (rc < 0) {
    fprintf(stderr, "cannot start printf: %s\n", asyncio_strerror(rc));
    return rc;
  }
  printf("process started <pid>\n");
  for (;;) {
    const char *line;
    ssize_t n = asyncio_stream_readline(asyncio_process_stdout(proc), &line);
    if (n < 0) {
      rc = (int)n;
      break;
    }
    print_repr(line, (size_t)n);
    if (n == 0) {
      printf("no more output from command\n");
      break;
    }
    if (used + (size_t)n < sizeof buffer) {
      memcpy(buffer + used, line, (size_t)n);
      used += (size_t)n;
    }
  }
  printf("waiting for process to complete\n");
  int wrc = asyncio_process_wait(proc, &r->returncode);
  if (!rc) rc = wrc;
  printf("return code %d\n", r->returncode);
  asyncio_process_free(proc);
  if (rc < 0) return rc;
  buffer[used] = 0;
  if (!r->returncode) parse_results(r, buffer);
  return 0;
}

int main(void) {
  static result_t r;
  asyncio_loop_t *loop;
  int rc = asyncio_loop_new(&loop, NULL);
  if (rc < 0) {
    fprintf(stderr, "subprocess: cannot create the loop: %s\n", asyncio_strerror(rc));
    return 1;
  }
  asyncio_task_t *task = NULL;
  rc = asyncio_loop_create_task(loop, &task, run_df, &r, NULL);
  if (rc == 0) rc = asyncio_loop_run_until_complete(loop, task, NULL);
  if (task) asyncio_task_free(task);
  asyncio_loop_close(loop);
  if (rc < 0) {
    fprintf(stderr, "subprocess: %s\n", asyncio_strerror(rc));
    return 1;
  }
  if (r.returncode) {
    printf("error exit %d\n", r.returncode);
    return 0;
  }
  printf("\nFree space:\n");
  for (size_t i = 0; i < r.nrows; i++)
    printf("%-25s: %s\n", column(&r, i, "Mounted"), column(&r, i, "Avail"));
  return 0;
}
