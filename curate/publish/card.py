"""The dataset card: what the data is, what was decided, what was done and what was verified
(:func:`make_card`, rendered from ``curate/templates/dataset_card.md``), and :func:`check_card`."""

from __future__ import annotations

import re
from pathlib import Path

from .. import _columns as C
from ..errors import FormatError
from ._text import _code, _fmt_value, _truthy, escape_text
from .read import DATA_DIR, SPLITS, CuratedData, _written_splits
from .sections import (
    SIZE_CATEGORIES,
    _actions,
    _audit_rows,
    _before_after_rows,
    _dataset_info,
    _examples,
    _findings,
    _interventions,
    _is_hub_id,
    _limitations,
    _proxy,
    _repro,
    _retention,
    _size_category,
    _subset_context,
)
from .sentences import curation_sentences

CARD_TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "dataset_card.md"
# where curate's weighted DPO trainer lives (shown in the card's TRL snippet)
DPO_TRAINER = ("curate.interventions", "WeightedDPOTrainer")


def make_card(
    data: CuratedData,
    *,
    repo_id: str,
    license: str | None = None,
    pretty_name: str | None = None,
    tags: list[str] | None = None,
    images: dict[str, str] | None = None,
    fingerprints: dict[str, str] | None = None,
    top: int = 15,
    learning: str | None = None,
):
    """Render the dataset card of a curated dataset.

    Args:
        data: what :func:`read_curated` found.
        repo_id: the Hub id the card is written for (``user/name``).
        license: license id; default: the recipe's ``publish.license``, else ``"unknown"``.
        pretty_name: title; default: the recipe's ``publish.pretty_name``, else from ``repo_id``.
        tags: extra tags (``curate``, the blocked concept ids and the recipe's tags are always added).
        images: ``{"volcano": "images/volcano.png", "before_after": ...}`` paths relative to the card.
        fingerprints: split → content fingerprint, for the reproducibility section.
        top: how many audit rows to show (plus every concept in the recipe).
        learning: markdown of the section "What a model learned from it" (:func:`curate.learning.card.card_section`).

    Returns:
        A :class:`huggingface_hub.DatasetCard`.

    Example:

        >>> card = make_card(read_curated("outputs/demo/curated"), repo_id="me/x")  # doctest: +SKIP
        >>> card.data.tags[:1]  # doctest: +SKIP
        ['curate']
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    from .._version import __version__

    recipe = data.recipe or {}
    pub = recipe.get("publish") or {}
    actions = _actions(recipe)
    images = images or {}
    license_given = bool(license or pub.get("license"))
    license = license or pub.get("license") or "unknown"
    name = repo_id.split("/")[-1]
    title = pretty_name or pub.get("pretty_name") or f"{name} (curated with curate)"
    blocked = [c for c, a in actions.items() if a == "block"]
    all_tags = list(dict.fromkeys(["curate", "preference", "dpo", *(pub.get("tags") or []), *(tags or []), *blocked]))
    n_total = sum(data.dataset[s].num_rows for s in SPLITS)
    source = (recipe.get("data") or {}).get("source") or (data.audit_summary or {}).get("source")
    source_datasets = [source] if _is_hub_id(source) else ["original"]
    card_data = DatasetCardData(
        license=license,
        pretty_name=title,
        task_categories=["text-generation"],
        tags=all_tags,
        size_categories=[_size_category(n_total)],
        source_datasets=source_datasets,
        configs=[
            {
                "config_name": "default",
                "data_files": [
                    {"split": s, "path": f"{DATA_DIR}/{s}-*.parquet"} for s in _written_splits(data.dataset)
                ],
            }
        ],
        dataset_info=_dataset_info(data.dataset),
    )
    audit = data.audit
    summary = (data.audit_summary or {}).get("audit") or {}
    retention, dropped_reasons = _retention(data.dataset, data.report)
    recipe_rules = [
        {
            "concepts": ", ".join(
                f"`{_code(c)}`"
                for c in ([r["concepts"]] if isinstance(r.get("concepts"), str) else r.get("concepts", []))
            ),
            "action": escape_text(r.get("action", ""), 20),
            "strength": _fmt_value(r.get("strength", "")),
            "interventions": escape_text(", ".join(r.get("interventions") or []) or "none", 80),
        }
        for r in recipe.get("rules", []) or []
    ]
    desc = pub.get("description") or recipe.get("description") or ""
    blocked_txt = ", ".join(f"`{_code(c)}`" for c in blocked)
    desc = escape_text(desc, 400)
    summary_line = (desc + ("" if desc.endswith((".", "!", "?")) else ".") + " " if desc else "") + (
        f"A curated copy of a preference dataset in which {blocked_txt} "
        f"{'is' if len(blocked) == 1 else 'are'} no longer rewarded."
        if blocked
        else "A curated copy of a preference dataset."
    )
    teaches = curation_sentences(data.before_after, actions)
    if teaches:  # what the curated data teaches leads, in the app's words (one writer: curation_sentences)
        summary_line += "\n\n**What the curated data teaches** (win-rate before → after):\n\n" + "\n".join(
            f"- `{_code(t['concept'])}` ({t['action']}): {escape_text(t['text'], 400)}" for t in teaches
        )
    dpo_module, dpo_class = DPO_TRAINER
    context = dict(
        title=escape_text(title, 120),
        summary=summary_line,
        curate_version=__version__,
        repo_id=_code(repo_id, 120).replace('"', ""),
        splits=[
            {
                "name": C.TRAIN_SPLIT,
                "rows": f"{retention['n_train']:,}",
                "what": "the curated pairs to train on (`weight`, `margin` per pair)",
            },
            {
                "name": C.DROPPED_SPLIT,
                "rows": f"{retention['n_dropped']:,}",
                "what": "pairs an intervention removed, with the `reason`"
                if retention["n_dropped"]
                else "empty (no pair was dropped), so it has no data file",
            },
        ],
        findings=_findings(audit),
        **_subset_context(data),
        audit_rows=_audit_rows(audit, actions, top) if audit is not None else [],
        audit_n_pairs=f"{summary.get('n_pairs', int(audit['n_pairs'].max()) if audit is not None else 0):,}",
        audit_n_concepts=len(audit) if audit is not None else 0,
        audit_n_significant=int((audit["q_value"] < summary.get("alpha", 0.05)).sum()) if audit is not None else 0,
        audit_n_confirmed=int(audit["confirmed"].sum()) if audit is not None and "confirmed" in audit else 0,
        alpha=summary.get("alpha", 0.05),
        heldout_auc=summary.get("heldout_auc"),
        volcano=images.get("volcano"),
        examples=_examples(
            data,
            list(
                dict.fromkeys(
                    [c for c, a in actions.items() if a != "allow"]
                    + (
                        list(audit.loc[_truthy(audit["finding"]), "concept"])
                        if audit is not None and "finding" in audit
                        else []
                    )
                )
            ),
        ),
        recipe_name=escape_text(recipe.get("name", "recipe"), 60),
        recipe_description=escape_text(recipe.get("description", ""), 300),
        rules=recipe_rules,
        interventions=_interventions(data.report),
        retention=retention,
        dropped_reasons=dropped_reasons,
        before_after=_before_after_rows(data.before_after, actions),
        before_after_plot=images.get("before_after"),
        proxy=_proxy(data.report, data.proxy),
        dpo_module=dpo_module,
        dpo_class=dpo_class,
        repro=_repro(data, fingerprints or {}),
        limitations=_limitations(data, actions, license_given),
        learning=learning,
    )
    import jinja2

    # text from the data is inserted as values, never parsed as template; so a response that quotes
    # "{{ user.name }}" is data, and no check may read it as an unrendered variable
    template = jinja2.Environment().from_string(CARD_TEMPLATE.read_text(encoding="utf-8"))
    return DatasetCard(template.render(card_data=card_data.to_yaml(), **context))


def check_card(folder: str | Path):
    """Check a published folder's card offline: it parses, and its metadata is complete and consistent.

    Checks ``license``, ``tags`` (with ``curate``), ``task_categories``, ``size_categories`` (a known
    value), ``configs`` (valid for ``datasets``; every ``data_files`` pattern matches a file in the
    folder). Text quoted from the data is data: ``{{ … }}`` in a response is not a template variable, so
    it is not checked for. The Hub's own validation
    (:meth:`huggingface_hub.RepoCard.validate`) needs the network; the Hub runs it on upload.

    Args:
        folder: a folder written by :func:`publish`.

    Returns:
        The :class:`huggingface_hub.DatasetCard`. Raises ``ValueError`` listing every problem found.
    """
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard

    folder = Path(folder)
    card = DatasetCard.load(folder / "README.md")
    meta = card.data.to_dict()
    problems = []
    lic = meta.get("license")
    if not lic or not all(
        isinstance(x, str) and re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", x)
        for x in ([lic] if isinstance(lic, str) else lic)
    ):
        problems.append(f"license: expected a Hub license id such as 'cc-by-4.0', got {lic!r}")
    if "curate" not in (meta.get("tags") or []):
        problems.append(f"tags: 'curate' missing from {meta.get('tags')}")
    if not meta.get("task_categories"):
        problems.append("task_categories: missing")
    for s in meta.get("size_categories") or [None]:
        if s not in SIZE_CATEGORIES:
            problems.append(f"size_categories: {s!r} is not one of {SIZE_CATEGORIES}")
    try:
        configs = MetadataConfigs.from_dataset_card_data(card.data)
    except ValueError as err:
        problems.append(f"configs: {err}")
        configs = {}
    if not configs:
        problems.append("configs: missing")
    for name, config in configs.items():
        for entry in config.get("data_files", []):
            if not list(folder.glob(entry["path"])):
                problems.append(f"configs[{name}].data_files: {entry['path']!r} matches no file in {folder}")
    if problems:
        raise FormatError(f"The dataset card in {folder} is not valid:\n- " + "\n- ".join(problems))
    return card
