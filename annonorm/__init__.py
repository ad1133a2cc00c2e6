"""annonorm: one checked per-image annotation format for computer-vision datasets.

The public API is small and loads lazily, so ``import annonorm`` stays fast: converters, torch
and DVC are imported only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "AnnonormError",
    "NormalizedDataset",
    "__version__",
    "convert",
    "export",
    "load",
    "validate",
]

if TYPE_CHECKING:
    from annonorm.api import convert, export
    from annonorm.dataset import NormalizedDataset
    from annonorm.errors import AnnonormError
    from annonorm.validation import validate

_LAZY = {
    "AnnonormError": "annonorm.errors",
    "NormalizedDataset": "annonorm.dataset",
    "convert": "annonorm.api",
    "export": "annonorm.api",
    "validate": "annonorm.validation",
}


def __getattr__(name: str) -> Any:
    if name in ("load", "open"):  # annonorm.open(...) reads like the DVC docs; not in __all__ (shadows open)
        return _load
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'annonorm' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)


def __dir__() -> list[str]:
    # The public API, lazy names included (``dir()`` would otherwise list only what is imported so far).
    return sorted({*__all__, *_LAZY, "load", "open"})


def _load(path: Any, split: str | None = None, **kwargs: Any) -> NormalizedDataset:
    """Open a split of a normalized dataset: ``annonorm.load("out/coco", "val")``, also spelled
    ``annonorm.open("data/coco", "train", rev="v1", repo=".")`` (keywords as :class:`NormalizedDataset`).

    Without ``split``: the dataset's only split, else ``train``, else an error listing the splits."""
    from annonorm.dataset import NormalizedDataset

    return NormalizedDataset(path, split=split, **kwargs)
