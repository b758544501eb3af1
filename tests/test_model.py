"""MuNet: output meshes, the mutualistic mechanism's gradient paths, teacher forcing, encoder
weights and the camera conversion — with the real Anny body, graph hierarchy and ResNet."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F
import torchvision
import trimesh

from munet.body import pelvis
from munet.checkpoint.state import load_checkpoint
from munet.config import LossConfig, MutualConfig, Schedule, load_config
from munet.geometry import project
from munet.losses import TERMS, compute_losses
from munet.model import MuNet, translation_to_weak, weak_to_translation
from munet.model.camera import pixels_to_normalized, pixels_to_normalized_matrix
from munet.model.encoder import ImageEncoder
from munet.model.templates import Templates
from munet.train.local import train_local
from munet.train.optim import NonFiniteLossError
from munet.train.step import batch_to_tensors
from tests.samples import SMALL_NETWORK, make_samples, stack

CLOTH_ONLY = LossConfig(
    **{name: Schedule(0.0) for name in TERMS if name.startswith(("body_", "consistency_"))},
    cloth_p2s=Schedule(0.0),
)
"""Clothed terms only (Chamfer, normals, edges, Laplacian): no direct body supervision."""


def small_config(**mutual):
    config = load_config(
        "cpu",
        [*SMALL_NETWORK, "model.regress_params=true"],
    )
    return dataclasses.replace(config, mutual=MutualConfig(**mutual))


@pytest.fixture(scope="module")
def model_and_batch(anny_body):
    config = small_config()
    model = MuNet(config, anny_body)
    batch = batch_to_tensors(
        stack(make_samples(anny_body, count=2, image_size=64, cloth_points=256)), torch.device("cpu")
    )
    return model, batch


def with_mutual(model: MuNet, **mutual) -> MuNet:
    """The same network (shared weights) under another mutual configuration."""
    model.config = dataclasses.replace(model.config, mutual=MutualConfig(**mutual))
    return model


def body_branch_grads(model: MuNet, batch, step: int = 1) -> list[torch.Tensor]:
    """Gradients on the body branch (body GCN + camera) of a clothed-only loss."""
    model.zero_grad(set_to_none=True)
    out = model(
        batch["image"],
        batch["K"],
        step=step,
        gt_body_vertices=batch["body_vertices"],
        generator=torch.Generator().manual_seed(0),
    )
    compute_losses(out, batch, CLOTH_ONLY, step, model.templates.cloth, model.template_joints)["total"].backward()
    return [p.grad for p in model.body_gcn.parameters()]


def test_output_meshes_are_watertight_manifolds_with_documented_sizes(model_and_batch):
    model, batch = model_and_batch
    with torch.no_grad():
        out = model(batch["image"], batch["K"])
    assert out.body_vertices.shape == (2, 13348, 3) and out.body_faces.shape == (26692, 3)
    assert out.body_joints.shape == (2, 17, 3) and out.body_coarse.shape == (2, 1229, 3)
    assert out.cloth_vertices.shape == (2, 4910, 3) and out.cloth_faces.shape == (9816, 3)
    assert out.body_pose.shape == (2, 312) and out.body_shape.shape == (2, 6)
    # Perturb the clothed head so the offsets are not zero, then check both meshes independently.
    head = model.cloth_gcn.head[-1]
    with torch.no_grad():
        head.weight.normal_(0.0, 0.5)
        out = model(batch["image"], batch["K"])
        head.weight.zero_()
    assert out.cloth_offsets.norm(dim=-1).max() > 0.05
    # The bound is exact in real numbers; tanh saturates to 1 in float32, so allow one rounding step.
    assert out.cloth_offsets.norm(dim=-1).max() <= model.config.model.max_offset * (1 + 1e-6)
    for vertices, faces in ((out.body_vertices[0], out.body_faces), (out.cloth_vertices[0], out.cloth_faces)):
        mesh = trimesh.Trimesh(vertices.numpy(), faces.numpy(), process=False)
        assert mesh.is_watertight and mesh.is_winding_consistent
        assert len(mesh.split(only_watertight=False)) == 1
        assert mesh.euler_number == 2


def test_body_is_placed_by_the_camera_and_joints_come_from_the_mesh(model_and_batch):
    model, batch = model_and_batch
    with torch.no_grad():
        out = model(batch["image"], batch["K"])
    assert torch.allclose(pelvis(out.body_joints), out.translation, atol=1e-5)
    expected = torch.einsum("jv,bvc->bjc", model.joint_regressor, out.body_vertices)
    assert torch.allclose(out.body_joints, expected, atol=1e-6)
    assert (out.translation[:, 2] > 0).all()


def test_feedback_sends_clothed_gradient_into_the_body_branch(model_and_batch):
    model, batch = model_and_batch
    full = body_branch_grads(with_mutual(model, teacher_forcing=Schedule(0.0), feedback_weight=Schedule(1.0)), batch)
    assert all(g is not None for g in full)
    assert sum(float(g.abs().sum()) for g in full) > 0
    half = body_branch_grads(with_mutual(model, teacher_forcing=Schedule(0.0), feedback_weight=Schedule(0.5)), batch)
    for g_full, g_half in zip(full, half):
        assert torch.allclose(g_half, 0.5 * g_full, rtol=1e-4, atol=1e-9)


def test_no_feedback_gives_exactly_zero_body_gradient(model_and_batch):
    model, batch = model_and_batch
    detached = body_branch_grads(with_mutual(model, teacher_forcing=Schedule(0.0), feedback=False), batch)
    assert all(g is None or not g.any() for g in detached)
    warmup = Schedule(start=0.0, end=1.0, kind="linear", warmup=10, ramp=10)
    scaled = body_branch_grads(with_mutual(model, teacher_forcing=Schedule(0.0), feedback_weight=warmup), batch, step=5)
    assert all(g is None or not g.any() for g in scaled)
    # ... while the clothed branch still learns.
    assert model.cloth_gcn.head[-1].weight.grad.abs().sum() > 0


def test_teacher_forcing_builds_the_clothes_on_the_ground_truth_body(model_and_batch):
    model, batch = model_and_batch
    with_mutual(model, teacher_forcing=Schedule(1.0), feedback_weight=Schedule(1.0))
    gt = batch["body_vertices"]
    with torch.no_grad():
        out = model(batch["image"], batch["K"], step=3, gt_body_vertices=gt)
    gt_root = pelvis(torch.einsum("jv,bvc->bjc", model.joint_regressor, gt))
    expected = torch.stack([model.templates.sampling.down @ (g - r) for g, r in zip(gt, gt_root)])
    assert out.teacher_forced.all()
    assert torch.allclose(out.cloth_base, expected, atol=1e-5)
    assert torch.allclose(out.cloth_root, gt_root, atol=1e-6)
    # The clothed loss then reaches no body-branch parameter.
    grads = body_branch_grads(model, batch)
    assert all(g is None or not g.any() for g in grads)
    with pytest.raises(ValueError, match="pass gt_body_vertices"):
        model(batch["image"], batch["K"], step=3)
    # At inference (no step) the predicted body is used.
    with torch.no_grad():
        out = model(batch["image"], batch["K"], gt_body_vertices=gt)
    assert not out.teacher_forced.any()
    assert torch.allclose(out.cloth_base, out.body_coarse - out.translation[:, None], atol=1e-5)


def test_without_guidance_the_clothes_start_from_the_template(model_and_batch):
    model, batch = model_and_batch
    with_mutual(model, guidance=False, teacher_forcing=Schedule(0.0))
    with torch.no_grad():
        out = model(batch["image"], batch["K"], step=1)
    assert torch.equal(out.cloth_base, model.templates.coarse.vertices.expand(2, -1, -1))


def test_keypoint_head_predicts_heatmaps_on_the_feature_grid_and_trains(anny_body, model_and_batch):
    _, batch = model_and_batch
    config = small_config()
    with_head = dataclasses.replace(config.model, keypoint_heatmaps=True)
    model = MuNet(dataclasses.replace(config, model=with_head), anny_body)
    out = model(batch["image"], batch["K"])
    size = batch["image"].shape[-1]
    assert out.joint_heatmaps.shape == (2, 17, size // 8, size // 8)
    terms = compute_losses(out, batch, model.config.loss, 1, model.templates.cloth, model.template_joints)
    assert terms["body_heatmap"].item() > 0
    terms["body_heatmap"].backward()
    assert all(p.grad.abs().sum() > 0 for p in model.keypoint_head.layers.parameters())
    assert any(p.grad.abs().sum() > 0 for p in model.encoder.layer2.parameters())  # it trains the maps
    # The pose code joins the global feature, so the body's terms train its MLP too, once the
    # zero-initialised heads after it have moved (one step on every term first).
    model.zero_grad()
    compute_losses(
        model(batch["image"], batch["K"]), batch, model.config.loss, 1, model.templates.cloth, model.template_joints
    )["total"].backward()
    torch.optim.SGD(model.parameters(), lr=0.01).step()
    model.zero_grad()
    out = model(batch["image"], batch["K"])
    compute_losses(out, batch, model.config.loss, 1, model.templates.cloth, model.template_joints)[
        "body_canonical"
    ].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.keypoint_head.code.parameters())


def test_stored_templates_round_trip_and_out_of_range_indices_are_refused(model_and_batch):
    model, _ = model_and_batch
    stored = model.templates.to_tensors()
    again = Templates.from_tensors(stored)
    assert torch.equal(again.sampling.up.to_dense(), model.templates.sampling.up.to_dense())
    damaged = dict(stored)
    damaged["up_indices"] = stored["up_indices"].clone()
    damaged["up_indices"][0, 0] = stored["up_shape"][0] + 5  # a row past the matrix
    with pytest.raises(ValueError, match="invalid up matrix"):
        Templates.from_tensors(damaged)


def test_encoder_weights_load_from_a_local_file_and_mismatches_are_clear(tmp_path):
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    encoder = ImageEncoder("resnet18", path)
    assert torch.equal(encoder.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)
    with pytest.raises(ValueError, match="not a torchvision resnet34 state dict"):
        ImageEncoder("resnet34", path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageEncoder("resnet18", tmp_path / "missing.pth")
    features, maps = encoder(torch.rand(2, 3, 64, 64))
    assert features.shape == (2, 512) and maps.shape == (2, 384, 8, 8)


@pytest.mark.parametrize("name, channels", [("mobilenet_v3_small", (576, 72)), ("mobilenet_v3_large", (960, 152))])
def test_mobilenet_encoders_give_stride_8_maps_and_load_local_weights(tmp_path, name, channels):
    reference = getattr(torchvision.models, name)(weights=None)
    path = tmp_path / f"{name}.pth"
    torch.save(reference.state_dict(), path)
    encoder = ImageEncoder(name, path)
    assert torch.equal(encoder.layer4[-1][0].weight, reference.features[-1][0].weight)
    # Measuring the stage widths at construction leaves BatchNorm statistics as loaded.
    assert torch.equal(encoder.stem[0][1].running_mean, reference.features[0][1].running_mean)
    assert encoder.training
    features, maps = encoder(torch.rand(2, 3, 96, 96))
    assert (encoder.global_channels, encoder.map_channels) == channels
    assert features.shape == (2, channels[0]) and maps.shape == (2, channels[1], 12, 12)
    with pytest.raises(ValueError, match="not a torchvision resnet18 state dict"):
        ImageEncoder("resnet18", path)


def test_weak_perspective_matches_the_pinhole_camera():
    size = 128
    K = torch.tensor([[[300.0, 0, 70.0], [0, 320.0, 60.0], [0, 0, 1]]])
    weak = torch.tensor([[0.9, 0.1, -0.2]])
    translation = weak_to_translation(weak, K, size)
    # The root projects exactly where the weak camera puts it, ...
    root_pixel = project(translation[:, None], K)[0, 0]
    assert torch.allclose((2 * root_pixel + 1) / size - 1, weak[0, 1:], atol=1e-5)
    # ... and a small offset X projects to s·X + t to first order (depth ≈ 4.6 m here).
    offset = torch.tensor([0.05, -0.04, 0.0])
    pixel = project((translation + offset)[:, None], K)[0, 0]
    predicted = weak[0, 1:] + weak[0, 0] * offset[:2] * torch.tensor([1.0, 320.0 / 300.0])
    assert torch.allclose((2 * pixel + 1) / size - 1, predicted, atol=1e-5)
    # translation_to_weak is its inverse.
    assert torch.allclose(translation_to_weak(translation, K, size), weak, atol=1e-6)


def test_normalised_coordinates_are_grid_samples_and_the_matrix_form_agrees():
    size = 8
    pixels = torch.tensor([[-0.5, -0.5], [7.5, 7.5], [3.0, 5.0]], dtype=torch.float64)
    # Pixel edges map to the crop's edges (grid_sample with align_corners=False), ...
    normalized = pixels_to_normalized(pixels, size)
    assert torch.allclose(normalized[:2], torch.tensor([[-1.0, -1.0], [1.0, 1.0]], dtype=torch.float64))
    # ... and the homogeneous matrix the image warps compose is the same map.
    homogeneous = torch.cat([pixels, torch.ones(3, 1, dtype=torch.float64)], dim=1)
    assert torch.allclose((homogeneous @ pixels_to_normalized_matrix(size).T)[:, :2], normalized)
    # A pixel's centre samples that pixel's value exactly.
    image = torch.arange(64.0).view(1, 1, 8, 8)
    grid = normalized[2].view(1, 1, 1, 2).float()
    assert F.grid_sample(image, grid, align_corners=False).item() == image[0, 0, 5, 3].item()


def test_local_trainer_writes_a_checkpoint_that_loads_into_a_new_model(model_and_batch, tmp_path, anny_body):
    model, batch = model_and_batch
    model = copy.deepcopy(with_mutual(model))
    history = train_local(model.config, [batch], 2, tmp_path, model=model)
    assert [row["step"] for row in history] == [1, 2] and all(row["applied"] == 1.0 for row in history)
    state = load_checkpoint(tmp_path)
    fresh = MuNet(state.config, anny_body, templates=model.templates)
    fresh.load_state_dict(state.model)
    fresh.eval(), model.eval()
    with torch.no_grad():
        assert torch.equal(
            fresh(batch["image"], batch["K"]).cloth_vertices, model(batch["image"], batch["K"]).cloth_vertices
        )


def test_local_trainer_skips_nonfinite_steps_then_stops(model_and_batch):
    model, batch = model_and_batch
    model = copy.deepcopy(with_mutual(model))
    poisoned = dict(batch, body_vertices=torch.full_like(batch["body_vertices"], float("nan")))
    config = dataclasses.replace(model.config, train=dataclasses.replace(model.config.train, max_bad_steps=1))
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(NonFiniteLossError, match="2 consecutive steps"):
        train_local(config, [poisoned], 3, model=model)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
