"""Importing this module loads pymatgen, SMACT and validity's data tables (seconds):
a spare evaluation process imports it while it waits for a job (leaderboard.jobs.evalproc).
Not for a fork server: SMACT imports pandas, which starts threads."""

from evaluator.families.validity.core import warm

warm()
