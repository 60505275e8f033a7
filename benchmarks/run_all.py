"""Run every benchmark on the default model and print the headline figures.

Usage: .venv/bin/python benchmarks/run_all.py   (after `make run`, which builds the
caches and masks the mask and evaluation benchmarks read). Each script also runs alone.
Raw results go to benchmarks/out/*.json; copy the figures into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["bench_generation.py", "bench_cache.py", "bench_masks.py", "bench_eval.py", "bench_precision.py",
           "bench_attribution.py"]


def main() -> int:
    print(f"# benchmarks {datetime.datetime.now().isoformat(timespec='minutes')}")
    failed = 0
    for script in SCRIPTS:
        print(f"\n## {script}", flush=True)
        r = subprocess.run([sys.executable, str(HERE / script)], capture_output=True, text=True)
        if r.returncode != 0:
            failed += 1
            print(r.stderr[-3000:])
            continue
        print(r.stdout[r.stdout.index("{"):] if "{" in r.stdout else r.stdout)
    out = HERE / "out"
    g = json.loads((out / "generation.json").read_text()) if (out / "generation.json").exists() else None
    c = json.loads((out / "cache.json").read_text()) if (out / "cache.json").exists() else None
    print("\n## headline")
    if g:
        print(f"generation speed-up vs one-prompt-at-a-time: {g['ours_early_stop']['speedup_vs_reference']:.1f}x "
              f"(full length, no early stop: {g['ours_full_length']['speedup_vs_reference']:.1f}x)")
    if c:
        print(f"cache peak RSS at {c['small']['n_prompts']} vs {c['large']['n_prompts']} prompts: "
              f"{c['small']['peak_rss_mb']:.0f} vs {c['large']['peak_rss_mb']:.0f} MB "
              f"(ratio {c['peak_ratio_large_vs_small']:.2f})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
