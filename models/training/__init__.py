"""Training, quantisation and evaluation of the vision models (development only, not packed)."""
