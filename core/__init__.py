"""Playbot's Slack-free domain core: job lifecycle, permissions, approvals, tickets, audit,
validation of what users type. Plain functions taking a session and plain values; the caller
owns the transaction (core functions flush, never commit). Imports no Slack, Dramatiq or
ansible-runner module.
"""
