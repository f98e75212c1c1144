"""Dagster sensors and schedules (prompt-folder watcher, judge-change re-judging) live here."""
