"""Hardware-in-the-loop bench: simulated plant, scenarios, runner and benchmarks (``v2g-hil``)."""
