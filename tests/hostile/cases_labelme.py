"""Hostile LabelMe JSON inputs (issue 14, item 9): each a :class:`Case` of the corpus in ``make_corpus.py``.

Every case converts ``{root}/src`` (a folder of LabelMe files beside an 8 x 6 ``a.png``) and must end
with one line naming the file and place, exit 1 or 2, and nothing written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hostile.make_corpus import OUT, Case, FileSpec, Link, deep_json, garbage, png

__all__ = ["CASES", "labelme_case", "labelme_doc"]


def labelme_doc(**changes: Any) -> bytes:
    """A valid LabelMe file of ``a.png`` (8 x 6) with one rectangle, top-level keys changed."""
    data: dict[str, Any] = {
        "version": "5.5.0",
        "flags": {},
        "shapes": [{"label": "cat", "points": [[1, 1], [3, 3]], "group_id": None, "shape_type": "rectangle"}],
        "imagePath": "a.png",
        "imageData": None,
        "imageHeight": 6,
        "imageWidth": 8,
    }
    data.update(changes)
    return json.dumps(data).encode()


def _shape(**changes: Any) -> dict[str, Any]:
    return {"label": "cat", "points": [[1, 1], [3, 3]], "group_id": None, "shape_type": "rectangle", **changes}


def labelme_case(name: str, data: FileSpec, exit_code: int, fragment: str, **kwargs: Any) -> Case:
    """A ``convert labelme`` case on ``{root}/src`` holding ``a.json`` (``data``) and ``a.png``."""
    extra_args = tuple(kwargs.pop("args", ()))
    files: Mapping[str, FileSpec] = {"src/a.json": data, "src/a.png": png(), **kwargs.pop("files", {})}
    args = ("convert", "labelme", "{root}/src", "-o", OUT, *extra_args)
    return Case(name, "labelme", args, files, exit_code, fragment, **kwargs)


CASES: list[Case] = [
    labelme_case("labelme_empty_file", b"", 2, "not valid JSON"),
    labelme_case("labelme_truncated_json", labelme_doc()[:-20], 2, "not valid JSON"),
    labelme_case("labelme_binary_garbage", garbage(), 2, "a.json"),
    labelme_case("labelme_top_level_array", b"[1, 2]", 2, "not a LabelMe JSON file"),
    labelme_case("labelme_coco_json", b'{"images": [], "annotations": []}', 2, "it has no shapes"),
    labelme_case("labelme_deep_nesting", deep_json(), 2, "a.json"),
    labelme_case("labelme_shapes_not_a_list", labelme_doc(shapes={"a": 1}), 2, "shapes"),
    labelme_case("labelme_label_not_a_string", labelme_doc(shapes=[_shape(label=3)]), 2, "shapes[0].label"),
    labelme_case("labelme_points_not_numbers", labelme_doc(shapes=[_shape(points=[["a", 1], [2, 2]])]), 2, "points"),
    labelme_case(
        "labelme_point_of_three_numbers", labelme_doc(shapes=[_shape(points=[[1, 1, 1], [2, 2]])]), 2, "points[0]"
    ),
    labelme_case("labelme_point_of_one_number", labelme_doc(shapes=[_shape(points=[[1], [2, 2]])]), 2, "points[0]"),
    labelme_case("labelme_nan_literal", labelme_doc().replace(b"[[1, 1]", b"[[NaN, 1]"), 2, "not valid JSON"),
    labelme_case("labelme_infinite_number", labelme_doc().replace(b"[[1, 1]", b"[[1e999, 1]"), 2, "out of range"),
    labelme_case(
        "labelme_polygon_of_two_points",
        labelme_doc(shapes=[_shape(shape_type="polygon")]),
        1,
        "a polygon has 2 points; expected at least 3",
    ),
    labelme_case("labelme_unknown_shape_type", labelme_doc(shapes=[_shape(shape_type="bezier")]), 1, "bezier"),
    labelme_case("labelme_group_id_string", labelme_doc(shapes=[_shape(group_id="x")]), 2, "group_id"),
    labelme_case("labelme_flags_not_bool", labelme_doc(flags={"day": "yes"}), 2, "flags"),
    labelme_case("labelme_negative_size", labelme_doc(imageWidth=-8), 1, "expected imageWidth and imageHeight > 0"),
    labelme_case("labelme_size_as_text", labelme_doc(imageHeight="6"), 2, "imageHeight"),
    labelme_case("labelme_score_over_one", labelme_doc(shapes=[_shape(score=3.0)]), 1, "outside [0, 1]"),
    labelme_case(
        "labelme_mask_not_base64",
        labelme_doc(shapes=[_shape(shape_type="mask", mask="%%%")]),
        1,
        "not a base64 PNG",
    ),
    labelme_case("labelme_image_path_climbs_out", labelme_doc(imagePath="..\\..\\etc\\passwd"), 2, "climb out"),
    labelme_case("labelme_image_path_absolute", labelme_doc(imagePath="/etc/passwd"), 2, "is absolute"),
    labelme_case("labelme_image_path_nul", labelme_doc(imagePath="a\u0000.png"), 2, "NUL"),
    labelme_case("labelme_missing_image_path", labelme_doc(imagePath=None), 2, "imagePath"),
    labelme_case("labelme_file_is_a_link_to_dev_zero", Link("/dev/zero"), 2, "not a regular file"),
    Case(
        "labelme_folder_without_json",
        "labelme",
        ("convert", "labelme", "{root}/src", "-o", OUT),
        {"src/a.png": png()},
        2,
        "no *.json file",
    ),
]
