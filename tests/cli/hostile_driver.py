"""Run many `edgevit` command lines in this one process (startup dominates a single run), each
under a time limit, and write one JSON line per case: its exit code, stderr, time and peak
memory. Started by `test_hostile_inputs.py` under an address-space limit.

    python hostile_driver.py CASES.json RESULTS.jsonl

CASES.json holds [{"argv": [...], "env": {...}}, ...]. A line {"started": i} comes before each
case's result, so that a case that kills the process (or hangs past the parent's timeout) is
named by the last line.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import signal
import sys
import time

CASE_TIMEOUT_S = 30


class CaseTimeout(BaseException):  # noqa: N818 (not an Exception: the CLI must not catch it)
    """A case ran past CASE_TIMEOUT_S."""


def _alarm(signum, frame) -> None:
    raise CaseTimeout


def run_case(main, argv: list[str], env: dict[str, str]) -> dict:
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, CASE_TIMEOUT_S)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit_:  # argparse's usage errors
                code = exit_.code
        outcome = "exit"
    except CaseTimeout:
        code, outcome = None, "timeout"
    except BaseException as escaped:  # noqa: BLE001 (what escaped the CLI's handler is the finding)
        code, outcome = None, f"escaped {type(escaped).__name__}: {escaped}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return {"code": code, "outcome": outcome, "stdout": out.getvalue()[-2000:],
            "stderr": err.getvalue()[-2000:], "seconds": time.perf_counter() - start,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    cases_path, results_path = sys.argv[1:3]
    from analysis.cli import main as cli_main

    signal.signal(signal.SIGALRM, _alarm)
    cases = json.loads(open(cases_path, encoding="utf-8").read())
    with open(results_path, "w", encoding="utf-8") as results:
        for index, case in enumerate(cases):
            results.write(json.dumps({"started": index}) + "\n")
            results.flush()
            result = run_case(cli_main, case["argv"], case.get("env", {}))
            results.write(json.dumps({"index": index, **result}) + "\n")
            results.flush()


if __name__ == "__main__":
    main()
