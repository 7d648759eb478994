import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import pytest  # noqa: E402

if keras.backend.backend() == "torch":
    import torch  # noqa: E402

    _tensor_array = torch.Tensor.__array__

    def _detached_array(self, *args, **kwargs):
        # The tests read layer outputs with np.asarray, which PyTorch refuses for
        # a tensor that requires grad; keras.ops.convert_to_numpy detaches first,
        # as this does. Test-side only: keras_fried itself converts with keras.ops.
        return _tensor_array(self.detach(), *args, **kwargs)

    torch.Tensor.__array__ = _detached_array


@pytest.fixture(autouse=True)
def _reset_dtype_policy():
    """Tests that switch to mixed precision must not leak it into others."""
    yield
    keras.config.set_dtype_policy("float32")
