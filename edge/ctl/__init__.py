"""``v2gctl``: the technician's command line on the device."""
