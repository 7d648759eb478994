"""Shared timing helper: the median wall time of repeated calls."""

import time

import numpy as np


def median_seconds(fn, *args, min_runs=20, min_seconds=0.5, warmup=3):
    """Median wall time of `fn(*args)` over at least `min_runs` calls.

    Calls are repeated until both `min_runs` and `min_seconds` are reached, so
    fast functions get more samples. `fn` must block until its result is ready
    (TensorFlow on CPU does; on GPU the callers fetch a scalar).
    """
    for _ in range(warmup):
        fn(*args)
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
