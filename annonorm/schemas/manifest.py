"""The dataset manifest ``annonorm.json``: categories, splits, image root, mask kind, provenance."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from annonorm.schemas.types import Attributes, ClassName, RelativePath

FORMAT_NAME: Literal["annonorm"] = "annonorm"
#: The format version this annonorm writes; manifests of version 1 (no v2 field anywhere) read unchanged.
FORMAT_VERSION: Literal[2] = 2
MANIFEST_FILE = "annonorm.json"

SplitName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Category(BaseModel):
    """One class: its contiguous 0-based ``id`` (the loader's integer label) and the source's own id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int = Field(ge=0, description="Contiguous 0-based index, in source order.")
    name: ClassName = Field(description="Unique class name, as records use it.")
    source_id: int | str | None = Field(default=None, description="The id the source format gave this class.")
    supercategory: str | None = Field(default=None, min_length=1, description="The source's parent class, if any.")
    keypoints: list[ClassName] | None = Field(
        default=None, description="Keypoint names, in the order a box's keypoints list them."
    )
    skeleton: list[Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=2, max_length=2)]] | None = Field(
        default=None, description="Pairs [i, j] of keypoint indices (0-based) joined by a limb."
    )
    attributes: Attributes | None = Field(default=None, description="Other source fields of the class.")

    @model_validator(mode="after")
    def _keypoints_consistent(self) -> Category:
        names = self.keypoints or []
        if len(set(names)) != len(names):
            repeated = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"keypoints name {repeated[0]!r} more than once; expected unique keypoint names")
        for position, (first, second) in enumerate(self.skeleton or ()):
            if first >= len(names) or second >= len(names):
                raise ValueError(
                    f"skeleton[{position}] joins keypoints {first} and {second} but the category has "
                    f"{len(names)} keypoint names; expected indices 0..{len(names) - 1}"
                )
        return self


class SourceFile(BaseModel):
    """A source annotation file and its content hash, so staleness can be detected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1, description="Path of the source file as given to the converter.")
    sha256: Sha256 = Field(description="SHA-256 of the file's bytes.")


class Source(BaseModel):
    """Where the dataset came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: str = Field(min_length=1, description="Name of the converter that read the source.")
    files: list[SourceFile] = Field(default_factory=list)
    converter: str = Field(min_length=1, description="Tool and version that wrote this dataset.")
    options: Attributes | None = Field(default=None, description="Converter options used.")


class Manifest(BaseModel):
    """The manifest of a normalized dataset (format version 2; version 1 is read unchanged)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["annonorm"] = FORMAT_NAME
    version: Literal[1, 2] = FORMAT_VERSION
    name: str = Field(min_length=1, description="Dataset name.")
    categories: list[Category] = Field(description="Classes in source order; ids are 0..n-1.")
    splits: dict[SplitName, RelativePath] = Field(
        min_length=1, description="Split name -> JSONL file, relative to the manifest's directory."
    )
    image_root: str = Field(
        default=".", min_length=1, description="Where record image paths resolve; relative to this file's directory."
    )
    mask_kind: Literal["instance", "semantic"] | None = Field(
        default=None, description="instance: pixel k = k-th box (1-based); semantic: pixel = category id + 1."
    )
    source: Source | None = None
    attributes: Attributes | None = Field(default=None, description="Dataset-level source fields (info, licenses).")

    @model_validator(mode="after")
    def _categories_consistent(self) -> Manifest:
        seen: dict[str, int] = {}
        for position, category in enumerate(self.categories):
            if category.id != position:
                raise ValueError(
                    f"categories[{position}] has id {category.id}; expected ids 0..{len(self.categories) - 1} in order"
                )
            if category.name in seen:
                raise ValueError(
                    f"categories[{position}] repeats the name {category.name!r} of categories[{seen[category.name]}]"
                )
            seen[category.name] = position
        if self.version == 1:
            for position, category in enumerate(self.categories):
                if (
                    category.supercategory is not None
                    or category.keypoints is not None
                    or category.skeleton is not None
                ):
                    raise ValueError(
                        f"categories[{position}] has a field of format version 2 (supercategory, keypoints, "
                        'skeleton) in a version 1 manifest; expected "version": 2'
                    )
        source_ids = [c.source_id for c in self.categories if c.source_id is not None]
        if len(source_ids) != len(set(source_ids)):
            raise ValueError("two categories share one source_id")
        files = list(self.splits.values())
        if len(files) != len(set(files)):
            raise ValueError("two splits share one file")
        return self

    @property
    def category_names(self) -> list[str]:
        """Category names in id order."""
        return [c.name for c in self.categories]

    @property
    def keypoint_counts(self) -> dict[str, int]:
        """Category name -> number of keypoint names, for the categories that have keypoints."""
        return {c.name: len(c.keypoints) for c in self.categories if c.keypoints is not None}
