"""The one command line: ``munet --help`` lists every command, ``munet COMMAND --help`` works for
each, the console script runs in a fresh process, an unknown command is refused, and the scripts
call the same parsers."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from munet.__main__ import COMMANDS, main
from munet.console import VERBOSE_ENV, verbose

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "munet"
"""The ``munet`` console script of this environment (``[project.scripts]``)."""


def _munet(*args: str) -> subprocess.CompletedProcess[str]:
    """``munet ARGS`` in a subprocess (the console script, else ``python -m munet``)."""
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "munet"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=300, cwd=REPO)


def test_help_lists_every_command_with_a_description():
    done = _munet("--help")
    assert done.returncode == 0, done.stderr
    listed = {line.split()[0]: line for line in done.stdout.splitlines() if line.startswith("  ")}
    assert sorted(listed) == sorted(COMMANDS)
    assert all(len(line.split(maxsplit=1)) == 2 for line in listed.values())  # a description each


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command, capsys):
    """In this process (a fresh one per command costs seconds of imports each): the dispatch of
    ``munet COMMAND --help`` reaches the command's own parser."""
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: munet {command}")


def test_the_console_script_runs_a_command_in_a_fresh_process():
    done = _munet("train", "--help")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage: munet train")


def test_verbose_before_the_command_keeps_the_libraries_output(monkeypatch, capsys):
    monkeypatch.setenv(VERBOSE_ENV, "0")  # recorded, so the test leaves the environment as it found it
    assert not verbose()
    with pytest.raises(SystemExit) as exit_info:
        main(["--verbose", "train", "--help"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.startswith("usage: munet train")
    assert verbose()  # for this process and the Ray processes it starts


def test_an_unknown_command_exits_2_naming_it():
    done = _munet("trian")
    assert done.returncode == 2
    assert "munet: unknown command 'trian'" in done.stderr and "commands:" in done.stderr
    missing = _munet()
    assert missing.returncode == 2 and "munet: no command given" in missing.stderr


@pytest.mark.parametrize(
    ("script", "command"),
    [
        ("jobs/train.py", "train"),
        ("jobs/evaluate.py", "evaluate"),
        ("jobs/make_shards.py", "make-shards"),
        ("jobs/convert.py", "convert"),
        ("jobs/ablation.py", "ablation"),
        ("jobs/demo.py", "demo"),
        ("sweeps/tune_mutual.py", "sweep"),
    ],
)
def test_scripts_are_the_commands(script, command, monkeypatch, capsys):
    """``python jobs/X.py ARGS`` (as ``ray job submit`` runs it) parses ARGS with the command's parser."""
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / script), run_name="__main__")
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: munet {command}")


@pytest.mark.parametrize("package", ["body", "data", "bench", "cluster"])
def test_module_aliases_are_the_commands(package, monkeypatch, capsys):
    """``python -m munet.PACKAGE ARGS`` is ``munet PACKAGE ARGS``."""
    monkeypatch.setattr(sys, "argv", [f"munet.{package}", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module(f"munet.{package}", run_name="__main__", alter_sys=True)
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: munet {package}")
