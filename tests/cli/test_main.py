"""The seqvpr command: subcommands, help, and how errors are reported."""

import subprocess
import sys

import pytest

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


def test_only_user_errors_are_one_line_messages(monkeypatch, tmp_path, capsys):
    import seqvpr.cli.align as align
    from seqvpr.errors import SeqvprError

    def user_error(args):
        raise SeqvprError("bad.npz: the\nproblem")

    def bug(args):
        raise ValueError("an internal bug")

    arguments = ["align", "a.npz", "b.npz", "--out", str(tmp_path / "o.npz")]
    monkeypatch.setattr(align, "run", user_error)
    assert main(arguments) == 2
    assert capsys.readouterr().err == "seqvpr align: error: bad.npz: the problem\n"
    monkeypatch.setattr(align, "run", bug)
    with pytest.raises(ValueError, match="an internal bug"):
        main(arguments)
