"""What a measurement ran on, recorded next to it.

A seeded GAN run is only repeatable on the same software and hardware: OpenCV's optical flow changes
between releases (5.0 vs 4.14 differ by up to 0.1 px on Ped2 frames, which alone redraws the trained
networks), and another CPU can take other float kernels. So every result and checkpoint names its host.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch


def cpu_model() -> str:
    """The CPU's marketing name where Linux tells it, else what ``platform`` knows."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text(errors="replace").splitlines():
            if line.startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def host_info() -> dict[str, Any]:
    """The CPU and the library versions that decide a seeded run's numbers (and its speed)."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "opencv": cv2.__version__,
        "numpy": np.__version__,
    }


def host_line(info: dict[str, Any] | None = None) -> str:
    """One line for a results table: ``AMD EPYC, 2 cores, 2 threads, torch 2.13.0+cpu, OpenCV 5.0.0, numpy 2.4.6``."""
    i = info or host_info()
    return (f"{i['cpu']}, {i['cores']} cores, {i['torch_threads']} threads, torch {i['torch']}, "
            f"OpenCV {i['opencv']}, numpy {i['numpy']}")  # fmt: skip
