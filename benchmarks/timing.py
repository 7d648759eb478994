"""Shared timing helpers: medians of repeated calls, of one function or of several in turns."""

import time

import numpy as np


def median_seconds(fn, *args, min_runs=20, min_seconds=0.5, warmup=3):
    """Median wall time of `fn(*args)` over at least `min_runs` calls.

    Calls are repeated until both `min_runs` and `min_seconds` are reached, so
    fast functions get more samples. `fn` must block until its result is ready
    (TensorFlow on CPU does; on GPU the callers fetch a scalar).
    """
    medians = interleaved_medians(
        {"fn": lambda: fn(*args)}, min_runs=min_runs, min_seconds=min_seconds, warmup=warmup
    )
    return medians["fn"]


def interleaved_medians(fns, finish=None, repeat=1, min_runs=20, min_seconds=0.5, warmup=3):
    """Median seconds per call of each function in the dict `fns`, timed in turns.

    Every round calls each function once (or `repeat` times in a row, the time
    divided by `repeat`), so drift in a shared machine's load hits all of them
    alike and the ratios of the medians compare like with like; timing each
    function in its own block lets a busy spell land on one side only.
    `finish(result)` is called on the last result of each sample and must
    block until the work is done (on GPU: fetch a value; on CPU TensorFlow
    has finished when the call returns).
    """
    finish = finish or (lambda result: result)
    for fn in fns.values():
        for _ in range(warmup):
            finish(fn())
    times = {name: [] for name in fns}
    start = time.perf_counter()
    while len(times[next(iter(fns))]) < min_runs or time.perf_counter() - start < min_seconds:
        for name, fn in fns.items():
            t = time.perf_counter()
            for _ in range(repeat):
                result = fn()
            finish(result)
            times[name].append((time.perf_counter() - t) / repeat)
    return {name: float(np.median(ts)) for name, ts in times.items()}


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
