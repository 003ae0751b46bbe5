"""Live polls (choice, rating, word cloud) and reactions: SPEC section 4, "Polls and reactions"."""
