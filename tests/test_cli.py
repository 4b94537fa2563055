import subprocess
import sys

from seqvpr.cli import build_parser, main


def test_help_lists_every_subcommand(capsys):
    parser = build_parser()
    help_text = parser.format_help()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert subparsers.choices, "no subcommands registered"
    for name in subparsers.choices:
        assert name in help_text


def test_console_script_help_runs():
    completed = subprocess.run(
        [sys.executable, "-m", "seqvpr", "--help"], capture_output=True, text=True, check=True
    )
    assert "usage: seqvpr" in completed.stdout


def test_unknown_subcommand_exits_with_usage_error():
    completed = subprocess.run(
        [sys.executable, "-m", "seqvpr", "no-such-command"], capture_output=True, text=True
    )
    assert completed.returncode == 2
    assert "invalid choice" in completed.stderr
