"""Measured latency: single blocks and whole models timed on PyTorch or ONNX Runtime
(`measure`), the SQLite store (`store`), users' devices (`device_exchange`), the predictors
(`predictors`) and their calibration (`calibration`).

May import: edgevit, analysis.cost.
"""

from .blocks import BLOCK_KINDS, BlockAt, head_block, model_blocks, stage_blocks
from .calibration import (
    COMMITTED_CALIBRATIONS,
    MIN_ROWS_FOR_EXPONENT,
    REFERENCE_BLOCK,
    CalibrationReport,
    calibrate,
    calibrate_from_frame,
    committed_predictor,
    evaluate_calibration,
    fit_state_exponent,
    sample_configs,
)
from .device_exchange import export_onnx_bundle, import_csv, open_measurement_csv, parse_csv_row
from .measure import (
    BACKENDS,
    REFERENCE_MODEL,
    LatencyResult,
    Protocol,
    check_img_size,
    measure,
    measure_many,
    measure_relative,
    prepare,
    store_result,
    summarize,
    time_interleaved,
)
from .onnx import EXPORTERS, OnnxExportError, export_onnx, onnx_opset, onnx_rel_error, ort_session
from .predictors import (
    BlockTable,
    FeatureModel,
    LatencyPredictor,
    MacsLinear,
    PredictorScore,
    score,
)
from .store import (
    ENV_VAR,
    MeasurementStore,
    canonical_json,
    default_store_path,
    device_fingerprint,
    external_device_fingerprint,
    sha256_hex,
)

__all__ = [
    "BACKENDS",
    "BLOCK_KINDS",
    "BlockAt",
    "BlockTable",
    "COMMITTED_CALIBRATIONS",
    "CalibrationReport",
    "ENV_VAR",
    "EXPORTERS",
    "FeatureModel",
    "LatencyPredictor",
    "LatencyResult",
    "MIN_ROWS_FOR_EXPONENT",
    "MacsLinear",
    "MeasurementStore",
    "OnnxExportError",
    "PredictorScore",
    "Protocol",
    "REFERENCE_BLOCK",
    "REFERENCE_MODEL",
    "calibrate",
    "calibrate_from_frame",
    "canonical_json",
    "check_img_size",
    "committed_predictor",
    "default_store_path",
    "device_fingerprint",
    "evaluate_calibration",
    "export_onnx",
    "export_onnx_bundle",
    "external_device_fingerprint",
    "fit_state_exponent",
    "head_block",
    "import_csv",
    "measure",
    "measure_many",
    "measure_relative",
    "model_blocks",
    "onnx_opset",
    "onnx_rel_error",
    "open_measurement_csv",
    "ort_session",
    "parse_csv_row",
    "prepare",
    "sample_configs",
    "score",
    "sha256_hex",
    "stage_blocks",
    "store_result",
    "summarize",
    "time_interleaved",
]
