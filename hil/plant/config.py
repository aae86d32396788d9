"""Plant settings: one msgspec definition, read from TOML (``v2g-hil plant --config PLANT.toml``).

Every field has a bench default, so an empty file is a working plant: a 240 V / 60 Hz single-phase
site with a 7.4 kW bidirectional power stage, a SunSpec site meter, an EV at 60 % SoC. Signs follow
the project: P > 0 export from the EV (discharge), Q > 0 injection; the site meter's *register* sign is
configurable (``meter.sign``) to exercise the drivers' normalization, the plant's own signals are not.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from edge.settings.load import deep_merge as merge

Owner = Literal["inverter", "daemon", "off"]
Pos = Annotated[float, Meta(gt=0.0)]
NonNeg = Annotated[float, Meta(ge=0.0)]
Frac = Annotated[float, Meta(ge=0.0, le=1.0)]
Eff = Annotated[float, Meta(gt=0.5, le=1.0)]
UnitId = Annotated[int, Meta(ge=1, le=247)]


class _Struct(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Strict base: an unknown key in a plant file is an error naming it."""


class GridConfig(_Struct):
    f_nominal_hz: Literal[50, 60] = 60
    v_nominal_v: Annotated[float, Meta(gt=0.0, le=1000.0)] = 240.0  # per phase (single phase: L1-L2 240 V)
    phases: Literal[1, 3] = 1
    # Island dynamics: local V and f approach their RLC balance with this time constant.
    island_tau_s: Pos = 0.02


class HobConfig(_Struct):
    """An induction hob on a low setting: full power for ``duty`` of each ``period_s``."""

    w: NonNeg = 0.0
    period_s: Pos = 4.0
    duty: Frac = 0.5


class SiteConfig(_Struct):
    house_load_w: NonNeg = 800.0  # constant-impedance load at nominal voltage
    house_load_var: float = 0.0  # net reactive consumption at nominal (inductive > 0)
    pv_w: NonNeg = 0.0
    hob: HobConfig = msgspec.field(default_factory=HobConfig)
    # Quality factor of the RLC equivalent of the house load (IEEE 1547.1 islanding test load).
    island_quality_factor: Pos = 1.0
    # PV inverter's own protection: it ceases when local V or f leave these bands.
    pv_v_band_pu: tuple[float, float] = (0.88, 1.10)
    pv_f_band_hz: float = 1.0
    pv_anti_island_s: NonNeg = 1.0


class MeterConfig(_Struct):
    protocol: Literal["sunspec", "map"] = "sunspec"
    model: Literal[201, 202, 203] | None = None  # None: 201 for one phase, 203 for three
    map: Literal["eastron-sdm630"] = "eastron-sdm630"  # served when protocol = "map" (config/devices/)
    unit_id: UnitId = 1
    refresh_s: Pos = 0.2
    # import_positive: SunSpec convention, W > 0 = import from the grid; export_positive: the reverse.
    sign: Literal["import_positive", "export_positive"] = "import_positive"
    noise_w: NonNeg = 2.0  # measurement noise so a live meter never repeats itself exactly


class PowerStageConfig(_Struct):
    unit_id: UnitId = 1
    p_max_discharge_w: Pos = 7400.0
    p_max_charge_w: Pos = 7400.0
    s_max_va: Pos = 7400.0
    q_max_var: Pos = 3256.0  # 0.44 S rated, category B
    tau_s: NonNeg = 0.1  # first-order response of P and Q to setpoints
    eff_charge: Eff = 0.95  # AC -> DC
    eff_discharge: Eff = 0.93  # DC -> AC
    idle_loss_w: NonNeg = 15.0  # drawn from the AC side while running at zero power
    # Initial values of the device's settings (a real inverter's factory state).
    wset_rvrt_w: float = 0.0
    wset_rvrt_tms_s: NonNeg = 0.0  # 0: no reversion until the controller sets it
    es_delay_s: NonNeg = 1.0  # enter-service delay after a trip (bench default; 1547 default 300 s)
    es_ramp_s: NonNeg = 2.0
    anti_island_detect_s: NonNeg = 0.5
    adopt_delay_s: NonNeg = 0.05
    # Enter-service window (703 ESVLo/ESVHi, ESHzLo/ESHzHi; frequencies relative to nominal so 50 Hz
    # works too) and randomized delay (703 ESRndTms; when > 0 it replaces the ramp, as 1547 allows one
    # or the other). ``es_rnd_seed`` seeds the draw so that a run is reproducible.
    es_v_window_pu: tuple[Pos, Pos] = (0.917, 1.05)
    es_f_window_dhz: tuple[float, float] = (-0.5, 0.1)
    es_rnd_s: NonNeg = 0.0
    es_rnd_seed: int = 1
    # True: when the permit comes back (703 ES disabled -> enabled, also after a restart with ES
    # disabled) the stage enters service through the window and the delays, as after a trip (1547
    # 4.10); False: straight into the ramp, like a start command (the daemon benches rely on that).
    es_on_permit: bool = False
    # Which 1547 functions the inverter runs from power-up (owner = inverter); the daemon can change the
    # enables through SunSpec 704-712 like on a real device.
    volt_var: bool = False
    volt_watt: bool = False
    watt_var: bool = False
    freq_droop: bool = False
    voltage_trip: bool = True
    frequency_trip: bool = True
    anti_islanding: bool = True
    # Momentary cessation curves (707/708 MomCess) at the category's thresholds from power-up (I: below
    # 0.50 / above 1.20 p.u., II: 0.30 / 1.20, III: 0.50 / 1.10); otherwise empty until a client adopts
    # a set with MomCess points.
    momentary_cessation: bool = False
    category: Literal["I", "II", "III"] = "II"
    # The must-trip curves from power-up: the category's defaults, or the widest of 1547's ranges (as an
    # installer sets them where the daemon owns the trips: the inverter's own must not act first).
    trip_settings: Literal["category", "widest"] = "category"
    # Watt-var open-loop response time: model 712 has no response-time point, so the device's own
    # (1547 clause 5.3.4: at most 10 s).
    watt_var_olrt_s: Annotated[float, Meta(gt=0.0, le=10.0)] = 5.0
    # The SunSpec controls the stage serves: "704" (models 701-715 and 802), or a legacy device without
    # any 70x model: "123+124" (101/103 measurements, 120 nameplate, 123 immediate controls, 124 storage)
    # or "123" (the same without the storage model).
    sunspec_controls: Literal["704", "123+124", "123"] = "704"
    # Legacy devices: the power (> 0 discharge) the stage runs at in its own mode, i.e. when no limit of
    # the controller holds it (before the first write, after a reversion timer ran out).
    own_p_w: float = 0.0

    def __post_init__(self) -> None:
        lo, hi = self.es_v_window_pu
        if not lo < 1.0 < hi:
            raise ValueError(f"es_v_window_pu {self.es_v_window_pu}: needs low < 1.0 < high")
        flo, fhi = self.es_f_window_dhz
        if not flo < 0.0 < fhi:
            raise ValueError(
                f"es_f_window_dhz {self.es_f_window_dhz}: needs low < 0 < high (Hz from nominal)"
            )


class EvConfig(_Struct):
    plugged: bool = True
    soc: Frac = 0.6
    capacity_kwh: Pos = 60.0
    series_cells: Annotated[int, Meta(ge=1)] = 96
    r0_ohm: NonNeg = 0.06  # pack
    r1_ohm: NonNeg = 0.03
    tau1_s: Pos = 30.0
    soc_min: Frac = 0.1  # the EV refuses to discharge below this
    soc_max: Frac = 1.0
    max_charge_w: Pos = 11000.0  # limits the EV reports (DC side)
    max_discharge_w: Pos = 11000.0
    trace: str | None = None  # CSV(.gz) with t_s, pack_voltage_v_meas, soc_true: replayed instead of the ECM


class ServeConfig(_Struct):
    host: str = "127.0.0.1"
    tcp_base_port: Annotated[int, Meta(ge=0, le=65535)] = 0  # 0: free ports; N: stage N, meter N+1
    rtu: bool = False  # also serve both devices on one RS-485 line through a byte-timed relay
    rtu_baud: Annotated[int, Meta(gt=0)] = 115200
    rtu_stage_unit_id: UnitId = 1
    rtu_meter_unit_id: UnitId = 2


class PlantConfig(_Struct):
    step_s: Annotated[float, Meta(ge=0.001, le=0.01)] = 0.005
    record_s: Annotated[float, Meta(ge=0.001, le=1.0)] = 0.01
    # How often the stage's measurement registers are refreshed (its writes take effect at once).
    publish_s: Annotated[float, Meta(ge=0.001, le=0.1)] = 0.02
    seed: int = 1
    grid: GridConfig = msgspec.field(default_factory=GridConfig)
    site: SiteConfig = msgspec.field(default_factory=SiteConfig)
    meter: MeterConfig = msgspec.field(default_factory=MeterConfig)
    power_stage: PowerStageConfig = msgspec.field(default_factory=PowerStageConfig)
    ev: EvConfig = msgspec.field(default_factory=EvConfig)
    serve: ServeConfig = msgspec.field(default_factory=ServeConfig)


class PlantConfigError(ValueError):
    """A plant file that does not parse or validate; the message names the file and the field."""


def from_dict(data: dict[str, Any], source: str = "plant config") -> PlantConfig:
    try:
        return msgspec.convert(data, PlantConfig)
    except msgspec.ValidationError as exc:
        raise PlantConfigError(f"{source}: {exc}") from None


def load(path: str | Path | None, overrides: dict[str, Any] | None = None) -> PlantConfig:
    """The plant config from ``path`` (None: defaults) with ``overrides`` merged on top."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise PlantConfigError(f"{path}: {exc}") from None
    if overrides:
        data = merge(data, overrides)
    return from_dict(data, str(path) if path else "plant config")


def to_dict(cfg: PlantConfig) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.to_builtins(cfg)
    return result
