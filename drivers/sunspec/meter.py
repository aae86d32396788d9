"""Site meter over SunSpec: models 201 (single phase), 202 (split phase), 203 (wye), 204 (delta).

One read per poll covers the whole meter model (107 registers with the header), so every value comes
with its scale factor from the same request. Sign: SunSpec meters report W > 0 for import (from the
grid into the metered site) unless mounted the other way round; ``meter_sign = "export_positive"``
flips P, Q and swaps the energy counters. SunSpec 20x meters have no update counter, but their energy
registers (``TotWhImp`` + ``TotWhExp``) advance as long as the meter measures, whatever its power value
does: the reading carries their sum as ``e_counter_wh``, and kernel II judges a frozen meter by it
(docs/protection.md). A steady load on a coarse meter keeps the same W for minutes; its energy still moves.
"""

from __future__ import annotations

import math

from drivers.capabilities import MeterReading
from drivers.config import DeviceConfig
from drivers.errors import DriverError, where
from drivers.poll import Block, PolledDevice
from drivers.sunspec.device import ModelValues, SunSpecDevice
from drivers.sunspec.discovery import ModelInstance
from drivers.transport import DeviceLink

METER_MODELS = (203, 204, 202, 201)


def _signed_pf(pf_pct: float | None, p: float) -> float | None:
    if pf_pct is None:
        return None
    return math.copysign(min(1.0, abs(pf_pct) / 100.0), p)


class SunSpecMeter(PolledDevice[MeterReading]):
    """A SunSpec meter serving the ``SiteMeter`` capability."""

    def __init__(self, name: str, link: DeviceLink, config: DeviceConfig) -> None:
        super().__init__(name, link, config)
        self.device = SunSpecDevice(link, config.sunspec_base)
        self.model: ModelInstance | None = None
        self._sign = -1.0 if config.meter_sign == "export_positive" else 1.0
        # q_sign names the device's reactive convention relative to the grid: "injection_positive"
        # means VAR > 0 flows into the grid, i.e. the opposite of import.
        self._q_sign = -self._sign if config.q_sign == "injection_positive" else self._sign

    async def setup(self) -> None:
        await self.device.discover()
        self.model = self.device.require(*METER_MODELS)
        await self.device.read_model(self.model)

    def plan(self) -> list[Block]:
        if self.model is None:
            return []
        addr, count = self.device.span(self.model)
        return [Block(f"model {self.model.id}", 3, addr, count, self.config.poll_s)]

    async def _read(self) -> MeterReading:
        assert self.model is not None
        addr, count = self.device.span(self.model)
        regs = await self.link.read(addr, count, what=f"meter model {self.model.id}")
        return self.decode(self.device.decode_block(self.model, regs))

    def decode(self, m: ModelValues) -> MeterReading:
        w = m.value("W")
        if w is None:
            raise DriverError(
                f"{where(self.name, m.instance.start + m.layout['W'].offset, what='W')}: total power is "
                "not implemented or its scale factor W_SF is absent",
                kind="garbage",
                retryable=True,
                device=self.name,
                register=m.instance.start + m.layout["W"].offset,
            )
        s = self._sign
        p = s * w
        q = m.value("VAR")
        imp, exp = m.value("TotWhImp"), m.value("TotWhExp")
        if s < 0:
            imp, exp = exp, imp
        # Both registers are mandatory in 201-204, so an accumulator reading as "not implemented" (an
        # acc32 0) is a count of zero: a site that never exported. Without their scale factor, nothing.
        counter = None if m.sf("TotWhImp") is None else (imp or 0.0) + (exp or 0.0)

        def phase(path: str) -> float | None:
            v = m.value(path)
            return None if v is None else s * v

        return MeterReading(
            t_s=m.t_s,
            p_site_import_w=p,
            q_site_import_var=None if q is None else self._q_sign * q,
            pf_site=_signed_pf(m.value("PF"), p),
            v_l1_v=m.value("PhVphA"),
            v_l2_v=m.value("PhVphB"),
            v_l3_v=m.value("PhVphC"),
            f_hz=m.value("Hz"),
            i_a=None if (a := m.value("A")) is None else abs(a),
            p_l1_import_w=phase("WphA"),
            p_l2_import_w=phase("WphB"),
            p_l3_import_w=phase("WphC"),
            e_import_wh=imp,
            e_export_wh=exp,
            e_counter_wh=counter,
        )
