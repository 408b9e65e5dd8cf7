"""Sum the per-tier JUnit reports into one table and a closing `total: N passed, N failed` line.

Why: `make test` runs each tier as its own pytest session (own cluster, own counts); the last of them
may legitimately collect nothing (a tier with no tests yet), and its closing line alone would then
misreport the whole run.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def counts(report: Path) -> tuple[int, int, int]:
    """(passed, failed, skipped) of one JUnit XML report (errors count as failed)."""
    root = ET.parse(report).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = failed = skipped = 0
    for s in suites:
        total += int(s.get("tests", 0))
        failed += int(s.get("failures", 0)) + int(s.get("errors", 0))
        skipped += int(s.get("skipped", 0))
    return total - failed - skipped, failed, skipped


def main(argv: list[str]) -> int:
    passed = failed = skipped = 0
    for name in argv:
        path = Path(name)
        if not path.exists():
            print(f"{path.stem:<8} no report")
            continue
        p, f, s = counts(path)
        print(f"{path.stem:<8} {p} passed, {f} failed, {s} skipped")
        passed, failed, skipped = passed + p, failed + f, skipped + s
    print(f"total: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
