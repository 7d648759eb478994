"""Quickstart: an AdaptiveFastfood layer in place of a Dense layer.

Trains a small classifier on random data for a few steps and prints the
parameter counts of the structured layer and of the Dense layer it replaces.
Run: python examples/quickstart.py
"""

import keras
import numpy as np

import keras_fried

model = keras.Sequential(
    [
        keras.Input(shape=(784,)),
        # Dense(1024) would have 784 * 1024 + 1024 = 803,840 parameters.
        keras_fried.layers.AdaptiveFastfood(1024, activation="relu", seed=0),
        keras.layers.Dense(10, activation="softmax"),
    ]
)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

x = np.random.default_rng(0).random((512, 784), dtype=np.float32)
y = (x[:, :10].argmax(axis=1)).astype("int32")  # a learnable toy target
history = model.fit(x, y, epochs=3, batch_size=64, verbose=2)

fried = model.layers[0]
print(f"AdaptiveFastfood parameters: {fried.count_params():,} (Dense: {784 * 1024 + 1024:,})")
print(f"loss {history.history['loss'][0]:.3f} -> {history.history['loss'][-1]:.3f}")
