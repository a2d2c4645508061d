"""Every action_id, callback_id and block_id the app uses. The manifest test reads these too."""

from __future__ import annotations

# Slash commands (names as registered in manifest.yml).
CMD_RUN_PLAYBOOK = "/run-playbook"
CMD_JOBS = "/jobs"
CMD_JOB = "/job"
CMD_CANCEL = "/cancel-job"
CMD_TICKETS = "/tickets"
CMD_SERVERS = "/servers"
CMD_PLAYBOOKS = "/playbooks"
CMD_AUDIT = "/audit"
CMD_PLAYBOT = "/playbot"  # help, stats, history and a catch-all for mistyped subcommands
CMD_RUN_TEMPLATE = "/run-template"  # issue 16: job templates
CMD_TEMPLATES = "/templates"
CMD_FREEZE = "/freeze"  # issue 16: change freezes
CMD_SCHEDULES = "/schedules"  # issue 16: schedules
CMD_NOTIFY = "/notify"  # issue 16: notification settings

# Buttons on job messages.
ACTION_JOB_CANCEL = "job_cancel"
ACTION_JOB_RETRY = "job_retry"
ACTION_JOB_SHOW = "job_show"
# Buttons on the message of a run of several servers (value: the run id).
ACTION_RUN_CANCEL = "run_cancel"
ACTION_RUN_RETRY_FAILED = "run_retry_failed"
# "Live log" on a job or run message (value: the run id): answers only the clicker with a
# signed link to each job's live log page (issue 15).
ACTION_LIVE_LOG = "live_log"

# Buttons on tickets.
ACTION_TICKET_TAKE = "ticket_take"
ACTION_TICKET_RESOLVE = "ticket_resolve"
ACTION_TICKET_CLOSE = "ticket_close"
ACTION_APPROVAL_APPROVE = "approval_approve"
ACTION_APPROVAL_REJECT = "approval_reject"

# Modals.
VIEW_RUN_PLAYBOOK = "run_playbook_modal"
VIEW_RESOLVE_TICKET = "resolve_ticket_modal"
VIEW_REJECT_APPROVAL = "reject_approval_modal"  # Reject on an approval card asks for a reason
VIEW_JOB_DETAILS = "job_details_modal"  # read-only; opened by "Show" where no reply URL exists
ACTION_MODAL_PLAYBOOK_SELECT = "run_modal_playbook"
ACTION_HOME_RUN = "home_run_playbook"  # App Home button that opens the run-playbook modal
ACTION_TEMPLATE_RUN = "template_run"  # Run button of a job template (value: its name)
ACTION_MODAL_TEMPLATE_SELECT = "run_modal_template"  # the run form's template picker

# Blocks of the run-playbook modal: the playbook select, the target, check mode, and one input
# block per declared variable (`BLOCK_VAR_PREFIX + name`); every input element uses
# ACTION_INPUT_VALUE as its action_id, so submitted state is read as state[block]["value"].
BLOCK_RUN_PLAYBOOK = "rp_playbook"
BLOCK_RUN_TARGET = "rp_target"
BLOCK_RUN_CHECK = "rp_check"
BLOCK_VAR_PREFIX = "rp_var:"
BLOCK_RESOLVE_NOTE = "resolve_note"
BLOCK_REJECT_REASON = "reject_reason"
ACTION_INPUT_VALUE = "value"
CHECK_MODE_VALUE = "check"
BOOLEAN_TRUE_VALUE = "true"

# Events the app subscribes to (manifest.yml bot_events).
EVENT_APP_HOME_OPENED = "app_home_opened"
EVENT_MESSAGE = "message"  # the event type of a direct message to the bot
SUBSCRIPTION_MESSAGE_IM = "message.im"  # its subscription name in manifest.yml

ALL_ACTION_IDS = frozenset(
    {
        ACTION_JOB_CANCEL,
        ACTION_JOB_RETRY,
        ACTION_JOB_SHOW,
        ACTION_RUN_CANCEL,
        ACTION_RUN_RETRY_FAILED,
        ACTION_TICKET_TAKE,
        ACTION_TICKET_RESOLVE,
        ACTION_TICKET_CLOSE,
        ACTION_APPROVAL_APPROVE,
        ACTION_APPROVAL_REJECT,
        ACTION_MODAL_PLAYBOOK_SELECT,
        ACTION_HOME_RUN,
        ACTION_LIVE_LOG,
        ACTION_TEMPLATE_RUN,
        ACTION_MODAL_TEMPLATE_SELECT,
    }
)
ALL_COMMANDS = frozenset(
    {
        CMD_RUN_PLAYBOOK,
        CMD_JOBS,
        CMD_JOB,
        CMD_CANCEL,
        CMD_TICKETS,
        CMD_SERVERS,
        CMD_PLAYBOOKS,
        CMD_AUDIT,
        CMD_PLAYBOT,
        CMD_RUN_TEMPLATE,
        CMD_TEMPLATES,
        CMD_FREEZE,
        CMD_SCHEDULES,
        CMD_NOTIFY,
    }
)
ALL_CALLBACK_IDS = frozenset({VIEW_RUN_PLAYBOOK, VIEW_RESOLVE_TICKET, VIEW_JOB_DETAILS,
                              VIEW_REJECT_APPROVAL})
ALL_EVENTS = frozenset({EVENT_APP_HOME_OPENED, SUBSCRIPTION_MESSAGE_IM})  # manifest bot_events
