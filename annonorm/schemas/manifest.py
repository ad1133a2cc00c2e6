"""The dataset manifest ``annonorm.json``: categories, splits, image root, mask kind, provenance."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from annonorm.schemas.types import Attributes, ClassName, RelativePath

FORMAT_NAME: Literal["annonorm"] = "annonorm"
FORMAT_VERSION: Literal[1] = 1
MANIFEST_FILE = "annonorm.json"

SplitName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Category(BaseModel):
    """One class: its contiguous 0-based ``id`` (the loader's integer label) and the source's own id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int = Field(ge=0, description="Contiguous 0-based index, in source order.")
    name: ClassName = Field(description="Unique class name, as records use it.")
    source_id: int | str | None = Field(default=None, description="The id the source format gave this class.")
    attributes: Attributes | None = Field(default=None, description="Source fields such as COCO's supercategory.")


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
    """The manifest of a normalized dataset (format version 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["annonorm"] = FORMAT_NAME
    version: Literal[1] = FORMAT_VERSION
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
