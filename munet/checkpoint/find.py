"""Where checkpoints are: run storage on a local folder or an object store (``s3://``, ``gs://``,
…) through pyarrow, the checkpoint folders of a run, and the one to use.

A run lives in ``out/name``; Ray Train writes its checkpoints there as folders named by
:func:`checkpoint_dir_name` (``checkpoint_00000120`` for step 120), each holding ``state.pt``.
A resumed run starts from :func:`latest_readable_checkpoint`: the newest checkpoint whose
``state.pt`` loads, skipping (with a warning naming it) a truncated or unreadable newer one.
Commands that take ``--checkpoint`` accept a checkpoint folder, its ``state.pt`` or a run folder
(:func:`find_checkpoint`).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow.fs as pafs

    from munet.checkpoint.state import TrainingState

log = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint_"


def storage_root(out: str) -> str:
    """The ``storage_path`` Ray Train needs: an absolute local path or an unchanged URI."""
    if "://" in out:
        return out
    return str(Path(out).expanduser().resolve())


def checkpoint_dir_name(step: int) -> str:
    """The folder name of the checkpoint written at ``step`` (sorts by step)."""
    return f"{CHECKPOINT_PREFIX}{step:08d}"


def checkpoint_step(folder: str) -> int | None:
    """The step encoded in a checkpoint folder's name or path, or ``None`` for another name."""
    name = folder.rstrip("/").rsplit("/", 1)[-1]
    suffix = name[len(CHECKPOINT_PREFIX) :]
    return int(suffix) if name.startswith(CHECKPOINT_PREFIX) and suffix.isdigit() else None


def run_location(out: str, name: str) -> str:
    """The folder or URI of run ``name`` under the storage root ``out``."""
    return f"{storage_root(out).rstrip('/')}/{name}"


def _checkpoint_folders(run: str) -> tuple[pafs.FileSystem, list[pafs.FileInfo]]:
    """The run's filesystem and its ``checkpoint_*`` folders (none when the run does not exist)."""
    import pyarrow.fs as pafs

    root = storage_root(run)
    fs, base = pafs.FileSystem.from_uri(root) if "://" in root else (pafs.LocalFileSystem(), root)
    listing = fs.get_file_info(pafs.FileSelector(base.rstrip("/"), allow_not_found=True))
    folders = [i for i in listing if i.type == pafs.FileType.Directory and i.base_name.startswith(CHECKPOINT_PREFIX)]
    return fs, folders


def run_has_checkpoints(out: str, name: str) -> bool:
    """Whether ``out/name`` already holds a checkpoint folder (complete or not)."""
    return bool(_checkpoint_folders(run_location(out, name))[1])


def _by_step(name: str) -> tuple[int, str]:
    """Sort key: folders without a step first (by name), then by step."""
    step = checkpoint_step(name)
    return (-1 if step is None else step, name)


def complete_checkpoints(run: str) -> list[str]:
    """The complete checkpoint folders (holding ``state.pt``) of the run folder or URI ``run``,
    oldest first by step (folders of other names first, by name). Paths keep ``run``'s scheme."""
    import pyarrow.fs as pafs

    fs, folders = _checkpoint_folders(run)
    states = fs.get_file_info([f"{info.path}/state.pt" for info in folders])
    complete = sorted(
        (info.base_name for info, state in zip(folders, states, strict=True) if state.type == pafs.FileType.File),
        key=_by_step,
    )
    return [f"{storage_root(run).rstrip('/')}/{name}" for name in complete]


def latest_checkpoint(run: str) -> str | None:
    """The newest complete checkpoint of the run folder or URI ``run``, or ``None``."""
    found = complete_checkpoints(run)
    return found[-1] if found else None


class NoUsableCheckpointError(ValueError):
    """A run holds checkpoints, but none of them can be read."""


def read_checkpoint(folder: str) -> TrainingState:
    """Load the checkpoint folder or URI ``folder`` (a remote ``state.pt`` is copied to a
    temporary file first).

    Raises:
        FileNotFoundError, ValueError: as :func:`munet.checkpoint.state.load_checkpoint`; an
            unreadable remote file is a ``ValueError`` too.
    """
    import pyarrow.fs as pafs

    from munet.checkpoint.state import STATE_FILE, load_checkpoint

    if "://" not in folder:
        return load_checkpoint(folder)
    fs, base = pafs.FileSystem.from_uri(folder)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with fs.open_input_stream(f"{base.rstrip('/')}/{STATE_FILE}") as source:
                (Path(tmp) / STATE_FILE).write_bytes(source.read())
        except OSError as exc:
            raise ValueError(f"{folder}/{STATE_FILE} could not be read: {exc}") from exc
        return load_checkpoint(tmp)


def latest_readable_checkpoint(run: str) -> tuple[str, TrainingState] | None:
    """The newest complete checkpoint of ``run`` that loads, with its state; ``None`` when the
    run has no complete checkpoint.

    Newer checkpoints whose ``state.pt`` is truncated or unreadable are skipped with a warning
    naming each, and the one used is then named too.

    Raises:
        NoUsableCheckpointError: every complete checkpoint is unreadable (each is named).
    """
    from munet.checkpoint.state import STATE_FILE

    skipped: list[str] = []
    for folder in reversed(complete_checkpoints(run)):
        try:
            state = read_checkpoint(folder)
        except (OSError, ValueError) as exc:
            log.warning("skipping checkpoint %s: its %s is truncated or unreadable (%s)", folder, STATE_FILE, exc)
            skipped.append(folder)
            continue
        if skipped:
            log.warning(
                "resuming from %s (step %d), the newest readable checkpoint; skipped %d newer unreadable "
                "checkpoint(s): %s",
                folder,
                state.step,
                len(skipped),
                ", ".join(skipped),
            )
        return folder, state
    if skipped:
        raise NoUsableCheckpointError(
            f"{run} holds no usable checkpoint: every {STATE_FILE} is truncated or unreadable "
            f"({', '.join(skipped)}). Restore one of them, or start a new run under another --name "
            "(nothing was changed)."
        )
    return None


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder from a checkpoint folder, a ``state.pt`` file, a model file or its
    folder (:mod:`munet.checkpoint.model_file`), or a run folder (its newest complete
    ``checkpoint_*`` by step).

    Raises:
        FileNotFoundError: nothing that looks like a checkpoint at ``path``.
    """
    from munet.checkpoint.model_file import MODEL_FILE
    from munet.checkpoint.state import STATE_FILE

    path = Path(path)
    if path.is_file() or (path / STATE_FILE).is_file() or (path / MODEL_FILE).is_file():
        return path
    newest = latest_checkpoint(str(path)) if path.is_dir() else None
    if newest is None:
        raise FileNotFoundError(
            f"No checkpoint at {path}: give a checkpoint folder (holding state.pt), a model folder written by "
            "`munet export` (holding model.safetensors) or a run folder written by jobs/train.py (holding "
            "checkpoint_* folders)."
        )
    return Path(newest)
