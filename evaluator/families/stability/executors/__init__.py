"""Executors of the stability stage's relaxations beyond this machine.

The local executor is ``evaluator.families.stability.runner`` itself (engine, batched,
pool or serial on this machine). ``ray_executor`` spreads the same per-structure work over
a Ray cluster: ``chunks`` cuts the structures into chunks balanced by atom count,
``ray_actor`` is the actor that loads the MLIP once and relaxes chunks. Which executor runs
is ``evaluator.execution.ExecutionSettings`` (execution only: no value depends on it).
"""
