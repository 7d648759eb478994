"""Merge reruns of a benchmark: every numeric cell as its median over the runs, with the range.

The outputs of `benchmarks/fwht.py` (or `layers.py`) saved from a few runs of
the same command hold the same tables with other numbers. This prints the
first run's text with each timing or ratio cell replaced by
`median (min-max)` over the runs; cells that are not numbers (names,
parameter counts equal in every run) are kept as they are.

Usage:
    python benchmarks/ranges.py run1.md run2.md run3.md > merged.md
"""

import argparse
import re

import numpy as np

_NUMBER = re.compile(r"^(-?\d+(?:\.\d+)?)(x?)$")


def _cells(line):
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _merge_cell(values):
    matches = [_NUMBER.match(v.replace(",", "")) for v in values]
    if not all(matches) or len(set(values)) == 1:
        return values[0]
    numbers = [float(m.group(1)) for m in matches]
    suffix = matches[0].group(2)
    decimals = len(matches[0].group(1).partition(".")[2])
    fmt = f"{{:.{decimals}f}}{suffix}"
    low, mid, high = min(numbers), float(np.median(numbers)), max(numbers)
    return f"{fmt.format(mid)} ({fmt.format(low)}-{fmt.format(high)})"


def merge(texts):
    """The first text with its table cells merged over all texts (the same tables, row for row)."""
    runs = [text.splitlines() for text in texts]
    table_lines = [[line for line in lines if line.startswith("|") and not line.startswith("|---")]
                   for lines in runs]
    if len({len(lines) for lines in table_lines}) != 1:
        raise ValueError("The runs do not have the same tables (rows differ); merge outputs of one command.")
    merged = iter([
        "| " + " | ".join(_merge_cell(list(column)) for column in zip(*[_cells(line) for line in rows])) + " |"
        for rows in zip(*table_lines)
    ])
    return "\n".join(next(merged) if line.startswith("|") and not line.startswith("|---") else line
                     for line in runs[0])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="saved outputs of one benchmark command")
    args = parser.parse_args(argv)
    texts = []
    for path in args.runs:
        with open(path) as f:
            texts.append(f.read())
    print(merge(texts))


if __name__ == "__main__":
    main()
