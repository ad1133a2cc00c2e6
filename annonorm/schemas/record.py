"""The per-image record: one line of a split file.

Accepts the seed format's shorthand forms (``"labels": "car"``, ``"counts": [{"car": 2}, {"bike": 3}]``,
``labels``/``counts`` left out and derived from the boxes) and always emits the canonical form.

Rules that need the manifest (every name is a category) read the category names from the
validation context: ``Record.model_validate_json(line, context={"categories": names})``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from annonorm.records import (
    RECORD_KEYS,
    box_counts,
    consistency_problem,
    duplicate_labels,
    keypoints_problem,
    merge_count_list,
    obb_problem,
    polygon_problem,
    present_labels,
    rle_problem,
    score_problem,
)
from annonorm.schemas.types import (
    FLOAT32_MAX,
    Attributes,
    ClassName,
    Coordinate,
    Count,
    ImageIdInt,
    LabelList,
    Pixel,
    RelativePath,
    Side,
    check_int64_id,
    out_of_range,
    rule_error,
)

__all__ = ["RECORD_KEYS", "Box", "Keypoint", "Record", "Rle"]


def _as_tuple(value: Any) -> Any:
    # Keypoints are JSON arrays; a strict tuple takes only a tuple when validating Python objects.
    return tuple(value) if isinstance(value, list) else value


#: One keypoint ``[x, y, v]``: a position and its COCO visibility (0 not labeled, 1 labeled but not visible, 2 visible).
Keypoint = Annotated[
    tuple[Coordinate, Coordinate, Annotated[int, Field(json_schema_extra={"enum": [0, 1, 2]})]],
    BeforeValidator(_as_tuple),
]
#: One ring of a polygon: ``[x1, y1, x2, y2, ...]``, at least 3 points.
Ring = Annotated[list[Coordinate], Field(json_schema_extra={"minItems": 6})]


class Rle(BaseModel):
    """A COCO run-length mask in its compressed form (what pycocotools' ``encode`` gives)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    size: list[Side] = Field(
        description="[height, width] of the image.", json_schema_extra={"minItems": 2, "maxItems": 2}
    )
    counts: str = Field(description="The run lengths, column-major, as COCO's compressed string.")


class Box(BaseModel):
    """An axis-aligned box in absolute pixel corners (``x1 <= x2``, ``y1 <= y2``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: ClassName = Field(description="Category name of the boxed object.")
    x1: Pixel = Field(description="Left edge, pixels from the image's left side.")
    y1: Pixel = Field(description="Top edge, pixels from the image's top side.")
    x2: Pixel = Field(description="Right edge; x2 >= x1.")
    y2: Pixel = Field(description="Bottom edge; y2 >= y1.")
    polygon: list[Ring] | None = Field(
        default=None,
        description="The outline: rings [x1, y1, x2, y2, ...] in absolute pixels, each of at least 3 points.",
        json_schema_extra={"minItems": 1},
    )
    rle: Rle | None = Field(default=None, description="The mask as a COCO compressed run-length encoding.")
    obb: list[Coordinate] | None = Field(
        default=None,
        description="An oriented box: its 4 corners [x1, y1, ..., x4, y4] in source order; x1..y2 is its hull.",
        json_schema_extra={"minItems": 8, "maxItems": 8},
    )
    keypoints: list[Keypoint] | None = Field(
        default=None, description="One [x, y, v] per keypoint name of the category (x = y = 0 where v = 0)."
    )
    score: Annotated[float, Field(allow_inf_nan=False, json_schema_extra={"minimum": 0, "maximum": 1})] | None = Field(
        default=None, description="A prediction's confidence in [0, 1]; absent for ground truth."
    )
    attributes: Attributes | None = Field(
        default=None, description="What the source carries that has no field here (iscrowd, area, difficult...)."
    )

    @field_validator("polygon")
    @classmethod
    def _rings(cls, polygon: list[list[float]] | None) -> list[list[float]] | None:
        problem = None if polygon is None else polygon_problem(polygon)
        if problem is not None:
            raise rule_error(problem)
        return polygon

    @field_validator("keypoints")
    @classmethod
    def _visibilities(cls, keypoints: list[tuple[float, float, int]] | None) -> list[tuple[float, float, int]] | None:
        problem = None if keypoints is None else keypoints_problem(keypoints, None)
        if problem is not None:
            raise rule_error(problem)
        return keypoints

    @field_validator("score")
    @classmethod
    def _score_in_range(cls, score: float | None) -> float | None:
        problem = None if score is None else score_problem(score)
        if problem is not None:
            raise rule_error(problem)
        return score

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
        if self.obb is not None:
            problem = obb_problem(self.obb, self.x1, self.y1, self.x2, self.y2)
            if problem is not None:
                raise rule_error(problem)
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
        context = info.context or {}
        categories = context.get("categories")
        if categories is not None:
            for index, box in enumerate(boxes):
                if box.name not in categories:
                    raise ValueError(f"boxes[{index}]: name {box.name!r} is not a category of the manifest")
        keypoint_names = context.get("keypoints")  # category name -> number of keypoint names
        width, height = info.data.get("width"), info.data.get("height")
        for index, box in enumerate(boxes):
            problem = None
            if box.keypoints is not None and keypoint_names is not None:
                problem = keypoints_problem(box.keypoints, keypoint_names.get(box.name, 0))
            if problem is None and box.rle is not None:
                problem = rle_problem(box.rle.size, box.rle.counts, width, height)
            if problem is not None:
                raise rule_error((problem[0], f"boxes[{index}]: {problem[1]}"))
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
