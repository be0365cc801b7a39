/*
 * base_subprocess.c - the protocol form of child processes (Python:
 * asyncio.base_subprocess BaseSubprocessTransport, WriteSubprocessPipeProto,
 * ReadSubprocessPipeProto; unix_events._UnixSubprocessTransport; the
 * argument checks of base_events' loop.subprocess_exec / subprocess_shell).
 *
 * A subprocess transport is a struct asyncio_transport of kind
 * ASYNCIO__TK_SUBPROCESS (fd -1) at the start of a subproc_t; the public
 * transport calls dispatch close() here and refuse what a
 * SubprocessTransport lacks.  Starting and reaping the child are
 * spawn.c's, shared with the stream form (subprocess.c).  Each pipe is an
 * ordinary pipe transport (selector_events.c) whose protocol is one of the
 * pipe protocols below, embedded here: they forward data, connection_lost
 * and stdin's pause/resume_writing to the subprocess protocol with the
 * subprocess transport as its transport.
 *
 * Order.  As Python's _pending_calls: until connection_made has run,
 * events are kept in a FIFO (data copied; a pipe's loss and the exit use
 * entries embedded in the record, so they cannot fail), and delivered in
 * order right after connection_made.  From then on events are delivered as
 * they happen: they already come from the loop (a pipe transport's I/O
 * callback or its connection_lost handle, the pidfd's reader), never from
 * inside a call of the user, so Python's extra call_soon is not needed.
 * connection_lost goes through a handle reserved when the transport was
 * made, once the child was reaped and every pipe lost (_try_finish); the
 * creating task's wakeup is queued before it, so the call returns a
 * transport that is still alive.
 *
 * Ownership.  The record is a loop resource; it is freed after its
 * protocol's connection_lost returns (or when the creating task, which
 * holds it while it waits, lets go, if that is later).  When the call
 * fails after the child started, the record is abandoned: no protocol,
 * pipes closed, child killed; it goes by itself once the child is reaped
 * and the pipes are lost.  At loop close a running child is killed and
 * reaped, and the record freed without callbacks.
 */
#include <signal.h>
#include <stddef.h>
#include <unistd.h>

#include <asyncio/subprocess.h>

#include "selector_events.h"
#include "spawn.h"

typedef struct subproc subproc_t;

/* WriteSubprocessPipeProto / ReadSubprocessPipeProto: which pipe, of whom. */
typedef struct pipe_proto {
  subproc_t *sp;
  int fd;
} pipe_proto_t;

enum { EV_DATA, EV_PIPE_LOST, EV_EXITED };

/*
 * An event kept until connection_made (_pending_calls).  The exit and the
 * pipes' losses are embedded in the record, so they are never lost for
 * lack of memory; data is copied into an allocated one (its bytes follow
 * the struct).
 */
typedef struct pending {
  struct pending *next;
  uint8_t type, fd;
  int error;
  size_t len;
} pending_t;

struct subproc {
  asyncio_transport_t t; /* first: the public handle; t.res is the loop resource */
  asyncio__child_t child;
  asyncio_transport_t *pipes[3]; /* connected pipe transports (NULL: none, or lost) */
  pipe_proto_t pp[3];
  int unconnected[3];    /* our ends of pipes not yet made transports, or -1 */
  uint8_t has_pipe[3];   /* a pipe transport was or will be made for fd */
  uint8_t lost[3];       /* its connection_lost ran */
  uint8_t live;          /* connection_made ran (or abandoned): deliver at once */
  uint8_t finished;      /* _finished */
  pending_t *phead, *ptail; /* events before connection_made, in order */
  pending_t ev_lost[3], ev_exit;
};

static subproc_t *sub_of(const asyncio_transport_t *t) { return (subproc_t *)(uintptr_t)t; }

static void sub_free(subproc_t *sp) { asyncio__free_line(sp, sizeof *sp); }

/* ---- events ---------------------------------------------------------------------------- */

static void call_connection_lost(void *arg) {
  subproc_t *sp = arg;
  asyncio_transport_t *t = &sp->t;
  if (t->proto && t->proto->connection_lost) t->proto->connection_lost(t, 0, t->inst);
  if (t->h_start) asyncio__handle_release(t->loop, t->h_start); /* abandoned before start */
  t->h_start = NULL;
  asyncio__res_unlink(t->loop, &t->res);
  t->closing = 1;
  t->dead = 1;
  t->proto = NULL;
  if (!t->holds) sub_free(sp);
}

static void schedule_connection_lost(subproc_t *sp) {
  asyncio_transport_t *t = &sp->t;
  if (!t->h_lost) return; /* already queued: exactly once */
  asyncio__handle_t *h = t->h_lost;
  t->h_lost = NULL; /* the ready queue owns it now */
  h->fn = call_connection_lost;
  h->arg = sp;
  asyncio__ready_push(t->loop, h);
}

/* _try_finish: the exit is known and every pipe is lost. */
static void try_finish(subproc_t *sp) {
  if (sp->finished || !sp->child.exited) return;
  for (int i = 0; i < 3; i++)
    if (sp->has_pipe[i] && !sp->lost[i]) return;
  sp->finished = 1;
  if (sp->live) schedule_connection_lost(sp); /* else sub_start does, after the pending ones */
}

/* A pipe's lost event was delivered (or dropped): forget it; a held one is freed. */
static void pipe_gone(subproc_t *sp, int fd, int held) {
  asyncio_transport_t *pt = sp->pipes[fd];
  sp->pipes[fd] = NULL;
  if (held && pt) asyncio__transport_unhold(pt);
}

static void deliver(subproc_t *sp, int type, int fd, int error, const void *data, size_t n,
                    int held) {
  asyncio_transport_t *t = &sp->t;
  const asyncio_protocol_t *p = t->proto; /* read each time: set_protocol may change it */
  if (type == EV_DATA) {
    if (p && p->pipe_data_received) p->pipe_data_received(t, fd, data, n, t->inst);
  } else if (type == EV_PIPE_LOST) {
    if (p && p->pipe_connection_lost) p->pipe_connection_lost(t, fd, error, t->inst);
    pipe_gone(sp, fd, held);
  } else if (p && p->process_exited) {
    p->process_exited(t, t->inst);
  }
}

static void push(subproc_t *sp, pending_t *e) {
  e->next = NULL;
  if (sp->ptail)
    sp->ptail->next = e;
  else
    sp->phead = e;
  sp->ptail = e;
}

/* Takes the next pending event: 1, with *e (free it with pend_free), or 0. */
static int pop(subproc_t *sp, pending_t **e) {
  *e = sp->phead;
  if (!*e) return 0;
  sp->phead = (*e)->next;
  if (!sp->phead) sp->ptail = NULL;
  return 1;
}

static void pend_free(pending_t *e) {
  if (e->type == EV_DATA) asyncio__free(e, sizeof *e + e->len);
}

/*
 * _call: straight to the protocol once live, else kept for sub_start.  A
 * pipe lost meanwhile is held (allocated, dead) until its event is
 * delivered, so get_pipe_transport still answers it, as Python's does.
 */
static void event(subproc_t *sp, int type, int fd, int error) {
  if (sp->live) {
    deliver(sp, type, fd, error, NULL, 0, 0);
  } else {
    pending_t *e = type == EV_EXITED ? &sp->ev_exit : &sp->ev_lost[fd];
    e->type = (uint8_t)type;
    e->fd = (uint8_t)fd;
    e->error = error;
    e->len = 0;
    if (type == EV_PIPE_LOST && sp->pipes[fd]) sp->pipes[fd]->holds++;
    push(sp, e);
  }
  try_finish(sp);
}

/* Drops the pending events without delivering them (abandoned, loop close). */
static void drop_pending(subproc_t *sp) {
  pending_t *e;
  while (pop(sp, &e)) {
    if (e->type == EV_PIPE_LOST) pipe_gone(sp, e->fd, 1);
    pend_free(e);
  }
}

/* _process_exited: returncode is set (spawn.c) before the protocol hears of it. */
static void child_exited(asyncio__child_t *c) {
  event((subproc_t *)((char *)c - offsetof(subproc_t, child)), EV_EXITED, 0, 0);
}

/* ---- the pipe protocols -------------------------------------------------------------------- */

static void pipe_made(asyncio_transport_t *pt, void *inst) {
  pipe_proto_t *pp = inst;
  subproc_t *sp = pp->sp;
  sp->pipes[pp->fd] = pt;
}

static void pipe_lost(asyncio_transport_t *pt, int error, void *inst) {
  (void)pt;
  pipe_proto_t *pp = inst;
  subproc_t *sp = pp->sp;
  sp->lost[pp->fd] = 1;
  event(sp, EV_PIPE_LOST, pp->fd, error); /* pt is freed when this returns, unless held */
}

static void pipe_data(asyncio_transport_t *pt, const void *data, size_t n, void *inst) {
  pipe_proto_t *pp = inst;
  subproc_t *sp = pp->sp;
  if (sp->live) {
    deliver(sp, EV_DATA, pp->fd, 0, data, n, 0);
    return;
  }
  /* Before connection_made: a copy, in order with the other events. */
  pending_t *e = asyncio__alloc(sizeof *e + n);
  if (!e) {
    asyncio__transport_force_close(pt, -ENOMEM); /* as a transport that cannot buffer */
    return;
  }
  e->type = EV_DATA;
  e->fd = (uint8_t)pp->fd;
  e->error = 0;
  e->len = n;
  memcpy(e + 1, data, n);
  push(sp, e);
}

static void pipe_pause_writing(asyncio_transport_t *pt, void *inst) {
  (void)pt;
  asyncio_transport_t *t = &((pipe_proto_t *)inst)->sp->t;
  if (t->proto && t->proto->pause_writing) t->proto->pause_writing(t, t->inst);
}

static void pipe_resume_writing(asyncio_transport_t *pt, void *inst) {
  (void)pt;
  asyncio_transport_t *t = &((pipe_proto_t *)inst)->sp->t;
  if (t->proto && t->proto->resume_writing) t->proto->resume_writing(t, t->inst);
}

static const asyncio_protocol_t write_pipe_proto = {
    .connection_made = pipe_made,
    .connection_lost = pipe_lost,
    .pause_writing = pipe_pause_writing,
    .resume_writing = pipe_resume_writing,
};

static const asyncio_protocol_t read_pipe_proto = {
    .connection_made = pipe_made,
    .connection_lost = pipe_lost,
    .data_received = pipe_data,
};

static int pipe_factory(void *arg, const asyncio_protocol_t **p, void **inst) {
  pipe_proto_t *pp = arg;
  *p = pp->fd == 0 ? &write_pipe_proto : &read_pipe_proto;
  *inst = pp;
  return 0;
}

/* ---- the transport ------------------------------------------------------------------------- */

/* connection_made, the creator's wakeup, then what happened meanwhile. */
static void sub_start(void *arg) {
  subproc_t *sp = arg;
  asyncio_transport_t *t = &sp->t;
  t->started = 1;
  if (t->proto && t->proto->connection_made) t->proto->connection_made(t, t->inst);
  if (t->waiter) {
    asyncio_future_t *w = t->waiter;
    t->waiter = NULL;
    if (!asyncio_future_done(w)) asyncio_future_set_result(w, 0, NULL);
    asyncio__future_unref(w);
  }
  /* What happened meanwhile, in order; new events still queue behind it. */
  pending_t *e;
  while (pop(sp, &e)) {
    deliver(sp, e->type, e->fd, e->error, e + 1, e->len, 1);
    pend_free(e);
  }
  sp->live = 1;
  if (sp->finished) schedule_connection_lost(sp);
}

int asyncio__subprocess_close(asyncio_transport_t *t) {
  subproc_t *sp = sub_of(t);
  if (t->closing) return 0;
  t->closing = 1;
  for (int i = 0; i < 3; i++)
    if (sp->pipes[i]) asyncio_transport_close(sp->pipes[i]); /* stdin: after its buffer */
  /* Python: kill() unless the exit is known (ProcessLookupError ignored). */
  if (!sp->child.exited) (void)kill(sp->child.pid, SIGKILL);
  return 0;
}

/* The call failed after the child started: no protocol; close, kill, let it go by itself. */
static void abandon(subproc_t *sp) {
  asyncio_transport_t *t = &sp->t;
  t->proto = NULL;
  t->inst = NULL;
  sp->live = 1;
  drop_pending(sp);
  asyncio__subprocess_close(t);
  if (sp->finished) schedule_connection_lost(sp);
}

/* Loop close: no callbacks; the child is killed and reaped; the creator's task is gone. */
static void sub_destroy(asyncio__res_t *r) {
  subproc_t *sp = (subproc_t *)((char *)r - offsetof(asyncio_transport_t, res));
  asyncio_transport_t *t = &sp->t;
  asyncio__res_unlink(t->loop, r);
  asyncio__spawn_kill_reap(&sp->child);
  drop_pending(sp); /* held pipes are dead: no longer loop resources */
  for (int i = 0; i < 3; i++)
    if (sp->unconnected[i] >= 0) close(sp->unconnected[i]);
  /* Reserved handles never queued go back; queued ones went with the ready queue. */
  if (t->h_start) asyncio__handle_release(t->loop, t->h_start);
  if (t->h_lost) asyncio__handle_release(t->loop, t->h_lost);
  if (t->waiter) asyncio__future_unref(t->waiter);
  sub_free(sp);
}

/* ---- loop.subprocess_exec / subprocess_shell ---------------------------------------------- */

static int create(asyncio_loop_t *loop, asyncio_protocol_factory_fn factory, void *factory_arg,
                  const char *file, char *const argv[], const asyncio_subprocess_options_t *o,
                  asyncio_transport_t **transport, void **instance) {
  if (transport) *transport = NULL;
  if (!loop || !factory || !transport || !file || !argv || !argv[0]) return -EINVAL;
  /* NULL: Python's subprocess_exec defaults, stdin = stdout = stderr = PIPE. */
  int modes[3] = {ASYNCIO_SUBPROCESS_PIPE, ASYNCIO_SUBPROCESS_PIPE, ASYNCIO_SUBPROCESS_PIPE};
  if (o) {
    if (o->limit) return -EINVAL; /* not a subprocess_exec argument */
    modes[0] = o->stdin_mode;
    modes[1] = o->stdout_mode;
    modes[2] = o->stderr_mode;
  }
  int rc = asyncio__spawn_check_modes(modes);
  if (rc) return rc;
  rc = asyncio__check_thread(loop);
  if (rc) return rc;
  if (asyncio__running_loop != loop || !loop->current) return ASYNCIO_ENOTASK;
  asyncio__net_t *net;
  rc = asyncio__net_get(loop, &net);
  if (rc) return rc;

  /* Everything that can fail for memory before the child exists. */
  subproc_t *sp = asyncio__calloc_line(sizeof *sp);
  if (!sp) return -ENOMEM;
  asyncio_transport_t *t = &sp->t;
  t->h_start = asyncio__handle_new(loop);
  t->h_lost = t->h_start ? asyncio__handle_new(loop) : NULL;
  asyncio_future_t *waiter = NULL;
  if (t->h_lost) rc = asyncio_future_new(&waiter, loop);
  if (!t->h_lost || rc) {
    if (t->h_start) asyncio__handle_release(loop, t->h_start);
    if (t->h_lost) asyncio__handle_release(loop, t->h_lost);
    sub_free(sp);
    return -ENOMEM;
  }

  int parent[3];
  pid_t pid = 0;
  rc = asyncio__spawn_child(file, argv, o ? o->env : NULL, o ? o->cwd : NULL, modes, parent,
                            &pid);
  if (!rc) {
    rc = asyncio__spawn_watch(&sp->child, loop, pid, child_exited);
    if (rc) asyncio__spawn_abort(pid, parent);
  }
  if (rc) {
    asyncio__future_unref(waiter);
    asyncio__handle_release(loop, t->h_start);
    asyncio__handle_release(loop, t->h_lost);
    sub_free(sp);
    return rc;
  }
  t->loop = loop;
  t->fd = -1;
  t->kind = ASYNCIO__TK_SUBPROCESS;
  t->res.destroy = sub_destroy;
  asyncio__res_link(loop, &t->res);
  for (int i = 0; i < 3; i++) {
    sp->pp[i].sp = sp;
    sp->pp[i].fd = i;
    sp->unconnected[i] = parent[i];
    /* Counted before the first suspension: the child may exit meanwhile. */
    sp->has_pipe[i] = parent[i] >= 0;
  }
  if (parent[0] >= 0) asyncio__spawn_ignore_sigpipe();

  /* _connect_pipes: stdin, stdout, stderr, each awaiting its connection_made. */
  for (int i = 0; i < 3; i++) {
    int fd = sp->unconnected[i];
    if (fd < 0) continue;
    if (rc) {
      close(fd);
      sp->unconnected[i] = -1;
      sp->has_pipe[i] = 0;
      continue;
    }
    asyncio_transport_t *pt;
    int taken = 0;
    /* make_and_wait suspends only once the transport took fd (loop close frees it then). */
    sp->unconnected[i] = -1;
    rc = asyncio__transport_make_and_wait(loop, fd,
                                          i == 0 ? ASYNCIO__TK_WRITE_PIPE : ASYNCIO__TK_READ_PIPE,
                                          pipe_factory, &sp->pp[i], &pt, NULL, &taken);
    if (rc && !taken) {
      close(fd);
      sp->has_pipe[i] = 0; /* no transport: nothing to wait for */
    }
    /* Taken but failed: the transport reaches pipe_lost by itself. */
  }
  const asyncio_protocol_t *p = NULL;
  void *inst = NULL;
  if (!rc) {
    rc = factory(factory_arg, &p, &inst);
    if (rc >= 0 && !p) rc = -EINVAL;
  }
  if (rc < 0) {
    asyncio__future_unref(waiter);
    abandon(sp);
    return rc;
  }

  t->proto = p;
  t->inst = inst;
  t->waiter = asyncio_future_ref(waiter);
  t->holds = 1;
  asyncio__handle_t *h = t->h_start;
  t->h_start = NULL; /* the ready queue owns it now */
  h->fn = sub_start;
  h->arg = sp;
  asyncio__ready_push(loop, h);
  /*
   * The transport's reference keeps the waiter until connection_made and
   * asyncio_await holds its own, so ours goes now: a task destroyed by loop
   * close while it waits must leave no future behind.
   */
  asyncio__future_unref(waiter);
  rc = asyncio_await(waiter, NULL);
  if (rc == -ECANCELED && !t->dead) asyncio__subprocess_close(t); /* transp.close(); raise */
  if (--t->holds == 0 && t->dead) {
    sub_free(sp);
    return rc < 0 ? rc : -ENOTCONN;
  }
  if (rc < 0) return rc;
  *transport = t;
  if (instance) *instance = inst;
  return 0;
}

ASYNCIO_API int asyncio_loop_subprocess_exec(asyncio_loop_t *loop,
                                             asyncio_protocol_factory_fn factory,
                                             void *factory_arg, const char *file,
                                             char *const argv[],
                                             const asyncio_subprocess_options_t *options,
                                             asyncio_transport_t **transport, void **instance) {
  return create(loop, factory, factory_arg, file, argv, options, transport, instance);
}

ASYNCIO_API int asyncio_loop_subprocess_shell(asyncio_loop_t *loop,
                                              asyncio_protocol_factory_fn factory,
                                              void *factory_arg, const char *cmd,
                                              const asyncio_subprocess_options_t *options,
                                              asyncio_transport_t **transport, void **instance) {
  if (!cmd) {
    if (transport) *transport = NULL;
    return -EINVAL;
  }
  char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
  return create(loop, factory, factory_arg, "/bin/sh", argv, options, transport, instance);
}

/* ---- SubprocessTransport ------------------------------------------------------------------- */

static int is_sub(const asyncio_transport_t *t) {
  return t && t->kind == ASYNCIO__TK_SUBPROCESS && !t->dead;
}

ASYNCIO_API pid_t asyncio_subprocess_transport_get_pid(const asyncio_transport_t *transport) {
  if (!is_sub(transport)) return -EINVAL;
  return sub_of(transport)->child.pid;
}

ASYNCIO_API int asyncio_subprocess_transport_get_returncode(const asyncio_transport_t *transport,
                                                            int *returncode) {
  if (!is_sub(transport) || !returncode) return -EINVAL;
  const subproc_t *sp = sub_of(transport);
  if (!sp->child.exited) return 0;
  *returncode = sp->child.returncode;
  return 1;
}

ASYNCIO_API asyncio_transport_t *asyncio_subprocess_transport_get_pipe_transport(
    const asyncio_transport_t *transport, int fd) {
  if (!is_sub(transport) || fd < 0 || fd > 2) return NULL;
  return sub_of(transport)->pipes[fd];
}

ASYNCIO_API int asyncio_subprocess_transport_send_signal(asyncio_transport_t *transport, int sig) {
  if (!is_sub(transport)) return -EINVAL;
  int rc = asyncio__check_owner(transport->loop);
  if (rc) return rc;
  return asyncio__spawn_signal(&sub_of(transport)->child, sig);
}

ASYNCIO_API int asyncio_subprocess_transport_terminate(asyncio_transport_t *transport) {
  return asyncio_subprocess_transport_send_signal(transport, SIGTERM);
}

ASYNCIO_API int asyncio_subprocess_transport_kill(asyncio_transport_t *transport) {
  return asyncio_subprocess_transport_send_signal(transport, SIGKILL);
}
