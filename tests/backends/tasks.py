"""What tests/test_backends.py runs under each backend, one task per process.

    KERAS_BACKEND=jax python tests/backends/tasks.py layer-outputs out.npz
    KERAS_BACKEND=torch python tests/backends/tasks.py train-and-save model.keras io.npz
    KERAS_BACKEND=jax python tests/backends/tasks.py load-and-predict model.keras io.npz
    KERAS_BACKEND=jax python tests/backends/tasks.py convert model.keras

`layer-outputs`: every registered layer built with one seed; its fixed random
weights as drawn, and its outputs on fixed inputs once every trainable weight
is set to the same NumPy values. `train-and-save`: a model of several layers
trained one step, saved, with its inputs and outputs. `load-and-predict`: a
saved model's outputs on saved inputs. `convert`: TFLite conversion, which
must refuse a backend other than TensorFlow. `tools`: fry, prune, summary and
a tuning model, their results printed.
"""

import sys

import keras
import numpy as np

import keras_fried
from keras_fried import layers

CASES = {
    "adaptive_fastfood": (lambda: layers.AdaptiveFastfood(40, seed=3, activation="relu"), (5, 24)),
    "adaptive_fastfood_structured": (lambda: layers.AdaptiveFastfood(64, seed=3, structured_permutation=True),
                                     (5, 64)),
    "fastfood": (lambda: layers.Fastfood(40, sigma=2.0, seed=3), (5, 24)),
    "circulant": (lambda: layers.Circulant(40, seed=3), (5, 24)),
    "sketch_dense": (lambda: layers.SketchDense(40, rank=4, num_sketches=2, seed=3), (5, 24)),
    "low_rank_dense": (lambda: layers.LowRankDense(40, rank=4, seed=3), (5, 24)),
    "hashed_dense": (lambda: layers.HashedDense(40, num_buckets=100, seed=3), (5, 24)),
    "sketch_conv2d": (lambda: layers.SketchConv2D(6, 3, rank=2, seed=3, padding="same"), (2, 7, 7, 4)),
}


def layer_outputs(path):
    rng = np.random.default_rng(0)
    saved = {}
    for name, (make, shape) in CASES.items():
        layer = make()
        x = rng.standard_normal(shape).astype("float32")
        layer.build(shape)
        for weight in layer.non_trainable_weights:
            saved[f"{name}/fixed/{weight.name}"] = keras.ops.convert_to_numpy(weight)
        for weight in layer.trainable_weights:
            weight.assign(rng.standard_normal(weight.shape).astype("float32") * 0.1)
        saved[f"{name}/output"] = keras.ops.convert_to_numpy(layer(x))
    np.savez(path, **saved)


def _model():
    return keras.Sequential([
        keras.Input((6, 6, 2)),
        layers.SketchConv2D(4, 3, rank=2, seed=0, activation="relu"),
        keras.layers.Flatten(),
        layers.AdaptiveFastfood(64, seed=1, activation="relu", structured_permutation=True),
        layers.Circulant(48, seed=2, activation="relu"),
        layers.SketchDense(32, rank=4, seed=3, activation="relu"),
        layers.HashedDense(24, num_buckets=200, seed=4, activation="relu"),
        layers.LowRankDense(10, rank=3, seed=5),
    ])


def train_and_save(model_path, io_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 6, 6, 2)).astype("float32")
    model = _model()
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, rng.integers(0, 10, 16), epochs=1, batch_size=16, verbose=0)
    model.save(model_path)
    np.savez(io_path, x=x, y=keras.ops.convert_to_numpy(model(x)))


def load_and_predict(model_path, io_path):
    model = keras.saving.load_model(model_path)
    x = np.load(io_path)["x"]
    np.savez(io_path, x=x, y=keras.ops.convert_to_numpy(model(x)))


def tools():
    """fry (with data), prune (both methods, structured too), summary and a tuning model, printed."""
    import keras_tuner

    from keras_fried import tuning

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).standard_normal((64, 16)).astype("float32")
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu", name="hidden"),
                              keras.layers.Dense(3, name="out")])
    for kind in ("circulant", "adaptive_fastfood"):
        fried, report = keras_fried.fry(model, kind, data=x, distill_epochs=1, output_distill_epochs=1,
                                        return_report=True)
        print(f"fry {kind}: {report[0]['kind']} {report[0]['error_on']} {keras_fried.summary(fried, None)['params']}")
    for method in ("magnitude", "trifactor"):
        report = keras_fried.prune(model, 0.5, method=method, data=x, return_report=True)[1]
        print(f"prune {method}: {report[0]['nonzero']} of {report[0]['weights']}")
    print(f"structured: {keras_fried.prune(model, 0.5, structured=True).get_layer('hidden').units} units")
    hypermodel = tuning.FriedHyperModel((16,), head=3, max_params=5_000, features_range=(16, 64))
    print(f"tuning: {hypermodel.build(keras_tuner.HyperParameters()).name}")


def convert(model_path):
    try:
        keras_fried.tflite.convert(keras.saving.load_model(model_path))
    except RuntimeError as error:
        print(f"RuntimeError: {error}")
        return
    print("converted")


if __name__ == "__main__":
    task, *paths = sys.argv[1:]
    {"layer-outputs": layer_outputs, "train-and-save": train_and_save, "load-and-predict": load_and_predict,
     "convert": convert, "tools": tools}[task](*paths)
