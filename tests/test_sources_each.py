"""sources.each: per-item outcomes over the engine, in item order, a bad item's error in its place."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annonorm.engine import Execution, LocalExecutor
from annonorm.errors import AnnonormError, ParseError
from annonorm.sources.each import map_each
from annonorm.sources.xml import parse_xml

#: A real per-file reader: the root tag of an XML file (a malformed one raises ParseError).
_ROOT_TAG = functools.partial(parse_xml, what="test XML")


def _files(directory: Path, good: list[bool]) -> list[Path]:
    paths = []
    for index, ok in enumerate(good):
        path = directory / f"{index}.xml"
        path.write_text(f"<item{index}/>" if ok else f"<item{index}>", encoding="utf-8")
        paths.append(path)
    return paths


def _tags(outcomes: list[object]) -> list[object]:
    return [o.file if isinstance(o, AnnonormError) else o.tag for o in outcomes]  # type: ignore[attr-defined]


@pytest.mark.parametrize("workers", [1, 2])
def test_every_item_has_its_outcome_in_order_an_error_in_its_place(tmp_path: Path, workers: int) -> None:
    good = [True, False, True, True, False, True, True]
    paths = _files(tmp_path, good)
    with LocalExecutor(Execution(workers=workers)) as executor:
        outcomes = list(map_each(_ROOT_TAG, paths, executor, workers=workers, chunk_size=3))
    assert len(outcomes) == len(paths)
    for path, ok, outcome in zip(paths, good, outcomes, strict=True):
        if ok:
            assert not isinstance(outcome, AnnonormError) and outcome.tag == f"item{path.stem}"
        else:
            assert isinstance(outcome, ParseError) and outcome.file == str(path)
            assert outcome.location is not None and outcome.location.startswith("line 1")


def test_one_process_reads_no_item_ahead_of_the_caller(tmp_path: Path) -> None:
    paths = _files(tmp_path, [True, True, True])
    with LocalExecutor(Execution(workers=1)) as executor:
        outcomes = map_each(_ROOT_TAG, paths, executor, workers=1)
        first = next(outcomes)
        paths[1].write_text("<changed/>", encoding="utf-8")  # read only now, when asked for
        assert [first.tag, next(outcomes).tag, next(outcomes).tag] == ["item0", "changed", "item2"]  # type: ignore[union-attr]


def test_an_exception_that_is_no_annonorm_error_is_not_swallowed() -> None:
    with LocalExecutor(Execution(workers=1)) as executor, pytest.raises(ZeroDivisionError):
        list(map_each(functools.partial(divmod, 1), [1, 0, 2], executor, workers=1))


@settings(max_examples=25, deadline=None)
@given(good=st.lists(st.booleans(), max_size=12), chunk_size=st.integers(1, 5))
def test_outcomes_match_reading_each_item_alone(good: list[bool], chunk_size: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        paths = _files(Path(directory), good)
        alone = []
        for path in paths:
            try:
                alone.append(_ROOT_TAG(path))
            except AnnonormError as error:
                alone.append(error)
        with LocalExecutor(Execution(workers=1)) as executor:
            outcomes = list(map_each(_ROOT_TAG, paths, executor, workers=1, chunk_size=chunk_size))
        assert _tags(outcomes) == _tags(alone)
