"""Latency measurement: back-ends, protocol, ONNX numerics, blocks, bundle/CSV import, CLI.

Run counts are tiny and nothing here asserts a speed: only that measurements are well-formed,
stored, and that bad inputs are refused.
"""

from __future__ import annotations

import json
import math
import re
import time

import pytest
import torch
from torch import nn

from analysis.cli import main
from analysis.latency import (
    BACKENDS,
    BlockAt,
    MeasurementStore,
    OnnxExportError,
    Protocol,
    canonical_json,
    export_onnx,
    export_onnx_bundle,
    import_csv,
    measure,
    measure_many,
    measure_relative,
    model_blocks,
    onnx,
    onnx_rel_error,
    ort_session,
    prepare,
    sha256_hex,
    store_result,
    summarize,
)
from edgevit import PRESETS, EdgeViT, EdgeViTConfig
from edgevit.config import BlockConfig, HeadConfig, StemConfig

TINY = EdgeViTConfig(widths=(16, 16, 16, 16), depths=(1, 1, 1, 1), sample_rates=(4, 2, 2, 1),
                     head_dim=16, name="tiny")
TINY2 = TINY.replace(depths=(1, 1, 2, 1), name="tiny2")
FAST = Protocol(warmup_runs=1, min_runs=5, min_time_s=0.0, max_attempts=1)


# --- back-ends and protocol ------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_give_finite_positive_latency(backend) -> None:
    result = measure(TINY, backend=backend, img_size=(64, 64), protocol=FAST)
    assert math.isfinite(result.latency_ms) and result.latency_ms > 0
    assert math.isfinite(result.iqr_ms) and result.iqr_ms >= 0 and result.cv >= 0
    assert result.runs == 5 and result.backend == backend and result.img_size == (64, 64)
    assert result.config_hash == sha256_hex(TINY.to_json()) and result.config_kind == "model"
    assert (result.exporter in onnx.EXPORTERS) == (backend == "onnxruntime")


def test_summarize_closed_form() -> None:
    median, iqr, cv = summarize([5.0, 1.0, 4.0, 2.0, 3.0])
    assert (median, iqr) == (3.0, 2.0)  # linear percentiles: q25 = 2, q75 = 4
    assert cv == pytest.approx(math.sqrt(2.5) / 3)  # sample std / mean
    assert summarize([7.0]) == (7.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        summarize([])


class Probe(nn.Module):
    """Records what each forward sees: threads, inference mode, input shape."""

    def __init__(self, log: list, tag: str = "probe") -> None:
        super().__init__()
        self.log, self.tag = log, tag
        self.lin = nn.Linear(1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.log.append((self.tag, torch.get_num_threads(), torch.is_inference_mode_enabled(),
                         tuple(x.shape), x.dtype))
        return x.mean()


def test_torch_backend_sets_threads_batch_size_and_inference_mode() -> None:
    log: list = []
    threads_before = torch.get_num_threads()
    result = measure(Probe(log), threads=2, batch_size=3, img_size=(40, 48), protocol=FAST)
    assert {entry[1:] for entry in log} == {(2, True, (3, 3, 40, 48), torch.float32)}
    assert len(log) == FAST.warmup_runs + result.runs
    assert torch.get_num_threads() == threads_before  # restored
    assert (result.threads, result.batch_size, result.config_json) == (2, 3, None)


def test_relative_measurement_interleaves_model_and_reference() -> None:
    log: list = []
    protocol = Protocol(warmup_runs=0, min_runs=4, min_time_s=0.0, max_attempts=1)
    result = measure_relative(Probe(log, "model"), Probe(log, "ref"), img_size=(32, 32),
                              protocol=protocol)
    assert [entry[0] for entry in log] == ["model", "ref", "ref", "model"] * 2
    assert result.reference_latency_ms > 0 and result.ratio_cv >= 0
    assert result.ratio == result.latency_ms / result.reference_latency_ms


class Jittery(nn.Module):
    """Alternates a 0 ms and a 5 ms forward: a coefficient of variation near 1."""

    def __init__(self) -> None:
        super().__init__()
        self.config = TINY  # described as TINY so that it can be stored
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls % 2:
            time.sleep(0.005)
        return x


def test_noisy_measurement_is_remeasured_then_flagged_and_stored_flagged(tmp_path) -> None:
    protocol = Protocol(warmup_runs=0, min_runs=6, min_time_s=0.0, max_attempts=3)
    module = Jittery()
    result = measure(module, img_size=(32, 32), protocol=protocol)
    assert result.flagged_noisy and result.cv > 0.10
    assert result.attempts == 3 and module.calls == 3 * 6
    with MeasurementStore(tmp_path / "s.sqlite") as store:
        store_result(store, result)
        assert store.to_dataframe()["flagged_noisy"].tolist() == [True]


def test_relative_result_is_stored_with_its_reference(tmp_path) -> None:
    result = measure_relative(TINY, TINY2, img_size=(64, 64), protocol=FAST)
    with MeasurementStore(tmp_path / "s.sqlite") as store:
        store_result(store, result)
        row = store.to_dataframe().iloc[0]
        assert store.config_json(row["reference_config_hash"]) == TINY2.to_json()
    assert row["reference_latency_ms"] == result.reference_latency_ms > 0
    assert row["latency_ms"] == result.latency_ms and row["config_json"] == TINY.to_json()


def test_undescribed_module_and_bad_arguments_are_refused(tmp_path) -> None:
    result = measure(Probe([]), img_size=(32, 32), protocol=FAST)
    with MeasurementStore(tmp_path / "s.sqlite") as store, pytest.raises(ValueError, match="no "
                                                                         "description"):
        store_result(store, result)
    for kwargs, message in ((dict(backend="tflite"), "backend"), (dict(threads=0), "threads"),
                            (dict(batch_size=0), "batch_size"), (dict(img_size=(16, 16)), "32")):
        with pytest.raises(ValueError, match=message):
            measure(TINY, **{"img_size": (64, 64), "protocol": FAST, **kwargs})
    with pytest.raises(ValueError, match="min_runs"):
        Protocol(min_runs=0)


# --- ONNX ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, size",
    [
        ("edgevit_xxs", 224),
        ("ablation_sampler_avg", 224),
        ("ablation_sampler_max", 224),
        ("ablation_lp_bilinear", 224),
        ("ablation_la_lsa", 224),  # LSA windows of 5 pad 56, 28, 14
        ("ablation_wo_lp", 224),  # SRA
        ("edgevit_xxs", 200),  # maps 50, 25 pad to multiples of r
    ],
)
def test_onnx_export_matches_torch(tmp_path, name, size) -> None:
    target = prepare(name, 1, (size, size))
    path = tmp_path / "model.onnx"
    export_onnx(target.module, target.example(0), path)
    for seed in (0, 1):  # a second input: the graph must not have folded the example in
        assert onnx_rel_error(target.module, path, target.example(seed)) <= 1e-4
    assert ort_session(path).get_inputs()[0].shape == [1, 3, size, size]


def test_ort_sessions_spin_only_when_asked_and_agree(tmp_path) -> None:
    target = prepare(TINY, 1, (64, 64))
    path = tmp_path / "model.onnx"
    export_onnx(target.module, target.example(0), path)
    feeds = {"input": target.example(1).numpy()}
    outputs = []
    for spinning, expected in ((False, "0"), (True, "1")):
        session = ort_session(path, 2, spinning=spinning)
        options = session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == expected
        if spinning:  # workers stop spinning when a run returns
            assert options.get_session_config_entry("session.force_spinning_stop") == "1"
        outputs.append(session.run(None, feeds)[0])
    assert abs(outputs[0] - outputs[1]).max() <= 1e-6 * abs(outputs[0]).max()


def test_plain_traced_export_of_padded_maps_matches(tmp_path, monkeypatch) -> None:
    # padded_size once divided a negative size; traced into ONNX's truncating Div it padded a
    # 16-pixel map to 15 with 5×5 windows. Plain tracing must now give equal numerics.
    target = prepare(TINY.replace(local_agg="lsa"), 1, (64, 64))  # 16×16 map, 5×5 windows
    monkeypatch.setattr(onnx, "EXPORTERS",
                        {"torchscript": onnx.EXPORTERS["torchscript"]})
    export_onnx(target.module, target.example(0), tmp_path / "lsa.onnx")
    assert onnx_rel_error(target.module, tmp_path / "lsa.onnx", target.example(1)) <= 1e-4


def test_numerics_check_refuses_a_wrong_file(tmp_path, monkeypatch) -> None:
    target = prepare(TINY, 1, (64, 64))
    other = prepare(TINY, 1, (64, 64)).module  # same config, other random weights

    def export_other(module, example, path, opset):
        onnx.EXPORTERS["torchscript"](other, example, path, opset)

    monkeypatch.setattr(onnx, "EXPORTERS", {"wrong": export_other})
    with pytest.raises(OnnxExportError, match="wrong"):
        export_onnx(target.module, target.example(0), tmp_path / "bad.onnx")
    assert not (tmp_path / "bad.onnx").exists()


def test_numerics_check_sees_a_different_model(tmp_path) -> None:
    target = prepare(TINY, 1, (64, 64))
    export_onnx(target.module, target.example(0), tmp_path / "a.onnx")
    other = prepare(TINY, 1, (64, 64)).module  # same config, other random weights
    assert onnx_rel_error(other, tmp_path / "a.onnx", target.example(0)) > 1e-4


# --- blocks ----------------------------------------------------------------------------------


def lgl(**fields) -> BlockConfig:
    return BlockConfig(**{"dim": 32, "num_heads": 2, "mlp_hidden": 128, "rate": 2, "kernel": 5,
                          **fields})


def test_block_descriptions_are_canonical_and_leave_out_unused_switches() -> None:
    a = BlockAt(lgl(rate=1, sampler="max"), 14, 14)
    b = BlockAt(lgl(rate=1, sampler="avg", kernel=3), 28, 7)
    assert a.to_json() == b.to_json() == canonical_json(a.description())
    assert "h" not in a.description() and a.description()["mlp_hidden"] == 128
    c = BlockAt(lgl(sampler="max"), 14, 14)
    d = BlockAt(lgl(sampler="avg"), 14, 14)
    assert c.to_json() != d.to_json() and c.description()["kernel"] == 5
    no_agg = BlockAt(lgl(local_agg="none"), 8, 8)
    assert "kernel" not in no_agg.description()
    for bad, message in ((dict(block="lgl"), "BlockConfig"), (dict(h=0), "BlockAt.h"),
                         (dict(block=StemConfig(3, 16, 4), w=2), "stride-4 stem")):
        with pytest.raises(ValueError, match=message):
            BlockAt(**{"block": lgl(), "h": 8, "w": 8, **bad})


@pytest.mark.parametrize(
    "block",
    [
        lgl(),
        lgl(local_agg="lsa"),
        lgl(local_agg="none", global_attn="sra"),
        lgl(sampler="max", local_prop="bilinear"),
        StemConfig(in_chans=3, out_chans=32, stride=4),
        HeadConfig(dim=32, num_classes=10),
    ],
)
def test_measure_block(block) -> None:
    result = measure(BlockAt(block, 16, 16), protocol=FAST)
    kind = BlockAt(block, 16, 16).kind
    assert math.isfinite(result.latency_ms) and result.latency_ms > 0
    assert result.config_kind == "block" and json.loads(result.config_json)["block"] == kind
    assert result.img_size == (16, 16)


def test_model_blocks_add_up_to_the_model() -> None:
    config = PRESETS["edgevit_xxs"]
    blocks = model_blocks(config, (224, 224))
    assert len(blocks) == 4 + sum(config.depths) + 1
    lgl_maps = [(b.h, b.w) for b in blocks if b.kind == "lgl"]
    assert lgl_maps == [(56, 56), (28, 28)] + [(14, 14)] * 3 + [(7, 7)] * 2
    params = sum(p.numel() for b in blocks for p in b.build().parameters())
    assert params == EdgeViT(config).num_params()


def test_measure_many_stores_each_result_under_a_progress_bar(tmp_path, capsys) -> None:
    items = [TINY, BlockAt(lgl(dim=16, num_heads=1, mlp_hidden=64, rate=4), 16, 16)]
    with MeasurementStore(tmp_path / "s.sqlite") as store:
        results = measure_many(items, img_size=(64, 64), store=store, protocol=FAST)
        frame = store.to_dataframe()
    assert [r.config_kind for r in results] == frame["config_kind"].tolist() == ["model", "block"]
    assert frame["latency_ms"].tolist() == [r.latency_ms for r in results]
    assert "2/2" in capsys.readouterr().err


# --- external devices ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle")
    manifest = export_onnx_bundle([TINY, TINY2, TINY.replace(name="same")], out, (64, 64),
                                  progress=False)
    return manifest, json.loads(manifest.read_text())["configs"]


def test_bundle_has_one_verified_file_per_distinct_config(bundle) -> None:
    manifest, entries = bundle
    assert [e["config_id"] for e in entries] == [sha256_hex(TINY.to_json()),
                                                 sha256_hex(TINY2.to_json())]
    for entry in entries:
        session = ort_session(manifest.parent / entry["file"])
        assert session.get_inputs()[0].shape == entry["input_shape"] == [1, 3, 64, 64]
        assert entry["opset"] >= 13 and entry["exporter"] in onnx.EXPORTERS
        assert EdgeViTConfig.from_dict(entry["config"]).to_json() == \
            (TINY if entry["name"] == "tiny" else TINY2).to_json()


def write_csv(path, header: str, rows: list[str]):
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_import_csv_stores_every_row(bundle, tmp_path) -> None:
    manifest, entries = bundle
    tiny, tiny2 = entries[0]["config_id"], entries[1]["config_id"]
    csv_path = write_csv(tmp_path / "m.csv", "device,config_id,input_h,input_w,backend,"
                         "latency_ms,energy_mj",
                         [f"pixel 7,{tiny},64,64,tflite,3.5,",
                          f"pixel 7,{tiny2},64,64,tflite,4,12.5",
                          f"rpi 4,{tiny},64,64,onnxruntime,20.25,"])
    with MeasurementStore(tmp_path / "s.sqlite") as store:
        assert import_csv(csv_path, store, manifest) == 3
        frame = store.to_dataframe()
        assert import_csv(csv_path, store) == 3  # configs now in the store: no manifest needed
        assert store.count() == 6 and store.count("devices") == 2
    assert frame["latency_ms"].tolist() == [3.5, 4.0, 20.25]
    assert frame["energy_mj"].isna().tolist() == [True, False, True]
    assert frame["energy_mj"].iloc[1] == 12.5
    assert set(frame["source"]) == {"imported"} and frame["device_name"].tolist()[2] == "rpi 4"
    assert frame["config_json"].iloc[0] == TINY.to_json()


HEADER = "config_id,input_h,input_w,backend,device,latency_ms,energy_mj"


@pytest.mark.parametrize(
    "row, message",
    [
        ("{id},64,64,tflite,pixel,nan,", "latency_ms 'nan' must be a finite number > 0"),
        ("{id},64,64,tflite,pixel,inf,", "latency_ms 'inf' must be a finite number > 0"),
        ("{id},64,64,tflite,pixel,-1,", "latency_ms '-1' must be a finite number > 0"),
        ("{id},64,64,tflite,pixel,0,", "latency_ms '0' must be a finite number > 0"),
        ("{id},64,64,tflite,pixel,,", "latency_ms '' is not a number"),
        ("{id},64,64,tflite,pixel,3,-2", "energy_mj '-2' must be a finite number > 0"),
        ("{id},64,64,tflite,pixel,3,lots", "energy_mj 'lots' is not a number"),
        ("{id},64,64,tflite,pixel,3,nan", "energy_mj 'nan' must be a finite number > 0"),
        ("deadbeef,64,64,tflite,pixel,3,", "unknown config_id 'deadbeef'"),
        ("{id},64,64,tflite,pixel", "fewer fields than the header"),
        ("{id},64,64,tflite,pixel,3,1,9", "more field(s) than the header"),
        ("{id},64.5,64,tflite,pixel,3,", "input_h '64.5' is not an integer"),
        ("{id},128,128,tflite,pixel,3,", "differs from the manifest's file (64×64)"),
        ("{id},64,64,tflite,,3,", "empty device"),
    ],
)
def test_bad_csv_row_names_the_row_and_stores_nothing(bundle, tmp_path, row, message) -> None:
    manifest, entries = bundle
    config_id = entries[0]["config_id"]
    good = f"{config_id},64,64,tflite,pixel,3.5,"
    csv_path = write_csv(tmp_path / "bad.csv", HEADER, [good, row.format(id=config_id), good])
    with MeasurementStore(tmp_path / "s.sqlite") as store:
        with pytest.raises(ValueError, match=r"row 2 \(line 3\): ") as info:
            import_csv(csv_path, store, manifest)
        assert message in str(info.value) and "nothing stored" in str(info.value)
        assert (store.count(), store.count("configs"), store.count("devices")) == (0, 0, 0)


def test_bad_csv_header_or_empty_file_stores_nothing(bundle, tmp_path) -> None:
    manifest, _ = bundle
    with MeasurementStore(tmp_path / "s.sqlite") as store:
        for header, message in ((HEADER.replace(",latency_ms", ""), "missing ['latency_ms']"),
                                (HEADER + ",latency_us", "unknown ['latency_us']"),
                                (HEADER, "no data rows")):
            with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
                import_csv(write_csv(tmp_path / "h.csv", header, []), store, manifest)
        assert store.count() == 0


# --- command line ----------------------------------------------------------------------------


def test_cli_bench_json_end_to_end(tmp_path, capsys, monkeypatch) -> None:
    config_path = tmp_path / "tiny.json"
    config_path.write_text(json.dumps(TINY.to_dict()))
    monkeypatch.setenv("EDGEVIT_STORE", str(tmp_path / "env.sqlite"))  # the default location
    code = main(["bench", str(config_path), "--img-size", "64", "64", "--runs", "5",
                 "--min-time", "0", "--warmup", "1", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["latency_ms"] > 0 and out["iqr_ms"] >= 0 and out["cv"] >= 0 and out["runs"] >= 5
    assert out["backend"] == "torch" and out["img_size"] == [64, 64]
    with MeasurementStore(tmp_path / "env.sqlite") as store:
        row = store.to_dataframe().iloc[0]
    assert out["device"] == row["device_hash"] and out["latency_ms"] == row["latency_ms"]
    assert out["config_hash"] == row["config_hash"] == sha256_hex(TINY.to_json())


def test_cli_bench_relative_on_onnxruntime(tmp_path, capsys) -> None:
    config_path = tmp_path / "tiny.json"
    config_path.write_text(json.dumps(TINY.to_dict()))
    code = main(["bench", str(config_path), "--backend", "onnxruntime", "--reference",
                 str(config_path), "--img-size", "64", "--runs", "5", "--min-time", "0",
                 "--store", str(tmp_path / "s.sqlite"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["backend"] == "onnxruntime" and out["exporter"]
    assert out["ratio"] == out["latency_ms"] / out["reference_latency_ms"]
    assert out["reference_config_hash"] == out["config_hash"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--backend", "tflite"], "--backend 'tflite'"),
        (["--threads", "0"], r"--threads: 0 is not in 1\.\.1,024"),
        (["--threads", "100000"], r"--threads: 100000 is not in 1\.\.1,024"),
        (["--threads", "1000"], r"threads 1000: this process may use 1\.\.\d+ cores"),
        (["--batch-size", "0"], "--batch-size: 0 is not in 1..65,536"),
        (["--runs", "0"], "--runs: 0 is not in 1..100,000"),
        (["--img-size", "16"], "H, W ≥ 32"),
        (["--reference", "nope"], "unknown model 'nope'"),
    ],
)
def test_cli_bench_bad_input_is_one_line(tmp_path, capsys, argv, message) -> None:
    code = main(["bench", "edgevit_xxs", "--store", str(tmp_path / "s.sqlite"), *argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert re.search(message, err) and err.count("\n") == 1 and "Traceback" not in err


def test_cli_export_onnx_then_import_csv(tmp_path, capsys) -> None:
    config_path = tmp_path / "tiny.json"
    config_path.write_text(json.dumps(TINY.to_dict()))
    code = main(["export-onnx", str(config_path), "--img-size", "64", "--out",
                 str(tmp_path / "bundle"), "--json"])
    exported = json.loads(capsys.readouterr().out)
    assert code == 0 and (tmp_path / "bundle" / exported["configs"][0]["file"]).is_file()
    config_id = exported["configs"][0]["config_id"]
    store_args = ["--manifest", exported["manifest"], "--store", str(tmp_path / "s.sqlite")]
    good = write_csv(tmp_path / "good.csv", HEADER, [f"{config_id},64,64,tflite,pixel,3.5,1.5"])
    assert main(["import-csv", str(good), *store_args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 1
    bad = write_csv(tmp_path / "bad.csv", HEADER, [f"{config_id},64,64,tflite,pixel,-3.5,"])
    assert main(["import-csv", str(bad), *store_args]) == 2
    err = capsys.readouterr().err
    assert "row 1 (line 2): latency_ms '-3.5'" in err and err.count("\n") == 1
    with MeasurementStore(tmp_path / "s.sqlite") as store:
        assert store.count() == 1


def test_hostile_csvs_and_manifests_are_one_line_errors(tmp_path, capsys) -> None:
    """A CSV field over csv's 128 KiB limit, a FIFO (never waited on), a manifest nested too
    deeply, a latency of 1e300 ms: each one line, exit 2, nothing stored."""
    import os

    header = "config_id,input_h,input_w,backend,device,latency_ms\n"
    xxs_id = sha256_hex(PRESETS["edgevit_xxs"].to_json())
    cases = {
        "huge_field.csv": header + f"{'x' * 200_000},224,224,torch,phone,3.0\n",
        "physical.csv": header + f"{xxs_id},224,224,torch,phone,1e300\n",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    store = tmp_path / "s.sqlite"
    with MeasurementStore(store) as opened:
        opened.add_config(PRESETS["edgevit_xxs"].to_json(), "model")
    runs = [[str(tmp_path / name)] for name in cases] + [[str(fifo)],
                                                         [str(tmp_path / "huge_field.csv"),
                                                          "--manifest", str(deep)]]
    expected = ["not CSV", "latency_ms 1e\\+300 is above the physical bound", "not a regular file",
                "nested too deeply"]
    for argv, message in zip(runs, expected):
        code = main(["import-csv", *argv, "--store", str(store)])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and re.search(message, err), (argv, err)
    with MeasurementStore(store) as opened:
        assert opened.count() == 0


def test_export_into_a_folder_keeps_what_is_there(tmp_path) -> None:
    """A second export into a bundle's folder merges the manifest, keeping every entry; a
    user's own manifest.json, or an .onnx file no manifest lists, is never replaced."""
    out = tmp_path / "bundle"
    export_onnx_bundle([TINY], out, (64, 64), progress=False)
    manifest = export_onnx_bundle([TINY2], out, (64, 64), progress=False)
    ids = [e["config_id"] for e in json.loads(manifest.read_text())["configs"]]
    assert sorted(ids) == sorted([sha256_hex(TINY.to_json()), sha256_hex(TINY2.to_json())])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "manifest.json").write_text('{"app": "my notes"}')
    with pytest.raises(ValueError, match="not a bundle manifest this suite wrote"):
        export_onnx_bundle([TINY], mine, (64, 64), progress=False)
    assert (mine / "manifest.json").read_text() == '{"app": "my notes"}'
    assert sorted(p.name for p in mine.iterdir()) == ["manifest.json"]
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / f"{sha256_hex(TINY.to_json())}.onnx").write_bytes(b"user's file")
    with pytest.raises(ValueError, match="no manifest lists it"):
        export_onnx_bundle([TINY], stray, (64, 64), progress=False)
    assert (stray / f"{sha256_hex(TINY.to_json())}.onnx").read_bytes() == b"user's file"
