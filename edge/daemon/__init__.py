"""The daemon ``v2g-edged``: a fixed cycle of read snapshot, run kernels, write once, publish."""
