"""Account self-service: profile, password change and reset by email, sessions, export and deletion."""
