"""Selector for the protection kernel (supervisory trips, enter service, islanding, export cap).

Compiled unless V2G_EDGE_PURE_PYTHON=1. ``step(params, state, inputs, outputs)`` works on the float64
arrays laid out in edge/control/protect_types.py; build ``params`` with edge/control/protect_params.py.
"""

from __future__ import annotations

from edge import accel
from edge.control import _protect_ref

impl = accel.select("edge.control._protect_c", _protect_ref)

step = impl.step
