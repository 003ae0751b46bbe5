"""Peers: what a team would pick instead of roomcast, run side by side with it (issue 19).

`python -m benchmarks.load peers` starts each of them (and roomcast and the bare baseline) as two
processes on one Redis, drives them with the same clients and prints one table. See
benchmarks/README.md ("Peers").
"""
