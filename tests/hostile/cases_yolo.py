"""Hostile inputs of the YOLO tasks and data.yaml layouts (issue 14): built with make_corpus's helpers."""

from __future__ import annotations

from hostile.make_corpus import Case, png, yolo_case

POSE_YAML = "kpt_shape: [2, 3]\nnames: [cat, dog]\n"

CASES: list[Case] = [
    yolo_case("yolo_polygon_odd_coordinates", {"labels/a.txt": "0 0.1 0.1 0.5 0.1 0.5\n"}, 2, "found 6 values"),
    yolo_case("yolo_polygon_nan", {"labels/a.txt": "0 0.1 0.1 0.5 nan 0.5 0.5\n"}, 1, "finite"),
    yolo_case("yolo_polygon_beyond_tolerance", {"labels/a.txt": "0 0.1 0.1 0.5 0.1 0.5 1.5\n"}, 1, "0..1"),
    yolo_case(
        "yolo_obb_then_polygon",
        {
            "images/b.png": png(),
            "labels/a.txt": "0 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5\n",
            "labels/b.txt": "0 0.1 0.1 0.5 0.1 0.5 0.5\n",
        },
        2,
        "pass --task segment",
    ),
    yolo_case(
        "yolo_pose_wrong_length",
        {"classes.txt": None, "data.yaml": POSE_YAML, "labels/a.txt": "0 0.5 0.5 0.2 0.2 0.1 0.1\n"},
        2,
        "kpt_shape [2, 3]",
    ),
    yolo_case(
        "yolo_pose_bad_visibility",
        {"classes.txt": None, "data.yaml": POSE_YAML, "labels/a.txt": "0 0.5 0.5 0.2 0.2 0.1 0.1 7 0 0 0\n"},
        1,
        "visibility 0, 1 or 2",
    ),
    yolo_case(
        "yolo_kpt_shape_garbage",
        {"classes.txt": None, "data.yaml": "kpt_shape: [x, 3]\nnames: [cat]\n", "labels/a.txt": ""},
        2,
        "kpt_shape: expected [K, 2] or [K, 3]",
    ),
    yolo_case(
        "yolo_task_pose_without_kpt_shape",
        {"labels/a.txt": "0 0.5 0.5 0.2 0.2\n"},
        2,
        "needs the kpt_shape",
        args=("--task", "pose"),
    ),
    yolo_case(
        "yolo_data_yaml_climbs_out",
        {"classes.txt": None, "data.yaml": "train: ../cwd\nnames: [cat]\n", "labels/a.txt": ""},
        2,
        "leaves the dataset folder",
    ),
    yolo_case(
        "yolo_data_yaml_flow_list_unclosed",
        {"classes.txt": None, "data.yaml": "names: [cat]\ntrain: [images\n", "labels/a.txt": ""},
        2,
        "never closed",
    ),
    yolo_case(
        "yolo_image_list_names_missing_image",
        {"data.yaml": "train: list.txt\nnames: [cat, dog]\n", "list.txt": "images/gone.png\n", "labels/a.txt": ""},
        1,
        "list.txt:line 1",
    ),
]
