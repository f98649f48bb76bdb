"""Bug hunts (day w1d7): a reference training script copied into the workspace with one
meaningful bug hidden in it, drawn from a catalogue; find it with ``mlab inspect``.

    from mlab.bughunt import draw
    bug = draw("transformer", seed=3)
    print(bug.kind.title, bug.line)
    print(bug.diff())
"""

from mlab.bughunt.catalogue import (
    Bug,
    BugKind,
    Evidence,
    applicable,
    draw,
    get_kind,
    kinds,
    target_path,
    targets,
)

__all__ = [
    "Bug",
    "BugKind",
    "Evidence",
    "applicable",
    "draw",
    "get_kind",
    "kinds",
    "target_path",
    "targets",
]
