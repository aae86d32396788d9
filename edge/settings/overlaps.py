"""Trip settings that reach into a ride-through region, told to the technician.

1547's ranges of allowable trip settings reach into the ride-through regions (Cat II UV1 down to
0.88 p.u. / 2 s inside the mandatory region that lasts 3 s + 8.7 s/p.u. x (V - 0.65)). The trip
setting takes precedence there (docs/protection.md): the charger ceases at the clearing time where the
region alone would require it to keep operating. The profiles' defaults never do this, so a setting
that does is the utility's choice, or a typing error: ``v2g-edged --check`` and the daemon's start
say which stage, which region and how long it would otherwise ride through.
"""

from __future__ import annotations

from collections.abc import Iterator

from edge.settings.model import FREQUENCY_TRIP_STAGES, VOLTAGE_TRIP_STAGES, Grid


def _who(owner: str) -> str:
    if owner == "daemon":
        return "the daemon trips at the setting (it takes precedence over the region)"
    return "the inverter's setting (1547 lets it take precedence); the daemon's backup waits the region out"


def _overlap(
    stage: str, clearing_s: float, region: str, need_s: float, *, owner: str, latency_s: float
) -> str | None:
    """What a stage clearing at ``clearing_s`` does in a region that asks ``need_s`` of ride-through."""
    if clearing_s < need_s - 1e-9:
        return f"{stage} clears inside the {region} (up to {need_s:.2f} s there): {_who(owner)}"
    if owner == "daemon" and clearing_s > need_s and clearing_s - latency_s < need_s - 1e-9:
        # The setting leaves the region alone, but the daemon commands the trip the latency early:
        # an output faster than the declared worst case ceases inside the region.
        return (
            f"{stage} is commanded daemon.actuation_latency_s = {latency_s:g} s before its clearing time, "
            f"{need_s - (clearing_s - latency_s):.2f} s inside the {region} ({need_s:.2f} s there): an "
            "output faster than that latency ceases inside it"
        )
    return None


Reach = tuple[str, float, str, float]  # stage label, its clearing time, region label, region's need


def _voltage_reaches(grid: Grid) -> Iterator[Reach]:
    """Each enabled voltage stage whose pickup lies inside a timed region, with the ride-through the
    region asks at the worst voltage the stage trips at (the bands' minimum time has a slope)."""
    vt = grid.voltage_trip
    for band in grid.ride_through.voltage:
        if band.t_min_s is None:
            continue
        region = f"{band.mode} ride-through region {band.v_low_pu:g}-{band.v_high_pu:g} p.u."
        for name in VOLTAGE_TRIP_STAGES:
            stage = getattr(vt, name)
            if not stage.enabled:
                continue
            if name.startswith("ov") and band.v_high_pu > stage.pickup_pu:
                v_worst = band.v_high_pu
            elif name.startswith("uv") and band.v_low_pu < stage.pickup_pu:
                v_worst = min(band.v_high_pu, stage.pickup_pu)
            else:
                continue
            need_s = band.t_min_s + band.t_slope_s_per_pu * (v_worst - band.v_low_pu)
            label = f"grid.voltage_trip.{name} ({stage.pickup_pu:g} p.u. / {stage.clearing_s:g} s)"
            yield label, stage.clearing_s, region, need_s


def _frequency_reaches(grid: Grid) -> Iterator[Reach]:
    """Each enabled frequency stage whose pickup lies inside a timed region (flat minimum times)."""
    ft = grid.frequency_trip
    for band in grid.ride_through.frequency:
        if band.t_min_s is None:
            continue
        region = f"{band.mode} ride-through region {band.f_low_hz:g}-{band.f_high_hz:g} Hz"
        for name in FREQUENCY_TRIP_STAGES:
            stage = getattr(ft, name)
            over = name.startswith("of")
            hits = band.f_high_hz > stage.pickup_hz if over else band.f_low_hz < stage.pickup_hz
            if stage.enabled and hits:
                label = f"grid.frequency_trip.{name} ({stage.pickup_hz:g} Hz / {stage.clearing_s:g} s)"
                yield label, stage.clearing_s, region, band.t_min_s


def trip_ride_through_overlaps(
    grid: Grid, voltage_owner: str = "daemon", frequency_owner: str = "daemon", latency_s: float = 0.0
) -> list[str]:
    """One line per enabled trip stage that ceases before a ride-through region it reaches into ends,
    by its setting or, where the daemon owns it, by the latency it is commanded early; saying what its
    owner (``functions.voltage_trip`` / ``frequency_trip``) does there."""
    reaches = [(r, voltage_owner) for r in _voltage_reaches(grid)]
    reaches += [(r, frequency_owner) for r in _frequency_reaches(grid)]
    lines = (_overlap(*reach, owner=owner, latency_s=latency_s) for reach, owner in reaches)
    return [line for line in lines if line is not None]
