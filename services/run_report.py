"""A stored run in figures: validity by each check, and what the oracle found before and after relaxing.

The command line (``vdwgen generate``) and the Generate page both print these lines from the stored rows of
one run (dicts of ``candidates`` columns), so the two never count differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.dataset_answer import TARGET_WINDOW

CHECKS = (("structure_valid", "distances ≥ 0.5 Å"), ("composition_valid", "SMACT"),
          ("contacts_valid", "contacts"), ("motif_valid", "layer motif"), ("gap_valid", "vdW gap"))
"""Each validity column and its short name."""


def _count(rows: Sequence[dict], column: str, value: object = True) -> int:
    return sum(r.get(column) == value for r in rows)


@dataclass(frozen=True)
class RunFigures:
    """What one run's stored rows say, counted once."""

    rows: list[dict]
    target: float | None

    @property
    def relaxed(self) -> list[dict]:
        return [r for r in self.rows if r.get("oracle_formation_energy") is not None]

    def validity_line(self) -> str:
        """``8/10 valid (every check that applies); passed: distances ≥ 0.5 Å 10/10, SMACT 10/10, ...``."""
        n = len(self.rows)
        parts = [f"{name} {_count(self.rows, col)}/{sum(r.get(col) is not None for r in self.rows)}"
                 for col, name in CHECKS if any(r.get(col) is not None for r in self.rows)]
        return f"{_count(self.rows, 'valid')}/{n} valid (every check that applies); passed: {', '.join(parts)}"

    def hits(self, column: str) -> int:
        """Relaxed crystals whose ``column`` (an oracle formation energy) is within the window of the target."""
        return sum(abs(r[column] - self.target) <= TARGET_WINDOW for r in self.relaxed
                   if self.target is not None and r.get(column) is not None)

    def oracle_line(self) -> str | None:
        """The relaxed crystals in one line (None when none was relaxed)."""
        relaxed = self.relaxed
        if not relaxed:
            return None
        n = len(relaxed)
        left = len(self.rows) - n
        untaken = f" ({left} not: the oracle could not take them)" if left else ""
        text = (f"oracle: {n} relaxed{untaken}; valid {_count(self.rows, 'valid')}/{len(self.rows)} as generated, "
                f"{_count(relaxed, 'relaxed_valid')}/{n} relaxed; novel {_count(relaxed, 'novel')}/{n} as generated, "
                f"{_count(relaxed, 'relaxed_novel')}/{n} relaxed; {sum(bool(r.get('oracle_flags')) for r in relaxed)} "
                "flagged")
        if self.target is not None:
            text += (f"; within ±{TARGET_WINDOW} eV/atom of {self.target:+.3f} by the oracle: "
                     f"{self.hits('oracle_initial_formation_energy')}/{n} as generated, "
                     f"{self.hits('oracle_formation_energy')}/{n} relaxed")
        return text


__all__ = ["CHECKS", "RunFigures"]
