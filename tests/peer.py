"""Where the peer datasets (../shared/peer_data, written by other projects' test suites) are."""

from __future__ import annotations

import os
from pathlib import Path

_CANDIDATES = [
    Path(os.environ["ANNONORM_PEER_DATA"]) if os.environ.get("ANNONORM_PEER_DATA") else None,
    Path(__file__).resolve().parents[2] / "shared" / "peer_data" / "datumaro",  # shared/ beside the checkout
    Path("/work/shared/peer_data/datumaro"),
]

#: The datumaro peer data directory (the first candidate that exists; the last one otherwise).
PEER_DATA = next((p for p in _CANDIDATES if p is not None and p.is_dir()), _CANDIDATES[-1])
