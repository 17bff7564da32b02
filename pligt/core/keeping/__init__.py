"""Keeping what was promised: fixity checks, leftovers of interrupted writes, backups, privacy schedules."""
