"""WebDataset shards on local disks and object stores: writing, listing and reading.

A shard folder (a local path or any URI pyarrow understands: ``file://``, ``s3://``, ``gs://``,
``hdfs://``…) holds ``shard-000000.tar`` … and a ``manifest.json`` with the sample count, size and
SHA-256 of every shard, the schema version, the generator settings and the seed.

Guarantees of :class:`ShardWriter`:

- samples go into the tar in strictly increasing key order, each sample's members contiguous (Ray's
  ``read_webdataset`` silently splits samples whose members are not adjacent);
- a shard is written under a temporary name and renamed when complete, so a shard under its final
  name is always whole, even if the writing process dies (a crash leaves at most a
  ``*.partial-*`` file, which no reader lists);
- the bytes are deterministic (fixed tar metadata), so equal samples give equal checksums.

Readers list shards from the manifest, never by globbing the folder, and check every shard's bytes
against the manifest's size and SHA-256 each time they read it (:func:`verify_shard`: hashing
costs about 1 ms per MB, far less than decoding the samples), so a damaged or swapped shard is a
:class:`CorruptShardError` naming it, never silently wrong samples.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import posixpath
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import pyarrow.fs as pafs

from munet.data.schema import SCHEMA_VERSION, BadSampleError

MANIFEST_NAME = "manifest.json"
PROGRESS_NAME = "generation.json"
"""Written by the generation job while it runs (see :mod:`munet.data.generate`); never read as data."""


class ShardError(RuntimeError):
    """A shard folder, shard or sample that cannot be read (the message names which)."""


class CorruptShardError(ShardError, BadSampleError):
    """A shard whose bytes are wrong: missing, truncated, changed since the manifest was written
    (size or SHA-256 differ), or not a readable WebDataset tar. Fails the same way on every read
    (a :class:`~munet.data.schema.BadSampleError`): regenerate or restore the shard."""


def fix_hint(location: str) -> str:
    """What to do about a bad shard in folder ``location`` (the end of every such message)."""
    return (
        f"regenerate the shards (jobs/make_shards.py) or restore the file, run "
        f"`python -m munet.data check {location}` to list every bad shard and sample, or set "
        "data.on_bad_sample: skip to leave bad data out"
    )


def shard_name(index: int) -> str:
    """File name of shard ``index``: ``shard-000042.tar``."""
    return f"shard-{index:06d}.tar"


@dataclass(frozen=True)
class ShardInfo:
    """What the manifest records about one shard."""

    name: str
    num_samples: int
    sha256: str
    size_bytes: int
    first_key: str
    last_key: str


@dataclass
class Manifest:
    """The index of a shard folder.

    Attributes:
        shards: one entry per shard, in name order.
        schema_version: the sample schema the shards follow.
        generator: settings of the job that wrote the shards (free-form, JSON-ready).
        seed: the seed the shards were generated from, if any.
    """

    shards: list[ShardInfo]
    schema_version: int = SCHEMA_VERSION
    generator: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None

    @property
    def num_samples(self) -> int:
        """Total number of samples over all shards."""
        return sum(shard.num_samples for shard in self.shards)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``manifest.json`` holds)."""
        return {
            "schema_version": self.schema_version,
            "num_samples": self.num_samples,
            "seed": self.seed,
            "generator": self.generator,
            "shards": [dataclasses.asdict(shard) for shard in self.shards],
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Manifest:
        """Inverse of :meth:`to_dict`."""
        return cls(
            shards=[ShardInfo(**shard) for shard in values["shards"]],
            schema_version=int(values["schema_version"]),
            generator=dict(values.get("generator") or {}),
            seed=values.get("seed"),
        )


class _HashingWriter:
    """File-like wrapper that hashes and counts the bytes written through it."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        self._stream.write(data)
        return len(data)

    def tell(self) -> int:
        return self.size


class ShardStore:
    """A shard folder: a local path or an object-store URI, opened through pyarrow.

    Args:
        location: ``/abs/or/relative/dir``, ``file:///dir``, ``s3://bucket/prefix`` …
    """

    def __init__(self, location: str | os.PathLike):
        location = os.fspath(location)
        self.location = location
        if "://" in location:
            self.fs, self.root = pafs.FileSystem.from_uri(location)
        else:
            self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(location)

    def path(self, name: str) -> str:
        """Filesystem path of file ``name`` inside the folder."""
        return posixpath.join(self.root, name)

    def uri(self, name: str) -> str:
        """File ``name`` as the user names it: a local path, or the folder URI joined with it."""
        if "://" in self.location:
            return f"{self.location.rstrip('/')}/{name}"
        return self.path(name)

    def delete(self, name: str) -> bool:
        """Delete file ``name``; False when it did not exist."""
        try:
            self.fs.delete_file(self.path(name))
        except FileNotFoundError:
            return False
        return True

    def writer(self, name: str) -> ShardWriter:
        """A :class:`ShardWriter` for shard ``name`` in this folder."""
        return ShardWriter(self, name)

    def exists(self, name: str) -> bool:
        """Whether file ``name`` exists in the folder."""
        return self.fs.get_file_info(self.path(name)).type == pafs.FileType.File

    def size(self, name: str) -> int | None:
        """Size of file ``name`` in bytes, ``None`` if it does not exist."""
        info = self.fs.get_file_info(self.path(name))
        return info.size if info.type == pafs.FileType.File else None

    def list_names(self) -> list[str]:
        """Names of the files directly in the folder (empty when it does not exist)."""
        return sorted(self.sizes())

    def sizes(self) -> dict[str, int]:
        """``{name: bytes}`` of the files directly in the folder, from one listing request (empty
        when the folder does not exist)."""
        selector = pafs.FileSelector(self.root, recursive=False, allow_not_found=True)
        return {
            info.base_name: info.size for info in self.fs.get_file_info(selector) if info.type == pafs.FileType.File
        }

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write a whole file atomically (temporary name, then rename)."""
        self.fs.create_dir(self.root, recursive=True)
        temporary = self.path(f"{name}.partial-{uuid.uuid4().hex[:8]}")
        with self.fs.open_output_stream(temporary) as stream:
            stream.write(data)
        self.fs.move(temporary, self.path(name))

    def read_bytes(self, name: str) -> bytes:
        """The whole content of file ``name``.

        Raises:
            ShardError: the file does not exist.
        """
        try:
            with self.fs.open_input_stream(self.path(name)) as stream:
                return stream.readall()
        except FileNotFoundError as exc:
            raise ShardError(f"{self.location}: {name} does not exist") from exc

    def write_manifest(self, manifest: Manifest) -> None:
        """Write ``manifest.json`` (atomically)."""
        self.write_bytes(MANIFEST_NAME, json.dumps(manifest.to_dict(), indent=1).encode())

    def read_manifest(self) -> Manifest:
        """Read ``manifest.json``.

        Raises:
            ShardError: no manifest (not a shard folder, or generation did not finish), an
                unreadable one, or one written for another schema version.
        """
        if not self.exists(MANIFEST_NAME):
            if self.exists(PROGRESS_NAME):
                raise ShardError(
                    f"{self.location} has no {MANIFEST_NAME}: the jobs/make_shards.py run writing "
                    "it did not finish. Re-run it with the same settings to continue from the "
                    "shards already written (or with --overwrite to start over)."
                )
            raise ShardError(
                f"{self.location} has no {MANIFEST_NAME}: it is not a MuNet shard folder, or the "
                "job writing it did not finish. Generate shards with jobs/make_shards.py."
            )
        try:
            manifest = Manifest.from_dict(json.loads(self.read_bytes(MANIFEST_NAME)))
        except (ValueError, KeyError, TypeError) as exc:
            raise ShardError(f"{self.path(MANIFEST_NAME)} is not a valid manifest ({exc!r})") from exc
        if manifest.schema_version != SCHEMA_VERSION:
            raise ShardError(
                f"{self.location} holds schema version {manifest.schema_version}; this code reads "
                f"version {SCHEMA_VERSION}. Regenerate the shards or use a matching munet version."
            )
        return manifest

    def read_shard(self, shard: ShardInfo) -> bytes:
        """The bytes of one shard, checked against the manifest entry ``shard``.

        Raises:
            CorruptShardError: the file is missing, or its size or SHA-256 differs.
        """
        try:
            data = self.read_bytes(shard.name)
        except ShardError as exc:
            raise CorruptShardError(
                f"shard {self.uri(shard.name)} is listed in the manifest but missing; " + fix_hint(self.location)
            ) from exc
        verify_shard(data, shard, self.uri(shard.name), self.location)
        return data

    def iter_shard(self, shard: str | ShardInfo) -> Iterator[dict[str, Any]]:
        """The raw samples of one shard, in order (see :func:`iter_tar_samples`).

        Args:
            shard: a manifest entry, whose size and SHA-256 are checked before any sample is
                yielded (:meth:`read_shard`); or a bare file name, read unchecked.
        """
        if isinstance(shard, ShardInfo):
            data, name = self.read_shard(shard), shard.name
        else:
            data, name = self.read_bytes(shard), shard
        yield from iter_tar_samples(io.BytesIO(data), self.uri(name), self.location)


class ShardWriter:
    """Writes one shard: use as a context manager, call :meth:`write` per sample.

    On a clean exit the shard is renamed to its final name and :attr:`info` describes it; if the
    block raises, the temporary file is deleted and nothing appears under the final name.

    >>> with store.writer("shard-000000.tar") as writer:
    ...     writer.write("synthetic/0000000/00", members)
    """

    def __init__(self, store: ShardStore, name: str):
        self.store = store
        self.name = name
        self.info: ShardInfo | None = None
        self._temporary = store.path(f"{name}.partial-{uuid.uuid4().hex[:8]}")
        self._keys: list[str] = []
        self._stream = None
        self._hasher: _HashingWriter | None = None
        self._tar: tarfile.TarFile | None = None

    def __enter__(self) -> ShardWriter:
        self.store.fs.create_dir(self.store.root, recursive=True)
        self._stream = self.store.fs.open_output_stream(self._temporary)
        self._hasher = _HashingWriter(self._stream)
        self._tar = tarfile.open(fileobj=self._hasher, mode="w", format=tarfile.PAX_FORMAT)
        return self

    def write(self, key: str, members: dict[str, bytes]) -> None:
        """Append one sample.

        Args:
            key: the sample key; must sort after every key written before.
            members: ``{member name: bytes}`` (e.g. ``image.jpg``); written in name order.

        Raises:
            ValueError: keys out of order, or a key with a dot in its base name.
        """
        if self._tar is None:
            raise RuntimeError("ShardWriter.write called outside its `with` block")
        if self._keys and key <= self._keys[-1]:
            raise ValueError(
                f"{self.name}: key {key!r} written after {self._keys[-1]!r}; shards must be "
                "written in strictly increasing key order"
            )
        if "." in posixpath.basename(key):
            raise ValueError(f"key {key!r}: the base name must not contain '.'")
        for member in sorted(members):
            data = members[member]
            info = tarfile.TarInfo(f"{key}.{member}")
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            self._tar.addfile(info, io.BytesIO(data))
        self._keys.append(key)

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is not None:
            self._abort()
            return
        try:
            self._tar.close()
            self._stream.close()
            if not self._keys:
                raise ValueError(f"{self.name}: refusing to write an empty shard")
            self.store.fs.move(self._temporary, self.store.path(self.name))
        except BaseException:
            self._abort()
            raise
        self.info = ShardInfo(
            name=self.name,
            num_samples=len(self._keys),
            sha256=self._hasher.sha256.hexdigest(),
            size_bytes=self._hasher.size,
            first_key=self._keys[0],
            last_key=self._keys[-1],
        )

    def _abort(self) -> None:
        """Drop the temporary file (best effort: the final name is never touched)."""
        try:
            if not self._stream.closed:
                self._stream.close()
        finally:
            try:
                self.store.fs.delete_file(self._temporary)
            except FileNotFoundError:
                pass


def verify_shard(data: bytes, shard: ShardInfo, url: str, location: str | None = None) -> None:
    """Check a shard's bytes against its manifest entry.

    Args:
        data: the whole shard file.
        shard: its manifest entry (size and SHA-256).
        url: the shard's path or URI, for the message.
        location: its folder, for the message's ``munet.data check`` command.

    Raises:
        CorruptShardError: the size or the SHA-256 differs (truncated, damaged or replaced).
    """
    hint = fix_hint(location or posixpath.dirname(url))
    if len(data) != shard.size_bytes:
        raise CorruptShardError(
            f"shard {url} has {len(data)} bytes, the manifest says {shard.size_bytes} (truncated or rewritten); {hint}"
        )
    if hashlib.sha256(data).hexdigest() != shard.sha256:
        raise CorruptShardError(
            f"shard {url}: SHA-256 differs from the manifest (the file changed after it was "
            f"written: a damaged disk or copy, or an edit); {hint}"
        )


def _split_member(name: str) -> tuple[str, str]:
    """``("a/b/c", "image.jpg")`` from ``"a/b/c.image.jpg"`` (WebDataset's rule)."""
    directory, base = posixpath.split(name)
    stem, dot, suffix = base.partition(".")
    if not dot or not stem:
        return "", ""
    return posixpath.join(directory, stem), suffix


def iter_tar_samples(fileobj: BinaryIO, url: str, location: str | None = None) -> Iterator[dict[str, Any]]:
    """Group the members of a WebDataset tar into raw samples.

    The tar is parsed as a stream of untrusted bytes: only regular-file members are read (into
    memory, never onto disk), and any parser failure becomes a :class:`CorruptShardError`.

    Args:
        fileobj: the tar, read sequentially.
        url: the shard's path or URI (for ``__url__`` and messages).
        location: its folder, for the messages' ``munet.data check`` command.

    Yields:
        ``{"__key__": key, "__url__": url, member name: bytes, ...}`` per sample, in tar order.

    Raises:
        CorruptShardError: a truncated or corrupt tar, a member without a key, a sample whose
            members are not contiguous, or keys out of order; the message names the shard and the
            last sample read.
    """
    hint = fix_hint(location or posixpath.dirname(url))
    current: dict[str, Any] | None = None
    done: str | None = None  # key of the last sample yielded
    seen: set[str] = set()

    def corrupt(exc: BaseException) -> CorruptShardError:
        where = f"after sample {done!r}" if done is not None else "before the end of its first sample"
        return CorruptShardError(f"shard {url} is truncated or corrupt {where} ({exc!r}); {hint}")

    # The tar parser meets damaged bytes with many error types (a damaged size field may even ask
    # for an absurd allocation): every one of them means the same to the reader.
    try:
        archive = tarfile.open(fileobj=fileobj, mode="r|")
    except Exception as exc:  # noqa: BLE001 (MemoryError included)
        raise corrupt(exc) from exc
    try:
        members = iter(archive)
        while True:
            try:
                info = next(members, None)
            except Exception as exc:  # noqa: BLE001
                raise corrupt(exc) from exc
            if info is None:
                break
            if not info.isfile():
                continue
            key, member = _split_member(info.name)
            if not key:
                raise CorruptShardError(f"shard {url}: member {info.name!r} has no key.suffix name; {hint}")
            if current is None or key != current["__key__"]:
                if key in seen or (current is not None and key < current["__key__"]):
                    raise CorruptShardError(
                        f"shard {url}: sample {key!r} is out of order or its members are not "
                        f"contiguous (shards must be written with ShardWriter); {hint}"
                    )
                if current is not None:
                    yield current
                    done = current["__key__"]
                seen.add(key)
                current = {"__key__": key, "__url__": url}
            try:
                data = archive.extractfile(info).read()
            except Exception as exc:  # noqa: BLE001
                raise corrupt(exc) from exc
            if len(data) != info.size:
                raise corrupt(tarfile.ReadError(f"member {info.name} truncated"))
            current[member] = data
    finally:
        archive.close()
    if current is not None:
        yield current
