"""Formulas for the terminal: the web site renders LaTeX between ``$...$`` (inline) and
``$$`` lines (displayed); `mlab read` shows the same LaTeX as code, so a terminal prints it
verbatim instead of reading ``*`` or ``_`` in it as emphasis."""

from __future__ import annotations

import re

__all__ = ["maths_as_code"]

_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# $x$ with no space just inside the dollars, and none of them part of a word or of "$$".
_INLINE = re.compile(r"(?<![\\$\w])\$(?=\S)([^$\n]*?\S)\$(?![\w$])")


def _inline(line: str) -> str:
    out, last = [], 0
    for span in _CODE_SPAN.finditer(line):
        out.append(_INLINE.sub(r"`\1`", line[last : span.start()]))
        out.append(span.group(0))
        last = span.end()
    out.append(_INLINE.sub(r"`\1`", line[last:]))
    return "".join(out)


def maths_as_code(text: str) -> str:
    """``text`` with each displayed formula as an indented code block and each inline one as
    a code span; fenced code is left alone."""
    out: list[str] = []
    in_fence = in_math = False
    for line in text.splitlines():
        if not in_math and _FENCE.match(line):
            in_fence = not in_fence
            out.append(line)
        elif in_fence:
            out.append(line)
        elif line.strip() == "$$":
            in_math = not in_math
            if in_math and out and out[-1].strip():
                out.append("")  # an indented code block needs a blank line before it
            elif not in_math:
                out.append("")
        elif in_math:
            out.append("    " + line.strip())
        elif line.strip().startswith("$$") and line.strip().endswith("$$"):
            if out and out[-1].strip():
                out.append("")
            out += ["    " + line.strip()[2:-2].strip(), ""]
        else:
            out.append(_inline(line))
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")
