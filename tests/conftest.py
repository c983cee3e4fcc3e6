"""Hypothesis profiles: `default` for every run, `thorough` (HYPOTHESIS_PROFILE=thorough) for a
long search before a release."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("default", deadline=None, max_examples=300)
settings.register_profile("thorough", deadline=None, max_examples=5_000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
