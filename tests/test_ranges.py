"""benchmarks/ranges.py: reruns of a benchmark merged into median (min-max) cells."""

import pytest

from benchmarks.ranges import merge


def test_numeric_cells_become_median_and_range_and_the_rest_is_kept():
    runs = [
        "header A\n\n| d | ms | ratio | name |\n|---|---|---|---|\n| 1024 | 0.100 | 2.00x | fwht |\n",
        "header B\n\n| d | ms | ratio | name |\n|---|---|---|---|\n| 1024 | 0.300 | 1.50x | fwht |\n",
        "header C\n\n| d | ms | ratio | name |\n|---|---|---|---|\n| 1024 | 0.200 | 3.00x | fwht |\n",
    ]
    assert merge(runs).splitlines() == [
        "header A",
        "",
        "| d | ms | ratio | name |",
        "|---|---|---|---|",
        "| 1024 | 0.200 (0.100-0.300) | 2.00x (1.50x-3.00x) | fwht |",
    ]


def test_runs_of_different_commands_are_refused():
    with pytest.raises(ValueError, match="not have the same tables"):
        merge(["| a |\n|---|\n| 1 |\n", "| a |\n|---|\n| 1 |\n| 2 |\n"])
