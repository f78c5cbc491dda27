"""The `edgevit` command line: info and demo, and clear errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from analysis.cli import main
from edgevit import PRESETS, EdgeViTConfig


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_info_json_reports_params_and_stage_shapes(capsys) -> None:
    code, out, _ = run_cli(capsys, "info", "edgevit_xs", "--img-size", "512", "512", "--json")
    result = json.loads(out)
    assert code == 0
    assert result["params"] == 6_770_056
    assert [(s["channels"], s["height"]) for s in result["stages"]] == [
        (48, 128), (96, 64), (240, 32), (384, 16)
    ]


def test_info_reads_a_config_file(tmp_path, capsys) -> None:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(PRESETS["edgevit_xxs"].replace(depths=(1, 1, 1, 1)).to_dict()))
    code, out, _ = run_cli(capsys, "info", str(path), "--json")
    assert code == 0 and json.loads(out)["config"]["depths"] == [1, 1, 1, 1]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["info", "edgevit_xxxl"], "unknown model"),
        (["info", "missing.json"], "config file not found"),
        (["info", "edgevit_xxs", "--img-size", "16", "16"], "H, W ≥ 32"),
        (["info", "edgevit_xxs", "--img-size", "1", "2", "3"], "takes H W"),
    ],
)
def test_bad_input_is_one_clear_line(capsys, argv, message) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_malformed_and_impossible_config_files(tmp_path, capsys) -> None:
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    impossible = tmp_path / "impossible.json"
    impossible.write_text(json.dumps(dict(PRESETS["edgevit_xxs"].to_dict(), head_dim=7)))
    for path, message in ((bad_json, "malformed JSON"), (impossible, "head_dim")):
        code, _, err = run_cli(capsys, "info", str(path))
        assert code == 2 and message in err


@pytest.mark.parametrize("name, params", [("edgevit_xxs", 4_067_704),
                                          ("edgevit_xs", 6_770_056), ("edgevit_s", 13_108_168)])
def test_console_script_info(name: str, params: int) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "analysis.cli", "info", name, "--json"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    assert json.loads(proc.stdout)["params"] == params


@pytest.mark.parametrize("command", ["search", "demo", "resume"])
def test_a_failed_experiment_is_one_clear_line(tmp_path, capsys, monkeypatch, command) -> None:
    """search, demo and resume all end a failed NNI run with its first line and exit 2."""
    import analysis.nas.experiment
    from analysis.latency import MacsLinear, canonical_json, device_fingerprint, sha256_hex

    def fail(*args, **kwargs):
        raise analysis.nas.experiment.ExperimentError("experiment abc123 FAILED: tuner crashed\n"
                                                  "dispatcher log tail ...")

    monkeypatch.setattr(analysis.nas.experiment, "run_search", fail)
    monkeypatch.setattr(analysis.nas.experiment, "resume_search", fail)
    predictor = MacsLinear(slope_ms_per_gmac=40.0, intercept_ms=3.0)
    predictor.device = "this-machine-" + sha256_hex(canonical_json(device_fingerprint()))[:8]
    predictor.save(tmp_path / "predictor.json")  # demo reuses it instead of calibrating
    database = tmp_path / "nni" / "abc123" / "db" / "nni.sqlite"  # a crashed experiment's
    database.parent.mkdir(parents=True)
    database.touch()
    argv = {"search": ["search", "--predictor", str(tmp_path / "predictor.json")],
            "demo": ["demo", "--out", str(tmp_path)],
            "resume": ["resume", "abc123", "--predictor", str(tmp_path / "predictor.json"),
                       "--experiments-dir", str(tmp_path / "nni")]}
    code, _, err = run_cli(capsys, *argv[command], "--expose")
    assert code == 2, err
    assert "tuner crashed" in err and "internal error" not in err and err.count("\n") == 1


@pytest.mark.parametrize("command", [["info"], ["flops"], ["flops", "--counter", "torch"],
                                     ["bench"], ["accuracy", "--method", "proxy:params"],
                                     ["export-onnx", "--out", "OUT"]])
def test_huge_configs_are_counted_or_refused_without_building(tmp_path, capsys, command):
    """A config with 10⁷ classes and 16,384-wide stages: the counting commands answer from the
    cost model, the building ones refuse it by its exact size, all in bounded memory."""
    huge = EdgeViTConfig(widths=(16384, 16384, 16384, 16384), depths=(1, 1, 1, 64),
                         sample_rates=(4, 2, 2, 1), head_dim=64, num_classes=1_000_000)
    path = tmp_path / "huge.json"
    path.write_text(huge.to_json())
    argv = [command[0], str(path), *[str(tmp_path / "out") if a == "OUT" else a
                                     for a in command[1:]], "--json"]
    if command[0] == "bench":
        argv += ["--store", str(tmp_path / "s.sqlite")]
    code = main(argv)
    out, err = capsys.readouterr()
    if command in (["info"], ["flops"]):
        assert code == 0 and json.loads(out)["params"] > 10**10
    else:
        assert code == 2 and "not built" in err and "GiB" in err and err.count("\n") == 1
    assert not (tmp_path / "s.sqlite").exists()  # refused before the store is opened


@pytest.mark.parametrize("argv", [["info", "edgevit_xxs", "--img-size", "2_24"],
                                  ["info", "edgevit_xxs", "--img-size", "9" * 40],
                                  ["bench", "edgevit_xxs", "--min-time", "nan"],
                                  ["bench", "edgevit_xxs", "--threads", "100000"],
                                  ["bench", "edgevit_xxs", "--threads", "1000"]])
def test_numbers_are_read_strictly_and_bounded(tmp_path, capsys, argv) -> None:
    """"2_24" is not 224, 40-digit sizes and NaN are refused by the parser, and a thread count
    above the cores is refused before torch sees it: one line, exit 2."""
    try:
        code = main([*argv, "--store", str(tmp_path / "s.sqlite")] if argv[0] == "bench"
                    else argv)
    except SystemExit as exit_:  # argparse's own refusal
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and "Traceback (most recent call last)" not in err and err.count("\n") == 1
    assert any(why in err for why in ("not a plain", "is not in 1..1,024", "this process may use"))


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys) -> None:
    from analysis.cli import info

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(info, "cmd_info", interrupted)
    assert main(["info", "edgevit_xxs"]) == 130
    assert capsys.readouterr().err == "edgevit info: interrupted\n"


def test_a_real_ctrl_c_during_bench_is_one_line_and_exit_130(tmp_path) -> None:
    """SIGINT to a running `edgevit bench` (a child process, as a terminal sends it): exit 130,
    one line, nothing half-written to the store."""
    import signal
    import sqlite3
    import time

    store = tmp_path / "s.sqlite"
    child = subprocess.Popen(
        [sys.executable, "-m", "analysis.cli", "bench", "edgevit_xxs", "--runs", "100000",
         "--min-time", "600", "--store", str(store)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a terminal
    # past the imports (a SIGINT there is Python's own traceback, before the CLI runs) and
    # into the timed runs: the store exists once the command runs; a loaded machine may take
    # far longer than an idle one to get there
    deadline = time.monotonic() + 180
    while not store.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130 and err == "edgevit bench: interrupted\n"
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM measurements").fetchone() == (0,)


@pytest.mark.parametrize("argv, message", [
    (["demo", "--trials", "0"], "argument --trials: 0 is not in 1..100,000"),
    (["search", "--predictor", "P", "--concurrency", "0"], "--concurrency: 0 is not in 1..64"),
    (["search", "--predictor", "P", "--macs-budget", "-5"], "--macs-budget: -5 is not > 0"),
    (["search", "--predictor", "P"], "predictor file not found"),
    (["search", "--predictor", "P", "--accuracy", "bogus"], "accuracy method 'bogus'"),
    (["pareto", "no-such-experiment", "--experiments-dir", "NNI"], "no NNI experiment"),
])
def test_search_options_are_checked_before_anything_runs(tmp_path, capsys, argv, message):
    """Bad options end in one line and exit 2 before a calibration, an NNI experiment or an
    output folder exists."""
    out = tmp_path / "out"
    argv = [str(tmp_path / "nni") if a == "NNI" else a for a in argv]
    try:
        code = main([*argv, "--out", str(out), "--expose"] if argv[0] != "pareto"
                    else [*argv, "--out", str(out)])
    except SystemExit as exit_:  # argparse: the option's own bounds
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not out.exists()
