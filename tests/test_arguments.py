"""keras_fried.arguments: the shared checks name the argument, echo the value, never take a bool for a number."""

import numpy as np
import pytest

from keras_fried import arguments


@pytest.mark.parametrize(
    "check, value, expected",
    [
        (arguments.positive_int, 3, 3),
        (arguments.positive_int, np.int64(3), 3),
        (arguments.non_negative_int, 0, 0),
        (arguments.positive_number, 0.5, 0.5),
        (arguments.rate, 0, 0.0),
        (arguments.fraction, 0.25, 0.25),
        (arguments.boolean, False, False),
    ],
)
def test_valid_values_pass_through(check, value, expected):
    result = check(value, "x")
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    "check, value",
    [
        (arguments.positive_int, True),  # a bool is an int in Python, not a size
        (arguments.positive_int, 0),
        (arguments.positive_int, 2.0),
        (arguments.non_negative_int, -1),
        (arguments.positive_number, False),
        (arguments.positive_number, 0),
        (arguments.rate, 1.0),
        (arguments.fraction, 0),
        (arguments.fraction, 1),
        (arguments.boolean, 1),
        (arguments.seed, 1.5),
        (arguments.seed, True),
    ],
)
def test_invalid_values_name_the_argument_and_the_value(check, value):
    with pytest.raises(ValueError, match=rf"argument `x`.*Received: x={value!r}"):
        check(value, "x")


def test_none_is_accepted_only_where_allowed():
    assert arguments.positive_int(None, "x", allow_none=True) is None
    assert arguments.positive_number(None, "x", allow_none=True) is None
    assert arguments.seed(None) is None
    with pytest.raises(ValueError, match="expected a positive integer. Received: x=None"):
        arguments.positive_int(None, "x")
    with pytest.raises(ValueError, match=r"expected one of \('a', 'b'\). Received: x='c'"):
        arguments.one_of("c", "x", ("a", "b"))
