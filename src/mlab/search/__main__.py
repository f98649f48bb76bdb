"""``python -m mlab.search work ...``: the same as ``mlab search ...``, with fewer imports."""

from mlab.search.cli import search_app

search_app(prog_name="mlab search")
