"""The HTTP API (Litestar): one module per group of routes, auth, errors, the dashboard."""
