"""Modbus devices: transport workers, SunSpec decoding, vendor maps and capability interfaces."""
