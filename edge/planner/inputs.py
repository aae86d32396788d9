"""The planner's inputs beyond the settings: time series from a file (``planner.inputs_file``) or the
MQTT ``plan_inputs`` command, and ``build``, which puts them, the settings' time-of-use tables, the
load forecast and the EV session onto one grid of steps as a checked ``Problem``.

A series is ``start`` (with its UTC offset), ``step_s`` and ``values``; on the plan's grid each step
takes the value in force at its midpoint (a series coarser than the grid is held, a finer one is
sampled). Where a price series does not reach, the time-of-use table applies; where no load or PV
forecast reaches, the forecaster's (``edge.planner.forecast``); emissions count only where a series
covers the whole plan (else they are left out of the plan, and it says so).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import UTC, datetime, time, tzinfo
from pathlib import Path
from typing import Annotated

import msgspec
import numpy as np
from msgspec import Meta

from edge.planner.problem import FloatArray, PlanInputError, Problem
from edge.planner.wear import WearModel
from edge.settings.model import Settings, TouRate

MAX_SERIES = 7 * 24 * 12  # a week at 5 min
# What each series may hold: (lowest, highest); prices beyond ±10 per kWh are in the wrong unit.
RANGES = {
    "import_price": (-10.0, 10.0),
    "export_price": (-10.0, 10.0),
    "emissions_g_per_kwh": (0.0, 5000.0),
    "load_w": (0.0, 1e6),
    "pv_w": (0.0, 1e6),
}


class Series(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Values from ``start`` at ``step_s`` intervals, each in force until the next."""

    start: datetime
    step_s: Annotated[int, Meta(ge=60, le=3600)]
    values: Annotated[list[float], Meta(min_length=1, max_length=MAX_SERIES)]


class PlanInputs(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Series for the planner, each optional: prices per kWh (the tariff's currency), marginal grid
    emissions (gCO2/kWh), the house load and PV forecasts (W, both ≥ 0), and the billing period's
    peak import so far (W, for the demand charge)."""

    import_price: Series | None = None
    export_price: Series | None = None
    emissions_g_per_kwh: Series | None = None
    load_w: Series | None = None
    pv_w: Series | None = None
    demand_peak_so_far_w: Annotated[float, Meta(ge=0.0, le=1e7)] | None = None

    def check(self) -> None:
        """Raise PlanInputError naming the first bad value (the struct's types are checked on decode)."""
        for name, (lo, hi) in RANGES.items():
            s: Series | None = getattr(self, name)
            if s is None:
                continue
            if s.start.tzinfo is None:
                raise PlanInputError(f"{name}.start", f"{s.start.isoformat()} has no UTC offset")
            for k, v in enumerate(s.values):
                if not (math.isfinite(v) and lo <= v <= hi):
                    raise PlanInputError(f"{name}.values[{k}]", f"{v!r} is outside {lo:g} … {hi:g}")

    def over(self, older: PlanInputs) -> PlanInputs:
        """These inputs, with ``older``'s where these have none."""
        fields = {f: getattr(self, f) for f in self.__struct_fields__}
        return PlanInputs(**{f: getattr(older, f) if v is None else v for f, v in fields.items()})


def decode(data: bytes) -> PlanInputs:
    """Inputs from JSON, checked; raises PlanInputError naming the field."""
    try:
        inputs = msgspec.json.decode(data, type=PlanInputs)
    except msgspec.ValidationError as exc:
        raise PlanInputError("inputs", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise PlanInputError("inputs", f"not JSON: {exc}") from None
    inputs.check()
    return inputs


def load_file(path: Path) -> PlanInputs:
    """The inputs file; a missing one is no inputs, a broken one raises PlanInputError naming it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return PlanInputs()
    except OSError as exc:
        raise PlanInputError("planner.inputs_file", f"{path}: {exc}") from None
    try:
        return decode(data)
    except PlanInputError as exc:
        raise PlanInputError(f"{path}: {exc.field}", str(exc)) from None


def on_grid(series: Series | None, t0_unix_s: float, step_s: float, n: int) -> FloatArray:
    """``series`` on the plan's grid (its value at each step's midpoint); NaN where it does not reach."""
    out = np.full(n, np.nan)
    if series is None:
        return out
    start = series.start.timestamp()
    mids = t0_unix_s + (np.arange(n) + 0.5) * step_s
    k = np.floor((mids - start) / series.step_s).astype(np.int64)
    ok = (k >= 0) & (k < len(series.values))
    out[ok] = np.asarray(series.values, dtype=np.float64)[k[ok]]
    return out


def tou(rows: list[TouRate], t0_unix_s: float, step_s: float, n: int, zone: tzinfo) -> FloatArray:
    """A time-of-use table on the plan's grid, at each step's midpoint in the local ``zone``."""
    starts = [r.start for r in rows]
    out = np.empty(n)
    for k in range(n):
        local = datetime.fromtimestamp(t0_unix_s + (k + 0.5) * step_s, zone).time()
        j = bisect.bisect_right(starts, time(local.hour, local.minute, local.second)) - 1
        out[k] = rows[j].price_per_kwh  # j = -1: before the first start, the last row (it wraps)
    return out


@dataclass(frozen=True)
class Session:
    """The EV now: SoC, the pack's DC energy per unit SoC, and the AC power limits (magnitudes)."""

    soc: float
    e_per_soc_wh: float
    p_charge_max_w: float
    p_discharge_max_w: float


def export_cap_w(settings: Settings) -> float:
    """The site's largest export: none with ``non_export``, else ``export_cap_w`` (0 there: no cap)."""
    site = settings.site
    if site.non_export:
        return 0.0
    return site.export_cap_w if site.export_cap_w > 0.0 else math.inf


def build(
    settings: Settings,
    session: Session,
    inputs: PlanInputs,
    *,
    now_unix_s: float,
    zone: tzinfo,
    departure: datetime | None,
    base_forecast_w: FloatArray,
) -> Problem:
    """The problem of planning from ``now_unix_s`` (rounded down to the step) over the horizon.

    ``departure``: the next departure instant (None: none set); ``base_forecast_w``: the forecaster's
    house import without the EV on the plan's grid (used where no load/PV series reaches)."""
    p = settings.planner
    step = float(p.step_s)
    n = round(p.horizon_h * 3600.0 / step)
    t0 = math.floor(now_unix_s / step) * step
    notes: list[str] = []
    prices = {}
    for name, rows in (("import_price", p.import_tariff), ("export_price", p.export_tariff)):
        series = on_grid(getattr(inputs, name), t0, step, n)
        table = tou(rows, t0, step, n, zone)
        prices[name] = np.where(np.isnan(series), table, series)
    load = on_grid(inputs.load_w, t0, step, n)
    pv = on_grid(inputs.pv_w, t0, step, n)
    if base_forecast_w.shape != (n,):
        raise PlanInputError("base_forecast_w", f"has {base_forecast_w.shape} values, the plan has {n} steps")
    base = np.where(np.isnan(load), base_forecast_w, load) - np.where(np.isnan(pv), 0.0, pv)
    if not np.isnan(pv).all() and np.isnan(load).any():
        notes.append("PV forecast given without a load forecast: the forecaster's net load is used with it")
    emissions = on_grid(inputs.emissions_g_per_kwh, t0, step, n)
    em: FloatArray | None = emissions
    if np.isnan(emissions).any():
        if inputs.emissions_g_per_kwh is not None:
            notes.append("the emissions series does not cover the plan: emissions left out")
        em = None
    dep_index = None
    end_soc = 0.0
    leaves_now = False
    target = settings.owner.departure_soc
    if departure is not None and target is not None:
        k = math.floor((departure.astimezone(UTC).timestamp() - t0) / step)
        dep_index = k if 1 <= k <= n else None
        if k <= 0:  # within this step (the next departure is after now): the target holds now
            dep_index, leaves_now = 1, True
            notes.append(
                f"the departure at {departure.astimezone(UTC):%H:%M} UTC falls within this step: the rest"
                " of the target at full power, no discharge"
            )
        if k > n and session.e_per_soc_wh > 0.0:  # beyond the horizon: end where full power still makes it
            gain = settings.battery.charge_efficiency * session.p_charge_max_w * (k - n) * step / 3600.0
            end_soc = min(max(0.0, target - gain / session.e_per_soc_wh), target)
    margin = math.ceil(p.departure_margin_s / step)
    return Problem(
        t0_unix_s=t0,
        step_s=step,
        import_price=prices["import_price"],
        export_price=prices["export_price"],
        base_import_w=base,
        soc0=session.soc,
        e_per_soc_wh=session.e_per_soc_wh,
        p_charge_max_w=session.p_charge_max_w,
        p_discharge_max_w=session.p_discharge_max_w,
        charge_efficiency=settings.battery.charge_efficiency,
        discharge_efficiency=settings.battery.discharge_efficiency,
        min_soc=settings.owner.min_soc,
        export_cap_w=export_cap_w(settings),
        wear=WearModel.of(p),
        departure_index=dep_index,
        departure_soc=target if dep_index is not None else None,
        end_soc=end_soc,
        margin_steps=0 if leaves_now else min(margin, dep_index or 0),
        leaves_now=leaves_now,
        emissions_g_per_kwh=em,
        emissions_weight_per_kg=p.emissions_weight_per_kg,
        demand_charge_per_kw=p.demand_charge_per_kw,
        demand_peak_so_far_w=inputs.demand_peak_so_far_w or 0.0,
        notes=tuple(notes),
    )
