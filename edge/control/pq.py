"""Selector for the P/Q kernel: compiled unless V2G_EDGE_PURE_PYTHON=1.

Build the records from this module (``PqParams()`` etc.) so they match the implementation in use; the
reference also accepts the compiled records, never the other way round.
"""

from __future__ import annotations

from collections.abc import Callable

from edge import accel
from edge.control import _pq_ref

impl = accel.select("edge.control._pq_c", _pq_ref)

PqParams: type[_pq_ref.PqParams] = impl.PqParams
PqInputs: type[_pq_ref.PqInputs] = impl.PqInputs
PqState: type[_pq_ref.PqState] = impl.PqState
PqOutputs: type[_pq_ref.PqOutputs] = impl.PqOutputs
step: Callable[[_pq_ref.PqParams, _pq_ref.PqInputs, _pq_ref.PqState, _pq_ref.PqOutputs], None] = impl.step
pack_and_step: Callable[..., None] = impl.pack_and_step
lag: Callable[[float, float, float, float, float, float], tuple[float, float]] = impl.lag
