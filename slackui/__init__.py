"""Block Kit builders and interaction ids shared by the Slack handlers and the worker notifier.

Pure functions returning dicts; no Slack SDK imports, no database access.
"""
