"""Count the outcomes of every generated bad-input case: clear / unclear / silent / crash.

    python benchmarks/bad_input_audit.py            # runs tests/badinput, prints the table
    python benchmarks/bad_input_audit.py --show 20  # and the first 20 cases that were not clear

The bad-input tests (``tests/badinput/``) call ``bad_input.assert_clear`` for every generated
case; with ``TINYSPIKE_BAD_INPUT_LOG`` set, each call appends its outcome to a JSON-lines file.
This script runs those tests in a subprocess (so a segfault is seen as a crash of that run, not of
this script), then counts the outcomes per API family (the part of the case name before its first
space). Hypothesis re-runs a failing example while shrinking it, so while a case fails its
outcome may be counted more than once; on a green suite every line is one generated case.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTCOMES = ("clear", "unclear", "silent", "crash")


def run_suite(log: Path, paths: list[str]) -> int:
    env = dict(os.environ, TINYSPIKE_BAD_INPUT_LOG=str(log))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths]
    return subprocess.run(command, cwd=ROOT, env=env).returncode


def tally(log: Path):
    by_family = collections.defaultdict(collections.Counter)
    records = []
    if log.exists():
        with open(log, encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
    for record in records:
        by_family[record["case"].split(" ")[0]][record["outcome"]] += 1
    return by_family, records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["tests/badinput"], help="test files or folders")
    parser.add_argument("--show", type=int, default=10, help="how many non-clear cases to print")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "outcomes.jsonl"
        status = run_suite(log, args.paths)
        by_family, records = tally(log)
    total = collections.Counter()
    print(f"\n{'family':<28}" + "".join(f"{o:>9}" for o in OUTCOMES))
    for family in sorted(by_family):
        counts = by_family[family]
        total.update(counts)
        print(f"{family:<28}" + "".join(f"{counts[o]:>9}" for o in OUTCOMES))
    print(f"{'total':<28}" + "".join(f"{total[o]:>9}" for o in OUTCOMES) + f"   ({sum(total.values())} cases)")
    if status < 0:  # killed by a signal: the interpreter crashed
        print(f"the test run itself crashed (signal {-status})")
    bad = [r for r in records if r["outcome"] != "clear"]
    for record in bad[: args.show]:
        print(f"  {record['outcome']:>7}  {record['case']}  value={record['value']}  {record['message']}")
    return 0 if status == 0 and not bad else 1


if __name__ == "__main__":
    sys.exit(main())
