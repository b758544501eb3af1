"""Writing converted samples into a shard folder, one *unit* (sequence, subject, camera) at a time,
so that an interrupted or partly failed conversion continues where it stopped.

A converter splits its data set into units; each unit is the ``subject`` part of its samples'
keys (``{source}/{unit}/{view}``), so the keys of one unit form one contiguous range and its
shards (``shard-{unit}-{k:04d}.tar``, written by :class:`~munet.data.shards.ShardWriter`, each
whole or absent) never overlap another unit's. The output is an ordinary shard folder:
``manifest.json`` lists the shards in key order with their SHA-256, and ``munet data check``
validates it.

Continuing: while a conversion runs, ``conversion.json`` (:data:`PROGRESS_NAME`) records its
settings and each unit completed with its shards and counts; the manifest is written at the end of
every run (also when some units failed: it describes what was converted) and records the same
units in its ``generator`` field. A re-run with the same settings keeps every recorded unit whose
shards still have their recorded size and SHA-256 and converts only the others (units that failed
are tried again); other settings are an error unless ``overwrite``.

Failures: a unit that cannot be converted (unreadable annotation file, missing video …) raises
:class:`UnitError` from its converter; it is reported (file, unit, reason), its partial shards are
deleted, and the run goes on with the next unit. A frame that cannot be used is a :class:`Skip`
(counted per reason, the first few listed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from munet.data.schema import SampleRecord, encode_sample
from munet.data.shards import MANIFEST_NAME, Manifest, ShardError, ShardInfo, ShardStore

log = logging.getLogger(__name__)

PROGRESS_NAME = "conversion.json"
"""Written while a conversion runs: its settings and the units completed (see the module docstring)."""

EXAMPLES_PER_REASON = 5
"""How many skipped frames are listed per reason in a report (all are counted)."""


class ConvertError(RuntimeError):
    """Input that cannot be converted at all (empty root, missing body models …); the message names
    the file or folder and what was expected."""


class UnitError(ConvertError):
    """One unit that cannot be converted; the run reports it and goes on.

    Attributes:
        file: the file at fault.
        reason: what is wrong with it.
    """

    def __init__(self, file: str, reason: str):
        super().__init__(f"{file}: {reason}")
        self.file = str(file)
        self.reason = reason


@dataclass(frozen=True)
class Skip:
    """A frame left out: yielded by a unit's converter in place of a sample.

    Attributes:
        key: the sample key (or frame id) it would have had.
        reason: short, countable reason (e.g. ``camera pose invalid``).
        file: the file concerned, when there is one.
    """

    key: str
    reason: str
    file: str = ""


@dataclass(frozen=True)
class Unit:
    """One independently converted part of a data set.

    Attributes:
        name: the ``subject`` part of its samples' keys (no ``/``, ``.`` or whitespace).
        source: the file (or folder) it is read from, for messages.
        payload: whatever its converter needs (paths, indices), not recorded.
    """

    name: str
    source: str
    payload: Any = None


@dataclass
class ConvertReport:
    """Outcome of one conversion run.

    Attributes:
        dataset: ``3dpw``, ``h36m`` or ``3dhp``.
        out: the output folder.
        converted: samples written by this run.
        kept: samples of units an earlier run completed (not converted again).
        skipped: frames skipped by this run, per reason.
        examples: up to :data:`EXAMPLES_PER_REASON` ``(file, key, reason)`` per skip reason.
        failed: ``(file, unit, reason)`` of each unit that could not be converted.
        manifest: the manifest written (``None`` when nothing at all was converted).
    """

    dataset: str
    out: str
    converted: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: list[tuple[str, str, str]] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    manifest: Manifest | None = None

    @property
    def num_skipped(self) -> int:
        """Frames skipped, all reasons."""
        return sum(self.skipped.values())

    def summary(self) -> str:
        """Human-readable report: counts, skip reasons with examples, failed units."""
        total = self.manifest.num_samples if self.manifest is not None else 0
        lines = [
            f"{self.dataset} → {self.out}: {self.converted} samples converted"
            + (f", {self.kept} kept from an earlier run" if self.kept else "")
            + f", {self.num_skipped} frames skipped, {len(self.failed)} units failed; "
            f"the folder holds {total} samples"
        ]
        for reason, count in sorted(self.skipped.items()):
            lines.append(f"  skipped {count}: {reason}")
            lines += [
                f"    e.g. {key} ({file})" if file else f"    e.g. {key}"
                for file, key, r in self.examples
                if r == reason
            ]
        lines += [f"  failed unit {unit}: {file}: {reason}" for file, unit, reason in self.failed]
        return "\n".join(lines)


UnitConverter = Callable[[Unit], Iterable[SampleRecord | Skip]]
"""Converts one unit: yields its samples in strictly increasing key order, and skips."""


def _is_shard_of(name: str, unit: str) -> bool:
    prefix = f"shard-{unit}-"
    return name.startswith(prefix) and name[len(prefix) :].split(".", 1)[0].isdigit()


def unit_shard_name(unit: str, index: int) -> str:
    """File name of shard ``index`` of unit ``unit``: ``shard-{unit}-{index:04d}.tar``."""
    return f"shard-{unit}-{index:04d}.tar"


class _Progress:
    """The units completed so far in one output folder, and the settings they were made with."""

    def __init__(self, store: ShardStore, settings: dict[str, Any]):
        self.store = store
        self.settings = json.loads(json.dumps(settings))  # as the JSON files hold it
        self.units: dict[str, dict[str, Any]] = {}

    @classmethod
    def start(cls, out: str, settings: dict[str, Any], overwrite: bool) -> _Progress:
        progress = cls(ShardStore(out), settings)
        store = progress.store
        names = store.list_names()
        if overwrite:
            store.delete(MANIFEST_NAME)  # first: no reader may take the folder for a whole set
            store.delete(PROGRESS_NAME)
            for name in names:
                if name.startswith("shard-") and ".tar" in name:
                    store.delete(name)
            return progress
        recorded: list[tuple[str, dict[str, Any]]] = []
        if MANIFEST_NAME in names:
            try:
                generator = json.loads(store.read_bytes(MANIFEST_NAME)).get("generator") or {}
            except (ValueError, ShardError) as exc:
                raise FileExistsError(f"{store.uri(MANIFEST_NAME)} is unreadable ({exc!r}); pass --overwrite") from exc
            if "conversion" not in generator:
                raise FileExistsError(
                    f"{out} already holds a {MANIFEST_NAME} not written by `munet convert`; choose another "
                    "output or pass --overwrite to replace it"
                )
            recorded.append((store.uri(MANIFEST_NAME), generator))
        if PROGRESS_NAME in names:
            try:
                recorded.append((store.uri(PROGRESS_NAME), json.loads(store.read_bytes(PROGRESS_NAME))))
            except (ValueError, ShardError) as exc:
                raise FileExistsError(f"{store.uri(PROGRESS_NAME)} is unreadable ({exc!r}); pass --overwrite") from exc
        for where, record in recorded:
            if record.get("conversion") != progress.settings:
                raise FileExistsError(
                    f"{out} holds a conversion with other settings ({where}: {record.get('conversion')}, now "
                    f"{progress.settings}); re-run with those settings to continue it, choose another output, "
                    "or pass --overwrite to start over"
                )
            progress.units.update(record.get("units") or {})
        progress._verify()
        return progress

    def _verify(self) -> None:
        """Drop recorded units whose shards are missing or changed (they are converted again)."""
        for unit, entry in list(self.units.items()):
            for info in entry["shards"]:
                try:
                    data = self.store.read_bytes(info["name"])
                except ShardError:
                    data = None
                if (
                    data is None
                    or len(data) != info["size_bytes"]
                    or hashlib.sha256(data).hexdigest() != info["sha256"]
                ):
                    log.warning(
                        "%s is missing or changed: converting unit %s again", self.store.uri(info["name"]), unit
                    )
                    del self.units[unit]
                    break

    def add(self, unit: str, shards: list[ShardInfo], converted: int, skipped: Counter) -> None:
        self.units[unit] = {
            "shards": [dataclasses.asdict(info) for info in shards],
            "converted": converted,
            "skipped": dict(skipped),
        }
        self.store.write_bytes(PROGRESS_NAME, json.dumps(self.record(), indent=1).encode())

    def record(self) -> dict[str, Any]:
        return {"conversion": self.settings, "units": self.units}

    def finish(self, failed: list[tuple[str, str, str]]) -> Manifest | None:
        shards = [ShardInfo(**info) for entry in self.units.values() for info in entry["shards"]]
        if not shards:
            return None
        shards.sort(key=lambda info: info.first_key)
        manifest = Manifest(shards=shards, generator={**self.record(), "failed_units": [list(f) for f in failed]})
        self.store.write_manifest(manifest)
        self.store.delete(PROGRESS_NAME)
        return manifest


def write_units(
    out: str,
    dataset: str,
    settings: dict[str, Any],
    units: Sequence[Unit],
    convert_unit: UnitConverter,
    *,
    samples_per_shard: int = 256,
    overwrite: bool = False,
    workers: int = 0,
) -> ConvertReport:
    """Convert every unit not already in ``out`` and write the manifest.

    Args:
        out: output folder or URI.
        dataset: the data set's name (for the report).
        settings: what determines the samples (JSON-ready; a re-run must give the same to continue).
        units: the units, each converted by ``convert_unit`` into its own shards.
        convert_unit: yields a unit's samples in strictly increasing key order, and :class:`Skip`
            for frames left out; raises :class:`UnitError` for a unit it cannot convert.
        samples_per_shard: most samples per shard.
        overwrite: delete the folder's manifest, progress record and shards first.
        workers: convert this many units at once as Ray tasks (one CPU each) on the Ray cluster
            this process is connected to (``out`` must then be reachable from every node: an
            object store or a shared folder); 0: one after another in this process. Each unit's
            shards are its own, so the result is the same either way; the progress record is kept
            by this process as units finish.

    Returns:
        The report; its ``manifest`` is ``None`` when no sample at all could be converted.

    Raises:
        FileExistsError: ``out`` holds another conversion or other shards (without ``overwrite``).
    """
    if samples_per_shard <= 0:
        raise ValueError(f"samples_per_shard must be positive, got {samples_per_shard}")
    names = [unit.name for unit in units]
    if len(set(names)) != len(names):
        raise ValueError(f"unit names must be unique, got duplicates in {names}")
    settings = {"dataset": dataset, **settings}
    progress = _Progress.start(out, settings, overwrite)
    report = ConvertReport(dataset=dataset, out=out)
    pending = []
    for unit in units:
        if unit.name in progress.units:
            report.kept += int(progress.units[unit.name]["converted"])
        else:
            pending.append(unit)
    location = progress.store.location
    if workers > 0:
        outcomes = _on_ray(location, pending, convert_unit, samples_per_shard, workers)
    else:
        outcomes = ((unit, _convert_unit(location, unit, convert_unit, samples_per_shard)) for unit in pending)
    for unit, outcome in outcomes:
        if isinstance(outcome, UnitFailure):
            report.failed.append((outcome.file, unit.name, outcome.reason))
            log.warning("unit %s failed: %s: %s", unit.name, outcome.file, outcome.reason)
            continue
        report.converted += outcome.converted
        report.skipped.update(outcome.skipped)
        for example in outcome.examples:
            if sum(1 for e in report.examples if e[2] == example[2]) < EXAMPLES_PER_REASON:
                report.examples.append(example)
        progress.add(
            unit.name, outcome.shards, outcome.converted, outcome.skipped
        )  # also a unit with every frame skipped
        log.info("unit %s: %d samples, %d frames skipped", unit.name, outcome.converted, sum(outcome.skipped.values()))
    report.manifest = progress.finish(report.failed)
    return report


@dataclass
class UnitResult:
    """What converting one unit wrote: its shards, the samples in them, the frames skipped (per
    reason) and a few skipped frames as ``(file, key, reason)``."""

    shards: list[ShardInfo]
    converted: int
    skipped: Counter
    examples: list[tuple[str, str, str]]


@dataclass(frozen=True)
class UnitFailure:
    """A unit that could not be converted (from its :class:`UnitError`)."""

    file: str
    reason: str


def _convert_unit(
    location: str, unit: Unit, convert_unit: UnitConverter, samples_per_shard: int
) -> UnitResult | UnitFailure:
    """Convert one unit into its shards in ``location`` (in this process or a Ray task)."""
    try:
        return _write_unit(ShardStore(location), unit, convert_unit(unit), samples_per_shard)
    except UnitError as exc:
        return UnitFailure(exc.file, exc.reason)


def _on_ray(
    location: str, units: Sequence[Unit], convert_unit: UnitConverter, samples_per_shard: int, workers: int
) -> Iterator[tuple[Unit, UnitResult | UnitFailure]]:
    """The units converted by Ray tasks, at most ``workers`` at a time, as they finish."""
    import ray

    task = ray.remote(num_cpus=1)(_convert_unit)
    function = ray.put(convert_unit)  # shipped once, not with every task
    queue = list(units)
    running: dict[Any, Unit] = {}
    while queue or running:
        while queue and len(running) < workers:
            unit = queue.pop(0)
            running[task.remote(location, unit, function, samples_per_shard)] = unit
        done, _ = ray.wait(list(running), num_returns=1)
        unit = running.pop(done[0])
        yield unit, ray.get(done[0])


def _write_unit(
    store: ShardStore, unit: Unit, items: Iterable[SampleRecord | Skip], samples_per_shard: int
) -> UnitResult:
    """Write one unit's samples into its shards; on :class:`UnitError` delete what it wrote."""
    for name in store.list_names():  # shards a crashed run left of this unit
        if _is_shard_of(name, unit.name):
            store.delete(name)
    result = UnitResult(shards=[], converted=0, skipped=Counter(), examples=[])
    iterator: Iterator[SampleRecord | Skip] = iter(items)
    try:
        while True:
            batch: list[SampleRecord] = []
            for item in iterator:
                if isinstance(item, Skip):
                    result.skipped[item.reason] += 1
                    if result.skipped[item.reason] <= EXAMPLES_PER_REASON:
                        result.examples.append((item.file, item.key, item.reason))
                    continue
                batch.append(item)
                if len(batch) == samples_per_shard:
                    break
            if not batch:
                break
            with store.writer(unit_shard_name(unit.name, len(result.shards))) as writer:
                for record in batch:
                    writer.write(record.key, encode_sample(record))
            result.shards.append(writer.info)
            result.converted += len(batch)
    except UnitError:
        for info in result.shards:
            store.delete(info.name)
        raise
    return result
