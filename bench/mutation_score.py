"""Kill rate per module from mutmut's result files (`make mutation` runs it after `mutmut run`).

    python -m bench.mutation_score [--mutants mutants] [--json]

Killed: a test failed (or the mutant timed out: it never answered). Survived: every selected test passed.
No tests: no test reaches that code. The rate is killed / (killed + survived + no tests); mutants not checked
yet are counted apart.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

STATUS = {1: "killed", 3: "killed", 36: "killed", 24: "killed", -24: "killed", 152: "killed", 255: "killed"}
STATUS |= {0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 37: "killed"}


def scores(root: Path) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {}
    for meta in sorted(root.rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        codes = data.get("exit_code_by_key") or {}
        if not codes:
            continue
        module = str(meta.relative_to(root)).removesuffix(".meta")
        out[module] = Counter(
            "not checked" if code is None else STATUS.get(code, "suspicious") for code in codes.values()
        )
    return out


def rate(c: Counter[str]) -> float:
    judged = c["killed"] + c["survived"] + c["no tests"]
    return 100.0 * c["killed"] / judged if judged else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mutants", type=Path, default=Path("mutants"))
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    table = scores(args.mutants)
    total: Counter[str] = sum(table.values(), Counter())
    rows: list[dict[str, Any]] = [
        {"module": m, **dict(c), "kill_rate": round(rate(c), 1)} for m, c in [*table.items(), ("all", total)]
    ]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    head = ("module", "mutants", "killed", "survived", "no tests", "unchecked", "rate")
    print(f"{head[0]:<32} " + " ".join(f"{h:>9}" for h in head[1:]))
    for r in rows:
        n = sum(v for k, v in r.items() if isinstance(v, int))
        cells = (n, r.get("killed", 0), r.get("survived", 0), r.get("no tests", 0), r.get("not checked", 0))
        print(f"{r['module']:<32} " + " ".join(f"{v:>9}" for v in cells) + f" {r['kill_rate']:>8}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
