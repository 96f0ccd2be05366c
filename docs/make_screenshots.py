"""Screenshots of every view of the curate app, at desktop and phone widths, into docs/images/.

    python docs/make_screenshots.py [FOLDER] [--out docs/images]

FOLDER defaults to ``outputs/demo/published`` (``make demo``); when it does not exist, a quick demo without
SAE concepts is written to a temporary folder first. Needs Chromium at /usr/bin/chromium and Playwright.
``make screenshots`` runs this.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

CHROMIUM = "/usr/bin/chromium"
WIDTHS = {"desktop": (1400, 1000), "phone": (390, 844)}
#: view -> (query string, element whose content says the view is ready)
VIEWS = {
    "overview": ("", "#cu-teaches"),
    "concept": ("?tab=concept&concept=flattery", "#concept-html .cu-concept-title"),
    "pairs": ("?tab=pairs&concept=flattery", "#pairs-html .cu-pair"),
    "curation": ("?tab=curation", "#curation-html h3, #cu-no-curation"),
    "recipe": ("?tab=recipe", "#preview-html .cu-preview-table, #preview-html .cu-warn"),
}
#: the Compare view: the source audit (A) beside the curated data (B), when the folder has an audit sibling
COMPARE = ("?tab=compare", "#cu-compare")


def _folder(arg: str | None) -> str:
    if arg:
        return arg
    if Path("outputs/demo/published").exists():
        return "outputs/demo/published"
    from rich.console import Console

    from curate.pipeline import run_demo

    out = Path(tempfile.mkdtemp(prefix="curate-shots-")) / "demo"
    print(f"no outputs/demo/published: writing a quick demo (no SAE) to {out}")
    run_demo(out=out, n_pairs=600, sae=False, seed=0, console=Console(file=io.StringIO()))
    return str(out / "published")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", nargs="?")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "images"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from curate import build_app

    folder = _folder(args.folder)
    demo = build_app(folder)
    _, url, _ = demo.queue().launch(server_name="127.0.0.1", server_port=_port(), prevent_thread_lock=True, quiet=True)
    audit = Path(folder).parent / "audit"
    compare = build_app(str(audit), compare=folder) if audit.exists() else None
    if compare is not None:
        _, compare_url, _ = compare.queue().launch(
            server_name="127.0.0.1", server_port=_port(), prevent_thread_lock=True, quiet=True
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        for width_name, (w, h) in WIDTHS.items():
            page = browser.new_page(viewport={"width": w, "height": h})
            page.set_default_timeout(30_000)
            views = [(v, url, q, r) for v, (q, r) in VIEWS.items()]
            views += [("compare", compare_url, *COMPARE)] if compare is not None else []
            for view, base, query, ready in views:
                page.goto(base + query)
                page.wait_for_function("window.__cu_ready === true")
                page.wait_for_selector(ready)
                page.wait_for_timeout(400)  # let the plot and tables settle
                path = out / f"app-{view}-{width_name}.png"
                page.screenshot(path=str(path), full_page=True)
                written.append(path)
            page.close()
        browser.close()
    demo.close()
    if compare is not None:
        compare.close()
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
