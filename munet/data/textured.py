"""Headless rendering of a textured triangle mesh (a scan with UVs and a texture image).

The camera convention is that of :mod:`munet.data.render` exactly: OpenCV intrinsics ``K`` in
pixels of an ``S × S`` frame, pixel centres included, camera-frame (OpenCV) vertex positions in
metres, projected by :func:`munet.data.render.opengl_projection` (perspective or orthographic). One draw call writes the
textured colour (with coverage in alpha) and the camera-frame normal with metric depth; the frame
is rendered ``supersample`` times larger and box-filtered down (binary mask: at least half of a
pixel's sub-samples covered). The context is created the same way as :class:`~munet.data.render.Renderer`'s
(moderngl over EGL: llvmpipe on a CPU, the GPU driver where there is one).

Texture coordinates are per face corner, OBJ convention: ``(u, v)`` with ``v`` pointing up the
image (``(0, 0)`` is the bottom-left corner of the texture image, ``(1, 1)`` its top-right); the
texture is sampled bilinearly from mipmaps. The colour is the texel times ``ambient + diffuse ·
lambert`` of an optional :class:`~munet.data.render.Lighting` (default: the texture unlit, as scan
textures have their lighting baked in). Normals are interpolated vertex normals (area-weighted,
from the faces' winding), as in :mod:`munet.data.render`.
"""

from __future__ import annotations

import numpy as np

from munet.data.camera import resize_intrinsics
from munet.data.render import (
    Frame,
    Lighting,
    _create_context,
    _release_current_context,
    opengl_projection,
    render_targets,
    resolve_frame,
)
from munet.geometry import vertex_normals

_VERTEX_SHADER = """
#version 330
uniform mat4 projection;
in vec3 in_position;
in vec3 in_normal;
in vec2 in_uv;
out vec3 v_normal;
out vec2 v_uv;
out float v_depth;
void main() {
    gl_Position = projection * vec4(in_position, 1.0);
    v_normal = in_normal;
    v_uv = in_uv;
    v_depth = in_position.z;
}
"""

_FRAGMENT_SHADER = """
#version 330
uniform sampler2D albedo;
uniform vec3 light_direction;
uniform float ambient;
uniform float diffuse;
in vec3 v_normal;
in vec2 v_uv;
in float v_depth;
layout(location = 0) out vec4 out_color;
layout(location = 1) out vec4 out_geometry;
void main() {
    vec3 normal = normalize(v_normal);
    float lambert = max(dot(normal, -light_direction), 0.0);
    vec3 texel = texture(albedo, vec2(v_uv.x, 1.0 - v_uv.y)).rgb;
    out_color = vec4(clamp(texel * (ambient + diffuse * lambert), 0.0, 1.0), 1.0);
    out_geometry = vec4(normal, v_depth);
}
"""

UNLIT = Lighting(direction=np.array([0.0, 0.0, 1.0]), ambient=1.0, diffuse=0.0)
"""The texture as it is (no shading)."""


class TexturedRenderer:
    """Reusable headless renderer of textured meshes into ``image_size``² frames.

    The last texture uploaded is kept on the device: rendering several views of one scan with the
    same texture array (the same object) uploads it once.

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
        self._texture = None
        self._texture_source: np.ndarray | None = None
        self.gl_renderer = str(self._ctx.info["GL_RENDERER"])
        """The OpenGL renderer string."""
        _release_current_context()

    def render(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        uvs: np.ndarray,
        texture: np.ndarray,
        K: np.ndarray,
        lighting: Lighting = UNLIT,
        background: np.ndarray | None = None,
        orthographic: bool = False,
    ) -> Frame:
        """Render a textured mesh seen by a camera with intrinsics ``K``.

        Args:
            vertices: (V, 3) camera-frame (OpenCV) positions, metres, all in front of the camera.
            faces: (F, 3) vertex indices; the winding gives the normals' side (outward when the
                mesh winds counter-clockwise seen from outside). Back faces are drawn too (scans
                are not watertight).
            uvs: (F, 3, 2) texture coordinates of each face corner, OBJ convention (``v`` up).
            texture: (H, W, 3) uint8 RGB texture image, row 0 at the top.
            K: (3, 3) intrinsics in pixels of the ``image_size``² frame.
            lighting: light in the camera frame; default :data:`UNLIT`.
            background: (S, S, 3) uint8 behind the person; black when ``None``.
            orthographic: ``K`` is an orthographic camera's (no division by the depth; the
                vertices keep a nominal depth in front of the camera).

        Returns:
            The frame (RGB, mask, camera-frame normals, depth), as :class:`munet.data.render.Frame`.
        """
        vertices = np.asarray(vertices, dtype=np.float64)
        faces = np.asarray(faces)
        uvs = np.asarray(uvs, dtype=np.float64)
        self._check_inputs(vertices, faces, uvs, texture, K, background)
        normals = vertex_normals(vertices, faces)
        corners = faces.reshape(-1)
        data = np.concatenate([vertices[corners], normals[corners], uvs.reshape(-1, 2)], axis=1).astype(np.float32)
        near, far = 0.5 * vertices[:, 2].min(), 2 * vertices[:, 2].max()
        size = self.image_size * self.supersample
        projection = opengl_projection(resize_intrinsics(K, self.supersample), size, near, far, orthographic)
        with self._ctx:
            color, geometry = self._draw(projection, lighting, data, texture)
        return resolve_frame(color, geometry, self.image_size, background)

    def _upload(self, texture: np.ndarray) -> None:
        """Make ``texture`` the bound texture (uploaded unless it is the array uploaded last)."""
        import moderngl

        if self._texture is not None and self._texture_source is texture:
            return
        if self._texture is not None:
            self._texture.release()
        height, width = texture.shape[:2]
        self._texture = self._ctx.texture((width, height), 3, np.ascontiguousarray(texture).tobytes(), alignment=1)
        self._texture.build_mipmaps()
        self._texture.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
        self._texture.repeat_x = self._texture.repeat_y = True
        self._texture_source = texture

    def _draw(
        self, projection: np.ndarray, lighting: Lighting, data: np.ndarray, texture: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """One draw call (non-indexed: one vertex per face corner) into both render targets:
        (n, n, 4) uint8 colour + coverage and (n, n, 4) float32 normal + depth."""
        size = self.image_size * self.supersample
        self._upload(texture)
        self._texture.use(location=0)
        self._program["albedo"].value = 0
        self._program["projection"].write(projection.T.astype(np.float32).tobytes())
        self._program["light_direction"].value = tuple(float(v) for v in lighting.direction)
        self._program["ambient"].value = float(lighting.ambient)
        self._program["diffuse"].value = float(lighting.diffuse)
        vbo = self._ctx.buffer(data.tobytes())
        vao = self._ctx.vertex_array(self._program, [(vbo, "3f 3f 2f", "in_position", "in_normal", "in_uv")])
        try:
            self._fbo.use()
            self._fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
            vao.render()
            color = np.frombuffer(self._fbo.read(components=4, attachment=0), np.uint8).reshape(size, size, 4)
            geometry = np.frombuffer(self._fbo.read(components=4, attachment=1, dtype="f4"), np.float32)
        finally:
            vao.release()
            vbo.release()
        return color, geometry.reshape(size, size, 4)

    def _check_inputs(self, vertices, faces, uvs, texture, K, background) -> None:
        if vertices.ndim != 2 or vertices.shape[1] != 3:
            raise ValueError(f"vertices must have shape (V, 3), got {vertices.shape}")
        if not np.isfinite(vertices).all():
            raise ValueError("vertices hold NaN or infinite values")
        if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer) or not len(faces):
            raise ValueError(f"faces must be a non-empty integer array (F, 3), got {faces.dtype} {faces.shape}")
        if faces.min() < 0 or faces.max() >= len(vertices):
            raise ValueError(f"faces index outside [0, {len(vertices)})")
        if uvs.shape != (len(faces), 3, 2):
            raise ValueError(f"uvs must have shape ({len(faces)}, 3, 2) (per face corner), got {uvs.shape}")
        texture = np.asarray(texture)
        if texture.ndim != 3 or texture.shape[2] != 3 or texture.dtype != np.uint8:
            raise ValueError(f"texture must be uint8 (H, W, 3) RGB, got {texture.dtype} {texture.shape}")
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

    def __enter__(self) -> TexturedRenderer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
