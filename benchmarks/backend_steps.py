"""Compiled calls for the benchmarks on the JAX and PyTorch backends (TensorFlow's are in the scripts).

Each backend in its own usual form: JAX functions under `jax.jit` (the Keras
model through `stateless_call`), PyTorch eagerly (as Keras runs it). `finish`
blocks until a result is computed (JAX dispatches asynchronously).

`select_backend(argv)` reads `--backend` before Keras is imported, so that a
benchmark script can run on the backend asked for.
"""

import os
import sys


def select_backend(argv=None):
    """Sets KERAS_BACKEND from a `--backend NAME` argument, if any; call before importing Keras."""
    argv = sys.argv[1:] if argv is None else argv
    if "--backend" in argv:
        index = argv.index("--backend")
        if index + 1 < len(argv):
            os.environ["KERAS_BACKEND"] = argv[index + 1]


def _numpy_backend():
    import keras

    return keras.backend.backend()


def tensor(array):
    """A backend tensor of the NumPy `array`."""
    import keras

    return keras.ops.convert_to_tensor(array)


def finish(result):
    if _numpy_backend() == "jax":
        import jax

        return jax.block_until_ready(result)
    return result


def compile_function(fn):
    """`fn` (of backend tensors) compiled for repeated calls: `jax.jit`, or as is on PyTorch."""
    if _numpy_backend() == "jax":
        import jax

        return jax.jit(fn)
    if _numpy_backend() == "torch":
        import torch

        def no_grad(*args):
            with torch.no_grad():
                return fn(*args)

        return no_grad
    raise ValueError(f"Use the TensorFlow forms in the script itself. Received: backend={_numpy_backend()!r}")


def copy(x):
    """A memory copy of `x`: the baseline a transform of the same tensor is compared with."""
    if _numpy_backend() == "jax":
        import jax.numpy as jnp

        return jnp.copy(x)
    return x.clone()


def forward_and_gradients(model):
    """A function `x -> loss` that runs `model` forward and backward (gradients of all trainable weights)."""
    if _numpy_backend() == "jax":
        import jax
        import jax.numpy as jnp

        trainable = [v.value for v in model.trainable_variables]
        fixed = [v.value for v in model.non_trainable_variables]

        def loss(trainable, x):
            y, _ = model.stateless_call(trainable, fixed, x)
            return jnp.sum(jnp.square(y))

        step = jax.jit(jax.value_and_grad(loss))
        return lambda x: step(trainable, x)[0]
    import torch

    weights = [v.value for v in model.trainable_variables]

    def step(x):
        loss = torch.sum(torch.square(model(x)))
        if weights:  # a layer with nothing to train (Fastfood) has no backward pass
            torch.autograd.grad(loss, weights)
        return loss

    return step


def forward(model):
    """A function `x -> y`: `model` forward, compiled where the backend compiles."""
    if _numpy_backend() == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        fixed = [v.value for v in model.non_trainable_variables]
        call = jax.jit(lambda trainable, x: model.stateless_call(trainable, fixed, x)[0])
        return lambda x: call(trainable, x)
    return compile_function(model)
