"""SunSpec discovery: find ``SunS`` at base 40000, 0 or 50000 and walk the model chain to 0xFFFF.

Each model header is ``ID`` and ``L`` (registers after the header); the next model starts 2 + L
registers further. Model 1 (Common) must come first; its L may be 66 (with the pad) or 65 (without,
as many devices report). Models the package has no definition for are listed but not decoded.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.errors import DriverError, where
from drivers.sunspec.models import BASE_ADDRESSES, END_MODEL_ID, SUNS_MARKER
from drivers.transport import DeviceLink

MAX_MODELS = 200


@dataclass(frozen=True)
class ModelInstance:
    """One model found on a device: ``start`` is the address of its ``ID`` register, ``length`` its L."""

    id: int
    start: int
    length: int

    @property
    def end(self) -> int:
        """First address after the model."""
        return self.start + 2 + self.length


@dataclass(frozen=True)
class SunSpecMap:
    """The model chain of one device."""

    base: int
    models: tuple[ModelInstance, ...]

    def find(self, model_id: int, index: int = 0) -> ModelInstance | None:
        found = [m for m in self.models if m.id == model_id]
        return found[index] if index < len(found) else None

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(m.id for m in self.models)


async def discover(link: DeviceLink, bases: tuple[int, ...] = BASE_ADDRESSES) -> SunSpecMap:
    """Find the base address and the model chain; raises DriverError when the device is not SunSpec.

    A base that answers an exception (illegal address) or something else than ``SunS`` is skipped;
    silence is not (a device that does not answer is dead, not "not SunSpec").
    """
    tried: list[str] = []
    for base in bases:
        try:
            regs = await link.read(base, 2, what="SunS marker")
        except DriverError as e:
            if e.kind == "exception" and not e.retryable:
                tried.append(f"{base}: exception {e.exception_code}")
                continue
            raise
        if tuple(regs.values) == SUNS_MARKER:
            return SunSpecMap(base, await _walk(link, base))
        tried.append(f"{base}: {regs.values[0]:#06x} {regs.values[1]:#06x}")
    raise DriverError(
        f"{where(link.name, None)}: no SunSpec marker 'SunS' at {', '.join(tried)}",
        kind="unsupported",
        retryable=False,
        device=link.name,
    )


async def _walk(link: DeviceLink, base: int) -> tuple[ModelInstance, ...]:
    models: list[ModelInstance] = []
    addr = base + 2
    while len(models) < MAX_MODELS:
        # Some devices do not give the end model a length: read ID and L together but judge ID alone.
        header = await link.read(addr, 2, what="model header")
        model_id, length = header.values
        if model_id == END_MODEL_ID:
            break
        if not models and model_id != 1:
            raise DriverError(
                f"{where(link.name, addr)}: the first SunSpec model is {model_id}, not 1 (Common)",
                kind="garbage",
                retryable=False,
                device=link.name,
                register=addr,
            )
        if model_id == 1 and length not in (65, 66):
            raise DriverError(
                f"{where(link.name, addr + 1)}: model 1 length {length} is neither 66 nor 65",
                kind="garbage",
                retryable=False,
                device=link.name,
                register=addr + 1,
            )
        models.append(ModelInstance(model_id, addr, length))
        addr += 2 + length
        if addr + 2 > 0x10000:
            raise DriverError(
                f"{where(link.name, addr)}: model chain runs past the register space without the end model",
                kind="garbage",
                retryable=False,
                device=link.name,
                register=addr,
            )
    else:
        raise DriverError(
            f"{where(link.name, addr)}: more than {MAX_MODELS} models without an end marker",
            kind="garbage",
            retryable=False,
            device=link.name,
            register=addr,
        )
    return tuple(models)
