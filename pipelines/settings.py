"""Where the benchmarks and the tests find this project's copy of UCSD Ped2: one setting, read here only.

Set ``OGNET_PED2`` to a Ped2 root in either layout (``ognet-video data download ped2`` makes one).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PED2 = Path(os.environ.get("OGNET_PED2", REPO.parent / "shared" / "data" / "ped2"))
