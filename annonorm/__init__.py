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
    "filter_dataset",
    "load",
    "merge",
    "remap",
    "split",
    "to_hf",
    "validate",
]

if TYPE_CHECKING:
    from annonorm.api import convert, export
    from annonorm.api import open_at_revision as load
    from annonorm.converters.hf import to_hf
    from annonorm.dataset import NormalizedDataset
    from annonorm.errors import AnnonormError
    from annonorm.ops.filter import filter_dataset
    from annonorm.ops.merge import merge
    from annonorm.ops.remap import remap
    from annonorm.ops.split import split
    from annonorm.validation import validate

#: Public name -> (module, attribute), imported on first use.
_LAZY = {
    "AnnonormError": ("annonorm.errors", "AnnonormError"),
    "NormalizedDataset": ("annonorm.dataset", "NormalizedDataset"),
    "convert": ("annonorm.api", "convert"),
    "export": ("annonorm.api", "export"),
    "validate": ("annonorm.validation", "validate"),
    "merge": ("annonorm.ops", "merge"),
    "split": ("annonorm.ops", "split"),
    "remap": ("annonorm.ops", "remap"),
    "filter_dataset": ("annonorm.ops", "filter_dataset"),
    "to_hf": ("annonorm.converters.hf", "to_hf"),
    # annonorm.filter(...) reads like the command; not in __all__, so `from annonorm import *` keeps the builtin.
    "filter": ("annonorm.ops", "filter_dataset"),
    # annonorm.load("out/coco", "val"); annonorm.open("data/coco", "train", rev="v1", repo=".") reads like
    # the DVC docs (not in __all__: it would shadow open). Without split: the only split, else train.
    "load": ("annonorm.api", "open_at_revision"),
    "open": ("annonorm.api", "open_at_revision"),
}


def __getattr__(name: str) -> Any:
    found = _LAZY.get(name)
    if found is None:
        raise AttributeError(f"module 'annonorm' has no attribute {name!r}")
    import importlib

    module_name, attribute = found
    return getattr(importlib.import_module(module_name), attribute)


def __dir__() -> list[str]:
    # The public API, lazy names included (``dir()`` would otherwise list only what is imported so far).
    return sorted({*__all__, *_LAZY})
