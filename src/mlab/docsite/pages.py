"""The course web site's markdown pages, generated from the day manifests.

Every page is derived from what `mlab read`, `mlab hint` and `mlab solution` already show: the
day READMEs, the parts' intros, each exercise's stub (signature and docstring), hints and
reference source, the repository README and `docs/*.md`. Nothing here is course text.

Sources are written for CommonMark (GitHub, the terminal renderer); `commonmark_to_mkdocs`
bridges the two differences Python-Markdown cares about (a list needs a blank line before it,
and nested lists are indented by four spaces).
"""

from __future__ import annotations

import posixpath
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mlab.course.engine.manifest import Day, Exercise, all_days
from mlab.course.engine.stubgen import exercise_source, stub_for
from mlab.invocation import mlab_command

__all__ = ["Pages", "commonmark_to_mkdocs", "write_pages"]

_FENCE = re.compile(r"^\s*(```|~~~)")
_LIST_ITEM = re.compile(r"^(\s*)([-*+]|\d+[.)])\s+\S")
# [text](target) and ![alt](target); src="target" in inline HTML.
_MD_LINK = re.compile(r"(!?\[[^\]]*\])\(([^)\s]+)\)")
_HTML_SRC = re.compile(r'((?:src|href)=")([^"]+)(")')
_DISPLAY_MATH = re.compile(r"^\s*\$\$")


def _stars(n: int) -> str:
    return "★" * n + "☆" * (3 - n)


@dataclass
class Pages:
    """Where the generated markdown lives, and the site's navigation."""

    root: Path
    nav: list[object] = field(default_factory=list)
    # source file (absolute) -> page or asset path (relative to root), for link rewriting
    published: dict[Path, str] = field(default_factory=dict)


def _indent_to_four(line: str) -> str:
    """Round a list line's indent up to a multiple of 4 (CommonMark nests at the parent's
    text column, often 2 or 3; Python-Markdown needs 4)."""
    indent = len(line) - len(line.lstrip(" "))
    return " " * (-(-indent // 4) * 4) + line.lstrip(" ")


def commonmark_to_mkdocs(text: str) -> str:
    """Adapt CommonMark that renders well on GitHub to Python-Markdown's rules: a blank line
    before a list that follows a paragraph, and nested list indents rounded up to 4 spaces.
    Fenced code and display maths are left exactly as written."""
    out: list[str] = []
    in_fence = in_list = in_math = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        elif in_fence:
            pass
        elif _DISPLAY_MATH.match(line) and line.count("$$") == 1:
            in_math = not in_math
        elif in_math or not line.strip():
            pass
        elif _LIST_ITEM.match(line):
            if not in_list and out and out[-1].strip() and not line.startswith(" "):
                out.append("")
            in_list = True
            line = _indent_to_four(line)
        elif in_list:
            if not line.startswith(" ") and not out[-1].strip():
                in_list = False  # a paragraph after the list
            else:
                line = _indent_to_four(line)
        out.append(line)
    return "\n".join(out) + "\n"


def _rewrite_links(text: str, source: Path, page: str, pages: Pages) -> str:
    """Point relative links and image sources of ``source`` at the pages and assets they
    become on the site; a link to a file the site does not publish becomes its path in code."""

    def target_for(target: str) -> str | None:
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target):
            return target  # absolute URL, anchor, or site-absolute: leave it
        path, _, anchor = target.partition("#")
        resolved = (source.parent / path).resolve()
        if resolved not in pages.published:
            return None
        rel = posixpath.relpath(pages.published[resolved], posixpath.dirname(page) or ".")
        return rel + (f"#{anchor}" if anchor else "")

    def md(match: re.Match[str]) -> str:
        label, target = match.group(1), match.group(2)
        new = target_for(target)
        if new is not None:
            return f"{label}({new})"
        # Not on the site (source code, the Makefile...): keep the words, name the file.
        words = label[1:-1] if label.startswith("[") else label[2:-1]
        return words if words.strip("`") == target else f"{words} (`{target}`)"

    def html(match: re.Match[str]) -> str:
        new = target_for(match.group(2))
        return match.group(0) if new is None else match.group(1) + new + match.group(3)

    return _HTML_SRC.sub(html, _MD_LINK.sub(md, text))


def _write(pages: Pages, page: str, text: str) -> None:
    path = pages.root / page
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _publish_markdown(pages: Pages, source: Path, page: str, text: str | None = None) -> None:
    body = source.read_text(encoding="utf-8") if text is None else text
    _write(pages, page, commonmark_to_mkdocs(_rewrite_links(body, source, page, pages)))


def _readme_intro(readme: Path) -> str:
    """The repository README up to its course table: what mlab is and how to start."""
    text = readme.read_text(encoding="utf-8")
    head, _, _ = text.partition("\n## The course\n")
    return head


def _exercise_block(day: Day, number: int, ex: Exercise) -> Iterator[str]:
    yield f"## {number}. `{ex.name}` {{ #{ex.name} }}"
    yield ""
    yield (
        f"difficulty {_stars(ex.difficulty)} · importance {_stars(ex.importance)} · "
        f"about {ex.minutes} min"
    )
    yield ""
    missing = ex.missing_requirements()
    src = exercise_source(ex)
    yield "In your exercise file:"
    yield ""
    yield "```python"
    yield stub_for(src).rstrip("\n")
    yield "```"
    yield ""
    yield "Check it:"
    yield ""
    yield "```sh"
    yield f"{mlab_command()} check {day.id} -e {ex.name}"
    yield "```"
    yield ""
    if missing:
        yield (
            f'!!! note "Needs {", ".join(missing)}"\n    This exercise needs an optional '
            f"package: `make setup EXTRAS=dev,nlp,notebook,docs,train,gpu` installs it."
        )
        yield ""
    for i, hint in enumerate(ex.hints, start=1):
        cost = "try first" if i == 1 else f"gives away more than hint {i - 1}"
        yield f'??? tip "Hint {i} of {len(ex.hints)} ({cost})"'
        yield ""
        yield "    " + hint.replace("\n", "\n    ")
        yield ""
    yield '??? success "Reference solution (the whole answer: open it after yours passes)"'
    yield ""
    yield f"    From `{_library_path(src.filename)}`, line {src.first_line}:"
    yield ""
    yield "    ```python"
    for line in src.source.rstrip("\n").splitlines():
        yield f"    {line}" if line else ""
    yield "    ```"
    yield ""


def _library_path(filename: str) -> str:
    """``src/mlab/tensor/strides.py`` rather than an absolute path on the build machine."""
    parts = Path(filename).parts
    return "/".join(parts[parts.index("mlab") :]) if "mlab" in parts else Path(filename).name


def _part_page(day: Day, index: int, first_number: int) -> str:
    part = day.parts[index - 1]
    lines = [
        f"# {day.id} part {index}: {part.title}",
        "",
        part.intro.strip(),
        "",
        "| # | exercise | difficulty | importance | minutes |",
        "|---|---|---|---|---|",
    ]
    for n, ex in enumerate(part.exercises, start=first_number):
        lines.append(
            f"| {n} | [`{ex.name}`](#{ex.name}) | {_stars(ex.difficulty)} | "
            f"{_stars(ex.importance)} | {ex.minutes} |"
        )
    lines.append("")
    for n, ex in enumerate(part.exercises, start=first_number):
        lines += list(_exercise_block(day, n, ex))
    return "\n".join(lines) + "\n"


def _day_overview(day: Day) -> str:
    minutes = sum(ex.minutes for ex in day.exercises)
    lines = [
        "",
        "## The day's parts",
        "",
        f"{len(day.exercises)} exercises, about {minutes / 60:.1f} hours. Start with "
        f"`{mlab_command()} start {day.id}`; `{mlab_command()} check {day.id}` checks them all.",
        "",
        "| part | exercises | minutes |",
        "|---|---|---|",
    ]
    for i, part in enumerate(day.parts, start=1):
        total = sum(ex.minutes for ex in part.exercises)
        lines.append(f"| [{i}. {part.title}](part{i}.md) | {len(part.exercises)} | {total} |")
    if day.figures:
        lines += ["", "## Figures", ""]
        for figure in day.figures:
            # A relative link from the README's folder, rewritten like the README's own.
            target = posixpath.relpath(figure.image, day.instructions.parent)
            lines += [f"![{figure.caption}]({target})", "", f"*{figure.caption}*", ""]
    return "\n".join(lines) + "\n"


def _course_map(days: tuple[Day, ...]) -> str:
    lines = [
        "# Course map",
        "",
        "Every day, its parts and how long they take. Days build on the library, never on your",
        "earlier solutions, so you can start any day.",
        "",
    ]
    week = None
    for day in days:
        w = day.id.split("d")[0]
        if w != week:
            week = w
            lines += [f"## Week {w[1:]}", ""]
        minutes = sum(ex.minutes for ex in day.exercises)
        lines += [
            f"### [{day.id}: {day.title}]({day.id}/index.md)",
            "",
            " ".join(day.summary.split()),
            "",
            "| part | exercises | minutes |",
            "|---|---|---|",
        ]
        for i, part in enumerate(day.parts, start=1):
            total = sum(ex.minutes for ex in part.exercises)
            lines.append(
                f"| [{i}. {part.title}]({day.id}/part{i}.md) | {len(part.exercises)} | {total} |"
            )
        lines += [
            f"| **all** | **{len(day.exercises)}** | **{minutes}** |",
            "",
        ]
    return "\n".join(lines) + "\n"


def write_pages(root: Path, repo: Path) -> Pages:
    """Write the site's markdown (and the images it shows) under ``root``, from the course
    manifests in the package and the repository's README and ``docs/``."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    pages = Pages(root=root)
    days = all_days()
    docs = repo / "docs"

    # Assets and pages first, so that links between them can be rewritten.
    for image in sorted((docs / "images").glob("*")):
        pages.published[image.resolve()] = f"images/{image.name}"
        (root / "images").mkdir(exist_ok=True)
        shutil.copy2(image, root / "images" / image.name)
    guides = sorted(docs.glob("*.md"))
    for guide in guides:
        pages.published[guide.resolve()] = f"guides/{guide.name}"
    for day in days:
        pages.published[day.instructions.resolve()] = f"{day.id}/index.md"

    readme = repo / "README.md"
    _publish_markdown(pages, readme, "index.md", _readme_intro(readme))
    _write(pages, "course.md", _course_map(days))
    pages.nav += [{"Home": "index.md"}, {"Course map": "course.md"}]

    weeks: dict[str, list[object]] = {}
    for day in days:
        text = day.instructions.read_text(encoding="utf-8") + _day_overview(day)
        _publish_markdown(pages, day.instructions, f"{day.id}/index.md", text)
        entries: list[object] = [{"Overview": f"{day.id}/index.md"}]
        number = 1
        for i, part in enumerate(day.parts, start=1):
            page = f"{day.id}/part{i}.md"
            _publish_markdown(pages, day.instructions, page, _part_page(day, i, number))
            number += len(part.exercises)
            entries.append({f"{i}. {part.title}": page})
        week = f"Week {day.id.split('d')[0][1:]}"
        weeks.setdefault(week, []).append({f"{day.id}: {day.title}": entries})
    pages.nav += [{week: entries} for week, entries in weeks.items()]

    guide_nav: list[object] = []
    for guide in guides:
        page = pages.published[guide.resolve()]
        _publish_markdown(pages, guide, page)
        title = guide.read_text(encoding="utf-8").lstrip().splitlines()[0].lstrip("# ").strip()
        guide_nav.append({title: page})
    if guide_nav:
        pages.nav.append({"Guides": guide_nav})
    return pages
