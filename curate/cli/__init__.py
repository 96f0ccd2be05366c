"""The ``curate`` command line: one command per step.

    curate audit DATA --out DIR        annotate concepts and test which ones separate chosen from rejected
    curate generate --out FILE         write the built-in generator's pairs (with planted concepts)
    curate demo --out DIR              generate → audit → apply a shipped recipe → publish locally
    curate apply / fit-sae / publish / app / learn / learn-pool   (see ``curate COMMAND --help``)

A curate error (bad input, a wrong folder, an invalid option) is one line naming the fix; any other exception is
a bug in curate and shows its traceback with a request to report it. ``--debug`` (anywhere on the line) re-raises.
"""

from __future__ import annotations

import importlib
import os
import sys

from . import _base
from ._base import _console, _fail, _show_progress, cli  # noqa: F401  (tests and plugins use these names)

#: one module per command under curate/cli/; each defines ``register(cli)``. A new command is one new module
#: and one entry here. A module that fails to import is an error, never a silently missing command.
COMMANDS = (
    "audit",
    "generate",
    "demo",
    "apply",
    "fit_sae",
    "publish",
    "browse",
    "stream_audit",
    "learn",
)  # browse: `curate app`


def _register_commands() -> None:
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(cli)


_register_commands()


#: the line printed under the traceback of an exception that is not a CurateError (a bug in curate)
BUG_REPORT = (
    "error: this is a bug in curate, not a problem with your data or options: please report it on curate's "
    "issue tracker with the traceback above and the command you ran."
)


def main(argv: list[str] | None = None) -> None:
    """The ``curate`` entry point: a :class:`curate.CurateError` (bad input, a wrong folder, an invalid option)
    and click's usage errors are one line (``error: …``, exit code 2); any other exception is a bug in curate
    and shows its traceback and a request to report it (exit code 1); Ctrl-C is a word (exit code 130).
    ``--debug`` anywhere on the command line (or ``CURATE_DEBUG=1``) re-raises the error instead."""
    from rich.markup import escape

    from .. import CurateError

    try:  # typer >= 0.24 carries its own copy of click
        from typer._click import exceptions as click
    except ImportError:  # pragma: no cover - older typer on the real click
        from click import exceptions as click
    from typer.exceptions import Abort

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("CURATE_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    _base.DEBUG = debug
    from ..pipeline import folders_written

    written_before = len(folders_written())
    try:
        try:
            code = cli(args=args, prog_name="curate", standalone_mode=False)
        except Abort as err:  # typer turns EOF (e.g. a truncated .gz) into Abort
            raise (err.__cause__ or KeyboardInterrupt()) from None
        if code == 130:  # typer's answer to Ctrl-C
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        written = folders_written()[written_before:]
        what = (
            f"it had already written the new complete folder(s) {', '.join(map(str, written))}"
            if written
            else "its output folder is left as it was"
        )
        print(f"\ninterrupted (Ctrl-C): the step stopped; {what}.", file=sys.stderr)
        sys.exit(130)
    except click.ClickException as err:  # usage errors: click's own message
        err.show()
        sys.exit(err.exit_code)
    except CurateError as err:
        if debug:
            raise
        message = " ".join(str(err).split())
        _console().print(
            f"[bold red]error:[/] {escape(message or type(err).__name__)}", highlight=False, soft_wrap=True
        )
        sys.exit(2)
    except Exception:  # noqa: BLE001 - not a CurateError: a bug in curate, shown in full
        if debug:
            raise
        import traceback

        traceback.print_exc()
        print(BUG_REPORT, file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
