"""The metric families, one folder each: ``metrics.py`` declares what a family
publishes (pure data, no science imports), ``family.py`` computes it. The
contract between the pipeline and a family lives in ``base.py``."""
