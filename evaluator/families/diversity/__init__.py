"""Diversity: element and space-group coverage, size diversity, Vendi scores."""
