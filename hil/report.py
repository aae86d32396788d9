"""A run's report folder: ``result.json``, ``signals.json``, one PNG per check, ``summary.md``.

Each plot shows the checked signal over the whole run, its window, the expected envelope (shaded where
the signal must stay) and the scenario's events as vertical lines. matplotlib runs headless (Agg).
It is optional (the ``plot`` extra): without it the report says so as a warning, and the verdicts
are the same; a plot that fails for another reason is an error of the run.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from hil.judge import CheckResult
from hil.plant.events import kind_of
from hil.plant.recorder import SIGNALS
from hil.scenario import Scenario


@dataclass
class RunResult:
    scenario: Scenario
    checks: list[CheckResult]
    columns: Mapping[str, Sequence[float]]
    daemon: dict[str, Any] = field(default_factory=dict)  # command, pid, exit code, log path, starts
    plant: dict[str, Any] = field(default_factory=dict)  # addresses, step statistics
    errors: list[str] = field(default_factory=list)  # what went wrong outside the checks
    warnings: list[str] = field(default_factory=list)  # what is missing from the report, not the verdict

    @property
    def passed(self) -> bool:
        return not self.errors and all(c.passed for c in self.checks)

    def counts(self) -> tuple[int, int]:
        n_pass = sum(c.passed for c in self.checks)
        return n_pass, len(self.checks) - n_pass + len(self.errors)


def describe_event(e: msgspec.Struct) -> str:
    """An event in words, for a progress line: ``kettle on (house_load w=3000)``."""
    fields = {
        k: v
        for k, v in msgspec.to_builtins(e).items()
        if k not in ("at_s", "label", "kind") and v is not None
    }
    what = " ".join([kind_of(e), *(f"{k}={v}" for k, v in fields.items())])
    return f"{e.label} ({what})" if getattr(e, "label", "") else what


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "check"


def _plot(path: Path, res: CheckResult, columns: Mapping[str, Sequence[float]], sc: Scenario) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = columns["t_s"]
    x = columns[res.signal]
    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=100)
    ax.plot(t, x, lw=1.0, color="tab:blue", label=res.signal)
    if res.reference and res.reference in columns:
        ax.plot(t, columns[res.reference], lw=0.8, color="tab:purple", alpha=0.7, label=res.reference)
    ax.axvspan(res.from_s, res.to_s, color="0.96", zorder=0, label="window")
    lo = res.min if res.min is not None else None
    hi = res.max if res.max is not None else None
    if lo is not None or hi is not None:
        vals = [v for v in x if math.isfinite(v)] or [0.0]
        span = max(max(vals) - min(vals), 1.0)
        y_lo = lo if lo is not None else min(*vals, hi if hi is not None else 0.0) - 0.2 * span
        y_hi = hi if hi is not None else max(*vals, lo if lo is not None else 0.0) + 0.2 * span
        ax.fill_between(
            [res.from_s, res.to_s],
            [y_lo, y_lo],
            [y_hi, y_hi],
            color="tab:green",
            alpha=0.15,
            label="expected",
        )
        for y in (lo, hi):
            if y is not None:
                ax.hlines(y, res.from_s, res.to_s, colors="tab:green", linestyles="--", lw=1.0)
    if res.kind == "excursion":
        # Excursions above this level are allowed, each within its duration and energy limits.
        ax.hlines(res.measured["above"], res.from_s, res.to_s, colors="tab:red", linestyles=":", lw=1.0,
                  label=f"excursion level ({res.measured['longest_s']:.2f} s, {res.measured['largest_wh']:.3f} Wh worst)")  # fmt: skip
    for e in sc.events:
        ax.axvline(e.at_s, color="tab:orange", lw=0.8, alpha=0.7)
        label = e.label or kind_of(e)
        ax.annotate(label, (e.at_s, 1.0), xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
                    va="top", ha="right", color="tab:orange")  # fmt: skip
    verdict = "PASS" if res.passed else "FAIL"
    ax.set_title(f"{verdict}: {res.name}", fontsize=10, color="tab:green" if res.passed else "tab:red")
    ax.set_xlabel("t (s)")
    ax.set_ylabel(res.signal)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write(out: Path, run: RunResult) -> Path:
    """Write the report folder ``out``; returns the summary path."""
    out.mkdir(parents=True, exist_ok=True)
    sc = run.scenario
    plots = {}
    for res in run.checks:
        if res.signal not in run.columns:
            continue
        name = f"check-{slug(res.name)}.png"
        try:
            _plot(out / name, res, run.columns, sc)
            plots[res.name] = name
        except ImportError as exc:
            run.warnings.append(
                f"no plots: matplotlib cannot be imported ({exc}); install the plot extra:"
                " pip install 'v2g-edge[plot]'"
            )
            break
        except Exception as exc:  # a failed plot must not hide the verdict
            run.errors.append(f"plot of {res.name!r} failed: {exc}")
    n_pass, n_fail = run.counts()
    result = {
        "scenario": sc.name,
        "path": sc.path,
        "description": sc.description,
        "duration_s": sc.duration_s,
        "passed": run.passed,
        "n_passed": n_pass,
        "n_failed": n_fail,
        "checks": [{**c.to_dict(), "plot": plots.get(c.name)} for c in run.checks],
        "errors": run.errors,
        "warnings": run.warnings,
        "daemon": run.daemon,
        "plant": run.plant,
        "events": [json.loads(_enc(e)) for e in sc.events],
    }
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / "signals.json").write_text(
        json.dumps(
            {
                "units": {"t_s": "scenario time, s", **SIGNALS},
                "columns": {k: list(v) for k, v in run.columns.items()},
            }
        )
    )
    lines = [
        f"# {sc.name}: {'PASS' if run.passed else 'FAIL'}",
        "",
        sc.description.strip(),
        "",
        f"{n_pass} passed, {n_fail} failed. Duration {sc.duration_s:g} s. Scenario file: `{sc.path}`.",
        "",
        "| verdict | check | detail | plot |",
        "|---|---|---|---|",
    ]
    for c in run.checks:
        plot = f"[png]({plots[c.name]})" if c.name in plots else ""
        lines.append(
            f"| {'PASS' if c.passed else '**FAIL**'} | {c.name} | {c.detail.replace('|', '/')} | {plot} |"
        )
    if run.errors:
        lines += ["", "## Errors", ""] + [f"- {e}" for e in run.errors]
    if run.warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in run.warnings]
    lines += ["", "## Events", ""]
    lines += [f"- {e.at_s:g} s: `{_enc(e)}`" for e in sc.events] or ["- none"]
    lines += ["", "## Daemon", ""] + [f"- {k}: `{v}`" for k, v in run.daemon.items()]
    lines += ["", "## Plant", ""] + [f"- {k}: `{v}`" for k, v in run.plant.items()]
    if not run.passed and run.daemon.get("log"):
        log_path = Path(run.daemon["log"])
        if log_path.exists():
            tail = log_path.read_text(errors="replace").splitlines()[-30:]
            lines += ["", "## Daemon log (last 30 lines)", "", "```", *tail, "```"]
    summary = out / "summary.md"
    summary.write_text("\n".join(lines) + "\n")
    return summary


def _enc(e: object) -> str:
    return msgspec.json.encode(e).decode()
