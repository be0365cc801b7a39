"""The Python asyncio / uvloop side of bench/bench_timeouts.c (issue 3).

  bench_timeouts.py [--uvloop] time [ROW ...]   rows taskgroup, wait_for, timeout

Prints "RESULT <row> <median ns per op>", as the C program does, so
bench/run_timeouts.sh can put both in one table.  Environment: BENCH_REPS (7),
BENCH_TARGET_MS (100),
BENCH_GROUP_SIZE (10000).  Needs Python 3.11+ (TaskGroup, asyncio.timeout).
"""

import asyncio
import os
import sys
import time

GROUP_SIZE = int(os.environ.get("BENCH_GROUP_SIZE", "10000"))
BATCH = 1000
REPS = int(os.environ.get("BENCH_REPS", "7"))
TARGET_NS = float(os.environ.get("BENCH_TARGET_MS", "100")) * 1e6


async def nop():
    pass


async def bench_taskgroup(n):
    t0 = time.perf_counter_ns()
    for _ in range(n // GROUP_SIZE):
        async with asyncio.TaskGroup() as tg:
            for _ in range(GROUP_SIZE):
                tg.create_task(nop())
    return time.perf_counter_ns() - t0


async def bench_wait_for(n):
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter_ns()
    for _ in range(n):
        fut = loop.create_future()
        loop.call_soon(fut.set_result, 1)
        await asyncio.wait_for(fut, 10.0)
    return time.perf_counter_ns() - t0


async def bench_timeout(n):
    t0 = time.perf_counter_ns()
    for _ in range(n):
        async with asyncio.timeout(10.0):
            await asyncio.sleep(0)
    return time.perf_counter_ns() - t0


ROWS = {
    "taskgroup": (bench_taskgroup, GROUP_SIZE),
    "wait_for": (bench_wait_for, BATCH),
    "timeout": (bench_timeout, BATCH),
}


async def measure(name):
    fn, start_n = ROWS[name]
    n = start_n
    await fn(n)  # warm-up
    while True:
        ns = await fn(n)
        if ns >= 20e6 or n >= 1 << 34:
            break
        n *= 2
    n = max(start_n, int(n * TARGET_NS / ns))
    n -= n % start_n
    per = sorted([(await fn(n)) / n for _ in range(REPS)])
    print("RESULT %s %.3f" % (name, per[len(per) // 2]))
    print("INFO %s n=%d min=%.3f max=%.3f" % (name, n, per[0], per[-1]))
    sys.stdout.flush()


async def main(argv):
    if not argv or argv[0] != "time":
        sys.exit("usage: bench_timeouts.py [--uvloop] time [ROW...]")
    for name in argv[1:] or list(ROWS):
        if name not in ROWS:
            sys.exit("bench_timeouts.py: unknown row %r" % name)
        await measure(name)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--uvloop":
        import uvloop

        args = args[1:]
        loop = uvloop.new_event_loop()
        label = "uvloop " + uvloop.__version__
    else:
        loop = asyncio.new_event_loop()
        label = "asyncio"
    print("INFO runtime python %s %s" % (sys.version.split()[0], label))
    try:
        loop.run_until_complete(main(args))
    finally:
        loop.close()
