"""Read preference data in any common format into curate's one pair schema.

:func:`load_pairs` accepts a Hub id, a local file (``.jsonl``, ``.json``, ``.parquet``, ``.csv``, also
``.gz``), a ``save_to_disk`` folder, or a ``Dataset``/``DatasetDict``/``IterableDataset``, detects the
format from the columns, and returns a `datasets.Dataset` with the columns of :mod:`curate._columns`
(``id, prompt, prompt_messages, chosen, rejected, reason``). Rows are never reordered or dropped: a row
that cannot be used keeps its place with ``reason = "invalid:<problem>"``.

Formats (detected by their columns, or forced with ``format=``):

=================  ==========================================================================
``standard``       TRL standard preference: ``prompt``, ``chosen``, ``rejected`` strings
``conversational`` TRL conversational: ``chosen``/``rejected`` (and optional ``prompt``) message lists
``implicit``       implicit prompt: ``chosen``/``rejected`` strings sharing a prefix (the prompt)
``hh``             HH-RLHF transcripts: ``chosen``/``rejected`` with ``\\n\\nHuman:``/``\\n\\nAssistant:`` turns
``rated``          rated completions (UltraFeedback-style): ``completions`` list of {response, score}
                   or ``responses`` + ``scores``; pairs built by ``rated_policy``
``pairwise``       pairwise judgments (AlpacaEval): ``instruction, output_1, output_2, preference``
=================  ==========================================================================

Problems marked per row: ``invalid:missing_<col>`` (None), ``invalid:empty_<col>``,
``invalid:non_string_<col>``, ``invalid:identical`` (chosen == rejected), ``invalid:tie``,
``invalid:prompt_mismatch`` (the two transcripts of an implicit pair have different prompts),
``invalid:no_shared_prompt``, ``invalid:too_few_completions``, ``invalid:bad_preference``,
``invalid:<side>_ends_with_<role>_turn`` (a conversational response whose last turn is not the assistant's).
Data that already has curate's ``reason`` column keeps its ``invalid:`` reasons.

Example:

    >>> from datasets import Dataset
    >>> from curate.ingest import load_pairs, ingestion_summary
    >>> raw = Dataset.from_dict({"instruction": ["Hi?", "Yo?"], "output_1": ["a", "b"],
    ...                          "output_2": ["c", "d"], "preference": [2.0, 1.5]})
    >>> ds = load_pairs(raw)
    >>> ds[0]["chosen"], ds[1]["reason"]
    ('c', 'invalid:tie')
    >>> ingestion_summary(ds)["reasons"]
    {'invalid:tie': 1}
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from typing import Any

from . import _columns as C
from .errors import FormatError

__all__ = ["load_pairs", "detect_format", "ingestion_summary", "FORMATS", "RATED_POLICIES"]

FORMATS: dict[str, str] = {
    "standard": "TRL standard preference: prompt, chosen, rejected (strings)",
    "conversational": "TRL conversational: chosen, rejected (and optional prompt) as lists of {role, content}",
    "implicit": "implicit prompt: chosen, rejected (strings with a shared prompt prefix)",
    "hh": "HH-RLHF transcripts: chosen, rejected with '\\n\\nHuman:' / '\\n\\nAssistant:' turns",
    "rated": "rated completions: prompt|instruction + completions [{response, score}] or responses + scores",
    "pairwise": "pairwise judgments: instruction, output_1, output_2, preference (1 or 2; 1.5 = tie)",
}
RATED_POLICIES = {
    "best_vs_worst": "one pair per prompt: the highest-scored completion vs the lowest-scored one",
    "best_vs_random": "one pair per prompt: the best vs a random lower-scored one (seeded; UltraFeedback-binarized style)",
    "all_pairs": "every pair of completions with different scores (ids become '<row>:<i>-<j>')",
}
_PROMPT_KEYS = ("prompt", "instruction", "question", "input")
_TEXT_KEYS = ("response", "text", "output", "completion", "content")
_SCORE_KEYS = ("overall_score", "score", "rating", "fine-grained_score", "reward")

_HUMAN = "\n\nHuman:"
_ASSISTANT = "\n\nAssistant:"


# ------------------------------------------------------------------------------------------ reading
def _read_source(source, split: str | None, **load_kwargs):
    """Return a Dataset (or IterableDataset) from any supported source."""
    import datasets as hf

    if isinstance(source, hf.DatasetDict) or isinstance(source, hf.IterableDatasetDict):
        return _pick_split(source, split)
    if isinstance(source, (hf.Dataset, hf.IterableDataset)):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise FormatError(
            f"Cannot read preference data from a {type(source).__name__}. Pass a Hub id, a local file "
            "(.jsonl/.json/.parquet/.csv, optionally .gz), a save_to_disk folder, or a datasets object."
        )
    path = os.fspath(source)
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "dataset_info.json")) or os.path.exists(
            os.path.join(path, "dataset_dict.json")
        ):
            return _read_source(hf.load_from_disk(path), split)
        dd = hf.load_dataset(path, **load_kwargs)
        return _read_source(dd, split)
    if os.path.isfile(path):
        base = path[:-3] if path.endswith(".gz") else path
        ext = os.path.splitext(base)[1].lower()
        builder = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}.get(ext)
        if builder is None:
            raise FormatError(
                f"Unsupported file type {ext!r} for {path}. Supported: .jsonl, .json, .parquet, .csv (and .gz)."
            )
        return _load_file(hf, builder, path, **load_kwargs)
    looks_like_file = path.lower().endswith((".jsonl", ".json", ".parquet", ".csv", ".gz", ".arrow"))
    head = path.split("/")[0]
    if "/" not in path or (head and os.path.isdir(head)):  # not owner/name, or a local folder that exists
        here = os.path.dirname(path) or "."
        found = sorted(n for n in os.listdir(here) if not n.startswith("."))[:15] if os.path.isdir(here) else []
        raise FormatError(
            f"No such file or folder: {path!r} (a Hub id looks like 'owner/name'). Files in {here!r}: {found}."
        )
    if path.count("/") <= 1 and not path.startswith((".", "/")) and not looks_like_file:
        # a Hub id: real users have the Hub; offline this raises a clear error
        try:
            dd = hf.load_dataset(path, split=split, **load_kwargs)
        except Exception as err:  # noqa: BLE001 - re-raised with the fix
            raise FormatError(
                f"Could not load {path!r} from the Hugging Face Hub ({type(err).__name__}: {err}). "
                "No local file or folder of that name exists either. Check the id and your network/token, "
                "or pass a local file or folder."
            ) from err
        return _read_source(dd, split)
    raise FormatError(f"No such file or folder: {path!r}.")


def _load_file(hf, builder: str, path: str, **load_kwargs):
    """``load_dataset`` on one local file; a file it cannot read gets a message saying where and how to fix it."""
    if os.path.getsize(path) == 0:
        raise FormatError(f"{path} is empty: there are no pairs to read.")
    try:
        return hf.load_dataset(builder, data_files=path, split="train", **load_kwargs)
    except Exception as err:  # noqa: BLE001 - diagnosed below, then re-raised with the fix
        raise FormatError(_diagnose_file(builder, path, err)) from err


def _diagnose_file(builder: str, path: str, err: BaseException) -> str:
    import gzip
    import io

    opener = (
        (lambda: io.TextIOWrapper(gzip.open(path), encoding="utf-8"))
        if path.endswith(".gz")
        else (lambda: open(path, encoding="utf-8"))
    )
    try:
        with opener() as f:
            text_lines = f.readlines() if builder in ("json", "csv") else None
    except (EOFError, OSError) as gz_err:
        return (
            f"{path} is truncated or not a valid gzip file ({type(gz_err).__name__}: {gz_err}); "
            "download or compress it again."
        )
    except UnicodeDecodeError as u_err:
        return f"{path} is not UTF-8 text ({u_err}); save it as UTF-8."
    if text_lines is not None:
        if not any(line.strip() for line in text_lines):
            return f"{path} is empty: there are no pairs to read."
        if builder == "json":
            first = next(line for line in text_lines if line.strip()).lstrip()
            if first.startswith("["):  # one JSON document
                try:
                    json.loads("".join(text_lines))
                except ValueError as j:
                    return f"{path}, line {j.lineno}: not valid JSON ({j.msg}, column {j.colno}); fix that line."
            for n, line in enumerate(text_lines, 1):
                if line.strip():
                    try:
                        json.loads(line.rstrip("\r\n"))
                    except ValueError as j:
                        return (
                            f"{path}, line {n}: not valid JSON ({j.msg}, column {j.colno}); fix or remove "
                            "that line (JSON Lines: one object per line)."
                        )
        if builder == "csv" and sum(bool(line.strip()) for line in text_lines) <= 1:
            return f"{path} has a header but no rows: there are no pairs to read."
    return f"Could not read {path} as {builder} ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})."


def _pick_split(dd, split: str | None):
    splits = list(dd.keys())
    if split is not None:
        if split not in dd:
            raise FormatError(f"Split {split!r} not found. Available splits: {splits}.")
        return dd[split]
    if len(splits) == 1:
        return dd[splits[0]]
    for default in ("train", "train_prefs", "test"):
        if default in dd:
            return dd[default]
    raise FormatError(f"Several splits and none named 'train': pass split=... Available splits: {splits}.")


# ------------------------------------------------------------------------------------------ detecting
def _is_messages(v) -> bool:
    return isinstance(v, list) and len(v) > 0 and all(isinstance(m, dict) and "role" in m and "content" in m for m in v)


def detect_format(columns, example: dict | None = None) -> str:
    """Name the format of a dataset from its column names (and one example, to tell strings from messages).

    Raises:
        FormatError: listing the columns found and the accepted formats.

    Example:

        >>> detect_format(["prompt", "chosen", "rejected"], {"prompt": "a", "chosen": "b", "rejected": "c"})
        'standard'
    """
    cols = set(columns)
    example = example or {}
    if {"chosen", "rejected"} <= cols:
        ch = example.get("chosen")
        if _is_messages(ch) or _is_messages(example.get("rejected")):
            return "conversational"
        if "prompt" in cols:
            return "standard"
        if isinstance(ch, str) and _ASSISTANT in ch:
            return "hh"
        return "implicit"
    if {"output_1", "output_2", "preference"} <= cols and cols & set(_PROMPT_KEYS):
        return "pairwise"
    if ("completions" in cols or {"responses", "scores"} <= cols) and cols & set(_PROMPT_KEYS):
        return "rated"
    lines = "\n".join(f"  - {k}: {v}" for k, v in FORMATS.items())
    raise FormatError(
        f"Cannot tell the preference format from the columns {sorted(cols)}.\nAccepted formats:\n{lines}\n"
        "Rename your columns to one of these, or pass format=... explicitly."
    )


# ------------------------------------------------------------------------------------------ normalising
def _check_text(value, name: str) -> str | None:
    """Return a reason if ``value`` is not a usable text."""
    if value is None:
        return f"{C.INVALID_PREFIX}missing_{name}"
    if not isinstance(value, str):
        return f"{C.INVALID_PREFIX}non_string_{name}"
    if not value.strip():
        return f"{C.INVALID_PREFIX}empty_{name}"
    return None


def _row(id_, prompt, messages, chosen, rejected, reason=""):
    if not reason:
        for value, name in ((chosen, "chosen"), (rejected, "rejected")):
            reason = _check_text(value, name) or ""
            if reason:
                break
    if not reason and prompt is not None and not isinstance(prompt, str):
        reason = f"{C.INVALID_PREFIX}non_string_prompt"
    if not reason and chosen == rejected:
        reason = f"{C.INVALID_PREFIX}identical"
    as_text = lambda v: v if isinstance(v, str) else (None if v is None else json.dumps(v, default=str))  # noqa: E731
    prompt_text = as_text(prompt) or ""
    if messages is None:
        messages = [{"role": "user", "content": prompt_text}] if prompt_text else []
    return {
        C.ID: id_,
        C.PROMPT: prompt_text,
        C.PROMPT_MESSAGES: [
            {"role": str(m.get("role", "")), "content": as_text(m.get("content")) or ""} for m in messages
        ],
        C.CHOSEN: as_text(chosen),
        C.REJECTED: as_text(rejected),
        C.REASON: reason,
    }


def _render(messages) -> str:
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


def _from_standard(ex, id_):
    return [_row(id_, ex.get("prompt"), None, ex.get("chosen"), ex.get("rejected"))]


def _assistant_text(messages) -> str | None:
    parts = [m.get("content") for m in messages if m.get("role") == "assistant"]
    if not parts:
        return None
    return "\n\n".join(p if isinstance(p, str) else "" for p in parts)


def _from_conversational(ex, id_):
    chosen, rejected, prompt = ex.get("chosen"), ex.get("rejected"), ex.get("prompt")
    for value, name in ((chosen, "chosen"), (rejected, "rejected")):
        if value is None:
            return [_row(id_, None, [], None, None, f"{C.INVALID_PREFIX}missing_{name}")]
        if not _is_messages(value):
            return [_row(id_, None, [], None, None, f"{C.INVALID_PREFIX}non_string_{name}")]
    for value, name in ((chosen, "chosen"), (rejected, "rejected")):
        if value[-1].get("role") != "assistant":  # the response would lose its last turn
            return [
                _row(
                    id_,
                    None,
                    [],
                    _assistant_text(chosen),
                    _assistant_text(rejected),
                    f"{C.INVALID_PREFIX}{name}_ends_with_{value[-1].get('role') or 'no_role'}_turn",
                )
            ]
    if prompt is None:  # implicit prompt: shared leading messages
        k = 0
        while k < min(len(chosen), len(rejected)) - 1 and chosen[k] == rejected[k]:
            k += 1
        prompt_msgs, chosen, rejected = chosen[:k], chosen[k:], rejected[k:]
        if not prompt_msgs:
            return [
                _row(
                    id_,
                    "",
                    [],
                    _assistant_text(chosen),
                    _assistant_text(rejected),
                    f"{C.INVALID_PREFIX}no_shared_prompt",
                )
            ]
    elif isinstance(prompt, str):
        prompt_msgs = [{"role": "user", "content": prompt}]
    else:
        prompt_msgs = list(prompt)
    return [_row(id_, _render(prompt_msgs), prompt_msgs, _assistant_text(chosen), _assistant_text(rejected))]


def _split_hh(text: str):
    """'\\n\\nHuman: a\\n\\nAssistant: b ...' -> (prompt transcript, messages, final assistant response)."""
    cut = text.rfind(_ASSISTANT)
    if cut < 0:
        return None
    prompt, response = text[:cut], text[cut + len(_ASSISTANT) :].strip()
    messages = []
    rest = prompt
    import re

    for m in re.finditer(r"\n\n(Human|Assistant):(.*?)(?=\n\n(?:Human|Assistant):|\Z)", rest, flags=re.S):
        messages.append({"role": "user" if m.group(1) == "Human" else "assistant", "content": m.group(2).strip()})
    return prompt, messages, response


def _from_hh(ex, id_):
    chosen, rejected = ex.get("chosen"), ex.get("rejected")
    bad = _check_text(chosen, "chosen") or _check_text(rejected, "rejected")
    if bad:
        return [_row(id_, None, [], None, None, bad)]
    a, b = _split_hh(chosen), _split_hh(rejected)
    if a is None or b is None:
        return [_row(id_, None, [], chosen, rejected, f"{C.INVALID_PREFIX}no_assistant_turn")]
    reason = "" if a[0] == b[0] else f"{C.INVALID_PREFIX}prompt_mismatch"
    return [_row(id_, _render(a[1]) if a[1] else a[0].strip(), a[1], a[2], b[2], reason)]


def _from_implicit(ex, id_):
    chosen, rejected = ex.get("chosen"), ex.get("rejected")
    bad = _check_text(chosen, "chosen") or _check_text(rejected, "rejected")
    if bad:
        return [_row(id_, None, [], None, None, bad)]
    k = len(os.path.commonprefix([chosen, rejected]))
    if k == len(chosen) or k == len(rejected):  # one is a prefix of the other: back off to a boundary
        k = max(chosen.rfind("\n", 0, k), chosen.rfind(" ", 0, k), 0)
    elif k and not chosen[k - 1].isspace():  # do not cut inside a word
        k = max(chosen.rfind("\n", 0, k) + 1, chosen.rfind(" ", 0, k) + 1, 0)
    prompt = chosen[:k]
    if not prompt.strip():
        return [_row(id_, "", [], chosen, rejected, f"{C.INVALID_PREFIX}no_shared_prompt")]
    return [_row(id_, prompt.strip(), None, chosen[k:].strip(), rejected[k:].strip())]


def _first(ex, keys):
    for k in keys:
        if k in ex and ex[k] is not None:
            return ex[k]
    return None


def _completions(ex):
    if "completions" in ex and ex["completions"] is not None:
        comps = ex["completions"]
        if isinstance(comps, str):
            comps = json.loads(comps)
        out = []
        for c in comps:
            if isinstance(c, dict):
                text = _first(c, _TEXT_KEYS)
                score = _first(c, _SCORE_KEYS)
                if isinstance(score, dict):  # e.g. {"rating": ...}
                    score = _first(score, _SCORE_KEYS)
                out.append((text, score))
        return out
    return list(zip(ex.get("responses") or [], ex.get("scores") or []))


def _from_rated(ex, id_, policy: str, rng):
    prompt = _first(ex, _PROMPT_KEYS)
    comps = []
    for text, score in _completions(ex):
        try:
            comps.append((text, float(score)))
        except (TypeError, ValueError):
            continue
    if len(comps) < 2:
        return [_row(id_, prompt, None, None, None, f"{C.INVALID_PREFIX}too_few_completions")]
    scores = [s for _, s in comps]
    if max(scores) == min(scores):
        return [_row(id_, prompt, None, comps[0][0], comps[1][0], f"{C.INVALID_PREFIX}tie")]
    if policy == "all_pairs":
        rows = []
        for i in range(len(comps)):
            for j in range(i + 1, len(comps)):
                if comps[i][1] == comps[j][1]:
                    continue
                hi, lo = (i, j) if comps[i][1] > comps[j][1] else (j, i)
                rows.append(_row(f"{id_}:{i}-{j}", prompt, None, comps[hi][0], comps[lo][0]))
        return rows
    best = max(range(len(comps)), key=lambda i: comps[i][1])
    if policy == "best_vs_worst":
        other = min(range(len(comps)), key=lambda i: comps[i][1])
    else:  # best_vs_random
        lower = [i for i in range(len(comps)) if comps[i][1] < comps[best][1]]
        other = lower[int(rng.integers(len(lower)))]
    return [_row(id_, prompt, None, comps[best][0], comps[other][0])]


def _from_pairwise(ex, id_):
    prompt = _first(ex, _PROMPT_KEYS)
    raw = ex.get("preference")
    try:
        pref = float(raw)
    except (TypeError, ValueError):
        return [_row(id_, prompt, None, ex.get("output_1"), ex.get("output_2"), f"{C.INVALID_PREFIX}bad_preference")]
    if not 1.0 <= pref <= 2.0:
        return [_row(id_, prompt, None, ex.get("output_1"), ex.get("output_2"), f"{C.INVALID_PREFIX}bad_preference")]
    if pref == 1.5:
        return [_row(id_, prompt, None, ex.get("output_1"), ex.get("output_2"), f"{C.INVALID_PREFIX}tie")]
    if pref > 1.5:
        return [_row(id_, prompt, None, ex.get("output_2"), ex.get("output_1"))]
    return [_row(id_, prompt, None, ex.get("output_1"), ex.get("output_2"))]


# ------------------------------------------------------------------------------------------ public
def load_pairs(
    source: Any,
    *,
    split: str | None = None,
    format: str | None = None,
    limit: int | None = None,
    rated_policy: str = "best_vs_worst",
    seed: int = 0,
    **load_kwargs,
):
    """Load preference data from anywhere and normalise it to curate's pair schema.

    Args:
        source: a Hub id, a local ``.jsonl``/``.json``/``.parquet``/``.csv`` (or ``.gz``) file, a
            ``save_to_disk`` folder, or a ``Dataset``/``DatasetDict``/``IterableDataset``.
        split: which split of a multi-split source (default: the only one, else ``train``).
        format: force a format (one of :data:`FORMATS`) instead of detecting it.
        limit: read only the first ``limit`` rows.
        rated_policy: how rated completions become pairs (one of :data:`RATED_POLICIES`).
        seed: seed for ``best_vs_random``.
        **load_kwargs: passed to ``datasets.load_dataset``.

    Returns:
        A `datasets.Dataset` with ``id, prompt, prompt_messages, chosen, rejected, reason`` in input order;
        the input's ``id`` column is kept (else the row index). Columns outside the schema are carried
        along unchanged (except for ``rated``/``all_pairs``, which changes the row count).

    Raises:
        FormatError: unknown column set (lists the columns found and the accepted formats), unknown
            split, unreadable file.
    """
    import datasets as hf
    import numpy as np

    if rated_policy not in RATED_POLICIES:
        raise FormatError(f"Unknown rated_policy {rated_policy!r}. Choose one of: {list(RATED_POLICIES)}.")
    data = _read_source(source, split, **load_kwargs)
    if isinstance(data, hf.IterableDataset):
        rows = list(data.take(limit)) if limit is not None else list(data)
        if not rows:
            raise FormatError("The iterable dataset is empty.")
        data = hf.Dataset.from_list(rows)
    elif limit is not None:
        data = data.select(range(min(limit, len(data))))
    if len(data) == 0:
        raise FormatError("The dataset is empty: there are no pairs to read.")
    columns = data.column_names
    if format is None:
        format = detect_format(columns, data[0])
    elif format not in FORMATS:
        raise FormatError(f"Unknown format {format!r}. Accepted formats: {list(FORMATS)}.")

    def convert(ex, i):
        id_ = ex[C.ID] if has_id else i
        if format == "rated":
            return _from_rated(ex, id_, rated_policy, np.random.default_rng([seed, i]))
        rows = _CONVERTERS[format](ex, id_)
        known = ex.get(C.REASON) if has_reason else None
        if isinstance(known, str) and known.startswith(C.INVALID_PREFIX):
            # rows curate already read (an annotated/ or curated split): an unusable row stays unusable
            for row in rows:
                row[C.REASON] = known
        return rows

    has_reason = C.REASON in columns

    has_id = C.ID in columns
    carried = (
        []
        if format == "rated"
        else [c for c in columns if c not in C.PAIR_COLUMNS and c not in _CONSUMED.get(format, ())]
    )
    all_pairs = format == "rated" and rated_policy == "all_pairs"
    sample = convert(data[0], 0)
    features = _features(data.features, carried, sample, string_ids=all_pairs)

    def convert_batch(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        out: dict[str, list] = {k: [] for k in features}
        keys = list(batch)
        for j, i in enumerate(indices):
            ex = {k: batch[k][j] for k in keys}
            for row in convert(ex, i):
                if all_pairs:
                    row[C.ID] = str(row[C.ID])
                for c in carried:
                    row[c] = ex[c]
                for k in out:
                    out[k].append(row[k])
        return out

    import hashlib

    from .cache import module_hash

    fp = getattr(data, "_fingerprint", None)
    new_fp = (
        None
        if fp is None
        else hashlib.sha256(  # the reader's own code is part of the identity
            f"{fp}|ingest|{module_hash(sys.modules[__name__])}|{format}|{rated_policy}|{seed}".encode()
        ).hexdigest()[:32]
    )
    ds = data.map(
        convert_batch,
        batched=True,
        with_indices=True,
        remove_columns=columns,
        features=features,
        new_fingerprint=new_fp,
        desc="Reading pairs",
    )
    ds.info.description = json.dumps(
        {"curate_format": format, "rated_policy": rated_policy if format == "rated" else None}
    )
    return ds


_CONVERTERS = {
    "standard": _from_standard,
    "conversational": _from_conversational,
    "hh": _from_hh,
    "implicit": _from_implicit,
    "pairwise": _from_pairwise,
}
_CONSUMED = {"pairwise": ("output_1", "output_2", "preference", "instruction")}


def _features(input_features, carried, rows, string_ids=False):
    from datasets import Features, List, Value

    id_feature = input_features.get(C.ID) if C.ID in input_features else Value("int64")
    if string_ids or (rows and isinstance(rows[0][C.ID], str)):
        id_feature = Value("string")
    feats = {
        C.ID: id_feature,
        C.PROMPT: Value("string"),
        C.PROMPT_MESSAGES: List({"role": Value("string"), "content": Value("string")}),
        C.CHOSEN: Value("string"),
        C.REJECTED: Value("string"),
        C.REASON: Value("string"),
    }
    for c in carried:
        feats[c] = input_features[c]
    return Features(feats)


def ingestion_summary(dataset) -> dict:
    """Counts of usable and unusable rows by reason, and the detected format.

    Example:

        >>> from curate import make_preference_pairs
        >>> ingestion_summary(make_preference_pairs(10).dataset)["n_usable"]
        10
    """
    reasons = dataset[C.REASON] if C.REASON in dataset.column_names else [""] * len(dataset)
    counts = Counter(r for r in reasons if r)
    try:
        fmt = json.loads(dataset.info.description or "{}").get("curate_format")
    except (ValueError, AttributeError):
        fmt = None
    return {
        "format": fmt,
        "n_rows": len(dataset),
        "n_usable": len(dataset) - sum(counts.values()),
        "reasons": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
    }
