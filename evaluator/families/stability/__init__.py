"""Stability: MLIP relaxation and energy above the reference hull."""
