"""Notifications: stored in PostgreSQL and, in the same action, sent live to `user:<id>`."""
