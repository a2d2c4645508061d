"""The queue's epoch: a name for the queue's current life, that changes exactly when queued
messages may have been lost.

- Redis: its `run_id` (from `INFO server`: new at every start) and a token key
  `playbot:queue-epoch` (made once with SET NX; it disappears when the data is flushed or
  lost). Only documented Redis commands are used; Dramatiq's own keys are never read.
- In-process broker (the embedded runner): one epoch per process, since its queue dies with
  the process.

The clock compares it with the epoch it saw before (`core.clock_state.note_queue_epoch`);
`core.execution.requeue_candidates` then sends again what was queued and not yet taken
before the change. A Redis with persistence (AOF) that restarts keeps its messages yet gets
a new epoch: the jobs still queued are sent once more, a duplicate the claim makes harmless.
"""

from __future__ import annotations

import uuid

from workers.redis_conn import redis_client

EPOCH_KEY = "playbot:queue-epoch"
_PROCESS_EPOCH = f"in-process:{uuid.uuid4()}"


def queue_epoch(redis_url: str | None) -> str:
    """The current epoch of the queue at `redis_url` (None: this process's in-process
    queue). Raises redis.RedisError when Redis cannot be reached."""
    if not redis_url:
        return _PROCESS_EPOCH
    client = redis_client(redis_url)
    try:
        run_id = client.info("server").get("run_id", "")
        client.set(EPOCH_KEY, str(uuid.uuid4()), nx=True)
        token = client.get(EPOCH_KEY)
    finally:
        client.close()
    token_text = token.decode() if isinstance(token, bytes) else str(token)
    return f"redis:{run_id}:{token_text}"
