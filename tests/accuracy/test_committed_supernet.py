"""The supernet checkpoint committed in the repository: what the Fashion-MNIST study scored, and
what a search trial gets from it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from conftest import REPO_ROOT

from analysis.accuracy import (
    COMMITTED_SUPERNET,
    FASHION_MNIST_DIR,
    FASHION_STUDY,
    load_supernet,
    space_to_dict,
    supernet_digest,
    supernet_fingerprint,
    trust_of,
)
from analysis.cost import DEFAULT_SPACE
from analysis.latency import MacsLinear

pytestmark = pytest.mark.skipif(
    not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed "
           "(sudo apt-get install dataset-fashion-mnist)")


def test_it_is_the_checkpoint_the_study_scored() -> None:
    """float16 on disk, the whole search space, Fashion-MNIST at 64×64, and the fingerprint
    the study's supernet column records: so it inherits the study's τ."""
    stored = torch.load(COMMITTED_SUPERNET, map_location="cpu", weights_only=True)
    assert "optimizer" not in stored and stored["weights_dtype"] == "float16"
    assert {v.dtype for v in stored["model"].values() if v.is_floating_point()} == {
        torch.float16}
    _, record = load_supernet(COMMITTED_SUPERNET)
    assert record["space"] == space_to_dict(DEFAULT_SPACE)
    assert (record["data"]["source"], record["data"]["img_size"]) == ("fashion-mnist", 64)
    study = json.loads(FASHION_STUDY.read_text())
    assert study["supernet"]["fingerprint"] == supernet_fingerprint(record)
    assert REPO_ROOT / study["supernet"]["path"] == COMMITTED_SUPERNET
    trust = trust_of(f"supernet:{COMMITTED_SUPERNET}")
    assert trust["n"] == len(study["configs"]) and "Kendall τ" in trust["label"]


def test_a_trial_scores_a_subnet_as_the_study_did(tmp_path) -> None:
    """search/trial.py with supernet:CKPT on the XXS preset gives the held-out top-1 the study
    recorded for it (1,000 images, the same calibration draw), within 3 images of 1,000
    (another CPU may round a logit differently)."""
    predictor = tmp_path / "predictor.json"
    MacsLinear(slope_ms_per_gmac=40.0, intercept_ms=3.0).save(predictor)
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "search" / "trial.py"), "--predictor", str(predictor),
         "--accuracy", f"supernet:{COMMITTED_SUPERNET}"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    study = json.loads(FASHION_STUDY.read_text())
    xxs = next(r for r in study["configs"] if r["name"] == "edgevit_xxs")
    assert result["accuracy_method"] == f"supernet:{COMMITTED_SUPERNET}"
    # its value is named as the top-1 of this trained supernet (a resume checks it)
    digest = supernet_digest(load_supernet(COMMITTED_SUPERNET)[1])
    assert result["accuracy_scale"].endswith(f"by supernet {digest} (step 1600)")
    assert result["accuracy"] == pytest.approx(xxs["supernet"], abs=0.003)
    assert result["accuracy"] > 0.5  # ten classes: chance is 0.1

