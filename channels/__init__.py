"""roomcast's realtime core: rooms over one WebSocket, fanned out through Redis. Knows nothing of meetings."""
