"""Imported once by the forkserver (see ``core.check_many``) so that every worker
process it forks starts with pymatgen, SMACT and their data tables loaded."""

from evaluator.validity.core import warm

warm()
