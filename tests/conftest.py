"""Shared fixtures and hypothesis profiles."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

# The loader's index cache goes to the user cache directory: keep the suite's out of the real one.
if "ANNONORM_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["ANNONORM_CACHE_DIR"] = tempfile.mkdtemp(prefix="annonorm-test-cache-")


# ---------------------------------------------------------------------------------------------- unlistable folders


@pytest.fixture
def unlistable(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Make ``os.scandir`` of one folder fail as a folder without read permission does.

    (``chmod 0`` does not stop root, who may run this suite.)
    """

    def lock(folder: Path) -> None:
        real_scandir = os.scandir

        def scandir(path: Any) -> Any:
            if Path(str(path)) == folder:
                raise PermissionError(13, "Permission denied", str(path))
            return real_scandir(path)

        monkeypatch.setattr(os, "scandir", scandir)

    return lock


# ---------------------------------------------------------------------------------------------- peer data
# Tests that read ../shared/peer_data (third-party datasets) skip, with the reason shown, in a local run
# where it is absent; .ci/run sets ANNONORM_REQUIRE_PEER_DATA=1 so that CI fails at once instead.

import inspect  # noqa: E402

from peer import PEER_DATA  # noqa: E402

_PEER_MISSING = (
    f"peer data not found at {PEER_DATA}: the suite expects ../shared/peer_data beside the checkout "
    "(or ANNONORM_PEER_DATA=DIR)"
)


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("ANNONORM_REQUIRE_PEER_DATA") and not PEER_DATA.is_dir():
        raise pytest.UsageError(_PEER_MISSING)


def _uses_peer_data(item: pytest.Item) -> bool:
    function = getattr(item, "function", None)
    try:
        if function is not None and ("PEER" in inspect.getsource(function) or "peer_data" in item.nodeid):
            return True
    except (OSError, TypeError):
        pass
    params = getattr(getattr(item, "callspec", None), "params", {})
    peer = str(PEER_DATA.parent)
    return any(isinstance(v, (str, Path)) and str(v).startswith(peer) for v in _flatten(params.values()))


def _flatten(values: object) -> list[object]:
    out: list[object] = []
    stack = [values]
    while stack:
        value = stack.pop()
        if isinstance(value, (list, tuple, set)) or type(value).__name__ == "dict_values":
            stack.extend(value)  # type: ignore[arg-type]
        elif isinstance(value, dict):
            stack.extend(value.values())
        else:
            out.append(value)
    return out


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if PEER_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=_PEER_MISSING)
    for item in items:
        if _uses_peer_data(item):
            item.add_marker(skip)
