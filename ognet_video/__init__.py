"""ognet-video: OGNet ("Old is Gold", CVPR 2020) anomaly detection for fixed-camera video."""

__version__ = "0.1.0"
