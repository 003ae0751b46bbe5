"""Meetings: setup over REST, roles, join codes, and the meeting rooms' policy."""
