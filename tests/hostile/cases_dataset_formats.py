"""Hostile inputs of the WIDER Face, SA-1B and Open Images readers (issue 15), built with make_corpus's helpers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hostile.make_corpus import OUT, Case, FileSpec, jpeg

GT = "wider_face_split/wider_face_train_bbx_gt.txt"
FACE = "0--Parade/a.jpg\n1\n1 2 3 4 0 0 0 0 0 0\n"


def widerface_case(name: str, gt: FileSpec, exit_code: int, fragment: str) -> Case:
    """A ``convert widerface`` case on ``{root}/src`` (one ground-truth file, one image)."""
    files: Mapping[str, FileSpec] = {f"src/{GT}": gt, "src/WIDER_train/images/0--Parade/a.jpg": jpeg()}
    return Case(name, "widerface", ("convert", "widerface", "{root}/src", "-o", OUT), files, exit_code, fragment)


def sa1b_document(**annotation: Any) -> str:
    """One SA-1B JSON of a 4 x 2 image with one annotation (``annotation`` overrides its keys)."""
    item = {"id": 1, "segmentation": {"size": [2, 4], "counts": "08"}, "bbox": [0, 0, 1, 1], "area": 1}
    image = {"image_id": 1, "width": 4, "height": 2, "file_name": "a.jpg"}
    return json.dumps({"image": image, "annotations": [{**item, **annotation}]})


def sa1b_case(name: str, document: FileSpec, exit_code: int, fragment: str) -> Case:
    """A ``convert sa1b`` case on ``{root}/src`` (``a.json`` beside ``a.jpg``)."""
    files: Mapping[str, FileSpec] = {"src/a.json": document, "src/a.jpg": jpeg(4, 2)}
    return Case(name, "sa1b", ("convert", "sa1b", "{root}/src", "-o", OUT), files, exit_code, fragment)


OI_HEADER = (
    "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside\n"
)
OI_ROW = "a,xclick,/m/0,1,0.1,0.5,0.2,0.6,0,0,0,0,0\n"


def openimages_case(name: str, files: Mapping[str, FileSpec], exit_code: int, fragment: str) -> Case:
    """A ``convert openimages`` case on ``{root}/src`` (``annotations/`` + ``images/train/a.jpg``)."""
    tree: dict[str, FileSpec] = {
        "src/annotations/class-descriptions.csv": "/m/0,cat\n",
        "src/annotations/train-annotations-bbox.csv": OI_HEADER + OI_ROW,
        "src/images/train/a.jpg": jpeg(),
    }
    tree.update({f"src/annotations/{k}": v for k, v in files.items()})
    return Case(name, "openimages", ("convert", "openimages", "{root}/src", "-o", OUT), tree, exit_code, fragment)


CASES: list[Case] = [
    widerface_case("widerface_empty_gt", "", 2, "no WIDER Face images"),
    widerface_case("widerface_truncated_rows", FACE.replace("\n1\n", "\n3\n"), 2, "has 3 faces but the file ends"),
    widerface_case("widerface_count_missing", "0--Parade/a.jpg\n", 2, "expected the number of faces"),
    widerface_case("widerface_count_not_a_number", "0--Parade/a.jpg\nmany\n", 2, "found 'many'"),
    widerface_case("widerface_wrong_column_count", FACE.replace(" 0 0 0 0 0 0", " 0 0"), 2, "found 6 values"),
    widerface_case("widerface_nan_box", FACE.replace("1 2 3 4", "1 nan 3 4"), 1, "finite"),
    widerface_case("widerface_negative_width", FACE.replace("1 2 3 4", "1 2 -3 4"), 1, "width and height >= 0"),
    widerface_case("widerface_path_climbs_out", FACE.replace("0--Parade/a.jpg", "../../etc/passwd"), 2, "climb out"),
    sa1b_case("sa1b_empty_file", "", 2, "not valid JSON"),
    sa1b_case("sa1b_truncated_json", sa1b_document()[:40], 2, "not valid JSON"),
    sa1b_case("sa1b_bad_rle_characters", sa1b_document(segmentation={"size": [2, 4], "counts": " \x7f"}), 1, "RLE"),
    sa1b_case("sa1b_rle_wrong_total", sa1b_document(segmentation={"size": [2, 4], "counts": "05"}), 1, "cover 5"),
    sa1b_case("sa1b_bbox_three_numbers", sa1b_document(bbox=[0, 0, 1]), 1, "expected bbox [x, y, w, h]"),
    sa1b_case(
        "sa1b_bbox_overflow", sa1b_document(bbox=[0, 0, 1e999, 1]).replace("Infinity", "1e999"), 2, "out of range"
    ),
    sa1b_case("sa1b_bbox_not_numbers", sa1b_document(bbox=["a", 0, 1, 1]), 2, 'expected float, got "a"'),
    sa1b_case(
        "sa1b_file_name_climbs_out",
        sa1b_document().replace('"a.jpg"', '"../../etc/passwd"'),
        2,
        "climb out",
    ),
    openimages_case("openimages_empty_bbox_table", {"train-annotations-bbox.csv": ""}, 2, "the table is empty"),
    openimages_case("openimages_missing_column", {"train-annotations-bbox.csv": "ImageID,XMin\na,0\n"}, 2, "missing"),
    openimages_case(
        "openimages_short_row",
        {"train-annotations-bbox.csv": OI_HEADER + "a,xclick,/m/0,1,0.1\n"},
        2,
        "expected 13 values, found 5",
    ),
    openimages_case(
        "openimages_long_row",
        {"train-annotations-bbox.csv": OI_HEADER + OI_ROW.strip() + ",9\n"},
        2,
        "expected 13 values, found 14",
    ),
    openimages_case(
        "openimages_nan_corner", {"train-annotations-bbox.csv": OI_HEADER + OI_ROW.replace("0.5", "nan")}, 1, "finite"
    ),
    openimages_case(
        "openimages_bad_flag",
        {"train-annotations-bbox.csv": OI_HEADER + OI_ROW.replace(",0,0\n", ",2,0\n")},
        1,
        "0, 1 or -1",
    ),
    openimages_case(
        "openimages_image_id_climbs_out",
        {"train-annotations-bbox.csv": OI_HEADER + OI_ROW.replace("a,", "../../x,", 1)},
        2,
        "expected an ImageID",
    ),
    openimages_case(
        "openimages_mask_path_climbs_out",
        {
            "train-annotations-object-segmentation.csv": "MaskPath,ImageID,LabelName,BoxID,BoxXMin,BoxXMax,BoxYMin,"
            "BoxYMax\n../../../etc/passwd,a,/m/0,1,0.1,0.5,0.2,0.6\n"
        },
        2,
        "climb out",
    ),
    openimages_case(
        "openimages_truncated_hierarchy", {"bbox_labels_600_hierarchy.json": '{"LabelName": "/m/x", "Sub'}, 2, "JSON"
    ),
]
