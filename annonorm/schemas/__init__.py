"""Pydantic models of the annonorm format: the single source of truth."""

from annonorm.schemas.manifest import FORMAT_VERSION, MANIFEST_FILE, Category, Manifest, Source, SourceFile
from annonorm.schemas.record import Box, Record

__all__ = ["FORMAT_VERSION", "MANIFEST_FILE", "Box", "Category", "Manifest", "Record", "Source", "SourceFile"]


def json_schemas() -> dict[str, dict[str, object]]:
    """The JSON Schema of each file kind, by file name (what ``annonorm schema`` writes)."""
    return {
        "manifest.schema.json": Manifest.model_json_schema(),
        "record.schema.json": Record.model_json_schema(),
    }
