/*
 * asyncio/errors.h - the error model.
 *
 * Every fallible call returns an int (ssize_t for byte counts): >= 0 is
 * success, < 0 is an error.  Errors are negative errno values where POSIX has
 * a fitting one (-ECANCELED is asyncio.CancelledError, -ETIMEDOUT is
 * TimeoutError, -EINTR is KeyboardInterrupt) and library codes below
 * ASYNCIO_ERR_BASE for asyncio's own exceptions.  A call that fails has
 * scheduled nothing and taken ownership of nothing.
 */
#ifndef ASYNCIO_ERRORS_H
#define ASYNCIO_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

#define ASYNCIO_ERR_BASE (-4000)

/*
 * The library's own codes: XX(NAME, offset, message, Python name).
 * ASYNCIO_E<NAME> == ASYNCIO_ERR_BASE - offset.
 */
#define ASYNCIO_ERRNO_MAP(XX)                                                          \
  XX(INVALIDSTATE, 1, "invalid state for this operation", "asyncio.InvalidStateError")  \
  XX(NOLOOP, 2, "no running event loop", "RuntimeError")                                \
  XX(NOTASK, 3, "not called from inside a task", "RuntimeError")                        \
  XX(WRONGTHREAD, 4, "called from a thread that does not run the loop", "RuntimeError") \
  XX(CLOSED, 5, "event loop is closed", "RuntimeError")                                 \
  XX(RUNNING, 6, "event loop is already running", "RuntimeError")                       \
  XX(QUEUEEMPTY, 7, "queue is empty", "asyncio.QueueEmpty")                             \
  XX(QUEUEFULL, 8, "queue is full", "asyncio.QueueFull")                                \
  XX(QUEUESHUTDOWN, 9, "queue is shut down", "asyncio.QueueShutDown")                   \
  XX(INCOMPLETEREAD, 10, "stream ended before the expected bytes arrived",             \
     "asyncio.IncompleteReadError")                                                     \
  XX(LIMITOVERRUN, 11, "separator not found within the buffer limit",                   \
     "asyncio.LimitOverrunError")                                                       \
  XX(BROKENBARRIER, 12, "barrier is broken", "asyncio.BrokenBarrierError")              \
  XX(EXCEPTIONGROUP, 13, "several errors occurred", "ExceptionGroup")                   \
  XX(SSL, 14, "TLS error", "ssl.SSLError")                                              \
  XX(GAI, 15, "address resolution failed", "socket.gaierror")                           \
  XX(STACKOVERFLOW, 16, "task stack overflow", "RecursionError")                        \
  XX(SENDFILENOTAVAILABLE, 17, "sendfile is not available for this transport",         \
     "asyncio.SendfileNotAvailableError")                                               \
  XX(GAI_NONAME, 18, "name or service not known", "socket.gaierror")                    \
  XX(GAI_AGAIN, 19, "temporary failure in name resolution", "socket.gaierror")          \
  XX(GAI_FAIL, 20, "non-recoverable failure in name resolution", "socket.gaierror")     \
  XX(GAI_SERVICE, 21, "service not supported for the socket type", "socket.gaierror")   \
  XX(GAI_FAMILY, 22, "address family not supported", "socket.gaierror")                 \
  XX(GAI_SOCKTYPE, 23, "socket type not supported", "socket.gaierror")                  \
  XX(GAI_BADFLAGS, 24, "bad value for resolver flags", "socket.gaierror")               \
  XX(GAI_NODATA, 25, "no address associated with the host name", "socket.gaierror")     \
  XX(GAI_ADDRFAMILY, 26, "host has no address in the requested family",                \
     "socket.gaierror")                                                                 \
  XX(GAI_OVERFLOW, 27, "argument buffer overflow", "socket.gaierror")                  \
  XX(GENERATOREXIT, 28, "asynchronous generator is being closed", "GeneratorExit")       \
  XX(ASYNCGENRUNNING, 29, "asynchronous generator is already running", "RuntimeError")   \
  XX(ASYNCGENIGNOREDEXIT, 30, "async generator ignored GeneratorExit", "RuntimeError")   \
  XX(SSLCERTVERIFY, 31, "TLS certificate verify failed", "ssl.SSLCertVerificationError")

enum {
#define ASYNCIO__ERR_ENUM(name, off, msg, py) ASYNCIO_E##name = ASYNCIO_ERR_BASE - (off),
  ASYNCIO_ERRNO_MAP(ASYNCIO__ERR_ENUM)
#undef ASYNCIO__ERR_ENUM
  ASYNCIO__ERR_LAST
};

/*
 * A human-readable message for an error code (library code or negative errno).
 * Never returns NULL; unknown codes give "unknown error".  Thread-safe.
 */
const char *asyncio_strerror(int err);

/*
 * The symbolic name of an error code: "ECANCELED", "ASYNCIO_EQUEUEFULL", ...
 * Never returns NULL; unknown codes give "UNKNOWN".  Thread-safe.
 */
const char *asyncio_errname(int err);

/*
 * The Python exception an error code stands for ("asyncio.CancelledError",
 * "TimeoutError", "OSError", ...).  Never returns NULL.
 */
const char *asyncio_pyname(int err);

#ifdef __cplusplus
}
#endif
#endif
