"""The course web site: generated from the manifests, built with no warnings, every link and
image working from the files, and tried in a real (headless) Chromium."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from mlab.course.engine.manifest import all_days
from mlab.docsite import build_site, day_page, site_is_current
from mlab.docsite.maths import maths_as_code
from mlab.docsite.pages import Pages, _rewrite_links, commonmark_to_mkdocs
from mlab.errors import CourseError

sys.path.insert(0, str(Path(__file__).parent))
from browser import INSTALL_HINT, Browser, BrowserError, find_chromium

pytest.importorskip("material", reason="the `docs` extra is not installed: make docs")

ARTIFACTS = Path(__file__).resolve().parents[1] / "build" / "test-artifacts"


# ---------------------------------------------------------------- markdown adaptations


def test_a_list_after_a_paragraph_gets_the_blank_line_python_markdown_needs() -> None:
    text = "Three things:\n- one\n- two\n\nAfter.\n"
    assert commonmark_to_mkdocs(text) == "Three things:\n\n- one\n- two\n\nAfter.\n"


def test_nested_lists_are_indented_by_four_and_code_is_left_alone() -> None:
    text = "1. **A** part\n   - `shape`: sizes\n     more\n\n```\n   - not a list\n```\n"
    out = commonmark_to_mkdocs(text).splitlines()
    assert out[1] == "    - `shape`: sizes"
    assert out[2] == "        more"
    assert out[5] == "   - not a list"


def test_display_maths_is_left_alone() -> None:
    text = "Text\n\n$$\n  - x\n$$\n"
    assert commonmark_to_mkdocs(text) == text


def test_maths_reads_as_code_in_the_terminal() -> None:
    text = "Step $\\theta - \\mathrm{lr}\\, g$ and `$HOME` cost $5 or $6.\n$$\na_t = b\n$$\nNext"
    out = maths_as_code(text)
    assert "`\\theta - \\mathrm{lr}\\, g`" in out
    assert "`$HOME`" in out and "$5 or $6" in out  # code and prices untouched
    assert "\n\n    a_t = b\n\nNext" in out
    assert "$$" not in out


def test_links_point_at_published_pages_and_name_the_rest(tmp_path: Path) -> None:
    source = tmp_path / "src" / "day" / "README.md"
    image = tmp_path / "docs" / "images" / "a.png"
    guide = tmp_path / "docs" / "guide.md"
    pages = Pages(root=tmp_path / "out")
    pages.published = {image: "images/a.png", guide: "guides/guide.md"}
    text = (
        "![pic](../../docs/images/a.png) [the guide](../../docs/guide.md#rules) "
        '<img src="../../docs/images/a.png"> [code](../engine.py) [web](https://x.org/a)'
    )
    out = _rewrite_links(text, source, "w1d1/index.md", pages)
    assert "![pic](../images/a.png)" in out
    assert "[the guide](../guides/guide.md#rules)" in out
    assert '<img src="../images/a.png">' in out
    assert "code (`../engine.py`)" in out and "](../engine.py)" not in out
    assert "[web](https://x.org/a)" in out


# ---------------------------------------------------------------- the built site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_site(tmp_path_factory.mktemp("site") / "site")


_NOT_PROSE = {"code", "pre", "script", "style", "svg", "textarea"}
_VOID = {"br", "img", "input", "link", "meta", "hr", "source", "wbr"}
# LaTeX that was not turned into a formula: $...$ holding a \command, ^ or _, or a $$.
_RAW_MATHS = re.compile(r"\$\$|\$[^$\s][^$]*?(\\[a-zA-Z]+|[\^_])[^$]*?\$")


class _Page(HTMLParser):
    """Links, sources, ids, headings and collapsed blocks of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.refs: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.h1 = ""
        self.h2_ids: list[str] = []
        self.summaries: list[str] = []
        self.prose = ""  # text outside code, scripts and formulas
        self._in: str | None = None
        self._skip: list[str] = []  # open elements whose text is not prose

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        not_prose = tag in _NOT_PROSE or "arithmatex" in a.get("class", "").split()
        if (self._skip or not_prose) and tag not in _VOID:
            self._skip.append(tag)
        if "id" in a:
            self.ids.add(a["id"])
        for attr in ("href", "src"):
            if attr in a:
                self.refs.append((tag, attr, a[attr]))
        if tag == "h2" and "id" in a:
            self.h2_ids.append(a["id"])
        if tag in ("h1", "summary"):
            self._in = tag
            if tag == "summary":
                self.summaries.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None
        if self._skip and self._skip[-1] == tag:
            self._skip.pop()

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.prose += data
        if self._in == "h1":
            self.h1 += data
        elif self._in == "summary":
            self.summaries[-1] += data


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_every_day_part_and_exercise_has_its_page(site: Path) -> None:
    for day in all_days():
        overview = _parse(day_page(site, day.id))
        assert overview.h1.startswith(f"{day.id}"), overview.h1
        for i, part in enumerate(day.parts, start=1):
            path = site / day.id / f"part{i}.html"
            page = _parse(path)
            assert part.title in page.h1, (path, page.h1)
            assert f"part{i}.html" in {Path(v).name for _, _, v in overview.refs}
            assert page.h2_ids == [ex.name for ex in part.exercises], path
            hints = [s for s in page.summaries if s.startswith("Hint")]
            solutions = [s for s in page.summaries if s.startswith("Reference solution")]
            assert len(hints) == sum(len(ex.hints) for ex in part.exercises), path
            assert len(solutions) == len(part.exercises), path
            assert all("try first" in s for s in hints if s.startswith("Hint 1 ")), hints
            text = html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))
            for ex in part.exercises:
                assert f"check {day.id} -e {ex.name}" in text, (path, ex.name)
                # the stub's body (a class has one per method)
                assert re.search(rf"{ex.name}(\.\w+)?: not started", text), (path, ex.name)


def test_site_is_current_after_a_build_and_not_after_a_change(site: Path) -> None:
    assert site_is_current(site)
    stamp = site / ".mlab-site-fingerprint"
    saved = stamp.read_text()
    try:
        stamp.write_text("0" * 64)
        assert not site_is_current(site)
    finally:
        stamp.write_text(saved)


_REMOTE = re.compile(r"^[a-z]+://", re.I)


def test_every_link_and_asset_resolves_and_nothing_is_fetched_from_the_network(
    site: Path,
) -> None:
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 3 * len(all_days())
    parsed = {path: _parse(path) for path in pages}
    broken: list[str] = []
    for path, page in parsed.items():
        for tag, attr, value in page.refs:
            if _REMOTE.match(value) or value.startswith(("mailto:", "data:", "javascript:")):
                # A visitor may follow a link out, but the page itself must load offline.
                if tag != "a" and value.startswith(("http:", "https:", "//")):
                    broken.append(f"{path.relative_to(site)}: <{tag} {attr}> loads {value}")
                continue
            parts = urlsplit(value)
            target = path if not parts.path else (path.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{path.relative_to(site)}: {value} (no {target})")
            elif parts.fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else _parse(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{path.relative_to(site)}: {value} (no #{parts.fragment})")
    assert not broken, "\n".join(broken[:30])


def test_no_page_shows_raw_latex(site: Path) -> None:
    raw = []
    for path in sorted(site.rglob("*.html")):
        for match in _RAW_MATHS.finditer(_parse(path).prose):
            raw.append(f"{path.relative_to(site)}: {match.group(0)[:80]}")
    assert not raw, "\n".join(raw[:20])


def test_a_broken_link_fails_the_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlab.docsite.pages as pages

    real = pages._course_map
    monkeypatch.setattr(pages, "_course_map", lambda days: real(days) + "[x](w9d9/nowhere.md)\n")
    with pytest.raises(CourseError, match=r"nowhere\.md"):
        build_site(tmp_path / "site")


def test_read_web_opens_the_day_page(site: Path, tmp_path: Path) -> None:
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    env = {**os.environ, "MLAB_SITE_DIR": str(site), "BROWSER": str(browser)}
    command = "from mlab.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", command, "read", "w1d2", "--web", "--part", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Building" not in result.stdout  # the site was current: no rebuild
    assert opened.read_text().strip() == (site / "w1d2" / "part2.html").as_uri()


# ---------------------------------------------------------------- in a real browser


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Any:
    executable = find_chromium()
    if executable is None:
        if os.environ.get("MLAB_REQUIRE_BROWSER"):
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)
    try:
        chromium = Browser(executable, tmp_path_factory.mktemp("chromium"), height=900)
    except BrowserError:  # on a busy machine Chromium's first start can stall: once more
        chromium = Browser(executable, tmp_path_factory.mktemp("chromium"), height=900)
    yield chromium
    chromium.close()


_FORMULAS = """MathJax.startup.promise.then(() => {
  const maths = [...document.querySelectorAll('.arithmatex')];
  return {
    formulas: maths.length,
    rendered: maths.filter((m) => m.querySelector('mjx-container svg')).length,
    raw: maths.filter((m) => /\\\\[a-z]+|\\$/.test(m.innerText)).map((m) => m.innerText),
  };
})"""

_IMAGES = """Promise.all([...document.images].map((img) => img.decode().catch(() => null)))
  .then(() => [...document.images].map((img) => [img.getAttribute('src'), img.naturalWidth]))"""


def test_a_day_page_in_chromium(site: Path, browser: Browser) -> None:
    day = next(d for d in all_days() if d.id == "w1d2")
    browser.open((site / "w1d2" / "part2.html").as_uri())
    assert browser.evaluate("document.title").startswith("2. Regression")
    nav = browser.evaluate("[...document.querySelectorAll('.md-nav__link')].map(a => a.innerText)")
    for i, part in enumerate(day.parts, start=1):
        assert any(f"{i}. {part.title}" in text for text in nav), (part.title, nav)
    headings = browser.evaluate("[...document.querySelectorAll('h2')].map(h => h.id)")
    assert headings == [ex.name for ex in day.parts[1].exercises]

    maths = browser.evaluate(_FORMULAS)
    assert maths["formulas"] >= 5, maths
    assert maths["rendered"] == maths["formulas"] and not maths["raw"], maths

    # A hint opens when clicked; the solution below it stays closed.
    opened = browser.evaluate(
        "(() => { const d = document.querySelector('details.tip'); d.querySelector('summary')"
        ".click(); return [d.open, document.querySelector('details.success').open]; })()"
    )
    assert opened == [True, False]
    browser.evaluate("window.scrollTo(0, 0)")
    browser.screenshot(ARTIFACTS / "site_w1d2_part2.png")


def test_images_load_in_chromium(site: Path, browser: Browser) -> None:
    for day in ("w1d2", "w1d5"):
        browser.open(day_page(site, day).as_uri())
        images = [(src, width) for src, width in browser.evaluate(_IMAGES) if ".png" in src]
        assert images, f"{day} shows no pictures"
        assert all(width > 0 for _, width in images), images


def test_search_works_from_the_files(site: Path, browser: Browser) -> None:
    browser.open((site / "course.html").as_uri())
    found = browser.evaluate(
        """new Promise((resolve) => {
          const input = document.querySelector('input[data-md-component=search-query]');
          input.focus();
          input.value = 'as_strided';
          input.dispatchEvent(new Event('input', { bubbles: true }));
          const started = Date.now();
          const poll = () => {
            const items = document.querySelectorAll('.md-search-result__item');
            if (items.length || Date.now() - started > 15000) {
              resolve([...items].map((item) => item.innerText.split('\\n')[0]));
            } else {
              setTimeout(poll, 100);
            }
          };
          poll();
        })""",
        timeout=30,
    )
    assert any("w1d1" in hit or "w1d3" in hit for hit in found), found


def test_dark_mode_toggles(site: Path, browser: Browser) -> None:
    browser.open((site / "index.html").as_uri())
    scheme = "document.body.getAttribute('data-md-color-scheme')"
    before = browser.evaluate(scheme)
    browser.evaluate("document.querySelector('label.md-header__button[for^=__palette]').click()")
    after = browser.evaluate(scheme)
    assert {before, after} == {"default", "slate"}, (before, after)


def test_a_day_shows_the_figures_it_declares(site: Path) -> None:
    for day in all_days():
        page = _parse(day_page(site, day.id))
        shown = {Path(v).name for tag, _, v in page.refs if tag == "img"}
        for figure in day.figures:
            assert figure.image.name in shown, (day.id, figure.image.name)
            assert (site / "images" / figure.image.name).is_file()
    assert any(day.figures for day in all_days())


def test_mlab_read_shows_formulas_as_code() -> None:
    from typer.testing import CliRunner

    from mlab.cli import app

    result = CliRunner().invoke(app, ["read", "w1d5", "--part", "1", "--no-pager"])
    assert result.exit_code == 0, result.output
    assert "$" not in result.output
    assert "\\beta_1" in result.output  # the LaTeX itself, verbatim


def test_raw_latex_is_found_in_prose_only() -> None:
    page = _Page()
    page.feed(
        '<p>Raw $\\beta_1$ here, costs $5 and $6.</p><span class="arithmatex">\\(\\beta\\)</span>'
        "<pre><code>$x_1$ $$</code></pre><p>and $$ too</p>"
    )
    assert [m.group(0) for m in _RAW_MATHS.finditer(page.prose)] == ["$\\beta_1$", "$$"]
