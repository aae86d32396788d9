"""The suite's exit code with open findings: a failure documented as an open finding does not fail the
run (CI catches every other failure), any other failure or error does, and an open finding that passes
fails the run until it is closed (so the list cannot go stale)."""

from __future__ import annotations

import pytest

from hil.conformance import suite
from hil.conformance.base import ConformanceTest, Row
from hil.conformance.suite import OPEN_FINDINGS, verdict_code
from hil.conformance.suite import TestResult as SuiteResult
from hil.scenario import Scenario


def _result(test_id: str, passed: bool, errors: list[str] | None = None) -> SuiteResult:
    test = ConformanceTest(
        id=test_id,
        title=test_id,
        clause="-",
        owner="daemon",
        scenario=Scenario(name=test_id, duration_s=1.0),
        judge=lambda _cols: [],
    )
    row = Row(test="r", setting="-", measured="-", limit="-", passed=passed)
    return SuiteResult(test=test, rows=[row], errors=errors or [])


def test_open_findings_name_tests_the_suite_has() -> None:
    ids = {t.id for t in suite.registry(("daemon", "inverter"), quick=True)}
    ids |= {t.id for t in suite.registry(("daemon", "inverter"), quick=False)}
    assert set(OPEN_FINDINGS) <= ids


def test_only_an_open_finding_may_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    # the rule, whether or not a finding is open today
    known = "island-somewhere-daemon"
    monkeypatch.setitem(OPEN_FINDINGS, known, "a documented reason")
    assert verdict_code([_result("a", True), _result(known, False)])[0] == 0
    assert verdict_code([_result("a", False), _result(known, False)])[0] == 1
    assert verdict_code([_result(known, False, errors=["daemon exited"])])[0] == 1
    code, notes = verdict_code([_result(known, True)])
    assert code == 1 and "close its finding" in notes[0]
    assert verdict_code([])[0] == 1
