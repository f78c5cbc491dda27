"""Bad input across the CLI, property-based: only clear one-line errors, exit 2, no traceback."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from analysis.cli import main
from edgevit import PRESETS, EdgeViTConfig
from edgevit.registry import list_models

REGISTERED = frozenset(list_models())

VALID = PRESETS["edgevit_xxs"].to_dict()
COMMANDS = ("info", "flops", "bench", "predict")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**9, 10**9) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=10,
)
bad_values = st.sampled_from([0, -1, 3, 7, 1.5, "x", None, [], [1, 2], [0, 0, 0, 0],
                              [1, 1, 1], float("nan"), True, {"a": 1}, 10**9])


def _accepted(data: dict) -> bool:
    try:
        EdgeViTConfig.from_dict(data)
    except ValueError:
        return False
    return True


@st.composite
def impossible_config(draw) -> str:
    """The XXS config with one field made impossible (or an unknown field added); a mutation
    that happens to stay valid (head_dim 3 divides every XXS width) is drawn again."""
    data = dict(VALID)
    if draw(st.booleans()):
        field = draw(st.sampled_from(sorted(data)))
        value = draw(bad_values)
        if field == "name":
            value = draw(st.sampled_from([None, 3, []]))
        data[field] = value
    else:
        data[draw(st.text(string.ascii_lowercase, min_size=1, max_size=8)
                  .filter(lambda k: k not in VALID))] = 1
    assume(not _accepted(data))
    return json.dumps(data)


def run(capsys, argv: list[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code
    _, err = capsys.readouterr()
    return code, err


def assert_clear_error(code: int, err: str) -> None:
    assert code == 2, err
    assert "Traceback (most recent call last)" not in err and "internal error" not in err
    assert err.strip(), "no message"


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(command=st.sampled_from(COMMANDS),
       content=st.one_of(impossible_config(), json_values.map(json.dumps),
                         st.text(max_size=40), st.binary(max_size=40).map(repr)))
def test_bad_config_files(tmp_path_factory, capsys, command: str, content: str) -> None:
    path = tmp_path_factory.mktemp("cfg") / "config.json"
    path.write_text(content)
    argv = [command, str(path)] + (["--predictor", str(path)] if command == "predict" else [])
    code, err = run(capsys, argv)
    assert_clear_error(code, err)
    assert err.count("\n") <= 3  # argparse prints usage + message; ours one line


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(COMMANDS),
       sizes=st.one_of(
           st.lists(st.integers(-100, 31), min_size=1, max_size=2),
           st.lists(st.integers(8193, 10**6), min_size=1, max_size=2),
           st.lists(st.integers(32, 512), min_size=3, max_size=4)))
def test_wrong_sizes(capsys, tmp_path_factory, command: str, sizes: list[int]) -> None:
    argv = [command, "edgevit_xxs", "--img-size", *map(str, sizes)]
    if command == "predict":
        argv += ["--predictor", str(tmp_path_factory.mktemp("p") / "missing.json")]
    assert_clear_error(*run(capsys, argv))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(COMMANDS + ("pareto",)),
       name=st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=20)
       .filter(lambda s: not s.startswith("-") and s not in REGISTERED))
def test_missing_models_files_and_experiments(capsys, tmp_path_factory, command: str,
                                              name: str) -> None:
    where = tmp_path_factory.mktemp("missing")
    if command == "pareto":
        argv = ["pareto", name, "--predictor", str(where / "p.json"),
                "--experiments-dir", str(where)]
    else:
        argv = [command, name + (".json" if len(name) % 2 else "")]
        if command == "predict":
            argv += ["--predictor", str(where / "p.json")]
    assert_clear_error(*run(capsys, argv))


def test_corrupt_experiment_database(capsys, tmp_path: Path) -> None:
    db = tmp_path / "exp" / "db" / "nni.sqlite"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not sqlite")
    predictor = tmp_path / "p.json"
    predictor.write_text("{}")
    code, err = run(capsys, ["pareto", "exp", "--predictor", str(predictor),
                             "--experiments-dir", str(tmp_path)])
    assert_clear_error(code, err)


@pytest.mark.parametrize("content", ["{", "[]", '{"format": 1}', "\x00\x01"])
def test_corrupt_predictor_file(capsys, tmp_path: Path, content: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(content)
    assert_clear_error(*run(capsys, ["predict", "edgevit_xxs", "--predictor", str(path)]))
