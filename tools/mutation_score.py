"""Print the share of mutants killed per package after ``mutmut run`` (``make mutation``).

Reads ``mutmut results --all true`` (one ``<module>.<function>__mutmut_<n>: <status>`` line per mutant) in the
current folder. A mutant counts as killed when a test failed on it (``killed``), it hung (``timeout``) or crashed
the interpreter (``segfault``); ``survived``, ``no tests`` and ``suspicious`` count against the score; ``not
checked`` and ``skipped`` are left out. Loose modules are counted under the layer they belong to
(:data:`LAYER`); a module inside a package under that package.

Usage: ``python tools/mutation_score.py [--fail-under 80] [--modules]``

Example:

    >>> score(["    curate.stats.x_sign_test__mutmut_1: killed", "    curate.folders.rows.x_a__mutmut_2: survived",
    ...        "    curate.stats.x_kish_n__mutmut_3: not checked"])
    {'statistics': [1, 1], 'folders': [0, 1]}
"""

from __future__ import annotations

import argparse
import subprocess
import sys

KILLED = {"killed", "timeout", "segfault"}
LEFT_OUT = {"not checked", "skipped"}
#: the layer of each loose module of the core (issue 28: audit/, curation/, _internal statistics, folders/)
LAYER = {
    "curate.audit": "audit",
    "curate.audit_base": "audit",
    "curate.subsets": "audit",
    "curate.scores": "audit",
    "curate.grouping": "audit",
    "curate.stream_audit": "audit",
    "curate.stream_sample": "audit",
    "curate.stats": "statistics",
    "curate.recipe": "curation",
    "curate.interventions": "curation",
}


def package(module: str) -> str:
    """The layer of ``module`` (:data:`LAYER`), else its package under ``curate``."""
    parts = module.split(".")
    for k in (len(parts), 2):
        if ".".join(parts[:k]) in LAYER:
            return LAYER[".".join(parts[:k])]
    return parts[1] if len(parts) > 1 else module


def score(lines, *, by_module: bool = False) -> dict[str, list[int]]:
    """``{package: [killed, counted]}`` from ``mutmut results --all true`` lines."""
    out: dict[str, list[int]] = {}
    for line in lines:
        name, sep, status = line.strip().rpartition(": ")
        if not sep or "__mutmut_" not in name or status in LEFT_OUT:
            continue
        module = name.rsplit(".", 1)[0]
        counts = out.setdefault(module if by_module else package(module), [0, 0])
        counts[0] += status in KILLED
        counts[1] += 1
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fail-under", type=float, default=None, help="exit 1 when a package scores below this %%")
    ap.add_argument("--modules", action="store_true", help="one line per module instead of per package")
    args = ap.parse_args(argv)
    res = subprocess.run(["mutmut", "results", "--all", "true"], capture_output=True, text=True, check=True)
    table = score(res.stdout.splitlines(), by_module=args.modules)
    if not table:
        print("no mutants tested yet: run `mutmut run` first", file=sys.stderr)
        return 1
    low = []
    print(f"{'package':<28}{'killed':>8}{'tested':>8}{'score':>9}")
    for name, (killed, counted) in sorted(table.items()):
        share = 100 * killed / counted
        low += [name] if args.fail_under is not None and share < args.fail_under else []
        print(f"{name:<28}{killed:>8}{counted:>8}{share:>8.1f}%")
    killed, counted = (sum(v[i] for v in table.values()) for i in (0, 1))
    print(f"{'all':<28}{killed:>8}{counted:>8}{100 * killed / counted:>8.1f}%")
    if low:
        print(f"below {args.fail_under:g}%: {', '.join(low)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
