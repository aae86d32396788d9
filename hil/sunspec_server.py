"""SunSpec devices for the bench and the tests: register images built from the official model JSON.

:class:`SunSpecImage` lays out a list of models (``SunS``, models in order, end marker) with
:func:`drivers.sunspec.models.device_image`, remembers where each point sits, and serves the image
as a pymodbus ``SimDevice`` at base 40000 (or 0 / 50000). Points are given as *raw* values (the
integers on the wire, scale factors as their own points), so a test says exactly what the device
holds, sentinels included. :meth:`SunSpecImage.set` changes points on a running server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pymodbus.simulator import DataType, SimAction, SimData, SimDevice

from drivers.sunspec import models as ssm

Raw = int | float | str | None


@dataclass(frozen=True)
class ModelSpec:
    """One model of an image: raw point values by path, counts of repeating groups, optional L."""

    id: int
    values: Mapping[str, Raw] = field(default_factory=dict)
    counts: Mapping[str, int] = field(default_factory=dict)
    length: int | None = None


class SunSpecImage:
    """A whole SunSpec register map and the address of every point in it."""

    def __init__(self, specs: Sequence[ModelSpec], base: int = 40000) -> None:
        self.base = base
        self.layouts: list[tuple[ssm.Layout, int]] = []  # (layout, start address of ID)
        parts: list[tuple[ssm.Layout, Mapping[str, Raw]]] = []
        addr = base + 2
        for spec in specs:
            values = dict(spec.values)
            # Count points hold the counts the layout was built with, unless the spec sets them.
            for name, n in spec.counts.items():
                values.setdefault(name, n)
            lay = ssm.layout(ssm.load(spec.id), spec.counts, length=spec.length)
            parts.append((lay, values))
            self.layouts.append((lay, addr))
            addr += lay.length + 2
        self.registers = ssm.device_image(parts)

    def start(self, model_id: int, index: int = 0) -> int:
        """Address of the ``ID`` register of the ``index``-th instance of ``model_id``."""
        found = [start for lay, start in self.layouts if lay.model.id == model_id]
        return found[index]

    def _layout(self, model_id: int, index: int) -> tuple[ssm.Layout, int]:
        found = [(lay, start) for lay, start in self.layouts if lay.model.id == model_id]
        return found[index]

    def address(self, model_id: int, path: str, index: int = 0) -> int:
        lay, start = self._layout(model_id, index)
        return start + lay[path].offset

    def encode(self, model_id: int, path: str, raw: Raw, index: int = 0) -> tuple[int, list[int]]:
        """(address, registers) of ``raw`` written to ``path``; also updates :attr:`registers`."""
        lay, start = self._layout(model_id, index)
        slot = lay[path]
        regs = ssm.encode(slot.point, raw)
        addr = start + slot.offset
        self.registers[addr - self.base : addr - self.base + len(regs)] = regs
        return addr, regs

    def decode(self, registers: Sequence[int], model_id: int, path: str, index: int = 0) -> Raw:
        """The raw value of ``path`` in a register list laid out like this image (e.g. a server's)."""
        lay, start = self._layout(model_id, index)
        slot = lay[path]
        off = start + slot.offset - self.base
        return ssm.decode(slot.point, list(registers[off : off + slot.point.size]))

    def sim_device(self, unit_id: int = 1, action: SimAction | None = None) -> SimDevice:
        """A pymodbus device serving the image (holding and input registers share it)."""
        data = SimData(address=self.base, values=list(self.registers), datatype=DataType.REGISTERS)
        return SimDevice(id=unit_id, simdata=[data], action=action)

    async def set(
        self, server: object, unit_id: int, model_id: int, path: str, raw: Raw, *, index: int = 0
    ) -> None:
        """Change a point on a running pymodbus server."""
        addr, regs = self.encode(model_id, path, raw, index)
        await server.async_setValues(unit_id, 16, addr, regs)  # type: ignore[attr-defined]


def charger_models(
    *,
    p_w: int = -3700,
    w_max_w: int = 11000,
    soc_pct: int = 55,
    common_length: int = 66,
    with_heartbeat: bool = True,
) -> list[ModelSpec]:
    """A bidirectional DC charger (V2G power stage) as the 700-series describes it, single port.

    Raw values: 701 W with W_SF 0, V_SF -1, Hz_SF -3, A_SF -2; ratings 11 kW / 11 kVA / ±6.6 kvar;
    704 WSet_SF 0; 714 DC port at 380 V; 713 SoC; 715 heartbeat and OpCtl.
    """
    specs = [
        ModelSpec(
            1,
            {"Mn": "V2G-Bench", "Md": "DC-V2G-11", "Vr": "1.0", "SN": "BENCH0001", "DA": 1},
            length=common_length,
        ),
        ModelSpec(
            701,
            {
                "ACType": 2,
                "St": 1,
                "InvSt": 3,
                "ConnSt": 1,
                "Alrm": 0,
                "W": p_w,
                "VA": abs(p_w),
                "Var": 0,
                "PF": 1000 if p_w >= 0 else -1000,
                "A": round(abs(p_w) / 400 / 1.732 * 100),
                "LLV": 4000,
                "LNV": 2300,
                "Hz": 50000,
                "TotWhInj": 12345,
                "TotWhAbs": 67890,
                "VL1": 2300,
                "VL2": 2301,
                "VL3": 2299,
                "A_SF": -2,
                "V_SF": -1,
                "Hz_SF": -3,
                "W_SF": 0,
                "PF_SF": -3,
                "VA_SF": 0,
                "Var_SF": 0,
                "TotWh_SF": 0,
                "TotVarh_SF": 0,
                "Tmp_SF": 0,
            },
        ),
        ModelSpec(
            702,
            {
                "WMaxRtg": w_max_w // 10,
                "VAMaxRtg": w_max_w // 10,
                "VarMaxInjRtg": 660,
                "VarMaxAbsRtg": 660,
                "WChaRteMaxRtg": w_max_w // 10,
                "WDisChaRteMaxRtg": w_max_w // 10,
                "VNomRtg": 2300,
                "WMax": w_max_w // 10,
                "WChaRteMax": w_max_w // 10,
                "WDisChaRteMax": w_max_w // 10,
                "VNom": 2300,
                "W_SF": 1,
                "PF_SF": -3,
                "VA_SF": 1,
                "Var_SF": 1,
                "V_SF": -1,
                "A_SF": 0,
                "S_SF": 0,
            },
        ),
        ModelSpec(703, {"ES": 1, "V_SF": 0, "Hz_SF": -2}),
        ModelSpec(
            704,
            {
                "WSetEna": 0,
                "WSetMod": 1,
                "WSet": 0,
                "WSetRvrt": 0,
                "WSetEnaRvrt": 0,
                "WSetRvrtTms": 0,
                "VarSetEna": 0,
                "VarSetMod": 4,
                "VarSet": 0,
                "VarSetRvrt": 0,
                "VarSetEnaRvrt": 0,
                "VarSetRvrtTms": 0,
                "WMaxLimPct_SF": 0,
                "WSet_SF": 0,
                "WSetPct_SF": 0,
                "VarSet_SF": 0,
                "VarSetPct_SF": 0,
                "PF_SF": -3,
            },
        ),
        ModelSpec(
            713,
            {"WHRtg": 7700, "WHAvail": 4235, "SoC": soc_pct, "SoH": 100, "Sta": 0, "WH_SF": 1, "Pct_SF": 0},
        ),
        ModelSpec(
            714,
            {
                "NPrt": 1,
                "DCA": -96,
                "DCW": -3650,
                "DCA_SF": -1,
                "DCV_SF": -1,
                "DCW_SF": 0,
                "DCWH_SF": 0,
                "Prt[0].PrtTyp": 2,
                "Prt[0].ID": 1,
                "Prt[0].IDStr": "EV",
                "Prt[0].DCA": -96,
                "Prt[0].DCV": 3800,
                "Prt[0].DCW": -3650,
                "Prt[0].DCSta": 1,
            },
            counts={"NPrt": 1},
        ),
    ]
    if with_heartbeat:
        specs.append(
            ModelSpec(715, {"LocRemCtl": 0, "DERHb": 1, "ControllerHb": 0, "AlarmReset": 0, "OpCtl": 1})
        )
    return specs


def meter_models(*, model_id: int = 203, w: int = 1500, common_length: int = 65) -> list[ModelSpec]:
    """A three-phase SunSpec meter: W (import positive) with W_SF 0, V_SF -1, Hz_SF -2, PF in %."""
    return [
        ModelSpec(1, {"Mn": "V2G-Bench", "Md": "Meter-3P", "SN": "M0001", "DA": 2}, length=common_length),
        ModelSpec(
            model_id,
            {
                "A": 65,
                "AphA": 22,
                "AphB": 22,
                "AphC": 21,
                "A_SF": -1,
                "PhV": 2300,
                "PhVphA": 2301,
                "PhVphB": 2300,
                "PhVphC": 2299,
                "V_SF": -1,
                "Hz": 5000,
                "Hz_SF": -2,
                "W": w,
                "WphA": w // 3,
                "WphB": w // 3,
                "WphC": w - 2 * (w // 3),
                "W_SF": 0,
                "VAR": 300,
                "VAR_SF": 0,
                "PF": 98,
                "PF_SF": 0,
                "TotWhExp": 1000,
                "TotWhImp": 250000,
                "TotWh_SF": 0,
                "Evt": 0,
            },
        ),
    ]
