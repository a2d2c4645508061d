"""Playbot's Slack-free domain core: job lifecycle, permissions, approvals, tickets, audit,
validation of what users type. Plain functions taking a session and plain values; the caller
owns the transaction (core functions flush, never commit). Imports no Slack, Dramatiq or
ansible-runner module.

Modules: `identity` (Slack user → users row), `permissions` (the role table), `audit`
(append-only trail, sanitized), `extra_vars` (key=value validation), `targets` (hostname /
tag: / env:), `suggestions` (closest matches), `jobs` (launch, retry, cancel, lookup),
`approvals` (four-eyes decisions, expiry), `tickets` (incidents and the queue), `refs`
(uuid / prefix / id lookup), `execution` (the workers' side), `playbook_files`,
`playbook_registry`, `inventory`, `servers`, `users`, `labels` (registration and
administration).

Audit: who writes which row
---------------------------
- Successful state changes audit THEMSELVES, in the caller's transaction, with the
  `request=RequestInfo(...)` the caller passes:
      jobs.launch → "job.launch" (one row per job created, or found again as a repeat)
      jobs.retry → "job.retry" (a repeat: "job.launch" with duplicate=true)
      jobs.cancel → "job.cancel"
      approvals.approve / reject / expire_overdue → "approval.approve" / "approval.reject" /
          "approval.expire" (the last by the system, user None)
      tickets.open_incident → "ticket.open" (system); tickets.take / resolve / close →
          "ticket.take" / "ticket.resolve" / "ticket.close"
  A caller that wraps these must not write a second row for the same action (the Slack
  handlers mark them `audited_by_core=True`).
- Reads (views, lists, the queue, help) are audited by the caller: the core does not know
  which of its read functions answer one chat action.
- Denials and refusals are audited by the CALLER, after rolling back: a core function that
  refuses raises (NotAllowed, InvalidVars, UnknownJob...), the caller's transaction rolls
  back — which would discard any row written in it — and the caller then records the
  denial in a fresh transaction:

      try:
          with transaction(factory) as session:
              user = identity.resolve_slack_user(session, slack_id)
              jobs.cancel(session, user, ref, request=req)
      except PlaybotError as error:
          with transaction(factory) as session:
              audit.denied(session, user_or_none, "job.cancel", "job", ref, error, req)
          raise

  `audit.record(..., outcome="denied")` is the general form; NotAllowed is "denied", other
  refusals (bad input, unknown names) are up to the caller ("allowed" + the error is fine).

Concurrency: every state transition (approve/reject/expire, cancel, take/resolve/close) is a
conditional UPDATE on the expected state, so double clicks and simultaneous admins get one
winner; the loser gets InvalidState saying what happened. Repeated launches are deduplicated
by `jobs.request_key` (unique), identical launches still in progress by
`jobs.active_fingerprint` (unique). An identical launch racing another one loses inside a
SAVEPOINT and is answered with the winner's job; IntegrityError reaches the caller only when
the clash is on `request_key` alone, and retrying the whole request in a new transaction then
returns the first delivery's jobs.
"""
