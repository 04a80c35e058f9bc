"""Jobs: the durable queue (``queue``, ``queue_index``), running one evaluation in a child
process (``evalproc``), its progress (``progress``) and time estimates (``eta``), several
jobs per worker (``slots``) and re-scoring under a new protocol (``rescore``). The worker's
command line is ``leaderboard.worker``."""
