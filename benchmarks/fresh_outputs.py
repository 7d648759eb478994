"""Large transforms under JAX or PyTorch: how much of their time is the fresh output's page faults.

Times the compiled `fwht` and a copy of the same (256, d) float32 tensor (in
turns, medians), and FFHT in place, for d = 16384, 32768, 65536. Each call
of JAX or PyTorch returns a new output of 16-64 MB; glibc serves blocks this
large with a fresh mmap, whose first write page-faults once per 4 KiB. Run
it twice to see that share:

    python benchmarks/fresh_outputs.py --backend jax
    MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296 \\
        python benchmarks/fresh_outputs.py --backend jax

(the variables make glibc keep and reuse such blocks; TensorFlow's own
allocator already does).
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import backend_steps  # noqa: E402

backend_steps.select_backend()  # before Keras is imported

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.timing import interleaved_medians  # noqa: E402
from benchmarks.timing import markdown_table  # noqa: E402
from benchmarks.timing import median_seconds  # noqa: E402
from keras_fried.ops import fwht  # noqa: E402
from keras_fried.ops import implementation  # noqa: E402

try:
    import ffht
except ImportError:
    ffht = None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["jax", "torch"], default=None,
                        help="the Keras backend (default: KERAS_BACKEND)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[16384, 32768, 65536])
    args = parser.parse_args(argv)
    if keras.backend.backend() == "tensorflow":
        parser.error("TensorFlow's allocator reuses its memory: use --backend jax or torch")
    malloc = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    print(f"Keras {keras.__version__} on {keras.backend.backend()}, fwht {implementation()}, batch 256, "
          f"float32, glibc settings {malloc or 'default'}; medians of repeated runs.\n")
    rows = []
    for d in args.sizes:
        array = np.random.default_rng(0).standard_normal((256, d)).astype(np.float32)
        x = backend_steps.tensor(array)
        transform = backend_steps.compile_function(lambda x: fwht(x, normalize=False))
        copy = backend_steps.compile_function(backend_steps.copy)
        t = interleaved_medians({"fwht": lambda: transform(x), "copy": lambda: copy(x)},
                                finish=backend_steps.finish)
        row = [d, f"{t['fwht'] * 1e3:.3f}", f"{t['copy'] * 1e3:.3f}"]
        if ffht is not None:
            t_ffht = median_seconds(lambda: ffht.fht(array, os.cpu_count()))
            row += [f"{t_ffht * 1e3:.3f}", f"{t['fwht'] / t_ffht:.2f}x"]
        else:
            row += ["not installed", "-"]
        rows.append(row)
    print(markdown_table(["d", "fwht ms", "copy ms", "FFHT ms (in place)", "fwht / FFHT"], rows))


if __name__ == "__main__":
    main()
