"""Datasets: clips of frame files, with frame labels for test clips."""

from ognet_video.data.dataset import Clip, Dataset, load_dataset, read_gray

__all__ = ["Clip", "Dataset", "load_dataset", "read_gray"]
