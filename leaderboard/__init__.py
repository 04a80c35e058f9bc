"""The leaderboard back end: submissions, a durable queue, results and the worker.

Knows nothing of crystals beyond the summary and per-structure table the
evaluator produces. Everything persistent lives in a ``Store`` (local folder
or a Hugging Face dataset repo) with one layout, defined and documented in
``leaderboard.store.layout``: submissions (metadata and uploaded files, write-once),
queue status documents (compare-and-swap), published results and the leaderboard table.
"""
