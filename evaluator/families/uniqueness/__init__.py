"""Uniqueness: StructureMatcher equivalence classes among valid structures."""
