"""ParetoTuner inside a real `nnictl create` run (search/config.yml as users run it), then
`edgevit pareto` on it without a predictor, found through NNI's registry although the
experiment lives in a custom working directory; and every HTML the report writes opens offline.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from privately import experiment_id, run_privately

from analysis.cost.ops import model_cost
from analysis.latency.predictors import MacsLinear
from edgevit import EdgeViTConfig, preset_config

SCRIPT = Path(__file__).with_name("nnictl_pareto_script.py")
TRIALS, CONCURRENCY, MACS_BUDGET = 8, 2, 1.0e9
# a <script> whose src is a network address (http:, https: or protocol-relative //)
NETWORK_SCRIPT = re.compile(r"<script[^>]*\bsrc\s*=\s*[\"']?\s*(https?:)?//", re.IGNORECASE)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> dict:
    """One experiment for the module: 8 trials at concurrency 2, 1 GMAC budget."""
    work = tmp_path_factory.mktemp("nnictl_pareto")
    predictor = work / "predictor.json"
    MacsLinear(slope_ms_per_gmac=40.0, intercept_ms=3.0).save(predictor)
    proc = run_privately([sys.executable, str(SCRIPT), str(work), str(predictor), "8803",
                          str(TRIALS), str(CONCURRENCY), repr(MACS_BUDGET)],
                         root=work, timeout_s=600, HOME=str(work))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ident = experiment_id(proc.stdout)
    return {"work": work, "id": ident, "predictor": predictor,
            "folder": work / "custom-experiments" / ident}


def final_results(database: Path) -> list[dict]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT data FROM MetricData WHERE type = 'FINAL'").fetchall()
    return [json.loads(json.loads(data)) for (data,) in rows]


def edgevit_cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "analysis.cli", *args], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, HOME=str(home)))


def test_nnictl_run_with_the_pareto_tuner(finished) -> None:
    from analysis.nas.tuner import INFEASIBLE, RESULT, read_study

    folder = finished["folder"]
    with sqlite3.connect(folder / "db" / "nni.sqlite") as db:
        events = dict(db.execute("SELECT trialJobId, event FROM TrialJobEvent "
                                 "ORDER BY timestamp").fetchall())
        tuner = db.execute("SELECT params FROM ExperimentProfile").fetchone()[0]
    assert "analysis.nas.tuner.ParetoTuner" in tuner
    assert len(events) == TRIALS and set(events.values()) == {"SUCCEEDED"}
    results = final_results(folder / "db" / "nni.sqlite")
    assert len(results) == TRIALS
    for result in results:  # 0 trials over budget: none was dispatched, none rejected
        assert not result["rejected"] and result["macs"] <= MACS_BUDGET
        assert model_cost(EdgeViTConfig.from_json(result["config"])).macs == result["macs"]
    study = read_study(folder / "optuna_study.sqlite")  # kept in the experiment's folder
    distinct = {result["config"] for result in results}
    assert study[RESULT] == len(distinct) and study["running"] == 0
    assert study[INFEASIBLE] > 0  # a third of the space is under 1 GMAC: some were drawn
    assert study["objectives"] == ["accuracy", "latency_ms"]
    # start_with_presets (search/config.yml): XXS, the one preset under 1 GMAC, was a trial
    xxs = preset_config("edgevit_xxs")
    assert any(EdgeViTConfig.from_json(r["config"]) == xxs for r in results)


def test_pareto_without_predictor_finds_the_experiment_in_its_custom_folder(
        finished, tmp_path) -> None:
    out = tmp_path / "report"
    proc = edgevit_cli("pareto", finished["id"], "--out", str(out), "--json",
                       home=finished["work"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(summary["experiment_dir"]) == finished["folder"]
    assert summary["rejected_in_trial"] == 0 and summary["trials"] >= 1
    assert summary["tuner_study"]["infeasible"] > 0
    assert "hypervolume_ratio" not in summary and summary["hypervolume"] > 0
    assert {"trials.csv", "front.csv", "front.html", "plotly.min.js"} <= {
        p.name for p in out.iterdir()}
    # elsewhere, with no registry entry: not found, and the message says where it looked
    proc = edgevit_cli("pareto", finished["id"], "--out", str(out), home=tmp_path)
    assert proc.returncode == 2 and "looked in" in proc.stderr
    # --experiments-dir instead of the registry
    proc = edgevit_cli("pareto", finished["id"], "--out", str(out), "--json",
                       "--experiments-dir", str(finished["folder"].parent), home=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_pareto_with_predictor_adds_the_exhaustive_front(finished, tmp_path) -> None:
    out = tmp_path / "report"
    proc = edgevit_cli("pareto", finished["id"], "--predictor", str(finished["predictor"]),
                       "--macs-budget", repr(MACS_BUDGET), "--out", str(out), "--json",
                       home=finished["work"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert 0 < summary["hypervolume_ratio"] <= 1.0 + 1e-9
    assert set(summary["preset_dominance"]) == {"edgevit_xxs", "edgevit_xs", "edgevit_s"}
    # the demo-level check: no preset of the space beats the front beyond the predictor's
    # stated error (MacsLinear states none: ±10 %); XXS was a trial, so it beats nothing
    assert summary["presets_beating_front"] == []
    assert summary["preset_dominance"]["edgevit_xxs"] == 0.0
    assert "no interval" in summary["preset_tolerance_basis"]
    assert_offline(out)


def assert_offline(folder: Path) -> None:
    pages = list(folder.rglob("*.html"))
    assert pages
    for page in pages:
        text = page.read_text(errors="replace")
        assert not NETWORK_SCRIPT.search(text), f"{page} loads a script from the network"
        assert "<script" in text
        for src in re.findall(r"<script[^>]*\bsrc\s*=\s*[\"']([^\"']+)", text):
            assert (page.parent / src).is_file(), f"{page}: script {src} is not beside it"


def test_network_script_pattern() -> None:
    """The offline check catches what plotly writes with include_plotlyjs='cdn'."""
    import plotly.graph_objects as go

    cdn = go.Figure().to_html(include_plotlyjs="cdn")
    assert NETWORK_SCRIPT.search(cdn)
    assert not NETWORK_SCRIPT.search(go.Figure().to_html(include_plotlyjs="directory"))


def test_no_source_writes_html_that_needs_the_network() -> None:
    """No source of the suite asks plotly for its CDN (plotly's own default embeds)."""
    root = Path(__file__).resolve().parents[2]
    for path in [*root.glob("analysis/**/*.py"), *root.glob("benchmarks/*.py"),
                 *root.glob("notebooks/*.ipynb")]:
        text = path.read_text(errors="replace")
        assert not re.search(r"include_plotlyjs\s*=\s*\\?[\"']cdn", text), path
        assert "cdn.plot.ly" not in text, path
