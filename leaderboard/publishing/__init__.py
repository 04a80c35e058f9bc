"""Publishing: a finished job's summary as a leaderboard row (``rows``), the results store
as a ``datasets``-loadable dataset (``dataset``, ``card``, ``structures_schema``) and
reading published results back (``results``)."""
