"""The web dashboard: overview, sessions, a session's timeline and attendance, at `/`."""
