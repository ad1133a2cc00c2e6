"""Hostile inputs of COCO's format-version-2 geometry (issue 14): polygons, RLE, keypoints and scores kept as
vectors (``--masks vector``, the default), built with make_corpus's helpers."""

from __future__ import annotations

from hostile.make_corpus import _DELETE, Case, coco, coco_case

#: The base document's first image as LVIS v1 has it: no file_name, a coco_url naming train2017/a.jpg.
_LVIS_IMAGE = (
    ("images[0].file_name", _DELETE),
    ("images[0].coco_url", "http://images.cocodataset.org/train2017/a.jpg"),
)

#: The base document's first class with two keypoint names and a 1-based skeleton.
_PERSON = ("categories[0]", {"id": 1, "name": "cat", "keypoints": ["nose", "eye"], "skeleton": [[1, 2]]})

CASES: list[Case] = [
    coco_case(
        "coco_v2_polygon_of_strings",
        coco(("annotations[0].segmentation", [["1", "1", "4", "1", "4", "4"]])),
        1,
        "annotations[0].segmentation",
    ),
    coco_case("coco_v2_polygon_one_point", coco(("annotations[0].segmentation", [[1, 1]])), 1, "even count"),
    coco_case(
        "coco_v2_polygon_infinite",
        coco().replace(b'"area": 4', b'"segmentation": [[1, 1, 4, 1e999, 4, 4]], "area": 4'),
        1,
        "Number out of range at `[0][3]`",
    ),
    coco_case(
        "coco_v2_polygon_in_a_huge_image_is_kept_not_drawn",
        coco(
            ("images[0].width", 200_000),
            ("images[0].height", 200_000),
            ("annotations[0].segmentation", [[1, 1, 9, 1, 9, 9]]),
        ),
        0,
        "",
        output="created",
    ),
    coco_case(
        "coco_v2_rle_short_counts",
        coco(("annotations[0].segmentation", {"size": [6, 8], "counts": [1, 2]})),
        1,
        "cover 3 pixels",
    ),
    coco_case(
        "coco_v2_rle_size_of_strings",
        coco(("annotations[0].segmentation", {"size": ["6", "8"], "counts": "0"})),
        1,
        "annotations[0].segmentation",
    ),
    coco_case(
        "coco_v2_rle_beside_polygon_garbage",
        coco(("annotations[0].segmentation", [[1, 1, 4, 1, 4, 4]]), ("annotations[0].rle", {"size": [6, 8]})),
        1,
        "annotations[0].segmentation",
    ),
    coco_case(
        "coco_v2_keypoints_wrong_length",
        coco(_PERSON, ("annotations[0].keypoints", [1, 1, 2])),
        1,
        "expected 3 x 2 numbers",
    ),
    coco_case(
        "coco_v2_keypoints_bad_visibility",
        coco(_PERSON, ("annotations[0].keypoints", [1, 1, 2, 3, 3, 5])),
        1,
        "visibility",
    ),
    coco_case(
        "coco_v2_keypoints_not_a_list",
        coco(_PERSON, ("annotations[0].keypoints", {"x": 1})),
        1,
        "annotations[0].keypoints",
    ),
    coco_case(
        "coco_v2_skeleton_out_of_range_keeps_the_fields_as_attributes",
        coco(
            ("categories[0]", {"id": 1, "name": "cat", "keypoints": ["nose"], "skeleton": [[1, 99]]}),
            ("annotations[0].keypoints", [1, 1, 2]),
        ),
        0,
        "",
        output="created",
    ),
    coco_case(
        "coco_v2_score_out_of_range_is_an_attribute",
        coco(("annotations[0].score", 7.5)),
        0,
        "",
        output="created",
    ),
    coco_case(
        "coco_v2_keypoints_bad_visibility_skipped",
        coco(_PERSON, ("annotations[0].keypoints", [1, 1, 2, 3, 3, 5])),
        1,
        "1 broken images skipped",
        args=("--on-error", "skip"),
        output="created",
    ),
    coco_case("coco_v2_masks_unknown_mode", coco(), 2, "expected one of vector, png, none", args=("--masks", "raster")),
    # LVIS (issue 15): image labels must name categories of the file; a coco_url must name an image file.
    coco_case(
        "lvis_image_by_url_converts", coco(*_LVIS_IMAGE, ("images[0].neg_category_ids", [2])), 0, "", output="created"
    ),
    coco_case(
        "lvis_neg_category_unknown",
        coco(*_LVIS_IMAGE, ("images[0].neg_category_ids", [2, 99])),
        1,
        "images[0].neg_category_ids[1]: category id 99 is not the id of any category",
    ),
    coco_case(
        "lvis_neg_category_unknown_skipped",
        coco(*_LVIS_IMAGE, ("images[0].neg_category_ids", [99])),
        1,
        "1 broken images skipped",
        args=("--on-error", "skip"),
        output="created",
    ),
    coco_case(
        "lvis_not_exhaustive_not_a_list",
        coco(("images[1].not_exhaustive_category_ids", "1,2")),
        1,
        "images[1].not_exhaustive_category_ids: expected a list of category ids",
    ),
    coco_case(
        "lvis_category_id_true_is_no_id",
        coco(("images[1].neg_category_ids", [True])),
        1,
        "category id True is not the id",
    ),
    coco_case(
        "lvis_coco_url_names_a_folder",
        coco(*_LVIS_IMAGE, ("images[0].coco_url", "http://images.cocodataset.org/train2017/")),
        2,
        "images[0].coco_url: coco_url 'http://images.cocodataset.org/train2017/' names no image file",
    ),
    coco_case(
        "lvis_coco_url_climbs_out",
        coco(*_LVIS_IMAGE, ("images[0].coco_url", "http://images.cocodataset.org/x/%2e%2e/a.jpg")),
        2,
        "must not climb out",
    ),
    coco_case("lvis_coco_url_not_a_string", coco(*_LVIS_IMAGE, ("images[0].coco_url", 7)), 2, "images[0].coco_url"),
    coco_case(
        "lvis_coco_url_not_a_url",
        coco(*_LVIS_IMAGE, ("images[0].coco_url", "http://[::1/a.jpg")),
        2,
        "is not a URL",
    ),
]
