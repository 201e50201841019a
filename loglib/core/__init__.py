"""Canonical schema, the one rejects mechanism and time parsing: the ground floor of loglib."""
