"""The Fashion-MNIST study script (`benchmarks/supernet_study.py`) on its smoke settings: two
shards on one file, resuming, the learning curve per row, refusing other settings."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from analysis.accuracy import (
    FASHION_MNIST_DIR,
    SupernetRecipe,
    fashion_table,
    supernet_fingerprint,
    train_supernet,
)

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "supernet_study.py"

pytestmark = pytest.mark.skipif(
    not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed "
           "(sudo apt-get install dataset-fashion-mnist)")


def study_module():
    spec = importlib.util.spec_from_file_location("supernet_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_shards_fill_one_study_and_a_rerun_trains_nothing(tmp_path, capsys):
    study = study_module()
    path = tmp_path / "study.json"
    assert study.main(["--smoke", "--json", str(path), "--shard", "0/2"]) == 0
    first = json.loads(path.read_text())
    # items 0 and 2 of [XXS, XS, S, sample_00, XXS seed 1]; and 4 (the seed) is shard 0's too
    assert [r["name"] for r in first["configs"]] == ["edgevit_xxs", "edgevit_s"]
    assert [r["seed"] for r in first["noise"]] == [1]
    assert "summary" not in first
    assert "still to train" in capsys.readouterr().out

    assert study.main(["--smoke", "--json", str(path), "--shard", "1/2"]) == 0
    done = json.loads(path.read_text())
    assert sorted(r["name"] for r in done["configs"]) == sorted(
        ["edgevit_xxs", "edgevit_xs", "edgevit_s", "sample_00"])
    for row in done["configs"]:
        assert len(row["curve"]) == 2 and all(0.0 <= a <= 1.0 for a in row["curve"])
        assert 0.0 <= row["accuracy"] <= 1.0 and row["macs"] > 0 and row["params"] > 0
    summary = done["summary"]
    assert summary["n"] == 4 and summary["xxs_seeds"] == 2
    methods = {row["method"] for row in summary["table"]}
    assert "standalone after epoch 1" in methods and any(m.startswith("proxy:") for m in methods)
    # the default is picked among the accuracy methods, never the standalone curve itself
    assert not (summary["default"]["method"] or "").startswith("standalone")

    before = path.read_text()
    capsys.readouterr()
    assert study.main(["--smoke", "--json", str(path)]) == 0  # everything is there
    after = json.loads(path.read_text())
    assert after["configs"] == json.loads(before)["configs"]

    # the supernet column, in a later pass, from a checkpoint of the suite's own training;
    # a supernet pass over an unfinished study scores what is there and trains nothing
    partial = tmp_path / "partial.json"
    assert study.main(["--smoke", "--json", str(partial), "--limit", "1"]) == 0
    record = train_supernet(tmp_path / "supernet", data="fashion-mnist", img_size=32,
                            max_per_class=5, recipe=SupernetRecipe(steps=1, batch_size=10,
                                                                   random_subnets=0))
    assert study.main(["--smoke", "--json", str(path), "--supernet",
                       str(tmp_path / "supernet")]) == 0
    assert study.main(["--smoke", "--json", str(partial), "--supernet",
                       str(tmp_path / "supernet")]) == 0
    half = json.loads(partial.read_text())
    assert len(half["configs"]) == 1 and "supernet" in half["configs"][0]
    scored = json.loads(path.read_text())
    for row in scored["configs"]:
        assert 0.0 <= row["supernet"] <= 1.0 and 0.0 <= row["supernet_full"] <= 1.0
        assert row["supernet_seconds"] > 0
        # the same images in the same order: the 300-image score is the full pass's prefix
        assert set(row["supernet_prefix"]) == {"250"}
        assert row["supernet_full"] == row["supernet"]
    assert scored["supernet"]["eval_images"] == 300
    assert scored["supernet"]["fingerprint"]["step"] == 1
    rows = [r for r in fashion_table(scored, n_resamples=100)
            if r["method"].startswith("supernet:")]
    assert len(rows) == 1 and rows[0]["supernet"] == supernet_fingerprint(record)
    assert any(r["method"].startswith("supernet:") for r in scored["summary"]["table"])
    # --only with --supernet scores the named rows again (rows timed on a busy machine)
    for row in scored["configs"]:
        row["supernet_seconds"] = -1.0
    path.write_text(json.dumps(scored))
    assert study.main(["--smoke", "--json", str(path), "--supernet", str(tmp_path / "supernet"),
                       "--only", "edgevit_xs"]) == 0
    again = {r["name"]: r for r in json.loads(path.read_text())["configs"]}
    assert again["edgevit_xs"]["supernet_seconds"] > 0
    assert again["edgevit_xs"]["supernet"] == next(
        r["supernet"] for r in scored["configs"] if r["name"] == "edgevit_xs")  # deterministic
    assert all(r["supernet_seconds"] == -1.0 for n, r in again.items() if n != "edgevit_xs")
    other = train_supernet(tmp_path / "other", data="fashion-mnist", img_size=32,
                           max_per_class=5, recipe=SupernetRecipe(steps=2, batch_size=10,
                                                                  random_subnets=0))
    assert other["step"] == 2
    with pytest.raises(SystemExit, match="--rescore-supernet"):
        study.main(["--smoke", "--json", str(path), "--supernet", str(tmp_path / "other")])


def test_a_file_with_other_settings_is_refused(tmp_path):
    study = study_module()
    path = tmp_path / "study.json"
    path.write_text(json.dumps(dict(settings=dict(epochs=99), configs=[], noise=[])))
    with pytest.raises(SystemExit, match="other settings.*epochs"):
        study.main(["--smoke", "--json", str(path)])


@pytest.mark.parametrize("text", ["2/2", "x", "1"])
def test_a_bad_shard_is_refused(text, tmp_path):
    study = study_module()
    with pytest.raises(SystemExit):
        study.main(["--smoke", "--json", str(tmp_path / "s.json"), "--shard", text])


def test_only_trains_the_named_configs_in_that_order(tmp_path):
    study = study_module()
    path = tmp_path / "study.json"
    assert study.main(["--smoke", "--json", str(path), "--only", "sample_00,edgevit_xs"]) == 0
    rows = json.loads(path.read_text())["configs"]
    assert [r["name"] for r in rows] == ["sample_00", "edgevit_xs"]  # its order, not the study's
    assert json.loads(path.read_text())["noise"] == []
    # the others are still to train: no summary yet
    assert "summary" not in json.loads(path.read_text())
    with pytest.raises(SystemExit, match="no config named sample_99.*edgevit_xxs"):
        study.main(["--smoke", "--json", str(path), "--only", "edgevit_xs,sample_99"])
