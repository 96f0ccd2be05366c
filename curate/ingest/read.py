"""Read preference data from wherever it is into a ``datasets`` object: a Hub id, a local file (``.jsonl``,
``.json``, ``.parquet``, ``.csv``, also ``.gz``), a ``save_to_disk`` folder, or a
``Dataset``/``DatasetDict``/``IterableDataset`` (:func:`read_source`). A file that cannot be read gets an error
saying where and how to fix it; a multi-split source gets its split picked (or the splits listed).
"""

from __future__ import annotations

import json
import logging
import os

from ..errors import FormatError

logger = logging.getLogger("curate")


def read_source(source, split: str | None, **load_kwargs):
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
            return read_source(hf.load_from_disk(path), split)
        dd = hf.load_dataset(path, **load_kwargs)
        return read_source(dd, split)
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
        return read_source(dd, split)
    raise FormatError(f"No such file or folder: {path!r}.")


def _load_file(hf, builder: str, path: str, **load_kwargs):
    """``load_dataset`` on one local file; a file it cannot read gets a message saying where and how to fix it."""
    if os.path.getsize(path) == 0:
        raise FormatError(f"{path} is empty: there are no pairs to read.")
    try:
        ds = hf.load_dataset(builder, data_files=path, split="train", **load_kwargs)
        # datasets reads its cache of the file back without checking it: an Arrow file cut at a record-batch
        # boundary gives fewer rows. Its record says how many it wrote; on a mismatch the file is read again.
        split = (ds.info.splits or {}).get("train")
        if split is not None and split.num_examples not in (None, len(ds)):
            logger.warning(
                "The datasets cache of %s holds %d of %d rows (cut short): reading the file again.",
                path,
                len(ds),
                split.num_examples,
            )
            ds = hf.load_dataset(
                builder, data_files=path, split="train", download_mode="force_redownload", **load_kwargs
            )
        return ds
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
        return not_utf8(path) or f"{path} is not UTF-8 text ({u_err}); save it as UTF-8."
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


def not_utf8(path: str) -> str | None:
    """Where ``path`` (a text file, maybe ``.gz``) first stops being UTF-8, as an error message naming the file,
    the line and the fix; None if it is all UTF-8 (or cannot be read)."""
    import gzip

    try:
        with gzip.open(path) if path.endswith(".gz") else open(path, "rb") as f:
            for n, line in enumerate(f, 1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as err:
                    return (
                        f"{path}, line {n}: not valid UTF-8 (byte 0x{line[err.start]:02x} at byte {err.start + 1} "
                        "of the line). Save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 in > out` for a "
                        "Latin-1 file) or fix that line."
                    )
    except (OSError, EOFError):
        return None
    return None


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
