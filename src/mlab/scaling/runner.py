"""Run a study's training runs as a search on w3d2's job queue (:mod:`mlab.search`).

Each run becomes a job: the shipped config's text with the run's bindings appended (gin text,
never a pickle), in the search ``<study>``. The queue (by default
``sqlite:///<runs_dir>/<study>/queue.db``) is worked until it is empty by ``workers`` worker
loops (:func:`mlab.search.work`: this process and ``workers - 1`` ``mlab search work``
processes); each job trains with ``mlab train`` (w3d1's loop) into
``<runs_dir>/<study>/<job id>/``. Submitting is idempotent and finished jobs are never run
again, so rerunning a study does only what is left; a worker killed mid-run leaves a lease that
expires, and the next try resumes the run from its newest checkpoint. Workers on other machines
can join a Redis queue (``--queue redis://host:port/0``) with ``mlab search work --backend``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mlab.scaling.studies import Run, Study

__all__ = ["analysis_dir", "default_queue", "run_study", "study_dir", "study_jobs"]


def study_dir(study: Study, runs_dir: str | Path) -> Path:
    """The folder of the study's runs and queue: ``<runs_dir>/<search>``."""
    return Path(runs_dir) / study.search


def analysis_dir(study: Study, runs_dir: str | Path) -> Path:
    """Where the study's summary and figure go: its runs folder, or, when it shares its search
    with other studies, a folder of its own name in there."""
    folder = study_dir(study, runs_dir)
    return folder if study.search == study.name else folder / study.name


def default_queue(study: Study, runs_dir: str | Path) -> str:
    return f"sqlite:///{study_dir(study, runs_dir) / 'queue.db'}"


def study_jobs(study: Study, runs_dir: str | Path) -> list[tuple[Run, object]]:
    """Each run of the study with its job (a :class:`mlab.search.JobSpec`)."""
    from mlab.search import JobSpec
    from mlab.train.config import shipped_config

    folder = study_dir(study, runs_dir)
    base = shipped_config(study.config).read_text()
    out: list[tuple[Run, object]] = []
    for run in study.runs(folder / "data"):
        config = base + "".join(f"\n{b}  # study {study.search}" for b in run.bindings) + "\n"
        out.append((run, JobSpec(study.search, run.params, config)))
    return out


def run_study(
    study: Study, runs_dir: str | Path = "runs/studies", queue: str | None = None, workers: int = 1
) -> list[tuple[Run, Path]]:
    """Submit the study's runs to ``queue`` and work it until no job is left; return each run
    with its folder (``<runs_dir>/<study>/<job id>``)."""
    from mlab.errors import ConfigError
    from mlab.search import open_queue, work

    if workers < 1:
        raise ConfigError(f"workers={workers}: run at least one worker")
    folder = study_dir(study, runs_dir)
    folder.mkdir(parents=True, exist_ok=True)
    url = queue or default_queue(study, runs_dir)
    jobs = study_jobs(study, runs_dir)
    with open_queue(url) as q:
        added = q.submit([job for _, job in jobs])  # type: ignore[misc]
        print(
            f"{study.name}: {len(jobs)} runs, {added} new jobs on {url}",
            file=sys.stderr,
            flush=True,
        )
        helpers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mlab.search",
                    "work",
                    "--backend",
                    url,
                    "--until-empty",
                    "--runs-dir",
                    str(runs_dir),
                ]
            )
            for _ in range(workers - 1)
        ]
        try:
            work(q, until_empty=True, runs_dir=runs_dir)
        finally:
            for helper in helpers:
                helper.wait()
        dead = q.dead(study.search)
        if dead:
            print(
                f"{len(dead)} jobs failed for good: mlab search status --queue {url} --dead",
                file=sys.stderr,
            )
    return [(run, folder / job.id) for run, job in jobs]  # type: ignore[attr-defined]
