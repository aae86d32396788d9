"""Where a scenario runs: the software plant, or a lab (programmable AC source over SCPI, the real
inverter and meter over Modbus). The runner talks to a :class:`~hil.backends.base.Backend` only."""
