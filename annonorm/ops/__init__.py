"""Operations on normalized datasets: merge, split, filter, remap.

Each reads one or more normalized datasets and writes a new one atomically, validated before it is
renamed into place, never touching its inputs (:mod:`annonorm.ops.common`). They are also
``annonorm.merge``, ``annonorm.split``, ``annonorm.filter_dataset`` (alias ``annonorm.filter``) and
``annonorm.remap``, and the commands ``annonorm merge|split|filter|remap``.
"""

from __future__ import annotations

from annonorm.ops.common import OpResult, read_class_map
from annonorm.ops.filter import filter_dataset
from annonorm.ops.merge import merge
from annonorm.ops.remap import remap
from annonorm.ops.split import parse_ratios, split

__all__ = ["OpResult", "filter_dataset", "merge", "parse_ratios", "read_class_map", "remap", "split"]
