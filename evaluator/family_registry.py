"""The metric families in pipeline order (a family runs after those it requires).

``evaluator.pipeline`` runs them; ``evaluator.protocol`` reads their options dataclasses.
"""

from __future__ import annotations

from typing import Any

from evaluator.families.base import Family
from evaluator.families.distribution.family import FAMILY as DISTRIBUTION
from evaluator.families.diversity.family import FAMILY as DIVERSITY
from evaluator.families.hhi.family import FAMILY as HHI
from evaluator.families.novelty.family import FAMILY as NOVELTY
from evaluator.families.stability.family import FAMILY as STABILITY
from evaluator.families.sun.family import FAMILY as SUN
from evaluator.families.uniqueness.family import FAMILY as UNIQUENESS
from evaluator.families.validity.family import FAMILY as VALIDITY

FAMILIES: tuple[Family[Any], ...] = (VALIDITY, UNIQUENESS, NOVELTY, STABILITY, SUN, DIVERSITY,
                                     DISTRIBUTION, HHI)
