"""`edgevit calibrate` and `edgevit predict`: latency predictors for a device."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from .common import (
    MIN_TIME,
    RUNS,
    SEED,
    THREADS,
    CliError,
    add_command,
    image_size,
    ranged_int,
    resolve_config,
    strict_int,
)

PREDICTOR_KINDS = ("features_gp", "block_table", "macs_linear", "transfer_per_kind")


def _prior(path: str | None):
    """The --prior predictor: a features-GP of other settings, or None."""
    from analysis.latency import FeatureModel, LatencyPredictor

    if path is None:
        return None
    try:
        prior = LatencyPredictor.load(path)
    except ValueError as err:
        raise CliError(f"--prior {path}: {str(err).splitlines()[0]}") from None
    if not isinstance(prior, FeatureModel):
        raise CliError(f"--prior {path} is a {prior.kind} predictor; a transfer starts from a "
                       "features_gp one (`edgevit calibrate --kind features_gp`)")
    return prior


def cmd_calibrate(args: argparse.Namespace) -> dict:
    from analysis.latency import MeasurementStore, Protocol, calibrate, calibrate_from_frame

    prior = _prior(args.prior)
    kind = args.kind or ("transfer_per_kind" if prior is not None else "features_gp")
    if kind == "transfer_per_kind" and prior is None:
        raise CliError("--kind transfer_per_kind needs --prior: the features_gp predictor of "
                       "other settings to adapt")
    store = MeasurementStore(args.store)
    if args.from_store:
        predictors, report = calibrate_from_frame(store.to_dataframe(), device=args.device,
                                                  seed=args.seed, prior=prior)
    else:
        if args.budget < 4:
            raise CliError(f"--budget {args.budget}: need at least 4 configs to hold some out")
        protocol = Protocol(min_runs=args.runs, min_time_s=args.min_time)
        predictors, report = calibrate(
            device=args.device, budget=args.budget, threads=args.threads,
            img_size=image_size(args.img_size), seed=args.seed, store=store,
            with_blocks=args.kind == "block_table" or args.all_predictors,
            protocol=protocol, strategy=args.strategy, progress=not args.json, prior=prior,
        )
    if kind not in predictors:
        raise CliError(f"predictor {kind!r} was not fitted (block measurements needed)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    predictors[kind].save(out)
    if not args.json:
        print(report.table())
        print(f"saved the {kind} predictor to {out} ({report.seconds:.0f} s)")
    return {"device": args.device, "predictor": kind, "out": str(out),
            "scores": report.scores, "noise_floor": report.noise_floor,
            "train_count": report.train_count, "test_count": report.test_count,
            "seconds": report.seconds,
            # imported rows were not timed against a reference: none to report
            "reference_latency_ms": (report.reference_latency_ms
                                     if math.isfinite(report.reference_latency_ms) else None)}


def cmd_predict(args: argparse.Namespace) -> dict:
    from analysis.latency import INTERVAL_LEVEL, LatencyPredictor

    config = resolve_config(args.model)
    predictor = LatencyPredictor.load(args.predictor)
    try:
        predictor.check_settings(
            backend=args.backend, threads=args.threads, batch_size=args.batch_size,
            img_size=image_size(args.img_size) if args.img_size else None)
    except ValueError as err:
        raise CliError(f"{args.predictor}: {err}") from None
    latency_ms = float(predictor.predict([config])[0])  # ValueError unless finite and > 0
    settings = predictor.settings
    out = {"model": config.name, "latency_ms": latency_ms, "predictor": predictor.kind,
           "settings": settings.to_dict(), "device": settings.device,
           "img_size": list(settings.img_size)}
    interval = ""
    if math.isfinite(predictor.interval_log_halfwidth):
        low, high = (float(v[0]) for v in predictor.interval([config]))
        out.update(interval_ms=[low, high], interval_level=INTERVAL_LEVEL)
        interval = f" ({INTERVAL_LEVEL:.0%} interval {low:.2f}–{high:.2f})"
    if not args.json:
        print(f"{config.name}: {latency_ms:.2f} ms{interval} predicted by {predictor.kind} "
              f"for {settings.describe()}")
    return out


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "calibrate", cmd_calibrate,
                    "measure sampled configs, fit latency predictors, report held-out error",
                    model=False)
    p.add_argument("--device", required=True, help="name of the device being calibrated")
    p.add_argument("--budget", type=ranged_int(1, 10_000), default=60,
                   help="whole-model measurements")
    p.add_argument("--out", default="predictor.json")
    p.add_argument("--kind", choices=PREDICTOR_KINDS, default=None,
                   help="which fitted predictor to save (default features_gp; with --prior "
                        "transfer_per_kind)")
    p.add_argument("--prior", default=None, metavar="PREDICTOR",
                   help="a features_gp predictor of other settings (threads, input size, "
                        "back-end, device): also fit its per-kind transfer, which needs only "
                        "10-20 measurements of the new settings")
    p.add_argument("--all-predictors", action="store_true",
                   help="also measure blocks to fit and score the block table")
    p.add_argument("--from-store", action="store_true",
                   help="fit on the device's stored (e.g. imported) measurements instead")
    p.add_argument("--threads", type=THREADS, default=1,
                   help="intra-op threads (default 1: steadiest where other work shares the CPU)")
    p.add_argument("--strategy", choices=("random", "active"), default="random",
                   help="training configs drawn uniformly, or a third so and the rest where the "
                        "predictor is least certain (the space's extremes included)")
    p.add_argument("--img-size", type=strict_int, nargs="+", metavar="H W")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--runs", type=RUNS, default=20, help="minimum timed runs per measurement")
    p.add_argument("--min-time", type=MIN_TIME, default=0.5, help="minimum timed seconds")
    p.add_argument("--store", default=None, help="measurement store (default: user data dir)")
    p = add_command(sub, "predict", cmd_predict, "predicted latency of a model")
    p.add_argument("--predictor", required=True, help="predictor JSON from `edgevit calibrate`")
    p.add_argument("--backend", default=None,
                   help="back-end the latency is wanted for (default: the predictor's)")
    p.add_argument("--threads", type=THREADS, default=None,
                   help="threads the latency is wanted for (default: the predictor's)")
    p.add_argument("--batch-size", type=ranged_int(1, 65_536), default=None,
                   help="batch size the latency is wanted for (default: the predictor's)")
