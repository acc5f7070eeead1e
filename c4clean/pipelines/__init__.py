"""Beam wiring: PTransforms that call c4clean.cleaning, sinks, options and runners."""
