"""The simulated plant: grid source, site (house load, induction hob, PV), site meter, bidirectional
power stage with its own 1547 functions, EV battery, islanding; served as Modbus devices.

``Plant`` is the in-process API (``await plant.start()`` ... ``await plant.stop()``); ``v2g-hil plant``
serves one from the command line. See docs/hil.md.
"""

from hil.plant.config import PlantConfig, PlantConfigError
from hil.plant.core import DeviceAddress, Plant

__all__ = ["DeviceAddress", "Plant", "PlantConfig", "PlantConfigError"]
