"""Keras's own layer checks (`run_layer_test`), as Keras runs them on its built-in layers.

`keras.src.testing.TestCase.run_layer_test` builds each layer, checks its
weight counts, calls it symbolically and eagerly, round-trips its config and
serialisation, runs a compiled training step, calls it under `mixed_float16`
and checks mask propagation. It is Keras's test utility (under `keras.src`), so
a Keras release that changes it shows up here first.
"""

from absl.testing import parameterized
from keras.src.testing import TestCase

from keras_fried import layers

# (layer, constructor arguments, input shape, output shape,
#  trainable weights, non-trainable weights (the fixed random structure), supports_masking)
CASES = [
    # Dropout inside the layer adds a seed generator (checked below).
    ("AdaptiveFastfood", dict(units=8, seed=0, inner_dropout=0.5), (2, 6), (2, 8), 4, 1, True),
    # S, G, B and the bias; the permutation P.
    ("AdaptiveFastfood", dict(units=8, seed=0), (2, 6), (2, 8), 4, 1, True),
    # Random features: S, G, B and P, all fixed; "fourier" output is [cos, sin].
    ("Fastfood", dict(units=8, seed=0), (2, 6), (2, 16), 0, 4, True),
    # r and the bias; the input signs.
    ("Circulant", dict(units=8, seed=0), (2, 6), (2, 8), 2, 1, True),
    # U1, U2 and the bias; the sketches S1, S2.
    ("SketchDense", dict(units=8, rank=2, seed=0), (2, 6), (2, 8), 3, 2, True),
    # U, V and the bias.
    ("LowRankDense", dict(units=8, rank=2, seed=0), (2, 6), (2, 8), 3, 0, True),
    # The shared weights w and the bias; the hash is recomputed, not stored.
    ("HashedDense", dict(units=8, num_buckets=4, seed=0), (2, 6), (2, 8), 2, 0, True),
    # U1, U2 and the bias; the sketches. A convolution drops masks, as Conv2D does.
    ("SketchConv2D", dict(filters=4, kernel_size=3, rank=2, seed=0), (2, 6, 6, 3), (2, 4, 4, 4), 3, 2, False),
]


class KerasLayerChecksTest(TestCase):
    @parameterized.named_parameters(*[(f"{case[0]}_{i}", *case) for i, case in enumerate(CASES)])
    def test_run_layer_test(self, name, kwargs, input_shape, output_shape, trainable, fixed, masking):
        self.run_layer_test(
            getattr(layers, name),
            init_kwargs=kwargs,
            input_shape=input_shape,
            expected_output_shape=output_shape,
            expected_num_trainable_weights=trainable,
            expected_num_non_trainable_weights=fixed,
            expected_num_seed_generators=1 if kwargs.get("inner_dropout") else 0,
            expected_num_losses=0,
            supports_masking=masking,
        )

    def test_every_public_layer_is_checked(self):
        registered = {cls.__name__ for cls in layers.registry.kinds().values()}
        self.assertEqual(sorted({case[0] for case in CASES}), sorted(registered))
