"""Runtime benchmarks in one report: bench/results/runtime.json.

Runs each part in turn (informer memory and throughput, admission kit, leader failover) and records
each part's figures, targets and whether it met them. Each part brings up what it needs itself.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "runtime.json"
PARTS = ("runtime_informer", "runtime_admission", "runtime_leader")


def main() -> int:
    sys.path.insert(0, str(Path(__file__).parent))
    report: dict[str, Any] = {
        "benchmark": "runtime",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for part in PARTS:
        started = time.monotonic()
        module = importlib.import_module(part)
        report[part.removeprefix("runtime_")] = module.run()
        print(f"{part}: done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
