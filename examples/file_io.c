/*
 * file_io - async file I/O: a task writes a few lines to a file in a fresh
 * temporary directory, reads them back and prints them line by line, while
 * the loop stays free (every system call runs on the default executor).
 *
 * Python origin: the asyncio.to_thread / aiofiles idiom:
 *     async with aiofiles.open(path, "w") as f: await f.write(text)
 *     async with aiofiles.open(path) as f:
 *         async for line in f: print(line, end="")
 */
#include <asyncio.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *lines[] = {"first line\n", "second line\n", "third line\n"};

static int amain(void *arg) {
  const char *path = arg;
  int fd = asyncio_file_open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
  if (fd < 0) return fd;
  for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
    ssize_t k = asyncio_file_write(fd, lines[i], strlen(lines[i]));
    if (k < 0) {
      asyncio_file_close(fd);
      return (int)k;
    }
  }
  int rc = asyncio_file_close(fd);
  if (rc < 0) return rc;

  /* Read back in small pieces and print whole lines (async for line in f). */
  fd = asyncio_file_open(path, O_RDONLY, 0);
  if (fd < 0) return fd;
  char line[256];
  size_t used = 0;
  int n = 0;
  for (;;) {
    char chunk[8];
    ssize_t k = asyncio_file_read(fd, chunk, sizeof chunk);
    if (k < 0) {
      asyncio_file_close(fd);
      return (int)k;
    }
    if (k == 0) break;
    for (ssize_t i = 0; i < k; i++) {
      if (used < sizeof line - 1) line[used++] = chunk[i];
      if (chunk[i] == '\n') {
        line[used] = 0;
        printf("line %d: %s", ++n, line);
        used = 0;
      }
    }
  }
  rc = asyncio_file_close(fd);
  if (rc < 0) return rc;
  struct stat st;
  rc = asyncio_file_stat(path, &st);
  if (rc < 0) return rc;
  printf("%d lines, %lld bytes\n", n, (long long)st.st_size);
  return asyncio_file_unlink(path);
}

int main(void) {
  char dir[] = "/tmp/asyncio-file-io-XXXXXX";
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  char path[sizeof dir + 16];
  snprintf(path, sizeof path, "%s/lines.txt", dir);
  int rc = asyncio_run(amain, path, NULL);
  rmdir(dir);
  if (rc < 0) {
    fprintf(stderr, "file_io: %s\n", asyncio_strerror(rc));
    return 1;
  }
  return 0;
}
