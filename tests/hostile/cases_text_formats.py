"""Hostile inputs of the KITTI and DOTA text labels (issue 15): built with make_corpus's helpers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hostile.make_corpus import OUT, Case, FileSpec, png

KITTI_LINE = "Car 0 0 0 1 2 3 4 1 1 1 1 1 1 1\n"
DOTA_LINE = "0 0 4 0 4 4 0 4 plane 0\n"


def kitti_case(name: str, label: FileSpec, exit_code: int, fragment: str, **kwargs: Any) -> Case:
    """A ``convert kitti`` case on ``{root}/src`` (``label_2/a.txt`` beside ``image_2/a.png``)."""
    files: Mapping[str, FileSpec] = {"src/image_2/a.png": png(), "src/label_2/a.txt": label}
    return Case(name, "kitti", ("convert", "kitti", "{root}/src", "-o", OUT), files, exit_code, fragment, **kwargs)


def dota_case(name: str, label: FileSpec, exit_code: int, fragment: str, **kwargs: Any) -> Case:
    """A ``convert dota`` case on ``{root}/src`` (``labelTxt/a.txt`` beside ``images/a.png``)."""
    files: Mapping[str, FileSpec] = {"src/images/a.png": png(), "src/labelTxt/a.txt": label}
    return Case(name, "dota", ("convert", "dota", "{root}/src", "-o", OUT), files, exit_code, fragment, **kwargs)


CASES: list[Case] = [
    kitti_case("kitti_truncated_line", KITTI_LINE[:20] + "\n", 2, "found 9 values"),
    kitti_case("kitti_seventeen_columns", KITTI_LINE.strip() + " 0.5 9\n", 2, "found 17 values"),
    kitti_case("kitti_nan_box", KITTI_LINE.replace("1 2 3 4", "1 nan 3 4"), 1, "finite"),
    kitti_case("kitti_non_numeric", KITTI_LINE.replace("1 2 3 4", "1 two 3 4"), 1, "not a number"),
    kitti_case("kitti_not_utf8", b"Car \xff\xfe 0 0\n", 2, "not UTF-8"),
    dota_case("dota_wrong_column_count", "0 0 4 0 4 4 plane 0\n", 2, "found 8 values"),
    dota_case("dota_truncated_file", DOTA_LINE + DOTA_LINE[:9], 2, "found 5 values"),
    dota_case("dota_nan_corner", DOTA_LINE.replace("4 4", "nan 4", 1), 1, "finite"),
    dota_case("dota_non_numeric", DOTA_LINE.replace("0 4 plane", "x 4 plane"), 1, "not a number"),
    dota_case("dota_bad_difficulty", DOTA_LINE.replace("plane 0", "plane hard"), 1, "difficulty"),
    dota_case("dota_gsd_nan", "gsd:nan\n" + DOTA_LINE, 1, "finite gsd"),
]
