"""roomlog: meeting sessions from video-room presence events."""

__version__ = "0.1.0"
