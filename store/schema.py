"""The candidate store's tables, as numbered migrations.

``runs``: one row per generation request (what was asked, which model, settings, timings,
status). ``candidates``: one row per generated crystal with its formula, cell, derived
properties, the model's predictions, every score, and the POSCAR and CIF text; the
``oracle_*`` columns (migration 2) hold the latest check of the crystal with the physics
oracle (:mod:`scoring.oracle_check`: CHGNet + D3 relaxation; fixed cell before migration 4, positions and
in-plane cell since), NULL until checked.
Migration 4 adds every validity check (the paper's two
kept), known vs new against the whole dataset, and the relaxation's own columns (``oracle_cell``,
``oracle_flags``, the relaxed crystal's ``relaxed_*`` scores); ``runs.relax_status`` says how far a run's
relaxation got. Migration 5 adds design runs (SMOACS): ``design_criteria`` holds one row per candidate and
target (the designed, predicted and oracle values, met or not), ``candidates.design_met`` /
``design_oracle_met`` whether every target holds. Migration 6 adds ``runs.chunk_size``: a streamed run stores its
candidates chunk by chunk as they are scored, so a run cut short keeps its chunks and resumes after them.
``schema_version`` records the migrations applied;
:func:`store.database.open_store`
applies the missing ones in order, each in its own transaction, so a file written by an
older vdwgen is brought up to date when it is opened (its rows are kept).
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: runs and candidates
    """
    CREATE TABLE runs (
        id                  INTEGER PRIMARY KEY,
        created             TIMESTAMP NOT NULL,
        finished            TIMESTAMP,
        status              VARCHAR NOT NULL,      -- running | completed | interrupted | failed
        mode                VARCHAR NOT NULL,      -- formation_energy | formula | unconditional
        target_formation_energy DOUBLE,            -- eV/atom
        formula_request     VARCHAR,
        count_requested     INTEGER NOT NULL,
        count_stored        INTEGER NOT NULL DEFAULT 0,
        seed                INTEGER NOT NULL,
        steps_per_level     INTEGER,
        screening_ratio     INTEGER,
        model_name          VARCHAR NOT NULL,
        manifest_sha256     VARCHAR NOT NULL,
        seconds             DOUBLE,
        message             VARCHAR
    );
    CREATE TABLE candidates (
        id                  INTEGER PRIMARY KEY,
        run_id              INTEGER NOT NULL REFERENCES runs (id),
        index_in_run        INTEGER NOT NULL,
        created             TIMESTAMP NOT NULL,
        formula             VARCHAR NOT NULL,
        reduced_formula     VARCHAR NOT NULL,
        elements            VARCHAR[] NOT NULL,
        num_atoms           INTEGER NOT NULL,
        a DOUBLE, b DOUBLE, c DOUBLE, alpha DOUBLE, beta DOUBLE, gamma DOUBLE,
        volume              DOUBLE,                -- Å^3
        density             DOUBLE,                -- g/cm^3
        predicted_formation_energy DOUBLE,         -- eV/atom, the model's property head
        min_distance        DOUBLE,                -- Å
        structure_valid     BOOLEAN NOT NULL,
        composition_valid   BOOLEAN NOT NULL,
        valid               BOOLEAN NOT NULL,
        n_layers            INTEGER,
        periodic_along_c    BOOLEAN,
        vacuum              DOUBLE,                -- Å
        interlayer_gap      DOUBLE,                -- Å
        interlayer_distance DOUBLE,                -- Å
        interlayer_too_short BOOLEAN,
        novel               BOOLEAN,               -- matches no training crystal (NULL: not checked)
        duplicate_of        INTEGER,               -- id of an earlier stored candidate it matches
        poscar              VARCHAR NOT NULL,
        cif                 VARCHAR NOT NULL,
        UNIQUE (run_id, index_in_run)
    );
    """,
    # 2: the physics oracle's check of a candidate (vdwgen verify / the app's button)
    """
    ALTER TABLE candidates ADD COLUMN oracle_formation_energy DOUBLE;      -- eV/atom, relaxed, dataset convention
    ALTER TABLE candidates ADD COLUMN oracle_energy_drop_per_atom DOUBLE;  -- eV/atom, as generated - relaxed
    ALTER TABLE candidates ADD COLUMN oracle_interlayer_gap DOUBLE;        -- Å, relaxed; NULL unless two layers
    ALTER TABLE candidates ADD COLUMN oracle_rmsd DOUBLE;                  -- Å, displacement during relaxation
    ALTER TABLE candidates ADD COLUMN oracle_steps INTEGER;                -- FIRE steps
    ALTER TABLE candidates ADD COLUMN oracle_converged BOOLEAN;            -- max force < fmax in time
    ALTER TABLE candidates ADD COLUMN oracle_relaxed_poscar VARCHAR;       -- the relaxed crystal
    ALTER TABLE candidates ADD COLUMN oracle_checked_at TIMESTAMP;         -- UTC
    ALTER TABLE candidates ADD COLUMN oracle_version VARCHAR;              -- e.g. CHGNet 0.3.0 + D3(zero, PBE)
    """,
    # 3: bulk crystals and slabs: the 2D columns (n_layers, vacuum, interlayer_*) are NULL unless a slab
    """
    ALTER TABLE candidates ADD COLUMN slab BOOLEAN;  -- vacuum along c, no bond across it (NULL: stored before v3)
    """,
    # 4: validity that means something, known vs new, and the oracle's relaxation in the pipeline (issue 15).
    # Rows stored before are re-scored for validity when the file is opened (store.database.rescore_validity).
    """
    ALTER TABLE candidates ADD COLUMN contacts_valid BOOLEAN;       -- no pair closer than 0.85 x covalent radii
    ALTER TABLE candidates ADD COLUMN motif_valid BOOLEAN;          -- two X-M-M-X layers (NULL: not our family)
    ALTER TABLE candidates ADD COLUMN gap_valid BOOLEAN;            -- interlayer gap 2.5-4.5 Å (NULL: not checked)
    ALTER TABLE candidates ADD COLUMN invalid_reason VARCHAR;       -- what every failed check found
    ALTER TABLE candidates ADD COLUMN known BOOLEAN;                -- matches a dataset bilayer of any split
    ALTER TABLE candidates ADD COLUMN known_id VARCHAR;             -- the first dataset bilayer it matches
    ALTER TABLE candidates ADD COLUMN oracle_initial_formation_energy DOUBLE;  -- eV/atom, as generated
    ALTER TABLE candidates ADD COLUMN oracle_max_force DOUBLE;      -- eV/Å at the end of the relaxation
    ALTER TABLE candidates ADD COLUMN oracle_cell VARCHAR;          -- fixed | in_plane: what the relaxation moved
    ALTER TABLE candidates ADD COLUMN oracle_flags VARCHAR;         -- why the oracle's result looks wrong (NULL: fine)
    ALTER TABLE candidates ADD COLUMN relaxed_cif VARCHAR;
    ALTER TABLE candidates ADD COLUMN relaxed_a DOUBLE;             -- Å, relaxed cell
    ALTER TABLE candidates ADD COLUMN relaxed_b DOUBLE;
    ALTER TABLE candidates ADD COLUMN relaxed_gamma DOUBLE;
    ALTER TABLE candidates ADD COLUMN relaxed_valid BOOLEAN;        -- every check of the relaxed crystal
    ALTER TABLE candidates ADD COLUMN relaxed_invalid_reason VARCHAR;
    ALTER TABLE candidates ADD COLUMN relaxed_n_layers INTEGER;
    ALTER TABLE candidates ADD COLUMN relaxed_novel BOOLEAN;        -- relaxed crystal vs the training part
    ALTER TABLE candidates ADD COLUMN relaxed_known BOOLEAN;        -- relaxed crystal vs every dataset bilayer
    ALTER TABLE candidates ADD COLUMN relaxed_known_id VARCHAR;
    ALTER TABLE runs ADD COLUMN relax BOOLEAN;                      -- the run relaxes its crystals with the oracle
    ALTER TABLE runs ADD COLUMN relax_status VARCHAR;               -- running | completed | interrupted | failed
    ALTER TABLE runs ADD COLUMN relax_message VARCHAR;
    """,
    # 5: design runs (SMOACS, issue 16): what was asked, and one row per candidate and criterion
    """
    ALTER TABLE runs ADD COLUMN design_targets VARCHAR;            -- the targets as written, joined by ' AND '
    ALTER TABLE runs ADD COLUMN templates VARCHAR;                 -- dataset | generated | both
    ALTER TABLE candidates ADD COLUMN template_id VARCHAR;         -- the crystal a designed candidate started from
    ALTER TABLE candidates ADD COLUMN design_met BOOLEAN;          -- every target met as designed (predictor)
    ALTER TABLE candidates ADD COLUMN design_oracle_met BOOLEAN;   -- every target met after the oracle's relaxation
    CREATE TABLE design_criteria (
        candidate_id        INTEGER NOT NULL REFERENCES candidates (id),
        label               VARCHAR NOT NULL,      -- e.g. formation_energy_per_atom
        target              VARCHAR NOT NULL,      -- e.g. formation_energy_per_atom<=-0.8
        low                 DOUBLE,                -- NULL: no lower bound
        high                DOUBLE,                -- NULL: no upper bound
        unit                VARCHAR,
        designed            DOUBLE,                -- the value the design judged (geometry for gap and a)
        predicted           DOUBLE,                -- the predictor's value for the final crystal
        met                 BOOLEAN NOT NULL,      -- designed value within the target
        oracle              DOUBLE,                -- the oracle's value of the relaxed crystal (NULL: not relaxed)
        oracle_met          BOOLEAN,
        PRIMARY KEY (candidate_id, label)
    );
    """,
    # 6: streamed runs (issue 17): stored chunk by chunk, resumable
    """
    ALTER TABLE runs ADD COLUMN chunk_size INTEGER;                -- crystals per stored chunk (NULL: stored at once)
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
