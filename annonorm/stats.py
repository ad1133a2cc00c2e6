"""``annonorm stats``: what a normalized dataset holds, per split, in one streaming pass.

Per split: images, boxes, images without boxes (and without any label), per class the images it
appears in, its boxes and its summed counts; box sizes bucketed by COCO's area thresholds (small
``area < 32²``, medium ``< 96²``, large otherwise, on the box area ``w * h`` in pixels); and the
box aspect ratio ``w / h`` as quantiles and buckets. Records are streamed; per box only three
numbers (class index, width, height) are kept, in flat arrays, and numpy does the distributions.
The dataset's content fingerprint (:func:`annonorm.io.fingerprint`, over every split whichever
are shown) comes with the figures, so an experiment log can name the exact data.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from annonorm.errors import InvalidDataError, UsageError
from annonorm.io import NormalizedSource, fingerprint, open_dataset

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "AREA_THRESHOLDS",
    "ASPECT_EDGES",
    "ClassStats",
    "DatasetStats",
    "SplitStats",
    "compute_stats",
    "print_stats",
]

#: COCO's object size limits on the area in pixels: small below 32², medium below 96², else large.
AREA_THRESHOLDS = (32.0**2, 96.0**2)
SIZE_NAMES = ("small", "medium", "large")
#: Edges of the aspect-ratio (width / height) buckets: tall ... square ... wide.
ASPECT_EDGES = (0.25, 0.5, 0.8, 1.25, 2.0, 4.0)
ASPECT_NAMES = ("<0.25", "0.25-0.5", "0.5-0.8", "0.8-1.25", "1.25-2", "2-4", ">=4")
QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
DECIMALS = 4


@dataclass
class ClassStats:
    """One class in one split."""

    name: str
    images: int = 0
    boxes: int = 0
    count: int = 0
    sizes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIZE_NAMES, 0))


@dataclass
class SplitStats:
    """One split: totals, per-class figures, box size and aspect-ratio distributions."""

    images: int = 0
    boxes: int = 0
    images_without_boxes: int = 0
    images_without_labels: int = 0
    sizes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIZE_NAMES, 0))
    #: Boxes with zero width or height: no aspect ratio.
    degenerate_boxes: int = 0
    aspect_quantiles: dict[str, float] = field(default_factory=dict)
    aspect_buckets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ASPECT_NAMES, 0))
    classes: list[ClassStats] = field(default_factory=list)


@dataclass
class DatasetStats:
    """Statistics of a dataset, split by split, classes in the manifest's order."""

    dataset: str
    name: str
    #: The content fingerprint of the whole dataset (:func:`annonorm.io.fingerprint`), all splits.
    fingerprint: str
    categories: list[str]
    splits: dict[str, SplitStats]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``annonorm stats --format json``); the same input gives the same output."""
        return asdict(self)


class _Accumulator:
    """Streams one split's records into counters and three flat per-box arrays."""

    def __init__(self, categories: list[str]) -> None:
        self.names = list(categories)
        self.index = {name: position for position, name in enumerate(self.names)}
        self.images = self.without_boxes = self.without_labels = 0
        self.class_images: list[int] = [0] * len(self.names)
        self.class_counts: list[int] = [0] * len(self.names)
        self.box_class = array("q")
        self.widths = array("d")
        self.heights = array("d")

    def _class(self, name: str) -> int:
        position = self.index.get(name)
        if position is None:  # a name the manifest lacks (validate reports it); counted, not dropped
            position = self.index[name] = len(self.names)
            self.names.append(name)
            self.class_images.append(0)
            self.class_counts.append(0)
        return position

    def add(self, record: dict[str, Any]) -> None:
        self.images += 1
        boxes = record.get("boxes") or ()
        labels = record.get("labels") or ()
        self.without_boxes += not boxes
        self.without_labels += not labels and not boxes
        for name in dict.fromkeys([*labels, *(box["name"] for box in boxes)]):
            self.class_images[self._class(name)] += 1
        for name, value in (record.get("counts") or {}).items():
            self.class_counts[self._class(name)] += value
        for box in boxes:
            self.box_class.append(self._class(box["name"]))
            self.widths.append(box["x2"] - box["x1"])
            self.heights.append(box["y2"] - box["y1"])

    def finish(self) -> SplitStats:
        classes = np.frombuffer(self.box_class, dtype=np.int64) if self.box_class else np.zeros(0, np.int64)
        widths = np.frombuffer(self.widths, dtype=np.float64) if self.widths else np.zeros(0)
        heights = np.frombuffer(self.heights, dtype=np.float64) if self.heights else np.zeros(0)
        n = len(self.names)
        size_bucket = np.digitize(widths * heights, AREA_THRESHOLDS)  # 0 small, 1 medium, 2 large
        per_class_sizes = np.bincount(classes * 3 + size_bucket, minlength=3 * n).reshape(n, 3)
        per_class_boxes = np.bincount(classes, minlength=n)
        proper = (widths > 0) & (heights > 0)
        ratios = widths[proper] / heights[proper]
        stats = SplitStats(
            images=self.images,
            boxes=int(classes.size),
            images_without_boxes=self.without_boxes,
            images_without_labels=self.without_labels,
            sizes=dict(zip(SIZE_NAMES, (int(v) for v in per_class_sizes.sum(axis=0)), strict=True)),
            degenerate_boxes=int(classes.size - ratios.size),
            aspect_buckets=dict(
                zip(
                    ASPECT_NAMES,
                    (int(v) for v in np.bincount(np.digitize(ratios, ASPECT_EDGES), minlength=7)),
                    strict=True,
                )
            ),
        )
        if ratios.size:
            values = np.quantile(ratios, QUANTILES)
            stats.aspect_quantiles = {
                f"p{round(q * 100)}": round(float(v), DECIMALS) for q, v in zip(QUANTILES, values, strict=True)
            }
        for position, name in enumerate(self.names):
            stats.classes.append(
                ClassStats(
                    name=name,
                    images=self.class_images[position],
                    boxes=int(per_class_boxes[position]),
                    count=self.class_counts[position],
                    sizes=dict(zip(SIZE_NAMES, (int(v) for v in per_class_sizes[position]), strict=True)),
                )
            )
        return stats


def trusted_records(source: NormalizedSource, split: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(1-based record number, record)`` of a split; a record too broken to read is an InvalidDataError.

    Stats and previews trust the data (``annonorm validate`` checks it); this only makes sure a
    broken record stops them with its place named instead of a bare ``KeyError``.
    """
    # NormalizedSource.records already turns a record too broken to read into an InvalidDataError.
    yield from enumerate(source.records(split), start=1)


def malformed(exc: Exception, file: Path, number: int) -> InvalidDataError:
    """The error for a record that breaks the format in a way only ``annonorm validate`` words well."""
    return InvalidDataError(
        f"malformed record ({type(exc).__name__}: {exc}); run annonorm validate", file=file, location=f"record {number}"
    )


def compute_stats(dataset: str | Path, splits: list[str] | None = None) -> DatasetStats:
    """Statistics of the normalized dataset at ``dataset`` (all splits, or ``splits``), streamed."""
    source = open_dataset(Path(dataset))
    chosen = list(source.manifest.splits) if not splits else list(dict.fromkeys(splits))
    unknown = [s for s in chosen if s not in source.manifest.splits]
    if unknown:
        raise UsageError(
            f"no split {unknown[0]!r}; this dataset has {', '.join(map(repr, source.manifest.splits))}",
            file=source.root,
        )
    result = {}
    for split in chosen:
        accumulator = _Accumulator(source.manifest.category_names)
        for number, record in trusted_records(source, split):
            try:
                accumulator.add(record)
            except (KeyError, TypeError, AttributeError) as exc:
                raise malformed(exc, source.split_path(split), number) from None
        result[split] = accumulator.finish()
    return DatasetStats(
        dataset=str(dataset),
        name=source.manifest.name,
        fingerprint=fingerprint(source.root),
        categories=source.manifest.category_names,
        splits=result,
    )


def print_stats(stats: DatasetStats, console: Console | None = None) -> None:
    """Print ``stats`` as rich tables: one overview row per split, per-class figures, aspect-ratio buckets."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    overview = Table(title=f"{stats.name}: {len(stats.categories)} classes", title_justify="left")
    for column in ("split", "images", "boxes", "no boxes", "no labels", "small", "medium", "large", "w/h median"):
        overview.add_column(column, justify="left" if column == "split" else "right")
    for split, s in stats.splits.items():
        median = f"{s.aspect_quantiles['p50']:.2f}" if s.aspect_quantiles else "-"
        overview.add_row(
            split,
            str(s.images),
            str(s.boxes),
            str(s.images_without_boxes),
            str(s.images_without_labels),
            *(str(s.sizes[n]) for n in SIZE_NAMES),
            median,
        )
    console.print(overview)
    per_class = Table(title="per class: images / boxes (small, medium, large)", title_justify="left")
    per_class.add_column("class")
    for split in stats.splits:
        per_class.add_column(split, justify="right")
    names = list(dict.fromkeys(c.name for s in stats.splits.values() for c in s.classes))
    cells = {(split, c.name): c for split, s in stats.splits.items() for c in s.classes}
    for name in names:
        row = [name]
        for split in stats.splits:
            c = cells.get((split, name))
            row.append(
                "-"
                if c is None
                else f"{c.images} / {c.boxes} ({c.sizes['small']}, {c.sizes['medium']}, {c.sizes['large']})"
            )
        per_class.add_row(*row)
    console.print(per_class)
    buckets = Table(title="box aspect ratio w/h", title_justify="left")
    buckets.add_column("split")
    for bucket in ASPECT_NAMES:
        buckets.add_column(bucket, justify="right")
    buckets.add_column("zero w/h", justify="right")
    for split, s in stats.splits.items():
        buckets.add_row(split, *(str(s.aspect_buckets[b]) for b in ASPECT_NAMES), str(s.degenerate_boxes))
    console.print(buckets)
    console.print(f"fingerprint: {stats.fingerprint}", highlight=False)
