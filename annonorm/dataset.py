"""The loader: a split of a normalized dataset as a map-style dataset of ``(image, target)``.

``target`` follows torchvision's detection convention (``boxes`` float32 ``(N, 4)`` xyxy in
pixels, ``labels`` int64 category ``id`` s, ``image_id``, ``area``, ``iscrowd``) plus the
record's ``counts`` and ``names`` (its classes present); with ``masks=True`` it also carries the
instance masks ``(N, H, W)`` uint8 (``masks``) or the semantic mask ``(H, W)`` uint8 (``mask``).
Without torch the values are numpy arrays and the image a PIL image; :mod:`annonorm.torch` turns
them into tensors (and torchvision ``tv_tensors``) and provides the detection collate function.

Per-record metadata lives in the split's index (:mod:`annonorm.index`: a few numpy arrays, cached
by content in the user's cache directory, checked on every open); opening never writes into the
dataset (unless asked to: ``cache="local"``). A dataset as of a git/DVC revision is opened by
``annonorm.open(path, rev=..., repo=...)`` (:func:`annonorm.api.open_at_revision`), which
materializes it and returns this class over it.

Safety. The manifest and split files must be regular files (FIFOs, devices, sockets and
directories, named directly or through a symlink, are refused before reading:
:class:`~annonorm.errors.ParseError`, "not a regular file"). Image paths resolve against
``image_root`` and must stay inside it: an absolute path, a ``..`` or a symlink inside the root
whose target leaves it raises :class:`~annonorm.errors.UnsafePathError` (with ``load_images=False``
too, for the path returned), unless ``allow_outside_root=True``; symlinks that stay inside the root
are followed. Mask paths must stay inside the dataset directory whatever that option says. Image
and mask files are opened only when they are regular files; a missing, unreadable or undecodable
file and a symlink loop raise an error naming the record.
"""

from __future__ import annotations

import copy
import errno
import functools
import gc
import itertools
import operator
import os
import stat
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
from PIL import Image

from annonorm.errors import InvalidDataError, MissingDependency, ParseError, UnsafePathError, UsageError
from annonorm.fsutil import open_regular, require_regular_file
from annonorm.index import open_index
from annonorm.io import fingerprint as _fingerprint
from annonorm.io import manifest_path, read_manifest
from annonorm.paths import is_inside, lexically_inside, resolve_below
from annonorm.schemas.manifest import Manifest

__all__ = ["LOCAL_CACHE_DIR", "NormalizedDataset", "SkippedRecordWarning", "choose_split"]

#: Where ``cache="local"`` keeps the index: this directory beside the split files.
LOCAL_CACHE_DIR = ".annonorm-cache"
#: At most this many resolved image folders are remembered per dataset (then forgotten at once).
_FOLDERS_KEPT = 65536


class SkippedRecordWarning(UserWarning):
    """A record whose image or mask could not be loaded was skipped (``on_missing="skip"``)."""


def _manifest_file(path: Path) -> Path:
    """The manifest of a dataset given as its directory or its manifest, refused unless a regular file."""
    try:
        mode: int | None = os.stat(path).st_mode
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISDIR(mode):
        return require_regular_file(path, "manifest")
    manifest = manifest_path(path)
    if os.path.lexists(manifest):  # a missing manifest is read_manifest's to word
        require_regular_file(manifest, "manifest")
    return manifest


def choose_split(splits: Sequence[str], split: str | None, file: Path | None = None) -> str:
    """The split to open: the one named, else the only one, else ``train``; else a :class:`UsageError`."""
    if split is not None:
        if split not in splits:
            raise UsageError(f"no split {split!r}; this dataset has {', '.join(map(repr, splits))}", file=file)
        return split
    if len(splits) == 1:
        return splits[0]
    if "train" in splits:
        return "train"
    raise UsageError(f"dataset has splits {', '.join(splits)}; name one with split=...", file=file)


def _ranges(offsets: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each record's rows start in the gathered rows (one more at the end), and the rows themselves.

    ``offsets`` are a per-record offset table (record ``p`` owns rows ``offsets[p]:offsets[p + 1]``).
    """
    starts = offsets[positions].astype(np.int64)
    lengths = offsets[positions + 1].astype(np.int64) - starts
    cuts = np.zeros(len(positions) + 1, dtype=np.int64)
    np.cumsum(lengths, out=cuts[1:])
    rows = np.arange(int(cuts[-1]), dtype=np.int64) + np.repeat(starts - cuts[:-1], lengths)
    return cuts, rows


class NormalizedDataset:
    """One split of a normalized dataset, map-style: ``len(ds)``, ``ds[i] -> (image, target)``, ``ds[a:b]``.

    ``split`` may be left out: the dataset's only split, else ``train`` when there is one, else a
    :class:`~annonorm.errors.UsageError` listing the splits.

    ``image`` is an RGB PIL image (or, with ``load_images=False``, the image's path as a string:
    no file is opened). ``target`` holds numpy arrays in torchvision's detection convention:

    ``boxes``
        float32 ``(N, 4)``, ``x1, y1, x2, y2`` in pixels.
    ``labels``
        int64 ``(N,)``, the category ``id`` of each box (``ds.categories[id]`` is its name).
    ``image_id``
        int: the record's ``id`` when it is an integer, else the record's position in the split.
    ``area``
        float32 ``(N,)``: the box attribute ``area`` when present (COCO's segment area), else the box's area.
    ``iscrowd``
        int64 ``(N,)``: the box attribute ``iscrowd`` as 0/1, 0 when absent.
    ``counts``
        dict class name -> count, as in the record.
    ``names``
        list of the classes present in the image (the record's ``labels``).
    ``masks`` (``masks=True``, instance masks)
        uint8 ``(N, H, W)``, one 0/1 plane per box; void pixels (255 / 65535 in the file) belong to none.
        A record without a mask file gets all-zero planes.
    ``mask`` (``masks=True``, semantic masks)
        uint8 ``(H, W)``: category id + 1, 0 background, 255 void; all 255 for a record without a mask file.
        A 16-bit file with a value beyond 255 is an :class:`~annonorm.errors.InvalidDataError`, never wrapped.

    Options: ``image_root`` overrides the manifest's; ``transforms(image, target) -> (image, target)``
    runs last; ``to_tensor=True`` (needs torch) converts image and target with
    :func:`annonorm.torch.to_tensors` first (torchvision ``tv_tensors`` when torchvision is installed,
    so ``transforms.v2`` moves boxes and masks with the image); ``allow_outside_root`` lets image
    paths leave ``image_root`` (``..``, absolute paths, symlinks pointing out); ``on_missing="skip"``
    turns a missing, unreadable, corrupt or wrongly sized image or mask into a
    :class:`SkippedRecordWarning` and returns the next loadable record instead (wrapping around),
    ``"raise"`` (default) raises :class:`~annonorm.errors.ParseError` /
    :class:`~annonorm.errors.InvalidDataError` naming the record; ``cache`` says where the index may
    be cached: ``True`` the user's cache directory (see :func:`annonorm.index.cache_root`), a path that
    directory, ``"local"`` the old place beside the split files (``.annonorm-cache/``, inside the
    dataset), ``False`` nowhere. A dataset as of a git/DVC revision opens with
    ``annonorm.open(path, split, rev=..., repo=...)`` (``annonorm[dvc]``), not here.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        split: str | None = None,
        *,
        image_root: str | os.PathLike[str] | None = None,
        transforms: Callable[[Any, dict[str, Any]], tuple[Any, dict[str, Any]]] | None = None,
        load_images: bool = True,
        masks: bool = False,
        allow_outside_root: bool = False,
        on_missing: Literal["raise", "skip"] = "raise",
        to_tensor: bool = False,
        cache: bool | str | os.PathLike[str] = True,
        rev: None = None,
        repo: None = None,
        remote: None = None,
    ) -> None:
        if rev is not None or repo is not None or remote is not None:  # the v0.1 keywords, moved to annonorm.open
            raise UsageError(
                "NormalizedDataset opens a local directory; open a git/DVC revision with "
                "annonorm.open(path, split, rev=..., repo=...)"
            )
        self._process = os.getpid()  # see __getitem__: a DataLoader worker is another process
        manifest_file = _manifest_file(Path(path))
        manifest = read_manifest(manifest_file)
        self.manifest: Manifest = manifest
        self.root = Path(os.path.abspath(manifest_file.parent))
        split = choose_split(list(manifest.splits), split, manifest_file)
        if on_missing not in ("raise", "skip"):
            raise UsageError(f"on_missing must be 'raise' or 'skip', not {on_missing!r}")
        self.split = split
        self.split_path = self.root / manifest.splits[split]
        chosen_root = Path(image_root) if image_root is not None else self.root / manifest.image_root
        self.image_root = Path(os.path.abspath(chosen_root))
        self.categories: tuple[str, ...] = tuple(manifest.category_names)
        self.transforms = transforms
        self.load_images = load_images
        self.masks = masks
        self.allow_outside_root = allow_outside_root
        self.on_missing = on_missing
        self.to_tensor = to_tensor
        self._converter: Callable[..., tuple[Any, dict[str, Any]]] | None = None
        if to_tensor:
            try:
                from annonorm.torch import to_tensors
            except MissingDependency:
                raise MissingDependency("torch", "torch", "to_tensor=True") from None
            self._converter = to_tensors
        if cache == "local":  # the old place, inside the dataset (a DVC-tracked dataset then shows it)
            cache = self.split_path.parent / LOCAL_CACHE_DIR
        keypoint_counts = manifest.keypoint_counts
        self._index, self.index_source = open_index(self.split_path, self.categories, cache, keypoint_counts)
        ix = self._index
        #: Keypoints per box in targets (the most any category names; 0: no ``keypoints`` key).
        self._keypoint_k = max(keypoint_counts.values(), default=0)
        self._scores = len(ix.box_score) > 0
        self._vector_masks = len(ix.box_rings) > 0 or len(ix.rle_offsets) > 0
        if masks and manifest.mask_kind is None and not self._vector_masks:
            raise UsageError(
                "masks=True but the dataset has no masks (its manifest sets no mask_kind and no box has a "
                "polygon or rle)",
                file=manifest_file,
            )
        # Image folder (relative) -> its symlink-resolved path: each folder is resolved once per process.
        self._folders: dict[tuple[str, str], str] = {}
        self._positions: np.ndarray | None = None
        self._root_str = str(self.image_root)
        self._real_image_root = os.path.realpath(self.image_root)
        self._real_root = os.path.realpath(self.root)

    @classmethod
    def open(cls, path: str | os.PathLike[str], split: str | None = None, **options: Any) -> NormalizedDataset:
        """Open a split (the same as the constructor); ``annonorm.open`` also opens a git/DVC revision."""
        return cls(path, split, **options)

    # ------------------------------------------------------------------ sequence protocol

    def __len__(self) -> int:
        return len(self._index) if self._positions is None else len(self._positions)

    def __repr__(self) -> str:
        return (
            f"NormalizedDataset({str(self.root)!r}, split={self.split!r}, records={len(self)}, "
            f"categories={len(self.categories)}, index={self.index_source})"
        )

    def _record_position(self, index: int) -> int:
        position = operator.index(index)
        size = len(self)
        if position < 0:
            position += size
        if not 0 <= position < size:
            raise IndexError(f"index {index} is out of range for a dataset of {size} records")
        return position if self._positions is None else int(self._positions[position])

    def __getitem__(self, index: int | slice) -> Any:
        if self._process != os.getpid():
            self._entered_worker()
        if isinstance(index, slice):
            return self.subset(range(len(self))[index])
        position = self._record_position(index)
        if self.on_missing == "skip":
            image, target = self._load_skipping(operator.index(index) % len(self))
        else:
            image, target = self._load(position)
        if self._converter is not None:
            image, target = self._converter(image, target, canvas_size=self._canvas(position, image))
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[Any, dict[str, Any]]]:
        """The samples at ``indices``, as ``[ds[i] for i in indices]``: what a DataLoader fetches per batch.

        torch's map-style fetcher calls this (when a dataset has it) with a batch's indices. The
        targets are gathered for the whole batch at once: each field of the batch is one fresh array
        (one gather over the index), and each target's arrays are views of it, which
        :func:`annonorm.torch.collate_fn` packs into one tensor per field. With ``transforms``,
        ``to_tensor`` or ``on_missing="skip"`` the samples are loaded one by one.
        """
        if self._process != os.getpid():
            self._entered_worker()
        if self.transforms is not None or self._converter is not None or self.on_missing == "skip":
            return [self[index] for index in indices]
        positions = [self._record_position(index) for index in indices]
        return [
            self._load(position, target) for position, target in zip(positions, self._targets(positions), strict=True)
        ]

    def _entered_worker(self) -> None:
        """First item in a new process (a forked DataLoader worker): freeze what it inherited.

        Every object the parent had (torch's own, the user's) is shared copy-on-write with the
        worker until something writes to it, and the cyclic garbage collector writes to every object
        it walks. A collate function that makes many tensors triggers full collections, so a worker
        would slowly copy the parent's whole heap. ``gc.freeze()`` moves the inherited objects out of
        the collector's reach (in O(1)); they are still freed by reference counting.
        """
        gc.freeze()
        self._process = os.getpid()

    def _load_skipping(self, start: int) -> tuple[Any, dict[str, Any]]:
        size = len(self)
        for step in range(size):
            position = self._record_position((start + step) % size)
            try:
                return self._load(position)
            except UnsafePathError:
                raise
            except (ParseError, InvalidDataError) as exc:
                warnings.warn(f"{exc}; skipping this record", SkippedRecordWarning, stacklevel=3)
        raise ParseError("no record of this split has a loadable image", file=self.split_path)

    def subset(self, indices: Iterable[int] | np.ndarray) -> NormalizedDataset:
        """A dataset of the given records (positions in this dataset), sharing this one's index."""
        wanted = np.asarray(indices if isinstance(indices, np.ndarray | range) else list(indices), dtype=np.int64)
        if wanted.ndim != 1:
            raise UsageError(f"subset indices must be one-dimensional, got shape {wanted.shape}")
        size = len(self)
        if wanted.size and (int(wanted.min()) < -size or int(wanted.max()) >= size):
            raise IndexError(f"subset indices must lie in -{size}..{size - 1}")
        wanted = np.where(wanted < 0, wanted + size, wanted)
        chosen = copy.copy(self)
        chosen._positions = wanted if self._positions is None else self._positions[wanted]
        return chosen

    # ------------------------------------------------------------------ metadata

    def record_line(self, index: int) -> int:
        """The line of the split file that holds record ``index``."""
        return int(self._index.lines[self._record_position(index)])

    def _image_relative(self, position: int) -> str:
        ix = self._index
        start, end = ix.image_offsets[position : position + 2].tolist()
        return ix.image_bytes[start:end].tobytes().decode("utf-8")

    def _mask_relative(self, position: int) -> str | None:
        ix = self._index
        start, end = ix.mask_offsets[position : position + 2].tolist()
        if start == end:
            return None
        return ix.mask_bytes[start:end].tobytes().decode("utf-8")

    def _where(self, position: int) -> str:
        return f"line {int(self._index.lines[position])}"

    def target(self, index: int) -> dict[str, Any]:
        """The target of record ``index`` alone (no image or mask is read)."""
        return self._target(self._record_position(index))

    def _target(self, position: int) -> dict[str, Any]:
        ix = self._index
        start, end = ix.box_offsets[position : position + 2].tolist()
        names = self.categories
        counts_start, counts_end = ix.count_offsets[position : position + 2].tolist()
        labels_start, labels_end = ix.label_offsets[position : position + 2].tolist()
        image_id = ix.image_ids[position]
        target: dict[str, Any] = {
            "boxes": ix.boxes[start:end].copy(),
            "labels": ix.box_labels[start:end].astype(np.int64),
            "image_id": int(image_id),
            "area": ix.box_area[start:end].copy(),
            "iscrowd": ix.box_iscrowd[start:end].astype(np.int64),
            "counts": dict(
                zip(
                    [names[k] for k in ix.count_ids[counts_start:counts_end].tolist()],
                    ix.count_values[counts_start:counts_end].tolist(),
                    strict=True,
                )
            ),
            "names": [names[k] for k in ix.label_ids[labels_start:labels_end].tolist()],
        }
        if self._scores:
            target["scores"] = ix.box_score[start:end].copy()
        if self._keypoint_k:
            target["keypoints"] = self._keypoints(start, end)
        return target

    def _targets(self, positions: Sequence[int]) -> list[dict[str, Any]]:
        """``[self._target(p) for p in positions]``, each field gathered once for all of them."""
        ix = self._index
        where = np.asarray(positions, dtype=np.int64)
        box_starts, box_rows = _ranges(ix.box_offsets, where)
        count_starts, count_rows = _ranges(ix.count_offsets, where)
        label_starts, label_rows = _ranges(ix.label_offsets, where)
        cuts = box_starts[1:-1]
        fields: dict[str, list[np.ndarray]] = {
            "boxes": np.split(ix.boxes[box_rows], cuts),
            "labels": np.split(ix.box_labels[box_rows].astype(np.int64), cuts),
            "area": np.split(ix.box_area[box_rows], cuts),
            "iscrowd": np.split(ix.box_iscrowd[box_rows].astype(np.int64), cuts),
        }
        if self._scores:
            fields["scores"] = np.split(ix.box_score[box_rows], cuts)
        names = self.categories
        count_names = [names[k] for k in ix.count_ids[count_rows].tolist()]
        count_values = ix.count_values[count_rows].tolist()
        label_names = [names[k] for k in ix.label_ids[label_rows].tolist()]
        count_cuts, label_cuts = count_starts.tolist(), label_starts.tolist()
        image_ids = ix.image_ids[where].tolist()
        targets: list[dict[str, Any]] = []
        for item, position in enumerate(positions):
            counts_from, counts_to = count_cuts[item], count_cuts[item + 1]
            target: dict[str, Any] = {
                "boxes": fields["boxes"][item],
                "labels": fields["labels"][item],
                "image_id": int(image_ids[item]),
                "area": fields["area"][item],
                "iscrowd": fields["iscrowd"][item],
                "counts": dict(
                    zip(count_names[counts_from:counts_to], count_values[counts_from:counts_to], strict=True)
                ),
                "names": label_names[label_cuts[item] : label_cuts[item + 1]],
            }
            if self._scores:
                target["scores"] = fields["scores"][item]
            if self._keypoint_k:
                start, end = ix.box_offsets[position : position + 2].tolist()
                target["keypoints"] = self._keypoints(start, end)
            targets.append(target)
        return targets

    def _keypoints(self, start: int, end: int) -> np.ndarray:
        """``(N, K, 3)`` keypoints of boxes ``start:end``; a box without keypoints (or fewer) is padded with zeros."""
        ix = self._index
        out = np.zeros((end - start, self._keypoint_k, 3), dtype=np.float32)
        if len(ix.keypoint_offsets):
            offsets = ix.keypoint_offsets[start : end + 1]
            first, last = int(offsets[0]), int(offsets[-1])
            if last > first:
                counts = np.diff(offsets)
                rows = np.repeat(np.arange(end - start), counts)
                columns = np.arange(last - first) - np.repeat(offsets[:-1] - first, counts)
                out[rows, columns] = ix.keypoints[first:last]
        return out

    def size(self, index: int) -> tuple[int, int] | None:
        """The record's ``(width, height)``, or ``None`` when the record does not say."""
        width, height = self._index.sizes[self._record_position(index)].tolist()
        return (width, height) if width else None

    @functools.cached_property
    def fingerprint(self) -> str:
        """The content fingerprint of the whole dataset (all splits), as ``annonorm stats`` prints it.

        :func:`annonorm.io.fingerprint`: computed on first use (one read of the split files), then kept;
        record it in an experiment log to say exactly which data a model was trained on.
        """
        return _fingerprint(self.root)

    def image_path(self, index: int) -> Path:
        """The checked, symlink-resolved path of record ``index``'s image."""
        position = self._record_position(index)
        return self._checked_image_path(position, self._image_relative(position))

    # ------------------------------------------------------------------ files

    def _unsafe(self, position: int, relative: str, root: Path, what: str) -> UnsafePathError:
        return UnsafePathError(
            f"record {position}: {what} path {relative!r} resolves outside {root}; "
            "pass allow_outside_root=True to allow it"
            if what == "image"
            else f"record {position}: {what} path {relative!r} resolves outside the dataset directory {root}",
            file=self.split_path,
            location=self._where(position),
        )

    def _resolved(self, position: int, relative: str, real_root: str, root: Path, what: str) -> str:
        """The record's file below ``root``, symlinks resolved; :class:`UnsafePathError` when it leaves it."""
        if not lexically_inside(relative):
            raise self._unsafe(position, relative, root, what)
        try:
            resolved = self._resolve(real_root, relative)
        except (OSError, ValueError) as exc:
            loop = isinstance(exc, OSError) and exc.errno == errno.ELOOP
            reason = "is a symlink loop" if loop else f"cannot be resolved ({getattr(exc, 'strerror', None) or exc})"
            raise ParseError(
                f"record {position}: {what} path {relative!r} {reason}",
                file=self.split_path,
                location=self._where(position),
            ) from None
        if not is_inside(resolved, real_root):
            raise self._unsafe(position, relative, root, what)
        return resolved

    def _resolve(self, real_root: str, relative: str) -> str:
        """``resolve_below(real_root, relative)``, the folder part resolved once per dataset and process.

        Exact because resolving is compositional: the real path of ``folder/name`` is the real path
        of ``name`` inside the folder's real path. Only folders that exist are remembered (a missing
        one may appear later, as a symlink); a folder replaced by a symlink while the dataset is
        open is the same race as a file replaced between its check and its opening.
        """
        folder, _, name = relative.rpartition("/")
        if not folder:
            return resolve_below(real_root, relative)
        key = (real_root, folder)
        base = self._folders.get(key)
        if base is None:
            base = resolve_below(real_root, folder)
            if not os.path.isdir(base):  # nothing below a missing folder: the path stays as written
                return os.path.join(base, name)
            if len(self._folders) >= _FOLDERS_KEPT:
                self._folders.clear()
            self._folders[key] = base
        return resolve_below(base, name) if name else base

    def _checked_image_path(self, position: int, relative: str) -> Path:
        if self.allow_outside_root:
            return Path(self._root_str, relative)
        return Path(self._resolved(position, relative, self._real_image_root, self.image_root, "image"))

    def _open(self, position: int, path: Path, what: str) -> IO[bytes]:
        """A record's image or mask file opened for reading: a regular file, else an error naming the record."""
        try:
            return open_regular(path, f"{what} {path}")
        except ParseError as exc:
            raise ParseError(
                f"record {position}: {exc.message}", file=self.split_path, location=self._where(position)
            ) from None

    def _load(self, position: int, target: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if target is None:
            target = self._target(position)
        relative = self._image_relative(position)
        width, height = self._index.sizes[position].tolist()
        image: Any
        if self.load_images:
            image = self._read_image(position, relative, (width, height) if width else None)
            width, height = image.size
        else:
            if not self.allow_outside_root:  # the path handed out obeys the same rule
                self._resolved(position, relative, self._real_image_root, self.image_root, "image")
            image = os.path.join(self._root_str, relative)
        if self.masks:
            self._add_masks(position, target, (width, height) if width else None)
        return image, target

    def _decoding_error(self, position: int, what: str, path: Path, exc: Exception) -> ParseError:
        return ParseError(
            f"record {position}: {what} {path} cannot be decoded ({exc})",
            file=self.split_path,
            location=self._where(position),
        )

    def _read_image(self, position: int, relative: str, expected: tuple[int, int] | None) -> Image.Image:
        path = self._checked_image_path(position, relative)
        with self._open(position, path, "image") as stream:
            try:
                with Image.open(stream) as opened:
                    image = opened.convert("RGB")  # decodes now, so truncated files fail here
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
                raise self._decoding_error(position, "image", path, exc) from None
        if expected is not None and image.size != expected:
            raise InvalidDataError(
                f"record {position}: image {path} is {image.size[0]}x{image.size[1]} "
                f"but the record says {expected[0]}x{expected[1]}",
                file=self.split_path,
                location=self._where(position),
            )
        return image

    def _add_masks(self, position: int, target: dict[str, Any], size: tuple[int, int] | None) -> None:
        if self.manifest.mask_kind is not None:
            self._add_file_masks(position, target, size)
        if self._vector_masks:
            self._add_vector_masks(position, target, size)

    def _add_vector_masks(self, position: int, target: dict[str, Any], size: tuple[int, int] | None) -> None:
        """Instance planes rasterized from the boxes' ``polygon`` (first) or ``rle``, as pycocotools does.

        A box with neither keeps its plane from the mask file, else an empty plane.
        """
        ix = self._index
        start, end = ix.box_offsets[position : position + 2].tolist()
        rings = ix.box_rings[start : end + 1] if len(ix.box_rings) else None
        runs = ix.rle_offsets[start : end + 1] if len(ix.rle_offsets) else None
        has_polygon = rings is not None and rings[-1] > rings[0]
        has_rle = runs is not None and runs[-1] > runs[0]
        if size is None and runs is not None and has_rle and not has_polygon:
            height, width = ix.rle_sizes[start + int(np.argmax(np.diff(runs) > 0))].tolist()
            size = (width, height)
        if size is None:
            if has_polygon:
                raise InvalidDataError(
                    f"record {position}: the record gives no width and height, which its polygons are "
                    "rasterized to; add them to the record or load the image (load_images=True)",
                    file=self.split_path,
                    location=self._where(position),
                )
            size = (0, 0)
        width, height = size
        planes = target.get("masks")
        if planes is None or planes.shape != (end - start, height, width):
            planes = np.zeros((end - start, height, width), dtype=np.uint8)
        target["masks"] = planes
        if not (has_polygon or has_rle):
            return
        from pycocotools import mask as mask_utils  # imported on first use: most targets need no raster

        from annonorm.geometry import rle_string_runs

        for box in range(start, end):
            where = f"{self._where(position)}: boxes[{box - start}]"
            if rings is not None and rings[box - start + 1] > rings[box - start]:
                bounds = ix.ring_offsets[int(rings[box - start]) : int(rings[box - start + 1]) + 1].tolist()
                polygon = [ix.polygon_coords[a:b] for a, b in itertools.pairwise(bounds)]
                reach = 4 * (width + height) + 16
                if any(float(np.abs(ring).max()) > reach for ring in polygon):
                    raise InvalidDataError(
                        f"record {position}: a polygon point lies more than {reach} px from the image, "
                        "beyond what the loader rasterizes",
                        file=self.split_path,
                        location=f"{where}.polygon",
                    )
                rle = mask_utils.merge(mask_utils.frPyObjects([ring.tolist() for ring in polygon], height, width))
            elif runs is not None and runs[box - start + 1] > runs[box - start]:
                counts = ix.rle_bytes[int(runs[box - start]) : int(runs[box - start + 1])].tobytes()
                rle_height, rle_width = ix.rle_sizes[box].tolist()
                problem = None
                if (rle_width, rle_height) != (width, height):
                    problem = f"rle.size is [{rle_height}, {rle_width}] but the image is [{height}, {width}]"
                else:
                    try:
                        total = int(rle_string_runs(counts).sum())
                    except ValueError as exc:
                        problem = f"rle.counts does not decode: {exc}"
                    else:
                        if total != width * height:
                            problem = f"rle.counts covers {total} pixels; expected {height} x {width}"
                if problem is not None:  # pycocotools would read or write beyond its buffers
                    raise InvalidDataError(
                        f"record {position}: {problem}", file=self.split_path, location=f"{where}.rle"
                    )
                rle = {"size": [height, width], "counts": counts}
            else:
                continue
            planes[box - start] = mask_utils.decode(rle)

    def _add_file_masks(self, position: int, target: dict[str, Any], size: tuple[int, int] | None) -> None:
        relative = self._mask_relative(position)
        instance = self.manifest.mask_kind == "instance"
        boxes = len(target["boxes"])
        if relative is None:
            width, height = size or (0, 0)
            if instance:
                target["masks"] = np.zeros((boxes, height, width), dtype=np.uint8)
            else:
                target["mask"] = np.full((height, width), 255, dtype=np.uint8)
            return
        where = self._where(position)
        path = Path(self._resolved(position, relative, self._real_root, self.root, "mask"))
        with self._open(position, path, "mask") as stream:
            try:
                with Image.open(stream) as opened:
                    pixels = np.asarray(opened)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
                raise self._decoding_error(position, "mask", path, exc) from None
        if pixels.ndim != 2:
            raise InvalidDataError(
                f"record {position}: mask {path} has {pixels.ndim} dimensions; expected one channel",
                file=self.split_path,
                location=where,
            )
        if size is not None and (pixels.shape[1], pixels.shape[0]) != size:
            raise InvalidDataError(
                f"record {position}: mask {path} is {pixels.shape[1]}x{pixels.shape[0]}, the image {size[0]}x{size[1]}",
                file=self.split_path,
                location=where,
            )
        if instance:
            # Pixel value k marks the k-th box (1-based); 0 and the void value match no box.
            planes = pixels[None, :, :] == np.arange(1, boxes + 1, dtype=pixels.dtype)[:, None, None]
            target["masks"] = planes.view(np.uint8)
            return
        if pixels.dtype != np.uint8 and pixels.size and not 0 <= int(pixels.min()) <= int(pixels.max()) <= 255:
            raise InvalidDataError(
                f"record {position}: semantic mask {path} holds values beyond 0..255 "
                f"({int(pixels.min())}..{int(pixels.max())}); the loader keeps semantic masks as uint8",
                file=self.split_path,
                location=where,
            )
        target["mask"] = pixels.astype(np.uint8, copy=True)

    def _canvas(self, position: int, image: Any) -> tuple[int, int] | None:
        """``(height, width)`` of the record's image, for tensors that need a canvas size."""
        if isinstance(image, Image.Image):
            return image.height, image.width
        width, height = self._index.sizes[position].tolist()
        return (height, width) if width else None
