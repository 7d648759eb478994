"""How long `keras_fried.fry` takes on an ImageNet-scale model: VGG16 with random weights, no data.

Builds `keras.applications.VGG16(weights=None)` (138.4M parameters; nothing
is downloaded) once, then fries it with each kind asked for and prints the
seconds it took (wall clock, one call each unless --repeat), the parameters
before and after, and the largest relative error in fry's report (of each
new layer's matrix against the old kernel). The fully connected head
(25088 -> 4096 -> 4096) is what gets replaced; the output layer stays.

Usage:
    python benchmarks/fry_vgg16.py [--kinds adaptive_fastfood circulant] [--repeat 3]
    python benchmarks/fry_vgg16.py --kinds low_rank_dense --rank 256
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402

import keras_fried  # noqa: E402
from benchmarks.timing import markdown_table  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kinds", nargs="+", default=["adaptive_fastfood", "circulant"])
    parser.add_argument("--repeat", type=int, default=1, help="fry calls per kind (the table gives each time)")
    parser.add_argument("--rank", type=int, default=256, help="the rank of the kinds that need one (low_rank_dense, "
                        "sketch_dense; default 256, as examples/fry_imagenet_scale.py)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    model = keras.applications.VGG16(weights=None)
    build = time.perf_counter() - start
    print(f"Keras {keras.__version__} on {keras.backend.backend()}, {os.cpu_count()} CPU threads, "
          f"keras_fried {keras_fried.__version__} ({keras_fried.ops.implementation()} kernel); VGG16 with random "
          f"weights, {model.count_params():,} parameters, built in {build:.1f} s.\n")
    rows = []
    for kind in args.kinds:
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            rank = {"rank": args.rank} if "rank" in keras_fried.layers.registry.get(kind).required_arguments else {}
            fried, report = keras_fried.fry(model, kind, return_report=True, **rank)
            times.append(time.perf_counter() - start)
        worst = max(entry["relative_error"] for entry in report)
        rows.append([kind, ", ".join(f"{t:.1f}" for t in times), f"{model.count_params():,}",
                     f"{fried.count_params():,}", f"{worst:.3f}"])
        del fried
    print(markdown_table(["kind", "fry seconds", "params before", "params after", "largest relative error"], rows))


if __name__ == "__main__":
    main()
