"""The warm check worker (a fork server): same results as a fresh worker, the learner's edits
always seen, time limits and crashes reported as before, invalidated when mlab changes."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import mlab
from mlab.course.engine import warm
from mlab.course.engine.manifest import get_day
from mlab.course.engine.runner import Target, run_checks, run_jobs
from mlab.course.engine.stubgen import workspace_source

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the warm worker is Linux-only")


@pytest.fixture
def sockets(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Servers of this test listen in a private folder (short: socket paths are limited),
    and are stopped at the end."""
    folder = Path(tempfile.mkdtemp(prefix="mw"))
    monkeypatch.setenv("MLAB_WARM_WORKER", "1")
    monkeypatch.setattr(warm, "_socket_path", lambda fp: folder / f"{fp}.sock")
    yield folder
    for sock in folder.glob("*.sock"):
        warm._stop_at(sock)
    shutil.rmtree(folder, ignore_errors=True)


def _file(tmp_path: Path, body: str) -> Path:
    """A w1d1 workspace file: the stub with ``element_offset`` replaced by ``body``."""
    source = workspace_source(get_day("w1d1"))
    assert "def element_offset(" in source  # the later definition replaces the stub
    path = tmp_path / "w1d1_tensors.py"
    path.write_text(source + "\n\n" + body, encoding="utf-8")
    return path


def test_results_equal_a_fresh_worker_and_the_server_is_reused(sockets: Path) -> None:
    day = get_day("w1d1")
    names = ["element_offset", "contiguous_strides"]
    cold = run_checks(day, Target.reference(), names)
    first = run_checks(day, Target.reference(), names, warm=True)
    servers = list(sockets.glob("*.sock"))
    assert len(servers) == 1, "the first warm run starts one server"
    start = time.monotonic()
    second = run_checks(day, Target.reference(), names, warm=True)
    assert time.monotonic() - start < 30
    assert list(sockets.glob("*.sock")) == servers, "the second run reuses it"
    for runs in (first, second):
        assert [(r.exercise, r.status) for r in runs] == [(r.exercise, r.status) for r in cold]
        assert all(r.passed for r in runs)


def test_each_run_loads_the_learners_file_anew(sockets: Path, tmp_path: Path) -> None:
    day = get_day("w1d1")
    wrong = "def element_offset(index, stride, offset=0):\n    return 0\n"
    path = _file(tmp_path, wrong)
    [before] = run_checks(day, Target.file(path), ["element_offset"], warm=True)
    assert before.status == "fail"
    right = (
        "from mlab.errors import ShapeError\n"
        "def element_offset(index, stride, offset=0):\n"
        "    if len(index) != len(stride):\n"
        "        raise ShapeError('index and stride differ in length')\n"
        "    return offset + sum(i * s for i, s in zip(index, stride))\n"
    )
    path.write_text(path.read_text().replace(wrong, right), encoding="utf-8")
    [after] = run_checks(day, Target.file(path), ["element_offset"], warm=True)
    assert after.passed, after.message


def test_a_timeout_kills_the_forked_worker_and_the_next_run_works(
    sockets: Path, tmp_path: Path
) -> None:
    day = get_day("w1d1")
    loop = "def element_offset(index, stride, offset=0):\n    while True:\n        pass\n"
    path = _file(tmp_path, loop)
    # element_offset's limit is 10 s; a fifth of it is enough to see the timeout
    [result] = run_jobs(day, [(Target.file(path), "element_offset")], timeout_scale=0.2, warm=True)
    assert result.status == "timeout", result.message
    [again] = run_checks(day, Target.reference(), ["contiguous_strides"], warm=True)
    assert again.passed, again.message


def test_an_exit_in_the_learners_code_is_reported_with_its_code(
    sockets: Path, tmp_path: Path
) -> None:
    day = get_day("w1d1")
    path = _file(tmp_path, "import os\nos._exit(3)\n")
    [result] = run_checks(day, Target.file(path), ["element_offset"], warm=True)
    assert result.status == "error"
    assert "exited with code 3" in result.message


def test_the_fingerprint_follows_mlab_sources_and_import_time_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "mlab"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "layer.py").write_text("x = 1\n")
    monkeypatch.setattr(mlab, "__file__", str(package / "__init__.py"))
    env = {"PATH": "/bin"}
    fp = warm.fingerprint(env)
    assert warm.fingerprint({**env, "PWD": "/elsewhere"}) == fp, "irrelevant variables"
    assert warm.fingerprint({**env, "OMP_NUM_THREADS": "4"}) != fp
    (package / "layer.py").write_text("x = 22\n")  # another size
    assert warm.fingerprint(env) != fp
    fp2 = warm.fingerprint(env)
    os.utime(package / "layer.py", ns=(1, 1))  # another modification time
    assert warm.fingerprint(env) != fp2
    fp3 = warm.fingerprint(env)
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.setattr(warm.sysconfig, "get_paths", lambda: {"purelib": site, "platlib": site})
    fp4 = warm.fingerprint(env)
    assert fp4 != fp3
    (site / "einops-0.9.0.dist-info").mkdir()  # a package upgraded
    os.utime(site, ns=(2, 2))
    assert warm.fingerprint(env) != fp4


def test_turned_off_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLAB_WARM_WORKER", "0")
    assert not warm.enabled()
    monkeypatch.setenv("MLAB_WARM_WORKER", "1")
    assert warm.enabled() == (sys.platform == "linux")


def test_modules_in_the_current_folder_import_as_in_a_fresh_worker(
    sockets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m` puts the current folder first on sys.path; a forked worker does the same
    with the folder of the command that asked for it, not the server's."""
    (tmp_path / "my_offsets.py").write_text(
        "def offset(index, stride, offset=0):\n    return 'from my_offsets'\n"
    )
    (tmp_path / "ws").mkdir()
    body = "from my_offsets import offset as element_offset\n"
    path = _file(tmp_path / "ws", body)
    monkeypatch.chdir(tmp_path)
    [result] = run_checks(get_day("w1d1"), Target.file(path), ["element_offset"], warm=True)
    assert result.status == "fail", result.message  # imported, and wrong
    assert "returned a str" in result.message


def test_a_folder_others_can_reach_is_not_used(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o700)
    assert warm._private(folder)
    folder.chmod(0o770)
    assert not warm._private(folder)
