"""Measured latency: single blocks and whole models timed on PyTorch or ONNX Runtime
(`measure`), the SQLite store (`store`), users' devices (`device_exchange`), the predictors
(`predictors`) and their calibration (`calibration`).

May import: edgevit, analysis.cost.
"""
