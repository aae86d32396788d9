"""Which EV is at a charging port: whether one is plugged in, and the name its battery record and its
session records are kept under.

The power stage forwards no vehicle identity through our capability interface yet
(``PowerStageReading`` has no such field), so every EV at a port counts as one vehicle named by the
port (the power stage's device name): several EVs sharing a charger share one battery record (SoH
learning) and one vehicle key in the session records. When a driver reports an identity (an ISO
15118 EVCCID, a VIN), ``vehicle_id`` returns it instead.
"""

from __future__ import annotations

from drivers.capabilities import PowerStageReading

# How drivers name "no EV" (SunSpec 802 State DISCONNECTED; IEC 61851 state A), compared in lower case.
UNPLUGGED_STATES = frozenset({"unplugged", "disconnected", "a"})
# States in which no SoC the stage forwards is the EV's: none plugged in, or one whose battery has not
# reported yet (SunSpec 802 INITIALIZING). A SunSpec stage may hold 0 % there, which read as a known
# SoC put the owner's reserve at empty.
NO_SOC_STATES = UNPLUGGED_STATES | {"initializing"}


def ev_present(stage: PowerStageReading) -> bool | None:
    """Whether an EV is plugged in, as ``stage`` reports it; None when it does not say."""
    if stage.ev_state is None:
        return None
    return stage.ev_state.lower() not in UNPLUGGED_STATES


def vehicle_id(port: str, stage: PowerStageReading) -> str:
    """What names the EV plugged in at ``port`` now (the store hashes it into the vehicle key).

    No identity is reported yet (see the module docstring): the port. ``stage`` is the reading a
    reported identity will come from.
    """
    return port
