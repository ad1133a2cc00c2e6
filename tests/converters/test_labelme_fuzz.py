"""Fuzzing the LabelMe reader (issue 14, item 9): arbitrary bytes and LabelMe-shaped garbage.

Whatever the file holds, ``convert labelme`` either writes a dataset that validates or raises an
:class:`~annonorm.errors.AnnonormError` and leaves nothing behind (``test_fuzz.convert_or_refuse``).
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from test_fuzz import FUZZ, convert_or_refuse, either, json_values, maybe_keys, workspace, write_png


def _png(width: int, height: int) -> str:
    stream = io.BytesIO()
    Image.new("1", (width, height), 1).save(stream, format="PNG")
    return base64.b64encode(stream.getvalue()).decode("ascii")


numbers = st.integers(-3, 12) | st.floats(-3, 12, allow_nan=False)
points = st.lists(st.lists(numbers, min_size=1, max_size=3), min_size=1, max_size=6)
#: The plausible value of each shape key (every one a type LabelMe allows).
SHAPE_KEYS: dict[str, st.SearchStrategy[Any]] = {
    "label": st.sampled_from(["cat", "dog", "__ignore__", "", " "]),
    "points": st.lists(st.lists(numbers, min_size=2, max_size=2), min_size=1, max_size=6) | points,
    "shape_type": st.sampled_from(
        ("polygon", "rectangle", "oriented_rectangle", "rotation", "circle", "point", "line", "linestrip", "mask", "x")
    ),
    "group_id": st.none() | st.integers(0, 2),
    "flags": st.dictionaries(st.sampled_from(["a", "b"]), st.booleans(), max_size=2),
    "description": st.text(max_size=4),
    "mask": st.sampled_from([None, "", "%%", _png(3, 2), _png(1, 1)]),
    "score": st.none() | st.floats(-1, 2),
    "attributes": st.dictionaries(st.text(max_size=4), json_values, max_size=2),
}
DOCUMENT_KEYS: dict[str, st.SearchStrategy[Any]] = {
    "version": st.just("5.5.0"),
    "flags": st.dictionaries(st.sampled_from(["day", "night", "__ignore__", ""]), st.booleans(), max_size=3),
    "imagePath": st.sampled_from(["a.png", "..\\a.png", "sub\\..\\a.png", "C:\\x\\a.png", "", "b.png"]),
    "imageData": st.sampled_from([None, "", "AAAA", _png(8, 6)]),
    "imageHeight": st.none() | st.integers(-1, 8),
    "imageWidth": st.none() | st.integers(-1, 8),
}
#: Mostly well-typed shapes (so that many files convert and the mappings run), sometimes anything.
shapes = st.one_of(
    st.fixed_dictionaries(SHAPE_KEYS),
    st.fixed_dictionaries({k: SHAPE_KEYS[k] for k in ("label", "points", "shape_type")}),
    maybe_keys({key: either(value) for key, value in SHAPE_KEYS.items()}),
)
documents = st.one_of(
    st.fixed_dictionaries({**DOCUMENT_KEYS, "shapes": st.lists(shapes, max_size=4)}),
    maybe_keys({**{key: either(value) for key, value in DOCUMENT_KEYS.items()}, "shapes": either(st.lists(shapes))}),
)


@FUZZ
@given(data=st.binary(max_size=600))
def test_labelme_reader_on_arbitrary_bytes(data: bytes) -> None:
    with workspace() as root:
        write_png(root / "src" / "a.png")
        (root / "src" / "a.json").write_bytes(data)
        convert_or_refuse("labelme", root / "src", root / "out")


@FUZZ
@given(docs=st.lists(documents, min_size=1, max_size=3), on_error=st.sampled_from(["fail", "skip"]))
def test_labelme_reader_on_labelme_shaped_json(docs: list[dict[str, Any]], on_error: str) -> None:
    with workspace() as root:
        write_png(root / "src" / "a.png")
        for index, doc in enumerate(docs):
            (root / "src" / f"f{index}.json").write_text(json.dumps(doc))
        convert_or_refuse("labelme", root / "src", root / "out", on_error=on_error)
