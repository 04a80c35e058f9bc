"""Offline data builders (run once, online): LeMat-Bulk hulls and fingerprint
references. Nothing here runs while a submission is scored."""
