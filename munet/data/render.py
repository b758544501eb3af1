"""Headless rasterisation of a coloured mesh: RGB, mask, normals and depth in one OpenGL pass.

:class:`Renderer` owns one OpenGL context (moderngl over EGL: Mesa's llvmpipe on a CPU-only
machine, the GPU driver when there is one; the same code runs on both). Creating a context is slow,
so build one renderer per process and reuse it for every sample.

One draw call writes two render targets (multiple render targets): the lit colour with coverage in
alpha, and the camera-frame normal with metric depth. The frame is rendered ``supersample`` times
larger and box-filtered down, so the RGB image has anti-aliased edges while the mask stays binary
(a pixel belongs to the person when at least half of its sub-samples do). The person is then
composited over a background image (see :func:`munet.data.scene.sample_background`).

The projection is built from the OpenCV intrinsics exactly, pixel centres included: a vertex that
:func:`munet.geometry.project` sends to pixel ``(u, v)`` is rasterised at the centre of pixel
column ``u``, row ``v`` — through a perspective or an orthographic camera (``orthographic``).
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
from dataclasses import dataclass

import cv2
import numpy as np

from munet.data.camera import resize_intrinsics
from munet.geometry import vertex_normals

EGL_PACKAGES = "libegl1 libegl-mesa0 libgl1-mesa-dri"
"""Debian/Ubuntu packages that provide headless EGL on the CPU (Mesa llvmpipe)."""

_VERTEX_SHADER = """
#version 330
uniform mat4 projection;
in vec3 in_position;
in vec3 in_normal;
in vec3 in_color;
out vec3 v_normal;
out vec3 v_color;
out float v_depth;
void main() {
    gl_Position = projection * vec4(in_position, 1.0);
    v_normal = in_normal;
    v_color = in_color;
    v_depth = in_position.z;
}
"""

_FRAGMENT_SHADER = """
#version 330
uniform vec3 light_direction;
uniform float ambient;
uniform float diffuse;
in vec3 v_normal;
in vec3 v_color;
in float v_depth;
layout(location = 0) out vec4 out_color;
layout(location = 1) out vec4 out_geometry;
void main() {
    vec3 normal = normalize(v_normal);
    float lambert = max(dot(normal, -light_direction), 0.0);
    out_color = vec4(clamp(v_color * (ambient + diffuse * lambert), 0.0, 1.0), 1.0);
    out_geometry = vec4(normal, v_depth);
}
"""


class EGLUnavailableError(RuntimeError):
    """Headless OpenGL could not be initialised."""


@dataclass(frozen=True)
class Lighting:
    """A directional light plus ambient term, in the camera frame.

    Attributes:
        direction: (3,) unit vector the light travels along (camera frame; +z goes into the scene).
        ambient: ambient intensity (multiplies the vertex colour everywhere).
        diffuse: Lambertian intensity.
    """

    direction: np.ndarray
    ambient: float
    diffuse: float


@dataclass(frozen=True)
class Frame:
    """One rendered view (``S × S`` pixels).

    Attributes:
        image: (S, S, 3) uint8 RGB, the person composited over the background.
        mask: (S, S) bool, the person's silhouette.
        normal: (S, S, 3) float32 unit normals in the camera frame; zero outside the mask.
        depth: (S, S) float32 camera-frame z in metres; zero outside the mask.
    """

    image: np.ndarray
    mask: np.ndarray
    normal: np.ndarray
    depth: np.ndarray


def opengl_projection(K: np.ndarray, size: int, near: float, far: float, orthographic: bool = False) -> np.ndarray:
    """OpenGL projection (4, 4) equivalent to OpenCV intrinsics ``K`` on a ``size``² image.

    Works on camera-frame (OpenCV) coordinates directly. Window x/y equal pixel coordinates + 0.5
    (GL pixel centres sit at half-integers), and image row 0 is framebuffer row 0, so the buffer
    read back from OpenGL (bottom row first) is already in image order. Depth maps ``near``..``far``
    (metres) to NDC −1..1 (in 1 / z for a perspective camera, linearly for an orthographic one).
    ``orthographic``: ``K`` is an orthographic camera's (``u = f_x x + s y + c_x``, no division by
    the depth; :func:`munet.geometry.project`), and the clip ``w`` is 1.
    """
    fx, skew, cx = K[0]
    fy, cy = K[1, 1], K[1, 2]
    if orthographic:
        return np.array(
            [
                [2 * fx / size, 2 * skew / size, 0.0, (2 * cx + 1) / size - 1],
                [0.0, 2 * fy / size, 0.0, (2 * cy + 1) / size - 1],
                [0.0, 0.0, 2 / (far - near), -(far + near) / (far - near)],
                [0.0, 0.0, 0.0, 1.0],
            ]
        )
    return np.array(
        [
            [2 * fx / size, 2 * skew / size, (2 * cx + 1) / size - 1, 0.0],
            [0.0, 2 * fy / size, (2 * cy + 1) / size - 1, 0.0],
            [0.0, 0.0, (far + near) / (far - near), -2 * far * near / (far - near)],
            [0.0, 0.0, 1.0, 0.0],
        ]
    )


def composite(color: np.ndarray, background: np.ndarray | None, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Box-filter a super-sampled colour + coverage target (n, n, 4) uint8 to ``size``² and put it
    over ``background`` (black when ``None``): the (S, S, 3) uint8 image and the (S, S) float32
    coverage in [0, 1]."""
    color_mean = _box_downsample(color.astype(np.float32) / 255.0, size)
    coverage = color_mean[..., 3:4]
    if background is None:
        background = np.zeros((size, size, 3), np.uint8)
    image = color_mean[..., :3] + background.astype(np.float32) / 255.0 * (1 - coverage)
    return (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8), coverage[..., 0]


def resolve_frame(color: np.ndarray, geometry: np.ndarray, size: int, background: np.ndarray | None) -> Frame:
    """The :class:`Frame` of super-sampled render targets: colour + coverage (n, n, 4) uint8 and
    camera-frame normal + depth (n, n, 4) float32, box-filtered to ``size``² (the mask where at least
    half of a pixel's sub-samples are covered)."""
    image, coverage = composite(color, background, size)
    mask = coverage >= 0.5
    geometry_mean = _box_downsample(geometry, size)
    normal = geometry_mean[..., :3]
    normal = normal / np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-12)
    depth = geometry_mean[..., 3] / np.maximum(coverage, 1e-6)
    return Frame(
        image=image,
        mask=mask,
        normal=np.where(mask[..., None], normal, 0.0).astype(np.float32),
        depth=np.where(mask, depth, 0.0).astype(np.float32),
    )


def render_targets(ctx, size: int):
    """A framebuffer of ``size``² with the two render targets every renderer here draws into
    (colour + coverage as 8-bit RGBA, normal + depth as float32 RGBA) and a depth buffer."""
    targets = [ctx.renderbuffer((size, size), 4, dtype="f1"), ctx.renderbuffer((size, size), 4, dtype="f4")]
    return ctx.framebuffer(color_attachments=targets, depth_attachment=ctx.depth_renderbuffer((size, size)))


def _box_downsample(array: np.ndarray, size: int) -> np.ndarray:
    """Mean over the blocks of an (n·size, n·size, C) float32 or uint8 array → (size, size, C)
    (uint8 means rounded to the nearest level, halves up)."""
    if array.shape[0] == size:
        return array
    return cv2.resize(array, (size, size), interpolation=cv2.INTER_AREA)


def _load_llvm_users_first() -> None:
    """Import Triton (if installed) before Mesa loads its LLVM.

    Mesa's llvmpipe and Triton each bring their own LLVM; loading Triton *after* an EGL context
    exists crashes the process (segmentation fault), and torch imports Triton lazily (e.g. through
    ``torch._dynamo`` when ``roma`` or ``anny`` are first imported). Loaded in this order, both work.
    """
    if importlib.util.find_spec("triton") is not None:
        importlib.import_module("triton")


def _release_current_context() -> None:
    """Detach the EGL context that is current in this thread.

    An EGL context is current in at most one thread, and creating it leaves it current in the
    creating thread. Released, it can be made current by whichever thread renders next (Ray, for
    example, builds an actor in one thread and calls it from another); :meth:`Renderer.render`
    makes it current for the duration of each call.
    """
    egl = ctypes.CDLL("libEGL.so.1")
    egl.eglGetCurrentDisplay.restype = ctypes.c_void_p
    egl.eglMakeCurrent.argtypes = [ctypes.c_void_p] * 4
    egl.eglMakeCurrent.restype = ctypes.c_uint
    if not egl.eglMakeCurrent(egl.eglGetCurrentDisplay(), None, None, None):
        raise EGLUnavailableError("eglMakeCurrent failed to release the rendering context")


def _create_context():
    import moderngl

    _load_llvm_users_first()
    try:
        return moderngl.create_context(standalone=True, backend="egl")
    except Exception as exc:  # moderngl/glcontext raise plain Exception subclasses
        raise EGLUnavailableError(
            f"Headless OpenGL over EGL could not start ({exc}). On Debian/Ubuntu install "
            f"the Mesa EGL packages: `apt-get install {EGL_PACKAGES}` (a GPU driver that "
            "provides EGL works too)."
        ) from exc


class Renderer:
    """Reusable headless renderer for ``image_size``² frames.

    Args:
        image_size: side S of the output frames, pixels.
        supersample: render at ``supersample × S`` and box-filter down (1 disables it).

    Raises:
        EGLUnavailableError: no EGL (the message names the packages to install).
    """

    def __init__(self, image_size: int, supersample: int = 2):
        import moderngl

        if image_size <= 0 or supersample <= 0:
            raise ValueError(f"image_size and supersample must be positive, got {image_size}, {supersample}")
        self.image_size = int(image_size)
        self.supersample = int(supersample)
        self._ctx = _create_context()
        self._program = self._ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
        self._fbo = render_targets(self._ctx, self.image_size * self.supersample)
        self._ctx.enable(moderngl.DEPTH_TEST)
        self.gl_renderer = str(self._ctx.info["GL_RENDERER"])
        """The OpenGL renderer string (e.g. ``llvmpipe (LLVM 15.0.6, 256 bits)``)."""
        _release_current_context()

    def render(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        colors: np.ndarray,
        K: np.ndarray,
        lighting: Lighting,
        background: np.ndarray | None = None,
        orthographic: bool = False,
    ) -> Frame:
        """Render a mesh seen by a camera with intrinsics ``K``.

        Args:
            vertices: (V, 3) camera-frame positions, metres, all in front of the camera (z > 0).
            faces: (F, 3) vertex indices, wound counter-clockwise seen from outside.
            colors: (V, 3) per-vertex albedo in [0, 1].
            K: (3, 3) intrinsics in pixels of the ``image_size``² frame.
            lighting: light in the camera frame (see :func:`munet.data.scene.sample_lighting`).
            background: (S, S, 3) uint8 behind the person; black when ``None``.
            orthographic: ``K`` is an orthographic camera's (see :func:`opengl_projection`).
        """
        color, geometry = self._rasterize(vertices, faces, colors, K, lighting, background, orthographic, True)
        return resolve_frame(color, geometry, self.image_size, background)

    def render_picture(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        colors: np.ndarray,
        K: np.ndarray,
        lighting: Lighting,
        background: np.ndarray | None = None,
        orthographic: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """What a picture needs of :meth:`render` (same arguments): the ``(S, S, 3)`` uint8 image
        and the ``(S, S)`` bool mask, in less than half the time: the normal and depth targets
        are not read back, and the colour target is box-filtered in 8 bits (the image may differ
        from :meth:`render`'s by one grey level; the mask is the same)."""
        color, _ = self._rasterize(vertices, faces, colors, K, lighting, background, orthographic, False)
        image, coverage = composite(_box_downsample(color, self.image_size), background, self.image_size)
        return image, coverage >= 0.5

    def _rasterize(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        colors: np.ndarray,
        K: np.ndarray,
        lighting: Lighting,
        background: np.ndarray | None,
        orthographic: bool,
        with_geometry: bool,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Check the inputs and draw: the super-sampled colour target and, ``with_geometry``, the
        normal + depth target (see :meth:`_draw`)."""
        vertices = np.asarray(vertices, dtype=np.float64)
        faces = np.asarray(faces)
        colors = np.asarray(colors, dtype=np.float64)
        self._check_inputs(vertices, faces, colors, K, background)
        normals = vertex_normals(vertices, faces)
        data = np.concatenate([vertices, normals, colors], axis=1).astype(np.float32)
        depth_range = vertices[:, 2].min(), vertices[:, 2].max()
        size = self.image_size * self.supersample
        projection = opengl_projection(
            resize_intrinsics(K, self.supersample), size, 0.5 * depth_range[0], 2 * depth_range[1], orthographic
        )
        with self._ctx:  # current in this thread for the call (see _release_current_context)
            return self._draw(projection, lighting, data, faces, with_geometry)

    def _draw(
        self, projection: np.ndarray, lighting: Lighting, data: np.ndarray, faces: np.ndarray, with_geometry: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """One draw call into both render targets; returns them as (n, n, 4) uint8 / float32
        (the second ``None`` unless ``with_geometry``: it is not read back)."""
        size = self.image_size * self.supersample
        self._program["projection"].write(projection.T.astype(np.float32).tobytes())
        self._program["light_direction"].value = tuple(float(v) for v in lighting.direction)
        self._program["ambient"].value = float(lighting.ambient)
        self._program["diffuse"].value = float(lighting.diffuse)
        vbo = self._ctx.buffer(data.tobytes())
        ibo = self._ctx.buffer(faces.astype(np.int32).tobytes())
        vao = self._ctx.vertex_array(
            self._program,
            [(vbo, "3f 3f 3f", "in_position", "in_normal", "in_color")],
            index_buffer=ibo,
            index_element_size=4,
        )
        try:
            self._fbo.use()
            self._fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
            vao.render()
            color = np.frombuffer(self._fbo.read(components=4, attachment=0), np.uint8).reshape(size, size, 4)
            geometry = None
            if with_geometry:
                geometry = np.frombuffer(self._fbo.read(components=4, attachment=1, dtype="f4"), np.float32)
                geometry = geometry.reshape(size, size, 4)
        finally:
            vao.release()
            vbo.release()
            ibo.release()
        return color, geometry

    def _check_inputs(self, vertices, faces, colors, K, background) -> None:
        if vertices.ndim != 2 or vertices.shape[1] != 3:
            raise ValueError(f"vertices must have shape (V, 3), got {vertices.shape}")
        if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
            raise ValueError(f"faces must be an integer array (F, 3), got {faces.dtype} {faces.shape}")
        if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
            raise ValueError(f"faces index outside [0, {len(vertices)})")
        if colors.shape != vertices.shape:
            raise ValueError(f"colors must have shape {vertices.shape}, got {colors.shape}")
        if np.asarray(K).shape != (3, 3):
            raise ValueError(f"K must have shape (3, 3), got {np.asarray(K).shape}")
        if (vertices[:, 2] <= 0).any():
            raise ValueError("every vertex must be in front of the camera (z > 0); move the camera")
        expected = (self.image_size, self.image_size, 3)
        if background is not None and (background.shape != expected or background.dtype != np.uint8):
            raise ValueError(f"background must be uint8 {expected}, got {background.dtype} {background.shape}")

    def close(self) -> None:
        """Release the OpenGL context (the renderer cannot be used afterwards)."""
        self._ctx.release()

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
