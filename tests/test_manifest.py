"""Day manifests: a good day loads; every malformed one raises ConfigError naming file and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlab.course.engine.manifest import DEFAULT_TIMEOUT, all_days, get_day, load_day
from mlab.errors import ConfigError, CourseError

DAY_TOML = """
id = "w9d9"
title = "Test day"
summary = "A day written by the tests. It has two parts."
instructions = "README.md"
parts = ["part1_a.toml", "part2_b.toml"]
"""

PART1 = """
title = "Part A"
intro = "Intro of A."
checks = "checks_a"

[[exercises]]
name = "first"
ref = "mlab.tensor.strides:contiguous_strides"
difficulty = 1
importance = 3
minutes = 5
hints = ["one", "two"]

[[exercises]]
name = "second"
ref = "mlab.tensor.strides:contiguous_strides"
difficulty = 3
importance = 1
minutes = 20
hints = ["only"]
timeout = 2.5
"""

PART2 = """
title = "Part B"
checks = "checks_b"

[[exercises]]
name = "third"
ref = "some.module:Class.method"
difficulty = 2
importance = 2
minutes = 10
hints = ["h"]
"""


def write_day(
    root: Path,
    *,
    day: str = DAY_TOML,
    part1: str = PART1,
    part2: str = PART2,
    folder: str = "w9d9_testing",
) -> Path:
    directory = root / folder
    directory.mkdir()
    (directory / "day.toml").write_text(day, encoding="utf-8")
    (directory / "part1_a.toml").write_text(part1, encoding="utf-8")
    (directory / "part2_b.toml").write_text(part2, encoding="utf-8")
    (directory / "README.md").write_text("# Test day\n", encoding="utf-8")
    return directory


def config_error(directory: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_day(directory)
    return str(info.value)


def test_a_good_day_loads(tmp_path: Path) -> None:
    day = load_day(write_day(tmp_path))
    assert (day.id, day.slug, day.title) == ("w9d9", "testing", "Test day")
    assert day.package == "mlab.course.w9d9_testing"
    assert day.workspace_filename == "w9d9_testing.py"
    assert day.instructions == tmp_path / "w9d9_testing" / "README.md"
    assert [p.title for p in day.parts] == ["Part A", "Part B"]
    assert day.parts[0].intro == "Intro of A." and day.parts[1].intro == ""
    assert day.parts[1].checks_module == "mlab.course.w9d9_testing.checks_b"
    assert [ex.name for ex in day.exercises] == ["first", "second", "third"]
    first, second, third = day.exercises
    assert first.hints == ("one", "two")
    assert (first.difficulty, first.importance, first.minutes) == (1, 3, 5)
    assert first.timeout == DEFAULT_TIMEOUT and second.timeout == 2.5
    assert [ex.part for ex in day.exercises] == [0, 0, 1]
    assert (third.ref_module, third.ref_qualname) == ("some.module", "Class.method")
    assert first.reference()((2, 3)) == (3, 1)
    assert day.exercise("second") is second


def test_unknown_exercise_suggests_close_names(tmp_path: Path) -> None:
    day = load_day(write_day(tmp_path))
    with pytest.raises(CourseError, match=r"has no exercise 'thir'\. Did you mean third\?"):
        day.exercise("thir")
    with pytest.raises(CourseError, match=r"`\S*mlab list w9d9` shows its exercises") as info:
        day.exercise("zzz")
    assert "Did you mean" not in str(info.value)


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("contigous_strides", "contiguous_strides"),  # a letter left out
        ("contiguous_stirdes", "contiguous_strides"),  # two swapped
        ("Contiguous_Strides", "contiguous_strides"),  # case
        ("bincnt", "bincount"),
        ("strides", "contiguous_strides"),  # part of the name
    ],
)
def test_a_misspelt_exercise_gets_did_you_mean(typo: str, meant: str) -> None:
    day = get_day("w1d1")
    with pytest.raises(CourseError) as info:
        day.exercise(typo)
    message = str(info.value)
    suggestion = message.split("Did you mean ", 1)[1].split("?", 1)[0]
    assert meant in suggestion.split(" or "), message
    assert "is_contiguous" not in suggestion  # only the closest spellings


@pytest.mark.parametrize(
    ("typo", "meant"), [("w1d1x", "w1d1"), ("w1dd3", "w1d3"), ("w1d11", "w1d1"), ("W1d4", None)]
)
def test_a_misspelt_day_gets_did_you_mean(typo: str, meant: str | None) -> None:
    if meant is None:  # case does not matter: it is found
        assert get_day(typo).id == typo.lower()
        return
    with pytest.raises(CourseError, match=rf"There is no day '{typo}'\. Did you mean {meant}\?"):
        get_day(typo)


def test_a_day_that_could_be_any_of_several_gets_no_guess() -> None:
    with pytest.raises(CourseError) as info:
        get_day("w1d9")  # as close to w1d1 as to w1d7
    assert "Did you mean" not in str(info.value)
    assert "Days: w1d1, w1d2" in str(info.value)


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


@pytest.mark.parametrize(
    ("changes", "file", "words"),
    [
        # day.toml
        ({"day": ('title = "Test day"\n', "")}, "day.toml", ["missing key 'title'"]),
        ({"day": ('parts = ["part1_a.toml", "part2_b.toml"]\n', "")}, "day.toml", ["'parts'"]),
        (
            {"day": ('id = "w9d9"', 'id = "w9d9"\nauthor = "me"')},
            "day.toml",
            ["unknown keys ['author']"],
        ),
        ({"day": ('id = "w9d9"', 'id = "w1d1"')}, "day.toml", ["id='w1d1'", "'w9d9'"]),
        ({"day": ('"README.md"', '"MISSING.md"')}, "day.toml", ["MISSING.md is missing"]),
        (
            {"day": ('title = "Test day"', "title = 3")},
            "day.toml",
            ["'title' should be a str, got int"],
        ),
        ({"day": ('"part2_b.toml"', '"part9_none.toml"')}, "part9_none.toml", ["is missing"]),
        ({"day": ("title =", "title")}, "day.toml", ["is not valid TOML"]),
        # part files
        ({"part2": ('checks = "checks_b"\n', "")}, "part2_b.toml", ["missing key 'checks'"]),
        ({"part2": ('title = "Part B"\n', "")}, "part2_b.toml", ["missing key 'title'"]),
        (
            {"part1": ('intro = "Intro of A."', 'introduction = "x"')},
            "part1_a.toml",
            ["unknown keys ['introduction']"],
        ),
        (
            {"part2": ("[[exercises]]", "[[exercise]]")},
            "part2_b.toml",
            ["unknown keys ['exercise']"],
        ),
        # exercises
        (
            {"part2": ('ref = "some.module:Class.method"\n', "")},
            "part2_b.toml",
            ["(third)", "missing key 'ref'"],
        ),
        ({"part2": ('name = "third"\n', "")}, "part2_b.toml", ["missing key 'name'"]),
        ({"part2": ("minutes = 10\n", "")}, "part2_b.toml", ["(third)", "missing key 'minutes'"]),
        (
            {"part2": ("minutes = 10", "minutes = 10\nminute = 1")},
            "part2_b.toml",
            ["unknown keys ['minute']"],
        ),
        (
            {"part2": ("difficulty = 2", "difficulty = 4")},
            "part2_b.toml",
            ["(third)", "difficulty=4 should be 1, 2 or 3"],
        ),
        (
            {"part2": ("difficulty = 2", "difficulty = 0")},
            "part2_b.toml",
            ["difficulty=0 should be 1, 2 or 3"],
        ),
        (
            {"part2": ("difficulty = 2", 'difficulty = "2"')},
            "part2_b.toml",
            ["'difficulty' should be a int, got str"],
        ),
        (
            {"part2": ("importance = 2", "importance = 9")},
            "part2_b.toml",
            ["importance=9 should be 1, 2 or 3"],
        ),
        (
            {"part2": ('name = "third"', 'name = "first"')},
            "part2_b.toml",
            ["exercise 'first' appears twice in w9d9"],
        ),
        (
            {"part2": ('"some.module:Class.method"', '"some.module.Class"')},
            "part2_b.toml",
            ["ref 'some.module.Class' should look like"],
        ),
        (
            {"part2": ('"some.module:Class.method"', '"some module:f"')},
            "part2_b.toml",
            ["ref 'some module:f'"],
        ),
        ({"part2": ('"some.module:Class.method"', '"a:b:c"')}, "part2_b.toml", ["ref 'a:b:c'"]),
        (
            {"part2": ('hints = ["h"]', "hints = []")},
            "part2_b.toml",
            ["'hints' should be a non-empty list of strings"],
        ),
        (
            {"part2": ('hints = ["h"]\n', "")},
            "part2_b.toml",
            ["'hints' should be a non-empty list"],
        ),
        (
            {"part2": ('hints = ["h"]', "hints = [1]")},
            "part2_b.toml",
            ["'hints' should be a non-empty list"],
        ),
    ],
)
def test_bad_manifests_name_the_file_and_key(
    tmp_path: Path, changes: dict[str, tuple[str, str]], file: str, words: list[str]
) -> None:
    texts = {"day": DAY_TOML, "part1": PART1, "part2": PART2}
    for key, (old, new) in changes.items():
        texts[key] = replace_once(texts[key], old, new)
    message = config_error(write_day(tmp_path, **texts))
    assert re.search(rf"{re.escape(str(tmp_path))}/w9d9_testing/{re.escape(file)}\b", message), (
        message
    )
    for word in words:
        assert word in message


def test_a_folder_that_is_not_a_day(tmp_path: Path) -> None:
    message = config_error(write_day(tmp_path, folder="week9_testing"))
    assert "'week9_testing' is not a day folder name like 'w1d1_tensors'" in message


def test_missing_day_toml(tmp_path: Path) -> None:
    directory = tmp_path / "w9d9_empty"
    directory.mkdir()
    assert f"{directory / 'day.toml'} is missing" in config_error(directory)


def test_the_course_days_load_in_order() -> None:
    days = all_days()
    assert days and days[0].id == "w1d1"
    keys = [tuple(int(n) for n in re.findall(r"\d+", d.id)) for d in days]
    assert keys == sorted(keys)
    assert get_day("w1d1") is days[0]
    assert get_day("W1D1_tensors") is days[0]
    with pytest.raises(CourseError, match=r"There is no day 'w9d9'. Days: w1d1"):
        get_day("w9d9")


def test_code_in_the_instructions_fits_an_80_column_terminal() -> None:
    """`mlab read` renders code blocks in a padded box: a line longer than 76 characters is
    wrapped, which breaks it (a `>>>` line cut in two reads as code plus output)."""
    too_long = []
    for day in all_days():
        texts = [("README.md", day.instructions.read_text(encoding="utf-8"))]
        texts += [(f"part {i} intro", part.intro) for i, part in enumerate(day.parts, start=1)]
        for where, text in texts:
            in_code = False
            for line in text.splitlines():
                if line.lstrip().startswith("```"):
                    in_code = not in_code
                elif in_code and len(line) > 76:
                    too_long.append(f"{day.id} {where}: {line}")
    assert not too_long, "code lines over 76 characters:\n" + "\n".join(too_long)


def test_figures_load_and_a_missing_or_malformed_one_is_named(tmp_path: Path) -> None:
    figure = '\n[[figures]]\nimage = "pic.png"\ncaption = "What it shows."\n'
    directory = write_day(tmp_path, day=DAY_TOML + figure)
    assert "figure pic.png is missing" in config_error(directory)
    (directory / "pic.png").write_bytes(b"\x89PNG")
    (fig,) = load_day(directory).figures
    assert (fig.image, fig.caption) == ((directory / "pic.png").resolve(), "What it shows.")
    assert (
        load_day(
            write_day(tmp_path, folder="w9d8_plain", day=DAY_TOML.replace("w9d9", "w9d8"))
        ).figures
        == ()
    )
    bad = write_day(
        tmp_path,
        folder="w9d7_bad",
        day=DAY_TOML.replace("w9d9", "w9d7") + figure.replace("caption", "title"),
    )
    (bad / "pic.png").write_bytes(b"\x89PNG")
    assert "title" in config_error(bad)
