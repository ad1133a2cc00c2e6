"""annonorm.api helpers: the manifest's source paths."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import assume, given, settings
from hypothesis import strategies as st

_SEGMENT = st.sampled_from(["a", "b", "..", ".", "c d", "é"])


@settings(max_examples=200, deadline=None)
@given(
    paths=st.lists(st.lists(_SEGMENT, min_size=1, max_size=4), max_size=8),
    out=st.lists(_SEGMENT, max_size=3),
    absolute=st.booleans(),
)
def test_manifest_source_paths_resolved_per_folder_equal_one_by_one(
    paths: list[list[str]], out: list[str], absolute: bool
) -> None:
    from annonorm.api import _relative_paths, _relative_to

    base = Path("/data/src") if absolute else Path()
    sources = [base.joinpath(*parts) for parts in paths]
    target = Path("/data/out").joinpath(*out)
    # A source is a file: never the output folder or one of its ancestors.
    resolved = os.path.abspath(target)
    assume(not any(resolved == (f := os.path.abspath(p)) or resolved.startswith(f.rstrip("/") + "/") for p in sources))
    assert _relative_paths(sources, target) == [_relative_to(path, target) for path in sources]
