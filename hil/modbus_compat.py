"""Work around pymodbus 3.16.1's simulator answering for unknown unit ids.

``SimCore`` looks an unknown device id up as id 0 and raises ``KeyError``, which the server turns
into exception 4 (device failure) even with ``ignore_missing_devices=True``. On an RS-485 bus that
means the simulator answers for every address, so a dead device cannot be simulated. Raising
``NoSuchIdException`` instead lets the server stay silent (the client times out, as on a real bus)
or answer exception 11 (gateway target failed to respond). ``SimDevice(id=0)`` still answers for
every id, as pymodbus intends.
"""

from __future__ import annotations

from pymodbus.exceptions import NoSuchIdException
from pymodbus.simulator import simcore


def patch_unknown_device_ids() -> None:
    """Install the workaround once per process (idempotent)."""
    if getattr(simcore.SimCore, "_v2g_unknown_ids_patched", False):
        return

    def get_device(self: simcore.SimCore, device_id: int) -> object:
        if device_id in self.devices:
            return self.devices[device_id]
        if 0 in self.devices:
            return self.devices[0]
        raise NoSuchIdException(f"no simulated device with id {device_id}")

    simcore.SimCore._SimCore__get_device = get_device  # type: ignore[attr-defined]
    simcore.SimCore._v2g_unknown_ids_patched = True  # type: ignore[attr-defined]
