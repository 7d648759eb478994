"""A fried model trained on two workers (or devices) and on one, for tests/test_backends.py.

    python tests/backends/distributed.py tf-worker INDEX PORT0 PORT1 out.npz   # one of two workers
    python tests/backends/distributed.py tf-single out.npz
    KERAS_BACKEND=jax python tests/backends/distributed.py jax-data-parallel out.npz
    KERAS_BACKEND=jax python tests/backends/distributed.py jax-single out.npz

The engines are TensorFlow's `MultiWorkerMirroredStrategy` (two processes on
localhost, `TF_CONFIG`) and Keras's `keras.distribution.DataParallel` under JAX
(two host devices, `XLA_FLAGS=--xla_force_host_platform_device_count=2`). Every
run trains the same model from the same start on the same global batches (16
examples: 8 per worker or device) for one epoch of SGD, and saves its weights
and losses.
"""

import json
import os
import sys

GLOBAL_BATCH = 16
EPOCHS = 2


def _data():
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.standard_normal((64, 32)).astype("float32"), rng.standard_normal((64, 4)).astype("float32")


def _model():
    import keras

    from keras_fried import layers

    model = keras.Sequential([
        keras.Input((32,)),
        layers.AdaptiveFastfood(64, seed=0, activation="relu"),
        layers.Circulant(32, seed=1, activation="relu"),
        keras.layers.Dense(4, kernel_initializer=keras.initializers.GlorotUniform(seed=2)),
    ])
    model.compile(keras.optimizers.SGD(0.05), "mse")
    return model


def _save(path, model, losses):
    import numpy as np

    weights = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    np.savez(path, loss=np.asarray(losses), **weights)


def tf_run(path, index=None, ports=None):
    if index is not None:
        os.environ["TF_CONFIG"] = json.dumps({
            "cluster": {"worker": [f"localhost:{port}" for port in ports]},
            "task": {"type": "worker", "index": int(index)},
        })
    import tensorflow as tf

    # The strategy first: collective ops must be set up before TensorFlow runs any op.
    strategy = tf.distribute.MultiWorkerMirroredStrategy() if index is not None else None
    x, y = _data()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
    if strategy is None:
        model = _model()
        history = model.fit(dataset, epochs=EPOCHS, shuffle=False, verbose=0)
        return _save(path, model, history.history["loss"])
    # Keras 3's `fit` does not run under MultiWorkerMirroredStrategy (keras-team/keras#20585):
    # the training loop of TensorFlow's multi-worker guide, with the same model and optimizer.
    options = tf.data.Options()
    # Each global batch split between the workers, element by element.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    batches = strategy.experimental_distribute_dataset(dataset.with_options(options))
    with strategy.scope():
        model = _model()

    @tf.function
    def train_step(inputs):
        def step(x, y):
            with tf.GradientTape() as tape:
                per_example = tf.reduce_mean(tf.square(model(x, training=True) - y), axis=-1)  # "mse"
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=GLOBAL_BATCH)
            gradients = tape.gradient(loss, model.trainable_variables)
            model.optimizer.apply_gradients(zip(gradients, model.trainable_variables))  # sums over workers
            return loss

        return strategy.reduce("SUM", strategy.run(step, args=inputs), axis=None)

    losses = []
    for _ in range(EPOCHS):
        losses.append(float(tf.reduce_mean([train_step(batch) for batch in batches])))
    _save(path, model, losses)


def jax_run(path, data_parallel):
    import jax
    import keras

    if data_parallel:
        devices = jax.devices()
        assert len(devices) == 2, f"expected 2 host devices (XLA_FLAGS), found {devices}"
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    x, y = _data()
    model = _model()
    history = model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
    _save(path, model, history.history["loss"])


if __name__ == "__main__":
    task, *rest = sys.argv[1:]
    if task == "tf-worker":
        index, port0, port1, out = rest
        tf_run(out, index, (port0, port1))
    elif task == "tf-single":
        tf_run(rest[0])
    else:
        jax_run(rest[0], data_parallel=task == "jax-data-parallel")
