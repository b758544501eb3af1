"""Writing the outputs of predicted images on worker threads, while the caller goes on predicting.

Each image's outputs (:func:`munet.predict.outputs.write_outputs`: meshes, GLB, overlay rendering,
PNG, JSON) are independent of the others', and most of the work releases Python's global lock
(NumPy, OpenCV's PNG encoder, OpenGL's rasteriser, file writes): :class:`OutputWriters` writes
several images at once, each worker thread with its own :class:`~munet.data.render.Renderer` (an
OpenGL context is current in one thread at a time) and one PyTorch thread (the renderer's normals
are small operations; the caller's network keeps its own thread count). What is written does not
depend on which worker wrote it or when.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from munet.data.render import Renderer
from munet.predict.crop import PersonCrop
from munet.predict.outputs import write_outputs
from munet.predict.predictor import Prediction


class OutputWriters:
    """Worker threads writing the outputs of predicted images (a context manager).

    Args:
        display_size: side of the overlay's panels, pixels (see :func:`munet.predict.outputs.overlay_picture`).
        workers: threads writing at once (each with its own OpenGL context).
        backlog: most images submitted and not yet written; :meth:`submit` waits for a free place,
            so that a fast network never holds the crops of a whole folder in memory.

    Raises:
        EGLUnavailableError: no headless OpenGL (raised here, before any image is predicted).
        ValueError: ``workers`` or ``backlog`` below 1.
    """

    def __init__(self, display_size: int, workers: int = 2, backlog: int = 32):
        if workers < 1 or backlog < 1:
            raise ValueError(f"workers and backlog must be at least 1, got {workers} and {backlog}")
        self._renderers: list[Renderer] = []
        try:
            for _ in range(workers):
                self._renderers.append(Renderer(display_size))
        except BaseException:
            self._close_renderers()
            raise
        self._unclaimed = list(self._renderers)
        self._thread = threading.local()
        self._places = threading.BoundedSemaphore(backlog)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="munet-write", initializer=self._start_worker)

    def _start_worker(self) -> None:
        """In each worker thread, once: one PyTorch thread (per-thread setting) and its own renderer."""
        torch.set_num_threads(1)
        self._thread.renderer = self._unclaimed.pop()

    def submit(
        self, folder: Path, path: Path, crop: PersonCrop, prediction: Prediction, info: dict[str, Any]
    ) -> Future[float]:
        """Queue the outputs of one image (the arguments of
        :func:`~munet.predict.outputs.write_outputs`, less the renderer).

        Returns:
            A future of the milliseconds the worker spent writing them (not counting the wait in the
            queue); it raises what :func:`~munet.predict.outputs.write_outputs` raised.
        """
        self._places.acquire()
        try:
            future = self._pool.submit(self._write, folder, path, crop, prediction, info)
        except BaseException:
            self._places.release()
            raise
        future.add_done_callback(lambda _: self._places.release())
        return future

    def _write(self, folder: Path, path: Path, crop: PersonCrop, prediction: Prediction, info: dict[str, Any]) -> float:
        start = time.perf_counter()
        write_outputs(folder, path, crop, prediction, self._thread.renderer, info)
        return 1000.0 * (time.perf_counter() - start)

    def close(self) -> None:
        """Wait for every submitted image to be written, then release the threads and renderers."""
        try:
            self._pool.shutdown(wait=True)
        finally:
            self._close_renderers()

    def _close_renderers(self) -> None:
        while self._renderers:
            self._renderers.pop().close()

    def __enter__(self) -> OutputWriters:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
