"""Named, reusable field types of the annonorm format.

Hard rules of the format live here (and in the models), so that the JSON Schema generated from
the models states them too.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, JsonValue

#: Decimal places kept for coordinates: ``x + w`` artifacts such as 379.09000000000003 never reach a file.
COORD_DECIMALS = 6


def round_coord(value: float) -> float:
    """Round a coordinate to the format's precision (and turn ``-0.0`` into ``0.0``)."""
    return round(value, COORD_DECIMALS) + 0.0


def _finite_coord(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("coordinate must be a finite number")
    return round_coord(value)


def check_relative_path(value: str) -> str:
    """Refuse a path that is absolute, empty, or climbs out of its root with ``..``.

    Paths are written with forward slashes; a Windows drive (``C:``), a UNC or backslash-rooted
    path is refused too. Plain string tests: this runs once per record in bulk validation.
    """
    if not value or value.strip() != value:
        raise ValueError("path must be a non-empty string without surrounding spaces")
    if "\x00" in value:
        raise ValueError("path must not contain a NUL character")
    if value[0] in "/\\" or (len(value) > 1 and value[1] == ":" and value[0].isalpha()):
        raise ValueError(f"path {value!r} must be relative, not absolute")
    if ".." in value and ".." in value.replace("\\", "/").split("/"):
        raise ValueError(f"path {value!r} must not climb out of its directory with '..'")
    return value


def _one_or_many(value: Any) -> Any:
    # The seed format writes one class as a bare string.
    return [value] if isinstance(value, str) else value


#: A pixel coordinate: finite, >= 0, rounded to 6 decimals.
Pixel = Annotated[float, Field(ge=0, allow_inf_nan=False), AfterValidator(_finite_coord)]
#: An image side in pixels.
Side = Annotated[int, Field(gt=0, strict=False)]
#: A class name: non-empty.
ClassName = Annotated[str, Field(min_length=1)]
#: A number of items of one class.
Count = Annotated[int, Field(ge=0)]
#: A path relative to a root it must not leave.
RelativePath = Annotated[str, AfterValidator(check_relative_path)]
#: One class name or a list of them (seed shorthand), stored as a list.
LabelList = Annotated[
    list[ClassName], BeforeValidator(_one_or_many, json_schema_input_type=ClassName | list[ClassName])
]
#: Free-form attributes carried over from the source format.
Attributes = dict[str, JsonValue]
