"""Recipes: what a model may learn from a preference dataset, concept by concept.

A recipe is a YAML file with a validated schema::

    # When to use: ... (a leading comment block is kept on load and written back on dump)
    name: anti-sycophancy
    description: Stop rewarding flattery and agreement with the user.
    data:                       # where the pairs come from (optional; the CLI argument wins)
      source: path/or/hub-id
      split: train
    concepts:                   # concept sources the ids below refer to
      - kind: named             # the named detectors (curate.concepts.list_concepts())
      - kind: sae               # SAE features, ids "sae:<source>:<feature>"
        source: smollm2-l15
    rules:
      - concepts: [flattery, agreement]
        action: block           # allow | block | amplify
        strength: 1.0           # block: share of the imbalance removed, in (0, 1]; amplify: extra weight > 0
        interventions: [rebalance, margin]
        adjust_for: all         # rebalance: other concepts' reward must not travel with the blocked ones
      - concepts: [emoji]
        action: block
        interventions: [filter]
        filter_mode: differ     # filter: drop every pair where the concept differs (default: balance)
    seed: 0
    block_within: subsets       # with subsets (the audit's --by): balance each subset (default) or `pooled`
    publish:                    # metadata for the dataset card (curate publish)
      repo_id: me/my-dataset-curated
      license: cc-by-4.0
      tags: [dpo]

Interventions allowed per action (:data:`ALLOWED_INTERVENTIONS`):

* ``block``: ``rebalance`` (default for counts), ``balance`` (default for magnitudes: ``length``,
  ``log_length``, SAE features — their mean Δ is balanced, not only their win-rate), ``resample``, ``match``,
  ``filter``, ``relabel``, ``inoculate``, ``margin``, ``ablate``, ``steer``, ``length_penalty`` (a training-time
  R-DPO term);
* ``amplify``: ``upweight`` (default), ``margin``, ``balance`` (with ``target``: a wanted mean Δ in sd);
* ``allow``: none — the concept is only reported before and after.

Validation rejects unknown keys, values outside the allowed sets, a concept named in two rules
(conflicting or duplicated actions), ``rebalance`` and ``resample`` in the same recipe (the weights are
realised one way or the other for the whole dataset), and concept ids that are not known — against the
named registry and the declared SAE sources when loading, and against the concepts actually present in
an annotated dataset with :meth:`Recipe.check_concepts`. Every error names the key (``rules[1].action``)
and lists what is allowed.

Example:

    >>> from curate.recipe import Recipe
    >>> r = Recipe.from_yaml('''
    ... name: demo
    ... rules:
    ...   - concepts: [flattery]
    ...     action: block
    ... ''')
    >>> r.blocked(), r.rules[0].interventions
    (['flattery'], ['rebalance'])
    >>> Recipe.from_yaml(r.to_yaml()) == r
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from .. import _columns as C
from .._yaml import load_yaml, show_value
from ..errors import RecipeError
from ._rules import (
    ACTIONS,
    ALLOWED_INTERVENTIONS,
    DEFAULT_INTERVENTION,
    DEFAULT_MAGNITUDE_BLOCK,
    INTERVENTIONS,
    MAGNITUDES,
    check_rules,
    is_magnitude,
)

__all__ = [
    "ACTIONS",
    "ALLOWED_INTERVENTIONS",
    "DEFAULT_INTERVENTION",
    "INTERVENTIONS",
    "MAGNITUDES",
    "is_magnitude",
    "Recipe",
    "Rule",
    "load_recipe",
    "shipped_recipes",
]

_SAE_ID = C.SAE_ID


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataSpec(_Model):
    """Where the pairs come from: anything :func:`curate.load_pairs` reads."""

    source: str | None = None
    split: str | None = None
    limit: int | None = Field(default=None, gt=0)


class ConceptSource(_Model):
    """A concept source: ``named`` detectors, or an ``sae`` whose features are ids ``sae:<source>:<n>``."""

    kind: Literal["named", "sae"] = "named"
    source: str | None = None
    path: str | None = None
    layer: int | None = None
    model: str | None = None


class Rule(_Model):
    """One decision: an action for one or more concepts, with a strength and the interventions to use.

    Args:
        concepts: concept ids (a single string is accepted).
        action: ``allow``, ``block`` or ``amplify``.
        strength: for ``block``, the share of the imbalance to remove (1 = win-rate 0.5); for ``amplify``,
            the extra weight of pairs whose chosen response shows the concept (1 = double).
        interventions: how to act (see :data:`ALLOWED_INTERVENTIONS`); defaults per action.
        instruction: for ``inoculate``, the system instruction naming the behaviour (default per concept).
        alpha: for ``steer``, the steering coefficient.
        adjust_for: for ``rebalance`` / ``resample``, concept ids (or ``all``: every named concept) whose
            reward must not travel with a blocked concept: their mean Δ is made equal where the blocked
            concept wins and where it loses (:class:`curate.interventions.Rebalance`).
        filter_mode: for ``filter``, ``balance`` (default: drop the fewest pairs that bring the win-rate to 0.5)
            or ``differ`` (drop every pair where the concept differs, so nothing about it is left to learn;
            :class:`curate.interventions.Filter`).
        target: for ``balance`` on an amplified magnitude, the wanted weighted mean Δ in sd.
        tolerance: for ``match``, the most difference in |Δ| (in sd) between two mirrored pairs (default 0.05).
        length_alpha: for ``length_penalty``, the R-DPO coefficient α per token (default 0.01): the DPO margin
            becomes ``β(log-ratio(y⁺) − log-ratio(y⁻)) − α(|y⁺| − |y⁻|)``.

    A blocked rule without ``interventions`` uses ``balance`` when one of its concepts is a magnitude
    (:func:`is_magnitude`), else ``rebalance``.
    """

    concepts: list[str]
    action: Literal["allow", "block", "amplify"]
    strength: float = 1.0
    interventions: list[str] | None = None
    instruction: str | None = None
    alpha: float | None = None
    adjust_for: list[str] | Literal["all"] | None = None
    filter_mode: Literal["balance", "differ"] | None = None
    target: float | None = None
    tolerance: float | None = Field(default=None, gt=0)
    length_alpha: float | None = Field(default=None, ge=0)

    @field_validator("concepts", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        if isinstance(v, str):
            return [v]
        return v

    @field_validator("concepts")
    @classmethod
    def _non_empty(cls, v):
        if not v:
            raise ValueError("list at least one concept id")
        return v

    @model_validator(mode="after")
    def _default_interventions(self):
        if self.interventions is None:
            magnitude = self.action == "block" and any(is_magnitude(c) for c in self.concepts)
            default = DEFAULT_MAGNITUDE_BLOCK if magnitude else DEFAULT_INTERVENTION[self.action]
            self.__dict__["interventions"] = list(default)
        return self


class PublishSpec(_Model):
    """Metadata for publishing the curated dataset (read by ``curate publish`` / the dataset card)."""

    repo_id: str | None = None
    pretty_name: str | None = None
    license: str | None = None
    tags: list[str] = Field(default_factory=list)
    private: bool = True
    description: str | None = None


class Recipe(_Model):
    """A validated recipe (see the module docstring for the YAML layout).

    Build one with :meth:`from_yaml`, :func:`load_recipe`, :meth:`from_ids` or the constructor; write it
    with :meth:`to_yaml` / :meth:`save`.
    """

    version: Literal[1] = 1
    name: str = "recipe"
    description: str = ""
    data: DataSpec = Field(default_factory=DataSpec)
    concepts: list[ConceptSource] = Field(default_factory=lambda: [ConceptSource(kind="named")])
    rules: list[Rule] = Field(default_factory=list)
    seed: int = 0
    block_within: Literal["subsets", "pooled"] | None = None
    publish: PublishSpec = Field(default_factory=PublishSpec)

    _header: str = PrivateAttr(default="")

    def model_post_init(self, _ctx) -> None:
        check_rules(self)

    # -- constructors -----------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict, *, header: str = "", validate_ids: bool = True) -> "Recipe":
        """Build from a plain dict (the parsed YAML); raises :class:`~curate.errors.RecipeError`."""
        if not isinstance(data, dict):
            raise RecipeError(
                f"A recipe must be a mapping at the top level, got {type(data).__name__}. "
                f"Allowed keys: {sorted(cls.model_fields)}."
            )
        try:
            recipe = cls.model_validate(data)
        except ValidationError as err:
            raise RecipeError(_format_validation_error(err)) from None
        recipe._header = header
        if validate_ids:
            recipe.check_concepts()
        return recipe

    @classmethod
    def from_yaml(cls, text: str, *, validate_ids: bool = True) -> "Recipe":
        """Parse YAML text. A leading block of ``#`` comments is kept and written back by :meth:`to_yaml`.

        The YAML is read by :func:`curate._yaml.load_yaml`: aliases that expand beyond a small bound, nesting
        deeper than a small bound and a key written twice in one mapping are errors."""
        data = load_yaml(text)
        return cls.from_dict(data or {}, header=_leading_comments(text), validate_ids=validate_ids)

    @classmethod
    def from_ids(
        cls,
        block: Iterable[str] = (),
        amplify: Iterable[str] = (),
        *,
        name: str = "cli",
        block_with: Iterable[str] | None = None,
        amplify_with: Iterable[str] = ("upweight",),
        adjust_for: Iterable[str] | str | None = None,
        validate_ids: bool = True,
    ) -> "Recipe":
        """A recipe from lists of ids (what ``curate apply --block ... --amplify ...`` builds).

        ``block_with=None`` takes the default: ``balance`` when a blocked id is a magnitude, else ``rebalance``.

        Example:

            >>> Recipe.from_ids(block=["flattery", "markdown"], amplify=["refusal"]).actions()
            {'flattery': 'block', 'markdown': 'block', 'refusal': 'amplify'}
        """
        rules = []
        block, amplify = list(block), list(amplify)
        if block:
            rule = {"concepts": block, "action": "block"}
            if block_with is not None:
                rule["interventions"] = list(block_with)
            if adjust_for is not None:
                rule["adjust_for"] = adjust_for if isinstance(adjust_for, str) else list(adjust_for)
            rules.append(rule)
        if amplify:
            rules.append({"concepts": amplify, "action": "amplify", "interventions": list(amplify_with)})
        sources: list[dict] = [{"kind": "named"}]
        for src in sorted({m["source"] for c in block + amplify if (m := _SAE_ID.match(c))}):
            sources.append({"kind": "sae", "source": src})
        return cls.from_dict({"name": name, "concepts": sources, "rules": rules}, validate_ids=validate_ids)

    # -- reading ----------------------------------------------------------------------------------------
    def actions(self) -> dict[str, str]:
        """concept id -> action, in rule order."""
        return {c: r.action for r in self.rules for c in r.concepts}

    def rule_for(self, concept: str) -> Rule:
        for r in self.rules:
            if concept in r.concepts:
                return r
        raise RecipeError(f"Concept {concept!r} is not in the recipe. Concepts in it: {list(self.actions())}.")

    def concept_ids(self) -> list[str]:
        return list(self.actions())

    def blocked(self) -> list[str]:
        return [c for c, a in self.actions().items() if a == "block"]

    def amplified(self) -> list[str]:
        return [c for c, a in self.actions().items() if a == "amplify"]

    def allowed(self) -> list[str]:
        return [c for c, a in self.actions().items() if a == "allow"]

    def with_intervention(self, name: str) -> list[str]:
        """Concept ids whose rule uses intervention ``name``."""
        return [c for r in self.rules if name in (r.interventions or []) for c in r.concepts]

    def adjusters(self) -> list[str] | str | None:
        """What the rebalancing rules adjust for: the union of their ``adjust_for`` ids, ``"all"`` when one
        says so, ``None`` when none does."""
        values = [r.adjust_for for r in self.rules if r.adjust_for is not None]
        if not values:
            return None
        if "all" in values:
            return "all"
        return list(dict.fromkeys(c for v in values for c in v))

    def check_concepts(self, known: Iterable[str] | Any | None = None) -> "Recipe":
        """Check that every concept id exists.

        Args:
            known: the ids that exist — an iterable of ids, or an annotated dataset (its ``chosen__<id>``
                score columns and SAE sources). ``None`` checks against the named registry
                (:func:`curate.concepts.list_concepts`) and the SAE sources declared under ``concepts``.

        Returns:
            self. Raises :class:`~curate.errors.RecipeError` at the first unknown id, listing the known ones.
        """
        sae_sources = {s.source for s in self.concepts if s.kind == "sae"}
        if known is None:
            from ..concepts.named import list_concepts

            names = set(list_concepts()) if any(s.kind == "named" for s in self.concepts) else set()
            what = "named concepts (curate.concepts.list_concepts())"
        else:
            names, sae_sources = _known_from(known)
            what = "concepts in the data"
        for i, rule in enumerate(self.rules):
            ids = [(f"concepts[{j}]", c) for j, c in enumerate(rule.concepts)]
            if isinstance(rule.adjust_for, list):
                ids += [(f"adjust_for[{j}]", c) for j, c in enumerate(rule.adjust_for)]
            for key, cid in ids:
                m = _SAE_ID.match(cid)
                if m:
                    if m["source"] not in sae_sources:
                        raise RecipeError(
                            f"rules[{i}].{key}: {show_value(cid)} refers to SAE source {m['source']!r}, which is not "
                            f"{'in the data' if known is not None else 'declared'}. SAE sources: {sorted(sae_sources)}"
                            + (
                                ""
                                if known is not None
                                else f"; add `{{kind: sae, source: {m['source']}}}` under `concepts`"
                            )
                            + "."
                        )
                    if known is not None and cid not in names:
                        raise RecipeError(
                            f"rules[{i}].{key}: unknown concept {show_value(cid)}. Active SAE features "
                            f"in the data: {_short(sorted(n for n in names if n.startswith('sae:')))}."
                        )
                elif cid not in names:
                    raise RecipeError(
                        f"rules[{i}].{key}: unknown concept {show_value(cid)}. Known {what}: "
                        f"{_short(sorted(n for n in names if not n.startswith('sae:')))}."
                    )
        return self

    # -- writing ----------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """A plain, JSON-able dict (what :meth:`to_yaml` writes)."""
        return self.model_dump(mode="json", exclude_none=True)

    def to_yaml(self) -> str:
        """YAML text; the leading comment of the loaded file (if any) is written first."""
        body = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, default_flow_style=None)
        return (self._header + "\n\n" if self._header else "") + body

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_yaml(), encoding="utf-8")
        return path

    def __eq__(self, other) -> bool:
        return isinstance(other, Recipe) and self.to_dict() == other.to_dict()

    def __hash__(self):  # pragma: no cover - recipes are mutable; hash by content for caching
        return hash(self.to_yaml())


def load_recipe(path: str | Path, *, validate_ids: bool = True) -> Recipe:
    """Load a recipe YAML file (see :class:`Recipe`).

    Example:

        >>> from curate.recipe import load_recipe
        >>> load_recipe("recipes/anti_sycophancy.yaml").blocked()
        ['flattery', 'agreement']
        >>> load_recipe("length_debiasing").actions()  # a shipped recipe, by name
        {'length': 'block', 'log_length': 'allow'}
    """
    path = Path(path)
    if not path.exists():
        shipped = shipped_recipes()
        name = path.name if path.suffix else f"{path.name}.yaml"
        if name in shipped:
            path = shipped[name]
        else:
            raise RecipeError(
                f"Recipe file {str(path)!r} does not exist. Shipped recipes (usable by name): {sorted(shipped)}."
            )
    try:
        return Recipe.from_yaml(path.read_text(encoding="utf-8"), validate_ids=validate_ids)
    except RecipeError as err:
        raise RecipeError(f"{path}: {err}") from None


def shipped_recipes() -> dict[str, Path]:
    """The recipes shipped with the package (``curate/recipes/``, kept equal to the repository's ``recipes/``
    folder by ``tests/test_packaging.py``): file name -> path."""
    folder = Path(__file__).resolve().parent.parent / "recipes"
    return {p.name: p for p in sorted(folder.glob("*.yaml"))}


# -- helpers -------------------------------------------------------------------------------------------
def _known_from(known) -> tuple[set[str], set[str] | None]:
    if isinstance(known, (list, tuple, set, frozenset)) or (
        hasattr(known, "__iter__") and not hasattr(known, "column_names") and not hasattr(known, "columns")
    ):
        ids = set(known)
        return ids, {m["source"] for c in ids if (m := _SAE_ID.match(c))}
    names = list(getattr(known, "column_names", None) or list(getattr(known, "columns", [])))
    ids = {p[1] for n in names if (p := C.parse_score_column(n)) and p[0] == C.CHOSEN}
    sae = {p[1] for n in names if (p := C.parse_sae_column(n))}
    if sae:
        from ..scores import concept_scores

        ids |= {c for c in concept_scores(known, min_active=1).concepts["concept"] if c.startswith("sae:")}
    return ids, sae


def _short(items: list[str], n: int = 40) -> str:
    return str(items[:n]) + (f" … ({len(items)} in all)" if len(items) > n else "")


def _leading_comments(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if line.startswith("#") or (lines and not line.strip()):
            lines.append(line)
        else:
            break
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    sub = {"data": DataSpec, "concepts": ConceptSource, "rules": Rule, "publish": PublishSpec}
    for part in loc:
        if isinstance(part, str) and part in sub and model is Recipe:
            model = sub[part]
    return sorted(model.model_fields)


def _format_validation_error(err: ValidationError) -> str:
    msgs = []
    for e in err.errors():
        loc = e["loc"]
        key = ""
        for part in loc:
            key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
        if e["type"] == "extra_forbidden":
            parent = loc[:-1]
            msgs.append(f"{key}: unknown key. Allowed keys here: {_allowed_keys(Recipe, parent)}.")
        elif e["type"] == "literal_error":
            msgs.append(f"{key}: {e['msg']} (got {show_value(e.get('input'))}).")
        elif e["type"] == "missing":
            msgs.append(f"{key}: required key is missing.")
        elif e["type"] == "value_error" and isinstance((e.get("ctx") or {}).get("error"), RecipeError):
            msgs.append(str(e["ctx"]["error"]))
        else:
            msgs.append(f"{key or '<top>'}: {e['msg']} (got {show_value(e.get('input'))}).")
    if len(msgs) == 1 and msgs[0].startswith("rules"):
        return msgs[0]
    return "Invalid recipe: " + " ".join(msgs)
