"""Regenerate the README's learning-check numbers from the committed protocol results.

The README section "What a model learns" holds a block between ``<!-- learning-results:start -->`` and
``<!-- learning-results:end -->`` that this script writes from ``benchmarks/results/<protocol-hash>/``
(``learning.json`` and ``summary.txt`` of ``bench_learning.py --protocol``): nothing in it is typed by hand, and
``tests/test_docs_results.py`` fails when the README and the committed results disagree.

    python benchmarks/learning_readme.py          # rewrite the block in README.md
    python benchmarks/learning_readme.py --check  # exit 1 when README.md differs from what it would write
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
START, END = "<!-- learning-results:start -->", "<!-- learning-results:end -->"
COMMAND = "python benchmarks/bench_learning.py --protocol benchmarks/learning_protocol.yaml"


def protocol_runs(results: Path = RESULTS) -> list[Path]:
    """The committed protocol result folders (a ``learning.json`` beside a ``summary.txt``), oldest first by the
    record's ``date`` (then the folder name)."""
    runs = [p.parent for p in sorted(results.glob("*/summary.txt")) if (p.parent / "learning.json").exists()]

    def key(folder: Path):
        rec = json.loads((folder / "learning.json").read_text())
        return (str(rec.get("date") or ""), folder.name)

    return sorted(runs, key=key)


def _ci(d: dict | None, key: str = "r", fmt: str = "+.2f") -> str:
    d = d or {}
    v, lo, hi = d.get(key), d.get(f"{key}_low"), d.get(f"{key}_high")
    if v is None or v != v:
        return "—"
    return f"{v:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]" if lo is not None and lo == lo else f"{v:{fmt}}"


def _below(a: dict | None, b: dict | None) -> str:
    """Whether ``a``'s CI lies wholly below ``b``'s."""
    if not a or not b or a.get("high") is None or b.get("low") is None:
        return "not measured"
    return "yes" if a["high"] < b["low"] else "no (CIs overlap or reversed)"


def _shift(b: dict | None) -> str:
    return "not run" if not b else f"{b['shift']:+.2f} [{b['low']:+.2f}, {b['high']:+.2f}]"


def _planned_seeds(folder: Path) -> list:
    """The seeds the run's frozen protocol (``protocol.yaml`` in its folder) asks for; [] without the file."""
    from curate._yaml import load_yaml  # the project's bounded YAML reader (as bench_learning.load_protocol)

    path = folder / "protocol.yaml"
    return list((load_yaml(path.read_text()) or {}).get("seeds") or []) if path.exists() else []


def render(results: Path = RESULTS) -> str:
    """The README block (markers included) for the newest committed protocol run, or the note that none is."""
    runs = protocol_runs(results)
    if not runs:
        body = [
            "No protocol run committed yet: the learning check has no result in this repository that these "
            f"lines could report. Run `{COMMAND}` (hours on CPU), commit `benchmarks/results/<protocol-hash>/`, then "
            "`python benchmarks/learning_readme.py`."
        ]
        return "\n".join([START, *body, END])
    folder = runs[-1]
    rec = json.loads((folder / "learning.json").read_text())
    summary = (folder / "summary.txt").read_text().strip().splitlines()[-1]
    pred = rec.get("prediction") or {}
    gen, rew = pred.get("generation") or {}, pred.get("reward") or {}
    blocked = rec.get("blocked") or {}
    ceiling = (rec.get("noise_ceiling") or {}).get("original") or {}
    rel = folder.relative_to(results.parents[1]) if results.parents[1] in folder.parents else folder
    seeds = rec.get("seeds") or []
    planned = _planned_seeds(folder)
    incomplete = (
        f" of the protocol's {len(planned)}: the run is incomplete, and CIs that resample {len(seeds)} seeds are wide"
        if planned and len(seeds) < len(planned)
        else ""
    )
    body = [
        f"Protocol run `{rel}/` ({len(seeds)} independent seeds{incomplete}; model `{rec.get('model')}`, "
        f"{gen.get('n', '—')} concepts after merging {len(rec.get('merged_concepts') or {})} correlated groups):",
        "",
        f"* prediction vs generation shift: r {_ci(gen)}; shuffled-prediction 95th percentile "
        f"{gen.get('perm95', float('nan')):+.2f}; planted-indicator r {_ci(gen, 'planted_r')}",
        f"* prediction vs implicit reward ({pred.get('reward_measure', '—')}): r {_ci(rew)}; shuffled 95th "
        f"percentile {rew.get('perm95', float('nan')):+.2f}",
        f"* blocked concepts ({', '.join(rec.get('blocked_concepts') or []) or '—'}), generation shift in sd: "
        f"original {_shift(blocked.get('original'))}, curated {_shift(blocked.get('curated'))}, sham "
        f"{_shift(blocked.get('sham'))}",
        f"* curated below sham: {_below(blocked.get('curated'), blocked.get('sham'))}; curated below original: "
        f"{_below(blocked.get('curated'), blocked.get('original'))}; r above the shuffled 95th percentile: "
        f"{'yes' if (gen.get('r') or -9) > (gen.get('perm95') or 9) else 'no'}",
        f"* noise ceiling (best r an exact prediction could expect, pooled): {_ci(ceiling, 'r_pooled')}",
        "",
        f"`summary.txt`: `{summary}`",
    ]
    return "\n".join([START, *body, END])


def replace_block(text: str, block: str) -> str:
    """``text`` with its marked block replaced by ``block``; raises when the markers are missing."""
    if START not in text or END not in text:
        raise SystemExit(f"README.md has no {START} … {END} block: add the markers to the learning section.")
    head, rest = text.split(START, 1)
    return head + block + rest.split(END, 1)[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when README.md differs")
    args = ap.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    new = replace_block(text, render())
    if args.check:
        if new != text:
            print("README.md's learning block differs from the committed results: run benchmarks/learning_readme.py")
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    print(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
