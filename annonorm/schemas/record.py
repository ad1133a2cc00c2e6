"""The per-image record: one line of a split file.

Accepts the seed format's shorthand forms (``"labels": "car"``, ``"counts": [{"car": 2}, {"bike": 3}]``,
``labels``/``counts`` left out and derived from the boxes) and always emits the canonical form.

Rules that need the manifest (every name is a category) read the category names from the
validation context: ``Record.model_validate_json(line, context={"categories": names})``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from annonorm.records import (
    RECORD_KEYS,
    box_counts,
    consistency_problem,
    duplicate_labels,
    merge_count_list,
    present_labels,
)
from annonorm.schemas.types import (
    FLOAT32_MAX,
    Attributes,
    ClassName,
    Count,
    ImageIdInt,
    LabelList,
    Pixel,
    RelativePath,
    Side,
    check_int64_id,
    out_of_range,
)

__all__ = ["RECORD_KEYS", "Box", "Record"]


class Box(BaseModel):
    """An axis-aligned box in absolute pixel corners (``x1 <= x2``, ``y1 <= y2``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: ClassName = Field(description="Category name of the boxed object.")
    x1: Pixel = Field(description="Left edge, pixels from the image's left side.")
    y1: Pixel = Field(description="Top edge, pixels from the image's top side.")
    x2: Pixel = Field(description="Right edge; x2 >= x1.")
    y2: Pixel = Field(description="Bottom edge; y2 >= y1.")
    attributes: Attributes | None = Field(
        default=None, description="What the source carries that has no field here (iscrowd, area, difficult...)."
    )

    @model_validator(mode="after")
    def _corners_ordered(self) -> Box:
        if self.x2 < self.x1:
            raise ValueError(f"x2 ({self.x2}) is smaller than x1 ({self.x1}); expected x1 <= x2")
        if self.y2 < self.y1:
            raise ValueError(f"y2 ({self.y2}) is smaller than y1 ({self.y1}); expected y1 <= y2")
        # Each corner fits float32, but the loader's float32 area (x2 - x1) * (y2 - y1) may not.
        area = (self.x2 - self.x1) * (self.y2 - self.y1)
        if area > FLOAT32_MAX:
            raise out_of_range(
                f"box area {area:g} is beyond float32's range (at most {FLOAT32_MAX:g}), "
                "which the loader keeps areas in"
            )
        given = (self.attributes or {}).get("area")
        if type(given) in (int, float) and given > FLOAT32_MAX:  # type: ignore[operator]
            shown = f"{given:g}" if type(given) is float else str(given)
            raise out_of_range(
                f"attributes.area {shown} is beyond float32's range (at most {FLOAT32_MAX:g}), "
                "which the loader keeps areas in"
            )
        return self


def _unknown_names(names: Collection[str], info: ValidationInfo) -> list[str]:
    categories = (info.context or {}).get("categories")
    if categories is None:
        return []
    return [name for name in names if name not in categories]


class Record(BaseModel):
    """One image of a split: its path, size, classes, counts, boxes and mask."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    image: RelativePath = Field(description="Image path, relative to the manifest's image_root.")
    width: Side | None = Field(default=None, description="Image width in pixels (absent only when unknown).")
    height: Side | None = Field(default=None, description="Image height in pixels (absent only when unknown).")
    labels: LabelList = Field(
        default_factory=list, description="The classes present; one bare string is accepted for one class."
    )
    counts: dict[ClassName, Count] = Field(
        default_factory=dict,
        description="Class name -> number of items; the seed's list of one-key objects is accepted.",
    )
    boxes: list[Box] = Field(default_factory=list, description="Bounding boxes in absolute pixel corners.")
    mask: RelativePath | None = Field(default=None, description="Mask PNG path, relative to the manifest's directory.")
    id: ImageIdInt | str | None = Field(default=None, description="The source's image id (an integer within int64).")
    attributes: Attributes | None = Field(default=None, description="Image-level source fields with no home here.")

    _id_in_int64 = field_validator("id")(check_int64_id)

    @model_validator(mode="before")
    @classmethod
    def _derive_labels_and_counts(cls, data: Any) -> Any:
        """Fill ``counts`` from the boxes and ``labels`` from boxes and counts when they are left out."""
        if not isinstance(data, dict) or not isinstance(data.get("boxes", []), list):
            return data
        boxes = data.get("boxes") or []
        box_names = [b["name"] for b in boxes if isinstance(b, dict) and isinstance(b.get("name"), str)]
        if "counts" not in data and box_names:
            data = {**data, "counts": box_counts(box_names)}
        if "labels" not in data:
            counts = merge_count_list(data.get("counts") or {})
            counted = {n: c for n, c in counts.items() if isinstance(c, int)} if isinstance(counts, dict) else {}
            data = {**data, "labels": present_labels(box_names, counted)}
        return data

    @field_validator(
        "counts", mode="before", json_schema_input_type=dict[ClassName, Count] | list[dict[ClassName, Count]]
    )
    @classmethod
    def _counts_shorthand(cls, value: Any) -> Any:
        return merge_count_list(value)

    @field_validator("labels")
    @classmethod
    def _labels_known_and_unique(cls, labels: list[str], info: ValidationInfo) -> list[str]:
        duplicates = duplicate_labels(labels)
        if duplicates:
            raise ValueError(f"labels lists {', '.join(map(repr, duplicates))} more than once")
        unknown = _unknown_names(labels, info)
        if unknown:
            raise ValueError(f"label {unknown[0]!r} is not a category of the manifest")
        return labels

    @field_validator("counts")
    @classmethod
    def _counts_known(cls, counts: dict[str, int], info: ValidationInfo) -> dict[str, int]:
        unknown = _unknown_names(counts, info)
        if unknown:
            raise ValueError(f"count name {unknown[0]!r} is not a category of the manifest")
        return counts

    @field_validator("boxes")
    @classmethod
    def _box_names_known(cls, boxes: list[Box], info: ValidationInfo) -> list[Box]:
        categories = (info.context or {}).get("categories")
        if categories is not None:
            for index, box in enumerate(boxes):
                if box.name not in categories:
                    raise ValueError(f"boxes[{index}]: name {box.name!r} is not a category of the manifest")
        return boxes

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Record:
        if (self.width is None) != (self.height is None):
            raise ValueError("width and height must be given together (or both left out when unknown)")
        problem = consistency_problem(self.labels, self.counts, box_counts(box.name for box in self.boxes))
        if problem is not None:
            raise ValueError(problem)
        return self

    def to_json_dict(self) -> dict[str, Any]:
        """The canonical JSON form: shorthand expanded, empty optional fields left out."""
        return self.model_dump(mode="json", exclude_none=True)
