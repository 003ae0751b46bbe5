"""Who the caller is: accounts, sessions (JWT + rotating refresh tokens), API keys, guest tokens."""
