"""Turn one row of each format into rows of curate's one pair schema (``id, prompt, prompt_messages, chosen,
rejected, reason``; :func:`~curate.ingest.load_pairs` adds ``row``), marking a row that cannot be used with
``reason = "invalid:<problem>"`` instead of dropping it; and the ``datasets`` features of the result
(:func:`pair_features`).

One converter per format, ``fn(example, id) -> [row, ...]`` (:data:`CONVERTERS`; ``rated`` takes a policy and
a random generator as well: :func:`from_rated`).
"""

from __future__ import annotations

import json
import os
import re
import unicodedata

from .. import _columns as C
from ..errors import FormatError
from .formats import ASSISTANT, HUMAN, PROMPT_KEYS, SCORE_KEYS, TEXT_KEYS, is_messages


class CellError(FormatError):
    """One cell of a row cannot be read at all (not a row to mark: the file needs fixing); :func:`load_pairs`
    adds where it is."""


def is_content_free(text: str) -> bool:
    """True for a text with nothing to read: only whitespace, control characters (NUL, …) and invisible format
    characters (zero-width spaces and joiners, the byte-order mark, …).

    Example:

        >>> is_content_free(" \u200b\u200d\ufeff\x00 "), is_content_free("\u200bhi")
        (True, False)
    """
    text = text.strip()
    if not text or text[0].isprintable():  # the usual case: the first character is visible
        return not text
    return all(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in text)


def _check_text(value, name: str) -> str | None:
    """Return a reason if ``value`` is not a usable text (``empty_<name>`` also for a content-free one)."""
    if value is None:
        return f"{C.INVALID_PREFIX}missing_{name}"
    if not isinstance(value, str):
        return f"{C.INVALID_PREFIX}non_string_{name}"
    if is_content_free(value):
        return f"{C.INVALID_PREFIX}empty_{name}"
    return None


def _row(id_, prompt, messages, chosen, rejected, reason="", *, needs_prompt=False):
    """One row of the pair schema; ``needs_prompt``: the format carries the prompt in its own field, so a
    missing (None) one makes the pair unusable."""
    if not reason:
        for value, name in ((chosen, "chosen"), (rejected, "rejected")):
            reason = _check_text(value, name) or ""
            if reason:
                break
    if not reason and prompt is None and needs_prompt:
        reason = f"{C.INVALID_PREFIX}missing_prompt"
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
    return [_row(id_, ex.get("prompt"), None, ex.get("chosen"), ex.get("rejected"), needs_prompt=True)]


def _assistant_text(messages) -> str | None:
    parts = [m.get("content") for m in messages if m.get("role") == "assistant"]
    if not parts:
        return None
    return "\n\n".join(p if isinstance(p, str) else "" for p in parts)


def _role(message) -> str:
    """A message's role as it may appear in a reason: a short lower-case word, else ``other``."""
    role = message.get("role")
    if not role:
        return "no_role"
    return role if isinstance(role, str) and re.fullmatch(r"[a-z_]{1,20}", role) else "other"


def _response_problem(messages, name: str) -> str:
    """Why a conversational response cannot be used as it is ("" when it can): its last turn is not the
    assistant's, or another role speaks inside it (a user turn would be lost when the assistant turns join)."""
    if messages[-1].get("role") != "assistant":
        return f"{C.INVALID_PREFIX}{name}_ends_with_{_role(messages[-1])}_turn"
    other = next((m for m in messages if m.get("role") != "assistant"), None)
    return "" if other is None else f"{C.INVALID_PREFIX}{name}_has_{_role(other)}_turn"


def _from_conversational(ex, id_):
    chosen, rejected, prompt = ex.get("chosen"), ex.get("rejected"), ex.get("prompt")
    for value, name in ((chosen, "chosen"), (rejected, "rejected")):
        if value is None:
            return [_row(id_, None, [], None, None, f"{C.INVALID_PREFIX}missing_{name}")]
        if isinstance(value, list) and not value:
            return [_row(id_, None, [], None, None, f"{C.INVALID_PREFIX}empty_{name}")]
        if not is_messages(value):  # e.g. a string in a conversational dataset
            return [_row(id_, None, [], None, None, f"{C.INVALID_PREFIX}non_messages_{name}")]
    for value, name in ((chosen, "chosen"), (rejected, "rejected")):
        if value[-1].get("role") != "assistant":  # the response would lose its last turn
            reason = _response_problem(value, name)
            return [_row(id_, None, [], _assistant_text(chosen), _assistant_text(rejected), reason)]
    k = 0  # the leading messages both sides share
    while k < min(len(chosen), len(rejected)) - 1 and chosen[k] == rejected[k]:
        k += 1
    if prompt is None:  # implicit prompt: the shared leading messages
        prompt_msgs, chosen, rejected = chosen[:k], chosen[k:], rejected[k:]
        if not prompt_msgs:
            reason = f"{C.INVALID_PREFIX}no_shared_prompt"
            return [_row(id_, "", [], _assistant_text(chosen), _assistant_text(rejected), reason)]
    else:  # an explicit prompt; sides that repeat it (UltraFeedback-binarized style) start after it
        lead = max((j + 1 for j in range(k) if chosen[j].get("role") != "assistant"), default=0)
        chosen, rejected = chosen[lead:], rejected[lead:]
        if not isinstance(prompt, str) and not is_messages(prompt):
            return [_row(id_, None, [], None, None, f"{C.INVALID_PREFIX}non_messages_prompt")]
        prompt_msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    for value, name in ((chosen, "chosen"), (rejected, "rejected")):
        reason = _response_problem(value, name)
        if reason:
            return [
                _row(id_, _render(prompt_msgs), prompt_msgs, _assistant_text(chosen), _assistant_text(rejected), reason)
            ]
    return [_row(id_, _render(prompt_msgs), prompt_msgs, _assistant_text(chosen), _assistant_text(rejected))]


def _split_hh(text: str):
    """'\\n\\nHuman: a\\n\\nAssistant: b ...' -> (prompt transcript, messages, final assistant response)."""
    cut = text.rfind(ASSISTANT)
    if cut < 0:
        return None
    prompt, response = text[:cut], text[cut + len(ASSISTANT) :].strip()
    messages = []
    rest = prompt
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
    for text, name in ((chosen, "chosen"), (rejected, "rejected")):
        if HUMAN in text[text.rfind(ASSISTANT) :]:  # the transcript goes on after its last Assistant turn
            reason = f"{C.INVALID_PREFIX}{name}_ends_with_user_turn"
            break
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
            try:
                comps = json.loads(comps)
            except ValueError as err:
                raise CellError(
                    f"the completions cell is not valid JSON ({err}; it starts {comps[:60]!r}). Fix that cell: "
                    'it must hold a JSON list of completions, e.g. [{"response": "Hi!", "score": 7}]'
                ) from err
            if not isinstance(comps, list):
                raise CellError(
                    f"the completions cell holds JSON {type(comps).__name__}, not a list. Fix that cell: "
                    'it must hold a JSON list of completions, e.g. [{"response": "Hi!", "score": 7}]'
                )
        out = []
        for c in comps:
            if isinstance(c, dict):
                text = _first(c, TEXT_KEYS)
                score = _first(c, SCORE_KEYS)
                if isinstance(score, dict):  # e.g. {"rating": ...}
                    score = _first(score, SCORE_KEYS)
                out.append((text, score))
        return out
    return list(zip(ex.get("responses") or [], ex.get("scores") or []))


def from_rated(ex, id_, policy: str, rng):
    """The pairs of one rated row, built by ``policy`` (one of :data:`~curate.ingest.RATED_POLICIES`)."""
    prompt = _first(ex, PROMPT_KEYS)
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
    pair = lambda *a: _row(*a, needs_prompt=True)  # noqa: E731
    if policy == "all_pairs":
        rows = []
        for i in range(len(comps)):
            for j in range(i + 1, len(comps)):
                if comps[i][1] == comps[j][1]:
                    continue
                hi, lo = (i, j) if comps[i][1] > comps[j][1] else (j, i)
                rows.append(pair(f"{id_}:{i}-{j}", prompt, None, comps[hi][0], comps[lo][0]))
        return rows
    best = max(range(len(comps)), key=lambda i: comps[i][1])
    if policy == "best_vs_worst":
        other = min(range(len(comps)), key=lambda i: comps[i][1])
    else:  # best_vs_random
        lower = [i for i in range(len(comps)) if comps[i][1] < comps[best][1]]
        other = lower[int(rng.integers(len(lower)))]
    return [pair(id_, prompt, None, comps[best][0], comps[other][0])]


def _from_pairwise(ex, id_):
    prompt = _first(ex, PROMPT_KEYS)
    raw = ex.get("preference")
    try:
        pref = float(raw)
    except (TypeError, ValueError):
        return [_row(id_, prompt, None, ex.get("output_1"), ex.get("output_2"), f"{C.INVALID_PREFIX}bad_preference")]
    if not 1.0 <= pref <= 2.0:
        return [_row(id_, prompt, None, ex.get("output_1"), ex.get("output_2"), f"{C.INVALID_PREFIX}bad_preference")]
    if pref == 1.5:
        return [_row(id_, prompt, None, ex.get("output_1"), ex.get("output_2"), f"{C.INVALID_PREFIX}tie")]
    better, worse = ("output_2", "output_1") if pref > 1.5 else ("output_1", "output_2")
    return [_row(id_, prompt, None, ex.get(better), ex.get(worse), needs_prompt=True)]


#: the converter of each format but ``rated`` (see :func:`from_rated`)
CONVERTERS = {
    "standard": _from_standard,
    "conversational": _from_conversational,
    "hh": _from_hh,
    "implicit": _from_implicit,
    "pairwise": _from_pairwise,
}
#: input columns a format turns into pair columns (not carried along)
CONSUMED = {"pairwise": ("output_1", "output_2", "preference", "instruction")}


def pair_features(input_features, carried, rows, string_ids=False):
    """The features of the pair schema, with the input's ``id`` type (strings for ``all_pairs`` ids) and the
    carried columns' own features."""
    from datasets import Features, List, Value

    id_feature = input_features.get(C.ID) if C.ID in input_features else Value("int64")
    if string_ids or (rows and isinstance(rows[0][C.ID], str)):
        id_feature = Value("string")
    feats = {
        C.ROW: Value("int64"),
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
