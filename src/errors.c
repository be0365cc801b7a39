/*
 * errors.c - messages and names for error codes (libuv's uv_strerror /
 * uv_err_name, driven by the X-macro in asyncio/errors.h).
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

ASYNCIO_API const char *asyncio_strerror(int err) {
  switch (err) {
#define XX(name, off, msg, py) \
  case ASYNCIO_E##name:        \
    return msg;
    ASYNCIO_ERRNO_MAP(XX)
#undef XX
  case 0:
    return "success";
  default:
    break;
  }
  if (err < 0 && err > -4096) {
    const char *d = strerrordesc_np(-err);
    if (d) return d;
  }
  return "unknown error";
}

ASYNCIO_API const char *asyncio_errname(int err) {
  switch (err) {
#define XX(name, off, msg, py) \
  case ASYNCIO_E##name:        \
    return "ASYNCIO_E" #name;
    ASYNCIO_ERRNO_MAP(XX)
#undef XX
  case 0:
    return "OK";
  default:
    break;
  }
  if (err < 0 && err > -4096) {
    const char *n = strerrorname_np(-err);
    if (n) return n;
  }
  return "UNKNOWN";
}

ASYNCIO_API const char *asyncio_pyname(int err) {
  switch (err) {
#define XX(name, off, msg, py) \
  case ASYNCIO_E##name:        \
    return py;
    ASYNCIO_ERRNO_MAP(XX)
#undef XX
  case 0:
    return "None";
  case -ECANCELED:
    return "asyncio.CancelledError";
  case -ETIMEDOUT:
    return "TimeoutError";
  case -EINTR:
    return "KeyboardInterrupt";
  case -ENOMEM:
    return "MemoryError";
  case -EINVAL:
    return "ValueError";
  case -ECONNRESET:
    return "ConnectionResetError";
  case -ECONNREFUSED:
    return "ConnectionRefusedError";
  case -ECONNABORTED:
    return "ConnectionAbortedError";
  case -EPIPE:
    return "BrokenPipeError";
  case -ENOENT:
    return "FileNotFoundError";
  case -EEXIST:
    return "FileExistsError";
  case -EACCES:
  case -EPERM:
    return "PermissionError";
  case -ECHILD:
    return "ChildProcessError";
  case -EAGAIN:
    return "BlockingIOError";
  case -EISDIR:
    return "IsADirectoryError";
  case -ENOTDIR:
    return "NotADirectoryError";
  case -ESRCH:
    return "ProcessLookupError";
  default:
    break;
  }
  if (err < 0 && err > -4096) return "OSError";
  return "Exception";
}
