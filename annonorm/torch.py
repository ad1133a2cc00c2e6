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
  ``(list of images, list of targets)``, the shape torchvision's detection models take.

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

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from annonorm.errors import MissingDependency

try:
    import torch
except ImportError:
    raise MissingDependency("torch", "torch", "annonorm.torch") from None

__all__ = ["collate_fn", "has_tv_tensors", "image_to_tensor", "target_to_tensors", "to_tensors"]

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

    ``wrap=None`` wraps when torchvision is installed. A tensor is returned as it is.
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
    tensor = tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()
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


def collate_fn(batch: Sequence[tuple[Any, dict[str, Any]]]) -> tuple[list[Any], list[dict[str, Any]]]:
    """Detection collate: ``(images, targets)`` as two lists, in batch order.

    Images and targets still in numpy / PIL form are converted to tensors (without ``tv_tensors``
    wrapping, which is for transforms and is done by ``to_tensor=True``); image paths stay strings.
    """
    images: list[Any] = []
    targets: list[dict[str, Any]] = []
    for image, target in batch:
        if isinstance(image, Image.Image | np.ndarray):
            image = image_to_tensor(image, wrap=False)
        images.append(image)
        targets.append(target_to_tensors(target, wrap=False))
    return images, targets
