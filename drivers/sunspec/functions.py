"""The inverter's own IEEE 1547 functions: configured through SunSpec 703-712 and read back.

For each grid function the daemon's settings give an owner. A function the **inverter** owns is
written into its model with the adopt protocol (705-712: the settings into a writable curve set,
its index into ``AdptCrvReq``/``AdptCtlReq``, then ``AdptCrvRslt`` polled until COMPLETED or
FAILED; 703 enter service and the 704 constant PF / constant var points are written directly), then
enabled. A function the **daemon** owns, or that is **off**, must not run in the inverter as well:
its enable is written DISABLED. Of the reactive modes (volt-var 705, watt-var 712, constant PF and
constant var in 704) at most one runs in the inverter: when the inverter owns one, the others are
written off first, 704 ``VarSetEna`` included; when it owns none, ``VarSetEna`` is the daemon's
reactive set point channel and is left to the power stage. Then every enable point and every value
of the active set (set 1, read-only, "the current settings") is read afresh and compared with the
commissioned settings (a scaled value within one raw step, enums and counts exactly). The
inverter's anti-islanding (704 ``AntiIslEna``, where the device has it) must not read DISABLED.

The result is a :class:`FunctionsReport`; each problem names the function, the point, the value
expected and the value read. The power stage publishes a report that is not ok as
``PowerStageReading.config_problem``, and the controllers hold P = Q = 0 while it is set.

:func:`plan_from_settings` turns the daemon's ``[functions]``, resolved ``grid`` and ``inverter``
settings into a :class:`FunctionsPlan` in SunSpec units (percent of nominal voltage, percent of rated
power, Hz, seconds); it takes the settings structurally so that the driver layer does not import the
daemon.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from drivers.errors import DriverError
from drivers.sunspec.device import ModelValues, SunSpecDevice
from drivers.sunspec.write import SECONDS, CheckedWriter

DISABLED, ENABLED = 0, 1
ADOPT_IN_PROGRESS, ADOPT_COMPLETED, ADOPT_FAILED = 0, 1, 2
ADOPT_TIMEOUT_S = 5.0
ADOPT_POLL_S = 0.05
DEPT_REF_VA_MAX_PCT = 3  # 705/712 DeptRef: Q in percent of S rated, as the settings give it
PRI_REACTIVE = 1  # 705/712 Pri, 704 VarSetPri: Q kept, P reduced (the daemon's kernel does the same)
VW_DEPT_REF_W_MAX_PCT = 0
OVER_EXCITED, UNDER_EXCITED = 0, 1  # 704 PFWInj.Ext / PFWAbs.Ext
VARSET_MOD_VARS = 4  # 704 VarSetMod: VarSet in var, the power stage's set points
VARSET_MOD_VA_MAX_PCT = 3  # 704 VarSetMod: VarSetPct in percent of S rated, as the settings give it
REACTIVE_MODES = ("volt_var", "watt_var", "constant_pf", "constant_var")
# A curve the inverter owns is its permanent setting, not a set point the daemon refreshes: no
# reversion timer may swap it for another curve (705/706/711/712 ``RvrtTms``, 0 = no reversion).
NO_REVERSION = {"RvrtTms": 0.0}


@dataclass(frozen=True)
class FunctionPlan:
    """One function: its model, its owner, the set to adopt (paths relative to a curve/control set)
    and the top-level points written directly (703 has no curve sets)."""

    name: str  # the settings' name: "volt_var", "frequency_droop", ...
    model_id: int
    owner: str  # "inverter" | "daemon" | "off"
    curve: Mapping[str, float] = field(default_factory=dict)
    points: Mapping[str, float] = field(default_factory=dict)
    # Top-level points written and read back only where the device implements them (reads them as
    # other than "not implemented"): the reversion settings, which a device that has no reversion
    # for the mode need not have (it cannot fall back then either).
    if_implemented: Mapping[str, float] = field(default_factory=dict)
    enable: bool = True  # the model has enable points (``enable_points``) this function switches
    enable_points: tuple[str, ...] = ("Ena",)
    # The inverter's certified protection (must-trip curves): whoever owns the function, it is never
    # switched off (docs/safety.md); owned by the daemon or off, it is left as certified and only
    # checked to be on.
    protective: bool = False
    # Points written and read back where the function is NOT the inverter's (and the device has them):
    # what hands a shared channel back, so a mode the inverter owned before does not go on acting.
    released: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class FunctionsPlan:
    functions: tuple[FunctionPlan, ...]
    anti_islanding_owner: str = "inverter"
    # Functions the settings give to the inverter but this driver cannot configure: always a problem.
    unsupported: tuple[str, ...] = ()
    # The reactive mode the inverter owns, if any. The power stage's reactive set point (704 VarSet,
    # armed with VarSetEna on and a reversion timer) must then stay out of 704 VarSet*: this module
    # writes VarSetEna off, or owns it for constant var.
    inverter_reactive: str | None = None


@dataclass(frozen=True)
class FunctionsReport:
    ok: bool
    problems: tuple[str, ...] = ()

    def message(self) -> str | None:
        return None if self.ok else "; ".join(self.problems)


# --- settings -> plan -----------------------------------------------------------------------------


def _pct(pu: float) -> float:
    return pu * 100.0


def inverter_reactive_modes(functions: Any) -> tuple[str, ...]:
    """The reactive modes ``functions`` (edge.settings.model.Functions) gives the inverter; the settings
    checks allow one at most. While there is one, reactive power is the inverter's: the power stage
    writes no reactive set point and a dispatch may not ask for one."""
    return tuple(name for name in REACTIVE_MODES if getattr(functions, name) == "inverter")


def plan_from_settings(functions: Any, grid: Any, inverter: Any = None) -> FunctionsPlan:
    """The plan for ``functions`` (edge.settings.model.Functions), ``grid`` (resolved Grid) and
    ``inverter`` (edge.settings.model.Inverter: its ratings, the base of watt-var's charging side).

    Volt-var: 4 points, V in % of nominal, Q in % of S rated (DeptRef VA_MAX_PCT). Volt-watt: 2 points,
    P in % of rated (``p2_charging_pu``: the stage can absorb). Droop: deadbands in Hz, k per unit,
    ``PMin`` in % of rated. Trips: the enabled stages as must-trip points (threshold, clearing time),
    momentary cessation as one point at ``mc_low_pu`` / ``mc_high_pu`` when the settings ask for it.
    Enter service: the window, delay, ramp and randomized delay (703). The reactive modes: see
    :func:`_reactive_plans`. Times go out as the settings give them, never rounded here: one the
    device cannot hold at its resolution is refused by the write path (a configuration problem).
    """
    g = grid
    vv, vw, fd = g.volt_var, g.volt_watt, g.freq_droop
    plans: list[FunctionPlan] = []
    curve: dict[str, float] = {
        "ActPt": 4,
        "DeptRef": DEPT_REF_VA_MAX_PCT,
        "Pri": PRI_REACTIVE,
        "VRef": _pct(vv.v_ref_pu),
        "VRefAutoEna": ENABLED if vv.v_ref_auto else DISABLED,
        "VRefAutoTms": vv.v_ref_tau_s,
        "RspTms": vv.olrt_s,
    }
    for k, (v, q) in enumerate(
        ((vv.v1_pu, vv.q1_pu), (vv.v2_pu, vv.q2_pu), (vv.v3_pu, vv.q3_pu), (vv.v4_pu, vv.q4_pu))
    ):
        curve[f"Pt[{k}].V"] = _pct(v)
        curve[f"Pt[{k}].Var"] = _pct(q)
    plans.append(FunctionPlan("volt_var", 705, functions.volt_var, curve, if_implemented=NO_REVERSION))
    plans.append(
        FunctionPlan(
            "volt_watt",
            706,
            functions.volt_watt,
            if_implemented=NO_REVERSION,
            curve={
                "ActPt": 2,
                "DeptRef": VW_DEPT_REF_W_MAX_PCT,
                "RspTms": vw.olrt_s,
                "Pt[0].V": _pct(vw.v1_pu),
                "Pt[0].W": _pct(vw.p1_pu),
                "Pt[1].V": _pct(vw.v2_pu),
                "Pt[1].W": _pct(vw.p2_charging_pu),
            },
        )
    )
    plans.append(
        FunctionPlan(
            "frequency_droop",
            711,
            functions.frequency_droop,
            {
                "DbOf": fd.db_of_hz,
                "DbUf": fd.db_uf_hz,
                "KOf": fd.k_of,
                "KUf": fd.k_uf,
                "RspTms": fd.olrt_s,
                "PMin": round(_pct(fd.p_min_pu)),
            },
            if_implemented=NO_REVERSION,
        )
    )
    vt, ft, rt = g.voltage_trip, g.frequency_trip, g.ride_through
    unsupported = []
    if functions.voltage_trip == "inverter" and vt.ov_mean_10min.enabled:
        unsupported.append("voltage_trip: the 10-minute mean over-voltage stage has no SunSpec 708 point")
    for name, mid, stages, x, scale, mc in (
        ("voltage_trip", 707, (vt.uv1, vt.uv2), "V", 100.0, rt.mc_low_pu),
        ("voltage_trip", 708, (vt.ov1, vt.ov2), "V", 100.0, rt.mc_high_pu),
        ("frequency_trip", 709, (ft.uf1, ft.uf2), "Hz", 1.0, None),
        ("frequency_trip", 710, (ft.of1, ft.of2), "Hz", 1.0, None),
    ):
        owner = getattr(functions, name)
        on = [s for s in stages if s.enabled]
        trip: dict[str, float] = {"MustTrip.ActPt": len(on)}
        for k, s in enumerate(on):
            pickup = s.pickup_pu if x == "V" else s.pickup_hz
            trip[f"MustTrip.Pt[{k}].{x}"] = pickup * scale
            trip[f"MustTrip.Pt[{k}].Tms"] = s.clearing_s
        if mc is not None:
            trip["MomCess.ActPt"] = 1 if rt.momentary_cessation else 0
            if rt.momentary_cessation:
                trip[f"MomCess.Pt[0].{x}"] = mc * scale
                trip["MomCess.Pt[0].Tms"] = 0.0
        plans.append(FunctionPlan(name, mid, owner, trip, protective=True))
    es = g.enter_service
    plans.append(
        FunctionPlan(
            "enter_service",
            703,
            functions.enter_service,
            points={
                "ESVHi": _pct(es.v_high_pu),
                "ESVLo": _pct(es.v_low_pu),
                "ESHzHi": es.f_high_hz,
                "ESHzLo": es.f_low_hz,
                "ESDlyTms": es.delay_s,
                "ESRndTms": es.randomized_delay_s,
                "ESRmpTms": es.ramp_s,
            },
            enable=False,  # 703 ES is the permit to serve (start/stop), not the function's enable
        )
    )
    owned = inverter_reactive_modes(functions)
    reactive, problems = _reactive_plans(functions, grid, inverter, owned)
    plans.extend(reactive)
    unsupported.extend(problems)
    return FunctionsPlan(
        tuple(plans), functions.anti_islanding, tuple(unsupported), owned[0] if len(owned) == 1 else None
    )


def _reactive_plans(
    functions: Any, grid: Any, inverter: Any, inverter_owned: tuple[str, ...]
) -> tuple[list[FunctionPlan], list[str]]:
    """Watt-var (712), constant PF and constant var (704), and the problems of the reactive settings
    (``inverter_owned``: the reactive modes the inverter owns).

    Watt-var: 6 points in increasing P, the charging side's P'3, P'2, P'1 then P1, P2, P3, P in % of
    WMax (the charging side's per-unit values are of ``p_rated_charge_w``, converted to ``p_rated_w``),
    Q in % of S rated. 712 has no response-time point: the inverter's own watt-var response time
    applies, ``watt_var.olrt_s`` is the daemon's. Between P'1 and P1 the inverter interpolates from
    Q'1 to Q1, where the daemon holds Q'1 below 0 W and Q1 above (the same where Q'1 = Q1, as in the
    1547 defaults).

    Constant PF: one power factor and excitation in the settings, written for both directions
    (``PFWInj`` while discharging, ``PFWAbs`` while charging): ``inject`` is over-excited (Q > 0)
    whichever way P flows, as the daemon's kernel runs it.

    Constant var: ``VarSetMod`` = VA_MAX_PCT and ``VarSetPct`` = ``q_pu`` in % of S rated: the
    settings' own base, and a register the power stage's set points (``VarSet``, in vars) never write.
    """
    problems: list[str] = []
    if len(inverter_owned) > 1:
        problems.append(
            f"reactive modes {', '.join(inverter_owned)} all owned by the inverter: one at a time"
        )
    wv = grid.watt_var
    charge_to_wmax = 1.0 if inverter is None else inverter.p_rated_charge_w / inverter.p_rated_w
    if inverter is None and functions.watt_var == "inverter":
        problems.append(
            "watt_var: owner 'inverter' needs the inverter ratings (the charging side is per unit of "
            "p_rated_charge_w, 712 takes % of WMax): plan_from_settings(functions, grid, inverter)"
        )
    points = (
        (wv.p3_charging_pu * charge_to_wmax, wv.q3_charging_pu),
        (wv.p2_charging_pu * charge_to_wmax, wv.q2_charging_pu),
        (wv.p1_charging_pu * charge_to_wmax, wv.q1_charging_pu),
        (wv.p1_pu, wv.q1_pu),
        (wv.p2_pu, wv.q2_pu),
        (wv.p3_pu, wv.q3_pu),
    )
    curve: dict[str, float] = {"ActPt": len(points), "DeptRef": DEPT_REF_VA_MAX_PCT, "Pri": PRI_REACTIVE}
    for k, (p, q) in enumerate(points):
        curve[f"Pt[{k}].W"] = _pct(p)
        curve[f"Pt[{k}].Var"] = _pct(q)
    pf = grid.constant_pf
    ext = OVER_EXCITED if pf.excitation == "inject" else UNDER_EXCITED
    # An owned mode is the inverter's permanent setting, written once (on change only: EEPROM wear)
    # and never refreshed. A reversion timer (``VarSetRvrtTms``, ``PFW*RvrtTms``) is for set points a
    # controller keeps writing: armed here, it would run out RvrtTms after this one write, daemon
    # alive or not, and the inverter would fall back to its reversion values (VarSetRvrt: 0 var by
    # the power stage's arm) while the read-back, done once now, still said all is well. So the
    # reversion of the owned mode is switched off (``*EnaRvrt`` DISABLED) and its timer is 0, "no
    # reversion" for a device that reads the timer rather than the enable. The daemon's death needs
    # no fallback here: like volt-var in the inverter, the certified function keeps running.
    return [
        FunctionPlan("watt_var", 712, functions.watt_var, curve, if_implemented=NO_REVERSION),
        FunctionPlan(
            "constant_pf",
            704,
            functions.constant_pf,
            points={"PFWInj.PF": pf.pf, "PFWInj.Ext": ext, "PFWAbs.PF": pf.pf, "PFWAbs.Ext": ext},
            if_implemented={
                "PFWInjEnaRvrt": DISABLED,
                "PFWInjRvrtTms": 0.0,
                "PFWAbsEnaRvrt": DISABLED,
                "PFWAbsRvrtTms": 0.0,
            },
            enable_points=("PFWInjEna", "PFWAbsEna"),
        ),
        FunctionPlan(
            "constant_var",
            704,
            functions.constant_var,
            points={"VarSetMod": VARSET_MOD_VA_MAX_PCT, "VarSetPct": _pct(grid.constant_var.q_pu)},
            if_implemented={"VarSetPri": PRI_REACTIVE, "VarSetEnaRvrt": DISABLED, "VarSetRvrtTms": 0.0},
            enable_points=("VarSetEna",),
            # Without a reactive mode in the inverter, VarSetEna is the daemon's own reactive set
            # point channel (the power stage arms it): not written off here. Its mode goes back to var
            # (the set points' own), so an inverter that ran constant var in percent before stops when
            # the daemon writes VarSet = 0, before any set point arms the channel again.
            enable=bool(inverter_owned),
            released={} if inverter_owned else {"VarSetMod": VARSET_MOD_VARS},
        ),
    ], problems


# --- configure and verify ---------------------------------------------------------------------------


def _set_prefix(model_id: int, index: int) -> str:
    return f"Ctl[{index}]." if model_id == 711 else f"Crv[{index}]."


def _adopt_points(model_id: int) -> tuple[str, str]:
    return ("AdptCtlReq", "AdptCtlRslt") if model_id == 711 else ("AdptCrvReq", "AdptCrvRslt")


class FunctionsConfigurator:
    """Writes a :class:`FunctionsPlan` into a device and reads every point of it back."""

    def __init__(
        self,
        device: SunSpecDevice,
        writer: CheckedWriter,
        *,
        clock: Callable[[], float] = time.monotonic,
        adopt_timeout_s: float = ADOPT_TIMEOUT_S,
    ) -> None:
        self.device = device
        self.writer = writer
        self.clock = clock
        self.adopt_timeout_s = adopt_timeout_s
        self.contact_failed = False  # a transport failure left part of the plan unchecked

    async def _read(self, model_id: int) -> ModelValues | None:
        inst = self.device.instance(model_id)
        return None if inst is None else await self.device.read_model(inst)

    def _contact(self, e: DriverError) -> None:
        if e.kind in ("timeout", "disconnected", "backoff"):
            self.contact_failed = True

    def _failed(self, f: FunctionPlan, e: DriverError, doing: str) -> str:
        """The problem of ``e`` raised while ``doing`` ``f``."""
        self._contact(e)
        if e.kind == "range":
            # A setting this device cannot take (a time finer than its scale factor): refused before
            # anything is written, alike when configuring and when checking: one problem, not two.
            return f"{f.name}: model {f.model_id} setting refused: {e}"
        return f"{f.name}: model {f.model_id} {doing}: {e}"

    async def apply(self, plan: FunctionsPlan) -> FunctionsReport:
        """Configure, then verify from a fresh read; every failure becomes a problem, never an exception
        (a transport failure is a problem too: the configuration is then unknown)."""
        problems = list(plan.unsupported)
        # Those to switch off first, then those the inverter owns: two reactive modes never run
        # together, not even between two writes.
        for f in sorted(plan.functions, key=lambda f: f.owner == "inverter"):
            try:
                problems.extend(await self._configure(f))
            except DriverError as e:
                problems.append(self._failed(f, e, "not configured"))
        try:
            problems.extend(await self._anti_islanding(plan.anti_islanding_owner))
        except DriverError as e:
            self._contact(e)
            problems.append(f"anti_islanding: model 704 AntiIslEna not checked: {e}")
        for f in plan.functions:
            try:
                problems.extend(await self._verify(f))
            except DriverError as e:
                problems.append(self._failed(f, e, "not read back"))
        return FunctionsReport(not problems, tuple(dict.fromkeys(problems)))

    async def _configure(self, f: FunctionPlan) -> list[str]:
        mv = await self._read(f.model_id)
        if mv is None:
            if f.owner == "inverter":
                return [f"{f.name}: owner 'inverter' but the device has no SunSpec model {f.model_id}"]
            return []
        if f.owner != "inverter":
            if f.enable and not f.protective:
                await self.writer.write_settings(mv, dict.fromkeys(f.enable_points, DISABLED))
            released = {p: v for p, v in f.released.items() if mv.raw(p) is not None}
            if released:
                await self.writer.write_settings(mv, released)
            return []
        points = {**f.points, **{p: v for p, v in f.if_implemented.items() if mv.raw(p) is not None}}
        if points:
            await self.writer.write_settings(mv, points)
        problems: list[str] = []
        if f.curve:
            problems = await self._adopt(f, mv)
        if f.enable and not problems:
            await self.writer.write_settings(mv, dict.fromkeys(f.enable_points, ENABLED))
        return problems

    def _writable_set(self, mv: ModelValues) -> int | None:
        """The first curve/control set the device marks writable (``ReadOnly`` = RW)."""
        k = 1
        while (ro := mv.raw(f"{_set_prefix(mv.instance.id, k)}ReadOnly")) is not None:
            if ro == 0:
                return k
            k += 1
        return None

    async def _adopt(self, f: FunctionPlan, mv: ModelValues) -> list[str]:
        if self._matches(mv, f, 0, top_level=False) == []:
            return []  # the active set already holds the settings: nothing to adopt (no EEPROM wear)
        k = self._writable_set(mv)
        if k is None:
            return [f"{f.name}: model {f.model_id} has no writable curve set (every ReadOnly reads R)"]
        prefix = _set_prefix(f.model_id, k)
        missing = [p for p in f.curve if f"{prefix}{p}" not in mv.layout.slots]
        if missing:
            return [f"{f.name}: model {f.model_id} has no points {missing} (too few curve points: NPt)"]
        await self.writer.write_settings(mv, {f"{prefix}{p}": v for p, v in f.curve.items()})
        req, rslt = _adopt_points(f.model_id)
        await self.writer.write_setpoints(mv, {req: k + 1})  # a request, not a setting: no read-back
        deadline = self.clock() + self.adopt_timeout_s
        inst = mv.instance
        lay = mv.layout
        slot = lay[rslt]
        while True:
            await asyncio.sleep(ADOPT_POLL_S)
            r = await self.device.link.read(inst.start + slot.offset, 1, what=f"{f.model_id} {rslt}")
            result = r.values[0]
            if result == ADOPT_COMPLETED:
                return []
            if result == ADOPT_FAILED:
                return [f"{f.name}: model {f.model_id} {rslt} FAILED for curve set {k + 1} ({req} = {k + 1})"]
            if result != ADOPT_IN_PROGRESS:
                return [f"{f.name}: model {f.model_id} {rslt} reads {result}, not 0/1/2"]
            if self.clock() >= deadline:
                return [
                    f"{f.name}: model {f.model_id} {rslt} still IN_PROGRESS {self.adopt_timeout_s:g} s "
                    f"after {req} = {k + 1}"
                ]

    def _matches(self, mv: ModelValues, f: FunctionPlan, index: int, *, top_level: bool = True) -> list[str]:
        """Problems of set ``index`` (and the top-level points) against the plan: a scaled value within
        one raw step (the device may round it), any other (enums, counts, times in seconds, scaled or
        not) exactly: an excitation, a mode, an enable or a time one step off is another setting."""
        problems = []
        prefix = _set_prefix(f.model_id, index)
        wanted = [(f"{prefix}{p}", v) for p, v in f.curve.items()]
        if top_level:
            wanted += list(f.points.items())
            wanted += [(p, v) for p, v in f.if_implemented.items() if mv.raw(p) is not None]
        for path, value in wanted:
            if path not in mv.layout.slots:
                problems.append(f"{f.name}: model {f.model_id} has no point {path}")
                continue
            expected = self.writer.raw(mv, path, value)
            got = mv.raw(path)
            point = mv.layout.slots[path].point
            step = 1 if point.sf is not None and point.units != SECONDS else 0
            if not isinstance(got, int) or abs(got - expected) > step:
                shown = "not implemented" if got is None else f"{mv.value(path)} (raw {got})"
                problems.append(
                    f"{f.name}: model {f.model_id} {path} expected {value:g} (raw {expected}), read {shown}"
                )
        return problems

    async def _verify(self, f: FunctionPlan) -> list[str]:
        mv = await self._read(f.model_id)
        if mv is None:
            return []  # reported by _configure when it matters
        problems = []
        if f.enable:
            want = ENABLED if f.owner == "inverter" or f.protective else DISABLED
            names = {DISABLED: "DISABLED", ENABLED: "ENABLED"}
            for point in f.enable_points:
                got = mv.raw(point)
                if got is None and want == DISABLED:
                    continue  # not implemented: the device has no such mode to leave on
                if got != want:
                    problems.append(
                        f"{f.name}: model {f.model_id} {point} expected {names[want]} (owner '{f.owner}'), "
                        f"read {names.get(got, got) if isinstance(got, int) else 'not implemented'}"
                    )
        if f.owner == "inverter":
            problems.extend(self._matches(mv, f, 0))
        else:
            for path, value in f.released.items():
                got = mv.raw(path)
                if got is not None and got != self.writer.raw(mv, path, value):
                    problems.append(
                        f"{f.name}: model {f.model_id} {path} expected {value:g} (released), read {got}"
                    )
        return problems

    async def _anti_islanding(self, owner: str) -> list[str]:
        mv = await self._read(704)
        if mv is None or "AntiIslEna" not in mv.layout.slots:
            return []
        problems = []
        if owner == "inverter" and mv.raw("AntiIslEna") != ENABLED:
            try:
                await self.writer.write_settings(mv, {"AntiIslEna": ENABLED})
            except DriverError as e:
                problems.append(f"anti_islanding: model 704 AntiIslEna expected ENABLED, write failed: {e}")
            mv = await self._read(704)
            assert mv is not None
        if mv.raw("AntiIslEna") == DISABLED:
            problems.append(
                f"anti_islanding: model 704 AntiIslEna expected ENABLED (owner '{owner}'), read DISABLED"
            )
        return problems
