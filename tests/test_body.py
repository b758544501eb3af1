"""Body models: the real Anny model and a fake SMPL file in the real format."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch
from pytorch3d.transforms import axis_angle_to_matrix

from munet.body import COCO17_NAMES, build_body_model, pelvis
from munet.body.anny_backend import load_anny, resolve_cache_dir
from munet.body.smplx_backend import UnsafePickleError, find_model_file, read_model_file
from munet.config import BodyConfig
from tests.fake_smpl import SMPL_PARENTS, write_fake_smpl, write_fake_smplx


def test_anny_mesh_is_watertight_single_component(anny_body):
    import trimesh

    out = anny_body()
    mesh = trimesh.Trimesh(out.vertices[0].numpy(), anny_body.faces.numpy(), process=False)
    assert out.vertices.dtype == torch.float32
    assert anny_body.num_vertices == 13348
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert len(mesh.split(only_watertight=False)) == 1
    assert out.joints.shape == (1, len(COCO17_NAMES), 3)
    assert torch.allclose(anny_body.joint_regressor.sum(1), torch.ones(17), atol=1e-5)


def test_anny_joints_are_anatomically_ordered(anny_body):
    joints = anny_body().joints[0]  # Anny: Z up, front is -Y, left is +X
    name = {n: joints[i] for i, n in enumerate(COCO17_NAMES)}
    assert name["nose"][2] > name["left_shoulder"][2] > name["left_hip"][2] > name["left_knee"][2]
    assert name["left_knee"][2] > name["left_ankle"][2]
    assert name["left_shoulder"][0] > 0 > name["right_shoulder"][0]
    assert name["nose"][1] < name["left_ear"][1]  # the nose is in front of the ears
    hips = pelvis(joints)
    assert torch.allclose(hips, (name["left_hip"] + name["right_hip"]) / 2)


def test_anny_batched_pose_shape_translation(anny_body):
    gen = torch.Generator().manual_seed(0)
    pose = 0.2 * torch.randn(3, anny_body.pose_dim, generator=gen)
    shape = torch.rand(3, anny_body.shape_dim, generator=gen)
    transl = torch.randn(3, 3, generator=gen)
    batched = anny_body(pose, shape, transl)
    single = anny_body(pose[1:2], shape[1:2], transl[1:2])
    assert torch.allclose(batched.vertices[1:2], single.vertices, atol=1e-5)
    moved = anny_body(pose[:1], shape[:1], transl[:1] + torch.tensor([[0.0, 0.0, 1.0]]))
    assert torch.allclose(moved.vertices - batched.vertices[:1], torch.tensor([0.0, 0.0, 1.0]), atol=1e-5)


def test_anny_is_differentiable_finite_differences(anny_body):
    """Autograd gradients of a few vertex coordinates match central finite differences."""
    anny64 = anny_body.double()
    try:
        gen = torch.Generator().manual_seed(1)
        pose = 0.3 * torch.randn(1, anny64.pose_dim, generator=gen, dtype=torch.float64)
        shape = torch.rand(1, anny64.shape_dim, generator=gen, dtype=torch.float64)
        pose.requires_grad_(True)
        shape.requires_grad_(True)
        vertex, coord = 5000, 2
        value = anny64(pose, shape).vertices[0, vertex, coord]
        grad_pose, grad_shape = torch.autograd.grad(value, (pose, shape))
        eps = 1e-5
        checks = [("pose", pose, grad_pose, i) for i in (0, 3 * 7 + 1, 3 * 30 + 2)]
        checks += [("shape", shape, grad_shape, i) for i in range(anny64.shape_dim)]
        for what, tensor, grad, index in checks:
            plus, minus = tensor.detach().clone(), tensor.detach().clone()
            plus[0, index] += eps
            minus[0, index] -= eps
            args = {"pose": (plus, shape.detach()), "shape": (pose.detach(), plus)}[what]
            args_m = {"pose": (minus, shape.detach()), "shape": (pose.detach(), minus)}[what]
            with torch.no_grad():
                numeric = (anny64(*args).vertices[0, vertex, coord] - anny64(*args_m).vertices[0, vertex, coord]) / (
                    2 * eps
                )
            assert abs(float(numeric) - float(grad[0, index])) < 1e-5 + 1e-3 * abs(float(numeric)), (what, index)
        assert grad_shape.abs().sum() > 0 and grad_pose.abs().sum() > 0
    finally:
        anny_body.float()


def test_bad_inputs_give_clear_errors(anny_body):
    with pytest.raises(ValueError, match=r"pose must have shape \(2, 312\)"):
        anny_body(torch.zeros(2, 10), torch.zeros(2, 6))
    with pytest.raises(ValueError, match="NaN"):
        anny_body(torch.full((1, anny_body.pose_dim), float("nan")))
    with pytest.raises(ValueError, match="vertices must have shape"):
        anny_body.regress_joints(torch.zeros(1, 10, 3))
    with pytest.raises(ValueError, match="Unknown body backend 'mano'"):
        build_body_model(BodyConfig(backend="mano"))
    with pytest.raises(ValueError, match="downloads non-commercial"):
        load_anny("smplx")


def test_unwritable_cache_dir_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(locked, os.W_OK):  # root ignores permission bits: use a path under a file
            target = tmp_path / "a_file"
            target.write_text("x")
            target = target / "cache"
        else:
            target = locked / "cache"
        with pytest.raises(PermissionError, match="not writable"):
            resolve_cache_dir(target)
    finally:
        locked.chmod(stat.S_IRWXU)


def test_missing_smpl_directory_names_the_expected_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="needs body.model_dir"):
        build_body_model(BodyConfig(backend="smplx", model_dir=None))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_body_model(BodyConfig(backend="smplx", model_dir=str(tmp_path / "nope")))
    with pytest.raises(FileNotFoundError, match="No SMPL_NEUTRAL.npz or SMPL_NEUTRAL.pkl in"):
        build_body_model(BodyConfig(backend="smplx", model_dir=str(tmp_path)))


def _hand_lbs(data, pose: np.ndarray, betas: np.ndarray, vertex: int) -> np.ndarray:
    """Textbook SMPL linear blend skinning of one vertex, written out independently."""
    v_shaped = data["v_template"] + data["shapedirs"] @ betas
    joints = data["J_regressor"] @ v_shaped
    rots = list(axis_angle_to_matrix(torch.from_numpy(pose.reshape(24, 3))).numpy())
    feature = np.concatenate([(r - np.eye(3)).ravel() for r in rots[1:]])
    v_posed = v_shaped[vertex] + data["posedirs"][vertex] @ feature
    world = []
    for k, parent in enumerate(SMPL_PARENTS):
        local = np.eye(4)
        local[:3, :3] = rots[k]
        local[:3, 3] = joints[k] - (joints[parent] if parent >= 0 else 0)
        world.append(local if parent < 0 else world[parent] @ local)
    blended = np.zeros((4, 4))
    for k in range(24):
        rel = world[k].copy()
        rel[:3, 3] -= world[k][:3, :3] @ joints[k]
        blended += data["weights"][vertex, k] * rel
    return (blended @ np.append(v_posed, 1.0))[:3]


def test_fake_smpl_reproduces_hand_computed_vertex(tmp_path):
    data = write_fake_smpl(tmp_path)
    body = build_body_model(BodyConfig(backend="smplx", model_dir=str(tmp_path), model_type="smpl"))
    assert body.pose_dim == 72 and body.shape_dim == 10 and body.num_vertices == 6890
    rng = np.random.default_rng(3)
    pose = rng.normal(scale=0.4, size=72)
    betas = rng.normal(size=10)
    transl = np.array([0.1, -0.2, 2.0])
    out = body(
        torch.tensor(pose[None], dtype=torch.float32),
        torch.tensor(betas[None], dtype=torch.float32),
        torch.tensor(transl[None], dtype=torch.float32),
    )
    for vertex in (0, 1234, 6000):
        expected = _hand_lbs(data, pose, betas, vertex) + transl
        np.testing.assert_allclose(out.vertices[0, vertex].numpy(), expected, atol=1e-4)
    # COCO joints: the hips come from SMPL's regressor rows 1 and 2, the nose is vertex 332.
    np.testing.assert_allclose(
        out.joints[0, 11].numpy(), data["J_regressor"][1] @ out.vertices[0].double().numpy(), atol=1e-4
    )
    np.testing.assert_allclose(out.joints[0, 0].numpy(), out.vertices[0, 332].numpy(), atol=1e-6)


def test_damaged_smpl_file_is_reported(tmp_path):
    (tmp_path / "SMPL_NEUTRAL.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="Could not read .*SMPL_NEUTRAL.pkl as an SMPL-family model file"):
        build_body_model(BodyConfig(backend="smplx", model_dir=str(tmp_path)))


class _Plant:
    """Unpickling this creates a marker file (what a hostile model file would do instead)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_smpl_pkl_is_read_without_running_its_code(tmp_path):
    """A .pkl whose unpickling would create a file: refused, naming the file and the class, and
    saying how to convert the model; the file is never created."""
    import pickle

    marker = tmp_path / "MARKER"
    data = write_fake_smpl(tmp_path / "models")
    (tmp_path / "models" / "SMPL_NEUTRAL.pkl").write_bytes(
        pickle.dumps({"v_template": data["v_template"], "f": _Plant(marker)}, protocol=2)
    )
    config = BodyConfig(backend="smplx", model_dir=str(tmp_path / "models"), model_type="smpl")
    with pytest.raises(UnsafePickleError) as error:
        build_body_model(config)
    message = str(error.value)
    path = tmp_path / "models" / "SMPL_NEUTRAL.pkl"
    assert message.startswith(f"{path}: refused to unpickle io.open. ")
    assert "admits only numpy arrays and dtypes, scipy sparse matrices and plain Python values" in message
    assert f"python -m munet.body convert {path} --trust-pickle" in message and "SMPL_NEUTRAL.npz" in message
    assert not marker.exists()
    # Other protocols and a class given by its Python 2 name are refused alike.
    for protocol in (0, 4, 5):
        path.write_bytes(pickle.dumps([_Plant(marker)], protocol=protocol))
        with pytest.raises(UnsafePickleError, match="refused to unpickle io.open"):
            read_model_file(path)
    path.write_bytes(b"c__builtin__\neval\n(S'open(\"" + str(marker).encode() + b'", "w")\'\ntR.')
    with pytest.raises(UnsafePickleError, match=r"refused to unpickle __builtin__\.eval"):
        read_model_file(path)
    assert not marker.exists()


def test_converted_npz_is_the_same_model(tmp_path):
    """``python -m munet.body convert`` writes the arrays as .npz, which is then preferred and
    gives the same body as the .pkl."""
    from munet.body.__main__ import main as body_main

    write_fake_smpl(tmp_path)
    config = BodyConfig(backend="smplx", model_dir=str(tmp_path), model_type="smpl")
    pose = torch.full((1, 72), 0.1)
    from_pkl = build_body_model(config)(pose).vertices
    body_main(["convert", str(tmp_path / "SMPL_NEUTRAL.pkl")])
    assert find_model_file(tmp_path, "smpl", "neutral") == tmp_path / "SMPL_NEUTRAL.npz"
    (tmp_path / "SMPL_NEUTRAL.pkl").unlink()
    assert torch.allclose(build_body_model(config)(pose).vertices, from_pkl)


def test_smplx_npz_object_members_are_never_unpickled(tmp_path):
    """SMPL-X .npz files hold object members (``joint2num``), which smplx reads with
    ``allow_pickle=True``: ours skips them, so a hostile member runs nothing."""
    marker = tmp_path / "MARKER"
    hostile = np.empty(1, dtype=object)
    hostile[0] = _Plant(marker)
    write_fake_smplx(tmp_path, extra={"joint2num": hostile})
    body = build_body_model(BodyConfig(backend="smplx", model_dir=str(tmp_path), model_type="smplx"))
    assert not marker.exists()
    assert body.num_vertices == 10475 and body.pose_dim == 66
    out = body(torch.full((1, 66), 0.1))
    assert torch.isfinite(out.vertices).all() and out.joints.shape == (1, 17, 3)
