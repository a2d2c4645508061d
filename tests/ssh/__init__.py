"""Tests of Playbot's SSH side against the suite's real SSH test hosts."""
