"""Argument checks shared by the layers and the whole-model tools.

Each raises a ValueError in Keras's words, naming the argument and echoing the
value received, and returns the value (converted where the check says so).
A bool is never taken for a number: `True` is an int in Python, not a size.
"""

import numbers


def is_number(value):
    """Whether `value` is a real number and not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_integer(value):
    """Whether `value` is an integer (NumPy's included) and not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _invalid(name, expected, value):
    return ValueError(
        f"Received an invalid value for argument `{name}`, expected {expected}. Received: {name}={value!r}"
    )


def positive_int(value, name, allow_none=False):
    """`value` as an int (or None when allowed), or a ValueError unless it is an integer > 0."""
    if value is None and allow_none:
        return None
    if not is_integer(value) or value <= 0:
        raise _invalid(name, "a positive integer" + (" or None" if allow_none else ""), value)
    return int(value)


def non_negative_int(value, name):
    """`value` as an int, or a ValueError unless it is an integer >= 0."""
    if not is_integer(value) or value < 0:
        raise _invalid(name, "a non-negative integer", value)
    return int(value)


def positive_number(value, name, allow_none=False):
    """`value` as a float (or None when allowed), or a ValueError unless it is a number > 0."""
    if value is None and allow_none:
        return None
    if not is_number(value) or not value > 0:
        raise _invalid(name, "a positive number" + (" or None" if allow_none else ""), value)
    return float(value)


def rate(value, name):
    """`value` as a float, or a ValueError unless it is a number in [0, 1) (a dropout rate)."""
    if not is_number(value) or not 0 <= value < 1:
        raise _invalid(name, "a number in [0, 1)", value)
    return float(value)


def fraction(value, name):
    """`value` as a float, or a ValueError unless it is a number strictly between 0 and 1."""
    if not is_number(value) or not 0 < value < 1:
        raise _invalid(name, "a fraction strictly between 0 and 1", value)
    return float(value)


def boolean(value, name):
    """`value`, or a ValueError unless it is True or False."""
    if not isinstance(value, bool):
        raise _invalid(name, "True or False", value)
    return value


def seed(value, name="seed"):
    """`value`, or a ValueError unless it is an integer or None."""
    if value is not None and not is_integer(value):
        raise _invalid(name, "an integer or None", value)
    return value


def one_of(value, name, choices):
    """`value`, or a ValueError unless it is one of `choices`."""
    if value not in choices:
        raise _invalid(name, f"one of {tuple(choices)}", value)
    return value
