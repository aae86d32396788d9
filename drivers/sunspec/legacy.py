"""Legacy SunSpec control of a power stage that has no 704: models 123 (immediate controls) and 124
(basic storage controls), through the checked write path of :mod:`drivers.sunspec.write`.

What the points mean here (the model text is terse; this is the reading the driver commits to):

* 124 ``StorCtl_Mod`` (bitfield) enables the charge limit (bit 0 ``CHARGE``: ``InWRte``, percent of the
  maximum charge rate) and the discharge limit (bit 1 ``DiSCHARGE``: ``OutWRte``, percent of the maximum
  discharge rate). A negative limit forces the other direction, so with both bits set the power is held
  inside ``[-InWRte, OutWRte]``: ``OutWRte = x`` and ``InWRte = -x`` pins it at ``x`` percent
  (discharging for x > 0, charging for x < 0, nothing for 0). Both percentages are taken of 124
  ``WChaMax``, the model's only power base (its ``WDisChaGra`` is also in percent of ``WChaMax``;
  the ``WDisChaMax`` that ``OutWRte``'s unit names is not a point of the model).
* 123 ``WMaxLimPct`` (uint16, percent of ``WMax``: 121 ``WMax`` where present, else 120 ``WRtg``) with
  ``WMaxLim_Ena`` limits the power *output*. It caps export; it cannot command charging (an unsigned
  percentage of the output), so without 124 a charging set point is refused (``range``). With 124 as
  well it carries the same export cap as a second limit: ``max(p, 0)``.
* Reversion: ``InOutWRte_RvrtTms`` and ``WMaxLimPct_RvrtTms`` = ``setpoint_revert_s``. These models have
  no "revert to" value (704 has ``WSetRvrt``): when the timer runs out the device drops the limits and
  returns to its own mode. That is only as safe as the device's own mode; commissioning must check it
  (the bench plant's own mode is a configurable power, 0 W by default).

Settings (``StorCtl_Mod``, ``WMaxLim_Ena``, the reversion times) are written on change only and read
back; the set points (``OutWRte``/``InWRte``, one request, and ``WMaxLimPct``) go out every time.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.errors import DriverError, where
from drivers.sunspec.device import ModelValues

ENABLED = 1
STORCTL_BOTH = 3  # CHARGE (bit 0) and DiSCHARGE (bit 1): the power is held inside [-InWRte, OutWRte]
LEGACY_READ = (120, 121, 123, 124)  # read every slow poll: the bases, scale factors and settings


@dataclass(frozen=True)
class Write:
    """Points of one model to write together."""

    model: ModelValues
    values: dict[str, float]


class LegacyControls:
    """Maps P set points and the arming of a 123/124 device to point writes (no I/O of its own)."""

    def __init__(self, name: str, revert_s: int) -> None:
        self.name = name
        self.revert_s = revert_s
        self.models: dict[int, ModelValues] = {}  # last read of 120, 121, 123, 124

    @property
    def present(self) -> bool:
        return 123 in self.models or 124 in self.models

    def _unsupported(self, text: str) -> DriverError:
        return DriverError(
            f"{where(self.name, None)}: {text}; nothing written",
            kind="unsupported",
            retryable=False,
            device=self.name,
        )

    def _refuse(self, model_id: int, point: str, text: str) -> DriverError:
        return DriverError(
            f"{where(self.name, None, what=f'{model_id} {point}')}: {text}; nothing written",
            kind="range",
            retryable=False,
            device=self.name,
        )

    def storage_base_w(self) -> float:
        """124 ``WChaMax``: what ``InWRte`` and ``OutWRte`` are percentages of."""
        base = self.models[124].value("WChaMax")
        if base is None or base <= 0:
            raise self._unsupported(f"model 124 WChaMax reads {base!r}: the rates have no base")
        return base

    def limit_base_w(self) -> float:
        """``WMax`` for 123 ``WMaxLimPct``: 121 ``WMax`` where present, else 120 ``WRtg``."""
        base = self.models[121].value("WMax") if 121 in self.models else None
        if base is None and 120 in self.models:
            base = self.models[120].value("WRtg")
        if base is None or base <= 0:
            raise self._unsupported("neither 121 WMax nor 120 WRtg reads a power: WMaxLimPct has no base")
        return base

    def arm(self) -> list[Write]:
        """The settings the set points rely on: control modes and reversion timers."""
        n = float(self.revert_s)
        out = []
        if 124 in self.models:
            out.append(Write(self.models[124], {"StorCtl_Mod": STORCTL_BOTH, "InOutWRte_RvrtTms": n}))
        if 123 in self.models:
            out.append(Write(self.models[123], {"WMaxLim_Ena": ENABLED, "WMaxLimPct_RvrtTms": n}))
        return out

    def modes(self) -> list[Write]:
        """The modes alone (sent with a safe command when they are not known to hold)."""
        out = []
        if 124 in self.models:
            out.append(Write(self.models[124], {"StorCtl_Mod": STORCTL_BOTH}))
        if 123 in self.models:
            out.append(Write(self.models[123], {"WMaxLim_Ena": ENABLED}))
        return out

    def setpoints(self, p_w: float) -> list[Write]:
        """The set point writes for ``p_w`` in the device's sign (> 0 discharge); raises ``range``
        (123 alone cannot charge, a percentage beyond 100) before anything is written."""
        out = []
        if 124 in self.models:
            base = self.storage_base_w()
            pct = p_w / base * 100.0
            if abs(pct) > 100.0:
                raise self._refuse(
                    124,
                    "OutWRte/InWRte",
                    f"set point {p_w:g} W is {pct:.1f} % of WChaMax {base:g} W, outside -100..100 %",
                )
            out.append(Write(self.models[124], {"OutWRte": pct, "InWRte": -pct}))
        if 123 in self.models:
            if p_w < 0 and 124 not in self.models:
                raise self._refuse(
                    123,
                    "WMaxLimPct",
                    f"set point {p_w:g} W is charging, but 123 WMaxLimPct only limits the power output "
                    "(0..100 % of WMax) and the device has no model 124 (storage) to command charging",
                )
            base = self.limit_base_w()
            pct = max(p_w, 0.0) / base * 100.0
            if pct > 100.0:
                raise self._refuse(
                    123, "WMaxLimPct", f"set point {p_w:g} W is {pct:.1f} % of WMax {base:g} W, above 100 %"
                )
            out.append(Write(self.models[123], {"WMaxLimPct": pct}))
        if not out:
            raise self._unsupported("has none of SunSpec models 704, 123, 124: no set point can be written")
        return out
