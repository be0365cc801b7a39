#!/usr/bin/env python3
"""The Python asyncio / uvloop side of the benchmarks (issue 2).

Mirrors bench/bench_asyncio.c workload for workload; docs/bench.md has the
methodology.  Run with the Debian interpreter (/usr/bin/python3), which has
python3-uvloop.

  bench_asyncio.py [--uvloop] time [ROW ...]   rows switch, create, call_soon, timers
  bench_asyncio.py [--uvloop] memory N         N tasks asleep in asyncio.sleep(3600)

Prints "RESULT <row> <median ns per op>" (memory: RSS bytes per task), as the
C program does.  BENCH_REPS and BENCH_TARGET_MS as there.
"""
import asyncio
import gc
import os
import sys
import time

CREATE_BATCH = 1000
CALL_SOON_BATCH = 1000
TIMER_BATCH = 10000

REPS = int(os.environ.get("BENCH_REPS", "7") or 7)
TARGET_NS = float(os.environ.get("BENCH_TARGET_MS", "100") or 100) * 1e6

now_ns = time.monotonic_ns


# (1) context switch: two tasks yielding to each other with sleep(0)
async def pinger(n):
    for _ in range(n):
        await asyncio.sleep(0)


async def bench_switch(n):
    half = n // 2
    t0 = now_ns()
    a = asyncio.create_task(pinger(half))
    b = asyncio.create_task(pinger(half))
    await a
    await b
    return now_ns() - t0


# (2) create + complete: batches of tasks that return at once, then awaited
async def nop():
    return 0


async def bench_create(n):
    create_task = asyncio.get_running_loop().create_task
    t0 = now_ns()
    done = 0
    while done < n:
        b = min(CREATE_BATCH, n - done)
        tasks = [create_task(nop()) for _ in range(b)]
        for t in tasks:
            await t
        done += b
    return now_ns() - t0


# (3) call_soon throughput: a batch of callbacks, then sleep(0) behind them
callbacks_run = 0


def count_cb():
    global callbacks_run
    callbacks_run += 1


async def bench_call_soon(n):
    call_soon = asyncio.get_running_loop().call_soon
    t0 = now_ns()
    done = 0
    while done < n:
        b = min(CALL_SOON_BATCH, n - done)
        for _ in range(b):
            call_soon(count_cb)
        await asyncio.sleep(0)
        done += b
    return now_ns() - t0


# (4) timers: call_later with the same varied tiny delays as the C program
DELAYS = [((i * 7919) % 1000) * 10e-9 for i in range(TIMER_BATCH)]


async def bench_timers(n):
    loop = asyncio.get_running_loop()
    call_later = loop.call_later
    state = {}

    def timer_cb():
        state["fired"] += 1
        if state["fired"] == state["wanted"]:
            state["done"].set_result(0)

    t0 = now_ns()
    done = 0
    while done < n:
        b = min(TIMER_BATCH, n - done)
        state["done"] = loop.create_future()
        state["fired"] = 0
        state["wanted"] = b
        for i in range(b):
            call_later(DELAYS[i], timer_cb)
        await state["done"]
        done += b
    return now_ns() - t0


# (5) memory per idle task
def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGESIZE")


async def sleeper():
    await asyncio.sleep(3600)


async def bench_memory(n):
    gc.collect()
    rss0 = rss_bytes()
    tasks = [asyncio.create_task(sleeper()) for _ in range(n)]
    await asyncio.sleep(0)  # FIFO: every task is asleep after this
    rss1 = rss_bytes()
    print("RESULT memory %.1f" % ((rss1 - rss0) / n))
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


ROWS = {
    "switch": (bench_switch, 2000),
    "create": (bench_create, CREATE_BATCH),
    "call_soon": (bench_call_soon, CALL_SOON_BATCH),
    "timers": (bench_timers, TIMER_BATCH),
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
    if argv and argv[0] == "time":
        for name in argv[1:] or list(ROWS):
            if name not in ROWS:
                sys.exit("bench_asyncio.py: unknown row %r" % name)
            await measure(name)
    elif argv and argv[0] == "memory":
        await bench_memory(int(argv[1]) if len(argv) > 1 else 100000)
    else:
        sys.exit("usage: bench_asyncio.py [--uvloop] time [ROW...] | memory N")


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
