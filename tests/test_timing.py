"""The benchmarks' timing helper: structure only (no timing is asserted)."""

from benchmarks.timing import interleaved_medians


def test_interleaved_medians_calls_the_functions_in_turns():
    calls, finished = [], []
    fns = {"a": lambda: calls.append("a") or "a", "b": lambda: calls.append("b") or "b"}
    medians = interleaved_medians(
        fns, finish=finished.append, repeat=3, min_runs=4, min_seconds=0, warmup=1
    )
    assert set(medians) == {"a", "b"}
    assert all(m >= 0 for m in medians.values())
    warmup, timed = calls[:2], calls[2:]
    assert warmup == ["a", "b"]
    # Each round: three calls of a, then three of b; finish sees the last result.
    assert len(timed) == 4 * 6
    assert timed[:12] == ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"] * 3
    assert finished[2:6] == ["a", "b", "a", "b"]
