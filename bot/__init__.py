"""App wiring: settings, the Bolt app factory, HTTP and Socket Mode entry points, CLI, console."""
