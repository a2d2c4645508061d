"""The job queue as the core sees it: something that can enqueue a job by its uuid.

Workers provide the Dramatiq implementation; the app wiring passes it to whoever needs it.
"""

from __future__ import annotations

from typing import Protocol


class JobQueue(Protocol):
    def enqueue(self, job_id: str) -> str:
        """Send the job to the workers; return the queue's message id.

        Raises `core.errors.QueueUnavailable` when the broker cannot be reached quickly.
        """
        ...
