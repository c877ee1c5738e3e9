"""Verify-and-store: check stored candidates with the physics oracle and keep each verdict.

One implementation for ``vdwgen verify`` and the app's "Check with the oracle" button. Each batch
of candidates is relaxed (:func:`scoring.oracle_check.check_with_oracle`) and its verdicts are
written to the store before the next batch starts, so an interrupt loses at most the batch in
flight: :class:`VerificationInterrupted` carries what was already stored.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pymatgen.core import Structure

from core.paths import dataset_dir
from oracle.convention import load_references
from oracle.shared import OracleError, get_oracle
from scoring.oracle_check import FMAX, MAX_STEPS, OracleCheck, check_with_oracle, input_problem
from store.database import Store, StoreError

BATCH = 8
"""Candidates relaxed together (one FIRE batch) and stored together."""
SHOWN_IDS = 10
"""At most this many ids are named in one message."""


@dataclass(frozen=True)
class Verified:
    """One candidate checked by the oracle and stored."""

    candidate_id: int
    formula: str
    predicted: float | None
    check: OracleCheck


class VerificationInterrupted(KeyboardInterrupt):
    """Ctrl-C during a check; ``verified`` holds the candidates already checked and stored."""

    def __init__(self, verified: list[Verified], total: int) -> None:
        super().__init__(f"{len(verified)} of {total} checked and stored before the interrupt")
        self.verified = verified
        self.total = total


def named_ids(ids: list[int]) -> str:
    """``1, 2, 3`` (at most :data:`SHOWN_IDS`, then "and N more"); "none" for no ids."""
    if not ids:
        return "none"
    more = f" and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else ""
    return ", ".join(str(i) for i in ids[:SHOWN_IDS]) + more


def _rows(store: Store, ids: list[int]) -> list[dict]:
    """The candidates' rows, in order; every unknown id is named (up to a few) in one error."""
    rows, missing = [], []
    for cid in ids:
        try:
            rows.append(store.candidate(cid))
        except StoreError:
            missing.append(cid)
    if missing:
        noun = "no candidate with id" if len(missing) == 1 else "no candidates with ids"
        raise StoreError(f"{noun} {named_ids(missing)} in {store.path}")
    return rows


def verify_candidates(
    store: Store,
    ids: list[int],
    fmax: float = FMAX,
    max_steps: int = MAX_STEPS,
    references: Mapping[str, float] | None = None,
    progress: Callable[[int, int], None] | None = None,
    batch: int = BATCH,
) -> list[Verified]:
    """Relax the candidates ``ids`` with the oracle (fixed cell) and store every verdict.

    Args:
        store: the candidate store holding the ids.
        ids: candidate ids (duplicates are checked once, in first-seen order).
        fmax: force threshold in eV/Å (> 0).
        max_steps: FIRE steps at most (>= 1).
        references: elemental references (default: the dataset's ``references.json``).
        progress: called with (crystals finished, total) after every FIRE step.
        batch: crystals relaxed and stored together.

    Raises:
        OracleError: a bad setting, or a candidate the oracle cannot check (all are checked before
            any relaxation, so nothing is half done).
        StoreError: an id that is not in the store.
        VerificationInterrupted: Ctrl-C; the candidates checked so far are stored.
    """
    if not fmax > 0:
        raise OracleError(f"--fmax must be a positive force in eV/Å (got {fmax})")
    if max_steps < 1:
        raise OracleError(f"--max-steps must be at least 1 (got {max_steps})")
    ids = list(dict.fromkeys(int(i) for i in ids))
    rows = _rows(store, ids)
    references = references if references is not None else load_references(dataset_dir())
    structures = [Structure.from_str(row["poscar"], fmt="poscar") for row in rows]
    for cid, structure in zip(ids, structures):  # every refusal before any relaxation
        problem = input_problem(structure, references)
        if problem is not None:
            raise OracleError(f"candidate {cid}: {problem}")
    verified: list[Verified] = []
    with warnings.catch_warnings():
        # chgnet 0.4.2 converts grad-tracking tensors in every forward; harmless, not the user's business
        warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True")
        oracle = get_oracle()
        try:
            for start in range(0, len(ids), batch):
                done = len(verified)

                def step(finished: int, _total: int, done: int = done) -> None:
                    if progress is not None:
                        progress(done + finished, len(ids))

                checks = check_with_oracle(structures[start:start + batch], references, oracle, fmax=fmax,
                                           max_steps=max_steps, progress=step)
                for row, check in zip(rows[start:start + batch], checks):
                    store.record_oracle(int(row["id"]), check, oracle.label)
                    verified.append(Verified(int(row["id"]), str(row["formula"]),
                                             row["predicted_formation_energy"], check))
        except KeyboardInterrupt:
            raise VerificationInterrupted(verified, len(ids)) from None
    return verified


def oracle_label() -> str:
    """The oracle's name and version as stored with each verdict (loads the oracle on first use)."""
    return get_oracle().label
