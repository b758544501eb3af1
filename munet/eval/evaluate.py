"""Metrics of a trained model on held-out shards.

Body metrics are MPJPE and PVE after aligning the pelvis (COCO-17 hips midpoint) and PA-MPJPE
after a similarity Procrustes, in mm, and the global orientation error in degrees (the angle
between the predicted and true torso frames, :func:`munet.metrics.orientation_error`; its median
is the meaningful summary, as a few front/back confusions dominate the mean). Clothed-surface
metrics follow the ICON protocol (Chamfer = mean of both point-to-surface directions, P2S =
ground-truth samples to the predicted surface, in cm; normal consistency) on
``num_surface_samples`` points per surface, after the same pelvis alignment as PVE: the
predicted clothed mesh is moved by ``gt_pelvis − predicted_pelvis`` so that the depth ambiguity
of a single image does not swamp the shape error. Predictions never see ground truth (no teacher
forcing, no alignment inside the model). With ``fit``, the predictions are fitted to each
sample's person mask first (test-time fitting, :mod:`munet.fit`): the mask is an input then, as
it is for ``munet predict`` on a cut-out.

Samples may hold some targets only (schema v2, e.g. converted real data sets): each metric is
averaged over the samples that hold its target (body metrics: a body mesh of the model's own
topology; clothed metrics: the clothed surface; ``body_on_mask``: the person mask), and the report
gives the count per metric. A sample without a target scores NaN for its metrics.

Benchmark protocols (``protocol`` ``h36m-p2``, ``3dpw``, ``3dhp``; :mod:`munet.metrics.protocols`)
score the joints regressed from the *predicted* body mesh by the user's Human3.6M joint regressor
against each sample's ``eval_joints`` (or, for 3DPW, its gendered SMPL mesh through the same
regressor); no clothed or mask metrics are computed then.

Protocol ``icon`` scores the clothed surface the way ICON and ECON do (:mod:`munet.metrics.icon`):
Chamfer and P2S on 1,000 samples per mesh, ×100 in the normalised frame in which the scan is 1.8
units tall (nominal cm), and ICON's NC from 4 normal renders about the pelvis; every sample must
hold its clothed surface (a scan). The body is predicted from the image (ECON is given the true
body), and the predicted clothed mesh is aligned by the pelvis as in the own protocol.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from munet.body import pelvis
from munet.checkpoint.load import load_trained_model
from munet.data.decode import Decoder, iter_samples
from munet.data.schema import SampleRecord, decode_record
from munet.eval.report import write_report
from munet.fit import FitSettings, SilhouetteFitter, fit_output
from munet.iterutils import chunked
from munet.metrics import (
    BODY_METRICS,
    CLOTH_METRICS,
    METRIC_KEYS,
    chamfer_p2s,
    fraction_on_mask,
    mpjpe,
    orientation_error,
    pa_mpjpe,
    pve,
)
from munet.metrics.icon import ICON_IMAGE_SIZE, ICON_NUM_SAMPLES, icon_surface_metrics, normal_render_error
from munet.metrics.protocols import PROTOCOLS, SMPL_NUM_VERTICES, Protocol, load_joint_regressor
from munet.model import MuNet
from munet.train.step import batch_to_tensors

log = logging.getLogger(__name__)


OWN_PROTOCOL = "own"
"""The ``protocol`` of the default evaluation: this project's own metrics on its own data."""

ICON_PROTOCOL = "icon"
"""The ``protocol`` of the ICON/ECON scoring of the clothed surface against a scan."""

PROTOCOL_CHOICES = (OWN_PROTOCOL, *PROTOCOLS, ICON_PROTOCOL)
"""Every ``protocol`` :func:`evaluate` accepts."""

TARGET_OF_METRIC = {
    **{key: "body_mesh" for key in (*BODY_METRICS, "orientation_deg")},
    **{key: "cloth" for key in (*CLOTH_METRICS, "normal_consistency")},
    "body_on_mask": "mask",
}
"""The target a sample must hold for each metric of :data:`METRIC_KEYS` to be computed on it
(``body_mesh``: of the model's own topology)."""

PREDICTED_BODY = "predicted from the image by the model (not given)"
"""What the benchmark reports say of the scored body."""


ICON_METRICS = ("chamfer_cm", "p2s_cm", "nc")
"""The per-sample metrics of the ``icon`` protocol (lower is better)."""

ICON_STATEMENTS = {
    "surface_sampling": "1,000 samples per mesh, ×100 in the 1.8-unit normalised frame (nominal cm)",
    "alignment": (
        "the predicted clothed mesh moved by true pelvis − predicted pelvis (COCO-17 hips midpoint), "
        "as in the own protocol; no ICP, no scale"
    ),
    "nc_definition": (
        "ICON's NC: normal renders of both meshes from yaw 0/90/180/270° (front, right, back, left) about "
        "the vertical axis through the true pelvis, orthographic (2.048 units per image side, "
        f"{ICON_IMAGE_SIZE}² pixels, smooth vertex normals); mean over all pixels of ‖n_pred − n_gt‖², zero "
        "normal off a mesh (0 best, max 4)"
    ),
    "body": "predicted from the image by the model (not given; ECON is fed the ground-truth body)",
}
"""What the ``icon`` report states of its protocol (besides the samples, views and camera)."""


class ProtocolError(ValueError):
    """A benchmark evaluation that cannot run as asked: no or unfitting joint regressor, an
    unknown protocol, or a sample without the ground truth its protocol needs. The message says
    what is wrong and what is needed."""


EVAL_BATCH_SIZE = 8
"""Samples predicted at once. The surface samples of Chamfer/P2S are drawn per batch from the
same seed, so the clothed metrics of a sample depend (slightly) on the batch it is in."""


@dataclass
class EvalItem:
    """One held-out sample: the model input and the full ground-truth record."""

    inputs: dict[str, np.ndarray]
    record: SampleRecord


def iter_eval_items(data: str, decoder: Decoder) -> Iterator[EvalItem]:
    """Samples of a shard folder/URI in key order, decoded for the model and as full records, read
    by :func:`munet.data.decode.iter_samples` (shards checked against the manifest; bad shards and
    samples follow ``decoder.on_error``)."""

    def item(raw: dict[str, Any]) -> EvalItem:
        return EvalItem(inputs=decoder(raw), record=decode_record(raw))

    return iter_samples(data, decoder, item)


@torch.no_grad()
def predict_batch(
    model: MuNet, items: list[EvalItem], fitter: SilhouetteFitter | None = None
) -> tuple[dict[str, torch.Tensor], Any]:
    """The model's prediction (eval mode, from the image alone) for a batch of held-out samples.

    With a ``fitter``, the predicted meshes are then fitted to each sample's full-resolution
    person mask (:mod:`munet.fit`), as ``munet predict`` does when a mask is known.

    Returns:
        The batch (the decoded-sample contract as tensors on the model's device) and the output.
    """
    device = next(model.parameters()).device
    stacked = {key: np.stack([item.inputs[key] for item in items]) for key in items[0].inputs}
    batch = batch_to_tensors(stacked, device)
    output = model(batch["image"], batch["K"], orthographic=batch.get("orthographic"))
    if fitter is not None:
        K_masks = torch.as_tensor(
            np.stack([item.record.camera.K for item in items]), dtype=torch.float32, device=device
        )
        masks = [item.record.mask for item in items]
        output, _ = fit_output(
            fitter, output, batch["K"], batch["image"].shape[-1], K_masks, masks, batch.get("orthographic")
        )
    return batch, output


@torch.no_grad()
def evaluate_batch(
    model: MuNet, items: list[EvalItem], num_surface_samples: int, seed: int, fitter: SilhouetteFitter | None = None
) -> tuple[list[dict[str, float]], Any]:
    """Per-sample metrics of one batch, and the model output (for pictures); the prediction is
    :func:`predict_batch`'s (fitted to the person masks with a ``fitter``)."""
    device = next(model.parameters()).device
    batch, output = predict_batch(model, items, fitter)
    gt_joints, gt_vertices = batch["body_joints"], batch["body_vertices"]
    pred_root, gt_root = pelvis(output.body_joints), pelvis(gt_joints)
    # Body metrics on the samples with a body mesh of the model's own topology only.
    meshed = torch.nonzero(batch["has_body_mesh"].reshape(-1) > 0.5).reshape(-1)
    body = {key: torch.full((len(items),), float("nan"), device=device) for key in (*BODY_METRICS, "orientation_deg")}
    if len(meshed):
        pred_joints, true_joints = output.body_joints[meshed], gt_joints[meshed]
        body["mpjpe_mm"][meshed] = mpjpe(pred_joints, true_joints)
        body["pa_mpjpe_mm"][meshed] = pa_mpjpe(pred_joints, true_joints)
        body["pve_mm"][meshed] = pve(
            output.body_vertices[meshed], gt_vertices[meshed], pred_root[meshed], gt_root[meshed]
        )
        body["orientation_deg"][meshed] = orientation_error(pred_joints, true_joints)
    # The clothed surface needs the true one (and the true pelvis to align on); a sample without
    # a body mesh of the model's topology is aligned on its COCO joints' pelvis all the same.
    clothed = [i for i, item in enumerate(items) if item.record.cloth is not None]
    surface: dict[str, list[float]] = {
        key: [float("nan")] * len(items) for key in (*CLOTH_METRICS, "normal_consistency")
    }
    if clothed:
        aligned_cloth = output.cloth_vertices + (gt_root - pred_root)[:, None]
        scores = chamfer_p2s(
            [aligned_cloth[i] for i in clothed],
            [output.cloth_faces] * len(clothed),
            [torch.as_tensor(items[i].record.cloth.vertices, dtype=torch.float32, device=device) for i in clothed],
            [torch.as_tensor(items[i].record.cloth.faces.astype(np.int64), device=device) for i in clothed],
            num_samples=num_surface_samples,
            seed=seed,
        )
        for key in surface:
            for position, i in enumerate(clothed):
                surface[key][i] = float(scores[key][position])
    # 2D alignment in the full-resolution render: the decoded K is the render's K resized, and
    # both see the same camera frame.
    on_mask = [
        float("nan")
        if item.record.mask is None
        else fraction_on_mask(vertices, item.record.camera.K, item.record.mask, item.record.camera.orthographic)
        for vertices, item in zip(output.body_vertices.cpu().numpy(), items, strict=True)
    ]
    values = {**body, **surface, "body_on_mask": on_mask}
    rows = [{"key": item.record.key, **{k: float(values[k][i]) for k in METRIC_KEYS}} for i, item in enumerate(items)]
    return rows, output


def summarise(rows: list[dict[str, float]], keys: tuple[str, ...] = METRIC_KEYS) -> dict[str, Any]:
    """Means of the per-sample metrics ``keys`` over the samples where they are finite (under
    the metric's key; ``None`` when no sample has it), their medians (under ``"median"``) and
    the number of samples each was computed on (under ``"count"``)."""
    finite = {key: [r[key] for r in rows if np.isfinite(r[key])] for key in keys}
    return {
        **{key: float(np.mean(v)) if v else None for key, v in finite.items()},
        "median": {key: float(np.median(v)) if v else None for key, v in finite.items()},
        "count": {key: len(v) for key, v in finite.items()},
    }


def resolve_protocol(protocol: str, regressor: str | Path | None, num_vertices: int) -> tuple[Protocol, torch.Tensor]:
    """The benchmark protocol named ``protocol`` and the joint regressor it scores with.

    Args:
        protocol: a key of :data:`munet.metrics.protocols.PROTOCOLS`.
        regressor: the Human3.6M joint regressor file (``J_regressor_h36m.npy``).
        num_vertices: V, vertex count of the model's predicted body mesh.

    Returns:
        The protocol and the ``(17, V)`` float32 regressor.

    Raises:
        ProtocolError: unknown protocol, no regressor, or one that cannot be read or does not fit
            the model's mesh (e.g. the SMPL regressor and an Anny model).
    """
    if protocol not in PROTOCOLS:
        raise ProtocolError(f"unknown protocol {protocol!r}; choose one of {list(PROTOCOL_CHOICES)}")
    if regressor is None:
        raise ProtocolError(
            f"protocol {protocol} scores joints regressed from the predicted SMPL mesh: give the Human3.6M "
            "joint regressor (--regressor J_regressor_h36m.npy, shape (17, 6890))"
        )
    try:
        weights = load_joint_regressor(regressor, num_vertices)
    except (FileNotFoundError, ValueError) as error:
        raise ProtocolError(f"protocol {protocol}: {error}") from error
    return PROTOCOLS[protocol], weights


def protocol_ground_truth(record: SampleRecord, protocol: Protocol, regressor: torch.Tensor) -> tuple[np.ndarray, str]:
    """The ground-truth joints of one sample for a benchmark protocol.

    A protocol with ``gt_from_mesh`` (3DPW) takes the sample's SMPL body mesh (backend ``smpl``,
    6890 vertices) through ``regressor``; otherwise, or when the sample has no such mesh, its
    ``eval_joints`` of the protocol's joint set.

    Args:
        record: the sample.
        protocol: the protocol.
        regressor: ``(17, V)`` joint regressor.

    Returns:
        ``(J, 3)`` joints of ``protocol.joint_set``, metres, camera frame; and where they came
        from (``"mesh"`` or ``"eval_joints"``).

    Raises:
        ProtocolError: the sample holds neither; the message names it and says what is needed.
    """
    body = record.body
    smpl_mesh = body.has_mesh and body.backend == "smpl" and body.vertices.shape == (SMPL_NUM_VERTICES, 3)
    if protocol.gt_from_mesh and smpl_mesh:
        if regressor.shape[1] != SMPL_NUM_VERTICES:
            raise ProtocolError(
                f"sample {record.key}: protocol {protocol.name} regresses the ground truth from the SMPL mesh "
                f"({SMPL_NUM_VERTICES} vertices), but the regressor has {regressor.shape[1]} columns"
            )
        vertices = torch.as_tensor(body.vertices, dtype=torch.float32)[None]
        return protocol.joints_from_mesh(vertices, regressor)[0].numpy(), "mesh"
    if body.eval_joints is not None and body.eval_joint_set == protocol.joint_set:
        return np.asarray(body.eval_joints, np.float32), "eval_joints"
    needs = f"eval_joints of joint set {protocol.joint_set}"
    if protocol.gt_from_mesh:
        needs = f"a gendered SMPL body mesh (backend smpl, {SMPL_NUM_VERTICES} vertices) or {needs}"
    has = f"body backend {body.backend!r}, " + (
        f"mesh of {body.vertices.shape[0]} vertices" if body.has_mesh else "no body mesh"
    )
    has += f", eval_joints {body.eval_joint_set or 'none'}"
    raise ProtocolError(f"sample {record.key}: protocol {protocol.name} needs {needs}; the sample has {has}")


@torch.no_grad()
def evaluate_protocol_batch(
    model: MuNet,
    items: list[EvalItem],
    protocol: Protocol,
    regressor: torch.Tensor,
    fitter: SilhouetteFitter | None = None,
) -> tuple[list[dict[str, Any]], Any]:
    """Per-sample benchmark errors of one batch, and the model output.

    The body is predicted from the image alone (and fitted to the person mask with a
    ``fitter``, where the sample has one); its mesh goes through ``regressor`` to the protocol's
    joints and is scored by ``protocol.errors`` against :func:`protocol_ground_truth`.

    Returns:
        Rows ``{"key", "gt_source", metric: value}`` (errors in mm, PCK/AUC in percent) and the
        model output.

    Raises:
        ProtocolError: a sample lacks the ground truth the protocol needs.
    """
    device = next(model.parameters()).device
    truths = [protocol_ground_truth(item.record, protocol, regressor) for item in items]
    _, output = predict_batch(model, items, fitter)
    pred = protocol.joints_from_mesh(output.body_vertices.float(), regressor.to(device))
    gt = torch.as_tensor(np.stack([joints for joints, _ in truths]), dtype=pred.dtype, device=device)
    errors = protocol.errors(pred, gt)
    rows = [
        {"key": item.record.key, "gt_source": source, **{k: float(v[i]) for k, v in errors.items()}}
        for i, (item, (_, source)) in enumerate(zip(items, truths, strict=True))
    ]
    return rows, output


def icon_ground_truth(record: SampleRecord) -> np.ndarray:
    """The true pelvis of a sample for the ``icon`` protocol, checking it holds a scan.

    Returns:
        ``(3,)`` float32 pelvis (COCO-17 hips midpoint), camera frame, metres.

    Raises:
        ProtocolError: the sample has no clothed surface or no 3D joints; the message names it.
    """
    if record.cloth is None:
        raise ProtocolError(
            f"sample {record.key}: protocol icon scores the clothed surface against a scan, but the sample has "
            "no clothed surface (a body data set?); use scan data (munet convert thuman2/cape/renderpeople)"
        )
    if record.body.joints is None:
        raise ProtocolError(
            f"sample {record.key}: protocol icon aligns on the true pelvis; the sample has no 3D joints"
        )
    return pelvis(torch.as_tensor(record.body.joints, dtype=torch.float32)).numpy()


@torch.no_grad()
def evaluate_icon_batch(
    model: MuNet,
    items: list[EvalItem],
    renderer: Any,
    num_samples: int = ICON_NUM_SAMPLES,
    seed: int = 0,
    fitter: SilhouetteFitter | None = None,
) -> tuple[list[dict[str, Any]], Any]:
    """Per-sample ICON metrics of one batch (:mod:`munet.metrics.icon`), and the model output.

    The clothed mesh is predicted from the image alone (fitted to the person mask with a
    ``fitter``), moved by true − predicted pelvis, and scored against the sample's scan.

    Args:
        model: the model, in eval mode.
        items: the samples; each must hold its clothed surface.
        renderer: a :class:`munet.data.render.Renderer` for the normal renders.
        num_samples: surface samples per mesh (ICON: 1,000).
        seed: seed of the surface sampling (the same for every sample).
        fitter: optional test-time fitting to the person mask.

    Returns:
        Rows ``{"key", "yaw_degrees", "chamfer_cm", "p2s_cm", "nc"}`` and the model output.

    Raises:
        ProtocolError: a sample without a clothed surface or 3D joints.
    """
    gt_pelvis = [icon_ground_truth(item.record) for item in items]
    _, output = predict_batch(model, items, fitter)
    pred_pelvis = pelvis(output.body_joints).cpu()
    pred_faces = output.cloth_faces.cpu()
    rows = []
    for i, item in enumerate(items):
        cloth = item.record.cloth
        aligned = output.cloth_vertices[i].cpu().float() + (torch.as_tensor(gt_pelvis[i]) - pred_pelvis[i])
        gt_vertices = torch.as_tensor(cloth.vertices, dtype=torch.float32)
        gt_faces = torch.as_tensor(cloth.faces.astype(np.int64))
        surface = icon_surface_metrics(aligned, pred_faces, gt_vertices, gt_faces, num_samples=num_samples, seed=seed)
        nc = normal_render_error(
            renderer, aligned.numpy(), pred_faces.numpy(), cloth.vertices, cloth.faces, gt_pelvis[i]
        )
        yaw = item.record.extra_meta.get("yaw_degrees")
        rows.append(
            {"key": item.record.key, "yaw_degrees": float("nan") if yaw is None else float(yaw), **surface, "nc": nc}
        )
    return rows, output


def icon_summary(keys: list[str], metas: list[dict[str, Any]]) -> dict[str, Any]:
    """What the ``icon`` report states of its samples: scans, views and camera.

    Args:
        keys: the evaluated samples' keys (``source/scan/view``: a scan is all but the last part).
        metas: their ``extra_meta`` (``yaw_degrees``, ``projection``), in the same order.

    Returns:
        ``{"scans", "views", "camera", **ICON_STATEMENTS}``.
    """
    scans = {key.rsplit("/", 1)[0] for key in keys}
    yaws = sorted({float(meta["yaw_degrees"]) for meta in metas if "yaw_degrees" in meta})
    projections = sorted({str(meta.get("projection", "perspective")) for meta in metas})
    return {
        "scans": len(scans),
        "views": f"{len(keys)} views of {len(scans)} scan{'' if len(scans) == 1 else 's'}"
        + (f" at yaw {', '.join(f'{y:g}' for y in yaws)}°" if yaws else ""),
        "camera": f"the sample's ({', '.join(projections)}); ICON uses an orthographic camera",
        **ICON_STATEMENTS,
    }


def evaluate(
    checkpoint: str | Path,
    data: str,
    out: str | Path,
    max_samples: int | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
    num_surface_samples: int = 10_000,
    num_pictures: int = 8,
    device: str = "cpu",
    seed: int = 0,
    fit: FitSettings | None = None,
    protocol: str = OWN_PROTOCOL,
    regressor: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate a checkpoint on held-out shards and write the report to ``out``.

    Writes ``metrics.json`` (means, medians and per-metric sample counts), ``per_sample.csv``,
    ``metrics.md``, ``overlays.png`` and ``histograms.png``.

    Args:
        checkpoint: checkpoint folder, ``state.pt`` or run folder.
        data: held-out shard folder or URI.
        out: report folder.
        max_samples: evaluate at most this many samples.
        batch_size: samples predicted at once.
        num_surface_samples: points per surface for Chamfer/P2S (``own`` only; ``icon`` uses
            ICON's 1,000).
        num_pictures: samples shown in ``overlays.png``.
        device: torch device.
        seed: seed of the surface sampling.
        fit: fit the predictions to each sample's person mask first (where it has one).
        protocol: ``own`` (the metrics of :data:`METRIC_KEYS`, each over the samples holding its
            target) or a benchmark of :data:`munet.metrics.protocols.PROTOCOLS` (``h36m-p2``,
            ``3dpw``, ``3dhp``: joints of the predicted mesh through ``regressor`` against the
            data set's ground truth; mm, PCK/AUC percent) or ``icon`` (ICON/ECON's Chamfer, P2S and
            NC of the clothed mesh against each sample's scan, :mod:`munet.metrics.icon`).
        regressor: the Human3.6M joint regressor (``J_regressor_h36m.npy``); needed by the
            benchmark protocols.

    Returns:
        The summary written to ``metrics.json``.

    Raises:
        ProtocolError: a benchmark protocol without a regressor that fits the model's mesh, or a
            sample without the ground truth the protocol needs (``icon``: a clothed surface).
        ValueError: no samples to evaluate.
    """
    if protocol not in PROTOCOL_CHOICES:
        raise ProtocolError(f"unknown protocol {protocol!r}; choose one of {list(PROTOCOL_CHOICES)}")
    icon = protocol == ICON_PROTOCOL
    if protocol != OWN_PROTOCOL and not icon and regressor is None:
        resolve_protocol(protocol, regressor, 0)  # raises the "give the regressor" error before any loading
    model, config, step = load_trained_model(checkpoint, device)
    benchmark: tuple[Protocol, torch.Tensor] | None = None
    if protocol != OWN_PROTOCOL and not icon:
        benchmark = resolve_protocol(protocol, regressor, int(model.joint_regressor.shape[-1]))
    fitter = None if fit is None else SilhouetteFitter.for_model(model, fit)
    decoder = Decoder.from_config(config.data, augment=False, body=model.body_topology)
    rows: list[dict[str, Any]] = []
    shown: list[tuple[EvalItem, dict[str, np.ndarray]]] = []
    metas: list[dict[str, Any]] = []  # icon: each sample's extra_meta (yaw, projection)
    renderer = None
    if icon:
        from munet.data.render import Renderer

        renderer = Renderer(ICON_IMAGE_SIZE)
    with contextlib.ExitStack() as stack, tqdm(total=max_samples, desc="evaluate", unit="sample", disable=None) as bar:
        if renderer is not None:
            stack.callback(renderer.close)
        for batch in chunked(islice(iter_eval_items(data, decoder), max_samples), batch_size):
            if icon:
                batch_rows, output = evaluate_icon_batch(model, batch, renderer, seed=seed, fitter=fitter)
                metas.extend(item.record.extra_meta for item in batch)
            elif benchmark is None:
                batch_rows, output = evaluate_batch(model, batch, num_surface_samples, seed, fitter)
            else:
                batch_rows, output = evaluate_protocol_batch(model, batch, *benchmark, fitter=fitter)
            rows.extend(batch_rows)
            for i, item in enumerate(batch):
                if len(shown) < num_pictures:
                    pred = {
                        "body_vertices": output.body_vertices[i].cpu().numpy(),
                        "body_faces": output.body_faces.cpu().numpy(),
                    }
                    if benchmark is None:  # own and icon: the clothed prediction too
                        pred["cloth_vertices"] = output.cloth_vertices[i].cpu().numpy()
                        pred["cloth_faces"] = output.cloth_faces.cpu().numpy()
                    shown.append((item, pred))
            bar.update(len(batch))
    if not rows:
        raise ValueError(f"{data} holds no samples to evaluate")
    summary: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "step": step,
        "data": str(data),
        "protocol": protocol,
        "num_samples": len(rows),
        "fit": None if fit is None else dataclasses.asdict(fit),
    }
    if icon:
        summary |= {
            "num_surface_samples": ICON_NUM_SAMPLES,
            **icon_summary([row["key"] for row in rows], metas),
            "metrics": list(ICON_METRICS),
            **summarise(rows, ICON_METRICS),
        }
    elif benchmark is None:
        summary |= {
            "num_surface_samples": num_surface_samples,
            "joint_set": "COCO-17, pelvis = mean of the hips",
            "metrics": list(METRIC_KEYS),
            "metric_targets": dict(TARGET_OF_METRIC),
            **summarise(rows),
        }
    else:
        spec = benchmark[0]
        keys = tuple(k for k in rows[0] if k not in ("key", "gt_source"))
        sources = [r["gt_source"] for r in rows]
        summary |= {
            "protocol_frames": spec.frames,
            "regressor": str(regressor),
            "body": PREDICTED_BODY,
            "joint_set": spec.joint_set,
            "joint_names": list(spec.joint_names),
            "ground_truth": {source: sources.count(source) for source in sorted(set(sources))},
            "metrics": list(keys),
            **summarise(rows, keys),
        }
    write_report(Path(out), summary, rows, shown)
    log.info(
        "evaluated %d samples (protocol %s): %s (means)",
        len(rows),
        protocol,
        ", ".join(f"{k} {summary[k]:.2f}" for k in summary["metrics"] if summary[k] is not None),
    )
    return summary
