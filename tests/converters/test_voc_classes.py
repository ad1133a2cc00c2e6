"""VOC categories are the data's (issue 11, item 4): labelmap.txt, else the per-class ImageSets lists, else the
classes the XML files use, sorted by name; never the 20 Pascal classes by default.

Expected class tables are computed here from the files with plain ElementTree and string handling, not with the
converter's code.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from peer import PEER_DATA
from PIL import Image
from typer.testing import CliRunner

from annonorm.api import convert
from annonorm.cli import app
from annonorm.converters.voc import VOC_CLASSES
from annonorm.errors import InvalidDataError

runner = CliRunner()
needs_peer = pytest.mark.skipif(not PEER_DATA.is_dir(), reason=f"peer_data is not on this machine ({PEER_DATA})")
RESERVED = {"background", "ignored"}


def write_voc(root: Path, objects: dict[str, list[str]], size: tuple[int, int] = (20, 10)) -> Path:
    """A devkit with ``Annotations/<stem>.xml`` holding one object per class name, and a JPEG per stem."""
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    for stem, names in objects.items():
        body = "".join(
            f"<object><name>{name}</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>4</xmax><ymax>4</ymax></bndbox>"
            "</object>"
            for name in names
        )
        (root / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><filename>{stem}.jpg</filename><size><width>{size[0]}</width>"
            f"<height>{size[1]}</height><depth>3</depth></size>{body}</annotation>\n"
        )
        Image.new("RGB", size).save(root / "JPEGImages" / f"{stem}.jpg")
    return root


def category_names(out: Path) -> list[str]:
    return [c["name"] for c in json.loads((out / "annonorm.json").read_text())["categories"]]


def xml_classes(source: Path) -> list[str]:
    """Sorted names of the top-level <object>s of every XML file under ``source`` (parts are not classes)."""
    names = set()
    for xml in source.rglob("*.xml"):
        for element in ET.parse(xml).getroot().findall("object"):
            names.add((element.findtext("name") or "").strip())
    return sorted(names)


# ---------------------------------------------------------------------------------------------- peer data


@needs_peer
def test_labelmap_gives_the_table_in_its_order(tmp_path: Path) -> None:
    source = PEER_DATA / "voc_dataset/voc_dataset2"
    listed = []
    for line in (source / "labelmap.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            listed.append(line.split(":")[0])
    expected = [n for n in listed if n not in RESERVED]
    extras = sorted(set(xml_classes(source)) - set(expected))  # an object named "background" in the XML
    result = convert("voc", source, tmp_path / "out")
    assert result.manifest.category_names == expected + extras
    assert [c.source_id for c in result.manifest.categories[: len(expected)]] == [
        listed.index(name) for name in expected
    ]


@needs_peer
def test_per_class_image_set_lists_give_the_table(tmp_path: Path) -> None:
    source = PEER_DATA / "voc_dataset/voc_dataset1"
    main = source / "ImageSets/Main"
    splits = {p.stem for p in main.glob("*.txt") if "_" not in p.stem}
    expected = sorted(
        {p.stem.rsplit("_", 1)[0] for p in main.glob("*_*.txt") if p.stem.rsplit("_", 1)[1] in splits} - RESERVED
    )
    assert len(expected) == 20  # this devkit ships a list for every Pascal class, used or not
    result = convert("voc", source, tmp_path / "out")
    assert result.manifest.category_names == expected


@needs_peer
@pytest.mark.parametrize(
    "folder",
    ["voc_dataset/voc_dataset3", "kaggle_dataset/relaxed_voc1", "kaggle_dataset/relaxed_voc2", "roboflow_dataset/voc"],
)
def test_without_labelmap_or_class_lists_the_xml_classes_sorted(folder: str, tmp_path: Path) -> None:
    source = PEER_DATA / folder
    result = convert("voc", source, tmp_path / "out")
    assert result.manifest.category_names == xml_classes(source)
    assert len(result.manifest.category_names) < len(VOC_CLASSES)


# ---------------------------------------------------------------------------------------------- generated sets


def test_two_class_set_gets_two_categories_through_the_cli(tmp_path: Path) -> None:
    root = write_voc(tmp_path / "voc", {"a": ["zebra", "apple"], "b": ["zebra"]})
    done = runner.invoke(app, ["convert", "voc", str(root), "-o", str(tmp_path / "out")])
    assert done.exit_code == 0, done.output
    assert category_names(tmp_path / "out") == ["apple", "zebra"]
    assert "2 categories" in done.output


def test_eighty_class_set_gets_eighty_sorted_categories(tmp_path: Path) -> None:
    names = [f"class_{index:02d}" for index in range(80)]
    shuffled = [names[(k * 37) % 80] for k in range(80)]  # 37 is prime to 80: every class once, out of order
    objects = {f"img{index:02d}": shuffled[2 * index : 2 * index + 2] for index in range(40)}
    root = write_voc(tmp_path / "voc", objects)
    done = runner.invoke(app, ["convert", "voc", str(root), "-o", str(tmp_path / "out")])
    assert done.exit_code == 0, done.output
    assert category_names(tmp_path / "out") == sorted(names)


def test_class_lists_keep_classes_without_instances_and_underscored_names(tmp_path: Path) -> None:
    root = write_voc(tmp_path / "voc", {"a": ["traffic_light"], "b": ["car"]})
    main = root / "ImageSets/Main"
    main.mkdir(parents=True)
    (main / "train.txt").write_text("a\nb\n")
    for name, text in {"traffic_light": "a  1\nb -1\n", "car": "a -1\nb  1\n", "bus": "a -1\nb -1\n"}.items():
        (main / f"{name}_train.txt").write_text(text)
    (main / "background_train.txt").write_text("a 0\nb 0\n")  # reserved VOC name: never a category
    result = convert("voc", root, tmp_path / "out")
    assert result.manifest.category_names == ["bus", "car", "traffic_light"]
    assert list(result.manifest.splits) == ["train"]


def test_xml_classes_beyond_the_labelmap_are_appended_sorted(tmp_path: Path) -> None:
    root = write_voc(tmp_path / "voc", {"a": ["yak", "okapi"], "b": ["gnu", "zebra"]})
    (root / "labelmap.txt").write_text(
        "# label:color_rgb:parts:actions\nbackground:0,0,0::\n\nzebra:10,20,30:head,tail:\n# yak is not here\n"
    )
    result = convert("voc", root, tmp_path / "out")
    assert result.manifest.category_names == ["zebra", "gnu", "okapi", "yak"]
    zebra = result.manifest.categories[0]
    assert zebra.source_id == 1 and (zebra.attributes or {}).get("parts") == ["head", "tail"]


def test_semantic_masks_without_labelmap_use_the_devkit_numbering(tmp_path: Path) -> None:
    root = write_voc(tmp_path / "voc", {"a": ["dog", "cat"]})
    (root / "SegmentationClass").mkdir()
    indices = np.zeros((10, 20), dtype=np.uint8)
    dog, cat = VOC_CLASSES.index("dog") + 1, VOC_CLASSES.index("cat") + 1  # the devkit's mask values
    indices[:, :5], indices[:, 5:10], indices[0, 0] = dog, cat, 255
    Image.fromarray(indices).save(root / "SegmentationClass" / "a.png")
    result = convert("voc", root, tmp_path / "out")
    assert result.manifest.category_names == ["cat", "dog"]
    (line,) = (result.out / "default.jsonl").read_text().splitlines()
    mask = np.asarray(Image.open(result.out / json.loads(line)["mask"]))
    # annonorm semantic values are category id + 1: cat -> 1, dog -> 2; void stays 255.
    assert (mask[1, 0], mask[1, 7], mask[0, 0], mask[1, 15]) == (2, 1, 255, 0)


def test_semantic_mask_pixel_of_a_class_the_dataset_lacks_is_an_error(tmp_path: Path) -> None:
    root = write_voc(tmp_path / "voc", {"a": ["dog"]})
    (root / "SegmentationClass").mkdir()
    indices = np.full((10, 20), VOC_CLASSES.index("person") + 1, dtype=np.uint8)
    Image.fromarray(indices).save(root / "SegmentationClass" / "a.png")
    with pytest.raises(InvalidDataError, match="pixel value 15"):
        convert("voc", root, tmp_path / "out")


def test_classes_option_fixes_the_table_over_a_labelmap(tmp_path: Path) -> None:
    root = write_voc(tmp_path / "voc", {"a": ["zebra", "apple"]})
    (root / "labelmap.txt").write_text("background:0,0,0::\nzebra:1,2,3::\napple:4,5,6::\nunused:7,8,9::\n")
    result = convert("voc", root, tmp_path / "out", classes="kite,apple,zebra")
    # The listed order fixes the ids; the labelmap still gives its index (source_id); its unused class is dropped.
    assert [(c.name, c.source_id) for c in result.manifest.categories] == [("kite", None), ("apple", 2), ("zebra", 1)]
