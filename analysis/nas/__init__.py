"""Architecture search: objectives (accuracy, latency, scalarisation), Pareto math, the NNI
experiment runner and database reader, the ParetoTuner (optuna inside `nnictl`), the report,
the closed loop that measures the front, and the tuner comparison. The only package that
imports nni or optuna.

May import: edgevit, analysis.cost, analysis.runtime, analysis.counters, analysis.latency,
analysis.accuracy.

The public names below load their module on first use (PEP 562): NNI gives a tuner's process
10 s to connect, so `import analysis.nas.tuner` must not pull in nni, optuna and every other
module of the package.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "closed_loop": ("LoopRound", "close_the_loop", "loop_summary", "machine_ratios"),
    "experiment": ("ExperimentError", "NNI_BUILTIN_TUNERS", "PARETO_TUNERS", "SearchSettings",
                   "WORKING_TUNERS", "experiment_config", "experiment_processes",
                   "in_private_netns", "is_manager", "kill_processes", "load_config_file",
                   "private_netns_command", "resume_search", "run_experiment", "run_search",
                   "run_with_nnictl", "warn_exposed"),
    "objectives": ("AccuracyObjective", "accuracy_objective", "default_accuracy_method",
                   "draw_tchebycheff_weights", "mnas_reward", "objective_ranges",
                   "tchebycheff_reward"),
    "pareto": ("experiment_folder", "hypervolume", "hypervolume_curve", "nni_database",
               "nni_home", "non_dominated", "read_nni_trials", "registered_experiments"),
    "report": ("REFERENCE_MARGIN", "SENSES", "UNRECORDED_SCALE", "ExhaustiveFront",
               "check_scales", "exhaustive_front", "front_figure", "front_table",
               "preset_dominance", "preset_points",
               "reference_point", "trial_frame", "value_name", "write_offline_html",
               "write_report"),
    "study_front": ("study_front",),
    "tuner": ("STUDY_FILE", "MetricError", "ParetoTuner", "SpaceCodec", "read_metric",
              "read_study"),
    "tuner_comparison": ("NNI_TUNERS", "OPTUNA_ENCODINGS", "OPTUNA_SAMPLERS", "SpaceObjectives",
                         "compare", "hypervolume_by_trial", "run_optuna", "suggest_params"),
}
_MODULE_OF = {name: module for module, names in _PUBLIC.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'analysis.nas' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value
