"""Why the fried rows of Table 1 trail the paper: each hypothesis as a run of mnist_deep_fried.py.

Each cell is one command of `examples/mnist_deep_fried.py` (3 seeds, its own
results folder under --out) that changes one thing against a committed table
under the paper's protocol (docs/results/table1_paper) or under our Adam recipe
(docs/results/table1_adam, without dropout, or table1_adam_dropout, the main
job's default since 0.6: dropout after the fried rows' FC layer):

- `caffe`: Caffe's LeNet settings the paper's solver came with, its "xavier"
  filler and a bias learning rate of 2x (`--init caffe --bias-lr-mult 2`);
- `inner-0.2`: dropout inside the AdaptiveFastfood layer at 0.2 in each of its
  three places (`--dropout inner --dropout-rate 0.2`; 0.5 under-fits);
- `dropout` (our recipe only; the paper's protocol has it already): dropout
  0.5 after the fully connected layer (`--dropout on`);
- `sigma`: the non-adaptive Fastfood's bandwidth chosen from a grid that goes
  below the old edge, 0.125 / 0.25 / 0.5 sqrt(d) (`--sigma-grid`; the rows
  with a sigma, fastfood-1024 and -2048).

The cells run side by side in --workers processes of one thread each; each
cell resumes where it stopped (mnist_deep_fried.py skips finished runs). At the
end it writes results.md (every cell beside its baseline, the change of the
mean, the command), results.json (per-seed errors) and error_vs_params.png.

Usage:
    python examples/table1_hypotheses.py --data-dir ../shared/data/mnist
    python examples/table1_hypotheses.py --cells adam-dropout paper-caffe --data-dir ../shared/data/mnist
    python examples/table1_hypotheses.py --quick      # smoke run: each cell on a small slice
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MAIN_JOB = os.path.join("examples", "mnist_deep_fried.py")
ADAPTIVE = ["adaptive-fastfood-1024", "adaptive-fastfood-2048"]
WITH_SIGMA = ["fastfood-1024", "fastfood-2048"]
SIGMA_GRID = ["--sigma-grid", "0.125", "0.25", "0.5"]

# The committed tables the cells are compared with (3 seeds each).
PAPER_TABLE = "docs/results/table1_paper"  # the paper's protocol: dropout after the fried rows' FC layer
ADAM_TABLE = "docs/results/table1_adam"  # our recipe without dropout (the default until 0.5)
ADAM_DROPOUT_TABLE = "docs/results/table1_adam_dropout"  # our recipe, dropout after the fried rows' FC layer

# cell -> (protocol, options of mnist_deep_fried.py, models, what it changes, the table it is compared
# with). Every cell names its --dropout: a default that changes must not change a cell. In the order
# they run: the cells of the AdaptiveFastfood rows first.
CELLS = {
    "adam-dropout": ("adam", ["--dropout", "on"], ["reference", *ADAPTIVE], "dropout 0.5 after the FC layer",
                     ADAM_TABLE),
    "paper-caffe": ("paper", ["--dropout", "paper", "--init", "caffe", "--bias-lr-mult", "2"],
                    ["reference", *ADAPTIVE], "Caffe's xavier filler, bias learning rate x2", PAPER_TABLE),
    "adam-caffe": ("adam", ["--dropout", "off", "--init", "caffe", "--bias-lr-mult", "2"], ["reference", *ADAPTIVE],
                   "Caffe's xavier filler, bias learning rate x2", ADAM_TABLE),
    "paper-inner-0.2": ("paper", ["--dropout", "inner", "--dropout-rate", "0.2"], ADAPTIVE,
                        "inner dropout 0.2 instead of dropout 0.5 after", PAPER_TABLE),
    "adam-inner-0.2": ("adam", ["--dropout", "inner", "--dropout-rate", "0.2"], ADAPTIVE, "inner dropout 0.2",
                       ADAM_TABLE),
    "paper-sigma": ("paper", ["--dropout", "paper", *SIGMA_GRID], WITH_SIGMA,
                    "sigma grid 0.125 / 0.25 / 0.5 sqrt(d)", PAPER_TABLE),
    "adam-sigma": ("adam", ["--dropout", "paper", *SIGMA_GRID], WITH_SIGMA, "sigma grid 0.125 / 0.25 / 0.5 sqrt(d)",
                   ADAM_DROPOUT_TABLE),
}


def command(cell, args):
    """The mnist_deep_fried.py command line of a cell, as the docs print it."""
    protocol, options, models, _, _ = CELLS[cell]
    line = [MAIN_JOB, "--protocol", protocol, *options, "--models", *models, "--seeds", str(args.seeds)]
    if args.data_dir:
        line += ["--data-dir", args.data_dir]
    if args.quick:
        line.append("--quick")
    return line + ["--out", os.path.join(args.out, cell)]


def run_cell(cell, args):
    """Runs (or resumes) one cell in its own process, its output in <out>/<cell>/run.log."""
    folder = os.path.join(args.out, cell)
    os.makedirs(folder, exist_ok=True)
    line = [sys.executable, *command(cell, args), "--threads", "1", "--verbose", "2"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    begin = time.time()
    with open(os.path.join(folder, "run.log"), "a") as log:
        finished = subprocess.run(line, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.time() - begin
    print(f"{cell}: {'done' if finished.returncode == 0 else f'FAILED ({finished.returncode})'} in "
          f"{seconds:.0f} s (log: {os.path.join(folder, 'run.log')})", flush=True)
    return finished.returncode


def load_rows(folder):
    """`{(model, dropout): [runs by seed]}` of a results.json (empty if there is none)."""
    path = os.path.join(ROOT, folder, "results.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        runs = json.load(f)["runs"]
    rows = {}
    for run in sorted(runs, key=lambda r: r["seed"]):
        rows.setdefault((run["model"], run["dropout"]), []).append(run)
    return rows


def mean_sd(values):
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def baseline_runs(table, model):
    """The committed table's runs of `model` (with whatever dropout that table gave the row)."""
    rows = load_rows(table)
    return next((runs for (name, _), runs in rows.items() if name == model), [])


def summary(args):
    """Rows of the combined table, each cell beside its baseline."""
    table = []
    for cell, (protocol, _, models, change, compared_with) in CELLS.items():
        if cell not in args.cells:
            continue
        rows = load_rows(os.path.join(args.out, cell))
        for (model, dropout), runs in rows.items():
            errors = [r["test_error"] for r in runs]
            base = [r["test_error"] for r in baseline_runs(compared_with, model)]
            mean, sd = mean_sd(errors)
            row = {"cell": cell, "protocol": protocol, "change": change, "model": model, "dropout": dropout,
                   "seeds": [r["seed"] for r in runs], "test_errors": errors, "mean": mean, "sd": sd,
                   "params": runs[0]["params"], "sigma_relative": runs[0].get("sigma_relative"),
                   "baseline_table": compared_with, "command": " ".join(["python", *command(cell, args)])}
            if base:
                row["baseline_mean"], row["baseline_sd"] = mean_sd(base)
                row["change_of_mean"] = mean - row["baseline_mean"]
            table.append(row)
    return table


def markdown(table):
    lines = ["| protocol | cell: what changes | model | test error (mean +- sd) | seeds | baseline | change "
             "| params |", "|---|---|---|---|---|---|---|---|"]
    for r in table:
        label = r["model"] + {"none": "", "after": " + dropout", "inner": " + inner dropout"}[r["dropout"]]
        if r["sigma_relative"] is not None:
            label += f" (sigma {r['sigma_relative']:g} sqrt(d))"
        base = f"{r['baseline_mean']:.2f} +- {r['baseline_sd']:.2f}%" if "baseline_mean" in r else "-"
        change = f"{r['change_of_mean']:+.2f}" if "change_of_mean" in r else "-"
        lines.append(f"| {r['protocol']} | {r['cell']}: {r['change']} | {label} | {r['mean']:.2f} +- "
                     f"{r['sd']:.2f}% | {len(r['seeds'])} | {base} | {change} | {r['params']:,} |")
    commands = sorted({(r["cell"], r["command"]) for r in table})
    lines += ["", "Baselines: " + "; ".join(f"{cell}: {CELLS[cell][4]}" for cell, _ in commands) + ".", "",
              "Commands (each resumes):", ""]
    lines += [f"- `{cell}`: `{line}`" for cell, line in commands]
    return "\n".join(lines)


def plot(table, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, panels = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for axes, protocol in zip(panels, ("paper", "adam")):
        cells = sorted({r["cell"] for r in table if r["protocol"] == protocol})
        for index, cell in enumerate(["baseline", *cells]):
            rows = [r for r in table if r["protocol"] == protocol and (r["cell"] == cell or cell == "baseline")]
            if cell == "baseline":  # each model's baseline once
                rows = list({r["model"]: r for r in rows if "baseline_mean" in r}.values())
            for r in rows:
                mean, sd = (r["baseline_mean"], r["baseline_sd"]) if cell == "baseline" else (r["mean"], r["sd"])
                shift = 1 + 0.03 * (index - len(cells) / 2)  # side by side on the log axis
                axes.errorbar(r["params"] * shift, mean, yerr=sd, fmt="os^vD<>"[index % 7], color=f"C{index}",
                              capsize=3, label=cell if r is rows[0] else None)
        axes.axhline(0.72, color="grey", linestyle=":", label="paper: AdaptiveFastfood 0.72%")
        axes.axhline(0.87, color="grey", linestyle="--", label="paper: reference 0.87%")
        axes.set_xscale("log")
        axes.set_xlabel("parameters (whole network)")
        axes.set_title(f"{protocol} protocol")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=7)
    panels[0].set_ylabel("MNIST test error (%), mean +- sd of seeds")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", nargs="+", choices=list(CELLS), default=list(CELLS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data-dir", default=None, help="folder of the MNIST IDX files (default: tensorflow-datasets)")
    parser.add_argument("--out", default="results/table1_hypotheses")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="cells run side by side, one thread each (default: the cores, at most 2)")
    parser.add_argument("--quick", action="store_true", help="smoke run: each cell with mnist_deep_fried's --quick")
    parser.add_argument("--table-only", action="store_true", help="write the table of the runs done, train nothing")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.seeds < 1:
        parser.error(f"--workers and --seeds must be positive. Received: {args.workers}, {args.seeds}")
    os.makedirs(args.out, exist_ok=True)
    failed = []
    if not args.table_only:
        with ThreadPoolExecutor(args.workers) as pool:  # each thread waits on one cell's process
            codes = dict(zip(args.cells, pool.map(lambda cell: run_cell(cell, args), args.cells)))
        failed = [cell for cell, code in codes.items() if code]
    table = summary(args)
    text = markdown(table)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"cells": {c: CELLS[c] for c in args.cells}, "rows": table}, f, indent=2)
    plot(table, os.path.join(args.out, "error_vs_params.png"))
    print("\n" + text)
    if failed:
        sys.exit(f"error: cells {', '.join(failed)} failed; see their run.log. Rerun to resume them.")


if __name__ == "__main__":
    main()
