"""A multi-objective NNI tuner: optuna's samplers through ask/tell, budgets decided before dispatch.

NNI 3.0's tuners read one scalar (`default`); this one reads the objectives themselves from the
dict each trial reports (`accuracy` ↑, `latency_ms` ↓, and optionally `macs` ↓ / `params` ↓,
named in `classArgs.objectives`) and hands them to an optuna multi-objective study:

- `sampler: gp` (default): optuna's GPSampler on ordinal choice indices (each parameter is the
  index of its sorted choices, so the kernel relates neighbouring widths, depths and rates; the
  in-process replica reached 98.8 % of the exhaustive hypervolume in 300 trials), `tpe`
  (multivariate, constant liar) or `nsga2`, both on the categorical choices;
- trials run in parallel (`trialConcurrency` > 1): every dispatched config stays a RUNNING
  trial of the study until its result arrives, and GP and TPE condition on running trials;
- each result is paired with the config the trial echoed (`config`), not with NNI's parameter
  id alone (NNI 3.0 can mis-pair at concurrency > 1, nni#5726);
- the study lives on SQLite in the experiment's folder (`optuna_study.sqlite` beside `db/` and
  `log/`), so `nnictl resume` / `edgevit resume` continue the same study; a told trial is never
  told again, and results NNI re-imports on resume are matched by config;
- a trial that fails, reports a malformed result or a NaN objective is told as FAIL with the
  reason in its `fail_reason` attribute; the experiment goes on;
- budgets (`macs_budget`, `params_budget`, `latency_budget_ms` with a `predictor`) are checked
  with the exact cost model before dispatch: an infeasible candidate is told to the study
  (with the worst objective values seen so far, so the sampler learns to avoid the region) and
  another one is drawn; it never reaches NNI. A config already evaluated is not dispatched twice;
- with `start_with_presets`, a new study first evaluates the paper's presets (XXS, XS, S) that
  are points of the search space and meet the budgets, so the front it reports can never be
  dominated by one of them.

Use it in a config file (`search/config.yml`)::

    tuner:
      codeDirectory: ..            # the repo root, where `analysis` is importable
      className: analysis.nas.tuner.ParetoTuner
      classArgs: {sampler: gp, objectives: [accuracy, latency_ms], macs_budget: 3.0e+9, seed: 0,
                  start_with_presets: true}
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from nni.tuner import Tuner

from analysis.runtime import finite_float

if TYPE_CHECKING:  # imported where used: the dispatcher must connect to NNI within 10 s
    from edgevit.config import EdgeViTConfig

_logger = logging.getLogger("analysis.nas.tuner")

SCALE_ATTR = "accuracy_scale"  # study attribute: the scale of its accuracy values
OBJECTIVE_SENSES = {"accuracy": "maximize", "latency_ms": "minimize", "macs": "minimize",
                    "params": "minimize"}
DEFAULT_OBJECTIVES = ("accuracy", "latency_ms")
# sampler -> how it sees the space: the index of each parameter's sorted choices ("ordinal")
# or the NNI choices themselves ("categorical")
ENCODINGS = {"gp": "ordinal", "tpe": "categorical", "nsga2": "categorical"}
SAMPLERS = tuple(ENCODINGS)
STUDY_FILE = "optuna_study.sqlite"
STUDY_NAME = "edgevit-pareto"
CLASS_NAME = "analysis.nas.tuner.ParetoTuner"

# a told trial's `kind` user attribute
RESULT, INFEASIBLE, REPEATED, FAILED = "result", "infeasible", "repeated", "failed"
NO_RESULT = "trial ended without a final result"


class MetricError(ValueError):
    """A trial's final result cannot be read as the tuner's objectives."""


def param_key(params: dict[str, Any]) -> tuple[tuple[str, float], ...]:
    """A hashable identity of NNI parameters (every value of the space is a number)."""
    return tuple(sorted((name, float(value)) for name, value in params.items()))


def metric_dict(value: Any, objectives: Sequence[str]) -> dict[str, Any]:
    """A trial's final result as the dict it reported (NNI may hand it over JSON encoded);
    MetricError when it is not one."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise MetricError(f"final result {value[:80]!r} is not JSON") from None
    if not isinstance(value, dict):
        raise MetricError(f"final result {value!r} is a {type(value).__name__}, not the dict "
                          f"of objectives {list(objectives)} (the trial must report a dict)")
    return value


def read_metric(value: Any, objectives: Sequence[str]) -> tuple[tuple[float, ...],
                                                                   EdgeViTConfig | None]:
    """(objective values, echoed config or None) of a trial's final result; MetricError with
    the reason when it is not a dict, was rejected in the trial, or an objective is missing,
    not a number or not finite."""
    value = metric_dict(value, objectives)
    config = None
    if value.get("config") is not None:
        from edgevit.config import EdgeViTConfig

        try:
            config = EdgeViTConfig.from_json(value["config"])
        except (ValueError, TypeError, KeyError) as err:
            raise MetricError(f"echoed config is unreadable: {err}") from None
    if value.get("rejected"):
        raise MetricError("rejected inside the trial (over its budget)")
    values = []
    for name in objectives:
        if name not in value:
            raise MetricError(f"objective {name!r} missing from the final result "
                              f"(keys: {sorted(value)})")
        number = finite_float(value[name])
        if number is None:
            raise MetricError(f"objective {name}={value[name]!r} is not a finite number")
        values.append(number)
    return tuple(values), config


@dataclass(frozen=True)
class Budgets:
    """Limits a config must meet to be dispatched; None = no limit. Latency needs a predictor."""

    macs: float | None = None
    params: float | None = None
    latency_ms: float | None = None

    def violations(self, config: EdgeViTConfig,
                   predict_ms: Callable[[EdgeViTConfig], float] | None = None) -> list[str]:
        """Why `config` is infeasible (empty when it is feasible): exact MACs and params from
        the cost model, latency from `predict_ms`."""
        out = []
        if self.macs is not None or self.params is not None:
            from analysis.cost import model_cost

            cost = model_cost(config)
            if self.macs is not None and cost.macs > self.macs:
                out.append(f"macs {cost.macs:,} > {self.macs:,.0f}")
            if self.params is not None and cost.params > self.params:
                out.append(f"params {cost.params:,} > {self.params:,.0f}")
        if self.latency_ms is not None:
            if predict_ms is None:
                raise ValueError("a latency budget needs a predictor")
            latency = predict_ms(config)
            if not latency <= self.latency_ms:
                out.append(f"latency {latency:.2f} ms > {self.latency_ms:g} ms")
        return out


class SpaceCodec:
    """NNI `choice` parameters <-> optuna parameters and distributions."""

    def __init__(self, search_space: dict[str, dict], encoding: str) -> None:
        import optuna

        if encoding not in ("ordinal", "categorical"):
            raise ValueError(f"unknown encoding {encoding!r}; known: ordinal, categorical")
        self.encoding = encoding
        self.choices: dict[str, list] = {}
        for name, spec in search_space.items():
            if spec.get("_type") != "choice":
                raise ValueError(f"parameter {name}: only `choice` is supported, got "
                                 f"{spec.get('_type')!r}")
            values = list(spec["_value"])
            self.choices[name] = sorted(values) if encoding == "ordinal" else values
        if encoding == "ordinal":
            self.distributions = {name: optuna.distributions.IntDistribution(0, len(v) - 1)
                                  for name, v in self.choices.items()}
        else:
            self.distributions = {name: optuna.distributions.CategoricalDistribution(v)
                                  for name, v in self.choices.items()}

    def to_nni(self, optuna_params: dict[str, Any]) -> dict[str, Any]:
        if self.encoding == "ordinal":
            return {name: self.choices[name][int(optuna_params[name])] for name in self.choices}
        return {name: optuna_params[name] for name in self.choices}

    def to_optuna(self, params: dict[str, Any]) -> dict[str, Any]:
        """ValueError when a value is not one of the choices."""
        out = {}
        for name, values in self.choices.items():
            matches = [i for i, v in enumerate(values) if float(v) == float(params[name])]
            if not matches:
                raise ValueError(f"parameter {name}={params[name]!r} not in {values}")
            out[name] = matches[0] if self.encoding == "ordinal" else values[matches[0]]
        return out


def make_sampler(name: str, seed: int | None):
    """The optuna sampler behind `classArgs.sampler`."""
    import optuna

    with warnings.catch_warnings():  # multivariate TPE and deterministic GP are experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "gp":
            return optuna.samplers.GPSampler(seed=seed, deterministic_objective=True)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True,
                                              n_startup_trials=20)
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=16)
    raise ValueError(f"unknown sampler {name!r}; known: {SAMPLERS}")


def default_study_path() -> Path | None:
    """`optuna_study.sqlite` in the experiment's folder, when running under NNI's dispatcher
    (which sets NNI_LOG_DIRECTORY to the experiment's `log/`); None outside NNI."""
    log_dir = os.environ.get("NNI_LOG_DIRECTORY")
    return Path(log_dir).parent / STUDY_FILE if log_dir else None


class ParetoTuner(Tuner):
    """NNI tuner driving an optuna multi-objective study (see the module docstring).

    classArgs: sampler (gp | tpe | nsga2), objectives (names out of accuracy, latency_ms, macs,
    params), seed, macs_budget, params_budget, latency_budget_ms, predictor (a latency predictor
    JSON, needed by latency_budget_ms), study_path (default: the experiment's folder; ":memory:"
    keeps it in memory), max_redraws (draws per dispatched config before a random feasible one),
    torch_threads (of the GP sampler's torch in the dispatcher process; None leaves torch's),
    start_with_presets (a new study's first trials are the presets of the space within budget).

    The constructor only checks its arguments: NNI's manager gives the dispatcher 10 s to
    connect after starting it, and importing optuna, torch and the cost model can take longer
    on a loaded machine, so the study is opened on first use (NNI's first command,
    `update_search_space`).
    """

    end_grace_s = 60.0  # how long a SUCCEEDED trial's result may arrive after its end event

    def __init__(self, sampler: str = "gp", objectives: Sequence[str] = DEFAULT_OBJECTIVES,
                 seed: int | None = 0, macs_budget: float | None = None,
                 params_budget: float | None = None, latency_budget_ms: float | None = None,
                 predictor: str | None = None, study_path: str | None = None,
                 max_redraws: int = 100, torch_threads: int | None = 1,
                 start_with_presets: bool = False) -> None:
        objectives = tuple(objectives)
        unknown = [name for name in objectives if name not in OBJECTIVE_SENSES]
        if unknown or not objectives or len(set(objectives)) != len(objectives):
            raise ValueError(f"objectives {list(objectives)}: choose distinct names out of "
                             f"{list(OBJECTIVE_SENSES)}")
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; known: {SAMPLERS}")
        if latency_budget_ms is not None and predictor is None:
            raise ValueError("latency_budget_ms needs a predictor (classArgs.predictor)")
        if predictor is not None and not Path(predictor).is_file():
            raise ValueError(f"predictor file not found: {predictor}")
        self.objectives = objectives
        self.sampler_name = sampler
        self.seed = seed
        self.budgets = Budgets(macs_budget, params_budget, latency_budget_ms)
        self.predictor_path = predictor
        self.torch_threads = torch_threads
        if not isinstance(start_with_presets, bool):
            raise ValueError(f"start_with_presets must be true or false, got "
                             f"{start_with_presets!r}")
        self.start_with_presets = start_with_presets
        self.max_redraws = int(max_redraws)
        self._rng = np.random.default_rng(seed)
        self.study_path = Path(study_path) if study_path not in (None, ":memory:") else (
            default_study_path() if study_path is None else None)
        self._study = None
        self._predict_ms = None
        self.codec: SpaceCodec | None = None
        self._running: dict[int, int] = {}  # NNI parameter id -> optuna trial number
        self._ended_at: dict[int, float] = {}  # parameter id -> when it SUCCEEDED, no result
        self._told: dict[tuple, tuple[float, ...]] = {}  # config key -> told objective values

    @property
    def study(self):
        """The optuna study, opened (or created) on first use."""
        if self._study is None:
            self._open_study()
        return self._study

    def _open_study(self) -> None:
        import optuna

        if self.torch_threads is not None and self.sampler_name == "gp":
            # the GP sampler runs on torch; on a shared 2-core machine one ask took 21 s with
            # torch's default 2 threads and 3.1 s with 1 (102 told trials; 43 s vs 5.2 s with
            # one trial running): the dispatcher process runs nothing else
            import torch

            torch.set_num_threads(int(self.torch_threads))
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if self.predictor_path is not None:
            from analysis.latency import LatencyPredictor

            model = LatencyPredictor.load(self.predictor_path)
            self._predict_ms = lambda config: float(model.predict([config])[0])
        path, storage = self.study_path, None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
        study = optuna.create_study(
            study_name=STUDY_NAME, storage=storage, load_if_exists=True,
            sampler=make_sampler(self.sampler_name, self.seed),
            directions=[OBJECTIVE_SENSES[name] for name in self.objectives])
        if list(study.user_attrs.get("objectives", self.objectives)) != list(self.objectives):
            raise ValueError(f"study {path} optimises {study.user_attrs['objectives']}, "
                             f"not {list(self.objectives)}")
        study.set_user_attr("objectives", list(self.objectives))
        self._study = study
        self._fail_interrupted()
        for trial in study.get_trials(deepcopy=False):
            if trial.user_attrs.get("kind") == RESULT and "nni_params" in trial.user_attrs:
                self._told[param_key(trial.user_attrs["nni_params"])] = tuple(trial.values)

    # ---- study bookkeeping -----------------------------------------------------------------

    def _fail_interrupted(self) -> None:
        """Trials left RUNNING by a previous tuner process (the manager crashed or was stopped)
        end as FAIL; their results, when NNI re-runs them, arrive through `import_data` or by
        config and are added then."""
        from optuna.trial import TrialState

        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            self.study._storage.set_trial_user_attr(trial._trial_id, "fail_reason",
                                                    "interrupted: the tuner restarted")
            self.study.tell(trial.number, state=TrialState.FAIL)

    def _worst_values(self) -> tuple[float, ...] | None:
        if not self._told:
            return None
        values = np.array(list(self._told.values()))
        return tuple(float(values[:, i].min() if OBJECTIVE_SENSES[name] == "maximize"
                           else values[:, i].max()) for i, name in enumerate(self.objectives))

    def _running_keys(self) -> set[tuple]:
        trials = {t.number: t for t in self.study.get_trials(deepcopy=False)}
        return {param_key(trials[n].user_attrs["nni_params"]) for n in self._running.values()
                if n in trials and "nni_params" in trials[n].user_attrs}

    def counts(self) -> dict[str, int]:
        """Trials of the study by kind: result, failed, infeasible (never dispatched),
        repeated (a config already evaluated, not dispatched again), running."""
        return count_kinds(self.study)

    # ---- NNI's Tuner interface -------------------------------------------------------------

    def update_search_space(self, search_space: dict[str, dict]) -> None:
        self.codec = SpaceCodec(search_space, ENCODINGS[self.sampler_name])
        study = self.study  # opens the study: NNI's first command after connecting
        if self.start_with_presets and not study.get_trials(deepcopy=False):
            self._enqueue_presets()  # a new study only: a resumed one has evaluated them

    def _enqueue_presets(self) -> None:
        """Queue the presets that are points of the search space and meet the budgets as the
        study's first trials (the others are logged and skipped)."""
        from analysis.cost import DEFAULT_SPACE
        from edgevit.config import PRESETS

        assert self.codec is not None
        for name, config in PRESETS.items():
            try:
                params = DEFAULT_SPACE.encode(config)
                optuna_params = self.codec.to_optuna(params)
            except (ValueError, KeyError) as err:
                _logger.info("preset %s not queued: not a point of the search space (%s)",
                             name, err)
                continue
            violations = self._violations(params)
            if violations:
                _logger.info("preset %s not queued: %s", name, "; ".join(violations))
                continue
            self.study.enqueue_trial(optuna_params, user_attrs={"preset": name})

    def generate_parameters(self, parameter_id: int, **kwargs: Any) -> dict[str, Any]:
        """A feasible config not evaluated nor running yet; raises NoMoreTrialError when the
        space holds none."""
        from optuna.trial import TrialState

        if self.codec is None:
            raise RuntimeError("update_search_space was not called")
        self._started = time.perf_counter()
        self._fail_overdue()
        running = self._running_keys()
        for _ in range(self.max_redraws):
            trial = self.study.ask(self.codec.distributions)
            params = self.codec.to_nni(trial.params)
            key = param_key(params)
            trial.set_user_attr("nni_params", params)
            if key in self._told:  # a deterministic objective: tell what it gave before
                trial.set_user_attr("kind", REPEATED)
                self.study.tell(trial, self._told[key])
                continue
            if key in running:
                trial.set_user_attr("kind", REPEATED)
                trial.set_user_attr("fail_reason", "the same config is running")
                self.study.tell(trial, state=TrialState.FAIL)
                continue
            violations = self._violations(params)
            if violations:
                self._tell_infeasible(trial, violations)
                continue
            return self._dispatch(trial, params, parameter_id)
        params = self._random_feasible(running)
        self.study.enqueue_trial(self.codec.to_optuna(params))
        trial = self.study.ask(self.codec.distributions)
        trial.set_user_attr("nni_params", params)
        trial.set_user_attr("drawn", "uniform, after max_redraws infeasible or repeated draws")
        return self._dispatch(trial, params, parameter_id)

    def receive_trial_result(self, parameter_id: int, parameters: dict[str, Any], value: Any,
                             **kwargs: Any) -> None:
        try:
            metric = metric_dict(value, self.objectives)
            values, config = read_metric(metric, self.objectives)
            self._check_scale(metric)
        except MetricError as err:
            self._fail(parameter_id, f"trial result not used: {err}")
            return
        echoed = self._echoed_params(config, parameters)
        self._tell_result(echoed, values, parameter_id)

    def _check_scale(self, metric: dict[str, Any]) -> None:
        """MetricError when a result's `accuracy_scale` (what its accuracy value is; None from
        a trial older than the field) differs from the scale of the results the study holds:
        the first result's, recorded in the study (None for a study older than the record).
        A proxy redefined between a search and its resume would otherwise mix two scales.
        `metric` is the result decoded (`metric_dict`)."""
        if "accuracy" not in self.objectives:
            return
        scale = metric.get("accuracy_scale")
        if SCALE_ATTR not in self.study.user_attrs:
            self.study.set_user_attr(SCALE_ATTR, None if self._told else scale)
        recorded = self.study.user_attrs[SCALE_ATTR]
        if scale != recorded:
            raise MetricError(f"its accuracy_scale {scale!r} is not the {recorded!r} of the "
                              "study's results (the method redefined by an upgrade between "
                              "the search and its resume?): start a new experiment")

    def trial_end(self, parameter_id: int, success: bool, **kwargs: Any) -> None:
        """A trial that ended FAILED (crashed, killed, timed out) is failed at once. One that
        SUCCEEDED without a result yet stays pending for `end_grace_s` seconds (NNI can send
        the end event before the final result), then fails at the next dispatch."""
        if success and parameter_id in self._running:
            self._ended_at.setdefault(parameter_id, time.monotonic())
            return
        self._fail(parameter_id, "trial ended FAILED (see its trial.stderr)")

    def _fail_overdue(self) -> None:
        now = time.monotonic()
        for parameter_id, ended in list(self._ended_at.items()):
            if parameter_id not in self._running:
                del self._ended_at[parameter_id]
            elif now - ended > self.end_grace_s:
                self._fail(parameter_id, NO_RESULT)

    def import_data(self, data: list[dict[str, Any]]) -> None:
        """Results NNI hands over on resume (or `nnictl experiment import`): each one not told
        yet is added to the study; the ones already there are skipped."""
        for entry in data:
            try:
                metric = metric_dict(entry.get("value"), self.objectives)
                values, config = read_metric(metric, self.objectives)
                self._check_scale(metric)
            except MetricError as err:
                _logger.info("imported result skipped: %s", err)
                continue
            params = self._echoed_params(config, entry.get("parameter") or {})
            if param_key(params) not in self._told:
                self._tell_result(params, values, parameter_id=None)

    def save_checkpoint(self) -> None:  # the study is saved on every tell
        pass

    def load_checkpoint(self) -> None:
        pass

    # ---- helpers ---------------------------------------------------------------------------

    def _violations(self, params: dict[str, Any]) -> list[str]:
        from analysis.cost import DEFAULT_SPACE

        return self.budgets.violations(DEFAULT_SPACE.decode(params), self._predict_ms)

    def _tell_infeasible(self, trial: Any, violations: list[str]) -> None:
        from optuna.trial import TrialState

        trial.set_user_attr("kind", INFEASIBLE)
        trial.set_user_attr("fail_reason", "; ".join(violations))
        worst = self._worst_values()
        if worst is None:
            self.study.tell(trial, state=TrialState.FAIL)
        else:
            self.study.tell(trial, worst)

    def _dispatch(self, trial: Any, params: dict[str, Any], parameter_id: int
                  ) -> dict[str, Any]:
        trial.set_user_attr("nni_parameter_id", parameter_id)
        trial.set_user_attr("generate_s", time.perf_counter() - self._started)
        self._running[parameter_id] = trial.number
        return params

    def _random_feasible(self, running: set[tuple]) -> dict[str, Any]:
        from nni import NoMoreTrialError

        assert self.codec is not None
        for _ in range(100_000):
            params = {name: values[int(self._rng.integers(len(values)))]
                      for name, values in self.codec.choices.items()}
            key = param_key(params)
            if key not in self._told and key not in running and not self._violations(params):
                return params
        raise NoMoreTrialError("no feasible config left that was not evaluated")

    def _echoed_params(self, config: EdgeViTConfig | None, parameters: dict[str, Any]
                       ) -> dict[str, Any]:
        """The parameters the trial really ran: its echoed config when there is one."""
        if config is None:
            return dict(parameters)
        from analysis.cost import DEFAULT_SPACE

        return DEFAULT_SPACE.encode(config)

    def _tell_result(self, params: dict[str, Any], values: tuple[float, ...],
                     parameter_id: int | None) -> None:
        """Tell `values` to the running trial of `params`: the one dispatched with
        `parameter_id` when its config is the echoed one, else any running trial of that
        config (NNI mis-paired), else a new trial (a result from before a restart)."""
        import optuna

        key = param_key(params)
        trials = {t.number: t for t in self.study.get_trials(deepcopy=False)}
        number = self._running.get(parameter_id) if parameter_id is not None else None
        if number is None or param_key(trials[number].user_attrs["nni_params"]) != key:
            number = next((n for n in self._running.values()
                           if param_key(trials[n].user_attrs["nni_params"]) == key), None)
        if key in self._told:
            _logger.info("config reported twice (parameter id %s): kept the first result",
                         parameter_id)
            if number is not None:
                self._forget(number)
                self.study._storage.set_trial_user_attr(trials[number]._trial_id, "kind",
                                                        REPEATED)
                self.study.tell(number, self._told[key])
            return
        if number is not None:
            self._forget(number)
            self.study._storage.set_trial_user_attr(trials[number]._trial_id, "kind", RESULT)
            self.study.tell(number, values)
        else:
            self.study.add_trial(optuna.trial.create_trial(
                values=list(values), params=self.codec.to_optuna(params),
                distributions=self.codec.distributions,
                user_attrs={"kind": RESULT, "nni_params": params, "added": "by config"}))
        self._told[key] = values

    def _forget(self, number: int) -> None:
        for parameter_id, n in list(self._running.items()):
            if n == number:
                del self._running[parameter_id]

    def _fail(self, parameter_id: int, reason: str) -> None:
        """Tell the running trial of `parameter_id` as FAIL with `reason` (nothing when it was
        told already)."""
        from optuna.trial import TrialState

        number = self._running.pop(parameter_id, None)
        self._ended_at.pop(parameter_id, None)
        if number is None:
            return
        _logger.warning("parameter id %s (optuna trial %d) told as failed: %s", parameter_id,
                        number, reason)
        trial = self.study.get_trials(deepcopy=False)[number]
        self.study._storage.set_trial_user_attr(trial._trial_id, "kind", FAILED)
        self.study._storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
        self.study.tell(number, state=TrialState.FAIL)


def tuner_config(sampler: str = "gp", *, objectives: Sequence[str] = DEFAULT_OBJECTIVES,
                 seed: int = 0, macs_budget: float | None = None,
                 params_budget: float | None = None, latency_budget_ms: float | None = None,
                 predictor: str | os.PathLike[str] | None = None,
                 start_with_presets: bool = True) -> dict[str, Any]:
    """The `tuner:` block of an NNI experiment config that runs `ParetoTuner`."""
    from .experiment import REPO_ROOT

    class_args: dict[str, Any] = {"sampler": sampler, "objectives": list(objectives),
                                  "seed": seed, "start_with_presets": start_with_presets}
    for name, value in (("macs_budget", macs_budget), ("params_budget", params_budget),
                        ("latency_budget_ms", latency_budget_ms)):
        if value is not None:
            class_args[name] = float(value)
    if predictor is not None:
        class_args["predictor"] = str(predictor)
    return {"codeDirectory": str(REPO_ROOT), "className": CLASS_NAME, "classArgs": class_args}


def read_study(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Counts of a stored study by kind (see `ParetoTuner.counts`) and its objectives."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{path}")
    return dict(count_kinds(study), objectives=study.user_attrs.get("objectives"))


def generate_seconds(path: str | os.PathLike[str]) -> list[float]:
    """Seconds ParetoTuner spent on each dispatched config (draws, feasibility checks and
    redraws included), from a stored study."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{path}")
    return [t.user_attrs["generate_s"] for t in study.get_trials(deepcopy=False)
            if "generate_s" in t.user_attrs]


def count_kinds(study: Any) -> dict[str, int]:
    """Trials of an optuna study by `kind`: result, failed, infeasible, repeated, running."""
    from optuna.trial import TrialState

    out = {RESULT: 0, FAILED: 0, INFEASIBLE: 0, REPEATED: 0, "running": 0}
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.RUNNING:
            out["running"] += 1
        else:
            out[trial.user_attrs.get("kind", FAILED)] += 1
    return out
