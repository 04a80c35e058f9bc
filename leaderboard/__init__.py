"""The leaderboard back end: submissions, a durable queue, results and the worker.

Knows nothing of crystals beyond the summary and per-structure table the
evaluator produces. Everything persistent lives in a ``Store`` (local folder
or a Hugging Face dataset repo) with one layout, defined in ``leaderboard.store.layout``::

    submissions/<id>/meta.json          validated metadata (write-once)
    submissions/<id>/files/<name>       uploaded file(s) (write-once)
    queue/<id>.json                     status document (compare-and-swap)
    queue/sequence.txt                  last job sequence number (FIFO order)
    results/<id>/summary.json           evaluator summary (+ "leaderboard" block)
    results/<id>/structures.parquet     per-structure table
    results/leaderboard.parquet         one row per finished, visible submission
    quarantine/...                      copies of corrupt status documents (kept, out of the queue)
"""
