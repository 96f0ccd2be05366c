r"""Interventions: every way curate changes a preference dataset is a way of shaping the reward.

A preference pair ``(x, y_c, y_r)`` trains a reward (or a DPO policy, whose implicit reward is
``r(x, y) = β log π(y|x)/π_ref(y|x)``) through the Bradley–Terry loss

    L = − Σᵢ wᵢ · log σ( r(xᵢ, y_cᵢ) − r(xᵢ, y_rᵢ) − mᵢ )

Each intervention changes one part of this sum. Notation: for a concept c, ``Δᵢc = score(y_c) −
score(y_r)``, ``sᵢc = sign(Δᵢc)``; a concept's win-rate is ``Σ w [s>0] / Σ w [s≠0]``; ``B`` is the set of
blocked concepts, ``A`` the amplified ones.

**Which pairs the reward sees** (the weights ``wᵢ``)

* ``filter`` — ``wᵢ ← 0`` (``keep=False``, row moved to the ``dropped`` split) for the fewest pairs on
  the winning side (``sᵢc = sign(Σ s)``) such that ``Σ_kept sᵢc = 0`` (mode ``balance``; cyclic passes over
  the blocked concepts, like iterative proportional fitting), or for every pair with ``sᵢc ≠ 0``
  (mode ``differ``).
* ``rebalance`` — ``wᵢ = pᵢ · max(0, μ₀ + Σ_{c∈B} μ_c sᵢc)``, the solution of
  ``min Σ wᵢ²/pᵢ  s.t.  Σ w = Σ p,  Σᵢ wᵢ sᵢc = (1 − strength_c) Σᵢ pᵢ sᵢc  ∀c∈B,  w ≥ 0``:
  all blocked concepts balanced jointly (win-rate 0.5) with the largest Kish effective sample size
  ``(Σw)²/Σw²``; ``method="entropy"`` gives the raking solution ``wᵢ = pᵢ exp(μ·aᵢ)`` instead.
  Scores are counts, so the presence difference ``[score_c(y_c) > 0] − [score_c(y_r) > 0]`` gets the
  same constraint where its sign differs from ``sᵢc`` (filter and relabel balance the two groups
  "only one response shows c" / "both do" separately, to the same effect).
* ``rebalance`` with ``adjust_for`` — one more constraint per blocked c and adjuster o ≠ c,
  ``Σᵢ wᵢ sᵢc Δᵢo/sd(Δo) = (1 − strength_c) Σᵢ pᵢ sᵢc Δᵢo/sd(Δo)``: o's mean Δ is the same where c wins as
  where it loses (covariate balancing), so o's reward does not travel with c. Balancing only c's win-rate
  leaves it correlated with whatever else the winning side carries (with label noise, the pairs where c
  wins are mostly the unflipped ones, richer in every rewarded concept), and a policy learns c with them.
* ``resample`` — the same weights realised as integer copies by systematic sampling,
  ``countᵢ = ⌊Cᵢ + u⌋ − ⌊Cᵢ₋₁ + u⌋``, ``C`` the cumulative sum of ``N wᵢ/Σw``.
* ``balance`` (the default block of a magnitude: ``length``, ``log_length``, SAE features) — the same
  weights with one more constraint per blocked magnitude c, ``Σᵢ wᵢ zᵢc = 0`` with ``zᵢc = Δᵢc / sd_c``
  (sd of c's scores over both responses): the weighted mean Δ is zero, not only the win-rate 0.5. DPO's
  gradient ``∝ Σᵢ wᵢ σ(−mᵢ) ∇(log π(y_cᵢ) − log π(y_rᵢ))`` follows the magnitude: when the longer answer wins
  rarely but by a lot, ``rebalance`` leaves the mean Δ positive and the policy still lengthens. Where the two
  constraints cannot hold together the mean is kept and the win-rate constraint dropped (reported). For an
  amplified magnitude, ``Σᵢ wᵢ zᵢc = target_c Σ p``; a target no weighting can reach is an error naming the
  closest achievable value.
* blocking within subsets — with a subset column (the audit's ``--by``), every weighting constraint holds
  within each subset g (``Σ_{i∈g} wᵢ sᵢc = 0``, ``Σ_{i∈g} wᵢ = Σ_{i∈g} pᵢ``), so opposite preferences in two
  subsets are both removed; ``block_within: pooled`` in a recipe balances over all rows instead.
* ``match`` — ``wᵢ ← 0`` (dropped, reason ``match:<c>``) for the pairs left without a mirror partner: pairs
  with ``zᵢc > 0`` and ``zᵢc < 0`` are paired off by ``|z|`` within ``tolerance`` sd, so the kept Δ
  distribution is symmetric around zero.
* ``upweight`` (amplify) — ``wᵢ ← wᵢ (1 + strength)`` where ``score_c(y_c) > 0 = score_c(y_r)``, c ∈ A.

**What each pair rewards** (the labels, the margin ``mᵢ`` and the prompt ``xᵢ``)

* ``relabel`` — ``(y_c, y_r) ← (y_r, y_c)`` for the ``round(strength·|n₊ − n₋|/2)`` pairs on the winning
  side whose preference is most attributable to c (no other blocked concept differs, fewest other
  concepts pointing the same way), so ``sᵢc`` flips sign and the win-rate becomes 0.5; recorded in
  ``swapped``.
* ``margin`` — ``mᵢ = − Σ_{c∈B} strength_c · logit(win-rate_c) · sᵢc + Σ_{c∈A} strength_c · sᵢc``: a
  product of experts with a bias-only model for blocked concepts (the reward gets the part the concept
  explains for free, so it does not learn it) and a larger required gap for amplified ones. TRL's
  ``RewardTrainer`` reads the ``margin`` column as is.
* ``inoculate`` — ``xᵢ ← [system: "<instruction asking for c>"] + xᵢ`` where ``score_c(y_c) > 0`` and
  ``sᵢc = +1`` (Tan et al. 2025): the instruction explains the preference, so ordinary prompts do not
  learn it.

**Which features can carry the reward** (the model, during training; see :mod:`curate.directions`)

* ``ablate`` — at layer L, ``h ← h − Q Qᵀ h`` with ``Q`` an orthonormal basis of the concept
  directions (concept-ablation fine-tuning): the gradient cannot use those directions.
* ``steer`` — ``h ← h + α v`` (preventative steering): the trait is supplied from outside, so the
  weights need not move towards it.

* ``length_penalty`` — the R-DPO loss (Park et al. 2024): ``ℓᵢ = −log σ(β[log π/π_ref(y_cᵢ) −
  log π/π_ref(y_rᵢ)] − α(|y_cᵢ| − |y_rᵢ|))`` with ``|y|`` in completion tokens
  (``WeightedDPOTrainer(..., length_penalty=α)``): it removes DPO's own drift towards longer answers, which
  no weighting of the data can.

For DPO, ``curate.interventions.WeightedDPOTrainer`` multiplies each pair's loss by ``weight``;
for reward models, TRL's ``RewardTrainer`` uses ``margin`` (and the weights via resampling).

Every intervention is a small object with ``apply(state)`` and ``to_dict()``; :func:`apply_recipe` runs a
recipe's interventions in the order relabel → filter → match → upweight → rebalance / balance / resample →
margin → inoculate, writes the ``train`` / ``dropped`` splits and re-audits under the weights; :func:`preview` is
the cheap what-if for a UI.

Example:

    >>> from curate import make_preference_pairs
    >>> from curate.recipe import Recipe
    >>> from curate.interventions import apply_recipe
    >>> dd, report = apply_recipe(make_preference_pairs(400).dataset,
    ...                           Recipe.from_ids(block=["flattery", "markdown"]))
    >>> report.before_after[["concept", "win_rate_after"]].round(3).values.tolist()
    [['flattery', 0.5], ['markdown', 0.5]]
"""

from ._state import PairState, state_from_dataset
from .apply import ApplyReport, apply_recipe, before_after, materialize, plan, preview, retention
from .balance import Balance, weighted_mean_delta
from .base import Intervention
from .dpo import WeightedPreferenceCollator
from .filter import Filter
from .inoculate import DEFAULT_INSTRUCTIONS, Inoculate, instruction_for
from .margin import Margin
from .match import Match
from .rebalance import Rebalance, Resample, balance_weights, entropy_weights
from .relabel import Relabel
from .training import Ablate, LengthPenalty, Steer
from .upweight import Upweight

__all__ = [
    "Ablate",
    "ApplyReport",
    "Balance",
    "DEFAULT_INSTRUCTIONS",
    "Filter",
    "Inoculate",
    "Intervention",
    "LengthPenalty",
    "Margin",
    "Match",
    "PairState",
    "Rebalance",
    "Relabel",
    "Resample",
    "Steer",
    "Upweight",
    "WeightedDPOTrainer",
    "WeightedPreferenceCollator",
    "apply_recipe",
    "balance_weights",
    "before_after",
    "entropy_weights",
    "instruction_for",
    "materialize",
    "plan",
    "preview",
    "retention",
    "state_from_dataset",
    "weighted_mean_delta",
]


def __getattr__(name):
    if name == "WeightedDPOTrainer":  # imports trl (~7 s) only when asked for
        from . import dpo

        return dpo.WeightedDPOTrainer
    raise AttributeError(f"module 'curate.interventions' has no attribute {name!r}")
