"""Novelty: not equivalent to any structure of the reference set."""
