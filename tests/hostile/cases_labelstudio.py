"""Hostile inputs of ``annonorm convert labelstudio``: each one line, exit 1 or 2, nothing written.

Built with the helpers of :mod:`hostile.make_corpus`; the lead wires :data:`CASES` into the corpus.
"""

from __future__ import annotations

import json
from typing import Any

from hostile.make_corpus import OUT, Case, FileSpec, garbage, jpeg

SIZE = {"original_width": 8, "original_height": 6}


def rectangle(**value: Any) -> dict[str, Any]:
    """A ``rectanglelabels`` result with the given value keys over a valid base."""
    base = {"x": 10, "y": 10, "width": 20, "height": 20, "rotation": 0, "rectanglelabels": ["cat"]}
    return {"id": "r1", "type": "rectanglelabels", **SIZE, "value": {**base, **value}}


def export(*results: dict[str, Any], image: str = "/data/upload/1/0badc0de-a.jpg") -> str:
    """One task whose first annotation holds ``results``."""
    annotation = {"id": 1, "was_cancelled": False, "result": list(results)}
    return json.dumps([{"id": 1, "data": {"image": image}, "annotations": [annotation]}])


def labelstudio_case(name: str, data: FileSpec, exit_code: int, fragment: str, **kwargs: Any) -> Case:
    """A ``convert labelstudio`` case on ``{root}/src/export.json`` with ``{root}/images/a.jpg``."""
    extra_args = tuple(kwargs.pop("args", ()))
    files = {"src/export.json": data, "images/a.jpg": jpeg(), **kwargs.pop("files", {})}
    args = ("convert", "labelstudio", "{root}/src/export.json", "-o", OUT, "--images", "{root}/images", *extra_args)
    return Case(name, "labelstudio", args, files, exit_code, fragment, **kwargs)


CONFIG = (
    '<View><Image name="image" value="$image"/><RectangleLabels name="l" toName="image">'
    '<Label value="cat"/></RectangleLabels></View>'
)
BOMB = (
    '<?xml version="1.0"?><!DOCTYPE v [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    '<View><Image name="image" value="$image"/><Choices name="c" toName="image"><Choice value="&b;"/></Choices></View>'
)
POLYGON = {"id": "p1", "type": "polygonlabels", **SIZE, "value": {"polygonlabels": ["cat"]}}

CASES: list[Case] = [
    labelstudio_case("labelstudio_empty_file", b"", 2, "not valid JSON"),
    labelstudio_case("labelstudio_truncated", export(rectangle())[:-20].encode(), 2, "not valid JSON"),
    labelstudio_case("labelstudio_binary_garbage", garbage(), 2, "not valid JSON"),
    labelstudio_case("labelstudio_not_a_list", '{"data": {}}', 2, "expected a Label Studio export"),
    labelstudio_case("labelstudio_task_not_object", "[3]", 2, "expected a task object"),
    labelstudio_case("labelstudio_data_missing", '[{"id": 1, "annotations": []}]', 2, "[0].data"),
    labelstudio_case("labelstudio_image_not_string", '[{"data": {"image": 5}}]', 2, "[0].data.image"),
    labelstudio_case("labelstudio_result_not_array", export().replace('"result": []', '"result": 7'), 2, "result"),
    labelstudio_case("labelstudio_x_is_string", export(rectangle(x="10")), 2, "value.x: expected a number"),
    labelstudio_case("labelstudio_nan", export(rectangle()).replace('"x": 10', '"x": NaN'), 2, "not valid JSON"),
    labelstudio_case("labelstudio_huge_number", export(rectangle()).replace('"x": 10', '"x": 1e999'), 2, "JSON"),
    labelstudio_case("labelstudio_percent_over_100", export(rectangle(x=150)), 1, "0..100 (percent)"),
    labelstudio_case("labelstudio_box_leaves_image", export(rectangle(x=90, width=30)), 1, "leaves the image"),
    labelstudio_case("labelstudio_negative_size", export(rectangle(width=-5)), 1, "0..100"),
    labelstudio_case(
        "labelstudio_polygon_odd_point",
        export({**POLYGON, "value": {"points": [[1, 1], [2, 2], [3]], "polygonlabels": ["cat"]}}),
        1,
        "point 2: expected [x, y]",
    ),
    labelstudio_case(
        "labelstudio_polygon_two_points",
        export({**POLYGON, "value": {"points": [[1, 1], [2, 2]], "polygonlabels": ["cat"]}}),
        1,
        "at least 3 points",
    ),
    labelstudio_case(
        "labelstudio_polygon_over_100",
        export({**POLYGON, "value": {"points": [[1, 1], [2, 2], [3, 101]], "polygonlabels": ["cat"]}}),
        1,
        "0..100",
    ),
    labelstudio_case(
        "labelstudio_unknown_label",
        export(rectangle(rectanglelabels=["dog"])),
        1,
        "label 'dog' is not a class of the labeling config",
        args=("--config", "{root}/config.xml"),
        files={"config.xml": CONFIG},
    ),
    labelstudio_case("labelstudio_region_without_label", export(rectangle(rectanglelabels=[])), 1, "has no label"),
    labelstudio_case("labelstudio_score_over_1", export({**rectangle(), "score": 3}), 1, "score in 0..1"),
    labelstudio_case(
        "labelstudio_sizes_disagree",
        export(rectangle(), {**rectangle(), "id": "r2", "original_width": 9}),
        1,
        "disagree on the image size",
    ),
    labelstudio_case("labelstudio_size_zero", export({**rectangle(), "original_width": 0}), 1, "positive image size"),
    labelstudio_case(
        "labelstudio_image_ref_climbs_out",
        export(image="/data/local-files/?d=../../etc/passwd"),
        2,
        "climbs out",
    ),
    labelstudio_case("labelstudio_image_not_found", export(image="s3://b/nothere.jpg"), 1, "no image 'nothere.jpg'"),
    labelstudio_case(
        "labelstudio_brush_truncated",
        export({"id": "b", "type": "brushlabels", **SIZE, "value": {"rle": [0, 0], "brushlabels": ["cat"]}}),
        1,
        "truncated",
    ),
    labelstudio_case(
        "labelstudio_brush_not_bytes",
        export({"id": "b", "type": "brushlabels", **SIZE, "value": {"rle": [999, 1], "brushlabels": ["cat"]}}),
        1,
        "0..255",
    ),
    labelstudio_case(
        "labelstudio_config_entity_bomb",
        export(rectangle()),
        2,
        "entity",
        args=("--config", "{root}/config.xml"),
        files={"config.xml": BOMB},
    ),
    labelstudio_case(
        "labelstudio_keypoint_without_parent",
        export({"id": "k", "type": "keypointlabels", **SIZE, "value": {"x": 1, "y": 1, "keypointlabels": ["nose"]}}),
        1,
        "tied to no box",
        args=("--config", "{root}/config.xml"),
        files={
            "config.xml": CONFIG.replace(
                "</View>", '<KeyPointLabels name="k" toName="image"><Label value="nose"/></KeyPointLabels></View>'
            )
        },
    ),
]
