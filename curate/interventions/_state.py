"""The working state interventions read and write: per-pair arrays, no text (cheap to copy)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import _columns as C
from ..errors import ConceptError


@dataclass
class PairState:
    """Per-pair arrays over *all* rows of a dataset, in the original order.

    Attributes:
        concepts: the recipe's concept ids (columns of ``chosen`` / ``rejected``).
        chosen, rejected: ``(n, k)`` concept scores (0 for unusable rows).
        usable: rows whose input ``reason`` was empty.
        keep: rows that stay in the ``train`` split.
        reason: why a row is not kept (``""`` for kept rows).
        weight: per-pair weight (0 for rows not kept).
        margin: per-pair reward margin.
        swapped: rows whose chosen and rejected were exchanged.
        copies: how many times a kept row appears in ``train`` (resampling), else 1.
        instructions: per row, system instructions added by inoculation. A row's list is replaced, never
            changed in place, so :meth:`copy` shares the lists (copying 100k lists took 0.15 s a copy).
        subsets: per row, the subset it belongs to (the audit's ``--by`` column), or ``None``: weighting
            interventions then balance a blocked concept within each subset (see :class:`Rebalance`).
    """

    concepts: list[str]
    chosen: np.ndarray
    rejected: np.ndarray
    usable: np.ndarray
    keep: np.ndarray
    reason: np.ndarray
    weight: np.ndarray
    margin: np.ndarray
    swapped: np.ndarray
    copies: np.ndarray
    instructions: list[list[str]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    subsets: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.keep)

    def index(self, concept: str) -> int:
        if concept not in self.concepts:
            raise ConceptError(f"Concept {concept!r} has no scores here. Concepts available: {self.concepts}.")
        return self.concepts.index(concept)

    def delta(self, concept: str | None = None) -> np.ndarray:
        """Δ = score(chosen) − score(rejected), for one concept or all (``(n, k)``)."""
        d = self.chosen - self.rejected
        return d if concept is None else d[:, self.index(concept)]

    def side(self, concept: str, side: str) -> np.ndarray:
        mat = self.chosen if side == C.CHOSEN else self.rejected
        return mat[:, self.index(concept)]

    def groups(self, concept: str) -> list[np.ndarray]:
        """Masks of the pairs where ``concept`` differs, split into "only one response shows it" and
        "both show it, in different amounts": balancing each group separately balances both the count
        win-rate (sign of Δ) and the presence win-rate."""
        c, r = self.side(concept, "chosen"), self.side(concept, "rejected")
        d = c - r
        one = (c > 0) != (r > 0)
        return [one & (d != 0), ~one & (d != 0)]

    def drop(self, mask: np.ndarray, reason: str) -> int:
        """Mark kept rows in ``mask`` as not kept with ``reason``; returns how many changed."""
        mask = np.asarray(mask, bool) & self.keep
        self.keep[mask] = False
        self.reason[mask] = reason
        self.weight[mask] = 0.0
        self.margin[mask] = 0.0
        return int(mask.sum())

    def swap(self, mask: np.ndarray) -> None:
        mask = np.asarray(mask, bool)
        self.chosen[mask], self.rejected[mask] = self.rejected[mask].copy(), self.chosen[mask].copy()
        self.swapped[mask] = ~self.swapped[mask]

    def win_rates(self, weights: np.ndarray | None = None) -> dict[str, float]:
        """Weighted win-rate of every concept over kept rows (NaN where no kept pair differs)."""
        w = (self.weight if weights is None else weights) * self.keep
        d = self.delta()
        out = {}
        for j, c in enumerate(self.concepts):
            tot = float((w * (d[:, j] != 0)).sum())
            out[c] = float((w * (d[:, j] > 0)).sum() / tot) if tot > 0 else float("nan")
        return out

    def ess(self) -> float:
        """Kish effective sample size of the kept rows, ``(Σw)² / Σw²`` (row copies counted)."""
        from ..stats import kish_n

        return float(kish_n(self.weight * self.keep * self.copies))  # a row drawn c times counts with weight c·w

    def copy(self) -> "PairState":
        return PairState(
            list(self.concepts),
            self.chosen.copy(),
            self.rejected.copy(),
            self.usable.copy(),
            self.keep.copy(),
            self.reason.copy(),
            self.weight.copy(),
            self.margin.copy(),
            self.swapped.copy(),
            self.copies.copy(),
            list(self.instructions),
            dict(self.labels),
            self.subsets,
        )


def state_from_dataset(dataset, concepts: list[str], *, subsets: str | None = None) -> PairState:
    """Build a :class:`PairState` from an annotated dataset (named and SAE concepts alike).

    ``subsets`` names the column whose values are the rows' subsets (``None``: no subsets).

    Raises :class:`~curate.errors.ConceptError` listing the concepts present when one is missing.
    """
    from ..scores import concept_scores

    scores = concept_scores(dataset, min_active=1)
    present = scores.concepts["concept"].tolist()
    missing = [c for c in concepts if c not in present]
    if missing:
        raise ConceptError(
            f"Concepts {missing} have no scores in the dataset. Annotate it first (curate.annotate / an SAE "
            f"annotator). Concepts present: {present[:60]}" + (" …" if len(present) > 60 else "")
        )
    n = len(dataset)
    k = len(concepts)
    chosen = np.zeros((n, k), np.float32)
    rejected = np.zeros((n, k), np.float32)
    cols = [present.index(c) for c in concepts]
    if k:
        chosen[scores.rows] = scores.chosen[:, cols]
        rejected[scores.rows] = scores.rejected[:, cols]
    reason_in = dataset[C.REASON] if C.REASON in dataset.column_names else [""] * n
    reason = np.array([r or "" for r in reason_in], dtype=object)
    usable = reason == ""
    labels = dict(zip(scores.concepts["concept"], scores.concepts["label"]))
    return PairState(
        concepts=list(concepts),
        chosen=chosen,
        rejected=rejected,
        usable=usable,
        keep=usable.copy(),
        reason=reason,
        weight=usable.astype(float),
        margin=np.zeros(n),
        swapped=np.zeros(n, bool),
        copies=np.ones(n, np.int64),
        instructions=[[] for _ in range(n)],
        labels={c: labels.get(c, c) for c in concepts},
        subsets=C.subset_values(dataset[subsets]) if subsets else None,
    )
