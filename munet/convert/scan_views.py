"""Rendering scanned people (THuman2, CAPE, RenderPeople) the way ICON/ECON do, as MuNet samples.

Protocol (ICON/ECON's framing): the views turn around the vertical axis in yaw steps (36 training
views, 10° apart; test views 0°, 120°, 240°), the person centred on the fitted pelvis horizontally
(``x``, ``z``; the bounding box middle when there is no fit) and on the middle of the scan's
bounding box vertically (``y``), framed as ICON frames a scan scaled to a height of 1.8 units in a
view 2 units across (the person spans 90 % of the image height).

The camera (``projection``, ``munet convert --camera``) is **orthographic** by default, as ICON's:
``f = 0.9 · S / height`` pixels per metre, so that the person spans 90 % of the image height.
A **perspective** camera sees the same framing from afar: focal length ``f = 0.9 · S · distance /
height`` pixels (``5 S``), near-orthographic. Both have the principal point at the image centre and
stand :data:`DISTANCE_IN_HEIGHTS` × (height / 1.8) in front of the centre — 10 m for a 1.8 m person
(the orthographic camera's nominal depth: the stored camera-frame geometry is the same for both
kinds, only ``K`` and the projection differ). Every sample records its ``projection`` in
``camera.json`` and ``meta.json``, its ``yaw_degrees`` and the camera distance in ``meta.json``.

Frames and units: the *world* is the data set's scan frame converted to metres (each converter
documents its unit conversion) with +y up and the person facing +z (SMPL's canonical frame); the
1.8 normalisation is used for framing only, never stored. A view of yaw θ sees the person turned
by θ about +y: ``R = diag(1, −1, −1) · R_y(θ)`` (OpenCV camera: x right, y down, z forward) and
``t = −R c + (0, 0, distance)`` with ``c`` the centre above. Everything stored is in that camera
frame, metres: the body mesh, its COCO-17 joints, the scan (target ``cloth``) and its surface
samples.

The scan is the target ``cloth``: its vertices and faces as the file winds them (scans are not
watertight; nothing here assumes they are), ``face_labels`` all 0 (no garment segmentation), and
``points``/``normals`` sampled uniformly by area on its triangles, once per subject (seeded by the
subject), with the faces' normals. Every view stores the whole mesh, so a scan of more than
``scan_faces`` (:data:`SCAN_FACES`, ``munet convert --scan-faces``; 0 keeps every face) triangles is
stored decimated to that budget, once per subject, by quadric edge collapse
(:func:`decimate_scan`): at the default, a reconstruction's ICON Chamfer/P2S against the stored
scan is within a few hundredths of a nominal cm of its score against the full one. The images,
masks, normal maps and the surface samples ``points``/``normals`` always come from the full scan.
``meta.json`` records ``scan_faces`` (the file's), ``stored_faces`` and ``scan_decimation``
(``quadric``, ``none``, or ``failed: …`` when the library could not decimate the scan and the full
mesh is stored; also logged as a warning). Images are rendered with the scan's texture, unlit (the
texture holds the lighting), over a black background; the mask and the camera-frame normal map come
from the same pass (:class:`munet.data.textured.TexturedRenderer`).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from munet.convert.output import ConvertReport, Skip, Unit, UnitError, write_units
from munet.data.camera import ORTHOGRAPHIC, PERSPECTIVE, Camera
from munet.data.generate import sample_surface
from munet.data.render import Lighting
from munet.data.schema import BodyRecord, ClothRecord, SampleRecord, make_key
from munet.data.textured import UNLIT, TexturedRenderer
from munet.geometry import project

log = logging.getLogger(__name__)

DISTANCE_IN_HEIGHTS = 10.0
"""Camera distance in ICON's normalised units (the person 1.8 units tall): 10 m for a 1.8 m person."""

NORMALISED_HEIGHT = 1.8
"""ICON's framing: the scan scaled to this height ..."""

VIEW_SPAN = 2.0
"""... seen in a view this many units across (the person fills 90 % of the image height)."""

TRAIN_YAWS = tuple(range(0, 360, 10))
"""ICON's 36 training views, degrees."""

TEST_YAWS = (0, 120, 240)
"""ICON's test views, degrees."""

PLAIN_LIGHTING = Lighting(
    direction=np.array([0.3, 0.4, 1.0]) / np.linalg.norm([0.3, 0.4, 1.0]), ambient=0.45, diffuse=0.6
)
"""Shading of scans without a texture (CAPE): a plain colour lit from the camera's upper left."""

PLAIN_COLOUR = np.array([[[200, 200, 200]]], np.uint8)
"""The colour of scans without a texture (a 1 × 1 texture)."""

SCAN_FACES = 25_000
"""Default face budget of the scan every view stores (``cloth``); 0 keeps the full scan. Measured on
a 106k-face textured scan at 512²: 0.82 MB per sample instead of 2.36 MB (the ``cloth`` member
0.58 MB instead of 2.11 MB); the stored surface lies 0.13 nominal cm from the full one (ICON's
Chamfer between them, mostly sub-millimetre scanner noise smoothed away), and a reconstruction
about 2 cm off scores within 0.02 nominal cm of its score against the full scan."""

DECIMATION_AGGRESSION = (3, 7)
"""``fast_simplification``'s ``agg`` (0 careful … 10 fast), tried in turn until the budget is met: 3
halves the surface error of the library's default 7 at the same budget (about 0.3 s per 100k-face
scan) but may stop short of it, as anything below 3 does on a 100k-face scan."""

DECIMATION_TOLERANCE = 0.01
"""Largest change of the scan's bounding box (any side, as a share of its height) a decimation may
make; a larger one is taken for a failure of the library and the full scan is stored."""


def yaws_for(views: int | None, test: bool) -> tuple[int, ...]:
    """The view yaws in degrees: ``views`` evenly spaced from 0°, or ICON's defaults (3 test views
    0/120/240, 36 training views 10° apart).

    Raises:
        ValueError: ``views`` not in 1 … 360.
    """
    if views is None:
        return TEST_YAWS if test else TRAIN_YAWS
    if not 1 <= views <= 360:
        raise ValueError(f"views must be in 1 … 360, got {views}")
    return tuple(sorted({int(round(k * 360 / views)) % 360 for k in range(views)}))


def read_split(path: str | Path) -> list[str]:
    """The subject names of an ICON-style split list (one per line; blank lines and ``#`` comments
    ignored; the first whitespace-separated field of a line).

    Raises:
        FileNotFoundError: no such file (the message names it).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"split file {path} does not exist: give a list of subject names, one per line")
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line.split()[0])
    return names


def is_test_split(path: str | Path | None) -> bool:
    """Whether a split file is a test list (its name contains ``test``): ICON's 3 test views."""
    return path is not None and "test" in Path(path).name.lower()


# --- OBJ with MTL and texture ------------------------------------------------------------------


@dataclass
class TexturedMesh:
    """A mesh as an OBJ file holds it (vertex order kept).

    Attributes:
        vertices: (V, 3) float64, the file's units.
        faces: (F, 3) int64, polygons fan-triangulated, winding as in the file.
        uvs: (F, 3, 2) float64 texture coordinates per face corner (OBJ: ``v`` up), or ``None``.
        texture: (H, W, 3) uint8 RGB (row 0 at the top), or ``None``.
        texture_path: the texture file, when there is one.
    """

    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray | None = None
    texture: np.ndarray | None = None
    texture_path: Path | None = None


def _obj_index(token: str, count: int) -> int:
    index = int(token)
    return index - 1 if index > 0 else count + index


def read_obj(path: str | Path, with_texture: bool = True) -> TexturedMesh:
    """Read a triangle/polygon OBJ with its texture coordinates and (``with_texture``) the diffuse
    texture its MTL names (``map_Kd`` of the materials used; one texture per mesh).

    Written here rather than with ``trimesh.load``: trimesh either drops the second texture
    coordinate of a vertex on a UV seam (``maintain_order=True``) or splits the vertices there,
    while scans need both the vertex order and every corner's coordinates.

    Raises:
        UnitError: unreadable file, no faces, NaN/infinite vertices, bad indices, a missing MTL or
            texture file, or several textures (the message names the file).
    """
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise UnitError(str(path), f"cannot read the OBJ file: {exc}") from exc
    positions: list[list[str]] = []
    coords: list[list[str]] = []
    corners: list[tuple[int, int]] = []  # (vertex, uv) per triangle corner
    libraries: list[str] = []
    materials: set[str] = set()
    triangles_without_uv = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line or line[0] == "#":
            continue
        kind, _, rest = line.partition(" ")
        if kind == "v":
            positions.append(rest.split()[:3])
        elif kind == "vt":
            coords.append(rest.split()[:2])
        elif kind == "f":
            try:
                ids = []
                for token in rest.split():
                    parts = token.split("/")
                    vt = _obj_index(parts[1], len(coords)) if len(parts) > 1 and parts[1] else -1
                    ids.append((_obj_index(parts[0], len(positions)), vt))
            except ValueError as exc:
                raise UnitError(str(path), f"line {number}: bad face {line.strip()!r}") from exc
            for k in range(1, len(ids) - 1):
                triangle = (ids[0], ids[k], ids[k + 1])
                corners.extend(triangle)
                triangles_without_uv += any(vt < 0 for _, vt in triangle)
        elif kind == "mtllib":
            libraries.append(rest.strip())
        elif kind == "usemtl":
            materials.add(rest.strip())
    try:
        vertices = np.array(positions, dtype=np.float64).reshape(-1, 3)
        uv_table = np.array(coords, dtype=np.float64).reshape(-1, 2)
    except ValueError as exc:
        raise UnitError(str(path), f"unreadable vertex or texture coordinates: {exc}") from exc
    if not corners:
        raise UnitError(str(path), "holds no face")
    if not np.isfinite(vertices).all():
        bad = int((~np.isfinite(vertices).all(1)).sum())
        raise UnitError(str(path), f"{bad} vertices are NaN or infinite")
    table = np.array(corners, dtype=np.int64)
    faces = table[:, 0].reshape(-1, 3)
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise UnitError(str(path), f"a face refers to a vertex outside 1 … {len(vertices)}")
    mesh = TexturedMesh(vertices=vertices, faces=faces)
    if not with_texture:
        return mesh
    if triangles_without_uv or not len(uv_table):
        raise UnitError(str(path), f"{triangles_without_uv or len(faces)} faces have no texture coordinates (vt)")
    if table[:, 1].max() >= len(uv_table):
        raise UnitError(str(path), f"a face refers to a texture coordinate outside 1 … {len(uv_table)}")
    mesh.uvs = uv_table[table[:, 1]].reshape(-1, 3, 2)
    mesh.texture_path = _texture_file(path, libraries, materials)
    image = cv2.imread(str(mesh.texture_path), cv2.IMREAD_COLOR)
    if image is None:
        raise UnitError(str(mesh.texture_path), f"texture of {path.name} is not a readable image")
    mesh.texture = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return mesh


def _texture_file(obj: Path, libraries: Sequence[str], materials: set[str]) -> Path:
    """The diffuse texture (``map_Kd``) of the materials ``obj`` uses, from its MTL files."""
    if not libraries:
        raise UnitError(str(obj), "names no material library (mtllib): the textured scan needs its .mtl")
    textures: dict[str, Path] = {}
    for name in libraries:
        mtl = obj.parent / name
        if not mtl.is_file():
            raise UnitError(str(mtl), f"material library of {obj.name} is missing")
        current = None
        for line in mtl.read_text(errors="replace").splitlines():
            kind, _, rest = line.strip().partition(" ")
            if kind == "newmtl":
                current = rest.strip()
            elif kind == "map_Kd" and current is not None and (not materials or current in materials):
                textures[current] = obj.parent / rest.split()[-1].replace("\\", "/")
    found = sorted(set(textures.values()))
    if not found:
        raise UnitError(str(obj.parent / libraries[0]), f"names no diffuse texture (map_Kd) for {obj.name}")
    if len(found) > 1:
        raise UnitError(str(obj), f"uses {len(found)} textures {[p.name for p in found]}; one per scan is supported")
    if not found[0].is_file():
        raise UnitError(str(found[0]), f"texture named by the material of {obj.name} is missing")
    return found[0]


# --- Views -------------------------------------------------------------------------------------


@dataclass
class ScanSubject:
    """One scanned person in the world frame (metres, +y up, facing +z).

    Attributes:
        name: the unit name (subject id).
        vertices: (V, 3) scan vertices, metres.
        faces: (F, 3) scan faces, as the file winds them.
        uvs: (F, 3, 2) texture coordinates per face corner, or ``None`` (plain colour, lit).
        texture: (H, W, 3) uint8 RGB, or ``None``.
        body: the fitted body in the world frame (``pose`` with the world-frame global
            orientation, ``vertices``, ``joints``), or ``None``; ``joints_2d`` is filled per view.
        pelvis: (3,) the fitted pelvis, metres (the horizontal centre of the views), or ``None``.
        meta: extra ``meta.json`` fields (units, scale …).
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray | None
    texture: np.ndarray | None
    body: BodyRecord | None
    pelvis: np.ndarray | None
    meta: dict


def yaw_rotation(degrees: float) -> np.ndarray:
    """World → camera rotation (3, 3) of the view of yaw ``degrees``: ``diag(1, −1, −1) · R_y``."""
    angle = np.deg2rad(degrees)
    c, s = np.cos(angle), np.sin(angle)
    turn = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    return np.diag([1.0, -1.0, -1.0]) @ turn


def view_camera(
    vertices: np.ndarray, pelvis: np.ndarray | None, yaw: float, image_size: int, projection: str = ORTHOGRAPHIC
) -> Camera:
    """The camera of one view (see the module docstring): centred on the pelvis (x, z) or the
    bounding-box middle, and the bounding-box middle (y); ``projection`` ``"orthographic"`` or
    ``"perspective"``."""
    low, high = vertices.min(0), vertices.max(0)
    centre = (low + high) / 2
    if pelvis is not None:
        centre[[0, 2]] = pelvis[[0, 2]]
    height = float(high[1] - low[1])
    if not height > 0:
        raise ValueError("the scan has no height (flat in y)")
    distance = DISTANCE_IN_HEIGHTS * height / NORMALISED_HEIGHT
    focal = NORMALISED_HEIGHT / VIEW_SPAN * image_size / height  # pixels per metre at any depth
    if projection == PERSPECTIVE:
        focal *= distance  # pixels per metre at the centre's depth
    principal = (image_size - 1) / 2
    K = np.array([[focal, 0.0, principal], [0.0, focal, principal], [0.0, 0.0, 1.0]])
    R = yaw_rotation(yaw)
    return Camera(K=K, R=R, t=-R @ centre + [0.0, 0.0, distance], image_size=image_size, projection=projection)


def rotate_orientation(pose: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """``pose`` (P,) with its global orientation (axis-angle, first 3) pre-multiplied by ``rotation``."""
    turned = np.asarray(pose, np.float64).copy()
    turned[:3] = cv2.Rodrigues(rotation @ cv2.Rodrigues(np.ascontiguousarray(turned[:3]))[0])[0].ravel()
    return turned


def subject_seed(name: str) -> int:
    """A stable seed from a subject name (surface samples are the same on every run)."""
    return zlib.crc32(name.encode())


def decimate_scan(vertices: np.ndarray, faces: np.ndarray, max_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """A mesh decimated to ``max_faces`` triangles by quadric edge collapse (``fast_simplification``,
    the library behind trimesh's ``simplify_quadric_decimation``; with each
    :data:`DECIMATION_AGGRESSION` until the budget is met, else the last one's result).

    Works on open, non-manifold meshes (scans): nothing is assumed of the topology; the winding of
    the faces is kept. The result is checked: finite vertices, valid indices, at least one face,
    and a bounding box within :data:`DECIMATION_TOLERANCE` × height of the input's (of the
    vertices that faces use, on both sides: a file's unused vertices are dropped).

    Args:
        vertices: ``(V, 3)`` positions, any frame and unit.
        faces: ``(F, 3)`` vertex indices.
        max_faces: the face budget (positive).

    Returns:
        ``(V', 3)`` float64 vertices and ``(F', 3)`` int32 faces, in the frame and unit of
        ``vertices``; the input itself (as those types) when it has no more than ``max_faces`` faces.

    Raises:
        ValueError: ``max_faces`` not positive, or the library failed or gave an unusable mesh
            (the message says how).
    """
    import fast_simplification

    if max_faces <= 0:
        raise ValueError(f"max_faces must be positive, got {max_faces}")
    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces, np.int32)
    if len(faces) <= max_faces:
        return vertices, faces
    for aggression in DECIMATION_AGGRESSION:
        try:
            points, triangles = fast_simplification.simplify(vertices, faces, target_count=max_faces, agg=aggression)
        except Exception as exc:  # a C++ library on arbitrary scans: any failure means "keep the full scan"
            raise ValueError(f"quadric decimation failed: {type(exc).__name__}: {exc}") from exc
        if len(triangles) <= max_faces:
            break
    points, triangles = np.asarray(points, np.float64), np.asarray(triangles, np.int64).reshape(-1, 3)
    if not len(triangles) or triangles.min() < 0 or triangles.max() >= len(points):
        raise ValueError(
            f"quadric decimation gave {len(triangles)} faces with indices outside its {len(points)} vertices"
        )
    if not np.isfinite(points).all():
        raise ValueError("quadric decimation gave NaN or infinite vertices")
    used, before = points[np.unique(triangles)], vertices[np.unique(faces)]
    height = float(np.ptp(before[:, 1]))
    change = max(np.abs(used.min(0) - before.min(0)).max(), np.abs(used.max(0) - before.max(0)).max())
    if not change <= DECIMATION_TOLERANCE * height:
        raise ValueError(f"quadric decimation moved the bounding box by {change:.3g} (height {height:.3g})")
    return points, triangles.astype(np.int32)


def stored_scan(subject: ScanSubject, max_faces: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The scan every view of ``subject`` stores as ``cloth``: decimated to ``max_faces`` faces
    (:func:`decimate_scan`; 0 or a smaller scan: the full scan), or the full scan, with a warning,
    where the decimation fails.

    Returns:
        ``(V', 3)`` world vertices (metres), ``(F', 3)`` int32 faces, and the ``meta.json`` fields
        ``scan_faces`` (the scan's), ``stored_faces`` and ``scan_decimation`` (``"quadric"``,
        ``"none"`` or ``"failed: <reason>"``).
    """
    vertices, faces = np.asarray(subject.vertices, np.float64), np.asarray(subject.faces, np.int32)
    method = "none"
    if 0 < max_faces < len(faces):
        try:
            vertices, faces = decimate_scan(vertices, faces, max_faces)
            method = "quadric"
        except ValueError as exc:
            method = f"failed: {exc}"
            log.warning("%s: %s; storing the full scan (%d faces)", subject.name, exc, len(faces))
    meta = {"scan_faces": len(subject.faces), "stored_faces": len(faces), "scan_decimation": method}
    return vertices, faces, meta


def scan_views(
    subject: ScanSubject,
    renderer: TexturedRenderer,
    source: str,
    yaws: Sequence[int],
    cloth_points: int,
    view_prefix: str = "",
    projection: str = ORTHOGRAPHIC,
    scan_faces: int = SCAN_FACES,
) -> Iterator[SampleRecord]:
    """The samples of one scanned subject, one per yaw (increasing keys
    ``source/name/{view_prefix}{yaw:03d}``; the prefix names e.g. a frame of a sequence), seen by
    ``projection`` cameras (``"orthographic"`` or ``"perspective"``, see the module docstring).
    Each stores the scan decimated to ``scan_faces`` faces (0: the full scan; see
    :func:`stored_scan`) and surface samples of the full scan.

    Raises:
        UnitError: a degenerate scan (zero area, no height).
    """
    rng = np.random.default_rng(subject_seed(f"{subject.name}/{view_prefix}"))
    try:
        points, normals = sample_surface(rng, subject.vertices, subject.faces, cloth_points)
        cameras = [view_camera(subject.vertices, subject.pelvis, yaw, renderer.image_size, projection) for yaw in yaws]
    except ValueError as exc:
        raise UnitError(subject.name, f"degenerate scan: {exc}") from exc
    if subject.texture is None:
        texture, uvs, lighting = PLAIN_COLOUR, np.zeros((len(subject.faces), 3, 2)), PLAIN_LIGHTING
    else:
        texture, uvs, lighting = subject.texture, subject.uvs, UNLIT
    faces = np.asarray(subject.faces, np.int32)
    stored_vertices, stored_faces, stored_meta = stored_scan(subject, scan_faces)
    height = float(np.ptp(subject.vertices[:, 1]))
    for yaw, camera in zip(yaws, cameras):
        vertices = camera.world_to_camera(subject.vertices)
        frame = renderer.render(vertices, faces, uvs, texture, camera.K, lighting, orthographic=camera.orthographic)
        body = BodyRecord(backend="none")
        if subject.body is not None:
            world = subject.body
            joints = camera.world_to_camera(world.joints)
            body = BodyRecord(
                backend=world.backend,
                pose=None if world.pose is None else rotate_orientation(world.pose, camera.R),
                shape=world.shape,
                vertices=None if world.vertices is None else camera.world_to_camera(world.vertices),
                joints=joints,
                joints_2d=project(joints, camera.K, camera.orthographic),
            )
        yield SampleRecord(
            key=make_key(source, subject.name, f"{view_prefix}{yaw:03d}"),
            image=frame.image,
            mask=frame.mask,
            normal=frame.normal,
            camera=camera,
            body=body,
            cloth=ClothRecord(
                vertices=camera.world_to_camera(stored_vertices),
                faces=stored_faces,
                face_labels=np.zeros(len(stored_faces), np.uint8),
                points=camera.world_to_camera(points),
                normals=camera.directions_to_camera(normals),
            ),
            garments=[],
            extra_meta={
                **subject.meta,
                **stored_meta,
                "subject": subject.name,
                "view": int(yaw),
                "yaw_degrees": float(yaw),
                "projection": camera.projection,
                "camera_distance_m": DISTANCE_IN_HEIGHTS * height / NORMALISED_HEIGHT,
                "units": "metres",
            },
        )


def write_rendered_units(
    out: str,
    source: str,
    settings: dict[str, Any],
    units: Sequence[Unit],
    convert: Callable[[Unit, TexturedRenderer], Iterator[SampleRecord | Skip]],
    image_size: int,
    samples_per_shard: int,
    overwrite: bool,
    workers: int = 0,
    scan_faces: int = SCAN_FACES,
) -> ConvertReport:
    """:func:`~munet.convert.output.write_units` for a scan data set: ``convert(unit, renderer)``
    gets one :class:`~munet.data.textured.TexturedRenderer` of ``image_size``², made when the first
    unit needs it (a run with nothing left to convert opens no OpenGL context) and closed at the end;
    with ``workers``, each Ray worker process makes its own and keeps it for the units it converts.
    ``scan_faces`` (the budget ``convert`` gives :func:`scan_views`) is recorded in the settings."""
    renderer: list[TexturedRenderer] = []

    def with_renderer(unit: Unit) -> Iterator[SampleRecord | Skip]:
        if not renderer:
            renderer.append(TexturedRenderer(image_size))
        yield from convert(unit, renderer[0])

    try:
        return write_units(
            out,
            source,
            {**settings, "scan_faces": scan_faces},
            units,
            with_renderer,
            samples_per_shard=samples_per_shard,
            overwrite=overwrite,
            workers=workers,
        )
    finally:
        if renderer:
            renderer[0].close()
