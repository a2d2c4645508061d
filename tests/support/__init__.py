"""Test support: real MariaDB and Redis servers on loopback, database fixtures' helpers."""
