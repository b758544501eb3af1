"""Validate a shard folder against its manifest: ``munet data check DIR_OR_URI``.

Checks, for every shard the manifest lists: the file exists, its size and SHA-256 match, its tar
reads to the end, keys are in strictly increasing order with each sample's members contiguous, the
first/last keys and sample count match, and every sample decodes with the current schema version
with every float array finite (no NaN or inf). Problems name the shard and the sample key.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field

from munet.data.schema import SchemaError, decode_record
from munet.data.shards import MANIFEST_NAME, ShardError, ShardInfo, ShardStore, iter_tar_samples


@dataclass
class CheckReport:
    """Outcome of :func:`check_shards`.

    Attributes:
        location: the folder checked.
        shards: shards listed by the manifest.
        samples: samples read and decoded successfully.
        problems: one line per problem found (empty when everything is fine).
        notes: harmless findings (e.g. leftover ``*.partial-*`` files of an interrupted job).
    """

    location: str
    shards: int = 0
    samples: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def summary(self) -> str:
        """Human-readable report."""
        status = "OK" if self.ok else f"{len(self.problems)} PROBLEM(S)"
        lines = [f"{self.location}: {self.shards} shards, {self.samples} good samples: {status}"]
        lines += [f"  problem: {p}" for p in self.problems]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _check_shard(store: ShardStore, expected: ShardInfo, report: CheckReport) -> None:
    """Add the problems of one shard to ``report``."""
    try:
        data = store.read_bytes(expected.name)
    except ShardError as exc:
        report.problems.append(str(exc))
        return
    path = store.uri(expected.name)
    if len(data) != expected.size_bytes:
        report.problems.append(f"{path}: {len(data)} bytes, manifest says {expected.size_bytes}")
    if hashlib.sha256(data).hexdigest() != expected.sha256:
        report.problems.append(f"{path}: SHA-256 differs from the manifest")
    keys = []
    try:
        for raw in iter_tar_samples(io.BytesIO(data), path, store.location):
            keys.append(raw["__key__"])
            try:
                decode_record(raw)
                report.samples += 1
            except SchemaError as exc:
                report.problems.append(str(exc))
    except ShardError as exc:
        report.problems.append(str(exc))
    if len(keys) != expected.num_samples:
        report.problems.append(f"{path}: {len(keys)} samples, manifest says {expected.num_samples}")
    elif keys and (keys[0], keys[-1]) != (expected.first_key, expected.last_key):
        report.problems.append(
            f"{path}: keys {keys[0]}..{keys[-1]}, manifest says {expected.first_key}..{expected.last_key}"
        )


def check_shards(location: str) -> CheckReport:
    """Validate every shard of the folder at ``location`` (see the module docstring)."""
    report = CheckReport(location=location)
    store = ShardStore(location)
    try:
        manifest = store.read_manifest()
    except ShardError as exc:
        report.problems.append(str(exc))
        return report
    report.shards = len(manifest.shards)
    names = [shard.name for shard in manifest.shards]
    if len(set(names)) != len(names):
        report.problems.append(f"{MANIFEST_NAME} lists a shard twice")
    for shard in manifest.shards:
        _check_shard(store, shard, report)
    ranges = [(shard.first_key, shard.last_key) for shard in manifest.shards]
    if any(prev[1] >= cur[0] for prev, cur in zip(ranges, ranges[1:])):
        report.problems.append("shards overlap in key range or are not in key order")
    leftovers = [name for name in store.list_names() if ".partial-" in name]
    if leftovers:
        report.notes.append(
            f"{len(leftovers)} leftover partial file(s) of an interrupted job (safe to delete): "
            + ", ".join(leftovers[:5])
        )
    return report
