"""The course as a static web site: `make docs`, `mlab docs` and `mlab read DAY --web`.

The pages are generated from the day manifests (`pages.py`), then built by MkDocs with the
Material theme (the `docs` extra). The site works from the local files with no server and no
network: formulas are drawn by a bundled MathJax, search runs from an inlined index, and
every link is a relative ``.html`` link.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, files, version
from pathlib import Path
from typing import Any

from mlab.errors import CourseError

__all__ = ["build_site", "day_page", "default_site_dir", "repository_root", "site_is_current"]

_ASSETS = Path(__file__).resolve().parent / "assets"
_FINGERPRINT = ".mlab-site-fingerprint"
_NEEDS = ("mkdocs", "material", "pymdownx")
MATHJAX_DIST = "sphinx-mathjax-offline"  # MathJax 3's browser files, packaged for offline use
MATHJAX_FILE = "tex-svg-full.js"  # TeX input, SVG output, every TeX extension, no fonts


def repository_root() -> Path:
    """The source checkout the course is built from (its README and ``docs/`` are pages)."""
    root = Path(__file__).resolve().parents[3]
    if not (root / "pyproject.toml").is_file() or not (root / "docs").is_dir():
        raise CourseError(
            "The course web site is built from a source checkout of mlab (with its README.md "
            f"and docs/), but this mlab is installed from a package ({root} has neither). "
            "Clone the repository and run `make docs` there."
        )
    return root


def default_site_dir() -> Path:
    """``$MLAB_SITE_DIR`` if set, else ``site/`` in the checkout (where `make docs` builds)."""
    if env := os.environ.get("MLAB_SITE_DIR"):
        return Path(env).expanduser().resolve()
    return repository_root() / "site"


def day_page(site: Path, day_id: str) -> Path:
    return site / day_id / "index.html"


def _require_docs_extra() -> None:
    missing = [name for name in _NEEDS if importlib.util.find_spec(name) is None]
    if missing or _mathjax_file() is None:
        raise CourseError(
            "Building the course web site needs the `docs` extra (MkDocs, its Material theme "
            "and MathJax), which is not installed. Run `make docs`, or "
            "`make setup EXTRAS=dev,nlp,notebook,docs,train`."
        )


def _mathjax_file() -> Path | None:
    try:
        entries = files(MATHJAX_DIST) or []
    except PackageNotFoundError:
        return None
    for entry in entries:
        if entry.name == MATHJAX_FILE:
            return Path(str(entry.locate()))
    return None


def _inputs(repo: Path) -> list[Path]:
    """Every file the site is built from: the package (manifests, READMEs, the reference
    code whose stubs and solutions are shown), the repository README and ``docs/``."""
    package = Path(__file__).resolve().parents[1]
    found = [p for p in package.rglob("*") if p.suffix in {".py", ".toml", ".md", ".js", ".css"}]
    found += [p for p in (repo / "docs").rglob("*") if p.is_file()]
    found.append(repo / "README.md")
    return sorted(found)


def _fingerprint(repo: Path) -> str:
    digest = hashlib.sha256()
    for name in ("mlab", "mkdocs", "mkdocs-material"):
        try:
            digest.update(f"{name}={version(name)}\n".encode())
        except PackageNotFoundError:
            digest.update(f"{name}=none\n".encode())
    for path in _inputs(repo):
        digest.update(str(path.relative_to(repo)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def site_is_current(site: Path) -> bool:
    """True when ``site`` was built from the files as they are now."""
    stamp = site / _FINGERPRINT
    return stamp.is_file() and stamp.read_text().strip() == _fingerprint(repository_root())


def _config(pages_dir: Path, site: Path, nav: list[Any]) -> dict[str, Any]:
    return {
        "site_name": "mlab: build your own deep learning",
        "site_description": "A deep-learning course whose exercises are checked against "
        "PyTorch and HuggingFace",
        "docs_dir": str(pages_dir),
        "site_dir": str(site),
        "use_directory_urls": False,  # page.html links work from the files, too
        "strict": True,
        "nav": nav,
        "theme": {
            "name": "material",
            "font": False,  # system fonts: nothing is fetched from the network
            "features": [
                "navigation.sections",
                "navigation.top",
                "navigation.footer",
                "search.highlight",
                "content.code.copy",
                "toc.follow",
            ],
            "palette": [
                {
                    "media": "(prefers-color-scheme: light)",
                    "scheme": "default",
                    "primary": "indigo",
                    "toggle": {"icon": "material/weather-night", "name": "Dark mode"},
                },
                {
                    "media": "(prefers-color-scheme: dark)",
                    "scheme": "slate",
                    "primary": "indigo",
                    "toggle": {"icon": "material/weather-sunny", "name": "Light mode"},
                },
            ],
        },
        "plugins": ["search", "offline"],
        "markdown_extensions": [
            "admonition",
            "attr_list",
            "tables",
            "toc",
            "pymdownx.details",
            {"pymdownx.arithmatex": {"generic": True}},
            {"pymdownx.highlight": {"anchor_linenums": False}},
            "pymdownx.inlinehilite",
            "pymdownx.superfences",
        ],
        "extra": {"polyfills": ["assets/iframe-worker.js"]},
        "extra_css": ["assets/extra.css"],
        "extra_javascript": ["assets/mathjax-config.js", f"assets/mathjax/{MATHJAX_FILE}"],
    }


class _WarningCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def build_site(site: Path | None = None, *, quiet: bool = True) -> Path:
    """Build the whole course into ``site`` (default: ``site/`` in the checkout) and return
    it. Any MkDocs warning (a broken link, a missing page) fails the build."""
    _require_docs_extra()
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import MkDocsException

    from mlab.docsite.pages import write_pages

    repo = repository_root()
    site = (site or default_site_dir()).resolve()
    mathjax = _mathjax_file()
    assert mathjax is not None  # _require_docs_extra
    with tempfile.TemporaryDirectory(prefix="mlab-site-") as tmp:
        pages = write_pages(Path(tmp) / "pages", repo)
        assets = pages.root / "assets"
        shutil.copytree(_ASSETS, assets)
        (assets / "mathjax").mkdir()
        shutil.copy2(mathjax, assets / "mathjax" / MATHJAX_FILE)

        config_file = Path(tmp) / "mkdocs.yml"  # JSON is YAML
        config_file.write_text(json.dumps(_config(pages.root, site, pages.nav), indent=1))

        counter = _WarningCounter()
        mkdocs_log = logging.getLogger("mkdocs")
        mkdocs_log.addHandler(counter)
        level = mkdocs_log.level
        if quiet:
            mkdocs_log.setLevel(logging.WARNING)
        try:
            build(load_config(str(config_file)))
        except MkDocsException as exc:
            found = "\n".join(f"  {m}" for m in counter.messages) or f"  {exc}"
            raise CourseError(f"The course web site did not build:\n{found}") from exc
        finally:
            mkdocs_log.removeHandler(counter)
            mkdocs_log.setLevel(level)
    # MkDocs' 404 page links to the server's root ("/assets/..."), which is right only for a
    # site at the root of its domain, and never for files; a host shows its own 404 instead.
    # The sitemap is empty without a site URL.
    for name in ("404.html", "sitemap.xml", "sitemap.xml.gz"):
        (site / name).unlink(missing_ok=True)
    (site / _FINGERPRINT).write_text(_fingerprint(repo) + "\n")
    return site
