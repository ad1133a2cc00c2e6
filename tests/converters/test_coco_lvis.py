"""LVIS through the COCO converter (issue 15): image labels and category fields kept, ``coco_url`` images,
exported back as LVIS has them.

The documents are built here in LVIS v1's shape (https://www.lvisdataset.org/dataset): images with a
``coco_url`` and no ``file_name``, ``neg_category_ids`` / ``not_exhaustive_category_ids``; categories with
``synset``, ``synonyms``, ``def``, ``frequency``, ``image_count``, ``instance_count``; annotations without
``iscrowd``. Expected values are read off the source JSON, never computed by annonorm.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from annonorm.api import convert, export
from annonorm.errors import InvalidDataError, ParseError, UnsafePathError
from annonorm.validation import validate_dataset

URL = "http://images.cocodataset.org"
#: LVIS v1's three frequency groups: rare, common, frequent.
CATEGORIES = [
    {"id": 1, "name": "aerosol_can", "synset": "aerosol.n.02", "synonyms": ["aerosol_can", "spray_can"],
     "def": "a dispenser that holds a substance under pressure", "frequency": "c", "image_count": 2,
     "instance_count": 3},
    {"id": 3, "name": "alligator", "synset": "alligator.n.02", "synonyms": ["alligator", "gator"],
     "def": "amphibious reptiles related to crocodiles", "frequency": "r", "image_count": 1, "instance_count": 1},
    {"id": 12, "name": "apple", "synset": "apple.n.01", "synonyms": ["apple"], "def": "fruit with red or yellow skin",
     "frequency": "f", "image_count": 1, "instance_count": 1},
]  # fmt: skip


def _image(image_id: int, folder: str, *, neg: list[int], not_exhaustive: list[int]) -> dict[str, Any]:
    """An LVIS v1 ``images`` entry, in the key order the LVIS files have."""
    name = f"{image_id:012d}.jpg"
    return {
        "date_captured": "2013-11-14 11:18:45",
        "neg_category_ids": neg,
        "id": image_id,
        "license": 3,
        "height": 20,
        "width": 30,
        "flickr_url": f"http://farm1.staticflickr.com/1/{image_id}_x.jpg",
        "coco_url": f"{URL}/{folder}/{name}",
        "not_exhaustive_category_ids": not_exhaustive,
    }


def _annotation(annotation_id: int, image_id: int, category_id: int, x: float, y: float) -> dict[str, Any]:
    """An LVIS annotation (no ``iscrowd``): a 4.25 x 3.5 box and its polygon, 2-decimal values as LVIS has them."""
    ring = [x, y, round(x + 4.25, 2), y, round(x + 4.25, 2), round(y + 3.5, 2), x, round(y + 3.5, 2)]
    return {
        "area": 14.88,
        "id": annotation_id,
        "segmentation": [ring],
        "image_id": image_id,
        "bbox": [x, y, 4.25, 3.5],
        "category_id": category_id,
    }


def lvis_document() -> dict[str, Any]:
    """An LVIS v1 val-shaped document: images of COCO's train2017 and val2017 folders, annotations first."""
    images = [
        _image(9, "train2017", neg=[3], not_exhaustive=[]),
        _image(139, "val2017", neg=[], not_exhaustive=[1, 12]),
        _image(285, "val2017", neg=[1, 3, 12], not_exhaustive=[]),  # verified empty of every class
    ]
    annotations = [
        _annotation(5, 139, 1, 1.5, 2.25),
        _annotation(7, 9, 1, 10.1, 3.3),
        _annotation(8, 139, 12, 0.0, 0.0),
        _annotation(11, 139, 3, 20.55, 12.05),
        _annotation(12, 9, 1, 7.77, 1.01),
    ]
    info = {"year": 2020, "version": "1.0", "description": "LVIS v1", "date_created": "2020-01-14"}
    licenses = [{"id": 3, "name": "Attribution-NonCommercial License", "url": "http://creativecommons.org/x"}]
    return {"info": info, "annotations": annotations, "images": images, "licenses": licenses, "categories": CATEGORIES}


def _write(path: Path, document: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


def _coco_root(root: Path, document: dict[str, Any]) -> Path:
    """COCO's layout: ``annotations/lvis_v1_val.json`` beside ``train2017/`` and ``val2017/`` holding the images."""
    for image in document["images"]:
        folder, name = image["coco_url"].split("/")[-2:]
        (root / folder).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (image["width"], image["height"])).save(root / folder / name)
    return _write(root / "annotations" / "lvis_v1_val.json", document)


def _records(dataset: Path) -> list[dict[str, Any]]:
    manifest = json.loads((dataset / "annonorm.json").read_text())
    (split,) = manifest["splits"]
    return [json.loads(line) for line in (dataset / f"{split}.jsonl").read_text().splitlines() if line.strip()]


def _exported(back: Path) -> dict[str, Any]:
    (file,) = (back / "annotations").glob("instances_*.json")
    return json.loads(file.read_text())


def _assert_same_lvis(exported: dict[str, Any], source: dict[str, Any]) -> None:
    """Equal JSON values: the same keys and values per image, annotation and category (lists in any order)."""
    assert exported.keys() == source.keys()
    for key in ("images", "annotations", "categories"):
        assert {item["id"]: item for item in exported[key]} == {item["id"]: item for item in source[key]}, key
    assert exported["info"] == source["info"]
    assert exported["licenses"] == source["licenses"]


# ------------------------------------------------------------------------------------------------ reading


def test_an_lvis_file_converts_with_its_image_labels_and_category_fields(tmp_path: Path) -> None:
    document = lvis_document()
    source = _coco_root(tmp_path / "coco", document)
    convert("coco", source, tmp_path / "out")

    assert validate_dataset(tmp_path / "out").valid
    manifest = json.loads((tmp_path / "out" / "annonorm.json").read_text())
    assert (tmp_path / "out" / manifest["image_root"]).resolve() == (
        tmp_path / "coco"
    ).resolve()  # train2017/, val2017/
    by_name = {category["name"]: category for category in manifest["categories"]}
    for category in CATEGORIES:
        kept = by_name[category["name"]]
        assert kept["source_id"] == category["id"]
        assert kept["attributes"] == {k: v for k, v in category.items() if k not in ("id", "name")}
    names = {category["id"]: category["name"] for category in CATEGORIES}
    records = {record["id"]: record for record in _records(tmp_path / "out")}
    assert sorted(records) == sorted(image["id"] for image in document["images"])
    for image in document["images"]:
        record = records[image["id"]]
        assert record["image"] == "/".join(image["coco_url"].split("/")[-2:])
        assert (tmp_path / "coco" / record["image"]).is_file()
        assert (record["width"], record["height"]) == (image["width"], image["height"])
        assert record["attributes"] == {k: v for k, v in image.items() if k not in ("id", "width", "height")}
        own = [a for a in document["annotations"] if a["image_id"] == image["id"]]
        assert Counter(box["name"] for box in record["boxes"]) == Counter(names[a["category_id"]] for a in own)
        assert [box["attributes"]["id"] for box in record["boxes"]] == [a["id"] for a in own]
        assert all("iscrowd" not in box["attributes"] for box in record["boxes"])


def test_an_lvis_v05_file_name_wins_over_its_coco_url(tmp_path: Path) -> None:
    document = lvis_document()
    for image in document["images"]:  # v0.5 names the COCO 2014 file; its URL the 2017 one
        image["file_name"] = f"COCO_val2014_{image['id']:012d}.jpg"
    convert("coco", _write(tmp_path / "lvis_v0.5_val.json", document), tmp_path / "out")
    assert sorted(r["image"] for r in _records(tmp_path / "out")) == sorted(i["file_name"] for i in document["images"])

    export("coco", tmp_path / "out", tmp_path / "back")
    _assert_same_lvis(_exported(tmp_path / "back"), document)


def test_images_given_as_one_coco_folder_are_found_from_the_folder_above(tmp_path: Path) -> None:
    document = lvis_document()
    document["images"] = [image for image in document["images"] if "/train2017/" in image["coco_url"]]
    kept = {image["id"] for image in document["images"]}
    document["annotations"] = [a for a in document["annotations"] if a["image_id"] in kept]
    _coco_root(tmp_path / "coco", document)
    convert(
        "coco",
        tmp_path / "coco" / "annotations" / "lvis_v1_val.json",
        tmp_path / "out",
        images=tmp_path / "coco" / "train2017",
    )
    manifest = json.loads((tmp_path / "out" / "annonorm.json").read_text())
    assert (tmp_path / "out" / manifest["image_root"]).resolve() == (tmp_path / "coco").resolve()
    assert all((tmp_path / "coco" / record["image"]).is_file() for record in _records(tmp_path / "out"))


# ------------------------------------------------------------------------------------------------ writing


def test_export_writes_the_lvis_file_back_with_equal_values(tmp_path: Path) -> None:
    document = lvis_document()
    convert("coco", _coco_root(tmp_path / "coco", document), tmp_path / "out")
    export("coco", tmp_path / "out", tmp_path / "back")
    exported = _exported(tmp_path / "back")
    assert all("file_name" not in image for image in exported["images"])  # LVIS v1 has none: none invented
    assert all("iscrowd" not in annotation for annotation in exported["annotations"])
    _assert_same_lvis(exported, document)


def test_a_plain_coco_image_with_a_coco_url_keeps_its_file_name_and_iscrowd(tmp_path: Path) -> None:
    document = lvis_document()
    for image in document["images"]:  # COCO's own images: file_name and coco_url, no LVIS labels
        image["file_name"] = image["coco_url"].rsplit("/", 1)[-1]
        del image["neg_category_ids"], image["not_exhaustive_category_ids"]
    convert("coco", _write(tmp_path / "instances_val2017.json", document), tmp_path / "out")
    export("coco", tmp_path / "out", tmp_path / "back")
    exported = _exported(tmp_path / "back")
    assert {i["id"]: i["file_name"] for i in exported["images"]} == {
        i["id"]: i["file_name"] for i in document["images"]
    }
    assert [a["iscrowd"] for a in exported["annotations"]] == [0] * len(document["annotations"])


category_ids = st.lists(st.sampled_from([c["id"] for c in CATEGORIES]), unique=True, max_size=3)
two_decimals = st.integers(min_value=0, max_value=90_000).map(lambda n: n / 100)


@st.composite
def lvis_documents(draw: st.DrawFn) -> dict[str, Any]:
    """LVIS documents of 1-4 images in either folder, each with its labels and 0-3 annotations."""
    document = lvis_document()
    count = draw(st.integers(min_value=1, max_value=4))
    images, annotations = [], []
    for image_id in draw(
        st.lists(st.integers(min_value=1, max_value=10**9), min_size=count, max_size=count, unique=True)
    ):
        folder = draw(st.sampled_from(["train2017", "val2017"]))
        images.append(_image(image_id, folder, neg=draw(category_ids), not_exhaustive=draw(category_ids)))
        for _ in range(draw(st.integers(min_value=0, max_value=3))):
            category = draw(st.sampled_from([c["id"] for c in CATEGORIES]))
            annotations.append(
                _annotation(len(annotations) + 1, image_id, category, draw(two_decimals), draw(two_decimals))
            )
    draw(st.randoms()).shuffle(annotations)  # LVIS files are not sorted by image
    return document | {"images": images, "annotations": annotations}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=lvis_documents())
def test_property_lvis_round_trips_to_equal_values(
    document: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("lvis")
    convert("coco", _write(root / "lvis_v1_train.json", document), root / "out")
    records = _records(root / "out")
    boxes = Counter(a["image_id"] for a in document["annotations"])
    assert {r["id"]: len(r["boxes"]) for r in records} == {i["id"]: boxes[i["id"]] for i in document["images"]}
    export("coco", root / "out", root / "back")
    _assert_same_lvis(_exported(root / "back"), document)


# ---------------------------------------------------------------------------------------------- bad input


def _convert_bad(tmp_path: Path, document: dict[str, Any], **options: Any) -> Path:
    source = _write(tmp_path / "lvis_v1_val.json", document)
    convert("coco", source, tmp_path / "out", **options)
    return source


def test_a_neg_category_naming_no_category_is_refused_naming_the_place(tmp_path: Path) -> None:
    document = lvis_document()
    document["images"][1]["neg_category_ids"] = [3, 404]
    with pytest.raises(InvalidDataError) as info:
        _convert_bad(tmp_path, document)
    assert (info.value.location, info.value.message) == (
        "images[1].neg_category_ids[1]",
        "category id 404 is not the id of any category",
    )
    assert info.value.file == str(tmp_path / "lvis_v1_val.json")
    assert not (tmp_path / "out").exists()


def test_a_broken_lvis_image_is_skipped_with_on_error_skip(tmp_path: Path) -> None:
    document = lvis_document()
    document["images"][0]["not_exhaustive_category_ids"] = "1, 12"
    _convert_bad(tmp_path, document, on_error="skip")
    assert sorted(r["id"] for r in _records(tmp_path / "out")) == sorted(i["id"] for i in document["images"][1:])
    assert validate_dataset(tmp_path / "out").valid


@pytest.mark.parametrize(
    ("coco_url", "message"),
    [
        (f"{URL}/val2017/", "names no image file"),
        (f"{URL}/val2017/..", "names no image file"),
        (f"{URL}/val2017/%2e%2e/a.jpg", "must not climb out"),
        (None, r"expected the image's URL \(a string\), got null"),
        ("http://[::1/a.jpg", "is not a URL"),
    ],
)
def test_a_coco_url_that_names_no_image_file_is_refused_naming_it(tmp_path: Path, coco_url: Any, message: str) -> None:
    document = lvis_document()
    document["images"][2]["coco_url"] = coco_url
    with pytest.raises(UnsafePathError, match=message) as info:
        _convert_bad(tmp_path, document)
    assert info.value.location == "images[2].coco_url"


def test_an_image_with_neither_file_name_nor_coco_url_is_a_parse_error(tmp_path: Path) -> None:
    document = lvis_document()
    del document["images"][1]["coco_url"]
    with pytest.raises(ParseError, match="missing required field `file_name`") as info:
        _convert_bad(tmp_path, document)
    assert info.value.location == "images[1]"
