"""How long one page of the app's pair browser takes on a 100k-pair dataset (issue 5: < 1 s a page).

Builds 100k annotated pairs (5k generated pairs tiled, 5% marked dropped with a reason), then times, for
several filters (none, a concept, kept/dropped, a reason, combined) and pages (first, middle, last):

* ``first``: the first page of a new filter (computes the matching rows, a concept's Δ if needed);
* ``page``: a further page of the same filter (the matching rows are cached);
* ``html``: building the escaped HTML of a page;
* ``client``: the full round trip through the running Gradio server (``gradio_client`` → HTML back);

the Recipe view's preview (rows kept, ESS, before/after win-rates) for a few block/amplify choices, and the
views issue 16 added or changed: a text search over 100k pairs, the Overview (what the data teaches, the
concept table, the effect plot), a concept page, the Curation view (weights of every row), the recipe YAML,
the page a deep link opens, and the preview through ``gradio_client``; issue 32 added the source rows a preview
starts from, the Compare view and the server side of a page load (``build_app``: every view's first HTML).
Targets on 100k pairs, measured on an idle machine: page load < 1.5 s, every interaction < 1 s.

    python benchmarks/bench_app_pages.py [--n 100000] [--page-size 10] [--no-client]

Writes the numbers to artifacts/bench_app_pages.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build(n: int):
    import numpy as np
    import pyarrow as pa

    from curate import ConceptAudit, annotate, make_preference_pairs
    from curate import _columns as C
    from curate.browse import AppData

    base = annotate(make_preference_pairs(5000, seed=0).dataset)
    audit = ConceptAudit().fit(base).results_
    t = base.with_format("arrow")[:]
    reps = -(-n // t.num_rows)
    table = pa.concat_tables([t] * reps).slice(0, n)
    rng = np.random.default_rng(0)
    dropped = rng.random(n) < 0.05
    reason = np.where(dropped, np.where(rng.random(n) < 0.5, "filter:flattery", "filter:markdown"), "")
    table = table.set_column(table.column_names.index(C.ID), C.ID, pa.array(np.arange(n)))
    table = table.set_column(table.column_names.index(C.REASON), C.REASON, pa.array(reason))
    table = table.append_column(C.KEEP, pa.array(~dropped))
    weight = np.where(dropped, 0.0, rng.gamma(2.0, 0.5, n))  # curated weights, so the Curation view has work
    table = table.append_column(C.WEIGHT, pa.array(weight))
    applied = {
        "recipe": {
            "name": "bench",
            "rules": [{"concepts": ["flattery"], "action": "block", "interventions": ["filter"]}],
        },
        "retention": {
            "rows": n,
            "rows_usable": n,
            "rows_kept": int((~dropped).sum()),
            "rows_dropped": int(dropped.sum()),
            "ess": float(weight.sum() ** 2 / (weight**2).sum()),
            "ess_fraction": float(weight.sum() ** 2 / (weight**2).sum()) / n,
            "dropped_by_reason": {"filter:flattery": int(dropped.sum())},
        },
    }
    return AppData(source=f"bench:{n}", kind="benchmark", audit=audit, table=table, applied=applied)


def timed(fn, repeat: int = 1):
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=10)
    parser.add_argument("--no-client", action="store_true")
    args = parser.parse_args()
    from curate.browse.render import render_pairs

    t0 = time.perf_counter()
    data = build(args.n)
    print(f"built {data.n_rows} pairs, {len(data.audit)} concepts in {time.perf_counter() - t0:.1f} s")
    filters = [
        ("none", None, "all", None),
        ("concept flattery", "flattery", "all", None),
        ("kept", None, "kept", None),
        ("dropped", None, "dropped", None),
        ("reason filter:markdown", None, "all", "filter:markdown"),
        ("concept markdown + kept", "markdown", "kept", None),
        ("concept length", "length", "all", None),
    ]
    rows, worst = [], 0.0
    for name, concept, status, reason in filters:
        first = timed(lambda: render_pairs(data.pairs_page(concept, status, reason, 1, args.page_size)))[0]
        n_pages = data.pairs_page(concept, status, reason, 1, args.page_size).n_pages
        pages = [1, max(1, n_pages // 2), n_pages]
        later = [
            t for p in pages for t in timed(lambda p=p: data.pairs_page(concept, status, reason, p, args.page_size), 3)
        ]
        page = data.pairs_page(concept, status, reason, max(1, n_pages // 2), args.page_size)
        html = timed(lambda: render_pairs(page), 3)
        worst = max(worst, first, max(later) + max(html))
        rows.append(
            {
                "filter": name,
                "matching": page.n_matching,
                "pages": n_pages,
                "first_s": round(first, 4),
                "page_median_s": round(statistics.median(later), 4),
                "page_max_s": round(max(later), 4),
                "html_median_s": round(statistics.median(html), 4),
            }
        )
        print(
            f"{name:26s} {page.n_matching:7d} rows {n_pages:6d} pages | first {first * 1e3:7.1f} ms | "
            f"page median {statistics.median(later) * 1e3:6.1f} ms max {max(later) * 1e3:6.1f} ms | "
            f"html {statistics.median(html) * 1e3:5.1f} ms"
        )
    result = {"n_pairs": data.n_rows, "page_size": args.page_size, "filters": rows, "worst_local_s": round(worst, 4)}
    from curate import build_app
    from curate.browse import editor as E
    from curate.browse import render as R
    from curate.browse import render_recipe as RR
    from curate.browse.compare import compare_concepts, render_compare

    previews = {}
    for name, st in [
        ("block flattery (rebalance)", E.EditorState(["flattery"])),
        ("block flattery+markdown (filter)", E.EditorState(["flattery", "markdown"], method="filter")),
        (
            "block flattery+agreement, inoculate+margin",
            E.EditorState(["flattery", "agreement"], extras=["inoculate", "margin"]),
        ),
        ("block agreement, amplify refusal", E.EditorState(["agreement"], ["refusal"])),
    ]:
        t = timed(lambda: RR.render_preview(E.editor_preview(data, E.check(data, st)[0])), 3)
        previews[name] = round(statistics.median(t), 4)
        print(f"recipe preview: {name:44s} median {statistics.median(t) * 1e3:6.0f} ms")
    result["preview_median_s"] = previews
    views = {
        "search 'great question' (first)": lambda: render_pairs(
            data.pairs_page(None, "all", None, 1, 10, "great question")
        ),
        "search 'speed of light' + concept": lambda: render_pairs(
            data.pairs_page("flattery", "all", None, 1, 10, "speed of light")
        ),
        "status weight 0": lambda: render_pairs(data.pairs_page(None, "weight 0", None, 1, 10)),
        "overview (teaches + summary)": lambda: RR.render_overview(data),
        "concept table": lambda: data.concept_table(),
        "effect plot": lambda: R.render_plot(data.volcano()),
        "concept page flattery": lambda: R.render_concept(data, "flattery"),
        "curation view": lambda: RR.render_curation(data, E.curation(data)),
        "recipe yaml": lambda: E.recipe_yaml(data, E.EditorState(["flattery"], extras=["margin"])),
        "deep link ?tab=pairs&pairs_page=5000": lambda: render_pairs(data.pairs_page(None, "all", None, 5000, 10)),
        "source rows of the curated data (first preview)": lambda: data.source_data(),
        "compare view (the data beside its source rows)": lambda: render_compare(
            data, data.source_data(), compare_concepts(data, data.source_data())
        ),
        "page load: build_app (every view's first HTML)": lambda: build_app(data),
    }
    result["views_s"] = {}
    for name, fn in views.items():
        t = timed(fn, 3)
        result["views_s"][name] = {"first_s": round(t[0], 4), "median_s": round(statistics.median(t), 4)}
        worst = max(worst, t[0])
        print(f"view: {name:40s} first {t[0] * 1e3:6.0f} ms, median {statistics.median(t) * 1e3:6.0f} ms")
    result["worst_local_s"] = round(max(worst, max(previews.values())), 4)
    if not args.no_client:
        from gradio_client import Client

        from curate import build_app

        demo = build_app(data)
        _, url, _ = demo.queue().launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1")
        client = Client(url, verbose=False)
        client.predict("(any)", "all", "(any)", 1, args.page_size, "", api_name="/pairs")  # warm up
        trips = []
        for concept, status, reason, page in [
            ("(any)", "all", "(any)", 5000),
            ("flattery", "kept", "(any)", 300),
            ("(any)", "dropped", "filter:flattery", 100),
            ("markdown", "all", "(any)", 2),
        ]:
            t = timed(lambda: client.predict(concept, status, reason, page, args.page_size, "", api_name="/pairs"), 3)
            trips += t
        trips += timed(
            lambda: client.predict("(any)", "all", "(any)", 1, args.page_size, "great question", api_name="/pairs"), 3
        )
        for block in (["flattery"], ["flattery", "agreement"]):
            trips += timed(
                lambda b=block: client.predict("draft", b, [], "rebalance", ["margin"], 1.0, 1.0, api_name="/preview"),
                2,
            )
        demo.close()
        result["client_median_s"] = round(statistics.median(trips), 4)
        result["client_max_s"] = round(max(trips), 4)
        print(
            f"through gradio_client: median {statistics.median(trips) * 1e3:.0f} ms, max {max(trips) * 1e3:.0f} ms "
            f"({len(trips)} requests: pages, a search, previews)"
        )
    out = Path(__file__).resolve().parents[1] / "artifacts" / "bench_app_pages.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    verdict = max(result["worst_local_s"], result.get("client_max_s", 0))
    print(f"worst page: {verdict * 1e3:.0f} ms -> {'OK' if verdict < 1 else 'TOO SLOW'} (target < 1 s); wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
