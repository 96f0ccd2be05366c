"""Balancing blocked concepts: one at a time by dropping or swapping pairs (the pair choice and cyclic passes
that :class:`Filter` and :class:`Relabel` share), and jointly by weights (the constraints and solvers of
:class:`Rebalance` and :class:`Balance`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import ConfigError


def balance_in_passes(
    state, concepts: list[str], strength: float, rng, max_rounds: int, act: Callable, *, swap: bool
) -> dict[str, int]:
    """Balance each concept within each of its groups, in cyclic passes, and count the pairs acted on.

    Acting on pairs for one concept can unbalance another, so passes repeat (like iterative proportional
    fitting) until no pass changes a pair, at most ``max_rounds`` times. The imbalance left, ``1 − strength``
    of the first one, is fixed up front so passes do not compound.

    Args:
        state: the pair state, edited in place by ``act``.
        concepts: blocked concept ids.
        strength: share of each imbalance removed.
        rng: the tie-breaking generator.
        max_rounds: most passes.
        act: ``act(mask, concept) -> pairs changed``: drops or swaps the pairs in ``mask``.
        swap: pairs are swapped (each moves the imbalance twice as far) rather than dropped.

    Returns:
        Pairs changed per concept.
    """
    left = {(c, k): (1 - strength) * abs(_excess(state, c, g)) for c in concepts for k, g in enumerate(state.groups(c))}
    changed_by = {c: 0 for c in concepts}
    for _ in range(max_rounds):
        changed = 0
        for c in concepts:
            for k, group in enumerate(state.groups(c)):
                mask = _pick(state, c, group, 1.0, rng, concepts, swap=swap, left=left[(c, k)])
                n = act(mask, c)
                changed_by[c] += n
                changed += n
        if not changed:
            break
    return changed_by


def _excess(state, c, group) -> float:
    """``Σw[Δ>0] − Σw[Δ<0]`` of concept ``c`` over the kept pairs of ``group``."""
    d = state.delta(c)
    w = state.weight * state.keep
    return float((w * group * (d > 0)).sum() - (w * group * (d < 0)).sum())


def _pick(state, c, group, strength, rng, blocked, *, swap: bool, left: float = 0.0) -> np.ndarray:
    """Which pairs of ``group`` to drop (or swap) so concept ``c`` is balanced within the group.

    The imbalance is ``E = Σw[Δ>0] − Σw[Δ<0]``; dropping a pair on the winning side moves it by the
    pair's weight, swapping it by twice that. Pairs are taken in order of (other blocked concepts that
    differ, other concepts pointing the same way, a seeded shuffle) until the running total is closest
    to ``strength · E`` (or half of it when swapping); with ``left``, until ``|E| − left``.
    """
    d = state.delta(c)
    w = state.weight * state.keep
    excess = _excess(state, c, group)
    target = max(0.0, abs(strength * excess) - left) / (2 if swap else 1)
    mask = np.zeros(state.n, bool)
    live = w[state.keep & group & (d != 0)]
    if not len(live) or target < 0.5 * live.min():
        return mask
    direction = np.sign(excess)
    cand = np.flatnonzero(state.keep & group & (np.sign(d) == direction))
    others_blocked = [state.index(o) for o in blocked if o != c]
    others = [j for j, o in enumerate(state.concepts) if o != c]
    D = state.delta()[cand]
    n_blocked = (D[:, others_blocked] != 0).sum(axis=1) if others_blocked else np.zeros(len(cand))
    n_same = (np.sign(D[:, others]) == direction).sum(axis=1) if others else np.zeros(len(cand))
    order = cand[np.lexsort((rng.permutation(len(cand)), n_same, n_blocked))]
    cum = np.concatenate([[0.0], np.cumsum(w[order])])
    m = int(np.argmin(np.abs(cum - target)))
    mask[order[:m]] = True
    return mask


# -- joint weighting constraints (Rebalance, Balance) ------------------------------------------------------
def _joint_error():
    from ..errors import CurateError

    class JointInfeasible(CurateError):
        """The balance constraints can each be met but not all at once."""

    return JointInfeasible


JointInfeasible = _joint_error()


@dataclass
class Constraint:
    """One linear balance constraint on the weights: ``Σᵢ wᵢ xᵢ = (1 − strength) Σᵢ pᵢ xᵢ + shift · Σᵢ pᵢ``.

    Attributes:
        concept: the concept it balances (for reports and errors).
        kind: ``sign`` (win-rate), ``presence``, ``adjust`` (an adjuster's mean Δ where the concept wins vs
            loses) or ``mean`` (the weighted mean of the standardised Δ).
        x: the per-row values (``(n,)``).
        strength: share of the current imbalance removed.
        shift: a target weighted mean of ``x`` added to what is left (amplify: the wanted mean Δ in sd).
        scale: for ``mean``: the concept's sd (x = Δ / scale), to state values in the concept's unit.
        infeasible: ``skip`` (report and leave out) or ``raise`` (a :class:`~curate.errors.CurateError`).
    """

    concept: str
    kind: str
    x: np.ndarray
    strength: float = 1.0
    shift: float = 0.0
    scale: float = 1.0
    infeasible: str = "skip"


def solve_constraints(
    constraints: list[Constraint], prior: np.ndarray, subsets: np.ndarray | None, method: str
) -> tuple[np.ndarray, dict, dict[str, str]]:
    """Weights closest to ``prior`` meeting every constraint — within each subset when ``subsets`` is given.

    With subsets, each constraint is met separately on the rows of every subset, and every subset keeps
    its prior mass (so no subset grows at another's expense). A constraint that cannot be met on a subset
    (a win-rate whose Δ points one way only there, or a target mean outside the range of ``x``) is left out
    and reported under ``"concept@subset"``, or raises when its ``infeasible`` says so.

    Returns:
        ``(weights, solver info, skipped)``.
    """
    live = prior > 0
    groups: list = [None]
    if subsets is not None:
        names, codes = np.unique(np.asarray(subsets, str), return_inverse=True)  # compare ints, not objects
        masks = {g: codes == j for j, g in enumerate(names) if (live & (codes == j)).any()}
        groups = list(masks)
    cols, targets, skipped, used = [], [], {}, []
    for g in groups[:-1] if len(groups) > 1 else []:  # subset masses (the last one follows from the total)
        m = masks[g].astype(float)
        cols.append(m)
        targets.append(float((prior * m).sum()))
    for con in constraints:
        for g in groups:
            m = np.ones(len(prior), bool) if g is None else masks[g]
            why = _infeasible(con, prior, m, g)
            name = con.concept + ("" if con.kind == "sign" else f"/{con.kind}") + ("" if g is None else f"@{g}")
            if why is None:
                col = con.x * m
                cols.append(col)
                targets.append((1 - con.strength) * float((prior * col).sum()) + con.shift * float(prior[m].sum()))
                used.append((con, name, m))
            elif why:
                skipped.setdefault(name, why)
    if not cols:
        return prior.copy(), {"converged": True, "iterations": 0, "max_violation": 0.0}, skipped
    solve = {"max_ess": balance_weights, "entropy": entropy_weights}.get(method)
    if solve is None:
        raise ConfigError(f"Rebalance method {method!r} is unknown. Allowed: ['max_ess', 'entropy'].")
    w, info = solve(np.column_stack(cols), prior, np.array(targets))
    if not info["converged"]:
        _raise_joint(used, prior, w)
    return w, info, skipped


def _infeasible(con: Constraint, prior: np.ndarray, m: np.ndarray, subset=None) -> str | None:
    """Why ``con`` cannot be met on the rows ``m`` (``""``: nothing to balance there; ``None``: it can).

    Raises a :class:`~curate.errors.CurateError` naming the concept and the closest achievable value when
    the constraint says ``infeasible="raise"``."""
    from ..errors import CurateError

    live = m & (prior > 0)
    x = con.x[live]
    if not len(x) or not (x != 0).any():
        return ""
    if con.kind != "mean" or con.shift == 0:
        pos, neg = int((x > 0).sum()), int((x < 0).sum())
        if pos and neg:
            return None
        if con.kind == "presence" and (x == 0).any():
            # a presence that differs one way only is met by moving weight onto the pairs where it does not differ
            # (the win-rate constraint of the same concept points both ways, so the step still has pairs to keep)
            return None
        if con.infeasible != "raise":
            return f"Δ points one way only ({pos} pairs chosen-more, {neg} rejected-more)"
    p = prior[live]
    target = (1 - con.strength) * float((p * x).sum() / p.sum()) + con.shift
    lo, hi = float(x.min()), float(x.max())
    if lo < target < hi:
        return None
    if con.infeasible != "raise":
        return f"target {target:+.3f} outside the achievable range [{lo:+.3f}, {hi:+.3f}]"
    closest = lo if target <= lo else hi
    where = "" if subset is None else f" within subset {str(subset)!r} (or balance pooled: `block_within: pooled`)"
    raise CurateError(
        f"Cannot balance {con.concept!r}{where}: its target weighted mean Δ {target:+.3f} sd is out of reach — every "
        f"weighting gives a mean Δ in [{lo:+.3f}, {hi:+.3f}] sd; the closest achievable value is {closest:+.3f} sd "
        f"({closest * con.scale:+.4g} in its unit). Lower the target (rule `target`), or drop the pairs where it "
        "differs (interventions: [filter], filter_mode: differ)."
    )


def _raise_joint(used: list[tuple], prior: np.ndarray, w: np.ndarray) -> None:
    """The solver did not converge: the constraints cannot all hold at once. Raise for a ``raise``
    constraint, naming the one furthest from its target and the value reached; else return."""

    worst, gap = None, 0.0
    for con, name, m in used:
        if con.infeasible != "raise" or w[m].sum() <= 0:
            continue
        reached = float((w * con.x * m).sum() / w[m].sum())
        target = (1 - con.strength) * float((prior * con.x * m).sum() / prior[m].sum()) + con.shift
        if abs(reached - target) > gap:
            worst, gap = (con, name, reached, target), abs(reached - target)
    if worst is None or gap < 1e-3:
        return
    con, name, reached, target = worst
    raise JointInfeasible(
        f"Cannot balance {name!r} jointly with the other blocked concepts: its weighted mean Δ reaches "
        f"{reached:+.3f} sd ({reached * con.scale:+.4g} in its unit), not the target {target:+.3f}, the closest "
        "the joint constraints allow. Block fewer concepts together, lower a `strength`, or balance this one "
        "pooled (`block_within: pooled`)."
    )


# -- the solvers ---------------------------------------------------------------------------------------
def unique_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(x, axis=0, return_inverse=True)``, fast for the usual cases: rows of signs (−1, 0, 1) are
    coded as base-3 integers; rows with a continuous value (a standardised Δ) are nearly all distinct, so
    each row is its own stratum (sorting 100k float rows took ~0.5 s and saved nothing).

    Example:

        >>> u, inv = unique_rows(np.array([[1.0, -1], [0, 1], [1, -1]]))
        >>> u.tolist(), inv.tolist()
        ([[0.0, 1.0], [1.0, -1.0]], [1, 0, 1])
    """
    if not len(x):
        return x.reshape(0, x.shape[1]), np.zeros(0, np.int64)
    signs = np.isin(x, (-1.0, 0.0, 1.0)).all()
    if signs and x.shape[1] <= 39:  # column 0 most significant: the order of np.unique(axis=0)
        codes = ((x + 1).astype(np.int64) * (3 ** np.arange(x.shape[1] - 1, -1, -1, dtype=np.int64))).sum(axis=1)
        _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
        return x[first], np.ravel(inverse)
    if not signs:
        return x, np.arange(len(x))
    strata, inverse = np.unique(x, axis=0, return_inverse=True)
    return strata, np.ravel(inverse)


def _strata(signs, prior, targets):
    """The inputs as arrays, the rows with prior weight, and the distinct sign patterns (strata) among them
    with each live row's stratum and each stratum's prior mass."""
    signs = np.asarray(signs, float)
    prior = np.asarray(prior, float)
    targets = np.zeros(signs.shape[1]) if targets is None else np.asarray(targets, float)
    live = prior > 0
    strata, inverse = unique_rows(signs[live])
    return (
        signs,
        prior,
        targets,
        live,
        strata,
        inverse,
        np.bincount(inverse, weights=prior[live], minlength=len(strata)),
    )


def balance_weights(
    signs: np.ndarray, prior: np.ndarray, targets: np.ndarray | None = None, *, tol: float = 1e-10, max_iter: int = 100
) -> tuple[np.ndarray, dict]:
    """Closest non-negative weights to ``prior`` that meet linear balance constraints.

    Solves ``min Σᵢ wᵢ²/pᵢ`` subject to ``Σᵢ wᵢ = Σᵢ pᵢ``, ``Σᵢ wᵢ sᵢc = t_c`` for every column ``c`` and
    ``wᵢ ≥ 0`` (a chi-square / linear calibration estimator, truncated at zero). With a uniform prior
    this is the weighting of largest Kish effective sample size ``(Σw)²/Σw²`` that meets the constraints.
    The solution has the form ``wᵢ = pᵢ · max(0, μ₀ + Σ_c μ_c sᵢc)``; the multipliers ``μ`` minimise the
    convex dual ``½ Σᵢ pᵢ max(0, μ·aᵢ)² − μ·b`` (``aᵢ = (1, sᵢ)``, ``b = (Σp, t)``), found by Newton's
    method over the distinct rows of ``signs`` (at most 3^k strata for sign vectors).

    Args:
        signs: ``(n, k)`` array, typically sign(Δ) of the blocked concepts.
        prior: ``(n,)`` non-negative starting weights (0 = not in the data).
        targets: ``(k,)`` wanted ``Σ w s`` per column; zeros (exact balance) by default.

    Returns:
        ``(weights, info)`` with ``info = {"converged", "iterations", "max_violation"}``.

    Example:

        >>> import numpy as np
        >>> s = np.array([[1], [1], [1], [-1], [0]])
        >>> w, info = balance_weights(s, np.ones(5))
        >>> w.round(3).tolist(), info["converged"]
        ([0.625, 0.625, 0.625, 1.875, 1.25], True)
    """
    signs, prior, targets, live, strata, inverse, p_s = _strata(signs, prior, targets)
    n, k = signs.shape
    A = np.column_stack([np.ones(len(strata)), strata])  # (m, k+1)
    b = np.concatenate([[p_s.sum()], targets])
    mu = np.zeros(k + 1)
    mu[0] = 1.0
    scale = max(p_s.sum(), 1.0)

    def dual(m):
        z = np.maximum(A @ m, 0.0)
        return 0.5 * float((p_s * z**2).sum()) - float(m @ b)

    it = 0
    viol = np.inf
    for it in range(1, max_iter + 1):  # noqa: B007 - `it` is reported after the loop
        z = A @ mu
        act = z > 0
        grad = A.T @ (p_s * np.maximum(z, 0.0)) - b
        viol = float(np.abs(grad).max() / scale)
        if viol < tol:
            break
        H = (A[act] * p_s[act, None]).T @ A[act] + 1e-12 * scale * np.eye(k + 1)
        step = np.linalg.lstsq(H, grad, rcond=None)[0]
        g0, t = dual(mu), 1.0
        while dual(mu - t * step) > g0 - 1e-4 * t * float(grad @ step) and t > 1e-10:
            t *= 0.5
        mu = mu - t * step
    ratio = np.maximum(A @ mu, 0.0)
    w = np.zeros(n)
    w[live] = prior[live] * ratio[inverse]
    return w, {"converged": bool(viol < 1e-6), "iterations": it, "max_violation": viol}


def entropy_weights(
    signs: np.ndarray, prior: np.ndarray, targets: np.ndarray | None = None, *, tol: float = 1e-10, max_iter: int = 200
) -> tuple[np.ndarray, dict]:
    """Raking / entropy balancing: ``wᵢ = pᵢ exp(μ₀ + Σ_c μ_c sᵢc)`` meeting the same constraints as
    :func:`balance_weights` (minimises KL(w‖p) instead of the chi-square distance; never zero)."""
    signs, prior, targets, live, strata, inverse, p_s = _strata(signs, prior, targets)
    n, k = signs.shape
    total = p_s.sum()
    logp = np.log(np.maximum(p_s, 1e-300))

    def tilt(m):  # weights of the strata under multipliers m, summing to total (log-sum-exp: no overflow)
        a = logp + strata @ m
        e = np.exp(a - a.max())
        return e * (total / e.sum()), float(a.max() + np.log(np.exp(a - a.max()).sum()))

    def dual(m):  # convex: total · log Σ p exp(s·m) − m·t
        return total * tilt(m)[1] - float(m @ targets)

    mu = np.zeros(k)
    viol = np.inf
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - `it` is reported after the loop
        e, _ = tilt(mu)
        grad = strata.T @ e - targets
        viol = float(np.abs(grad).max() / max(total, 1.0))
        if viol < tol or not np.isfinite(viol):
            break
        H = (strata * e[:, None]).T @ strata - np.outer(strata.T @ e, strata.T @ e) / total
        step = np.linalg.lstsq(H + 1e-12 * total * np.eye(k), grad, rcond=None)[0]
        g0, t = dual(mu), 1.0
        while dual(mu - t * step) > g0 - 1e-4 * t * float(grad @ step) and t > 1e-10:
            t *= 0.5
        mu = mu - t * step
    e, _ = tilt(mu)
    w = np.zeros(n)
    w[live] = prior[live] * (e / np.maximum(p_s, 1e-300))[inverse]
    w *= prior.sum() / w.sum()
    return w, {"converged": bool(viol < 1e-6), "iterations": it, "max_violation": viol}
