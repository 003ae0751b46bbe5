"""Live polls (choice, rating, word cloud) and reactions: docs/protocol.md, "Polls and reactions"."""
