"""Workers: Dramatiq actors that run playbooks with ansible-runner, and their housekeeping.

Entry points (called by the `playbot` CLI and the console, which build a `WorkerConfig`
from the settings — workers never import `bot`):

- `workers.main.run_worker(config, threads=...)`: `playbot worker`, consumes Redis.
- `workers.main.run_clock(config)`: `playbot clock`, reaper / requeue / approvals / retention.
- `workers.embedded.start_embedded(config)`: in-process broker, worker threads and
  housekeeping for single-process installs and `playbot console`.
- `workers.queue.DramatiqJobQueue`: the `core.queue.JobQueue` the Slack app enqueues with.

See docs/workers.md.
"""
