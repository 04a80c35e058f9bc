"""Intake: what happens to an upload before it is a job — metadata checks, duplicate and
rate-limit checks, storing the files (``submissions``), deleting refused uploads
(``uploads``), reading a submission's metadata back (``submission_meta``) and the
example submission (``example``)."""
