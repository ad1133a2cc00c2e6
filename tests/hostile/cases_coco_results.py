"""Hostile inputs of the COCO results converter (issue 15, item 7), built with make_corpus's helpers."""

from __future__ import annotations

import json
from typing import Any

from hostile.make_corpus import OUT, Case, coco


def _results(*entries: dict[str, Any]) -> str:
    return json.dumps(list(entries))


def _prediction(**changes: Any) -> dict[str, Any]:
    return {"image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2], "score": 0.5, **changes}


def _case(name: str, results: str | bytes, exit_code: int, fragment: str, *, gt: bool = True) -> Case:
    files: dict[str, Any] = {"src/detections.json": results, "src/instances_val.json": coco()}
    args = ("convert", "coco-results", "{root}/src/detections.json", "-o", OUT)
    return Case(
        name,
        "coco-results",
        (*args, "--gt", "{root}/src/instances_val.json") if gt else args,
        files,
        exit_code,
        fragment,
        absent=("Traceback",),
    )


CASES: list[Case] = [
    _case("coco_results_not_a_list", json.dumps({"annotations": []}), 2, "expected a JSON array of predictions"),
    _case("coco_results_nan_score", _results(_prediction()).replace("0.5", "NaN"), 2, "NaN and Infinity"),
    _case("coco_results_score_above_one", _results(_prediction(score=1.5)), 1, "outside [0, 1]"),
    _case(
        "coco_results_unknown_image_id",
        _results(_prediction(), _prediction(image_id=77), _prediction(image_id=78)),
        1,
        "2 predictions name image ids that are not in the ground truth instances_val.json: 77, 78",
    ),
    _case("coco_results_missing_gt", _results(_prediction()), 2, "--gt INSTANCES.json", gt=False),
    _case("coco_results_bbox_not_numbers", _results(_prediction(bbox="1,1,2,2")), 2, "[0].bbox"),
]
