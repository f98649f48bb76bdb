"""The course: days of instructions and checks over the mlab library.

From a notebook cell::

    from mlab.course import check
    check("w1d1")                      # the learner's workspace file
    check("w1d1", exercise="element_offset")

The workspace is found from the notebook's folder upwards (``workspace/`` itself, or a folder
holding ``workspace/.mlab/``), as ``mlab`` finds it from the current folder.
"""

from mlab.course.api import check

__all__ = ["check"]
