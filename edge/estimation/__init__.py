"""Battery state estimation of the EV pack from the charger's DC measurements.

SoC from an equivalent-circuit model in an extended Kalman filter (``ecm``), fused with the EV's own
SoC when forwarded (``fusion``); SoH as capacity (``capacity``) and resistance growth (``resistance``)
kept per vehicle across sessions (``record``; the daemon keeps records in ``edge.state``); SoP over
configurable horizons converted to AC-side limits (``estimator``); calendar and cycle aging
indicators (``aging``). Battery profiles are TOML files under ``edge/_config/batteries``
(``profile``).
"""
