"""Selector for the battery equivalent-circuit kernel: compiled unless V2G_EDGE_PURE_PYTHON=1."""

from __future__ import annotations

from edge import accel
from edge.estimation import _ecm_ref

impl = accel.select("edge.estimation._ecm_c", _ecm_ref)
