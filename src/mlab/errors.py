"""The one error family of mlab. Each class says what kind of thing went wrong; messages say
which value, what was expected, and the fix."""

__all__ = [
    "ConfigError",
    "CourseError",
    "DataError",
    "MismatchError",
    "MlabError",
    "ShapeError",
    "StateDictError",
]


class MlabError(Exception):
    """Base class of every error mlab raises on purpose."""


class ShapeError(MlabError, ValueError):
    """An input has the wrong shape, e.g. ``x has shape (3, 4) but a square matrix is needed``."""


class ConfigError(MlabError, ValueError):
    """A configuration (day manifest, settings) is malformed or names something missing."""


class CourseError(MlabError):
    """A course command cannot do what was asked (unknown day, missing workspace file, ...)."""


class DataError(MlabError):
    """A data file or data set is missing, corrupt or not what was expected (bad magic number,
    truncated file, failed checksum, no copy found and no network to download one)."""


class MismatchError(MlabError, AssertionError):
    """A value differs from what a check or test expected. Raised by ``mlab.testing``.

    It is an ``AssertionError`` so pytest shows it as a failed assertion; the message carries
    every number needed to understand the difference, so it survives any re-raise.
    """


class StateDictError(MlabError, RuntimeError):
    """A state dict does not fit a module: missing or unexpected keys, or a shape mismatch.

    A ``RuntimeError``, as torch's ``load_state_dict`` raises; the message names every key.
    """
