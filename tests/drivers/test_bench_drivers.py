"""The ``drivers`` benchmark runs (quick) and reports every figure with its baseline."""

from __future__ import annotations

from hil.bench import drivers as bench_drivers


def test_bench_drivers_quick_run_reports_all_figures() -> None:
    figures = {f.name: f for f in bench_drivers.run(quick=True)}
    assert set(figures) == {
        "drivers.bare.tcp",
        "drivers.snapshot.tcp",
        "drivers.wire.rtu115200",
        "drivers.bare.rtu115200",
        "drivers.snapshot.rtu115200",
    }
    assert figures["drivers.snapshot.tcp"].baseline == "drivers.bare.tcp"
    assert figures["drivers.snapshot.tcp"].ratio is not None
    # Over RTU at 115200 baud the wire dominates: a snapshot cannot beat the frames' wire time.
    assert figures["drivers.snapshot.rtu115200"].value >= 0.8 * figures["drivers.wire.rtu115200"].value
