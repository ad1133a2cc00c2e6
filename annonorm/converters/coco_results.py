"""COCO results (detections): a model's predictions as pycocotools' ``loadRes`` reads them, joined to the ground truth.

Origin: the COCO detection evaluation format, https://cocodataset.org/#format-results. A results file is one
JSON array of predictions, each ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}`` in absolute
pixels, with an optional ``segmentation`` (polygon rings ``[[x1, y1, x2, y2, ...], ...]``, or an RLE
``{"size": [h, w], "counts": "..."}``, uncompressed list counts accepted). It names images and categories by id
only, so it is read together with the ground truth it was computed on (``--gt INSTANCES.json``, a COCO
instances file: its ``images`` give ``file_name``, ``width``, ``height``; its ``categories`` the names, in order).

Mapping (results -> annonorm; ``export coco-results`` does the reverse):

- One record per ground-truth image, in its order (an image without predictions is a record without boxes:
  the model found nothing there); the record ``id`` is the image id.
- ``bbox`` ``[x, y, w, h]`` -> corners rounded to 6 decimals; without ``bbox`` the box is the segmentation's
  hull (as ``loadRes`` computes it). ``score`` -> the box's ``score`` (a finite number in [0, 1]; a box
  without one is read without one). Polygon ``segmentation`` -> ``polygon``; RLE -> ``rle`` (list counts
  compressed, losslessly); a writer's ``rle`` key beside a polygon -> ``rle``.
- Other keys of a prediction (``id``, ``area``, ``iscrowd`` that some tools add) -> box attributes.
- Categories: the ground truth's, in its order, ids kept as ``source_id`` (a repeated name becomes
  ``<name>#<id>``). A prediction whose ``image_id`` or ``category_id`` is not in the ground truth is an error
  that lists them (the first few and how many).

Sources: a results file and ``--gt``; or a folder as ``export coco-results`` writes it, ``results_<split>.json``
with ``ground_truth/instances_<split>.json`` (``--gt`` then overrides every split's ground truth). The split
is ``--split``, else ``results_<split>.json``'s, else the ground truth's name without ``instances_``
(``instances_val2017`` -> ``val2017``). Images: ``--images DIR``, else ``images/<split>/`` or ``<split>/``
beside the ground truth's folder, else that folder.

Writing: ``results_<split>.json`` per split (one prediction per line) and ``ground_truth/instances_<split>.json``,
a COCO instances file with the images and categories and no annotations (what ``loadRes`` and this reader need;
in a folder of its own so that ``convert auto`` does not take the export for a COCO dataset).
Image ids are the record ids, category ids the manifest's ``source_id`` s where unique integers, else the
next free integer, as ``export coco`` numbers them, so the results match the ground truth that ``export coco``
writes of the same dataset. Refused: a record without an ``id`` (no ground-truth image to name) and a box
attribute named like a results key (``image_id``, ``category_id``, ``bbox``, ``score``, ``segmentation``,
``rle``). A box with a polygon and an RLE writes the polygon as ``segmentation`` and the RLE as ``rle``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msgspec
import numpy as np
from msgspec import UNSET, UnsetType

from annonorm.converters.base import Capabilities, Converter, Option, ReadContext, ReadResult, make_record
from annonorm.errors import AnnonormError, InvalidDataError, ParseError, UsageError
from annonorm.fsutil import read_regular_bytes
from annonorm.geometry import polygon_hull, round_coord, xywh_to_corners
from annonorm.io import NormalizedSource
from annonorm.records import score_problem
from annonorm.sources.cocojson import (
    CocoRle,
    box_to_coco_bbox,
    coco_bbox_to_corners,
    coco_categories_to_names,
    coco_file_name_problem,
    coco_polygons_to_rings,
    coco_rle_to_rle,
)
from annonorm.sources.jsondoc import column, describe_json, fresh_ids, json_head, positions, strip_bom
from annonorm.sources.jsondoc import validation_problem as _validation_problem

__all__ = [
    "CocoResultsConverter",
    "box_to_prediction",
    "missing_ids_problem",
    "prediction_to_box",
    "read_ground_truth",
    "read_predictions",
]

# ---------------------------------------------------------------------------------------------- constants

RESULTS_PREFIX = "results_"
GT_DIR = "ground_truth"
GT_PREFIX = "instances_"
#: The keys of a prediction that are fields of their own (a box attribute may not be named so).
RESULT_KEYS = frozenset({"image_id", "category_id", "bbox", "score", "segmentation", "rle"})
#: How many unmatched ids an error lists.
SHOWN_IDS = 5
DEFAULT_SPLIT = "val"
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_NOT_JSON_NUMBERS = (b"NaN", b"Infinity", b"-Infinity")
_EXPECTED = "expected a JSON array of predictions {image_id, category_id, bbox, score}"
_GT_HINT = "give the ground truth it was computed on: annonorm convert coco-results RESULTS.json --gt INSTANCES.json"


Segmentation = list[list[float]] | CocoRle


class _Prediction(msgspec.Struct, forbid_unknown_fields=True):
    image_id: int | str
    category_id: int | str
    bbox: list[float] | UnsetType = UNSET
    score: float | UnsetType = UNSET
    segmentation: Segmentation | UnsetType = UNSET
    rle: CocoRle | UnsetType = UNSET


class _LenientPrediction(_Prediction, forbid_unknown_fields=False):
    pass


class _GtImage(msgspec.Struct):
    id: int | str
    file_name: str
    width: int | UnsetType = UNSET
    height: int | UnsetType = UNSET


class _GtCategory(msgspec.Struct):
    id: int | str
    name: str
    supercategory: str | UnsetType = UNSET


class _Gt(msgspec.Struct):
    images: list[_GtImage]
    categories: list[_GtCategory]


_STRICT = msgspec.json.Decoder(list[_Prediction])
_LENIENT = msgspec.json.Decoder(list[_LenientPrediction])
_GT = msgspec.json.Decoder(_Gt)
_PLAIN = msgspec.json.Decoder()
_JSON = msgspec.json.Encoder()

# ---------------------------------------------------------------------------------------------- sniff


def _results_files(folder: Path) -> list[tuple[str, Path]]:
    """``(split, results_<split>.json)`` of a folder, by name."""
    found = []
    for path in sorted(folder.glob(f"{RESULTS_PREFIX}*.json")):
        split = path.name[len(RESULTS_PREFIX) : -len(".json")]
        if _SPLIT_NAME.match(split) and path.is_file():
            found.append((split, path))
    return found


def _beside(results: Path) -> Path:
    """Where ``export coco-results`` puts the ground truth of ``results_<split>.json``."""
    return results.parent / GT_DIR / (GT_PREFIX + results.name[len(RESULTS_PREFIX) :])


def _sniff(source: Path) -> bool:
    """A folder (or a ``results_<split>.json``) with its ground truth beside: no ``--gt`` needed."""
    try:
        if source.is_dir():
            pairs = _results_files(source)
            return bool(pairs) and all(_beside(path).is_file() for _, path in pairs)
        return (
            source.name.startswith(RESULTS_PREFIX) and _beside(source).is_file() and json_head(source, 1) in (b"[", b"")
        )
    except OSError:
        return False


# ------------------------------------------------------------------------------- mapping results -> annonorm


def _decode_problem(raw: bytes, error: msgspec.DecodeError) -> str:
    """msgspec's "malformed" message, or what JSON does not allow when a tool wrote NaN or Infinity."""
    if any(word in raw for word in _NOT_JSON_NUMBERS):
        return "not valid JSON: NaN and Infinity are not JSON numbers; expected finite numbers (a score in [0, 1])"
    return f"not valid JSON ({error})"


def read_predictions(*, raw: bytes, file: Path) -> tuple[list[_Prediction], list[dict[str, Any]] | None]:
    """The predictions of a results file and, when some have keys of their own, those keys per prediction.

    Raises :class:`ParseError` naming the JSON path (``[3].bbox``) for a value of the wrong type.
    """
    raw = strip_bom(raw)
    try:
        return _STRICT.decode(raw), None
    except msgspec.ValidationError as exc:
        strict_error = exc.with_traceback(None)  # no frame cycle for the paused collector (jsondoc._decode)
    except msgspec.DecodeError as exc:
        raise ParseError(_decode_problem(raw, exc), file=file) from None
    except (UnicodeDecodeError, RecursionError):
        raise ParseError(f"not valid JSON; {_EXPECTED}", file=file) from None
    plain = _PLAIN.decode(raw)
    if not isinstance(plain, list):
        hint = ""
        if isinstance(plain, dict) and "images" in plain:
            hint = " (this is a COCO instances file: annonorm convert coco)"
        raise ParseError(f"{_EXPECTED}, got {describe_json(plain)}{hint}", file=file)
    if "unknown field" in str(strict_error):
        try:
            lenient = _LENIENT.decode(raw)
        except msgspec.ValidationError as exc:
            strict_error = exc.with_traceback(None)
        else:
            extras = [{k: v for k, v in item.items() if k not in RESULT_KEYS} for item in plain]
            return list(lenient), extras
    problem = _validation_problem(plain, strict_error)
    raise ParseError(problem.message, file=file, location=problem.path or None)


def prediction_to_box(
    *, prediction: _Prediction, name: str, width: int | None, height: int | None, extras: Mapping[str, Any]
) -> dict[str, Any]:
    """One prediction as a box named ``name`` on a ``width`` x ``height`` image (``None``: unknown).

    Raises :class:`ValueError` with what was expected for a bbox that is not 4 finite numbers with ``w, h >= 0``,
    a score that is not a confidence, a malformed segmentation, or neither a bbox nor a segmentation.
    """
    box: dict[str, Any] = {"name": name}
    polygon, rle = _segmentation(prediction, width, height)
    if prediction.bbox is not UNSET:
        values = prediction.bbox
        if len(values) != 4 or not all(math.isfinite(v) for v in values) or values[2] < 0 or values[3] < 0:
            raise ValueError(f"bbox is {values}; expected [x, y, width, height], finite, width and height >= 0")
        box.update(zip(("x1", "y1", "x2", "y2"), coco_bbox_to_corners(bbox=values), strict=True))
    elif polygon is not None:  # the segmentation's hull, as loadRes computes it
        box.update(zip(("x1", "y1", "x2", "y2"), map(round_coord, polygon_hull(polygon)), strict=True))
    elif rle is not None:
        box.update(zip(("x1", "y1", "x2", "y2"), map(round_coord, _rle_hull(rle)), strict=True))
    else:
        raise ValueError("expected a bbox [x, y, width, height] or a segmentation")
    if polygon is not None:
        box["polygon"] = polygon
    if rle is not None:
        box["rle"] = rle
    if prediction.score is not UNSET:
        score = prediction.score
        problem = score_problem(score) if math.isfinite(score) else ("", "score is not finite")
        if problem is not None:
            raise ValueError(problem[1])
        box["score"] = float(score)
    if extras:
        box["attributes"] = dict(extras)
    return box


def _segmentation(
    prediction: _Prediction, width: int | None, height: int | None
) -> tuple[list[list[float]] | None, dict[str, Any] | None]:
    """The polygon and RLE of a prediction, as :mod:`~annonorm.sources.cocojson` reads them (rings of 3 points+)."""
    polygon, rle = None, None
    segmentation = prediction.segmentation
    size = {} if width is None or height is None else {"height": height, "width": width}
    try:
        if isinstance(segmentation, list):
            polygon = coco_polygons_to_rings(segmentations=[segmentation], strict=True)[0] or None
        elif isinstance(segmentation, CocoRle):
            rle = coco_rle_to_rle(size=segmentation.size, counts=segmentation.counts, **size)
        if prediction.rle is not UNSET:
            rle = coco_rle_to_rle(size=prediction.rle.size, counts=prediction.rle.counts, **size)
    except InvalidDataError as exc:
        raise ValueError(exc.message) from None
    return polygon, rle


def _rle_hull(rle: Mapping[str, Any]) -> tuple[float, float, float, float]:
    from pycocotools import mask as mask_utils

    x, y, w, h = mask_utils.toBbox({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).tolist()
    return xywh_to_corners(x, y, w, h)


def missing_ids_problem(*, what: str, keys: np.ndarray, found: np.ndarray, gt: Path) -> str | None:
    """The error for predictions whose ``what`` id (``image``) is in no ground-truth item, else ``None``."""
    missing = keys[found < 0]
    if not len(missing):
        return None
    unique = list(dict.fromkeys(missing.tolist()))
    shown = ", ".join(map(repr, unique[:SHOWN_IDS])) + (
        f" (and {len(unique) - SHOWN_IDS} more)" if len(unique) > SHOWN_IDS else ""
    )
    return (
        f"{len(missing)} predictions name {what} ids that are not in the ground truth {gt.name}: {shown}; "
        f"expected the {what} ids of the ground truth the results were computed on"
    )


# ------------------------------------------------------------------------------- mapping annonorm -> results


def box_to_prediction(*, box: Mapping[str, Any], image_id: int | str, category_id: int | str) -> dict[str, Any]:
    """One box as a COCO results entry (``bbox`` xywh rounded to 6 decimals, the box's attributes as keys)."""
    entry: dict[str, Any] = {"image_id": image_id, "category_id": category_id, "bbox": box_to_coco_bbox(box=box)}
    if box.get("score") is not None:
        entry["score"] = box["score"]
    if box.get("polygon") is not None:
        entry["segmentation"] = box["polygon"]
        if box.get("rle") is not None:
            entry["rle"] = box["rle"]
    elif box.get("rle") is not None:
        entry["segmentation"] = box["rle"]
    return entry | dict(box.get("attributes") or {})


# ---------------------------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Pair:
    split: str
    results: Path
    gt: Path


def _split_of(results: Path, gt: Path, option: Any) -> str:
    if option is not None:
        return str(option)
    for name, prefix in ((results.name, RESULTS_PREFIX), (gt.name, GT_PREFIX)):
        if name.startswith(prefix) and name.endswith(".json"):
            split = name[len(prefix) : -len(".json")]
            if _SPLIT_NAME.match(split):
                return split
    return DEFAULT_SPLIT


def _pairs(source: Path, options: Mapping[str, Any]) -> list[_Pair]:
    """The results files of ``source`` and the ground truth of each; a missing one is a usage error."""
    gt_option = options.get("gt")
    if source.is_dir():
        found = _results_files(source)
        if not found:
            raise ParseError(f"no COCO results here: expected {RESULTS_PREFIX}<split>.json files", file=source)
        named = [(split, path, Path(gt_option) if gt_option else _beside(path)) for split, path in found]
    else:
        gt = Path(gt_option) if gt_option else _beside(source) if source.name.startswith(RESULTS_PREFIX) else None
        if gt is None:
            raise UsageError(f"a COCO results list names images and categories by id only; {_GT_HINT}", file=source)
        named = [(_split_of(source, gt, options.get("split")), source, gt)]
    for _, _, gt in named:
        if not gt.exists():
            raise UsageError(f"the ground truth is missing; {_GT_HINT}", file=gt)
    return [_Pair(split, results, gt) for split, results, gt in named]


def _source_files(source: Path, options: Mapping[str, Any]) -> list[Path]:
    pairs = _pairs(source, options)
    return list(dict.fromkeys([p.results for p in pairs] + [p.gt for p in pairs]))


def _image_root(gt: Path, split: str, images: Path | None) -> Path:
    if images is not None:
        return images
    for candidate in (gt.parent.parent / "images" / split, gt.parent.parent / split, gt.parent / "images"):
        if candidate.is_dir():
            return candidate
    return gt.parent


# ---------------------------------------------------------------------------------------------- read


def read_ground_truth(*, raw: bytes, file: Path) -> _Gt:
    """The images and categories of a COCO instances file; a :class:`ParseError` naming the JSON path if not."""
    try:
        return _GT.decode(strip_bom(raw))
    except msgspec.ValidationError as exc:
        problem = _validation_problem(_PLAIN.decode(strip_bom(raw)), exc)
        raise ParseError(
            f"{problem.message} (a COCO instances file)", file=file, location=problem.path or None
        ) from None
    except msgspec.DecodeError as exc:
        raise ParseError(f"not valid JSON ({exc})", file=file) from None
    except (UnicodeDecodeError, RecursionError):
        raise ParseError("not valid JSON; expected a COCO instances file", file=file) from None


def _category_names(categories: list[_GtCategory], gt: Path) -> list[str]:
    empty = next((index for index, category in enumerate(categories) if not category.name), None)
    if empty is not None:
        raise InvalidDataError("category name is empty", file=gt, location=f"categories[{empty}].name")
    return coco_categories_to_names(categories=[(category.id, category.name) for category in categories])


def _read_pair(pair: _Pair, ctx: ReadContext) -> None:
    writer = ctx.sink
    truth = read_ground_truth(raw=read_regular_bytes(pair.gt, "ground truth"), file=pair.gt)
    predictions, extras = read_predictions(raw=read_regular_bytes(pair.results, "COCO results"), file=pair.results)
    names = _category_names(truth.categories, pair.gt)
    for category, name in zip(truth.categories, names, strict=True):
        supercategory = category.supercategory if category.supercategory else None
        writer.category(name, category.id, supercategory=supercategory)
    image_ids = column([image.id for image in truth.images])
    category_ids = column([category.id for category in truth.categories])
    for what, ids in (("image", image_ids), ("category", category_ids)):
        unique = len(set(ids.tolist()))
        if unique != len(ids):
            raise InvalidDataError(f"{len(ids) - unique} {what} ids repeat; expected unique ids", file=pair.gt)
    keys = column([p.image_id for p in predictions])
    at_image = positions(keys, image_ids) if len(keys) else np.zeros(0, np.int64)
    at_category = positions(column([p.category_id for p in predictions]), category_ids) if len(keys) else at_image
    for what, found, of in (
        ("image", at_image, keys),
        ("category", at_category, column([p.category_id for p in predictions])),
    ):
        problem = missing_ids_problem(what=what, keys=of, found=found, gt=pair.gt)
        if problem is not None:
            raise InvalidDataError(problem, file=pair.results)
    order = np.argsort(at_image, kind="stable")
    starts = np.searchsorted(at_image[order], np.arange(len(truth.images) + 1))
    writer.declare_split(pair.split)
    writer.expect(len(truth.images))
    for index, image in enumerate(truth.images):
        width = image.width if image.width is not UNSET else None
        height = image.height if image.height is not UNSET else None
        boxes = []
        if (problem := coco_file_name_problem(image.file_name)) is not None:
            writer.problem(
                InvalidDataError(problem, file=pair.gt, location=f"images[{index}].file_name", image=image.file_name)
            )
            continue
        try:
            for at in order[starts[index] : starts[index + 1]].tolist():
                try:
                    boxes.append(
                        prediction_to_box(
                            prediction=predictions[at],
                            name=names[at_category[at]],
                            width=width,
                            height=height,
                            extras=extras[at] if extras is not None else {},
                        )
                    )
                except ValueError as exc:
                    raise InvalidDataError(
                        str(exc), file=pair.results, location=f"[{at}]", image=image.file_name
                    ) from None
        except AnnonormError as error:
            writer.problem(error)
            continue
        writer.add(pair.split, make_record(image=image.file_name, width=width, height=height, boxes=boxes, id=image.id))


def _read(source: Path, ctx: ReadContext) -> ReadResult:
    pairs = _pairs(source, ctx.options)
    for path in _source_files(source, ctx.options):
        ctx.sink.add_source_file(path)
    for pair in pairs:
        _read_pair(pair, ctx)
    root = _image_root(pairs[0].gt, pairs[0].split, ctx.images) if len(pairs) == 1 else ctx.images or source
    name = source.resolve().stem if source.is_file() else source.resolve().name
    return ReadResult(name=name or "coco-results", image_root=root)


# ---------------------------------------------------------------------------------------------- write


def _write_array(stream: IO[bytes], items: Iterator[Any]) -> None:
    stream.write(b"[")
    for count, item in enumerate(items):
        stream.write((b"\n" if count == 0 else b",\n") + _JSON.encode(item))
    stream.write(b"\n]\n")


def _predictions(
    dataset: NormalizedSource, split: str, category_ids: Mapping[str, int | str]
) -> Iterator[dict[str, Any]]:
    for index, record in enumerate(dataset.records(split), start=1):
        for number, box in enumerate(record["boxes"]):
            clash = sorted(RESULT_KEYS & set(box.get("attributes") or {}))
            if clash:
                raise InvalidDataError(
                    f"box attribute {clash[0]!r} is a COCO results key; rename it (annonorm remap) before exporting",
                    file=dataset.split_path(split),
                    location=f"record {index} boxes.{number}",
                )
            yield box_to_prediction(box=box, image_id=record["id"], category_id=category_ids[box["name"]])


def _images(dataset: NormalizedSource, split: str) -> Iterator[dict[str, Any]]:
    for index, record in enumerate(dataset.records(split), start=1):
        if record.get("id") is None:
            raise InvalidDataError(
                "record has no id; a COCO results entry names its ground-truth image by id (convert the ground "
                "truth with its ids, e.g. annonorm convert coco)",
                file=dataset.split_path(split),
                location=f"record {index}",
            )
        image = {"id": record["id"], "file_name": record["image"]}
        if record.get("width") is not None:
            image |= {"width": record["width"], "height": record["height"]}
        yield image


def _write(dataset: NormalizedSource, out: Path) -> None:
    manifest = dataset.manifest
    ids = list(fresh_ids(c.source_id for c in manifest.categories))
    category_ids = {c.name: coco_id for c, coco_id in zip(manifest.categories, ids, strict=True)}
    categories = [
        {"id": coco_id, "name": c.name, **({"supercategory": c.supercategory} if c.supercategory else {})}
        for c, coco_id in zip(manifest.categories, ids, strict=True)
    ]
    for split in manifest.splits:
        (out / GT_DIR).mkdir(exist_ok=True)
        with (out / GT_DIR / f"{GT_PREFIX}{split}.json").open("wb") as stream:
            stream.write(b'{"images": ')
            _write_array(stream, _images(dataset, split))
            stream.write(b', "categories": ' + _JSON.encode(categories) + b', "annotations": []}\n')
        with (out / f"{RESULTS_PREFIX}{split}.json").open("wb") as stream:
            _write_array(stream, _predictions(dataset, split, category_ids))


# ---------------------------------------------------------------------------------------------- the converter


class CocoResultsConverter(Converter):
    """COCO results (detections) lists, read with their ground truth (``--gt``), and written back."""

    name = "coco-results"
    summary = "COCO results / detections JSON list (image_id, category_id, bbox, score) with --gt INSTANCES.json"
    read_options = (
        Option("gt", "The COCO instances JSON the results were computed on (images, categories)", type=Path),
        Option("split", "The split of a single results file (default: from the file names, else val)"),
    )
    capabilities = Capabilities(
        box_attributes=True,
        reserved_attributes=RESULT_KEYS,
        ids=True,
        unknown_sizes=True,
        category_order=True,
        polygons=True,
        rle=True,
        scores=True,
    )

    @classmethod
    def sniff(cls, source: Path) -> bool:
        return _sniff(source)

    @classmethod
    def source_files(cls, source: Path, options: Mapping[str, Any]) -> list[Path]:
        return _source_files(source, options)

    def read(self, source: Path, ctx: ReadContext) -> ReadResult:
        return _read(source, ctx)

    def write(self, dataset: NormalizedSource, out: Path, *, options: Mapping[str, Any]) -> None:
        _write(dataset, out)
