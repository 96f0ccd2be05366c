"""Group redundant SAE features into concept groups.

Many SAE features fire together (one planted concept can be split across hundreds of latents), so
ranking raw features turns one signal into many "findings". We cluster features by the correlation of
their pooled activations across all responses (chosen and rejected stacked): average-linkage hierarchical
clustering on the distance ``1 − r``, cut at ``1 − threshold`` — so the members of a group correlate with
each other by at least ``threshold`` on average (default 0.5). A group's score on a response is the mean
of its members' activations, each scaled to unit RMS, so no single loud feature dominates.

Named concepts are never grouped: they are already the readable unit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .scores import ConceptScores
from .stats import correlation_matrix

GROUP_PREFIX = "group:"


def cluster_features(stacked: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Cluster the columns of ``stacked`` (responses × features); returns a 0-based group index per column.

    Groups are numbered by decreasing size (ties by first member).
    """
    k = stacked.shape[1]
    if k == 0:
        return np.zeros(0, dtype=int)
    if k == 1:
        return np.zeros(1, dtype=int)
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    r = correlation_matrix(stacked, stacked)
    dist = np.clip(1.0 - r, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    dist = (dist + dist.T) / 2
    tree = linkage(squareform(dist, checks=False), method="average")
    raw = fcluster(tree, t=1.0 - threshold, criterion="distance")
    sizes = pd.Series(raw).value_counts()
    first = pd.Series(np.arange(k)).groupby(raw).min()
    order = sorted(sizes.index, key=lambda g: (-sizes[g], first[g]))
    remap = {g: i for i, g in enumerate(order)}
    return np.array([remap[g] for g in raw], dtype=int)


def unit_rms(stacked: np.ndarray) -> np.ndarray:
    """Per-column root mean square of ``stacked`` (chosen rows over rejected rows of the usable pairs);
    1 where a column is all zero, so dividing by it is safe."""
    rms = np.sqrt((np.asarray(stacked, dtype=float) ** 2).mean(axis=0))
    rms[rms == 0] = 1.0
    return rms


def scaled_mean(side: np.ndarray, rms: np.ndarray) -> np.ndarray:
    """A group's score on one side: the mean of its member features, each divided by its :func:`unit_rms`."""
    return (np.asarray(side) / rms).mean(axis=1)


def group_scores(scores: ConceptScores, threshold: float = 0.5, labels: pd.DataFrame | None = None):
    """Replace SAE feature columns of ``scores`` by one column per group of correlated features.

    Returns:
        (grouped ConceptScores, membership DataFrame with ``concept`` (the feature) and ``group``).
    """
    src = scores.concepts["source"].to_numpy()
    is_feat = np.array([s != "named" for s in src])
    if not is_feat.any():
        return scores, pd.DataFrame({"concept": [], "group": []})
    named_idx = np.flatnonzero(~is_feat)
    feat_idx = np.flatnonzero(is_feat)
    ids = scores.concepts["concept"].to_numpy()
    label_of = dict(zip(scores.concepts["concept"], scores.concepts["label"]))
    if labels is not None and len(labels):
        label_of.update(dict(zip(labels["concept"], labels["label"])))
    cols_c, cols_r, rows = [], [], []
    member_rows = []
    for source in pd.unique(src[feat_idx]):
        idx = feat_idx[src[feat_idx] == source]
        stacked = np.concatenate([scores.chosen[:, idx], scores.rejected[:, idx]], axis=0)
        rms = unit_rms(stacked)
        assign = cluster_features(stacked, threshold)
        for g in range(assign.max() + 1 if len(assign) else 0):
            members = idx[assign == g]
            gid = f"{GROUP_PREFIX}{source.removeprefix('sae:')}:{g}"
            scale = rms[assign == g]
            cols_c.append(scaled_mean(scores.chosen[:, members], scale))
            cols_r.append(scaled_mean(scores.rejected[:, members], scale))
            # the group's label: the label of its most active member
            top = members[np.argmax((stacked[:, assign == g] > 0).sum(axis=0))]
            n = len(members)
            rows.append(
                (gid, f"{label_of.get(ids[top], ids[top])}" + (f" (+{n - 1} similar)" if n > 1 else ""), source)
            )
            member_rows += [(ids[m], gid) for m in members]
    concepts = pd.concat(
        [
            scores.concepts.iloc[named_idx].reset_index(drop=True),
            pd.DataFrame(rows, columns=["concept", "label", "source"]),
        ],
        ignore_index=True,
    )
    chosen = np.column_stack([scores.chosen[:, named_idx], *cols_c]).astype(np.float32)
    rejected = np.column_stack([scores.rejected[:, named_idx], *cols_r]).astype(np.float32)
    grouped = ConceptScores(
        concepts, chosen, rejected, scores.rows, scores.prompts, scores.log_length, scores.weights, scores.extra
    )
    return grouped, pd.DataFrame(member_rows, columns=["concept", "group"])
