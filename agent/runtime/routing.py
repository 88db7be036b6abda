"""Which version a new task runs on while its agent has a canary release in progress.

The split is decided by the task, not by chance: a task's bucket is a hash of the canary and the
task id, so the same task always lands on the same arm of the same canary (a retried claim, a
second worker, a test replaying the claim), and a new canary of the same agent draws a fresh,
independent sample. A share of ``N`` percent sends the tasks whose bucket (0-9999) is below
``N * 100`` to the candidate. Hand-written because it is four lines of ``hashlib``; a library
for it would be a dependency for a hash.
"""

from __future__ import annotations

import hashlib

BUCKETS = 10_000


def canary_bucket(canary_id: int, task_id: int) -> int:
    """The task's bucket in this canary, from 0 to ``BUCKETS - 1``."""
    digest = hashlib.blake2b(f"{canary_id}:{task_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def routes_to_candidate(canary_id: int, task_id: int, share: int) -> bool:
    """Whether a canary sending ``share`` percent of new tasks to its candidate sends this
    task."""
    return canary_bucket(canary_id, task_id) < share * BUCKETS // 100
