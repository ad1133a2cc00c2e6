"""``split``: cut a dataset into new splits by ratio: seeded, byte-for-byte reproducible, optionally stratified.

Two passes over the input: the first keeps, per image, only its class ids (one numpy array of ids and
one of offsets) and its group; the assignment is computed on those arrays; the second streams the
records into their splits, in input order, and writes ``OUT/<split>.txt`` (the split's image paths
as the records hold them) beside each JSONL.

- Random (default): groups (each image its own group without ``group_by``) in a seeded random order,
  each given to the split furthest below its target number of images.
- ``stratify``: iterative stratification (Sechidis, Tsoumakas and Vlahavas, 2011, "On the
  stratification of multi-label data"): the class with the fewest unassigned images first; each of
  its images (or groups) goes to the split that most wants that class, ties broken by the split
  that most wants images, then by the seeded generator. Two additions: a split of ratio >= 0.1 that
  has no image of the class yet is served first, and a final pass moves one image (group) of a class
  into such a split it still misses, from a split that keeps one; so every class with >= 5 images
  reaches every split of ratio >= 0.1 (without ``group_by``: groups may make it impossible).
- ``group_by="folder"`` (the image path's directory) or ``"attribute:NAME"`` (the record's attribute)
  keeps a group in one split.
"""

from __future__ import annotations

import math
import os
import posixpath
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from annonorm.errors import InvalidDataError, UsageError
from annonorm.io import NormalizedSource
from annonorm.ops.common import (
    OpResult,
    Progress,
    category_fields,
    copy_mask,
    finish,
    image_root_from,
    input_files,
    open_input,
    output_dataset,
    provenance,
    unique_id,
)
from annonorm.schemas.manifest import Manifest

__all__ = ["parse_ratios", "split"]

#: A split of at least this ratio gets an image of every class that has >= :data:`MIN_CLASS_IMAGES` images.
COVERED_RATIO = 0.1
MIN_CLASS_IMAGES = 5
_TOLERANCE = 1e-6


def parse_ratios(ratios: str | Mapping[str, float]) -> dict[str, float]:
    """``"train=0.8,val=0.1,test=0.1"`` (or a mapping) as split -> ratio; they must be > 0 and sum to 1."""
    if isinstance(ratios, str):
        parsed: dict[str, float] = {}
        for item in ratios.split(","):
            key, sep, value = item.partition("=")
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not sep or not key.strip() or math.isnan(number):
                raise UsageError(f"--ratios: expected NAME=RATIO items like train=0.8,val=0.2; found {item!r}")
            if key.strip() in parsed:
                raise UsageError(f"--ratios names split {key.strip()!r} twice")
            parsed[key.strip()] = number
    else:
        parsed = {str(k): float(v) for k, v in ratios.items()}
    if not parsed:
        raise UsageError("--ratios names no split")
    bad = [f"{k}={v}" for k, v in parsed.items() if not (0 < v <= 1)]
    if bad:
        raise UsageError(f"--ratios: each ratio must be in (0, 1]; found {', '.join(bad)}")
    total = sum(parsed.values())
    if abs(total - 1.0) > _TOLERANCE:
        given = ",".join(f"{k}={v:g}" for k, v in parsed.items())
        raise UsageError(f"--ratios must sum to 1; they sum to {total:g} ({given})")
    return parsed


def _group_key(record: dict[str, Any], group_by: str | None, where: str) -> Any:
    if group_by is None:
        return None
    if group_by == "folder":
        return posixpath.dirname(record["image"])
    attribute = group_by.removeprefix("attribute:")
    value = (record.get("attributes") or {}).get(attribute)
    if value is None:
        raise InvalidDataError(
            f"image {record['image']} has no attribute {attribute!r}; --group-by {group_by} needs it on every record",
            file=where,
        )
    return repr(value)  # hashable, and 1 and "1" stay different groups


def _scan(
    source: NormalizedSource, splits: Sequence[str], group_by: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image (in input order): its class ids (CSR: ids, offsets) and its group number."""
    index = {name: i for i, name in enumerate(source.manifest.category_names)}
    ids: list[int] = []
    offsets = [0]
    group_numbers: dict[Any, int] = {}
    groups: list[int] = []
    for split in splits:
        where = str(source.split_path(split))
        for record in source.records(split):
            names = set(record["labels"])
            names.update(box["name"] for box in record["boxes"])
            ids.extend(sorted(index[name] for name in names))
            offsets.append(len(ids))
            key = _group_key(record, group_by, where)
            groups.append(group_numbers.setdefault(key, len(group_numbers)) if group_by else len(groups))
    return np.asarray(ids, dtype=np.int32), np.asarray(offsets, dtype=np.int64), np.asarray(groups, dtype=np.int64)


def _targets(total: int, ratios: Sequence[float]) -> list[float]:
    return [total * r for r in ratios]


def _random_assign(sizes: np.ndarray, ratios: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """Groups in a seeded random order, each to the split furthest below its share of images."""
    wanted = _targets(int(sizes.sum()), ratios)
    have = [0.0] * len(ratios)
    assigned = np.empty(len(sizes), dtype=np.int8)
    for group in rng.permutation(len(sizes)).tolist():
        deficits = [wanted[j] - have[j] for j in range(len(ratios))]
        best = max(range(len(ratios)), key=lambda j: (deficits[j], ratios[j], -j))
        assigned[group] = best
        have[best] += float(sizes[group])
    return assigned


def _stratified_assign(
    labels: np.ndarray,
    label_offsets: np.ndarray,
    sizes: np.ndarray,
    classes: int,
    ratios: Sequence[float],
    rng: np.random.Generator,
) -> np.ndarray:
    """Iterative stratification over groups; ``labels``/``label_offsets`` give per group ``(class, images)`` pairs."""
    count = len(sizes)
    splits = len(ratios)
    group_classes = labels[:, 0]
    group_images = labels[:, 1]
    per_class = np.bincount(group_classes, weights=group_images, minlength=classes)
    want_class = [[float(per_class[c]) * r for c in range(classes)] for r in ratios]
    want_images = [float(sizes.sum()) * r for r in ratios]
    have_class = [[0] * classes for _ in ratios]
    covered = [r >= COVERED_RATIO - _TOLERANCE for r in ratios]
    # The groups of each class, in one seeded order (a group appears under each of its classes).
    rank = np.empty(count, dtype=np.int64)
    rank[rng.permutation(count)] = np.arange(count)
    owner = np.repeat(np.arange(count), np.diff(label_offsets))
    order = np.lexsort((rank[owner], group_classes))
    members = owner[order]
    starts = np.searchsorted(group_classes[order], np.arange(classes + 1))
    remaining = np.bincount(group_classes, minlength=classes).astype(np.int64)  # groups left per class
    assigned = np.full(count, -1, dtype=np.int8)
    tie = rng.random(splits).tolist()  # a fixed, seeded preference among otherwise equal splits
    offsets = label_offsets.tolist()
    pairs_class = group_classes.tolist()
    pairs_images = group_images.tolist()

    def give(group: int, target: int) -> None:
        assigned[group] = target
        want_images[target] -= float(sizes[group])
        for position in range(offsets[group], offsets[group + 1]):
            cls, number = pairs_class[position], pairs_images[position]
            want_class[target][cls] -= number
            have_class[target][cls] += number
            remaining[cls] -= 1

    open_classes = remaining > 0
    while open_classes.any():
        candidates = np.flatnonzero(open_classes)
        chosen = int(candidates[np.argmin(remaining[candidates])])
        for group in members[starts[chosen] : starts[chosen + 1]].tolist():
            if assigned[group] >= 0:
                continue
            empty = [j for j in range(splits) if covered[j] and have_class[j][chosen] == 0]
            pool = empty or range(splits)
            target = max(pool, key=lambda j: (want_class[j][chosen], want_images[j], tie[j]))
            give(group, target)
        open_classes = remaining > 0
    for group in rng.permutation(count).tolist():  # images without any class: by images wanted
        if assigned[group] < 0:
            give(group, max(range(splits), key=lambda j: (want_images[j], tie[j])))
    # A rarer class's images are placed before this class is looked at, so it can still miss a split: move
    # one of its groups there from the split holding the most, where that leaves every class it has.
    needed = [c for c in range(classes) if per_class[c] >= MIN_CLASS_IMAGES]

    def movable(group: int, donor: int) -> bool:
        for position in range(offsets[group], offsets[group + 1]):
            cls, number = pairs_class[position], pairs_images[position]
            if covered[donor] and per_class[cls] >= MIN_CLASS_IMAGES and have_class[donor][cls] - number < 1:
                return False
        return True

    for chosen in needed:
        holders = members[starts[chosen] : starts[chosen + 1]].tolist()
        for target in (j for j in range(splits) if covered[j] and have_class[j][chosen] == 0):
            donors = sorted((d for d in range(splits) if d != target), key=lambda d: -have_class[d][chosen])
            moved = next(((g, d) for d in donors for g in holders if assigned[g] == d and movable(g, d)), None)
            if moved is None:
                continue
            group, donor = moved
            for position in range(offsets[group], offsets[group + 1]):
                cls, number = pairs_class[position], pairs_images[position]
                have_class[donor][cls] -= number
                have_class[target][cls] += number
            assigned[group] = target
    return assigned


def _group_labels(
    ids: np.ndarray, offsets: np.ndarray, groups: np.ndarray, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per group, its ``(class, number of its images with that class)`` pairs (CSR, sorted by group then class)."""
    owner = np.repeat(groups, np.diff(offsets))
    if len(ids) == 0:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(count + 1, dtype=np.int64)
    pairs, numbers = np.unique(np.stack([owner, ids.astype(np.int64)], axis=1), axis=0, return_counts=True)
    group_offsets = np.searchsorted(pairs[:, 0], np.arange(count + 1))
    return np.stack([pairs[:, 1], numbers], axis=1), group_offsets


def split(
    dataset: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    ratios: str | Mapping[str, float],
    stratify: bool = False,
    group_by: str | None = None,
    seed: int = 0,
    from_split: str | Sequence[str] | None = None,
    name: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> OpResult:
    """Write ``dataset`` cut into the splits of ``ratios`` (see the module docstring); every image in exactly one.

    ``from_split`` takes the images of these splits only (default: every split, in manifest order).
    The same input, ratios, options and ``seed`` give the same bytes.
    """
    wanted = parse_ratios(ratios)
    if (
        group_by is not None
        and group_by != "folder"
        and not (group_by.startswith("attribute:") and len(group_by) > len("attribute:"))
    ):
        raise UsageError(f"--group-by must be folder or attribute:NAME, not {group_by!r}")
    source = open_input(dataset, progress)
    manifest = source.manifest
    chosen = [from_split] if isinstance(from_split, str) else list(from_split or manifest.splits)
    missing = [s for s in chosen if s not in manifest.splits]
    if missing:
        raise UsageError(f"--from names splits the dataset does not have: {', '.join(missing)}", file=source.root)
    ids, offsets, groups = _scan(source, chosen, group_by)
    images = len(offsets) - 1
    group_count = int(groups.max()) + 1 if images else 0
    sizes = np.bincount(groups, minlength=group_count).astype(np.int64)
    names = list(wanted)
    shares = [wanted[n] for n in names]
    rng = np.random.default_rng(seed)
    if stratify:
        pairs, group_offsets = _group_labels(ids, offsets, groups, group_count)
        per_group = _stratified_assign(pairs, group_offsets, sizes, len(manifest.categories), shares, rng)
    else:
        per_group = _random_assign(sizes, shares, rng)
    assigned = per_group[groups] if images else np.zeros(0, dtype=np.int8)
    per_split = np.bincount(assigned, minlength=len(names)) if images else np.zeros(len(names), dtype=np.int64)
    empty = [f"{n} (ratio {wanted[n]:g})" for n, c in zip(names, per_split.tolist(), strict=True) if c == 0]
    if empty:
        unit = f"{group_count} groups" if group_by else f"{images} images"
        raise InvalidDataError(
            f"split {', '.join(empty)} would get no image: the input has {unit}; use fewer splits or larger ratios",
            file=source.root,
        )
    out_path = Path(os.path.abspath(out))
    with output_dataset(out_path, force=force, inputs=[source.root]) as writer:
        for category, given in category_fields(manifest).items():
            writer.category(category, **given)
        lists = {n: (writer.directory / f"{n}.txt").open("w", encoding="utf-8", newline="\n") for n in names}
        try:
            for n in names:
                writer.declare_split(n)
            position = 0
            used_ids: dict[str, set[Any]] = {n: set() for n in names}
            targets = assigned.tolist()
            for split_name in chosen:
                for record in source.records(split_name):
                    target = names[targets[position]]
                    position += 1
                    if record.get("mask"):
                        copy_mask(source, writer, record["mask"])
                    if len(chosen) > 1:  # ids are unique per split: pooled splits may reuse one
                        unique_id(record, used_ids[target])
                    writer.add(target, record)
                    lists[target].write(record["image"] + "\n")
        finally:
            for stream in lists.values():
                stream.close()
        options: dict[str, Any] = {
            "strategy": "stratified" if stratify else "random",
            "seed": seed,
            "ratios": wanted,
            "from": chosen,
        }
        if group_by is not None:
            options["group_by"] = group_by
        result = Manifest(
            name=name or manifest.name,
            categories=writer.categories,
            splits={n: f"{n}.jsonl" for n in names},
            image_root=image_root_from(source, out_path),
            mask_kind=manifest.mask_kind,
            source=provenance("split", input_files([source], out_path), options),
            attributes=manifest.attributes,
        )
        return finish(writer, result, out_path, "split")
