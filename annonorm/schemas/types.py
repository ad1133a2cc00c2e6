"""Named, reusable field types of the annonorm format.

Hard rules of the format live here (and in the models), so that the JSON Schema generated from
the models states them too.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, JsonValue
from pydantic_core import PydanticCustomError

# The rules themselves live in layer 0 beside the models; imported from here too, as before.
from annonorm.geometry import COORD_DECIMALS, FLOAT32_MAX, round_coord
from annonorm.paths import check_relative_path
from annonorm.records import label_list

__all__ = [
    "COORD_DECIMALS",
    "FLOAT32_MAX",
    "INT32_MAX",
    "INT64_MAX",
    "INT64_MIN",
    "OUT_OF_RANGE",
    "Attributes",
    "ClassName",
    "Coordinate",
    "Count",
    "ImageIdInt",
    "LabelList",
    "Pixel",
    "RelativePath",
    "Side",
    "check_int64_id",
    "check_relative_path",
    "out_of_range",
    "round_coord",
    "rule_error",
]

# What the loader's index arrays hold (annonorm.index): image sides as int32, image ids and counts
# as int64, coordinates and areas as float32. The format refuses what they cannot hold, so that a
# dataset ``annonorm validate`` calls valid loads without a value turning into inf or wrapping around.
#: The largest image side (int32).
INT32_MAX = 2**31 - 1
#: The range of an integer image id and of a count (int64).
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
#: The Pydantic error type (and ``annonorm validate`` finding code) of a number the loader cannot hold.
OUT_OF_RANGE = "number_out_of_range"


def out_of_range(message: str) -> PydanticCustomError:
    """The error of a number beyond what the loader's arrays hold (its type is :data:`OUT_OF_RANGE`)."""
    return PydanticCustomError(OUT_OF_RANGE, "{reason}", {"reason": message})


def rule_error(problem: tuple[str, str]) -> PydanticCustomError:
    """The error of a broken rule of :mod:`annonorm.records` (its type is the rule's stable code)."""
    code, message = problem
    return PydanticCustomError(code, "{reason}", {"reason": message})


def _finite_coord(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("coordinate must be a finite number")
    if value > FLOAT32_MAX:
        raise out_of_range(
            f"coordinate {value:g} is beyond float32's range (at most {FLOAT32_MAX:g}), "
            "which the loader keeps coordinates in"
        )
    return round_coord(value)


def _finite_signed_coord(value: float) -> float:
    if abs(value) > FLOAT32_MAX:
        raise out_of_range(
            f"coordinate {value:g} is beyond float32's range (at most {FLOAT32_MAX:g} in magnitude), "
            "which the loader keeps coordinates in"
        )
    return round_coord(value)


def _int32_side(value: int) -> int:
    if value > INT32_MAX:
        raise out_of_range(f"image side {value} is beyond int32 (at most {INT32_MAX}), which the loader keeps sizes in")
    return value


def _int64_count(value: int) -> int:
    if value > INT64_MAX:
        raise out_of_range(f"count {value} is beyond int64 (at most {INT64_MAX}), which the loader keeps counts in")
    return value


def check_int64_id(value: int | str | None) -> int | str | None:
    """Refuse an integer image id the loader's int64 ``image_id`` cannot hold."""
    if type(value) is int and not INT64_MIN <= value <= INT64_MAX:
        raise out_of_range(
            f"id {value} is beyond int64 ({INT64_MIN}..{INT64_MAX}), which the loader keeps image ids in; "
            "write a larger id as a string"
        )
    return value


def _finite_attributes(value: dict[str, Any]) -> dict[str, Any]:
    """Refuse a non-finite number anywhere in free-form attributes (JSON holds none; ``1e400`` overflows)."""
    stack: list[tuple[str, Any]] = [(key, item) for key, item in value.items()]
    while stack:
        key, item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise out_of_range(f"attribute {key} is not a finite number (beyond float64's range)")
        if isinstance(item, dict):
            stack.extend((f"{key}.{k}", v) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((f"{key}.{i}", v) for i, v in enumerate(item))
    return value


#: A pixel coordinate: finite, >= 0, within float32's range, rounded to 6 decimals.
Pixel = Annotated[
    float, Field(ge=0, allow_inf_nan=False, json_schema_extra={"maximum": FLOAT32_MAX}), AfterValidator(_finite_coord)
]
#: A polygon, oriented-box or keypoint coordinate: finite, within float32's range, rounded to 6 decimals
#: (it may lie outside the image: ``polygon_outside_image`` / ``keypoint_outside_image`` warn of that).
Coordinate = Annotated[
    float,
    Field(allow_inf_nan=False, json_schema_extra={"minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}),
    AfterValidator(_finite_signed_coord),
]
#: An image side in pixels: an integer in 1..2**31-1 (a JSON ``640.0`` or ``"640"`` is refused, as the loader does).
Side = Annotated[int, Field(gt=0, json_schema_extra={"maximum": INT32_MAX}), AfterValidator(_int32_side)]
#: An integer image id: within int64 (checked by the record with :func:`check_int64_id`, for one error location).
ImageIdInt = Annotated[int, Field(json_schema_extra={"minimum": INT64_MIN, "maximum": INT64_MAX})]
#: A class name: non-empty.
ClassName = Annotated[str, Field(min_length=1)]
#: A number of items of one class (int64).
Count = Annotated[int, Field(ge=0, json_schema_extra={"maximum": INT64_MAX}), AfterValidator(_int64_count)]
#: A path relative to a root it must not leave.
RelativePath = Annotated[str, AfterValidator(check_relative_path)]
#: One class name or a list of them (seed shorthand), stored as a list.
LabelList = Annotated[list[ClassName], BeforeValidator(label_list, json_schema_input_type=ClassName | list[ClassName])]
#: Free-form attributes carried over from the source format (finite numbers only).
Attributes = Annotated[dict[str, JsonValue], AfterValidator(_finite_attributes)]
