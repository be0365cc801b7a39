#!/usr/bin/env python3
"""The Python asyncio / uvloop side of bench/bench_sync.c (issue 4).

The same three workloads with asyncio.Queue and asyncio.Lock:

  pingpong  two tasks bounce an item through two unbounded queues; ns per round trip
  mpmc      4 producers and 4 consumers on one Queue(maxsize=128), a None per
            consumer as the stop signal; ns per item
  lock      4 tasks take turns on one Lock, each holding it across
            asyncio.sleep(0); ns per acquire/release

  bench_sync.py [--uvloop] time [ROW ...]

Prints "RESULT <row> <median ns per op>".  BENCH_REPS and BENCH_TARGET_MS as
in bench_sync.c.  Run with /usr/bin/python3, which has python3-uvloop.
"""
import asyncio
import os
import sys
import time

MPMC_PRODUCERS = 4
MPMC_CONSUMERS = 4
MPMC_MAXSIZE = 128
LOCK_TASKS = 4

REPS = int(os.environ.get("BENCH_REPS", "7") or 7)
TARGET_NS = float(os.environ.get("BENCH_TARGET_MS", "100") or 100) * 1e6

now_ns = time.monotonic_ns


async def ponger(to, frm, n):
    for _ in range(n):
        await frm.put(await to.get())


async def bench_pingpong(n):
    to, frm = asyncio.Queue(), asyncio.Queue()
    t0 = now_ns()
    t = asyncio.create_task(ponger(to, frm, n))
    for i in range(n):
        await to.put(i + 1)
        await frm.get()
    await t
    return now_ns() - t0


async def mp_producer(q, per):
    for i in range(per):
        await q.put(i + 1)


async def mp_consumer(q, counts, c):
    while True:
        item = await q.get()
        if item is None:
            return
        counts[c] += 1


async def bench_mpmc(n):
    per = n // MPMC_PRODUCERS
    q = asyncio.Queue(MPMC_MAXSIZE)
    counts = [0] * MPMC_CONSUMERS
    t0 = now_ns()
    cons = [asyncio.create_task(mp_consumer(q, counts, c)) for c in range(MPMC_CONSUMERS)]
    prod = [asyncio.create_task(mp_producer(q, per)) for _ in range(MPMC_PRODUCERS)]
    for t in prod:
        await t
    for _ in range(MPMC_CONSUMERS):
        await q.put(None)
    for t in cons:
        await t
    ns = now_ns() - t0
    if sum(counts) != per * MPMC_PRODUCERS:
        sys.exit("bench_sync.py: mpmc: items lost")
    return ns


async def lk_worker(lock, per):
    for _ in range(per):
        async with lock:
            await asyncio.sleep(0)  # hold it across a switch: the others queue


async def bench_lock(n):
    lock = asyncio.Lock()
    t0 = now_ns()
    tasks = [asyncio.create_task(lk_worker(lock, n // LOCK_TASKS)) for _ in range(LOCK_TASKS)]
    for t in tasks:
        await t
    return now_ns() - t0


ROWS = {
    "pingpong": (bench_pingpong, 1000),
    "mpmc": (bench_mpmc, 1000 * MPMC_PRODUCERS),
    "lock": (bench_lock, 1000 * LOCK_TASKS),
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
    print(f"RESULT {name} {per[len(per) // 2]:.3f}")
    print(f"INFO {name} n={n} min={per[0]:.3f} max={per[-1]:.3f}", flush=True)


async def main(names):
    for name in names:
        await measure(name)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        args = args[1:]
    if not args or args[0] != "time":
        sys.exit("usage: bench_sync.py [--uvloop] time [ROW ...]")
    names = args[1:] or list(ROWS)
    for n in names:
        if n not in ROWS:
            sys.exit(f"bench_sync.py: unknown row {n!r}")
    asyncio.run(main(names))
