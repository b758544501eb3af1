"""Geometric training augmentation: the mirror maps of the real Anny mesh and rig, the pixel
convention of the crop warp, and augmented Anny samples checked against the body model and against
a fresh render through the new camera."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from munet.body import pelvis
from munet.body.anny_backend import load_anny
from munet.body.joints import COCO17_FLIP, COCO17_NAMES
from munet.config import AugmentConfig, GraphConfig, load_config
from munet.data.decode import Decoder
from munet.geometry import project
from munet.graph import mirror_indices
from munet.model import MuNet
from munet.model.templates import ANNY_TO_CAMERA
from munet.train.augment import augment_batch, check_settings, draw_pixel_maps, mirror_pose, warp_images
from munet.train.step import step_generator, training_step
from tests.samples import _render, make_samples, stack

SIZE = 96
TEMPLATE_TOLERANCE = 1e-6
"""Metres: Anny's template meshes are mirror-symmetric to float32 precision."""
SHAPE_ASYMMETRY = 0.5e-3
"""Metres: how far the mean-phenotype rest body is from its own mirror image (0.41 mm measured;
Anny's phenotype blend shapes are slightly asymmetric)."""


@pytest.fixture(scope="module")
def rest(anny_body) -> torch.Tensor:
    """The default body's mean-phenotype rest-pose vertices (V, 3), Anny frame (X: their left)."""
    with torch.no_grad():
        return anny_body().vertices[0]


@pytest.fixture(scope="module")
def mirror(anny_body) -> torch.Tensor:
    return anny_body.vertex_mirror()


@pytest.fixture(scope="module")
def samples(anny_body) -> dict[str, torch.Tensor]:
    """Eight rendered Anny samples (the decoded-sample contract plus ``cloth_vertices``)."""
    return {k: torch.from_numpy(v) for k, v in stack(make_samples(anny_body, 8, SIZE, 256, seed=3)).items()}


def _augment(batch, anny_body, mirror, seed: int = 0, **settings) -> dict[str, torch.Tensor]:
    return augment_batch(
        batch, mirror, anny_body.bone_mirror(), AugmentConfig(**settings), torch.Generator().manual_seed(seed)
    )


def _reflect(points: torch.Tensor) -> torch.Tensor:
    return points * torch.tensor([-1.0, 1.0, 1.0])


def _pixel_grid(size: int) -> torch.Tensor:
    """(S, S, 2) pixel-centre coordinates (u, v) of an S × S image."""
    return torch.stack(torch.meshgrid(torch.arange(float(size)), torch.arange(float(size)), indexing="xy"), -1)


def _blob(centres: torch.Tensor, size: int, sigma: float = 3.0) -> torch.Tensor:
    """Images (B, 3, S, S) of a Gaussian spot at each pixel position of ``centres`` (B, 2)."""
    spot = torch.exp(-((_pixel_grid(size) - centres[:, None, None]) ** 2).sum(-1) / (2 * sigma**2))
    return spot[:, None].expand(-1, 3, -1, -1).contiguous()


def _centroid(image: torch.Tensor) -> torch.Tensor:
    """Intensity-weighted centroid (u, v) of an (S, S) image, pixels."""
    return (image[..., None] * _pixel_grid(image.shape[-1]).to(image)).sum((0, 1)) / image.sum()


def test_anny_fine_mesh_mirror_is_an_involution(anny_body, rest, mirror):
    count = len(rest)
    assert count == 13_348
    assert torch.equal(torch.sort(mirror).values, torch.arange(count))
    assert torch.equal(mirror[mirror], torch.arange(count))
    template = anny_body.model.template_vertices
    assert (_reflect(template)[mirror] - template).norm(dim=1).max() <= TEMPLATE_TOLERANCE
    on_plane = mirror == torch.arange(count)
    assert int(on_plane.sum()) == 188 and template[on_plane, 0].abs().max() <= TEMPLATE_TOLERANCE
    # The same map in the templates' pelvis-centred camera orientation (x stays the mirror axis).
    camera = (template - template.mean(dim=0) * torch.tensor([0.0, 1.0, 1.0])) @ ANNY_TO_CAMERA.T
    assert torch.equal(mirror_indices(camera, axis=0, tolerance=TEMPLATE_TOLERANCE), mirror)
    # A body is symmetric only to about 0.4 mm, more than the closest vertices' spacing (0.25 mm):
    # the template's map fits it within that, while nearest neighbours on the body are ambiguous.
    assert (_reflect(rest)[mirror] - rest).norm(dim=1).max() < SHAPE_ASYMMETRY
    with pytest.raises(ValueError, match="not one-to-one"):
        mirror_indices(rest, tolerance=SHAPE_ASYMMETRY)


def test_anny_coarse_graph_is_symmetric_too():
    coarse = load_anny(GraphConfig().coarse_topology).template_vertices
    mirror = mirror_indices(coarse, axis=0, tolerance=TEMPLATE_TOLERANCE)
    assert torch.equal(mirror[mirror], torch.arange(len(coarse)))
    assert (_reflect(coarse)[mirror] - coarse).norm(dim=1).max() <= TEMPLATE_TOLERANCE


def test_asymmetric_or_duplicated_meshes_are_refused(anny_body):
    template = anny_body.model.template_vertices
    bent = template.clone()
    bent[100, 0] += 0.001
    with pytest.raises(ValueError, match=r"not mirror-symmetric along axis 0 within 1e-05 m: 2 of 13348"):
        mirror_indices(bent, tolerance=1e-5)
    with pytest.raises(ValueError, match="not one-to-one"):
        mirror_indices(torch.cat([template, template[:1] + 1e-7]), tolerance=1e-5)
    with pytest.raises(ValueError, match=r"shape \(V, 3\)"):
        mirror_indices(template[:, :2])


def test_coco_flip_swaps_left_and_right_names():
    swap = {"left": "right", "right": "left"}
    for name, partner in zip(COCO17_NAMES, COCO17_FLIP):
        side, _, part = name.partition("_")
        assert COCO17_NAMES[partner] == (f"{swap[side]}_{part}" if side in swap else name)


def test_mirrored_pose_poses_the_mirrored_body(anny_body, mirror):
    bones = anny_body.bone_mirror()
    labels = anny_body.bone_labels()
    assert torch.equal(bones[bones], torch.arange(len(labels)))
    assert labels[int(bones[labels.index("upperarm01.L")])] == "upperarm01.R"
    pose = torch.randn(4, anny_body.pose_dim, generator=torch.Generator().manual_seed(1)) * 0.3
    with torch.no_grad():
        body = anny_body(pose).vertices
        mirrored = anny_body(mirror_pose(pose, bones)).vertices
        unreflected = anny_body(pose.reshape(4, -1, 3)[:, bones].reshape(4, -1)).vertices
    # Up to the asymmetry of the mean-phenotype body (0.64 mm measured); swapping the bones
    # without reflecting their rotations is wrong by more than a metre.
    error = (mirrored - _reflect(body)[:, mirror]).norm(dim=-1)
    assert error.max() < 2 * SHAPE_ASYMMETRY, float(error.max())
    assert (unreflected - _reflect(body)[:, mirror]).norm(dim=-1).max() > 0.5


def test_warp_follows_the_pixel_map_with_pixel_centres_at_integers():
    """A smooth spot at a known sub-pixel position moves exactly where ``A`` sends its centre
    (a half-pixel slip of the convention would move it by 0.15 px at this zoom)."""
    centre = torch.tensor([[23.3, 35.6]])
    A = torch.tensor(
        [
            [[1.3, 0, -5.0], [0, 1.3, 2.0], [0, 0, 1]],  # zoom in and shift
            [[-0.8, 0, 60.0], [0, 0.8, 4.5], [0, 0, 1]],
        ],  # zoom out and flip
        dtype=torch.float64,
    )
    warped = warp_images(_blob(centre, 64).expand(2, -1, -1, -1).double(), A)
    found = torch.stack([_centroid(image[0]) for image in warped])
    expected = A[:, :2, :2] @ centre[0].double() + A[:, :2, 2]
    assert (found - expected).abs().max() < 0.01, (found, expected)


def test_pure_flip_is_exact_and_maps_pixel_u_to_s_minus_1_minus_u(samples, anny_body, mirror):
    out = _augment(samples, anny_body, mirror, flip=1.0, scale=0.0, shift=0.0)
    assert torch.allclose(out["image"], samples["image"].flip(-1), atol=1e-5)
    assert torch.equal(out["mask"], samples["mask"].flip(-1))
    assert torch.allclose(out["K"][:, 0, 2], SIZE - 1 - samples["K"][:, 0, 2])


@pytest.mark.parametrize("flip", [0.0, 0.5, 1.0])
def test_augmented_samples_are_what_the_new_camera_sees(samples, anny_body, mirror, flip):
    out = _augment(samples, anny_body, mirror, seed=7, flip=flip, scale=0.3, shift=0.08)
    assert set(out) == set(samples) - {"cloth_vertices"}
    assert (out["K"][:, 0, 0] > 0).all() and torch.equal(out["K"][:, 2], samples["K"][:, 2])
    # The ground-truth joints project onto the new 2D joints, and so do the joints regressed from
    # the new body vertices (the left/right renumbering of vertices and joints agree).
    assert (project(out["body_joints"], out["K"]) - out["joints_2d"]).abs().max() < 1e-3
    regressed = anny_body.regress_joints(out["body_vertices"])
    assert (project(regressed, out["K"]) - out["joints_2d"]).abs().max() < 1e-3
    # A spot drawn where the pelvis projects lands where the new pelvis projects through the new
    # camera: 0.005 px measured; a half-pixel slip of the convention (align_corners) is 0.08 px.
    root_pixels = project(pelvis(samples["body_joints"])[:, None], samples["K"])[:, 0]
    spots = dict(samples, image=_blob(root_pixels, SIZE))
    moved = _augment(spots, anny_body, mirror, seed=7, flip=flip, scale=0.3, shift=0.08)
    expected = project(pelvis(moved["body_joints"])[:, None], moved["K"])[:, 0]
    found = torch.stack([_centroid(image[0]) for image in moved["image"]])
    assert (found - expected).abs().max() < 0.02, (found - expected).abs().max()
    # The warped mask is a painter's-algorithm render of the new body through the new camera, up to
    # that raster's sub-pixel bias (0.7 px measured) and the body cut off by the source crop.
    for i in range(len(samples["image"])):
        vertices, K = out["body_vertices"][i].numpy(), out["K"][i].numpy()
        _, rendered = _render(vertices, anny_body.faces.numpy(), K, SIZE)
        rendered, warped = torch.from_numpy(rendered[0]), out["mask"][i, 0]
        iou = (rendered * warped).sum() / ((rendered + warped) > 0).sum()
        assert iou > 0.85, (i, float(iou))
        assert (_centroid(rendered) - _centroid(warped)).abs().max() < 1.0
    # A person facing the camera shows their left shoulder on the image's right, flipped or not.
    for batch in (samples, out):
        assert (batch["joints_2d"][:, 5, 0] > batch["joints_2d"][:, 6, 0]).all()
    # A zoom or shift is a change of intrinsics only; a flip reflects the 3D targets.
    settings = AugmentConfig(flip=flip, scale=0.3, shift=0.08)
    _, is_flipped = draw_pixel_maps(8, SIZE, settings, torch.Generator().manual_seed(7))  # as drawn above
    assert is_flipped.float().mean() == pytest.approx(flip, abs=0.4)
    sign = torch.where(is_flipped, -1.0, 1.0)
    for key in ("cloth_points", "cloth_normals"):
        assert torch.equal(out[key][..., 0], samples[key][..., 0] * sign[:, None])
        assert torch.equal(out[key][..., 1:], samples[key][..., 1:])
    assert torch.equal(out["body_shape"], samples["body_shape"])
    kept = ~is_flipped
    for key in ("body_vertices", "body_joints", "body_pose"):
        assert torch.equal(out[key][kept], samples[key][kept])


def test_flipped_sample_is_the_mirrored_pose_seen_by_a_mirrored_camera(samples, anny_body, mirror):
    """``make_samples`` places ``Anny(pose, shape)`` rigidly in the camera frame; the flipped
    sample is the same placement of ``Anny(flipped pose, shape)``, up to the asymmetry of Anny's
    phenotype blend shapes (2.5 mm measured for these shapes in [0.2, 0.8])."""
    out = _augment(samples, anny_body, mirror, flip=1.0, scale=0.0, shift=0.0)
    with torch.no_grad():
        posed = anny_body(out["body_pose"], out["body_shape"]).vertices @ ANNY_TO_CAMERA.T
    centred = out["body_vertices"] - out["body_vertices"].mean(dim=1, keepdim=True)
    error = (centred - (posed - posed.mean(dim=1, keepdim=True))).norm(dim=-1)
    assert error.max() < 5e-3, float(error.max())


def test_flipping_twice_is_the_identity(samples, anny_body, mirror):
    once = _augment(samples, anny_body, mirror, seed=1, flip=1.0, scale=0.0, shift=0.0)
    twice = _augment(once, anny_body, mirror, seed=2, flip=1.0, scale=0.0, shift=0.0)
    for key, value in twice.items():
        exact = key not in ("image", "K", "joints_2d")
        assert torch.allclose(value, samples[key], atol=0.0 if exact else 1e-4), key


def test_draws_come_from_the_generator(samples, anny_body, mirror):
    first = _augment(samples, anny_body, mirror, seed=5)
    again = _augment(samples, anny_body, mirror, seed=5)
    other = _augment(samples, anny_body, mirror, seed=6)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["K"], other["K"])
    settings = AugmentConfig(flip=0.25, scale=0.15, shift=0.05)
    A, flip = draw_pixel_maps(4000, SIZE, settings, torch.Generator().manual_seed(0))
    zoom = A[:, 1, 1]
    assert flip.double().mean() == pytest.approx(0.25, abs=0.02)
    assert zoom.min() >= 1 / 1.15 and zoom.max() <= 1.15 and zoom.log().mean().abs() < 0.01
    shift = A[:, 1, 2] - (1 - zoom) * (SIZE - 1) / 2
    assert shift.abs().max() <= 0.05 * SIZE and shift.abs().max() > 0.045 * SIZE


def test_settings_are_checked_and_colour_reaches_the_decoder():
    with pytest.raises(ValueError, match=r"data.augmentation.flip is a probability"):
        check_settings(AugmentConfig(flip=1.5))
    with pytest.raises(ValueError, match=r"data.augmentation.scale must be >= 0"):
        check_settings(AugmentConfig(scale=-0.1))
    config = load_config(overrides=["data.augmentation.colour=0.1", "data.augmentation.flip=0"])
    assert config.data.augmentation == dataclasses.replace(AugmentConfig(), colour=0.1, flip=0.0)
    assert Decoder.from_config(config.data).colour == 0.1


def test_mirror_maps_must_fit_the_batch(samples, anny_body, mirror):
    with pytest.raises(ValueError, match=r"vertex_mirror must be a \(13348,\) long tensor"):
        _augment(samples, anny_body, mirror[:-1])
    with pytest.raises(ValueError, match=r"bone_mirror must be a \(104,\) long tensor"):
        augment_batch(samples, mirror, anny_body.bone_mirror()[:-1], AugmentConfig())


def test_training_step_augments_reproducibly_with_the_step_generator(anny_body):
    """Through the templates' mirror maps, with the body-model parameters regressed (the mirrored
    pose is a valid target)."""
    config = load_config(
        "cpu",
        [
            "model.image_size=64",
            "data.image_size=64",
            "data.cloth_points=256",
            "model.body_blocks=1",
            "model.cloth_blocks=1",
            "graph.cloth_subdivisions=0",
            "loss.cloth_p2s=0",
            "model.regress_params=true",
            "loss.body_params=1",
            "data.augmentation.flip=1",
        ],
    )
    batch = stack(make_samples(anny_body, 2, 64, 256))
    torch.manual_seed(0)
    model = MuNet(config, anny_body)
    assert torch.equal(model.templates.fine_mirror, anny_body.vertex_mirror())
    losses = {}
    for augment in (True, False):
        run = dataclasses.replace(config, data=dataclasses.replace(config.data, augment=augment))
        losses[augment] = [
            float(training_step(model, batch, 1, run, step_generator(0, 1))[0].detach()) for _ in range(2)
        ]
    assert all(np.isfinite(losses[True]))
    assert losses[True][0] == losses[True][1] and losses[True][0] != losses[False][0]
