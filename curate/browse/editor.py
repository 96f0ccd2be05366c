"""The Recipe editor and the Curation view: what a recipe would do (preview) and what the applied one did.

The preview calls :func:`curate.interventions.preview` on a :class:`~curate.interventions.PairState` built
from the app's cached concept scores; the editor starts from the applied recipe (all its steps, its name and
tags) and writes back exactly what it shows: unchanged, the applied recipe itself.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np

from .. import _columns as C
from ..teach import truthy
from .queries import GROUP_ID, SAE_ID, AppData, ids_of

#: how a block rule is carried out, each with what it does (the Recipe tab's "Block by" choices)
BLOCK_METHODS = {
    "rebalance": "re-weight pairs (keeps rows)",
    "balance": "re-weight pairs, a magnitude's mean Δ too (keeps rows)",
    "match": "drop pairs until a magnitude's Δ is symmetric",
    "resample": "draw rows by weight",
    "filter": "drop pairs",
    "relabel": "swap chosen and rejected",
}
#: steps a recipe may add to a block rule, each with what it does (the Recipe tab's "Also" choices)
EXTRAS = {
    "inoculate": "add an instruction naming the blocked behaviour to the prompts that reward it",
    "margin": "a reward margin",
}


@dataclass
class EditorState:
    """What the Recipe tab shows: one block rule, one amplify rule, the recipe's name.

    ``extras`` are steps added to the rules: ``inoculate`` (blocked concepts) and ``margin`` (both rules).
    """

    block: list[str] = field(default_factory=list)
    amplify: list[str] = field(default_factory=list)
    method: str = "rebalance"
    strength: float = 1.0
    amplify_strength: float = 1.0
    extras: list[str] = field(default_factory=list)
    name: str = "draft-recipe"

    def key(self) -> tuple:
        return (
            tuple(self.block),
            tuple(self.amplify),
            self.method,
            round(float(self.strength), 6),
            round(float(self.amplify_strength), 6),
            tuple(sorted(self.extras)),
            self.name,
        )


def applied_recipe(data: AppData) -> dict | None:
    """The recipe the data was curated with, as a dict (from its YAML, else from the apply record)."""
    import yaml

    if data.recipe_text:
        try:
            loaded = yaml.safe_load(data.recipe_text)
            if isinstance(loaded, dict):
                return loaded
        except yaml.YAMLError:
            pass
    rec = data.applied.get("recipe")
    return rec if isinstance(rec, dict) else None


def preset(data: AppData) -> EditorState:
    """The editor's first state: the applied recipe's rules, or an empty draft."""
    rec = applied_recipe(data)
    if not rec:
        return EditorState()
    rules = rec.get("rules") or []
    block = [c for r in rules if r.get("action") == "block" for c in _list(r.get("concepts"))]
    amplify = [c for r in rules if r.get("action") == "amplify" for c in _list(r.get("concepts"))]
    steps = [i for r in rules if r.get("action") in ("block", "amplify") for i in _list(r.get("interventions"))]
    method = next((i for i in steps if i in BLOCK_METHODS), "rebalance")
    b_rule = next((r for r in rules if r.get("action") == "block"), {})
    a_rule = next((r for r in rules if r.get("action") == "amplify"), {})
    return EditorState(
        block=block,
        amplify=amplify,
        method=method,
        strength=float(b_rule.get("strength", 1.0) or 1.0),
        amplify_strength=float(a_rule.get("strength", 1.0) or 1.0),
        extras=[e for e in EXTRAS if e in steps],
        name=str(rec.get("name") or "draft-recipe"),
    )


def _list(v) -> list[str]:
    return [str(x) for x in (v if isinstance(v, (list, tuple)) else [v] if v else [])]


def recipe_dict(data: AppData, st: EditorState) -> dict:
    """The recipe the editor shows, as a dict: the applied recipe's own fields, with its block/amplify rules
    replaced by the editor's (allow rules and ``seed``, ``publish`` kept). No local path is written."""
    from .loading import dataset_name

    base = dict(applied_recipe(data) or {})
    block, amplify = data.expand_groups(st.block), data.expand_groups(st.amplify)
    margin = ["margin"] if "margin" in st.extras else []
    rules = []
    if block:
        rule = {
            "concepts": block,
            "action": "block",
            "strength": float(st.strength),
            "interventions": [st.method] + (["inoculate"] if "inoculate" in st.extras else []) + margin,
        }
        # the applied recipe's adjust_for stays with a weighting method (the editor has no control for it)
        adjust = next((r.get("adjust_for") for r in base.get("rules") or [] if r.get("action") == "block"), None)
        if adjust is not None and st.method in ("rebalance", "balance", "resample"):
            rule["adjust_for"] = adjust
        rules.append(rule)
    if amplify:
        rules.append(
            {
                "concepts": amplify,
                "action": "amplify",
                "strength": float(st.amplify_strength),
                "interventions": ["upweight"] + margin,
            }
        )
    taken = set(block) | set(amplify)
    for r in base.get("rules") or []:
        if r.get("action") == "allow":
            rest = [c for c in _list(r.get("concepts")) if c not in taken]
            if rest:
                rules.append({**r, "concepts": rest})
    sae = sorted({m["source"] for r in rules for c in r["concepts"] if (m := SAE_ID.match(c))})
    concepts = base.get("concepts") or [{"kind": "named"}]
    have = {c.get("source") for c in concepts if isinstance(c, dict) and c.get("kind") == "sae"}
    concepts = list(concepts) + [{"kind": "sae", "source": s} for s in sae if s not in have]
    out = {**base, "name": (st.name or "draft-recipe").strip(), "concepts": concepts, "rules": rules}
    out.setdefault("description", f"Drafted in the curate app for {data.source}.")
    src = (out.get("data") or {}).get("source")
    if src:
        out["data"] = {**out["data"], "source": dataset_name(src)}
    return out


def unchanged(data: AppData, st: EditorState) -> bool:
    """Whether the editor shows the applied recipe as it is (then the applied recipe itself is previewed and
    downloaded, rules the editor cannot show one by one included)."""
    return bool(applied_recipe(data)) and st.key() == preset(data).key()


def editor_recipe(data: AppData, st: EditorState) -> dict:
    """The recipe the editor stands for: the applied recipe while unchanged, else :func:`recipe_dict`. The
    preview runs it and the download writes it, so what is shown is what is downloaded."""
    if unchanged(data, st):
        rec = dict(applied_recipe(data))
        src = (rec.get("data") or {}).get("source")
        if src:
            from .loading import dataset_name

            rec["data"] = {**rec["data"], "source": dataset_name(src)}
        return rec
    return recipe_dict(data, st)


def recipe_yaml(data: AppData, st: EditorState) -> str:
    """The YAML the editor exports: the applied recipe verbatim while the editor shows it unchanged."""
    from ..recipe import Recipe

    if data.recipe_text and unchanged(data, st):
        rec = applied_recipe(data) or {}
        if not (rec.get("data") or {}).get("source"):
            return Recipe.from_yaml(data.recipe_text, validate_ids=False).to_yaml()
    text = Recipe.from_dict(editor_recipe(data, st), validate_ids=False).to_yaml()
    groups = [c for c in st.block + st.amplify if GROUP_ID.match(c)]
    if groups:
        text = "".join(f"# {g} = {', '.join(data.expand_groups([g]))}\n" for g in groups) + text
    return text


def check(data: AppData, st: EditorState) -> tuple[EditorState, list[str], str | None]:
    """Validate the editor's inputs. Returns (cleaned state, warnings, error): unknown concepts are named
    (with the closest known ones) and left out; a concept both blocked and amplified is an error."""
    known = set(data.concepts)
    warnings = []
    clean = {}
    for what in ("block", "amplify"):
        ids = [data.resolve(c) for c in ids_of(getattr(st, what))]
        bad = [c for c in ids if c not in known]
        for c in bad:
            close = difflib.get_close_matches(c, sorted(known), n=3)
            warnings.append(
                f"Unknown concept {c!r} in {what}: left out." + (f" Did you mean {', '.join(close)}?" if close else "")
            )
        clean[what] = [c for c in ids if c in known]
    both = sorted(set(clean["block"]) & set(clean["amplify"]))
    err = (
        (
            f"{', '.join(both)} {'is' if len(both) == 1 else 'are'} both blocked and amplified: choose one action "
            "per concept (remove it from Amplify or from Block)."
        )
        if both
        else None
    )
    try:
        strength = float(st.strength)
    except (TypeError, ValueError):
        strength = 1.0
    if not 0 < strength <= 1:
        warnings.append(f"Block strength must be in (0, 1]; {st.strength!r} was given, 1.0 is used.")
        strength = 1.0
    method = st.method if st.method in BLOCK_METHODS else "rebalance"
    out = EditorState(
        clean["block"],
        clean["amplify"],
        method,
        strength,
        st.amplify_strength,
        [e for e in st.extras if e in EXTRAS],
        st.name,
    )
    return out, warnings, err


def editor_preview(data: AppData, st: EditorState, *, show_all: bool = True) -> dict:
    """What the editor's recipe would do to the source pairs: rows kept, ESS, and per concept the win-rate
    with its 95% CI before and after; ``warnings`` flags amplified concepts that move down.

    One code path with ``curate apply``: the rows are the source rows the applied recipe started from
    (:meth:`AppData.source_data`, never the curated result), the whole recipe runs (its ``adjust_for``
    concepts scored as apply scores them) through :func:`curate.interventions.preview`, so the applied recipe,
    unchanged, previews the apply record's rows kept, ESS and win-rates."""
    from ..concepts.named import list_concepts
    from ..interventions import PairState
    from ..interventions import preview as run_preview
    from ..interventions.apply import subset_column
    from ..recipe import Recipe

    src = data.source_data()
    w0 = src._source.astype(float)
    out = {
        "rows_before": int((w0 > 0).sum()),
        "ess_before": round(float(w0.sum()), 1),
        "concepts": [],
        "warnings": [],
        "rows_kept": int((w0 > 0).sum()),
        "ess_after": round(float(w0.sum()), 1),
    }
    rec = editor_recipe(data, st)
    acted = [c for r in rec["rules"] for c in _list(r.get("concepts"))]
    # every named concept (show_all) and every confirmed SAE feature or group: side effects show up
    extra = [c for c in side_effect_candidates(data, show_all) if c not in acted and src.delta(c) is not None]
    rules = [r for r in rec["rules"] if all(src.delta(c) is not None for c in _list(r.get("concepts")))]
    # a group is acted on through its member features and reported as itself
    groups = {g: a for a, gs in (("block", st.block), ("amplify", st.amplify)) for g in gs if GROUP_ID.match(g)}
    members = set(data.expand_groups(list(groups)))
    extra += [g for g in groups if src.delta(g) is not None and g not in extra]
    if extra:
        rules.append({"concepts": extra, "action": "allow"})
    if not rules:
        return out
    recipe = Recipe.from_dict({**rec, "rules": rules}, validate_ids=False)
    ids = recipe.concept_ids()
    adjusters = recipe.adjusters()
    adjusters = list(list_concepts()) if adjusters == "all" else list(adjusters or [])
    ids += [c for c in adjusters if c not in ids and src.side(c, C.CHOSEN) is not None]
    n = src.n_rows
    by = subset_column(src.table)  # as apply does: a blocked concept is balanced within each subset
    state = PairState(
        concepts=list(ids),
        chosen=np.column_stack([src.side(c, C.CHOSEN) for c in ids]),
        rejected=np.column_stack([src.side(c, C.REJECTED) for c in ids]),
        usable=src._source.copy(),
        keep=src._source.copy(),
        reason=np.where(src._source, "", src._reason).astype(object),
        weight=w0.copy(),
        margin=np.zeros(n),
        swapped=np.zeros(n, bool),
        copies=np.ones(n, np.int64),
        instructions=[[]] * n,
        labels={c: c for c in ids},
        subsets=C.subset_values(src.table.column(by).to_pylist()) if by else None,
    )  # rows' lists are replaced, never appended to
    res = run_preview(None, recipe=recipe, state=state)
    table = [
        {**r, "action": groups.get(r["concept"], r["action"])}
        for r in res["table"].to_dict("records")
        if r["concept"] not in members
    ]
    table.sort(key=lambda r: {"block": 0, "amplify": 1}.get(r["action"], 2))
    out.update(
        rows_kept=int(res["rows_kept"]),
        ess_after=round(float(res["ess"]), 1),
        ess_fraction=float(res["ess_fraction"]),
        concepts=table,
    )
    for r in table:
        b, a = r["win_rate_before"], r["win_rate_after"]
        if r["action"] == "amplify" and a < b - 0.005:
            out["warnings"].append(
                f"Amplifying {r['concept']} moves it down ({b:.3f} → {a:.3f}): pairs that show it also show a "
                "blocked concept, and blocking that removes weight from them. Block fewer concepts, or accept it."
            )
    return out


def side_effect_candidates(data: AppData, show_all: bool = True) -> list[str]:
    """The concepts a preview (and the Curation tab) watch for side effects: every named concept (``show_all``)
    and every confirmed SAE feature or group, one per row of the concept table."""
    shown = [c for c in data.concepts if c not in data.hidden()]
    confirmed = set(data.audit.loc[truthy(data.audit["confirmed"]), "concept"].astype(str))
    named = set(data.audit.loc[data.audit["source"].astype(str) == "named", "concept"].astype(str))
    return [c for c in shown if (show_all and c in named) or c in confirmed]


def moved(r: dict) -> bool:
    """Whether a concept's win-rate moved significantly from before to after: the difference over the standard
    errors read off the two 95% intervals (taken as independent, which is conservative for the same pairs)."""
    vals = [r.get(k) for k in ("win_rate_before", "ci_low_before", "ci_high_before")]
    vals += [r.get(k) for k in ("win_rate_after", "ci_low_after", "ci_high_after")]
    if any(v is None or not np.isfinite(v) for v in vals):
        return False
    b, bl, bh, a, al, ah = (float(v) for v in vals)
    se = np.hypot((bh - bl) / (2 * 1.96), (ah - al) / (2 * 1.96))
    return bool(se > 0 and abs(a - b) / se > 1.96)


def curation(data: AppData) -> dict | None:
    """What the applied recipe changed, from the apply record: the recipe, retention (rows, ESS), before/after
    per concept with CIs, the side effects (other concepts, through :func:`editor_preview` of the applied recipe, which
    computes what apply does), rows dropped by the recipe and at ingestion, weights, and the instructions
    inoculation added. Computed once per loaded dataset."""
    if "curation" in data._cache:
        return data._cache["curation"]
    rec = applied_recipe(data)
    if not data.applied and not rec:
        return None
    ret = dict(data.applied.get("retention") or {})
    before_after = data.applied.get("before_after") or []
    if isinstance(before_after, str):
        before_after = []
    steps = data.applied.get("steps") or []
    added = {}
    for s in steps:
        if isinstance(s, dict) and s.get("intervention") == "inoculate":
            added.update(s.get("instructions_used") or {})
    w = data.weights[data._kept]
    dropped = {str(k): int(v) for k, v in (ret.get("dropped_by_reason") or {}).items()}
    acted = {r.get("concept") for r in before_after}
    side = []
    if rec:
        side = [
            {**r, "moved": moved(r)}
            for r in editor_preview(data, preset(data))["concepts"]
            if r["action"] not in ("block", "amplify") and r["concept"] not in acted
        ]
    out = {
        "recipe": rec,
        "retention": ret,
        "before_after": before_after,
        "side_effects": side,
        "steps": steps,
        "added": added,
        "kept": data.n_kept,
        "dropped_by_reason": dropped,
        "dropped_by_recipe": {k: v for k, v in dropped.items() if not k.startswith(C.INVALID_PREFIX)},
        "dropped_at_ingestion": {k: v for k, v in dropped.items() if k.startswith(C.INVALID_PREFIX)},
        "warnings": list(data.applied.get("warnings") or []),
        "weights": {
            "rows": len(w),
            "zero": int((w == 0).sum()),
            "min": float(w.min()) if len(w) else None,
            "median": float(np.median(w)) if len(w) else None,
            "max": float(w.max()) if len(w) else None,
        },
    }
    data._cache["curation"] = out
    return out


def added_instructions(data: AppData) -> list[str]:
    """Texts inoculation added to prompts (marked as added in the Pairs view)."""
    cur = curation(data)
    return sorted(set((cur or {}).get("added", {}).values()), key=len, reverse=True)
