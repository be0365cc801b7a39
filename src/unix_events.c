/*
 * unix_events.c - Unix sockets and pipes (Python: asyncio.unix_events
 * _UnixSelectorEventLoop.create_unix_server, connect_read_pipe,
 * connect_write_pipe; the pipe transports themselves live in
 * selector_events.c, as kinds READ_PIPE / WRITE_PIPE).
 *
 * Paths: a leading '@' names the Linux abstract namespace (Python spells it
 * with a leading NUL, which a C string cannot hold).  create_unix_server
 * always removes a stale socket file before binding; on close, unless
 * cleanup_socket is off, it removes the file again if it is still the
 * socket it bound (Python 3.13's cleanup_socket, which compares inode
 * numbers), also for a socket given with sock=.
 */
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "selector_events.h"

int asyncio__unix_addr(const char *path, struct sockaddr_storage *ss, socklen_t *len) {
  struct sockaddr_un *un = (struct sockaddr_un *)ss;
  memset(un, 0, sizeof *un);
  un->sun_family = AF_UNIX;
  size_t n = strlen(path);
  if (!n) return -EINVAL;
  if (path[0] == '@') {
    if (n > sizeof un->sun_path) return -ENAMETOOLONG;
    memcpy(un->sun_path + 1, path + 1, n - 1); /* sun_path[0] = 0: abstract */
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
  } else {
    if (n >= sizeof un->sun_path) return -ENAMETOOLONG;
    memcpy(un->sun_path, path, n);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  }
  return 0;
}

ASYNCIO_API int asyncio_loop_create_unix_server(asyncio_loop_t *loop,
                                                asyncio_protocol_factory_fn factory,
                                                void *factory_arg, const char *path,
                                                const asyncio_server_options_t *o,
                                                asyncio_server_t **server) {
  if (server) *server = NULL;
  if (!loop || !factory || !server) return -EINVAL;
  int use_sock = o && o->use_sock;
  if (use_sock ? path != NULL : !path) return -EINVAL;
  if (use_sock && o->sock < 0) return -EBADF; /* as create_connection(sock=) */
  if (o && (o->backlog < 0 || !(o->accept_retry_delay >= 0))) return -EINVAL; /* NaN too */
  if (asyncio__server_check_tls(o)) return -EINVAL;
  int rc = asyncio__check_thread(loop);
  if (rc) return rc;
  if (asyncio__running_loop != loop || !loop->current) return ASYNCIO_ENOTASK;
  if (use_sock) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int type = 0;
    socklen_t tl = sizeof type;
    if (getsockname(o->sock, (struct sockaddr *)&ss, &sl) < 0 ||
        getsockopt(o->sock, SOL_SOCKET, SO_TYPE, &type, &tl) < 0)
      return errno == EBADF ? -EBADF : -ENOTSOCK;
    if (ss.ss_family != AF_UNIX || type != SOCK_STREAM) return -EINVAL;
    rc = asyncio__set_nonblock(o->sock);
    if (rc) return rc;
    /*
     * Python 3.13 applies cleanup_socket to a given socket too, at the path
     * it is bound to (none for an unnamed or abstract one).
     */
    const struct sockaddr_un *un = (const struct sockaddr_un *)&ss;
    size_t off = offsetof(struct sockaddr_un, sun_path);
    char bound[sizeof un->sun_path + 1];
    const char *cleanup = NULL;
    if (!(o->cleanup_socket < 0) && sl > off && un->sun_path[0] != 0) {
      size_t n = sl - off < sizeof un->sun_path ? sl - off : sizeof un->sun_path;
      memcpy(bound, un->sun_path, n);
      bound[n] = 0; /* the kernel may leave it unterminated at full length */
      cleanup = bound;
    }
    return asyncio__server_new(loop, factory, factory_arg, &o->sock, 1, o, cleanup, server);
  }
  struct sockaddr_storage ss;
  socklen_t sl;
  rc = asyncio__unix_addr(path, &ss, &sl);
  if (rc) return rc;
  int abstract = path[0] == '@';
  if (!abstract) {
    /*
     * A socket file left by a server that died can never be bound again, so
     * it goes whatever cleanup_socket says (that option is only about close,
     * as in Python).  Any other kind of file stays, and bind reports it.
     */
    struct stat st;
    if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path);
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
    rc = -errno;
    close(fd);
    return rc;
  }
  rc = asyncio__server_new(loop, factory, factory_arg, &fd, 1, o, abstract ? NULL : path, server);
  if (rc < 0) {
    close(fd);
    if (!abstract) unlink(path);
  }
  return rc;
}

static int check_pipe_fd(int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0) return -errno;
  if (!(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || S_ISCHR(st.st_mode)))
    return -EINVAL; /* "Pipe transport is only for pipes, sockets and character devices" */
  return 0;
}

static int connect_pipe(asyncio_loop_t *loop, asyncio_protocol_factory_fn factory,
                        void *factory_arg, int fd, int kind, asyncio_transport_t **transport,
                        void **instance) {
  if (transport) *transport = NULL;
  if (!loop || !factory || !transport) return -EINVAL;
  if (fd < 0) return -EBADF;
  int rc = asyncio__check_thread(loop);
  if (rc) return rc;
  if (asyncio__running_loop != loop || !loop->current) return ASYNCIO_ENOTASK;
  rc = check_pipe_fd(fd);
  if (rc) return rc;
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return -errno;
  /*
   * The end must be open the way it is used (Python does not check): a
   * read pipe on a write-only end would report nothing until the reader
   * went away, then a read error; a write pipe on a read-only end would
   * take data arriving in the pipe for its reader going away.  EBADF is
   * what read(2) / write(2) would say.
   */
  int acc = fl & O_ACCMODE;
  if (acc != O_RDWR && acc != (kind == ASYNCIO__TK_READ_PIPE ? O_RDONLY : O_WRONLY)) return -EBADF;
  if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -errno;
  if (kind == ASYNCIO__TK_WRITE_PIPE) {
    /* What the Python interpreter does at startup: a broken pipe is EPIPE, not death. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL &&
        !(sa.sa_flags & SA_SIGINFO))
      signal(SIGPIPE, SIG_IGN);
  }
  int taken = 0;
  rc = asyncio__transport_make_and_wait(loop, fd, kind, factory, factory_arg, transport, instance,
                                        &taken);
  /* Python makes the pipe non-blocking only once the factory has given a
   * protocol: a refused connection leaves the caller's descriptor as it was. */
  if (!taken && !(fl & O_NONBLOCK)) (void)fcntl(fd, F_SETFL, fl);
  return rc;
}

ASYNCIO_API int asyncio_loop_connect_read_pipe(asyncio_loop_t *loop,
                                               asyncio_protocol_factory_fn factory,
                                               void *factory_arg, int fd,
                                               asyncio_transport_t **transport, void **instance) {
  return connect_pipe(loop, factory, factory_arg, fd, ASYNCIO__TK_READ_PIPE, transport, instance);
}

ASYNCIO_API int asyncio_loop_connect_write_pipe(asyncio_loop_t *loop,
                                                asyncio_protocol_factory_fn factory,
                                                void *factory_arg, int fd,
                                                asyncio_transport_t **transport,
                                                void **instance) {
  return connect_pipe(loop, factory, factory_arg, fd, ASYNCIO__TK_WRITE_PIPE, transport, instance);
}
