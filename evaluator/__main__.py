"""``python -m evaluator``: see :mod:`evaluator.cli`."""

import sys

from evaluator.cli import main

sys.exit(main())
