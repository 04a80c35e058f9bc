"""Jobs: the durable queue (``queue``: claim, finish, fail, ...; ``documents``: the typed job
and its records; ``job_store``: reading and writing status documents; ``leases``;
``queue_index``), the worker's loop (``supervisor``, checked by ``worker_config``), running one
evaluation in a child process (``evalproc``), its progress (``progress``) and time estimates
(``eta``), several jobs per worker (``slots``) and re-scoring under a new protocol
(``rescore``). The worker's command line is ``leaderboard.worker``."""
