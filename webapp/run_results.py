"""What the Generate page shows of a stored run: its table and its files, from the stored records only.

Every value comes from the run's :class:`~scoring.record.CandidateRecord` s (what the store holds), so
nothing is scored again; files are named by :func:`store.files.poscar_name`, as on the Candidates page
and by ``vdwgen export-poscar``.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence

import pandas as pd

from scoring.record import CandidateRecord
from store.files import poscar_name


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def yes_no(value: bool | None) -> str:
    """``yes``/``no``, or ``-`` when not judged."""
    return "-" if value is None else ("yes" if value else "no")


def duplicate_label(duplicate_of: int | None) -> str:
    """A record's ``duplicate_of`` in words: ``-`` (none), ``candidate 12`` (stored) or ``#k of this run``."""
    if duplicate_of is None:
        return "-"
    if duplicate_of < 0:
        return f"#{-duplicate_of - 1} of this run"
    return f"candidate {duplicate_of}"


def results_table(candidate_ids: Sequence[int], records: Sequence[CandidateRecord],
                  property_label: str = "E_f (eV/atom)") -> pd.DataFrame:
    """One row per stored crystal: its id, index in the run, validity, 2D checks (slabs only: a bulk crystal's
    layers and gap are empty), novelty and duplicate."""
    rows = [{"id": cid, "#": r.index_in_run, "formula": r.formula, "validity": r.verdict,
             "novel": yes_no(r.novel), "duplicate of": duplicate_label(r.duplicate_of),
             f"predicted {property_label}": _rounded(r.predicted_formation_energy, 4),
             "kind": "slab" if r.slab else "bulk", "layers": r.n_layers,
             "interlayer gap (Å)": _rounded(r.interlayer_gap, 3), "min distance (Å)": _rounded(r.min_distance, 3),
             "a (Å)": round(r.a, 3), "c (Å)": round(r.c, 3), "atoms": r.num_atoms}
            for cid, r in zip(candidate_ids, records, strict=True)]
    return pd.DataFrame(rows)


def poscar_zip(candidate_ids: Sequence[int], records: Sequence[CandidateRecord]) -> bytes:
    """A ZIP of the stored POSCARs, one file per crystal named by :func:`store.files.poscar_name`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for cid, r in zip(candidate_ids, records, strict=True):
            archive.writestr(poscar_name(cid, r.formula), r.poscar)
    return buffer.getvalue()
