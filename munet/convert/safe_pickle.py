"""Reading pickles from user files without running code from them.

A pickle names the callables that rebuild its objects, and ``pickle.load`` calls them: a pickle
from an untrusted file can run anything. :func:`load_plain_pickle` resolves only the globals that
:mod:`munet.body.smplx_backend`'s restricted unpickler admits for model files (numpy arrays,
dtypes and scalars, the latin-1 ``bytes`` of Python 2 pickles, plain Python containers), less the
scipy sparse matrices, and refuses any other with :class:`UnsafePickleFileError` naming it.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, BinaryIO

from munet.body.smplx_backend import _admitted_globals


class UnsafePickleFileError(ValueError):
    """A pickle that holds an object other than numpy arrays and plain Python values.

    Attributes:
        path: the file.
        refused: ``module.name`` of the global it refused.
    """

    def __init__(self, path: Path, refused: str):
        super().__init__(
            f"{path}: refused to unpickle {refused}: this file is read with a restricted unpickler that "
            "admits only numpy arrays and dtypes and plain Python values, because unpickling anything "
            "else can run arbitrary code"
        )
        self.path = path
        self.refused = refused


class _PlainUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, path: Path, encoding: str):
        super().__init__(file, encoding=encoding)
        self._path = path
        self._admitted = {key: value for key, value in _admitted_globals().items() if not key[0].startswith("scipy")}

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 - pickle's hook
        found = self._admitted.get((module, name))
        if found is None:
            raise UnsafePickleFileError(self._path, f"{module}.{name}")
        return found

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102 - pickle's hook
        raise UnsafePickleFileError(self._path, f"a persistent object {pid!r}")


def load_plain_pickle(path: str | os.PathLike, encoding: str = "latin1") -> Any:
    """The object pickled in ``path``, built only from numpy arrays and plain Python values.

    Args:
        encoding: how Python 2 ``str`` objects are decoded (``latin1`` keeps numpy's array bytes).

    Raises:
        UnsafePickleFileError: the pickle refers to any other class or function.
        ValueError: the file is not a readable pickle (truncated, another format).
        FileNotFoundError: no such file.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        try:
            return _PlainUnpickler(handle, path, encoding).load()
        except UnsafePickleFileError:
            raise
        except Exception as exc:  # noqa: BLE001 - damaged or foreign: say which and why
            raise ValueError(f"{path} is not a readable pickle: {type(exc).__name__}: {exc}") from exc
