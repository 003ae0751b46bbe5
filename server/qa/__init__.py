"""Live Q&A: asking, voting, moderating, and the questions part of meeting snapshots and exports."""
