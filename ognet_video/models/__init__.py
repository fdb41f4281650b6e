"""The model: the networks, their weights on disk and the loaded detector.

``model``: G and D (presets ``cpu``, ``paper``); ``checkpoint``: safetensors weights + JSON metadata (atomic writes,
no pickle); ``stored_config``: a trained model's stored config as this version reads it; ``detector``: the loaded
model and its ``Calibration``; ``onnx_backend`` and ``export``: the exported ONNX model and the runtimes that run it.
"""
