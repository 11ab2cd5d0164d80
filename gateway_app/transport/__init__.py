"""The transports: WebSocket (Channels consumer) and stdio, their input and output limits."""
