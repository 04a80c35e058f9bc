"""Validity: charge neutrality, interatomic distances, physical plausibility."""
