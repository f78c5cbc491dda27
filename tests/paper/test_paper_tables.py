"""The supplementary's Tables 1-2 recomputed, section A per stage, the ablations' cost, the
backbones built and measured side by side, RAPL energy and imported energies, `paper-tables`."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

import edgevit
from analysis.cli import main
from analysis.cost import model_cost
from analysis.latency import Protocol
from analysis.paper import backbones
from analysis.paper import tables as paper_tables

TINY = Protocol(warmup_runs=0, min_runs=2, max_runs=2, min_time_s=0.0, max_attempts=1)
MODELS = ["PVTv2-B0", "ResNet18", "PVTv1-Tiny", "PVTv2-B1", "EdgeViT-XXS", "EdgeViT-XS",
          "EdgeViT-S"]


@pytest.fixture(scope="module")
def tables() -> dict[str, paper_tables.PaperTable]:
    return paper_tables.load_paper_tables()


# ---- the data file --------------------------------------------------------------------------

def test_data_file_holds_both_tables_with_every_model(tables) -> None:
    assert set(tables) == {"detection", "segmentation"}
    assert tables["detection"].img_size == (800, 800) and tables["detection"].metric == "AP"
    assert tables["segmentation"].img_size == (512, 512)
    assert tables["segmentation"].metric == "mIoU"
    for table in tables.values():
        assert [r.model for r in table.rows] == MODELS
    raw = json.loads(paper_tables.PAPER_TABLES_JSON.read_text())
    assert "supplementary" in raw["source"]


def test_table_2_unflattened_in_the_column_order(tables) -> None:
    # the text extraction lists each column's first four values as B0, R18, v1-Tiny, B1
    seg = tables["segmentation"]
    assert [seg.row(m).metric_pct for m in MODELS[:4]] == [37.2, 32.9, 35.7, 42.5]
    assert [seg.row(m).cpu_s for m in MODELS[:4]] == [0.35, 0.23, 0.49, 0.75]
    assert [seg.row(m).energy_spread_j for m in MODELS[:4]] == [0.30, 0.20, 0.32, 0.82]
    assert seg.row("EdgeViT-XS").energy_j == 1.11 and seg.row("EdgeViT-S").cpu_s == 0.52


def test_a_malformed_row_is_refused(tmp_path, tables) -> None:
    raw = json.loads(paper_tables.PAPER_TABLES_JSON.read_text())
    raw["tables"]["detection"]["rows"][0]["energy_j"] = -1
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="energy_j"):
        paper_tables.load_paper_tables(path)


# ---- efficiency -----------------------------------------------------------------------------

def test_efficiency_is_metric_per_millijoule() -> None:
    assert paper_tables.efficiency_pct_per_mj(38.7, 2.02) == pytest.approx(38.7 / 2020)
    assert paper_tables.efficiency_rounded(38.7, 2.02, 3) == 0.019


def test_rounding_is_half_up_on_the_printed_decimals() -> None:
    # 62.5 / 1000 = 0.0625 exactly; round() takes the even neighbour 0.062, a table 0.063
    assert round(62.5 / 1000, 3) == 0.062
    assert paper_tables.efficiency_rounded(62.5, 1.0, 3) == 0.063
    assert paper_tables.round_half_up(0.0235, 3) == 0.024


def test_every_printed_efficiency_is_recomputed_exactly(tables) -> None:
    out = paper_tables.report(tables)
    assert out["efficiency_mismatches"] == []
    row = next(r for r in out["detection"] if r["model"] == "EdgeViT-XXS")
    assert row["efficiency_pct_per_mj"] == pytest.approx(0.0191584, rel=1e-5)
    assert row["efficiency_pct_per_mj_printed"] == 0.019


def test_a_row_that_does_not_round_to_the_printed_value_is_reported(tables) -> None:
    det = tables["detection"]
    wrong = tuple(dataclasses.replace(r, efficiency_pct_per_mj_printed=0.015)
                  if r.model == "EdgeViT-XS" else r for r in det.rows)
    out = paper_tables.report({"detection": dataclasses.replace(det, rows=wrong)})
    assert [(m["task"], m["model"], m["printed"]) for m in out["efficiency_mismatches"]] == [
        ("detection", "EdgeViT-XS", 0.015)]
    assert out["efficiency_mismatches"][0]["rounded"] == 0.014


# ---- Pareto optimality ----------------------------------------------------------------------

def _front(rows: list[dict], key: str) -> set[str]:
    return {r["model"] for r in rows if r[key]}


def test_pareto_fronts_of_tables_1_and_2(tables) -> None:
    out = paper_tables.report(tables)
    ours = {"EdgeViT-XXS", "EdgeViT-XS", "EdgeViT-S"}
    # detection vs CPU s: ResNet18 (31.8 AP, 0.58 s) is 0.01 s faster than XXS, so it stays
    assert _front(out["detection"], "pareto_latency") == ours | {"ResNet18"}
    # vs J: XXS (38.7, 2.02) beats ResNet18 (31.8, 2.22) on both
    assert _front(out["detection"], "pareto_energy") == ours
    assert _front(out["segmentation"], "pareto_latency") == ours
    assert _front(out["segmentation"], "pareto_energy") == ours
    for task in ("detection", "segmentation"):
        claims = out["all_edgevits_pareto"][task]
        assert claims["latency"] and claims["energy"]


def test_the_energy_claim_is_not_robust_to_the_printed_spreads(tables) -> None:
    out = paper_tables.report(tables)
    det = {r["model"]: r for r in out["detection"]}
    # XXS at 2.02 + 0.58 J vs XS at 2.89 − 0.66 J with 40.6 ≥ 38.7 AP: XS could dominate XXS
    assert not det["EdgeViT-XXS"]["pareto_energy_robust"]
    assert det["EdgeViT-S"]["pareto_energy_robust"]
    # ResNet18's latency edge (0.58 ± 0.02 vs 0.59 ± 0.02) is inside the spreads
    assert det["ResNet18"]["pareto_latency"] and not det["ResNet18"]["pareto_latency_robust"]
    assert out["all_edgevits_pareto"]["detection"] == dict(
        latency=True, latency_robust=True, energy=True, energy_robust=False)


def test_pareto_robust_on_a_hand_example() -> None:
    metric, cost, spread = [40.0, 41.0, 30.0], [1.0, 1.05, 2.0], [0.1, 0.1, 0.0]
    # B (41) could be cheaper than A (40) inside the spreads; nothing beats B's metric;
    # C is dominated outright
    assert paper_tables.pareto_robust(metric, cost, spread).tolist() == [False, True, False]
    # without spreads A is cheaper, so both A and B are optimal
    assert paper_tables.pareto_robust(metric, cost, [0, 0, 0]).tolist() == [True, True, False]


# ---- section A per stage --------------------------------------------------------------------

def test_section_a_per_stage_closed_forms() -> None:
    config = edgevit.PRESETS["edgevit_xxs"]
    rows = paper_tables.section_a_by_stage(config, (224, 224))
    s0, s3 = rows[0], rows[3]
    # stage 0: 56×56, c = 36, r = 4, k = 5, depth 1
    assert (s0["height"], s0["channels"], s0["sample_rate"]) == (56, 36, 4)
    assert s0["la_paper_macs"] == s0["la_exact_macs"] == 25 * 56 * 56 * 36
    assert s0["sa_paper_macs"] == (56 * 56) ** 2 * 36 / 4**4
    assert s0["sa_exact_macs"] == 2 * s0["sa_paper_macs"]  # q·kᵀ and attn·v
    assert s0["lp_paper_macs"] == 16 * 56 * 56 * 36
    assert s0["lp_exact_macs"] == 56 * 56 * 36  # one multiply-add per output pixel
    # stage 3: r = 1, depth 2: no LocalAgg, no LocalProp in the release; full attention
    assert s3["la_exact_macs"] == s3["lp_exact_macs"] == 0
    assert s3["sa_exact_macs"] == 2 * 2 * (7 * 7) ** 2 * 288
    cost = model_cost(config, (224, 224))
    assert [r["stage_macs"] for r in rows] == cost.by_stage()
    assert all(r["paper_share_of_stage"] < 0.1 for r in rows)  # the pointwise work dominates


# ---- ablations ------------------------------------------------------------------------------

def test_ablation_costs_cover_tables_4a_to_4c() -> None:
    rows = paper_tables.ablation_costs()
    assert [r["name"] for r in rows] == list(edgevit.ABLATIONS)
    assert {r["table"] for r in rows} == {"4a", "4b", "4c", "4a-4c"}
    for row in rows:
        cost = model_cost(edgevit.ABLATIONS[row["name"]])
        assert (row["macs"], row["params"]) == (cost.macs, cost.params)
        assert 0.5e9 <= row["macs"] <= 0.6e9


def test_ablation_table_joins_latencies_by_name() -> None:
    costs = paper_tables.ablation_costs((64, 64))
    measured = [dict(label="ablation_wo_lp", latency_ms=3.0, ratio=0.75,
                     reference_latency_ms=4.0, flagged_noisy=False)]
    rows = {r["name"]: r for r in paper_tables.ablation_table(costs, measured)}
    assert rows["ablation_wo_lp"]["ratio"] == 0.75 and rows["ablation_wo_lp"]["macs"] > 0
    assert rows["ablation_lgl"]["latency_ms"] is None


# ---- backbones ------------------------------------------------------------------------------

@pytest.mark.parametrize("label", list(backbones.BACKBONES))
def test_backbones_give_four_maps_at_strides_4_to_32(label) -> None:
    import torch

    model = backbones.build_backbone(label)
    with torch.inference_mode():
        maps = model(torch.zeros(1, 3, 64, 64))
    assert [m.shape[-1] for m in maps] == [16, 8, 4, 2]
    assert not model.training


def test_backbone_params_exclude_the_classifier() -> None:
    resnet = backbones.build_backbone("ResNet18")
    assert backbones.num_params(resnet) == 11_689_512 - (512 * 1000 + 1000)
    config = edgevit.PRESETS["edgevit_xs"]
    head = sum(op.params for op in model_cost(config).ops if not op.module.startswith("stages"))
    assert backbones.num_params(backbones.build_backbone("EdgeViT-XS")) == (
        model_cost(config).params - head)
    with pytest.raises(ValueError, match="unknown backbone"):
        backbones.build_backbone("PVTv1-Tiny")


def test_measure_backbones_side_by_side_relative_to_resnet18() -> None:
    rows = backbones.measure_backbones(["EdgeViT-XXS", "ResNet18", "PVTv2-B0"], (32, 32),
                                       protocol=TINY, count_macs=True, progress=False)
    assert [r.model for r in rows] == ["EdgeViT-XXS", "ResNet18", "PVTv2-B0"]
    ref = rows[1]
    assert ref.ratio == 1.0 and ref.reference == "ResNet18"
    for r in rows:
        assert r.img_size == (32, 32) and r.runs == 2 and r.threads == 1
        assert math.isclose(r.ratio, r.latency_ms / r.reference_latency_ms)
        assert r.macs is not None and r.macs > 0
    assert rows[0].macs < ref.macs  # XXS counts under a third of ResNet18 (a count, not a time)
    compared = {(c["task"], c["model"]): c for c in backbones.compare_with_paper(
        [dataclasses.replace(r, img_size=(800, 800)) for r in rows])}
    xxs = compared[("detection", "EdgeViT-XXS")]
    assert xxs["paper_ratio"] == pytest.approx(0.59 / 0.58)
    assert xxs["ratio"] == rows[0].ratio
    assert compared[("detection", "PVTv1-Tiny")]["note"] == "not in timm"
    assert compared[("segmentation", "EdgeViT-XXS")]["ratio"] is None
    reduced = backbones.compare_with_paper(rows, img_sizes={"segmentation": (32, 32)})
    seg = {c["model"]: c for c in reduced if c["task"] == "segmentation"}
    assert seg["PVTv2-B0"]["ratio"] == rows[2].ratio and seg["PVTv2-B0"]["img_size"] == [32, 32]
    assert seg["EdgeViT-S"]["ratio"] is None  # not measured


# ---- energy ---------------------------------------------------------------------------------

def _fake_powercap(root: Path, energy_uj: int, max_uj: int = 1000) -> Path:
    zone = root / "intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    (root / "intel-rapl:0:0").mkdir()  # a subzone: not a package, ignored
    return zone


def test_rapl_status_reports_absence_and_fake_zones(tmp_path) -> None:
    missing = backbones.rapl_status(tmp_path / "nowhere")
    assert not missing["available"] and "energy not available" in missing["reason"]
    _fake_powercap(tmp_path / "powercap", 10)
    found = backbones.rapl_status(tmp_path / "powercap")
    assert found["available"] and "package-0" in found["reason"]
    assert [Path(z).name for z in found["zones"]] == ["intel-rapl:0"]


def test_rapl_meter_handles_the_counter_wrapping(tmp_path) -> None:
    _fake_powercap(tmp_path, 990, max_uj=1000)
    meter = backbones.RaplMeter(backbones.rapl_zones(tmp_path))
    assert meter.read() == (990,)
    assert meter.delta_uj((990,), (5,)) == 10 + 5 + 1  # 990 -> 1000 -> 0 -> 5
    assert meter.delta_uj((100,), (250,)) == 150
    with pytest.raises(ValueError, match="no readable RAPL"):
        backbones.RaplMeter([])


def test_measure_energy_reads_around_each_call(tmp_path) -> None:
    zone = _fake_powercap(tmp_path, 0, max_uj=10**9)
    meter = backbones.RaplMeter(backbones.rapl_zones(tmp_path))
    counter = {"uj": 0}

    def burn(uj: int):
        def run() -> None:
            counter["uj"] += uj
            (zone / "energy_uj").write_text(str(counter["uj"]))
        return run

    energy, reference = backbones.measure_energy_relative(burn(3000), burn(1500), meter, runs=4)
    assert (energy, reference) == (3.0, 1.5)  # mJ per call


def test_this_machine_reports_energy_honestly() -> None:
    status = backbones.rapl_status()
    assert status["available"] == bool(backbones.rapl_zones())
    if not status["available"]:
        rows = backbones.measure_backbones(["ResNet18", "EdgeViT-XXS"], (32, 32),
                                           protocol=TINY, progress=False)
        assert all(r.energy_mj is None for r in rows)


# ---- imported energies ----------------------------------------------------------------------

HEADER = "config_id,input_h,input_w,backend,device,latency_ms,energy_mj\n"


def test_imported_energy_gives_the_device_its_efficiency(tmp_path) -> None:
    path = tmp_path / "energy.csv"
    path.write_text(HEADER + "edgevit_xxs,800,800,tflite,pixel 7,410,1500\n"
                    "resnet18,512,512,tflite,pixel 7,150,\n"
                    "pvt_v2_b0,224,224,tflite,pixel 7,30,90\n")
    rows = backbones.load_energy_csv(path)
    assert [(r["model"], r["task"]) for r in rows] == [
        ("EdgeViT-XXS", "detection"), ("ResNet18", "segmentation"), ("PVTv2-B0", None)]
    assert rows[0]["efficiency_pct_per_mj"] == pytest.approx(38.7 / 1500)
    assert rows[1]["energy_mj"] is None and rows[1]["efficiency_pct_per_mj"] is None
    assert rows[2]["efficiency_pct_per_mj"] is None


def test_imported_energy_by_config_hash(tmp_path) -> None:
    from analysis.latency import sha256_hex

    config_id = sha256_hex(edgevit.preset_config("edgevit_s").to_json())
    path = tmp_path / "energy.csv"
    path.write_text(HEADER + f"{config_id},512,512,ort,hdk,500,1730\n")
    (row,) = backbones.load_energy_csv(path)
    assert row["model"] == "EdgeViT-S"
    assert row["efficiency_pct_per_mj"] == pytest.approx(45.9 / 1730)


@pytest.mark.parametrize("line, message", [
    ("pvt_v1_tiny,800,800,x,y,1,2", "unknown config_id"),
    ("resnet18,800,800,x,y,1,-2", "energy_mj"),
    ("resnet18,800,800,x,y,nan,2", "latency_ms"),
])
def test_bad_imported_rows_are_named(tmp_path, line, message) -> None:
    path = tmp_path / "energy.csv"
    path.write_text(HEADER + "resnet18,800,800,x,y,1,2\n" + line + "\n")
    with pytest.raises(ValueError, match=f"row 2: .*{message}"):
        backbones.load_energy_csv(path)


# ---- the command line -----------------------------------------------------------------------

def test_cli_paper_tables_json(capsys) -> None:
    assert main(["paper-tables", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for task in ("detection", "segmentation"):
        rows = out[task]
        assert [r["model"] for r in rows] == MODELS
        for r in rows:
            assert {"efficiency_pct_per_mj_printed", "efficiency_pct_per_mj"} <= set(r)
            assert isinstance(r["pareto_latency"], bool) and isinstance(r["pareto_energy"], bool)
        assert all(r["pareto_latency"] and r["pareto_energy"] for r in rows if r["ours"])
    assert out["efficiency_mismatches"] == []
    assert out["energy_reading"]["available"] in (True, False)
    assert "measured" not in out


def test_cli_paper_tables_text_and_tiny_measurement(tmp_path, capsys) -> None:
    path = tmp_path / "energy.csv"
    path.write_text(HEADER + "edgevit_xs,800,800,tflite,pixel 7,600,2000\n")
    code = main(["paper-tables", "--measure", "--img-size", "32", "--runs", "1",
                 "--energy-csv", str(path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "all EdgeViTs Pareto-optimal: latency yes" in out
    assert "not rounding to the printed value: 0" in out
    assert "imported: EdgeViT-XS on pixel 7" in out and "0.0203 %/mJ" in out
    assert out.count("measured here 32×32") == len(backbones.BACKBONES)


@pytest.mark.parametrize("argv, message", [
    (["paper-tables", "--img-size", "64"], "--measure only"),
    (["paper-tables", "--measure", "--runs", "0"], "--runs: 0 is not in 1..100,000"),
    (["paper-tables", "--energy-csv", "missing.csv"], "not found: missing.csv"),
])
def test_cli_paper_tables_errors_are_one_line(capsys, argv, message) -> None:
    code = main(argv)
    _, err = capsys.readouterr()
    assert code == 2 and message in err and err.count("\n") == 1


def test_measured_results_file_when_committed() -> None:
    data = backbones.load_measured()
    if data is None:
        pytest.skip("no committed analysis/paper/data/backbones_measured.json yet")
    models = {r["model"] for r in data["backbones"]}
    assert models <= set(backbones.BACKBONES)
    assert all(np.isfinite(r["ratio"]) and r["ratio"] > 0 for r in data["backbones"])
    assert all(r["energy_mj"] is None for r in data["backbones"]) or data["rapl"]["available"]
