"""The course: days of instructions and checks over the mlab library.

From a notebook cell::

    from mlab.course import check
    check("w1d1")                      # the learner's workspace file
    check("w1d1", exercise="element_offset")
"""

from mlab.course.api import check

__all__ = ["check"]
