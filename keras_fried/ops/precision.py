"""The one rule for 16-bit inputs: transforms (FWHT, FFT) run in float32.

No FFT has a 16-bit kernel, and a Walsh-Hadamard transform of length d adds
log2(d) rounding steps: float16 and bfloat16 lose too much on the way. So the
transforms compute in float32 and the layers cast the result to their compute
dtype.
"""

import keras


def transform_dtype(dtype):
    """The dtype a transform runs in for inputs of `dtype`: float32 for float16 and bfloat16.

    Accepts a dtype name, a NumPy dtype or a backend dtype; returns a name.
    """
    name = keras.backend.standardize_dtype(dtype)
    return "float32" if name in ("float16", "bfloat16") else name
