"""Run storage on a local folder or an object store (``s3://``, ``gs://``, …) through pyarrow."""

from __future__ import annotations

from pathlib import Path


def storage_root(out: str) -> str:
    """The ``storage_path`` Ray Train needs: an absolute local path or an unchanged URI."""
    if "://" in out:
        return out
    return str(Path(out).expanduser().resolve())


def run_has_checkpoints(out: str, name: str) -> bool:
    """Whether ``out/name`` already holds a Ray Train checkpoint folder."""
    import pyarrow.fs as pafs

    root = storage_root(out)
    if "://" in root:
        fs, base = pafs.FileSystem.from_uri(root)
    else:
        fs, base = pafs.LocalFileSystem(), root
    selector = pafs.FileSelector(f"{base.rstrip('/')}/{name}", allow_not_found=True)
    return any(
        info.type == pafs.FileType.Directory and info.base_name.startswith("checkpoint_")
        for info in fs.get_file_info(selector)
    )
