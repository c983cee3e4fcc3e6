"""What runs beside the requests: the writer (with the clock that begins and splits sessions)
and webhook delivery."""
