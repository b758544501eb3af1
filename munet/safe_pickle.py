"""Reading pickles from files the user did not choose to trust, without running code from them.

A pickle names the callables that rebuild its objects, and ``pickle.load`` calls them: a pickle
from an untrusted file can run anything. :func:`load_restricted` resolves only the globals of
:func:`admitted_globals` (numpy arrays, dtypes and scalars, the latin-1 ``bytes`` of Python 2
pickles, plain Python containers; scipy sparse matrices on request; what a caller adds, e.g. an
ndarray subclass read as a plain array) and refuses any other with :class:`UnsafePickleError`
naming it. SMPL-family model files (:mod:`munet.body.smplx_backend`), 3DPW sequences, CAPE's
gender table and THuman's fits are read this way.
"""

from __future__ import annotations

import copyreg
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np


class UnsafePickleError(ValueError):
    """A pickle that holds an object the restricted unpickler does not admit.

    Attributes:
        path: the file.
        refused: ``module.name`` of the class or function it refused.
    """

    def __init__(self, path: Path, refused: str, admits: str, advice: str = ""):
        super().__init__(
            f"{path}: refused to unpickle {refused}. This file is read with a restricted unpickler that "
            f"admits only {admits}, because unpickling anything else can run arbitrary code."
            + (f" {advice}" if advice else "")
        )
        self.path = path
        self.refused = refused


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """What Python 3 pickles of protocol < 3 call (as ``_codecs.encode``) to rebuild ``bytes``;
    only the latin-1 codec is admitted."""
    if encoding.replace("_", "-").lower() not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with codec {encoding!r} is not admitted (only latin-1)")
    return text.encode("latin-1")


def admitted_globals(sparse: bool = False) -> dict[tuple[str, str], Any]:
    """``(module, name)`` → object for everything the restricted unpickler resolves (Python 2 and
    numpy 1 module names included), with scipy's sparse matrices when ``sparse``."""
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray  # type: ignore[attr-defined]
    numeric = np._core.numeric if hasattr(np, "_core") else np.core.numeric  # type: ignore[attr-defined]
    admitted: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_bytes,
    }
    for package in ("numpy.core", "numpy._core"):
        admitted[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        admitted[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        admitted[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    for module in ("copyreg", "copy_reg"):
        admitted[(module, "_reconstructor")] = copyreg._reconstructor
    for module in ("builtins", "__builtin__"):
        for kind in (object, list, dict, tuple, set, frozenset, bytearray, complex, slice):
            admitted[(module, kind.__name__)] = kind
    if sparse:
        import scipy.sparse

        for kind in ("csc", "csr", "coo"):
            for module in ("scipy.sparse", f"scipy.sparse.{kind}", f"scipy.sparse._{kind}"):
                admitted[(module, f"{kind}_matrix")] = getattr(scipy.sparse, f"{kind}_matrix")
    return admitted


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals it is given and refuses anything else."""

    def __init__(self, file: BinaryIO, path: Path, admitted: Mapping[tuple[str, str], Any], refuse: Any, encoding: str):
        super().__init__(file, encoding=encoding)
        self._path, self._admitted, self._refuse = path, admitted, refuse

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 - pickle's hook
        found = self._admitted.get((module, name))
        if found is None:
            raise self._refuse(f"{module}.{name}")
        return found

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102 - pickle's hook
        raise self._refuse(f"a persistent object {pid!r}")


def load_restricted(
    path: str | os.PathLike,
    *,
    sparse: bool = False,
    extra: Mapping[tuple[str, str], Any] | None = None,
    encoding: str = "latin1",
    advice: str = "",
) -> Any:
    """The object pickled in ``path``, built only from :func:`admitted_globals` and ``extra``.

    Args:
        sparse: admit scipy sparse matrices too.
        extra: more ``(module, name)`` → object to admit (e.g. ``("trimesh.caching",
            "TrackedArray")`` → ``numpy.ndarray``, to read an ndarray subclass as a plain array).
        encoding: how Python 2 ``str`` objects are decoded (``latin1`` keeps numpy's array bytes).
        advice: what to do, added to the message of a refusal.

    Raises:
        UnsafePickleError: the pickle refers to any other class or function (named).
        ValueError: the file is not a readable pickle (truncated, another format).
        FileNotFoundError: no such file.
    """
    path = Path(path)
    admitted = {**admitted_globals(sparse), **(extra or {})}
    admits = "numpy arrays and dtypes" + (", scipy sparse matrices" if sparse else "") + " and plain Python values"

    def refuse(what: str) -> UnsafePickleError:
        return UnsafePickleError(path, what, admits, advice)

    with open(path, "rb") as handle:
        try:
            return _RestrictedUnpickler(handle, path, admitted, refuse, encoding).load()
        except UnsafePickleError:
            raise
        except Exception as exc:  # noqa: BLE001 - damaged or foreign: say which and why
            raise ValueError(f"{path} is not a readable pickle: {type(exc).__name__}: {exc}") from exc
