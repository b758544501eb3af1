"""Converters from public body data sets (3DPW, Human3.6M, MPI-INF-3DHP) in their original on-disk
formats to MuNet shards (``munet convert``): one module per data set, each with a function usable
from a script or a Ray Data job, returning a :class:`~munet.convert.output.ConvertReport`."""

from munet.convert.h36m import convert_h36m
from munet.convert.mpi3dhp import convert_3dhp
from munet.convert.output import ConvertError, ConvertReport, UnitError
from munet.convert.pw3d import convert_3dpw

__all__ = ["ConvertError", "ConvertReport", "UnitError", "convert_3dhp", "convert_3dpw", "convert_h36m"]
