"""v2g-edge: edge controller for bidirectional EV chargers (V2G / V2H)."""

__version__ = "0.1.0"
