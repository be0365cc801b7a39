/*
 * asyncio.h - asyncio for C.  The only header users need.
 *
 * One header per asyncio module under asyncio/, named after Lib/asyncio.
 */
#ifndef ASYNCIO_H
#define ASYNCIO_H

#define ASYNCIO_VERSION_MAJOR 0
#define ASYNCIO_VERSION_MINOR 1
#define ASYNCIO_VERSION_PATCH 0

#include "asyncio/alloc.h"
#include "asyncio/errors.h"
#include "asyncio/events.h"
#include "asyncio/futures.h"
#include "asyncio/tasks.h"
#include "asyncio/runners.h"
#include "asyncio/timeouts.h"
#include "asyncio/taskgroups.h"
#include "asyncio/asyncgen.h"
#include "asyncio/locks.h"
#include "asyncio/queues.h"
#include "asyncio/threads.h"
#include "asyncio/files.h"
#include "asyncio/dns.h"
#include "asyncio/sockets.h"
#include "asyncio/protocols.h"
#include "asyncio/transports.h"
#include "asyncio/servers.h"
#include "asyncio/sslproto.h"
#include "asyncio/streams.h"
#include "asyncio/subprocess.h"

#endif
