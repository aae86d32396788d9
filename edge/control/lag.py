"""Selector for the first-order lag kernel: compiled unless V2G_EDGE_PURE_PYTHON=1."""

from __future__ import annotations

from edge import accel
from edge.control import _lag_ref

impl = accel.select("edge.control._lag_c", _lag_ref)

LN10: float = impl.LN10
tau_from_olrt = impl.tau_from_olrt
lag_step = impl.lag_step
lag_run = impl.lag_run
