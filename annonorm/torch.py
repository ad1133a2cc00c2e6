"""PyTorch glue for :class:`~annonorm.dataset.NormalizedDataset`: tensors, tv_tensors, detection collate.

This is the only annonorm module that imports torch (``pip install 'annonorm[torch]'``); nothing
imports it unless asked to (``to_tensor=True``, or ``from annonorm.torch import collate_fn``).
Importing it without torch raises :class:`~annonorm.errors.MissingDependency`, whose message is the
command that installs it.

* :func:`to_tensors` turns a sample's PIL image / numpy arrays into tensors: the image as uint8
  ``(C, H, W)``, ``boxes`` float32, ``labels`` / ``iscrowd`` int64, ``area`` float32, masks uint8.
  When torchvision is installed the image, boxes and masks are wrapped as ``tv_tensors``
  (``Image``, ``BoundingBoxes`` in ``XYXY`` with the image's canvas size, ``Mask``), so that
  ``torchvision.transforms.v2`` transforms them together with the image. ``tv_tensors`` are
  tensor subclasses: code that expects plain tensors keeps working.
* :func:`collate_fn` is the detection collate: images differ in size, so a batch is
  ``(list of images, list of targets)``, the shape torchvision's detection models take. The list of
  targets is a :class:`TargetBatch`: per-image dicts whose arrays are views into one tensor per field,
  so that a batch crosses a DataLoader worker's pipe as a handful of tensors, not four per image.

::

    from torch.utils.data import DataLoader
    from annonorm import NormalizedDataset
    from annonorm.torch import collate_fn

    ds = NormalizedDataset("out/coco", "train", to_tensor=True)
    loader = DataLoader(ds, batch_size=8, shuffle=True, num_workers=4, collate_fn=collate_fn)
    for images, targets in loader:
        losses = model(images, targets)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image

from annonorm.errors import MissingDependency

try:
    import torch
except ImportError:
    raise MissingDependency("torch", "torch", "annonorm.torch") from None

__all__ = ["TargetBatch", "collate_fn", "has_tv_tensors", "image_to_tensor", "target_to_tensors", "to_tensors"]

try:
    from torchvision import tv_tensors
except (ImportError, RuntimeError, OSError):  # not installed, or built for another torch
    tv_tensors = None

_MASK_KEYS = ("masks", "mask")


def has_tv_tensors() -> bool:
    """Whether torchvision's ``tv_tensors`` can be used (torchvision is installed and imports)."""
    return tv_tensors is not None


def _wrap(wrap: bool | None) -> bool:
    if wrap is None:
        return tv_tensors is not None
    if wrap and tv_tensors is None:
        raise MissingDependency("torchvision", "torch", "tv_tensors output")
    return wrap


def image_to_tensor(image: Any, *, wrap: bool | None = None) -> torch.Tensor:
    """A PIL image or ``(H, W[, C])`` array as a uint8 ``(C, H, W)`` tensor (``tv_tensors.Image`` if ``wrap``).

    ``wrap=None`` wraps when torchvision is installed. A tensor is returned as it is. The result is
    a channels-last view of the pixels (as torchvision's ``pil_to_tensor``); ``.contiguous()`` copies.
    """
    if isinstance(image, torch.Tensor):
        return image
    if isinstance(image, Image.Image):
        pixels = np.array(image)  # a writable copy: torch.from_numpy refuses read-only memory
    elif isinstance(image, np.ndarray):
        pixels = np.ascontiguousarray(image)
    else:
        raise TypeError(f"expected a PIL image, an array or a tensor, not {type(image).__name__}")
    tensor = torch.from_numpy(pixels)
    # A (C, H, W) view of the (H, W, C) pixels, as torchvision's pil_to_tensor: no second copy per image.
    tensor = tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)
    return tv_tensors.Image(tensor) if _wrap(wrap) else tensor


def target_to_tensors(
    target: dict[str, Any], *, canvas_size: tuple[int, int] | None = None, wrap: bool | None = None
) -> dict[str, Any]:
    """A target with its numpy arrays as tensors (sharing their memory); other values are kept.

    With ``wrap`` (default: when torchvision is installed) ``boxes`` become
    ``tv_tensors.BoundingBoxes(format="XYXY", canvas_size=canvas_size)`` (``(height, width)``;
    boxes stay plain tensors when it is unknown) and ``masks`` / ``mask`` become ``tv_tensors.Mask``;
    ``keypoints`` ``(N, K, 3)`` become ``tv_tensors.KeyPoints`` of their ``(N, K, 2)`` positions with
    the visibilities as ``keypoints_visibility`` ``(N, K)`` where torchvision has ``KeyPoints`` (0.23+).
    ``scores`` and the other arrays become plain tensors.
    """
    wrapped = _wrap(wrap)
    out: dict[str, Any] = {}
    for key, value in target.items():
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(value)
        if wrapped and isinstance(value, torch.Tensor):
            if key == "boxes" and canvas_size is not None:
                value = tv_tensors.BoundingBoxes(value, format="XYXY", canvas_size=canvas_size)
            elif key in _MASK_KEYS:
                value = tv_tensors.Mask(value)
            elif key == "keypoints" and canvas_size is not None and hasattr(tv_tensors, "KeyPoints"):
                # KeyPoints are [..., 2] (torchvision >= 0.23): the visibilities travel beside them.
                out["keypoints_visibility"] = value[..., 2]
                value = tv_tensors.KeyPoints(value[..., :2], canvas_size=canvas_size)
        out[key] = value
    return out


def to_tensors(
    image: Any,
    target: dict[str, Any],
    *,
    canvas_size: tuple[int, int] | None = None,
    wrap: bool | None = None,
) -> tuple[Any, dict[str, Any]]:
    """A sample ``(image, target)`` as tensors; an image that is a path (``load_images=False``) stays one.

    ``canvas_size`` (``(height, width)``) is read from the image when it is loaded.
    """
    if isinstance(image, Image.Image | np.ndarray | torch.Tensor):
        image = image_to_tensor(image, wrap=wrap)
        canvas_size = (int(image.shape[-2]), int(image.shape[-1]))
    return image, target_to_tensors(target, canvas_size=canvas_size, wrap=wrap)


def _packable(values: Sequence[Any]) -> bool:
    """Whether one field's values (one per image) concatenate along their first axis.

    Plain arrays or plain tensors only: a ``tv_tensors`` subclass carries per-image metadata
    (a canvas size) that one packed tensor could not keep.
    """
    first = values[0]
    kind = type(first)
    if kind is not np.ndarray and kind is not torch.Tensor:
        return False
    if first.ndim == 0:
        return False
    trailing, dtype = tuple(first.shape[1:]), first.dtype
    return all(
        type(value) is kind and value.ndim == first.ndim and value.dtype == dtype and tuple(value.shape[1:]) == trailing
        for value in values
    )


#: Field -> (the packed tensor, each image's length along its first axis, each image's view of it).
_Packed = dict[str, tuple[torch.Tensor, tuple[int, ...], tuple[torch.Tensor, ...]]]


def _with_views(fields: dict[str, tuple[torch.Tensor, tuple[int, ...]]]) -> _Packed:
    return {key: (tensor, lengths, torch.split(tensor, list(lengths))) for key, (tensor, lengths) in fields.items()}


def _pack(targets: Sequence[dict[str, Any]]) -> _Packed:
    """The fields every image has, concatenated into one tensor each, with each image's view."""
    fields: dict[str, tuple[torch.Tensor, tuple[int, ...]]] = {}
    if not targets:
        return {}
    lengths_seen: dict[tuple[int, ...], tuple[int, ...]] = {}
    for key in targets[0]:
        if not all(key in target for target in targets):
            continue
        values = [target[key] for target in targets]
        if not _packable(values):
            continue
        packed = torch.from_numpy(np.concatenate(values)) if type(values[0]) is np.ndarray else torch.cat(values)
        lengths = tuple(int(value.shape[0]) for value in values)
        # One tuple object per distinct lengths: pickle then writes the per-image lengths once per batch.
        fields[key] = (packed, lengths_seen.setdefault(lengths, lengths))
    return _with_views(fields)


def _assemble(order: Sequence[Sequence[str]], packed: _Packed, rest: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-image dicts in each image's key order: packed fields as views, the rest as given."""
    return [
        {key: packed[key][2][position] if key in packed else others[key] for key in keys}
        for position, (keys, others) in enumerate(zip(order, rest, strict=True))
    ]


class TargetBatch(list[dict[str, Any]]):
    """The targets of a batch: a list of per-image target dicts, each field packed into one tensor.

    Each image's ``boxes``, ``labels``, ``area``, ... are views into one tensor per field (the batch's
    rows concatenated in batch order), so the per-image view is what detection models expect
    (``boxes`` float32 ``(N, 4)``, ``labels`` int64 ``(N,)``, ...), while pickling the batch (a
    DataLoader worker sending it to the main process) sends one tensor per field plus each image's
    length: a handful of tensors whatever the batch size. The other values (``image_id``, ``counts``,
    ``names``, masks of differing sizes) travel per image, as they are.

    It is a ``list``: index it, iterate it, change it; what is pickled is the list as it is then (a
    replaced or added value is packed again). :attr:`packed` and :attr:`offsets` give the batched
    form to code that wants it; :meth:`to` and :meth:`pin_memory` (which a DataLoader with
    ``pin_memory=True`` calls) move each packed tensor once instead of every view.
    """

    __slots__ = ("_packed",)

    def __init__(self, targets: Sequence[dict[str, Any]] = ()) -> None:
        """Pack ``targets`` (dicts of numpy arrays or tensors); arrays that are not packed become tensors."""
        self._packed: _Packed = _pack(targets)
        packed = self._packed
        super().__init__(
            {
                key: packed[key][2][position]
                if key in packed
                else torch.from_numpy(value)
                if isinstance(value, np.ndarray)
                else value
                for key, value in target.items()
            }
            for position, target in enumerate(targets)
        )

    @classmethod
    def _rebuild(
        cls,
        order: list[tuple[str, ...]],
        fields: dict[str, tuple[torch.Tensor, tuple[int, ...]]],
        rest: list[dict[str, Any]],
    ) -> TargetBatch:
        batch = cls.__new__(cls)
        batch._packed = _with_views(fields)
        list.__init__(batch, _assemble(order, batch._packed, rest))
        return batch

    @property
    def packed(self) -> dict[str, torch.Tensor]:
        """Field -> the batch's packed tensor (the images' rows concatenated in batch order)."""
        return {key: tensor for key, (tensor, _, _) in self._current().items()}

    @property
    def offsets(self) -> dict[str, torch.Tensor]:
        """Field -> int64 ``(len(self) + 1,)`` offsets: image ``i``'s rows are ``packed[field][o[i]:o[i + 1]]``."""
        out = {}
        for key, (_, lengths, _) in self._current().items():
            offsets = torch.zeros(len(lengths) + 1, dtype=torch.int64)
            offsets[1:] = torch.cumsum(torch.tensor(lengths, dtype=torch.int64), 0)
            out[key] = offsets
        return out

    def _current(self) -> _Packed:
        """The packed fields, packed again when the list or a packed value was changed since."""
        packed = self._packed
        if not packed:
            return packed if not self else _pack(self)
        for _, _, views in packed.values():
            if len(views) != len(self):
                return _pack(self)
        for key, (_, _, views) in packed.items():
            for view, target in zip(views, self, strict=True):
                if target.get(key) is not view:
                    return _pack(self)
        return packed

    def __reduce__(self) -> tuple[Callable[..., TargetBatch], tuple[Any, ...]]:
        packed = self._current()
        fields = {key: (tensor, lengths) for key, (tensor, lengths, _) in packed.items()}
        order = [tuple(target) for target in self]
        rest = [{key: value for key, value in target.items() if key not in packed} for target in self]
        return TargetBatch._rebuild, (order, fields, rest)

    def __copy__(self) -> TargetBatch:
        batch = TargetBatch.__new__(TargetBatch)
        batch._packed = self._packed
        list.__init__(batch, self)
        return batch

    def _map(self, move: Callable[[torch.Tensor], torch.Tensor]) -> TargetBatch:
        packed = self._current()
        fields = {key: (move(tensor), lengths) for key, (tensor, lengths, _) in packed.items()}
        order = [tuple(target) for target in self]
        rest = [
            {
                key: move(value) if isinstance(value, torch.Tensor) else value
                for key, value in target.items()
                if key not in packed
            }
            for target in self
        ]
        return TargetBatch._rebuild(order, fields, rest)

    def to(self, *args: Any, **kwargs: Any) -> TargetBatch:
        """A batch with every tensor moved by ``Tensor.to(*args, **kwargs)``, each packed tensor once."""
        return self._map(lambda tensor: tensor.to(*args, **kwargs))

    def pin_memory(self, device: str | torch.device | None = None) -> TargetBatch:
        """A batch in pinned (page-locked) memory; a DataLoader with ``pin_memory=True`` calls this."""
        del device  # kept for the DataLoader's signature: pinning follows the current accelerator
        return self._map(lambda tensor: tensor.pin_memory())


def collate_fn(batch: Sequence[tuple[Any, dict[str, Any]]]) -> tuple[list[Any], TargetBatch]:
    """Detection collate: ``(images, targets)``, in batch order; ``targets`` is a :class:`TargetBatch`.

    Images still PIL images or numpy arrays become uint8 ``(C, H, W)`` tensors (without
    ``tv_tensors`` wrapping, which is for transforms and is done by ``to_tensor=True``); image paths
    stay strings. Targets become one :class:`TargetBatch`: a list of per-image dicts of tensors whose
    fields are views into one packed tensor per field, so that the batch leaves a worker as a few
    tensors.
    """
    images: list[Any] = []
    for image, _ in batch:
        if isinstance(image, Image.Image | np.ndarray):
            image = image_to_tensor(image, wrap=False)
        images.append(image)
    return images, TargetBatch([target for _, target in batch])
