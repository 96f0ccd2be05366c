"""The Ray Data engine: an annotator that ``Dataset.map`` runs, run instead by an actor pool across machines and GPUs.

:func:`run_annotator` takes any ``datasets``-style batch callable (with ``output_columns`` and
``features``) and runs it through ``ray.data.Dataset.map_batches`` on an ``ActorPoolStrategy`` pool, so a
model and its SAE are loaded once per actor (with ``num_gpus`` per actor when ``gpus_per_worker > 0``). It
knows nothing of concepts: ``curate.annotate(ds, engine="ray")`` (:mod:`curate.concepts.named`),
``curate.annotate_sae(ds, engine="ray")`` (:mod:`curate.concepts.sae_ray`) and
``curate audit DATA --engine ray`` call it with their annotators. How a job runs:

1. the input (a `datasets.Dataset`, or parquet/jsonl files in curate's pair schema, local or remote
   ``s3://``/``gs://``/``hf://`` — read by ``ray.data.read_parquet`` / ``read_json``) is cut into shards of
   ``rows_per_shard`` consecutive rows; a `datasets.Dataset` goes to Ray with ``ray.data.from_arrow``
   (its Arrow table, no Hub access);
2. shards already written to ``out/shards/`` by an earlier run of the *same* job (same input fingerprint
   and annotator fingerprint, recorded in ``out/job.json``) are skipped — an interrupted job resumes;
3. the driver streams the results and writes each finished shard atomically to
   ``out/shards/part-<shard>.parquet`` (rows in input order, the output columns and types of the local
   engine's ``features``);
4. the shards are loaded back as one `datasets.Dataset` whose fingerprint equals the local engine's.

Ray is an optional extra: ``pip install "curate-prefs[ray]"``.

Example:

    >>> import curate
    >>> ds = curate.make_preference_pairs(50).dataset
    >>> out = curate.annotate(ds, engine="ray", engine_options={"out": "runs/named", "workers": 2})  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

from . import _columns as C
from .errors import ColumnError, ConfigError, FormatError, MissingDependencyError

__all__ = ["RayEngine", "run_annotator", "last_engine", "require_ray", "INSTALL_HINT"]

logger = logging.getLogger("curate")

INSTALL_HINT = 'The Ray engine needs Ray Data, which is not installed. Run: pip install "curate-prefs[ray]"  (or: pip install "ray[data]>=2.9")'
SHARD_DIR = "shards"
JOB_FILE = "job.json"
_SHARD = "__curate_shard"
_ROW = "__curate_row"
_REMOTE = ("s3://", "gs://", "gcs://", "hf://", "abfs://", "az://", "http://", "https://")


def require_ray():
    """Import and return ``ray`` (with Ray Data), or raise :class:`~curate.errors.MissingDependencyError`
    with the install command."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise MissingDependencyError(INSTALL_HINT) from err
    return ray


class _Interrupted(RuntimeError):
    """Raised when ``stop_after`` shards were written (simulates a job stopped midway)."""


class _Worker:
    """One actor of the pool: builds the batch callable once, then maps pyarrow batches like ``datasets.map``
    (the callable's output columns are merged into the input columns, cast to the declared types)."""

    def __init__(self, factory: Callable, schema_bytes: bytes):
        import pyarrow as pa

        self.fn = factory()
        self.schema = pa.ipc.read_schema(pa.py_buffer(schema_bytes))

    def __call__(self, table):
        import pyarrow as pa

        batch = table.drop_columns([c for c in (_SHARD, _ROW) if c in table.column_names]).to_pydict()
        out = self.fn(batch)
        for name, values in out.items():
            field = self.schema.field(name) if name in self.schema.names else None
            arr = pa.array(values, type=field.type if field is not None else None)
            if name in table.column_names:
                table = table.set_column(table.column_names.index(name), name, arr)
            else:
                table = table.append_column(name, arr)
        return table


class RayEngine:
    """Run a batch callable over a pair dataset with Ray Data and write resumable parquet shards.

    Args:
        address: Ray cluster address (``"auto"``, ``"ray://host:10001"``); None starts (or reuses) a local
            Ray instance.
        workers: actors in the pool (each loads the model once).
        gpus_per_worker: GPUs per actor (``num_gpus``); 0 on CPU-only machines.
        cpus_per_worker: CPUs per actor.
        rows_per_shard: rows per output shard (the unit of resumption).
        batch_size: rows per ``map_batches`` call.
        num_cpus: CPUs of a local instance started here (None: all).
        object_store_memory: bytes of a local instance's object store (None: Ray's default).

    Attributes (after :meth:`map`):
        stats_: ``shards``, ``shards_done_before`` (found finished), ``shards_computed``, ``rows_computed``,
        ``seconds``.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int = 2,
        gpus_per_worker: float = 0.0,
        cpus_per_worker: float = 1.0,
        rows_per_shard: int = 10_000,
        batch_size: int = 256,
        num_cpus: int | None = None,
        object_store_memory: int | None = None,
    ):
        self.address = address
        self.workers = workers
        self.gpus_per_worker = gpus_per_worker
        self.cpus_per_worker = cpus_per_worker
        self.rows_per_shard = rows_per_shard
        self.batch_size = batch_size
        self.num_cpus = num_cpus
        self.object_store_memory = object_store_memory

    # -- cluster ---------------------------------------------------------------------------------------
    def connect(self):
        """Connect to ``address`` (or start a local instance) unless Ray is already initialised; returns ray."""
        ray = require_ray()
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            kwargs = {"include_dashboard": False, "log_to_driver": False, "ignore_reinit_error": True}
            if self.address:
                ray.init(address=self.address, **kwargs)
            else:
                ray.init(num_cpus=self.num_cpus, object_store_memory=self.object_store_memory, **kwargs)
        return ray

    # -- input -----------------------------------------------------------------------------------------
    def _shards(self, data) -> tuple[list[tuple[int, int]], Callable[[int], object], str, object]:
        """``(row ranges, shard -> ray Dataset, input fingerprint, datasets Features or None)``."""
        import pyarrow as pa

        ray = self.connect()
        size = max(1, int(self.rows_per_shard))
        if hasattr(data, "with_format") and hasattr(data, "features"):  # datasets.Dataset
            table = data.with_format("arrow")[:]
            fp = getattr(data, "_fingerprint", None) or _table_hash(table)
            features = data.features
        else:
            paths = [str(p) for p in (data if isinstance(data, (list, tuple)) else [data])]
            table = _read_with_ray(ray, paths)
            fp = hashlib.sha256(json.dumps([_path_identity(p) for p in paths]).encode()).hexdigest()[:32]
            from datasets import Features

            features = Features.from_arrow_schema(table.schema)
        missing = [c for c in C.SIDES if c not in table.column_names]
        if missing:
            raise ColumnError(
                f"Columns {missing} not in the input. Columns in the input: {table.column_names}. "
                "Convert it to curate's pair schema first: `curate.load_pairs(path)`."
            )
        n = table.num_rows
        ranges = [(s, min(s + size, n)) for s in range(0, n, size)]

        def shard(i: int):
            s, e = ranges[i]
            part = table.slice(s, e - s)
            part = part.append_column(_SHARD, pa.array([i] * (e - s), pa.int64()))
            part = part.append_column(_ROW, pa.array(range(s, e), pa.int64()))
            return ray.data.from_arrow(part)

        return ranges, shard, fp, features

    # -- the job ---------------------------------------------------------------------------------------
    def map(
        self, data, factory: Callable, *, out, features_for: Callable, identity: str, stop_after: int | None = None
    ):
        """Map ``factory()`` (a ``datasets``-style batched callable built once per actor) over ``data``.

        Args:
            data: a `datasets.Dataset`, or parquet/jsonl path(s) in curate's pair schema (local or remote).
            factory: a picklable zero-argument callable returning the batch callable.
            out: job folder (``shards/``, ``job.json``); an interrupted job with the same folder resumes.
            features_for: input `Features` (or None) -> output `Features`.
            identity: the annotator's fingerprint (part of the job's identity).
            stop_after: stop (raise) after writing this many shards in this run — to test resumption.

        Returns:
            ``(datasets.Dataset, input fingerprint)``.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        t0 = time.perf_counter()
        ray = self.connect()
        ranges, shard, input_fp, in_features = self._shards(data)
        out = Path(out)
        shard_dir = out / SHARD_DIR
        shard_dir.mkdir(parents=True, exist_ok=True)
        job = {
            "input": input_fp,
            "annotator": identity,
            "rows_per_shard": int(self.rows_per_shard),
            "n_rows": ranges[-1][1] if ranges else 0,
        }
        job_file = out / JOB_FILE
        if job_file.exists():
            before = json.loads(job_file.read_text())
            if before != job:
                raise ConfigError(
                    f"{out} holds shards of a different job ({before}); this job is {job}. Use a new "
                    "`out` folder, or delete the old one to start over."
                )
        else:
            job_file.write_text(json.dumps(job, indent=2))
        features = features_for(in_features)
        done = {i for i in range(len(ranges)) if (shard_dir / _shard_name(i)).exists()}
        todo = [i for i in range(len(ranges)) if i not in done]
        self.stats_ = {
            "shards": len(ranges),
            "shards_done_before": len(done),
            "shards_computed": 0,
            "rows_computed": 0,
            "seconds": 0.0,
        }
        if todo:
            schema = features.arrow_schema if features is not None else None
            schema_bytes = (
                schema.serialize().to_pybytes() if schema is not None else pa.schema([]).serialize().to_pybytes()
            )
            parts = [shard(i) for i in todo]
            rds = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
            mapped = rds.map_batches(
                _Worker,
                fn_constructor_args=(factory, schema_bytes),
                batch_format="pyarrow",
                batch_size=self.batch_size,
                zero_copy_batch=False,
                compute=ray.data.ActorPoolStrategy(size=int(self.workers)),
                num_cpus=self.cpus_per_worker,
                **({"num_gpus": self.gpus_per_worker} if self.gpus_per_worker else {}),
            )
            pending: dict[int, list] = {}
            got: dict[int, int] = {}
            for batch in mapped.iter_batches(batch_format="pyarrow", batch_size=None):
                for sid in pa.compute.unique(batch[_SHARD]).to_pylist():
                    part = batch.filter(pa.compute.equal(batch[_SHARD], sid))
                    pending.setdefault(sid, []).append(part)
                    got[sid] = got.get(sid, 0) + part.num_rows
                    s, e = ranges[sid]
                    if got[sid] == e - s:
                        table = pa.concat_tables(pending.pop(sid)).sort_by(_ROW).drop_columns([_SHARD, _ROW])
                        if schema is not None:
                            table = table.select(schema.names).cast(schema)
                        tmp = shard_dir / (_shard_name(sid) + ".tmp")
                        pq.write_table(table, tmp)
                        os.replace(tmp, shard_dir / _shard_name(sid))
                        self.stats_["shards_computed"] += 1
                        self.stats_["rows_computed"] += e - s
                        if stop_after is not None and self.stats_["shards_computed"] >= stop_after:
                            raise _Interrupted(f"stopped after {stop_after} shards (stop_after)")
            if pending:
                raise RuntimeError(f"Ray returned incomplete shards {sorted(pending)}; rerun to resume.")
        self.stats_["seconds"] = round(time.perf_counter() - t0, 3)
        return _load_shards(shard_dir, len(ranges), features), input_fp

    def to_dict(self) -> dict:
        return {
            "engine": "ray",
            "address": self.address,
            "workers": self.workers,
            "gpus_per_worker": self.gpus_per_worker,
            "rows_per_shard": self.rows_per_shard,
            **({"stats": self.stats_} if hasattr(self, "stats_") else {}),
        }


def _shard_name(i: int) -> str:
    return f"part-{i:05d}.parquet"


def _table_hash(table) -> str:
    h = hashlib.sha256()
    h.update(str(table.schema).encode())
    h.update(str(table.num_rows).encode())
    for batch in table.slice(0, 1000).to_batches():
        for col in batch.columns:
            for buf in col.buffers():
                if buf is not None:
                    h.update(buf)
    return h.hexdigest()[:32]


def _path_identity(path: str) -> list:
    p = Path(path)
    if not path.startswith(_REMOTE) and p.exists():
        files = sorted(p.rglob("*")) if p.is_dir() else [p]
        return [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files if f.is_file()]
    return [path]


def _read_with_ray(ray, paths: list[str]):
    """Read parquet/jsonl files (local or remote) with Ray Data, in file order, as one Arrow table."""
    import pyarrow as pa

    kinds = {
        (
            "parquet"
            if p.rstrip("/").endswith(".parquet") or (not p.startswith(_REMOTE) and Path(p).is_dir())
            else "json"
            if p.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz"))
            else None
        )
        for p in paths
    }
    if None in kinds or len(kinds) != 1:
        raise FormatError(
            f"The Ray engine reads .parquet files/folders or .jsonl files in curate's pair schema; got "
            f"{paths}. For other formats (and the Hub) load them first: `ds = curate.load_pairs(...)`, "
            "then pass `ds`."
        )
    ctx = ray.data.DataContext.get_current()
    keep = ctx.execution_options.preserve_order
    ctx.execution_options.preserve_order = True
    try:
        rds = ray.data.read_parquet(paths) if kinds == {"parquet"} else ray.data.read_json(paths, lines=True)
        blocks = [b for b in rds.iter_batches(batch_format="pyarrow", batch_size=None)]
    finally:
        ctx.execution_options.preserve_order = keep
    return pa.concat_tables(blocks, promote_options="default") if blocks else pa.table({})


def _load_shards(shard_dir: Path, n: int, features):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset, DatasetInfo

    tables = [pq.read_table(shard_dir / _shard_name(i), memory_map=True) for i in range(n)]
    table = pa.concat_tables(tables) if tables else (features.arrow_schema.empty_table() if features else pa.table({}))
    if features is None:
        return Dataset(table)
    return Dataset(table.cast(features.arrow_schema), info=DatasetInfo(features=features))


def _fingerprint(*parts: str, n: int = 32) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:n]


def _default_out(kind: str, identity: str) -> Path:
    return Path(tempfile.gettempdir()) / "curate-ray" / f"{kind}-{identity}"


class _Same:
    """Factory returning a fixed (picklable) callable: the annotator itself travels to the workers."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self):
        return self.fn


def run_annotator(
    annotator,
    dataset,
    *,
    kind: str,
    key: Sequence[str],
    build: Callable | None = None,
    batch_size: int = 256,
    out=None,
    stop_after: int | None = None,
    **engine_kwargs,
):
    """Run an annotator (a ``datasets``-style batched callable) over ``dataset`` on Ray, like ``Dataset.map``.

    Args:
        annotator: the batch callable, with ``output_columns`` and ``features(input_features)``; shipped to
            the workers as it is (pickled) unless ``build`` is given.
        dataset: a `datasets.Dataset` or pair-schema parquet/jsonl path(s).
        kind: the annotator's kind (``"named"``, ``"sae"``): names the default job folder.
        key: what identifies the annotator's output (its fingerprint, ...); with ``kind`` and the input's
            fingerprint it makes the job's identity and the output's fingerprint.
        build: a picklable zero-argument callable that builds the batch callable in each worker (e.g. from
            a configuration); default: the annotator itself.
        batch_size: rows per ``map_batches`` call.
        out: job folder (default: a folder under the temp dir named after the job).
        stop_after: stop after this many shards (to test resumption).
        **engine_kwargs: :class:`RayEngine` arguments (``address``, ``workers``, ``rows_per_shard``, ...).

    Returns:
        the annotated `datasets.Dataset`; its fingerprint hashes the input's, ``kind`` and ``key`` (as the
        local engine's ``new_fingerprint``). :func:`last_engine` gives the engine and its ``stats_``.
    """
    existing = [c for c in annotator.output_columns if hasattr(dataset, "column_names") and c in dataset.column_names]
    if existing:
        dataset = dataset.remove_columns(existing)
    engine = RayEngine(batch_size=batch_size, **engine_kwargs)
    identity = "|".join([kind, *key])
    out = out or _default_out(kind, _fingerprint(str(getattr(dataset, "_fingerprint", dataset)), identity, n=16))
    ds, input_fp = engine.map(
        dataset,
        build or _Same(annotator),
        out=out,
        features_for=lambda f: annotator.features(f) if f else None,
        identity=identity,
        stop_after=stop_after,
    )
    ds._fingerprint = _fingerprint(input_fp, kind, *key)
    _LAST[0] = engine
    return ds


_LAST: list = [None]


def last_engine() -> RayEngine | None:
    """The :class:`RayEngine` of the last Ray annotation in this process (its ``stats_``), or None."""
    return _LAST[0]
