"""The console every command shares: one format for log lines, other libraries' chatter off.

Each command calls :func:`setup_console` once. By default the console shows munet's own lines
(progress, results, warnings) and the warnings and errors of the libraries underneath; their
informational chatter goes: Warp's start-up banner and kernel-cache lines (printed once per
process, so once per Ray worker), Ray Data's execution plans and per-dataset status lines,
Anny's cache messages. ``MUNET_VERBOSE=1`` in the environment keeps all of it, for debugging.
Ray Data always writes its full log to the session's ``logs/ray-data`` folder.
"""

from __future__ import annotations

import logging
import os
import sys

VERBOSE_ENV = "MUNET_VERBOSE"
"""Environment variable: set to ``1`` to keep every library's informational output."""

QUIET_LOGGERS = ("anny", "matplotlib", "PIL", "ray.tune", "ray.train")
"""Loggers held at ``WARNING`` on a quiet console."""

RAY_DATA_CONSOLE_LEVEL = "ERROR"
"""Ray Data's console level on a quiet console (``RAY_DATA_LOG_LEVEL``). Not ``WARNING``: with its
progress bars off, Ray Data warns about that once per process."""


def verbose() -> bool:
    """Whether the user asked for every library's output (``MUNET_VERBOSE`` set, not ``0``)."""
    return os.environ.get(VERBOSE_ENV, "0").strip() not in ("", "0")


def setup_console(timestamps: bool = True) -> None:
    """Log munet's ``INFO`` lines to standard error as ``[time] logger: message``, and quiet
    the libraries (:data:`QUIET_LOGGERS`, Warp, and, for processes started after this call,
    Ray Data) unless :func:`verbose`.

    Args:
        timestamps: start each line with the time (off in Ray workers, whose lines Ray prefixes).
    """
    logging.basicConfig(level=logging.INFO, format=("%(asctime)s " if timestamps else "") + "%(name)s: %(message)s")
    if verbose():
        return
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # Read by Ray Data at import, here and in the Ray processes this one starts.
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", RAY_DATA_CONSOLE_LEVEL)
    quiet_warp()


def quiet_warp() -> None:
    """Keep Warp's informational output (its banner, kernel-cache lines) off, unless :func:`verbose`.

    Modules that use Warp call it at import, so Ray workers that never ran :func:`setup_console`
    stay quiet too. On a machine where torch sees no GPU, Warp is initialised here with standard
    error briefly closed: its C library prints a notice that no CUDA driver was found straight to
    the file descriptor, past its log level. Errors of that initialisation still raise.
    """
    if verbose():
        return
    import warp

    warp.config.log_level = warp.LOG_WARNING
    import torch

    if torch.cuda.is_available():
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        warp.init()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
