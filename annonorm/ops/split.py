"""``split``: cut a dataset into new splits by ratio: seeded, byte-for-byte reproducible, optionally stratified.

Two passes over the input, each over byte ranges in parallel (:mod:`annonorm.ops.passes`): the first
keeps, per image, only what the assignment needs (its class ids as one numpy array of ids and one of
offsets, with ``stratify``; its group, with ``group_by``; nothing but the count otherwise), decoding
only those fields; the assignment is computed on those arrays; the second copies each record's line
as it is into its split, in input order (a pooled record whose id its split already has is the one
line encoded again), and writes ``OUT/<split>.txt`` (the split's image paths as the records hold them)
beside each JSONL.

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

import dataclasses
import math
import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from msgspec import UNSET, UnsetType

from annonorm.engine import Execution, Executor
from annonorm.errors import AnnonormError, InvalidDataError, UsageError
from annonorm.io import UNDECODABLE
from annonorm.ops.common import (
    OpResult,
    Progress,
    category_fields,
    copy_mask,
    finish,
    id_key,
    image_root_from,
    input_files,
    move_id,
    open_input,
    output_dataset,
    provenance,
)
from annonorm.ops.passes import Range, cut, decode_record, executor_for, lines, run_pass, where
from annonorm.records import box_counts, label_list, merge_count_list, present_labels
from annonorm.schemas.manifest import Manifest
from annonorm.sink import encode_record

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


def _group_key(record: dict[str, Any], group_by: str | None) -> Any:
    if group_by is None:
        return None
    if group_by == "folder":
        return posixpath.dirname(record["image"])
    attribute = group_by.removeprefix("attribute:")
    value = (record.get("attributes") or {}).get(attribute)
    if value is None:
        raise InvalidDataError(
            f"image {record['image']} has no attribute {attribute!r}; --group-by {group_by} needs it on every record"
        )
    return repr(value)  # hashable, and 1 and "1" stay different groups


class _NameOnly(msgspec.Struct, gc=False):
    name: str


class _Scanned(msgspec.Struct, gc=False):
    """What the scan reads of a record (the rest of the line is skipped by the decoder)."""

    image: str
    labels: list[str] | str | UnsetType = UNSET
    counts: dict[str, Any] | list[Any] | UnsetType = UNSET
    boxes: list[_NameOnly] = []
    id: Any = None
    attributes: dict[str, Any] | None = None


_SCAN_DECODER = msgspec.json.Decoder(_Scanned)


@dataclass(frozen=True)
class _ScanJob:
    """One byte range to scan and what to keep of it (sent to a worker process)."""

    piece: Range
    categories: list[str]
    classes: bool  # keep each image's class ids (stratify)
    group_by: str | None
    ids: bool  # keep each record's id (pooled splits)


@dataclass
class _ScanResult:
    records: int
    class_ids: np.ndarray  # CSR with offsets, local to the range
    offsets: np.ndarray
    group_keys: list[Any]  # the range's groups in first-seen order
    groups: np.ndarray  # per record, its index in group_keys
    ids: list[Any]


def _names_of(line: bytes) -> tuple[set[str], dict[str, Any]]:
    """The classes present in a record (its labels, else derived, and its boxes' classes) and a dict of the rest."""
    try:
        scanned = _SCAN_DECODER.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError, *UNDECODABLE):
        record = decode_record(line)  # an unusual line: the reader's own answer (or its error)
        names = set(record["labels"])
        names.update(box["name"] for box in record["boxes"])
        return names, record
    labels = scanned.labels
    if type(labels) is list:  # the common case, first
        names = set(labels)
        for box in scanned.boxes:
            names.add(box.name)
        return names, {"image": scanned.image, "id": scanned.id, "attributes": scanned.attributes}
    boxed = [box.name for box in scanned.boxes]
    if isinstance(scanned.labels, UnsetType):
        counts = merge_count_list(scanned.counts) if not isinstance(scanned.counts, UnsetType) else {}
        if isinstance(scanned.counts, UnsetType) and boxed:
            counts = box_counts(boxed)
        names = set(present_labels(boxed, counts))
    else:
        names = set(label_list(scanned.labels))
    names.update(boxed)
    return names, {"image": scanned.image, "id": scanned.id, "attributes": scanned.attributes}


def _scan_range(job: _ScanJob) -> _ScanResult:
    """Per record of one byte range: its class ids, its group, its id (as the job asks)."""
    index = {name: i for i, name in enumerate(job.categories)}
    class_ids: list[int] = []
    offsets = [0]
    group_numbers: dict[Any, int] = {}
    groups: list[int] = []
    ids: list[Any] = []
    records = 0
    decode = job.classes or job.group_by is not None or job.ids
    for number, line in lines(job.piece):
        records += 1
        if not decode:
            continue
        try:
            names, record = _names_of(line)
            if job.classes:
                try:
                    class_ids.extend(sorted([index[name] for name in names]))
                except KeyError as exc:
                    raise InvalidDataError(
                        f"class {exc.args[0]!r} is not a category of the manifest; run annonorm validate"
                    ) from None
                offsets.append(len(class_ids))
            if job.group_by is not None:
                key = _group_key(record, job.group_by)
                groups.append(group_numbers.setdefault(key, len(group_numbers)))
            if job.ids:
                ids.append(record.get("id"))
        except AnnonormError as exc:
            raise where(exc, job.piece.path, job.piece.start, number) from None
    return _ScanResult(
        records,
        np.asarray(class_ids, dtype=np.int32),
        np.asarray(offsets, dtype=np.int64),
        list(group_numbers),
        np.asarray(groups, dtype=np.int64),
        ids,
    )


def _scan(
    ranges: list[Range], jobs: list[_ScanJob], executor: Executor, processes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Any], list[Range]]:
    """Per image (in input order): its class ids (CSR: ids, offsets), its group number, its id; and the
    ranges with the position of their first record."""
    results = [
        r
        for _, r in executor.map(
            _scan_range, ((i, job) for i, job in enumerate(jobs)), processes=processes, window=len(jobs)
        )
    ]
    by_key: dict[Any, int] = {}
    class_ids: list[np.ndarray] = []
    offsets: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
    groups: list[np.ndarray] = []
    ids: list[Any] = []
    placed: list[Range] = []
    first = 0
    for piece, result in zip(ranges, results, strict=True):
        assert result is not None
        placed.append(dataclasses.replace(piece, first=first))
        base = sum(len(c) for c in class_ids)
        class_ids.append(result.class_ids)
        offsets.append(result.offsets[1:] + base)
        if jobs[0].group_by is not None:
            numbers = np.asarray([by_key.setdefault(key, len(by_key)) for key in result.group_keys], dtype=np.int64)
            groups.append(numbers[result.groups] if len(result.groups) else result.groups)
        else:
            groups.append(np.arange(first, first + result.records, dtype=np.int64))
        ids.extend(result.ids)
        first += result.records
    return (
        np.concatenate(class_ids) if class_ids else np.zeros(0, dtype=np.int32),
        np.concatenate(offsets),
        np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64),
        ids,
        placed,
    )


def _moved_ids(record_ids: list[Any], assigned: np.ndarray, splits: int) -> set[int]:
    """The positions of records whose id an earlier record of the same output split already has."""
    used: list[set[Any]] = [set() for _ in range(splits)]
    moved: set[int] = set()
    for position, (identifier, target) in enumerate(zip(record_ids, assigned.tolist(), strict=True)):
        if identifier is None:
            continue
        key = id_key(identifier)
        if key in used[target]:
            moved.add(position)
        else:
            used[target].add(key)
    return moved


class _ImageOnly(msgspec.Struct, gc=False):
    image: str


_IMAGE_DECODER = msgspec.json.Decoder(_ImageOnly)


def _image_line(line: bytes) -> bytes:
    """A ``<split>.txt`` line: the record's image path as the record holds it."""
    return _IMAGE_DECODER.decode(line).image.encode("utf-8") + b"\n"


def _targets(total: int, ratios: Sequence[float]) -> list[float]:
    return [total * r for r in ratios]


def _random_assign(sizes: np.ndarray, ratios: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """Groups in a seeded random order, each to the split furthest below its share of images."""
    wanted = _targets(int(sizes.sum()), ratios)
    order = rng.permutation(len(sizes))
    assigned = np.empty(len(sizes), dtype=np.int8)
    if len(sizes) and int(sizes.max()) == 1:
        assigned[order] = _unit_sequence(wanted, ratios, len(sizes))
        return assigned
    have = [0.0] * len(ratios)
    for group in order.tolist():
        deficits = [wanted[j] - have[j] for j in range(len(ratios))]
        best = max(range(len(ratios)), key=lambda j: (deficits[j], ratios[j], -j))
        assigned[group] = best
        have[best] += float(sizes[group])
    return assigned


def _unit_sequence(wanted: Sequence[float], ratios: Sequence[float], count: int) -> np.ndarray:
    """The splits the greedy rule of :func:`_random_assign` picks for ``count`` groups of one image each.

    Each pick takes the largest deficit ``wanted[j] - have[j]`` (ties: the larger ratio, then the first
    split) and lowers it by one, so the picks are all the candidate deficits ``wanted[j] - t`` (t = 0,
    1, ...) merged in that order: one sort instead of a loop. A split is picked only while its deficit
    is >= 0 (the deficits sum to >= 0 until the end), so ``t`` stays below ``wanted[j] + 2``.
    """
    splits = []
    deficits = []
    for j, want in enumerate(wanted):
        picks = np.arange(min(count, math.floor(want) + 2), dtype=np.float64)
        deficits.append(want - picks)
        splits.append(np.full(len(picks), j, dtype=np.int8))
    deficit = np.concatenate(deficits)
    split_of = np.concatenate(splits)
    ratio = np.asarray(ratios, dtype=np.float64)[split_of]
    order = np.lexsort((split_of, -ratio, -deficit))  # the last key sorts first
    return split_of[order[:count]]


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
    remaining = np.bincount(group_classes, minlength=classes).tolist()  # groups left per class
    placed = [-1] * count  # per group its split (a list: this loop runs once per group)
    tie = rng.random(splits).tolist()  # a fixed, seeded preference among otherwise equal splits
    offsets = label_offsets.tolist()
    pairs_class = group_classes.tolist()
    pairs_images = group_images.tolist()
    group_sizes = sizes.tolist()
    covering = [j for j in range(splits) if covered[j]]
    every = list(range(splits))

    def give(group: int, target: int) -> None:
        placed[group] = target
        want_images[target] -= float(group_sizes[group])
        wants, haves = want_class[target], have_class[target]
        for position in range(offsets[group], offsets[group + 1]):
            cls, number = pairs_class[position], pairs_images[position]
            wants[cls] -= number
            haves[cls] += number
            remaining[cls] -= 1

    while any(left > 0 for left in remaining):
        chosen = min((left, cls) for cls, left in enumerate(remaining) if left > 0)[1]
        # The covered splits still without this class: a split leaves it once given one of its groups.
        missing = [j for j in covering if have_class[j][chosen] == 0]
        wants = [want_class[j] for j in range(splits)]
        for group in members[starts[chosen] : starts[chosen + 1]].tolist():
            if placed[group] >= 0:
                continue
            target = -1
            best: tuple[float, float, float] = (0.0, 0.0, 0.0)
            for j in missing or every:  # the first best, as max() picks it
                key = (wants[j][chosen], want_images[j], tie[j])
                if target < 0 or key > best:
                    target, best = j, key
            give(group, target)
            if missing and target in missing:
                missing.remove(target)
    for group in rng.permutation(count).tolist():  # images without any class: by images wanted
        if placed[group] < 0:
            give(group, max(every, key=lambda j: (want_images[j], tie[j])))
    assigned = np.asarray(placed, dtype=np.int8)
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
    if len(groups) == count and np.array_equal(groups, np.arange(count)):
        # One image per group (no group_by): its classes, already sorted and distinct, each counted once.
        return np.stack([ids.astype(np.int64), np.ones(len(ids), dtype=np.int64)], axis=1), offsets
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
    execution: Execution | None = None,
) -> OpResult:
    """Write ``dataset`` cut into the splits of ``ratios`` (see the module docstring); every image in exactly one.

    ``from_split`` takes the images of these splits only (default: every split, in manifest order).
    The same input, ratios, options and ``seed`` give the same bytes, whatever ``execution``
    (how many processes read the input) is.
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
    executor, processes = executor_for(execution, [source], chosen)
    ranges = cut(source, chosen, executor, processes)
    pooled = len(chosen) > 1  # ids are unique per split: pooled splits may reuse one
    jobs = [_ScanJob(piece, manifest.category_names, stratify, group_by, pooled) for piece in ranges]
    ids, offsets, groups, record_ids, ranges = _scan(ranges, jobs, executor, processes)
    images = len(groups)
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
    moved = _moved_ids(record_ids, assigned, len(names)) if pooled else set()
    out_path = Path(os.path.abspath(out))
    with output_dataset(out_path, force=force, inputs=[source.root]) as writer:
        for category, given in category_fields(manifest).items():
            writer.category(category, **given)

        target_of = [names[index] for index in assigned.tolist()]

        def route(_: str, line: bytes, position: int) -> tuple[str, bytes, bool]:
            target = target_of[position]
            if position in moved or b'"mask"' in line or b"\\" in line:  # else the line is copied as it is
                record = decode_record(line)
                if record.get("mask"):
                    copy_mask(source, writer, record["mask"])
                if position in moved:
                    move_id(record)
                    return target, encode_record(record), bool(record.get("mask"))
                return target, line, bool(record.get("mask"))
            return target, line, False

        run_pass(
            writer, ranges, route, names, executor=executor, processes=processes, progress=progress, listing=_image_line
        )
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
