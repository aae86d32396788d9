"""An IEEE 1547.1-style conformance suite run on the simulated plant through the real daemon
(``v2g-hil run --suite ieee1547``). It is no certification: docs/conformance.md says what it covers."""
