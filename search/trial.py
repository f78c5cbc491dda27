"""One NNI trial: decode the parameters, cost them exactly, predict latency, score accuracy.

Runs alone too: outside an experiment `nni.get_next_parameter()` returns {} and the XXS
preset's parameters are used. Reports `nni.report_final_result` with a dict holding `default`
(the scalarised reward), `macs`, `params`, `latency_ms`, `accuracy`, the accuracy method's name
and what its value is (`accuracy_scale`), and the trial's own decoded config as JSON (`config`):
NNI 3.0 can pair metrics with the wrong parameters, so the Pareto code trusts only this echo.
With `--measure-store` the trial also times its config on the worker and appends the
measurement to a SQLite store shared by parallel trials (`measured_latency_ms`,
`measurement_id`); with `--timeout-s` a hung trial fails with its stack instead of holding a
slot.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import math
import sys
from typing import Any

import nni

from analysis.accuracy import AccuracyMethod
from analysis.cost import DEFAULT_SPACE, model_cost
from analysis.latency import LatencyPredictor
from analysis.nas import (
    accuracy_objective,
    default_accuracy_method,
    draw_tchebycheff_weights,
    mnas_reward,
    objective_ranges,
    tchebycheff_reward,
)
from edgevit import EdgeViTConfig, preset_config

DEFAULT_MACS_BUDGET = 3_000_000_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictor", required=True, help="latency predictor JSON")
    parser.add_argument("--accuracy", default=None,
                        help="proxy:NAME | train:digits | train:PATH (default: the proxy "
                             "study's pick, best per second of compute)")
    parser.add_argument("--macs-budget", type=float, default=DEFAULT_MACS_BUDGET,
                        help="configs above this many MACs are rejected at once")
    parser.add_argument("--scalarization", choices=("tchebycheff", "mnas", "none"),
                        default="tchebycheff",
                        help="how `default` (what NNI's built-in tuners maximise) is made: "
                             "augmented Tchebycheff on objectives scaled over stated ranges "
                             "(any sign and scale), MnasNet's reward (positive accuracy "
                             "only), or none (default = accuracy, for a multi-objective "
                             "tuner such as ParetoTuner that reads the objectives)")
    parser.add_argument("--target-ms", type=float, default=None,
                        help="MnasNet latency target (default: the XXS preset's prediction)")
    parser.add_argument("--mnas-w", type=float, default=-0.07)
    parser.add_argument("--weights-seed", type=int, default=0,
                        help="seed of the experiment's Tchebycheff weights")
    parser.add_argument("--accuracy-range", type=float, nargs=2, default=None)
    parser.add_argument("--latency-range-ms", type=float, nargs=2, default=None)
    parser.add_argument("--timeout-s", type=float, default=None,
                        help="a trial still running after this many seconds prints every "
                             "thread's stack and exits with status 1 (NNI: FAILED)")
    parser.add_argument("--measure-store", default=None, metavar="PATH",
                        help="also measure the config's latency on this worker (PyTorch eager, "
                             "1 thread) and append it to this SQLite measurement store")
    parser.add_argument("--measure-img-size", type=int, default=224,
                        help="input H = W in pixels of that measurement")
    parser.add_argument("--measure-runs", type=int, default=5,
                        help="timed forwards of that measurement")
    return parser.parse_args(argv)


def arm_watchdog(timeout_s: float | None) -> None:
    """Exit with status 1 after `timeout_s` seconds, printing where every thread was.

    `faulthandler` fires from a C watchdog thread, so a trial stuck inside C code (a blocked
    read, a deadlocked library) is ended too, which a Python signal handler could not do.
    """
    if timeout_s is None:
        return
    if not (math.isfinite(timeout_s) and timeout_s > 0):
        raise ValueError(f"--timeout-s {timeout_s}: must be a positive number of seconds")
    print(f"trial timeout: {timeout_s:g} s; past it the trial fails with its stack below",
          file=sys.stderr, flush=True)
    faulthandler.dump_traceback_later(timeout_s, exit=True)


def measure_into_store(config: EdgeViTConfig, args: argparse.Namespace
                       ) -> dict[str, Any]:
    """Time `config` on this worker and append the result to `args.measure_store`."""
    from analysis.latency import MeasurementStore, Protocol, measure, store_result

    protocol = Protocol(warmup_runs=1, min_runs=args.measure_runs, max_runs=args.measure_runs,
                        min_time_s=0.0, max_attempts=1)
    size = (args.measure_img_size, args.measure_img_size)
    result = measure(config, backend="torch", threads=1, img_size=size, protocol=protocol)
    with MeasurementStore(args.measure_store) as store:
        measurement_id = store_result(store, result)
    return {"measured_latency_ms": result.latency_ms, "measurement_id": measurement_id}


def run_trial(params: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Evaluate one point of the search space; raises ValueError on a NaN or bad input."""
    config = DEFAULT_SPACE.decode(params)
    if args.accuracy is None:
        args.accuracy = default_accuracy_method()
    method = AccuracyMethod.parse(args.accuracy)
    args.accuracy = str(method)  # canonical, as outputs name it
    cost = model_cost(config)
    result: dict[str, Any] = {
        "macs": cost.macs, "params": cost.params, "accuracy_method": args.accuracy,
        "accuracy_scale": method.scale,
        "config": config.to_json(), "rejected": False,
    }
    if cost.macs > args.macs_budget:
        # a reward below every admissible one; the Pareto code skips rejected rows
        return dict(result, default=-1.0, rejected=True, latency_ms=None, accuracy=None)
    predictor = LatencyPredictor.load(args.predictor)
    latency_ms = float(predictor.predict([config])[0])
    accuracy = float(accuracy_objective(args.accuracy).evaluate(config))
    for name, value in (("latency_ms", latency_ms), ("accuracy", accuracy)):
        if not math.isfinite(value):
            raise ValueError(f"trial objective {name} is {value}: not reported")
    if latency_ms <= 0:
        raise ValueError(f"predicted latency {latency_ms} ms is not positive")
    if args.measure_store is not None:
        result.update(measure_into_store(config, args))
    if args.scalarization == "none":
        reward = accuracy
    elif args.scalarization == "mnas":
        target = args.target_ms
        if target is None:
            target = float(predictor.predict([preset_config("edgevit_xxs")])[0])
        reward = mnas_reward(accuracy, latency_ms, target, args.mnas_w)
    else:
        ranges = (args.accuracy_range, args.latency_range_ms)
        if None in ranges:  # stated once per experiment by `edgevit search`; else derived here
            ranges = objective_ranges(args.accuracy, predictor.predict)
        reward = tchebycheff_reward(
            accuracy, latency_ms, weights=draw_tchebycheff_weights(args.weights_seed),
            accuracy_range=tuple(ranges[0]), latency_range_ms=tuple(ranges[1]),
        )
    return dict(result, default=float(reward), latency_ms=latency_ms, accuracy=accuracy)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    arm_watchdog(args.timeout_s)
    params = nni.get_next_parameter() or DEFAULT_SPACE.encode(
        preset_config("edgevit_xxs"))
    try:
        result = run_trial(params, args)
    except ValueError as err:  # a broken predictor, a NaN objective: the trial fails, one line
        print(f"trial: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    nni.report_final_result(result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
