"""Crystal generative-model evaluator: a library plus a CLI (``python -m evaluator``).

Knows nothing of Gradio, queues or the Hub. Data flows one way:
ingest -> per-structure table -> metric families (each adds columns) -> summary.
"""

__version__ = "0.1.0"
