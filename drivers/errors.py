"""The one error type of the driver layer: every transport failure, device exception code, garbage
answer, refused setpoint and broken map becomes a :class:`DriverError` naming the device and register.

``retryable`` tells the caller whether trying again later can help (a timeout, a busy device, a lost
connection) or not (an illegal address, a setpoint out of range, a map that does not load).
"""

from __future__ import annotations

from typing import Literal

ErrorKind = Literal[
    "timeout",  # no answer within the request timeout
    "disconnected",  # no connection to the bus (TCP refused, serial port gone)
    "exception",  # the device answered a Modbus exception code
    "garbage",  # an answer that does not fit the request or the map
    "backoff",  # the device is failing and its back-off has not expired: the bus was not used
    "range",  # a setpoint outside the device's allowed range: nothing written
    "unsupported",  # the device lacks what the request needs (a model, a point, a scale factor)
    "config",  # a broken configuration or vendor map
    "stopped",  # the driver layer is stopping
]

# Modbus exception codes: 4 device failure, 5 acknowledge, 6 busy, 10/11 gateway problems are worth
# a retry; 1 illegal function, 2 illegal address, 3 illegal value are not.
RETRYABLE_EXCEPTION_CODES = frozenset({4, 5, 6, 8, 10, 11})
EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    5: "acknowledge",
    6: "device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}


class DriverError(Exception):
    """A failure of the driver layer; the message names the device and the register or point."""

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind,
        retryable: bool,
        device: str = "",
        register: int | None = None,
        exception_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.retryable = retryable
        self.device = device
        self.register = register
        self.exception_code = exception_code


def where(device: str, register: int | None, count: int | None = None, what: str = "") -> str:
    """``device 'meter' register 52+2 (p_total)``: the place an error names."""
    text = f"device {device!r}"
    if register is not None:
        text += f" register {register}" + (f"+{count}" if count and count > 1 else "")
    if what:
        text += f" ({what})"
    return text
