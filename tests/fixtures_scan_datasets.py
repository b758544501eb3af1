"""Tiny fabricated copies of THuman2.0/2.1, CAPE and RenderPeople in their real on-disk formats, for
the ``munet convert`` scan tests.

Scans are the convex hull of a fitted (fake) body, enlarged by 12 % about its centre so that it
encloses the body, with per-corner texture coordinates (a cylindrical unwrap, so vertices on the
seam have several) and a tiny JPEG texture. Fit pickles hold the real keys and dtypes, with
``scale`` and ``translation`` pickled as ``trimesh.caching.TrackedArray``. Fitted bodies are
computed here with ``smplx`` directly (hand PCA through ``smplx``'s own ``use_pca``), independently
of the converters.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import torch
import trimesh

from tests.fake_smpl import write_fake_smplx

TEXTURE_COLOURS = np.array([[230, 40, 40], [40, 200, 40], [40, 40, 230], [230, 230, 40]], np.uint8)
"""The four vertical stripes of the fabricated textures (RGB)."""


def write_smplx_male(folder: Path, seed: int = 0) -> Path:
    """``folder/SMPLX_MALE.npz``: fake SMPL-X arrays (real shapes) with a person-shaped (tall,
    narrow) template and random orthonormal hand PCA components; returns the path."""
    rng = np.random.default_rng(seed)
    components = {side: np.linalg.qr(rng.normal(size=(45, 45)))[0].astype(np.float32) for side in "lr"}
    folder.mkdir(parents=True, exist_ok=True)
    write_fake_smplx(folder, extra={f"hands_components{s}": c for s, c in components.items()}, seed=seed)
    neutral = folder / "SMPLX_NEUTRAL.npz"
    with np.load(neutral) as members:
        data = dict(members)
    data["v_template"] = (data["v_template"] * [0.5, 2.2, 0.35] + [0.0, 0.3, 0.0]).astype(np.float32)
    data["hands_meanl"] = rng.normal(scale=0.1, size=45).astype(np.float32)
    data["hands_meanr"] = rng.normal(scale=0.1, size=45).astype(np.float32)
    neutral.unlink()
    path = folder / "SMPLX_MALE.npz"
    np.savez(path, **data)
    return path


def smplx_vertices(model: Path, params: dict[str, np.ndarray]) -> np.ndarray:
    """The SMPL-X vertices (10475, 3) of THuman-style parameters (hand poses as 12 PCA
    coefficients, or 45 values when ``full_hands``), computed by ``smplx`` itself."""
    import smplx

    full = params["left_hand_pose"].size == 45
    layer = smplx.SMPLX(
        str(model), ext="npz", gender="male", use_pca=not full, num_pca_comps=12, num_betas=10, flat_hand_mean=False
    )
    tensors = {key: torch.as_tensor(np.asarray(value, np.float32).reshape(1, -1)) for key, value in params.items()}
    with torch.no_grad():
        return layer(**tensors, transl=torch.zeros(1, 3)).vertices[0].double().numpy()


def hull_scan(points: np.ndarray, grow: float = 1.12) -> tuple[np.ndarray, np.ndarray]:
    """The convex hull of ``points`` enlarged by ``grow`` about their mean: (V, 3), (F, 3) outward."""
    hull = trimesh.convex.convex_hull(points)
    centre = points.mean(0)
    return (np.asarray(hull.vertices) - centre) * grow + centre, np.asarray(hull.faces)


def corner_uvs(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F, 3, 2) cylindrical texture coordinates per face corner (u around +y, v up); a face that
    straddles the seam gets its own coordinates."""
    centre = vertices.mean(0)
    u = (np.arctan2(vertices[:, 0] - centre[0], vertices[:, 2] - centre[2]) / (2 * np.pi) + 0.5)[faces]
    wrap = u.max(1) - u.min(1) > 0.5
    u[wrap] = np.where(u[wrap] < 0.5, u[wrap] + 1.0, u[wrap])
    height = np.ptp(vertices[:, 1])
    v = ((vertices[:, 1] - vertices[:, 1].min()) / height)[faces]
    return np.stack([u, v], axis=-1)


def write_textured_obj(
    obj: Path,
    vertices: np.ndarray,
    faces: np.ndarray,
    uvs: np.ndarray,
    texture_name: str,
    material: str = "material0",
    write_texture: bool = True,
) -> None:
    """An OBJ with one ``vt`` per face corner, its ``<material>.mtl`` (``map_Kd texture_name``) and
    (``write_texture``) a 64 × 64 JPEG of four vertical stripes at ``obj.parent / texture_name``."""
    obj.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"mtllib {material}.mtl", "o scan"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"vt {u:.6f} {v:.6f}" for u, v in uvs.reshape(-1, 2)]
    lines.append(f"usemtl {material}")
    for index, face in enumerate(faces):
        lines.append("f " + " ".join(f"{v + 1}/{3 * index + k + 1}" for k, v in enumerate(face)))
    obj.write_text("\n".join(lines) + "\n")
    (obj.parent / f"{material}.mtl").write_text(
        f"newmtl {material}\nKa 1.0 1.0 1.0\nKd 1.0 1.0 1.0\nmap_Kd {texture_name}\n"
    )
    if write_texture:
        texture = np.repeat(np.repeat(TEXTURE_COLOURS[None], 64, axis=0), 16, axis=1)
        path = obj.parent / texture_name
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(texture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])


# --- THuman2.0 / 2.1 -----------------------------------------------------------------------------


def _tracked(value: np.ndarray) -> np.ndarray:
    return trimesh.caching.tracked_array(np.asarray(value, np.float64))


def thuman_params(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random SMPL-X parameters with THuman2.0's shapes and dtypes (float32, batch of one)."""
    sizes = {"betas": 10, "global_orient": 3, "body_pose": 63, "left_hand_pose": 12, "right_hand_pose": 12}
    sizes.update(jaw_pose=3, leye_pose=3, reye_pose=3, expression=10)
    params = {key: rng.normal(scale=0.15, size=(1, n)).astype(np.float32) for key, n in sizes.items()}
    params["global_orient"][0] = [0.1, 0.3, 0.05]
    return params


def write_thuman(
    root: Path, model: Path, subjects: tuple[str, ...] = ("0000", "0001", "0526")
) -> dict[str, dict[str, np.ndarray]]:
    """THuman scans ``root/<id>/<id>.obj`` (+ ``material0.mtl``, ``material0.jpeg``) and fits:
    ``0000`` in the older layout (``fits/0000/smplx_param.pkl``), others in the later one
    (``smplx/<id>.pkl``), ids ≥ 0526 with THuman2.1's keys (``pose`` (1, 165), ``trans`` =
    translation · scale). Returns per id ``scale``, ``translation`` (scan units) and the fitted body
    ``body`` (10475, 3) and hull scan ``scan`` (V, 3) in metres (the fit's frame)."""
    rng = np.random.default_rng(7)
    truth = {}
    for number, subject in enumerate(subjects):
        params = thuman_params(rng)
        scale = 1.0 + 0.3 * number  # scan units vary per scan
        translation = np.array([0.1 * number, 0.9, -0.2])
        thuman21 = int(subject) >= 526
        if thuman21:
            full = {key: value for key, value in params.items() if key not in ("left_hand_pose", "right_hand_pose")}
            full["left_hand_pose"] = rng.normal(scale=0.2, size=(1, 45)).astype(np.float32)
            full["right_hand_pose"] = rng.normal(scale=0.2, size=(1, 45)).astype(np.float32)
            full["expression"] = np.zeros((1, 10), np.float32)
            params = full
        body = smplx_vertices(model, params)
        vertices, faces = hull_scan(body)
        write_textured_obj(
            root / subject / f"{subject}.obj",
            vertices * scale + translation,
            faces,
            corner_uvs(vertices, faces),
            "material0.jpeg",
        )
        if thuman21:
            order = ("global_orient", "body_pose", "jaw_pose", "leye_pose", "reye_pose")
            pose = np.concatenate([params[k] for k in (*order, "left_hand_pose", "right_hand_pose")], axis=1)
            fit = {"pose": pose, "betas": params["betas"], "trans": _tracked(translation * scale)}
            fit["scale"] = _tracked(np.array(scale))
            path = root / "smplx" / f"{subject}.pkl"
        else:
            fit = {**params, "scale": _tracked(np.array(scale)), "translation": _tracked(translation)}
            path = root / "fits" / subject / "smplx_param.pkl" if number == 0 else root / "smplx" / f"{subject}.pkl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            pickle.dump(fit, handle, protocol=4)
        truth[subject] = {"scale": scale, "translation": translation, "body": body, "scan": vertices}
    return truth


# --- CAPE ----------------------------------------------------------------------------------------

CAPE_SEQUENCES = {("00032", "longshort_squats"): 3, ("00134", "shortlong_hips"): 2}
"""The fabricated sequences and their frame counts (00032 is male, 00134 female)."""


def cape_lbs(model: dict[str, np.ndarray], template: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """``template`` (6890, 3) posed by SMPL's blend shapes and skinning of ``model``'s arrays
    (``smplx.lbs``), no translation."""
    from smplx.lbs import lbs

    parents = torch.as_tensor(model["kintree_table"][0].astype(np.int64))
    parents[0] = -1
    with torch.no_grad():
        vertices, _ = lbs(
            torch.zeros(1, 10, dtype=torch.float64),
            torch.as_tensor(pose[None], dtype=torch.float64),
            torch.as_tensor(template, dtype=torch.float64),
            torch.as_tensor(model["shapedirs"][:, :, :10], dtype=torch.float64),
            torch.as_tensor(model["posedirs"].reshape(-1, model["posedirs"].shape[-1]).T, dtype=torch.float64),
            torch.as_tensor(np.asarray(model["J_regressor"]), dtype=torch.float64),
            parents,
            torch.as_tensor(model["weights"], dtype=torch.float64),
        )
    return vertices[0].numpy()


def write_cape(root: Path, models: Path) -> dict:
    """CAPE's layout for :data:`CAPE_SEQUENCES`: ``sequences/<subject>/<seq>/<seq>.<NNNNNN>.npz``
    (``v_cano``, ``v_posed``, ``pose``, ``transl``; frames 0, 5, 10 …), ``misc/smpl_tris.npy``,
    ``misc/subj_genders.pkl`` and ``minimal_body_shape/<subject>/<subject>_minimal.npy``. The
    minimal shape is the gendered template + ``shapedirs · betas`` + 1 mm noise; the clothes are the
    minimal shape grown by 10 % about its mean, posed the same way. Returns ``{"betas": {subject:
    (10,)}, "frames": {(subject, seq, frame number): {"body": posed minimal shape (6890, 3)
    translated, "transl", "pose"}}}``."""
    import scipy.sparse

    rng = np.random.default_rng(11)
    arrays = {}
    for gender in ("MALE", "FEMALE"):
        with open(models / f"SMPL_{gender}.pkl", "rb") as handle:
            data = pickle.load(handle, encoding="latin1")
        data["J_regressor"] = scipy.sparse.csc_matrix(data["J_regressor"]).toarray()
        arrays[gender.lower()] = data
    (root / "misc").mkdir(parents=True, exist_ok=True)
    np.save(root / "misc" / "smpl_tris.npy", arrays["male"]["f"].astype(np.int64))
    with open(root / "misc" / "subj_genders.pkl", "wb") as handle:
        pickle.dump({"00032": "male", "00134": "female"}, handle, protocol=2)
    truth: dict = {"betas": {}, "frames": {}}
    for (subject, sequence), count in CAPE_SEQUENCES.items():
        model = arrays["male" if subject == "00032" else "female"]
        betas = rng.normal(size=10)
        minimal = model["v_template"] + model["shapedirs"][:, :, :10] @ betas + rng.normal(scale=1e-3, size=(6890, 3))
        folder = root / "minimal_body_shape" / subject
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / f"{subject}_minimal.npy", minimal)
        truth["betas"][subject] = betas
        clothed = (minimal - minimal.mean(0)) * 1.1 + minimal.mean(0)
        for index in range(count):
            number = f"{5 * index:06d}"
            pose = rng.normal(scale=0.15, size=72)
            transl = np.array([0.1 * index, 0.2, -0.1])
            body = cape_lbs(model, minimal, pose) + transl
            frame = {"v_cano": clothed, "v_posed": cape_lbs(model, clothed, pose) + transl, "pose": pose}
            frame["transl"] = transl
            path = root / "sequences" / subject / sequence / f"{sequence}.{number}.npz"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, **frame)
            truth["frames"][(subject, sequence, number)] = {"body": body, "transl": transl, "pose": pose}
    return truth


# --- RenderPeople --------------------------------------------------------------------------------

RP_SCANS = {"rp_alison_posed_001": "z", "rp_ben_posed_002": "y"}
"""The fabricated scans and their up axes."""


def write_renderpeople(root: Path, model: Path) -> dict:
    """``root/<name>_OBJ/<name>_100k.obj`` in centimetres (up axis per :data:`RP_SCANS`) with
    ``<name>.mtl`` naming ``tex/<name>_dif_2k.jpg``, and the AGORA-style fit mesh
    ``root/smplx/<name>.obj`` (metres, the scan's axes). Returns per name the fit ``body`` and the
    hull ``scan`` in the +y-up world, metres."""
    rng = np.random.default_rng(3)
    truth = {}
    to_z_up = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # (x, y, z) → (x, −z, y)
    for name, up in RP_SCANS.items():
        body = smplx_vertices(model, thuman_params(rng))
        vertices, faces = hull_scan(body)
        axes = to_z_up if up == "z" else np.eye(3)
        obj = root / f"{name}_OBJ" / f"{name}_100k.obj"
        write_textured_obj(
            obj, vertices @ axes.T * 100.0, faces, corner_uvs(vertices, faces), f"tex/{name}_dif_2k.jpg", name
        )
        fit = root / "smplx" / f"{name}.obj"
        fit.parent.mkdir(parents=True, exist_ok=True)
        fit.write_text("".join(f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in body @ axes.T) + "f 1 2 3\n")
        truth[name] = {"body": body, "scan": vertices}
    return truth


# --- CAPE's raw scans and ICON's CAPE test set ---------------------------------------------------


def write_ply(path: Path, vertices: np.ndarray, faces: np.ndarray, colours: np.ndarray | None, binary: bool) -> None:
    """A PLY file as scanners write it: ``element vertex`` (float ``x y z``, optionally uchar
    ``red green blue``) and ``element face`` (``list uchar int vertex_indices``), binary little
    endian or ASCII, the values as given (no unit conversion)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ["ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0", "comment 4D scanner"]
    header += [f"element vertex {len(vertices)}", "property float x", "property float y", "property float z"]
    if colours is not None:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    header += [f"element face {len(faces)}", "property list uchar int vertex_indices", "end_header"]
    text = "\n".join(header) + "\n"
    if binary:
        fields = [("xyz", "<f4", 3)] + ([("rgb", "u1", 3)] if colours is not None else [])
        table = np.zeros(len(vertices), dtype=fields)
        table["xyz"] = vertices
        if colours is not None:
            table["rgb"] = colours
        corners = np.zeros(len(faces), dtype=[("n", "u1"), ("ids", "<i4", 3)])
        corners["n"], corners["ids"] = 3, faces
        path.write_bytes(text.encode() + table.tobytes() + corners.tobytes())
        return
    rows = [" ".join(f"{x:.4f}" for x in vertex) for vertex in vertices]
    if colours is not None:
        rows = [f"{row} {r} {g} {b}" for row, (r, g, b) in zip(rows, colours)]
    rows += [f"3 {a} {b} {c}" for a, b, c in faces]
    path.write_text(text + "\n".join(rows) + "\n")


def raw_scan_of(clothed: np.ndarray, faces: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A raw-scan-like surface from a clothed mesh, metres: every face split at its centroid (more
    vertices than the registration, another topology), 0.5 mm noise, the first 50 faces dropped (a
    hole: not watertight)."""
    centroids = clothed[faces].mean(1)
    vertices = np.concatenate([clothed, centroids]) + rng.normal(scale=5e-4, size=(len(clothed) + len(faces), 3))
    middle = len(clothed) + np.arange(len(faces))
    split = [np.stack([faces[:, a], faces[:, b], middle], 1) for a, b in ((0, 1), (1, 2), (2, 0))]
    return vertices, np.concatenate(split)[50:]


def write_cape_raw_scans(root: Path) -> dict[tuple[str, str, str], np.ndarray]:
    """``raw_scans/<subject>/<seq>/<seq>.<NNNNNN>.ply`` in millimetres beside the sequences that
    :func:`write_cape` wrote in ``root``, built from each frame's ``v_posed``: 00032 frames 0
    (binary, vertex colours) and 10 (ASCII) — frame 5 has none; 00134 frame 0 (binary, no
    colours) and frame 5 written in metres (a file in the wrong units). Returns the raw scans that
    are in millimetres, in metres, by ``(subject, seq, frame number)``."""
    rng = np.random.default_rng(13)
    faces = np.load(root / "misc" / "smpl_tris.npy")
    written = {}
    plan = {("00032", "000000"): (True, True, 1e3), ("00032", "000010"): (False, False, 1e3)}
    plan.update({("00134", "000000"): (True, False, 1e3), ("00134", "000005"): (True, False, 1.0)})
    sequences = {subject: sequence for subject, sequence in CAPE_SEQUENCES}
    for (subject, number), (binary, coloured, scale) in plan.items():
        sequence = sequences[subject]
        with np.load(root / "sequences" / subject / sequence / f"{sequence}.{number}.npz") as frame:
            vertices, scan_faces = raw_scan_of(frame["v_posed"], faces, rng)
        colours = rng.integers(0, 256, size=(len(vertices), 3)) if coloured else None
        path = root / "raw_scans" / subject / sequence / f"{sequence}.{number}.ply"
        write_ply(path, vertices * scale, scan_faces, colours, binary)
        if scale == 1e3:
            written[(subject, sequence, number)] = vertices
    return written


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """A plain OBJ (``v`` and ``f`` lines, no texture)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    path.write_text("\n".join(lines) + "\n")


ICON_CAPE_IDS = {
    "00032-shortlong-hips-000010": "male",
    "00134-longlong-ballet4_trial2-000250": "female",
    "03223-shortshort-tilt_twist_left-000020": "female",
}
"""The fabricated test ids (subject-cloth-motion-frame) and their subjects' genders."""

ICON_CAPE_HARD = ("00134-longlong-ballet4_trial2-000250", "03223-shortshort-tilt_twist_left-000020")
"""The ids listed in the fabricated ``pose.txt`` (CAPE-NFP)."""


def write_cape_icon(root: Path, models: Path) -> dict[str, dict[str, np.ndarray]]:
    """ICON's CAPE test set in ``root/cape``: ``scans/<id>.obj`` (the clothed scan: the hull of the
    body grown by 12 %, metres), ``smpl/<id>.obj`` (the posed, translated SMPL body of the subject's
    gender, 6890 vertices, SMPL's faces, metres), ``test150.txt`` (every id, with ICON's ``cape/``
    prefix on one) and ``pose.txt`` (:data:`ICON_CAPE_HARD`). Returns per id the ``body`` (6890, 3)
    and ``scan`` vertices (V, 3), metres."""
    import scipy.sparse

    rng = np.random.default_rng(17)
    folder = root / "cape"
    truth = {}
    for name, gender in ICON_CAPE_IDS.items():
        with open(models / f"SMPL_{gender.upper()}.pkl", "rb") as handle:
            model = pickle.load(handle, encoding="latin1")
        model["J_regressor"] = scipy.sparse.csc_matrix(model["J_regressor"]).toarray()
        template = model["v_template"] + model["shapedirs"][:, :, :10] @ rng.normal(size=10)
        body = cape_lbs(model, template, rng.normal(scale=0.15, size=72)) + [0.2, 0.9, -0.3]
        scan, faces = hull_scan(body)
        write_obj(folder / "scans" / f"{name}.obj", scan, faces)
        write_obj(folder / "smpl" / f"{name}.obj", body, model["f"].astype(np.int64))
        truth[name] = {"body": body, "scan": scan}
    names = list(ICON_CAPE_IDS)
    (folder / "test150.txt").write_text("\n".join([names[0], f"cape/{names[1]}", *names[2:]]) + "\n")
    (folder / "pose.txt").write_text("\n".join(ICON_CAPE_HARD) + "\n")
    return truth
