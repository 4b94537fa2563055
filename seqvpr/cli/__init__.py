"""The ``seqvpr`` command: one entry point with a subcommand per pipeline step.

Each subcommand lives in its own module of this package and exposes ``NAME``,
``HELP`` (one line), ``DESCRIPTION`` (the ``--help`` text), ``add_arguments(parser)``
and ``run(args) -> int``. Modules import their heavy dependencies inside ``run`` so
that ``seqvpr --help`` stays fast and works without optional extras.

User errors (:class:`seqvpr.errors.SeqvprError`) are printed as one line with exit
status 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import shlex
import sys
from collections.abc import Sequence

from seqvpr import __version__

__all__ = ["main", "build_parser"]

SUBCOMMAND_MODULES = (
    "seqvpr.cli.demo",
    "seqvpr.cli.align",
    "seqvpr.cli.extract",
    "seqvpr.cli.synth",
    "seqvpr.cli.prepare_robotcar",
    "seqvpr.cli.pairs",
    "seqvpr.cli.evaluate",
    "seqvpr.cli.finetune",
    "seqvpr.cli.train_base",
    "seqvpr.cli.map",
    "seqvpr.cli.localize",
    "seqvpr.cli.bag",
    "seqvpr.cli.audio_data",
    "seqvpr.cli.audio_train",
    "seqvpr.cli.audio_eval",
    "seqvpr.cli.audio_align",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqvpr",
        description=(
            "Sequence-based visual place recognition with differentiable DTW (DecDTW). "
            "Run `seqvpr <command> --help` for the options of one command."
        ),
    )
    parser.add_argument("--version", action="version", version=f"seqvpr {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for module_name in SUBCOMMAND_MODULES:
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(
            module.NAME,
            help=module.HELP,
            description=module.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["seqvpr", *argv])
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from seqvpr.errors import SeqvprError

    try:
        return int(args._run(args) or 0)
    except SeqvprError as error:
        message = " ".join(str(error).split())
        print(f"seqvpr {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
