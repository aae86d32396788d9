"""Judge a run's recorded signals against a scenario's checks (pure functions, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from hil.plant.events import kind_of
from hil.scenario import Bound, Check, Energy, Excursion, Mean, Settle, Std, TvRatio


@dataclass
class CheckResult:
    name: str
    kind: str
    signal: str
    passed: bool
    detail: str
    from_s: float
    to_s: float
    min: float | None = None  # the envelope, for plots
    max: float | None = None
    measured: dict[str, float] = field(default_factory=dict)
    reference: str | None = None  # a second signal the check compares with (plotted with it)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _window(t: Sequence[float], x: Sequence[float], a: float, b: float) -> tuple[list[float], list[float]]:
    idx = [i for i, ti in enumerate(t) if a <= ti <= b]
    return [t[i] for i in idx], [x[i] for i in idx]


def _inside(v: float, lo: float | None, hi: float | None) -> bool:
    return (lo is None or v >= lo) and (hi is None or v <= hi)


def _band(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"[{lo:g}, {hi:g}]"
    return f"<= {hi:g}" if hi is not None else f">= {lo:g}"


def _excursions(
    check: Excursion, t: Sequence[float], x: Sequence[float]
) -> tuple[bool, str, dict[str, float]]:
    """Episodes above the level: duration and energy (∫ signal dt, Wh) of each; the worst one judges."""
    episodes: list[tuple[float, float, float]] = []  # (start, duration, Wh)
    start: float | None = None
    wh = 0.0
    for i in range(len(t)):
        above = x[i] > check.above
        if above and start is None:
            start, wh = t[i], 0.0
        if start is not None and i + 1 < len(t):
            wh += (t[i + 1] - t[i]) * max(x[i], 0.0) / 3600.0
        if start is not None and (not above or i + 1 == len(t)):
            episodes.append((start, t[i] - start, wh))
            start = None
    worst_s = max((e[1] for e in episodes), default=0.0)
    worst_wh = max((e[2] for e in episodes), default=0.0)
    ok = (check.max_s is None or worst_s <= check.max_s) and (
        check.max_wh is None or worst_wh <= check.max_wh
    )
    limits = ", ".join(
        f"{v} {lim:g}{u}"
        for v, lim, u in (("max", check.max_s, " s"), ("max", check.max_wh, " Wh"))
        if lim is not None
    )
    worst = next((e for e in episodes if e[1] == worst_s), None)
    detail = f"{len(episodes)} excursions of {check.signal} above {check.above:g}; longest {worst_s:.3f} s, largest {worst_wh:.3f} Wh ({limits})"
    if worst is not None and not ok:
        detail += f"; the longest starts at {worst[0]:.2f} s"
    return ok, detail, {"episodes": float(len(episodes)), "longest_s": worst_s, "largest_wh": worst_wh}


def judge(check: Check, columns: Mapping[str, Sequence[float]], duration_s: float) -> CheckResult:
    t_all = columns["t_s"]
    a = check.from_s
    b = duration_s if check.to_s is None else check.to_s
    kind = kind_of(check)
    res = CheckResult(check.title(), kind, check.signal, False, "", a, b)
    if check.signal not in columns:
        res.detail = f"{check.signal} was not recorded by this backend"
        return res
    t, x = _window(t_all, columns[check.signal], a, b)
    if len(t) < 2:
        res.detail = f"no samples between {a:g} s and {b:g} s (the run ended early?)"
        return res
    if isinstance(check, Bound | Settle | Mean):
        res.min, res.max = check.min, check.max
    if isinstance(check, Bound):
        outside = 0.0
        worst_t, worst_v, worst_d = t[0], x[0], 0.0
        for i in range(len(t)):
            v = x[i]
            d = max(
                (check.min - v) if check.min is not None else 0.0,
                (v - check.max) if check.max is not None else 0.0,
            )
            if d > 0:
                outside += (t[i + 1] - t[i]) if i + 1 < len(t) else 0.0
            if d > worst_d:
                worst_t, worst_v, worst_d = t[i], v, d
        res.passed = outside <= check.allow_s + 1e-9
        res.measured = {
            "time_outside_s": outside,
            "worst_value": worst_v,
            "worst_at_s": worst_t,
            "min": min(x),
            "max": max(x),
        }
        res.detail = (
            f"{check.signal} {_band(check.min, check.max)} from {a:g} to {b:g} s: "
            f"outside {outside:.3f} s (allowed {check.allow_s:g} s), range {min(x):.4g}..{max(x):.4g}"
            + (f", worst {worst_v:.4g} at {worst_t:.2f} s" if worst_d > 0 else "")
        )
    elif isinstance(check, Settle):
        deadline = a + check.within_s
        last_out = None
        for ti, v in zip(t, x, strict=True):
            if not _inside(v, check.min, check.max):
                last_out = ti
        settle_s = 0.0 if last_out is None else last_out - a
        first_in = next((ti for ti, v in zip(t, x, strict=True) if _inside(v, check.min, check.max)), None)
        res.passed = last_out is None or last_out < deadline
        res.measured = {"settled_after_s": settle_s, "final": x[-1]}
        if first_in is not None:
            res.measured["first_inside_after_s"] = first_in - a
        res.detail = (
            f"{check.signal} into {_band(check.min, check.max)} within {check.within_s:g} s of {a:g} s, "
            f"staying to {b:g} s: "
            + (
                f"settled after {settle_s:.3f} s"
                if res.passed
                else f"still outside at {last_out:.2f} s (final {x[-1]:.4g})"
            )
        )
    elif isinstance(check, Energy):
        wh = sum((t[i + 1] - t[i]) * (x[i] + x[i + 1]) / 2.0 for i in range(len(t) - 1)) / 3600.0
        res.passed = _inside(wh, check.min_wh, check.max_wh)
        res.measured = {"energy_wh": wh}
        expected = _band(check.min_wh, check.max_wh)
        res.detail = f"∫{check.signal} dt from {a:g} to {b:g} s = {wh:.3f} Wh, expected {expected} Wh"
    elif isinstance(check, Excursion):
        res.passed, res.detail, res.measured = _excursions(check, t, x)
        res.measured["above"] = check.above
    elif isinstance(check, TvRatio):
        res.reference = check.reference
        _, ref = _window(t_all, columns[check.reference], a, b)
        tv_x = sum(abs(x[i + 1] - x[i]) for i in range(len(x) - 1))
        tv_r = sum(abs(ref[i + 1] - ref[i]) for i in range(len(ref) - 1))
        ratio = tv_x / tv_r if tv_r > 0 else float("inf") if tv_x > 0 else 1.0
        res.passed = ratio <= check.max
        res.measured = {"tv_ratio": ratio, "tv_signal": tv_x, "tv_reference": tv_r}
        res.detail = f"TV({check.signal}) / TV({check.reference}) from {a:g} to {b:g} s = {ratio:.3f}, expected <= {check.max:g}"
    elif isinstance(check, Std):
        m = sum(x) / len(x)
        sd = (sum((v - m) ** 2 for v in x) / len(x)) ** 0.5
        res.passed = sd <= check.max
        res.measured = {"std": sd, "mean": m}
        res.detail = f"std {check.signal} from {a:g} to {b:g} s = {sd:.3g}, expected <= {check.max:g}"
    elif isinstance(check, Mean):
        m = sum(x) / len(x)
        res.passed = _inside(m, check.min, check.max)
        res.measured = {"mean": m}
        res.detail = (
            f"mean {check.signal} from {a:g} to {b:g} s = {m:.4g}, expected {_band(check.min, check.max)}"
        )
    return res
