"""The three parameters of the session rules (SESSION-RULES "Parameters")."""

from __future__ import annotations

from dataclasses import dataclass

from roomlog.domain.events import MICROS


@dataclass(frozen=True, slots=True)
class Rules:
    """The session rules' parameters, in microseconds. Build one from seconds with `seconds()`."""

    min_presence: int = 10 * MICROS
    solo_start: int = 30 * MICROS
    solo_reset: int = 600 * MICROS

    def __post_init__(self) -> None:
        if self.min_presence < 0:
            raise ValueError("min_presence must be 0 or more seconds")
        if self.solo_start <= 0:
            raise ValueError("solo_start must be more than 0 seconds")
        if self.solo_reset <= 0:
            raise ValueError("solo_reset must be more than 0 seconds")

    @classmethod
    def seconds(
        cls, min_presence: float = 10, solo_start: float = 30, solo_reset: float = 600
    ) -> Rules:
        return cls(
            min_presence=round(min_presence * MICROS),
            solo_start=round(solo_start * MICROS),
            solo_reset=round(solo_reset * MICROS),
        )


DEFAULT_RULES = Rules()
