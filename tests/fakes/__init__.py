"""Local stand-ins for the outside world, speaking the real wire formats (see each module)."""
