"""Run storage on a local folder or an object store (``s3://``, ``gs://``, …) through pyarrow.

A run lives in ``out/name``; Ray Train writes its checkpoints there as folders named by
:func:`checkpoint_dir_name` (``checkpoint_00000120`` for step 120), each holding ``state.pt``.
"""

from __future__ import annotations

from pathlib import Path

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
    suffix = name[len(CHECKPOINT_PREFIX):]
    return int(suffix) if name.startswith(CHECKPOINT_PREFIX) and suffix.isdigit() else None


def _run_listing(run: str) -> tuple[object, str, list]:
    import pyarrow.fs as pafs

    root = storage_root(run)
    if "://" in root:
        fs, base = pafs.FileSystem.from_uri(root)
    else:
        fs, base = pafs.LocalFileSystem(), root
    folders = [
        info for info in fs.get_file_info(pafs.FileSelector(base.rstrip("/"), allow_not_found=True))
        if info.type == pafs.FileType.Directory and info.base_name.startswith(CHECKPOINT_PREFIX)
    ]
    return fs, root, folders


def run_has_checkpoints(out: str, name: str) -> bool:
    """Whether ``out/name`` already holds a checkpoint folder (complete or not)."""
    return bool(_run_listing(f"{out.rstrip('/')}/{name}")[2])


def complete_checkpoints(run: str) -> list[str]:
    """The complete checkpoint folders (holding ``state.pt``) of the run folder or URI ``run``,
    oldest first by step (folders of other names first, by name). Paths keep ``run``'s scheme."""
    import pyarrow.fs as pafs

    fs, root, folders = _run_listing(run)
    complete = [
        info.base_name for info in folders
        if fs.get_file_info(f"{info.path}/state.pt").type == pafs.FileType.File
    ]
    complete.sort(key=lambda name: (checkpoint_step(name) is not None, checkpoint_step(name) or 0, name))
    return [f"{root.rstrip('/')}/{name}" for name in complete]


def latest_checkpoint(run: str) -> str | None:
    """The newest complete checkpoint of the run folder or URI ``run``, or ``None``."""
    found = complete_checkpoints(run)
    return found[-1] if found else None
