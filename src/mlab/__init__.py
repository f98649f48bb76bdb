"""mlab: a deep-learning stack built from primitives, and a course generated from it."""

__version__ = "0.1.0"
__all__ = ["__version__"]
