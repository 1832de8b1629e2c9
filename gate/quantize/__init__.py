"""Quantization backends behind one interface (see ``interface.py``), loaded lazily."""
