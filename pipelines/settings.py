"""Where the benchmarks and the tests find this project's copies of UCSD Ped2 and Ped1: one setting each, read here only.

Set ``OGNET_PED2`` to a Ped2 root in either layout (``ognet-video data download ped2`` makes one), ``OGNET_PED1``
to a Ped1 root (all of Ped1 or some of its clips; ``ognet-video data download ped1`` makes one).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PED2 = Path(os.environ.get("OGNET_PED2", REPO.parent / "shared" / "data" / "ped2"))
PED1 = Path(os.environ.get("OGNET_PED1", REPO.parent / "shared" / "data" / "ped1"))
