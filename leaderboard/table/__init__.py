"""The leaderboard table, one module per job:

- ``measures``: the metric columns of a results table as measures, from the metric
  catalogue the families declare (``evaluator.catalogue``);
- ``metadata``: metadata columns, who evaluated a submission, what its reference covers;
- ``ranking``: filters and ranking;
- ``view``: the displayed table (``build_view``);
- ``styling``: family colours, cell tints, the legend;
- ``results_cache``: the TTL cache of the store's results table.
"""
