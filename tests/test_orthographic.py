"""The orthographic camera end to end: projection of both kinds against an independent formula, the
camera record and the decoded flag, the weak → full camera, the OpenGL projection and real renders
(a pixel-exact quad, converted THuman2 views whose body lies on the rendered mask), shards that
``munet data check`` passes, the geometric augmentation, and a batch mixing orthographic and
perspective samples through the real network and losses."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from munet.body import pelvis
from munet.config import AugmentConfig, load_config
from munet.convert.thuman2 import convert_thuman2
from munet.data.camera import Camera
from munet.data.cli import main as data_main
from munet.data.decode import Decoder, iter_samples
from munet.data.render import Lighting, Renderer, opengl_projection
from munet.data.schema import SchemaError, read_camera
from munet.geometry import project
from munet.model import ORTHOGRAPHIC_DEPTH, MuNet, translation_to_weak, weak_to_translation
from munet.model.camera import pixels_to_normalized
from munet.train.augment import augment_batch
from munet.train.step import batch_to_tensors, training_step
from tests.samples import SMALL_NETWORK, make_samples, stack
from tests.test_convert_h36m import read_samples
from tests.test_convert_thuman2 import models, thuman  # noqa: F401  (fixtures)

SIZE = 64


def pinhole(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Independent reference: homogeneous pixels ``K X`` divided by their last coordinate."""
    homogeneous = points @ K.T
    return homogeneous[:, :2] / homogeneous[:, 2:]


def parallel(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Independent reference: ``K`` applied to ``(x, y, 1)``, the depth dropped."""
    return (np.c_[points[:, :2], np.ones(len(points))] @ K.T)[:, :2]


def test_both_projections_match_independent_formulas():
    rng = np.random.default_rng(0)
    K = np.array([[150.0, 0.7, 60.3], [0.0, 140.0, 70.1], [0.0, 0.0, 1.0]])
    points = rng.uniform([-1, -1, 2], [1, 1, 9], size=(40, 3))
    np.testing.assert_allclose(project(points, K), pinhole(points, K), atol=1e-9)
    np.testing.assert_allclose(project(points, K, True), parallel(points, K), atol=1e-9)
    # The orthographic projection does not see the depth.
    moved = points + [0.0, 0.0, 5.0]
    np.testing.assert_allclose(project(moved, K, orthographic=True), project(points, K, orthographic=True))
    # A batch mixes both kinds, per point set, with numeric or boolean flags; gradients are finite.
    batch_points = torch.tensor(np.stack([points, points, points]), requires_grad=True)
    batch_K = torch.tensor(np.stack([K, K * [[2.0], [2.0], [1.0]], K]))
    for flag in (torch.tensor([0.0, 1.0, 1.0]), torch.tensor([False, True, True]), np.array([0, 1, 1])):
        pixels = project(batch_points, batch_K, flag)
        np.testing.assert_allclose(pixels[0].detach().numpy(), pinhole(points, K), atol=1e-9)
        np.testing.assert_allclose(pixels[1].detach().numpy(), parallel(points, batch_K[1].numpy()), atol=1e-9)
        np.testing.assert_allclose(pixels[2].detach().numpy(), parallel(points, K), atol=1e-9)
    pixels.sum().backward()
    assert torch.isfinite(batch_points.grad).all() and (batch_points.grad[1:, :, 2] == 0).all()
    with pytest.raises(ValueError, match="one flag per point set"):
        project(batch_points, batch_K, torch.tensor([1.0, 0.0]))


def test_camera_record_carries_the_projection():
    K = np.array([[60.0, 0.0, 31.5], [0.0, 60.0, 31.5], [0.0, 0.0, 1.0]])
    camera = Camera(K=K, R=np.eye(3), t=[0.0, 0.0, 10.0], image_size=SIZE, projection="orthographic")
    assert camera.orthographic and camera.to_dict()["projection"] == "orthographic"
    again = Camera.from_dict(json.loads(json.dumps(camera.to_dict())))
    assert again.projection == "orthographic" and again.orthographic
    # A record written before the field existed is a perspective camera.
    old = {key: value for key, value in camera.to_dict().items() if key != "projection"}
    assert not read_camera({"__key__": "old/0", "camera.json": json.dumps(old).encode()}).orthographic
    bad = {**camera.to_dict(), "projection": "fisheye"}
    with pytest.raises(SchemaError, match=r"bad/0.*bad camera.json.*projection must be one of"):
        read_camera({"__key__": "bad/0", "camera.json": json.dumps(bad).encode()})


def test_weak_camera_places_an_orthographic_root_on_its_shift():
    size = 128
    K = torch.tensor([[[300.0, 0, 70.0], [0, 320.0, 60.0], [0, 0, 1]]] * 2)
    weak = torch.tensor([[0.9, 0.1, -0.2], [3.0, -0.3, 0.25]])
    flag = torch.tensor([1.0, 0.0])
    translation = weak_to_translation(weak, K, size, flag)
    # Each root projects, through its own camera, exactly where (t_x, t_y) puts it.
    root = pixels_to_normalized(project(translation[:, None], K, flag)[:, 0], size)
    torch.testing.assert_close(root, weak[:, 1:], atol=1e-5, rtol=0)
    # The orthographic sample sits at the nominal depth whatever its scale; its scale comes from K.
    assert translation[0, 2] == ORTHOGRAPHIC_DEPTH
    again = weak_to_translation(weak * torch.tensor([[7.0, 1.0, 1.0]]), K, size, flag)
    torch.testing.assert_close(again[0], translation[0])
    inverse = translation_to_weak(translation, K, size, flag)
    torch.testing.assert_close(inverse[0], torch.tensor([2 * 300.0 / size, 0.1, -0.2]), atol=1e-5, rtol=0)
    torch.testing.assert_close(inverse[1], weak[1], atol=1e-5, rtol=0)
    # A root-relative offset X moves the orthographic projection by exactly (2 f / S) X.
    offset = torch.tensor([0.05, -0.04, 0.3])
    moved = pixels_to_normalized(project((translation[:1] + offset)[:, None], K[:1], True)[:, 0], size)
    expected = weak[0, 1:] + 2 * torch.tensor([300.0, 320.0]) / size * offset[:2]
    torch.testing.assert_close(moved[0], expected, atol=1e-5, rtol=0)


def test_orthographic_opengl_projection_and_a_pixel_exact_render():
    K = np.array([[150.0, 0.3, 60.3], [0.0, 140.0, 70.1], [0.0, 0.0, 1.0]])
    points = np.random.default_rng(1).uniform([-0.3, -0.3, 2], [0.3, 0.3, 4], size=(50, 3))
    clip = np.c_[points, np.ones(50)] @ opengl_projection(K, 128, 1.0, 5.0, orthographic=True).T
    window = (clip[:, :2] / clip[:, 3:] + 1) / 2 * 128
    np.testing.assert_allclose(window - 0.5, parallel(points, K), atol=1e-9)
    assert (np.abs(clip[:, 2] / clip[:, 3]) < 1).all()
    # A tilted rectangle (depths 2 to 6 m) covers the pixels its corners project to, whatever its depth.
    K = np.array([[100.0, 0.0, 63.5], [0.0, 100.0, 63.5], [0.0, 0.0, 1.0]])
    (u0, u1), (v0, v1) = (9.6, 30.4), (40.6, 100.4)
    corners = np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]])
    vertices = np.c_[(corners - K[:2, 2]) / 100.0, [2.0, 6.0, 6.0, 2.0]]
    faces = np.array([[0, 2, 1], [0, 3, 2]])
    with Renderer(128) as renderer:
        frame = renderer.render(
            vertices, faces, np.full((4, 3), 0.5), K, Lighting(np.array([0.0, 0.0, 1.0]), 0.2, 0.6), orthographic=True
        )
    expected = np.zeros((128, 128), bool)
    expected[41:101, 10:31] = True
    np.testing.assert_array_equal(frame.mask, expected)
    columns = np.arange(10, 31)
    np.testing.assert_allclose(frame.depth[70, 10:31], 2.0 + 4.0 * (columns - u0) / (u1 - u0), rtol=1e-3)


@pytest.fixture(scope="module")
def views(tmp_path_factory, thuman, models):  # noqa: F811
    """THuman2 subject 0000 converted twice, 4 views each: orthographic (the default) and perspective."""
    root, _ = thuman
    out = tmp_path_factory.mktemp("views")
    (out / "one.txt").write_text("0000\n")
    common = dict(body_models=models, split=out / "one.txt", views=4, image_size=SIZE)
    reports = [
        convert_thuman2(root, str(out / "orthographic"), **common),
        convert_thuman2(root, str(out / "perspective"), projection="perspective", **common),
    ]
    assert all(report.converted == 4 and not report.failed for report in reports)
    return out


def test_orthographic_scan_views_put_the_body_on_the_mask_and_pass_the_check(views):
    assert data_main(["check", str(views / "orthographic")]) == 0
    orthographic, perspective = read_samples(views / "orthographic"), read_samples(views / "perspective")
    assert sorted(orthographic) == sorted(perspective) == [f"thuman2/0000/{yaw:03d}" for yaw in (0, 90, 180, 270)]
    for key, record in orthographic.items():
        camera = record.camera
        assert camera.projection == "orthographic" and record.extra_meta["projection"] == "orthographic"
        assert perspective[key].camera.projection == "perspective"
        # The same camera frame, only K differs: the orthographic focal is pixels per metre.
        np.testing.assert_allclose(record.body.vertices, perspective[key].body.vertices, atol=1e-6)
        distance = record.extra_meta["camera_distance_m"]
        np.testing.assert_allclose(camera.K[0, 0] * distance, perspective[key].camera.K[0, 0], rtol=1e-9)
        pixels = np.rint(parallel(record.body.vertices, camera.K)).astype(int)
        assert (pixels >= 0).all() and (pixels < SIZE).all()
        assert record.mask[pixels[:, 1], pixels[:, 0]].all()
        np.testing.assert_allclose(record.body.joints_2d, parallel(record.body.joints, camera.K), atol=1e-3)
        # ICON's framing: the person 90 % of the image tall; the far perspective view nearly agrees.
        rows = np.flatnonzero(record.mask.any(1))
        assert 0.85 * SIZE <= rows[-1] - rows[0] + 1 <= 0.95 * SIZE
        union = (record.mask | perspective[key].mask).sum()
        assert (record.mask & perspective[key].mask).sum() / union > 0.85
    # The decoder flags each sample's camera.
    flags = {
        projection: [float(s["orthographic"]) for s in iter_samples(str(views / projection), Decoder(SIZE, 256))]
        for projection in ("orthographic", "perspective")
    }
    assert flags == {"orthographic": [1.0] * 4, "perspective": [0.0] * 4}


def test_augmentation_keeps_orthographic_joints_on_their_projection(views):
    samples = list(iter_samples(str(views / "orthographic"), Decoder(SIZE, 256)))
    keys = ("image", "mask", "K", "orthographic", "body_joints", "joints_2d", "joints_valid", "joints_2d_valid")
    batch = batch_to_tensors({key: np.stack([s[key] for s in samples]) for key in keys}, torch.device("cpu"))
    np.testing.assert_allclose(
        project(batch["body_joints"], batch["K"], batch["orthographic"]), batch["joints_2d"], atol=1e-3
    )
    none = torch.zeros(0, dtype=torch.long)
    flipped = 0
    for seed in range(3):
        settings = AugmentConfig(flip=0.5, scale=0.3, shift=0.1)
        out = augment_batch(batch, none, none, settings, torch.Generator().manual_seed(seed))
        torch.testing.assert_close(out["orthographic"], batch["orthographic"])
        pixels = project(out["body_joints"], out["K"], out["orthographic"])
        torch.testing.assert_close(pixels, out["joints_2d"], atol=2e-3, rtol=0)
        flipped += int((out["body_joints"][:, 0, 0] != batch["body_joints"][:, 0, 0]).sum())
        # The warped mask still holds the joints inside the crop (the neck and limbs are on the body).
        inside = ((pixels >= 0) & (pixels <= SIZE - 1)).all(-1)
        rounded = pixels.round().long().clamp(0, SIZE - 1)
        rows = torch.arange(len(samples))[:, None].expand_as(rounded[..., 0])
        on = out["mask"][rows, 0, rounded[..., 1], rounded[..., 0]][inside]
        assert float(on.float().mean()) > 0.9
    assert flipped > 0


def test_a_mixed_batch_trains_through_the_real_network(anny_body):
    config = load_config("cpu", [*SMALL_NETWORK, "data.augment=true"])
    torch.manual_seed(0)
    model = MuNet(config, anny_body)
    samples = make_samples(anny_body, count=4, image_size=SIZE, cloth_points=256, seed=5)
    with Renderer(SIZE) as renderer:
        for index, sample in enumerate(samples):
            sample["orthographic"] = np.array(float(index % 2), np.float32)
            if index % 2 == 0:
                continue
            # The same person through an orthographic camera of the scale the pinhole has at the root.
            root = pelvis(torch.from_numpy(sample["body_joints"][None]))[0].numpy()
            K = sample["K"].astype(np.float64)
            K[:2, :2] /= root[2]
            frame = renderer.render(
                sample["body_vertices"],
                anny_body.faces.numpy(),
                np.full((len(sample["body_vertices"]), 3), 0.6),
                K,
                Lighting(np.array([0.0, 0.3, 1.0]) / np.hypot(0.3, 1.0), 0.4, 0.6),
                orthographic=True,
            )
            sample.update(
                image=frame.image.transpose(2, 0, 1).astype(np.float32) / 255.0,
                mask=frame.mask[None].astype(np.float32),
                K=K.astype(np.float32),
                joints_2d=project(sample["body_joints"], K, True).astype(np.float32),
            )
    batch = stack(samples)
    assert batch["orthographic"].tolist() == [0.0, 1.0, 0.0, 1.0]
    loss, logs = training_step(model, batch, 1, config, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and all(np.isfinite(float(v)) for k, v in logs.items() if k.startswith("loss/"))
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)
    # The orthographic samples' roots sit at the nominal depth; the perspective ones where s puts them.
    with torch.no_grad():
        tensors = batch_to_tensors(batch, torch.device("cpu"))
        output = model(tensors["image"], tensors["K"], orthographic=tensors["orthographic"])
    assert output.translation[1, 2] == output.translation[3, 2] == ORTHOGRAPHIC_DEPTH
    assert output.translation[0, 2] != ORTHOGRAPHIC_DEPTH
