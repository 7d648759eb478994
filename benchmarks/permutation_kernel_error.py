"""Does the structured permutation cost kernel accuracy? Fastfood's Gaussian-kernel error, both permutations.

The non-adaptive `Fastfood` layer's Fourier features approximate the Gaussian
kernel `k(x, y) = exp(-||x - y||^2 / (2 sigma^2))` by inner products of
features. For each size `d` (the input size, a power of two), `--points`
inputs are drawn and the relative error of the feature Gram matrix against the
exact kernel matrix, `||F F^T - K||_F / ||K||_F`, is measured for layers with
the uniformly random permutation (the default before 0.5) and with
`structured_permutation=True` (the default since: one permutation from the Hadamard factor grid,
shared by all blocks), over `--seeds` layer seeds (the same seeds for both, so
the same diagonals), at `units = d` (one block) and `units = 4 d` (four
blocks). The baseline is random Fourier features with an i.i.d. Gaussian
matrix (Rahimi and Recht), what Fastfood imitates.

Inputs: Gaussian points (`||x - y||^2 ~ 2 d`) with sigma = sqrt(d), so that
the kernel off the diagonal is near exp(-1) (the table's "mean k");
`--mnist DIR` adds MNIST test images (784 pixels / 255, padded to 1024),
sigma the median pairwise distance, where the kernel spreads over (0, 1).

Usage:
    python benchmarks/permutation_kernel_error.py [--sizes 256 512 1024 2048 4096] [--seeds 10]
        [--points 256] [--mnist ../shared/data/mnist] [--out DIR]
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.timing import markdown_table  # noqa: E402
from keras_fried.datasets.mnist import load_mnist_idx  # noqa: E402
from keras_fried.layers import Fastfood  # noqa: E402


def gaussian_kernel(x, sigma):
    squared = np.sum(x**2, axis=1)
    distances = np.maximum(squared[:, None] + squared[None, :] - 2.0 * x @ x.T, 0.0)
    return np.exp(-distances / (2.0 * sigma**2))


def relative_error(features, kernel):
    return float(np.linalg.norm(features @ features.T - kernel) / np.linalg.norm(kernel))


def fastfood_features(x, units, sigma, seed, structured):
    layer = Fastfood(units, sigma=sigma, seed=seed, structured_permutation=structured)
    return np.asarray(keras.ops.convert_to_numpy(layer(x.astype("float32"))), np.float64)


def gaussian_features(x, units, sigma, seed):
    """Random Fourier features with an i.i.d. N(0, sigma^-2) matrix, scaled as Fastfood's."""
    projection = np.random.default_rng(10_000 + seed).standard_normal((x.shape[1], units)) / sigma
    z = x @ projection
    return np.concatenate([np.cos(z), np.sin(z)], axis=1) / np.sqrt(units)


def measure(x, sigma, units, seeds):
    kernel = gaussian_kernel(x.astype(np.float64), sigma)
    errors = {"uniform": [], "structured": [], "gaussian": []}
    for seed in range(seeds):
        errors["uniform"].append(relative_error(fastfood_features(x, units, sigma, seed, False), kernel))
        errors["structured"].append(relative_error(fastfood_features(x, units, sigma, seed, True), kernel))
        errors["gaussian"].append(relative_error(gaussian_features(x, units, sigma, seed), kernel))
    off_diagonal = kernel[~np.eye(len(kernel), dtype=bool)]
    return errors, float(off_diagonal.mean())


def load_mnist(folder, count):
    (_, _), (x_test, _) = load_mnist_idx(folder)
    return x_test[:count].reshape(count, -1).astype(np.float64) / 255.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--points", type=int, default=256)
    parser.add_argument("--mnist", default=None, help="folder of the MNIST IDX files: add a row on MNIST images")
    parser.add_argument("--out", default=None, help="folder for results.md and results.json")
    args = parser.parse_args(argv)
    for size in args.sizes:
        if size < 2 or size & (size - 1):
            parser.error(f"argument --sizes: each size must be a power of two >= 2. Received: {size}")
    if args.seeds < 2 or args.points < 2:
        parser.error(f"--seeds and --points must be at least 2. Received: {args.seeds}, {args.points}")
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    cases = [(f"Gaussian, d = {d}", rng.standard_normal((args.points, d)), np.sqrt(d)) for d in args.sizes]
    if args.mnist:
        images = load_mnist(args.mnist, args.points)
        distances = np.sqrt(np.maximum(-2 * images @ images.T + np.sum(images**2, 1)[:, None]
                                       + np.sum(images**2, 1)[None, :], 0))
        cases.append(("MNIST (784 -> 1024)", images, float(np.median(distances[distances > 0]))))
    rows, records = [], []
    for name, x, sigma in cases:
        d = 1 << (x.shape[1] - 1).bit_length()
        for blocks in (1, 4):
            errors, mean_k = measure(x, sigma, blocks * d, args.seeds)
            cells = {key: f"{np.mean(v):.4f} +- {np.std(v):.4f}" for key, v in errors.items()}
            ratio = np.mean(errors["structured"]) / np.mean(errors["uniform"])
            rows.append([name, f"{blocks * d} ({blocks} block{'s' if blocks > 1 else ''})", f"{mean_k:.3f}",
                         cells["uniform"], cells["structured"], f"{ratio:.3f}", cells["gaussian"]])
            records.append({"inputs": name, "units": blocks * d, "sigma": sigma, "mean_kernel": mean_k, **errors})
    header = ["inputs", "units", "mean k", "uniform P", "structured P", "structured / uniform",
              "i.i.d. Gaussian features"]
    text = (f"Relative error of the Gram matrix, {args.points} points, {args.seeds} seeds, mean +- sd; "
            f"Keras {keras.__version__} on {keras.backend.backend()}, {time.perf_counter() - start:.0f} s.\n\n"
            + markdown_table(header, rows))
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "results.md"), "w") as f:
            f.write(text + "\n")
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump({"points": args.points, "seeds": args.seeds, "cases": records}, f, indent=2)


if __name__ == "__main__":
    main()
