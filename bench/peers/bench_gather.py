#!/usr/bin/env python3
"""The Python asyncio / uvloop side of bench/bench_gather.c (issue 3).

  bench_gather.py [--uvloop] [N]

Same rows as the C program (gather_coros, gather_tasks, gather_yield), each
the median of BENCH_REPS runs after one warm-up, in ns per task; prints
"RESULT <row> <ns per task>".  Run with /usr/bin/python3 (python3-uvloop).
"""
import asyncio
import os
import sys
import time

REPS = int(os.environ.get("BENCH_REPS", "7") or 7)


async def nop():
    return 0


async def yield_once():
    await asyncio.sleep(0)


async def gather_coros(n, fn):
    await asyncio.gather(*(fn() for _ in range(n)))


async def gather_tasks(n):
    create_task = asyncio.get_running_loop().create_task
    tasks = [create_task(nop()) for _ in range(n)]
    await asyncio.gather(*tasks)


ROWS = [
    ("gather_coros", lambda n: gather_coros(n, nop)),
    ("gather_tasks", gather_tasks),
    ("gather_yield", lambda n: gather_coros(n, yield_once)),
]


async def main(n):
    for name, fn in ROWS:
        await fn(n)  # warm-up
        per = []
        for _ in range(REPS):
            t0 = time.monotonic_ns()
            await fn(n)
            per.append((time.monotonic_ns() - t0) / n)
        per.sort()
        print(f"RESULT {name} {per[len(per) // 2]:.3f}", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    use_uvloop = "--uvloop" in args
    args = [a for a in args if a != "--uvloop"]
    n = int(args[0]) if args else 10000
    if use_uvloop:
        import uvloop
        loop = uvloop.new_event_loop()
        try:
            loop.run_until_complete(main(n))
        finally:
            loop.close()
    else:
        asyncio.run(main(n))
