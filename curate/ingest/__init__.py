"""Read preference data in any common format into curate's one pair schema.

:func:`load_pairs` accepts a Hub id, a local file (``.jsonl``, ``.json``, ``.parquet``, ``.csv``, also
``.gz``), a ``save_to_disk`` folder, or a ``Dataset``/``DatasetDict``/``IterableDataset``, detects the
format from the columns and a sample of rows spread across the data, and returns a `datasets.Dataset` with
the columns of :mod:`curate._columns` (``row, id, prompt, prompt_messages, chosen, rejected, reason``). Rows
are never reordered or dropped: a row that cannot be used keeps its place with ``reason = "invalid:<problem>"``,
and ``row`` (its position in the source) tells rows apart whatever their ``id`` (which may repeat or be null:
:func:`ingestion_summary` counts those; :func:`ensure_row_index` numbers a dataset that has no ``row``; an
input ``row`` that is not the positions, such as a subset of rows read before, is kept as ``input_row``).

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

Problems marked per row: ``invalid:missing_<col>`` (None; ``missing_prompt`` where the format has a prompt
field), ``invalid:empty_<col>`` (also a text of only whitespace, zero-width characters or NUL),
``invalid:non_string_<col>``, ``invalid:non_messages_<side>`` (not a message list in a conversational
dataset), ``invalid:identical`` (chosen == rejected), ``invalid:tie``, ``invalid:prompt_mismatch`` (the two
transcripts of an implicit pair have different prompts), ``invalid:no_shared_prompt``,
``invalid:too_few_completions``, ``invalid:bad_preference``, ``invalid:<side>_ends_with_<role>_turn`` (a
response whose last turn is not the assistant's, an HH side ending on a Human turn included) and
``invalid:<side>_has_<role>_turn`` (another role speaks inside a conversational response). Data that already
has curate's ``reason`` column keeps its ``invalid:`` reasons.

The package: ``load`` (:func:`load_pairs`, :func:`ingestion_summary`), ``read`` (files, Hub ids, ``datasets``
objects, with errors that say how to fix a file), ``formats`` (:data:`FORMATS`, :func:`detect_format`, the
accepted keys) and ``normalise`` (one converter per format to the pair schema).

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

from .formats import FORMATS, RATED_POLICIES, detect_format
from .load import ensure_row_index, ingestion_summary, load_pairs

__all__ = ["load_pairs", "detect_format", "ingestion_summary", "ensure_row_index", "FORMATS", "RATED_POLICIES"]
