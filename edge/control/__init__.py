"""Control kernels the daemon runs every cycle (time is always an input, never read from a clock)."""
