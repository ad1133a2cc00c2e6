"""Fuzzing the Label Studio reader: a valid export with one value anywhere replaced by garbage (or the bytes
cut short) either converts to a valid dataset or fails with an AnnonormError naming the file, never
another exception, and a failed conversion leaves no output."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from annonorm.api import convert
from annonorm.errors import AnnonormError
from annonorm.validation import validate_dataset

SIZE = {"original_width": 20, "original_height": 10}
#: A 3 x 6 block at (3, 2) of the 20 x 10 canvas, as tests/converters/test_labelstudio.py encodes it.
RLE = [0, 0, 3, 32, 59, 187, 189, 171, 0, 194, 255, 252, 220, 2, 11, 255, 211, 112, 12, 47, 255, 255, 192, 37, 216, 0]
BASE: list[dict[str, Any]] = [
    {
        "id": 1,
        "data": {"image": "/data/upload/1/0badc0de-a.png", "note": "n"},
        "annotations": [
            {
                "id": 1,
                "completed_by": 1,
                "was_cancelled": False,
                "ground_truth": True,
                "result": [
                    {
                        "id": "r",
                        "type": "rectanglelabels",
                        **SIZE,
                        "value": {
                            "x": 10,
                            "y": 10,
                            "width": 30,
                            "height": 40,
                            "rotation": 15,
                            "rectanglelabels": ["cat"],
                        },
                    },
                    {
                        "id": "p",
                        "type": "polygonlabels",
                        **SIZE,
                        "value": {"points": [[1, 1], [50, 2], [30, 60]], "polygonlabels": ["dog"]},
                    },
                    {
                        "id": "b",
                        "type": "brushlabels",
                        **SIZE,
                        "value": {"rle": RLE, "brushlabels": ["cat"]},
                    },
                    {"id": "c", "type": "choices", "value": {"choices": ["day"]}},
                ],
            }
        ],
        "predictions": [{"model_version": "m", "score": 0.5, "result": []}],
    },
    {"id": 2, "data": {"image": "s3://bucket/b.png"}, "annotations": []},
]

GARBAGE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.lists(st.integers(-300, 300), max_size=4),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.sampled_from(["../../x.png", "/data/local-files/?d=../a.png", "rectanglelabels", "polygonlabels"]),
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value (keys and indices from the root)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


PLACES = _paths(BASE)[1:]


def _run(raw: bytes, options: dict[str, Any], *, must_convert: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "images").mkdir()
        for name in ("a.png", "b.png"):
            Image.new("RGB", (20, 10)).save(root / "images" / name)
        source = root / "export.json"
        source.write_bytes(raw)
        try:
            convert("labelstudio", source, root / "out", images=root / "images", **options)
        except AnnonormError as error:
            assert not must_convert, str(error)
            assert error.file is not None, str(error)
            assert "\n" not in str(error)
            assert not (root / "out").exists()
            return
        assert validate_dataset(root / "out").valid


def test_the_base_export_converts() -> None:
    _run(json.dumps(BASE).encode(), {}, must_convert=True)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(PLACES), GARBAGE, st.sampled_from([{}, {"annotations": "all"}, {"predictions": True}]))
def test_one_value_replaced_never_escapes_as_another_exception(
    place: tuple[Any, ...], value: Any, options: dict[str, Any]
) -> None:
    document: Any = copy.deepcopy(BASE)
    target = document
    for step in place[:-1]:
        target = target[step]
    target[place[-1]] = value
    _run(json.dumps(document).encode(), options)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, len(json.dumps(BASE))))
def test_an_export_cut_short_is_a_parse_error(cut: int) -> None:
    _run(json.dumps(BASE).encode()[:cut], {})
