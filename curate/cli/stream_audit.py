"""``curate stream-audit``: audit annotated parquet shards (e.g. a Ray job folder) in one streaming pass."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer


def register(cli: typer.Typer) -> None:
    """Add the ``stream-audit`` command to the ``curate`` command line."""

    @cli.command("stream-audit")
    def stream_audit_command(
        shards: List[Path] = typer.Argument(
            ..., help="Annotated parquet files or folders (a Ray job folder's shards/)."
        ),
        out: Path = typer.Option(
            ...,
            "--out",
            help="Output audit folder: audit.parquet, summary.json, annotated/ and its manifest (curate apply reads it).",
        ),
        sample_pairs: int = typer.Option(
            10_000, "--sample-pairs", help="Pairs sampled for length control, grouping and the sparse model."
        ),
        sample_concepts: int = typer.Option(256, "--sample-concepts", help="SAE features analysed on the sample."),
        top: int = typer.Option(20, "--top", help="Rows to print."),
    ) -> None:
        """Audit annotated shards with memory that grows with the number of concepts, not pairs × SAE width."""
        from .. import CurateError, StreamingAudit
        from ._base import _console, _fail, lit

        try:
            audit = StreamingAudit(sample_pairs=sample_pairs, sample_concepts=sample_concepts).fit_save(
                [str(s) for s in shards], out
            )
        except CurateError as err:
            _fail(str(err))
        console = _console()
        rows = audit.findings() if len(audit.findings()) else audit.results_
        console.print(
            lit(
                rows.head(top)[
                    ["concept", "win_rate", "ci_low", "ci_high", "q_value", "length_controlled_q", "confirmed", "group"]
                ].to_string(index=False)
            ),
            highlight=False,
        )
        console.print(
            f"{audit.n_pairs_} pairs, {len(audit.results_)} concepts, {audit.seconds_} s; wrote "
            f"the audit folder {lit(out)} (`curate apply {lit(out)} --block CONCEPT` curates it)",
            highlight=False,
        )
