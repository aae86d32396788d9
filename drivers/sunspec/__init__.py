"""SunSpec: the official model definitions (``models/``) and their register codec (``models.py``)."""
