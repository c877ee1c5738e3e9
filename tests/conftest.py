"""Shared fixtures: tiny training runs, a hand-built bilayer, a dataset bilayer moved off its minimum.

Tests get these as fixtures (never by importing another test file). The tiny models are trained
once per session and shared by the export, evaluation and sampling tests.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

ROOT = Path(__file__).resolve().parents[1]
DATASET_TABLE = ROOT / "data" / "janus_iii_vi" / "bilayers.parquet"  # the committed dataset (the default)
PERTURBED_ROW = "jb-06002"  # a relaxed AlGa2InTe4 bilayer

TINY_OVERRIDES: tuple[str, ...] = (
    "train.limit_train=6", "train.limit_val=3", "train.batch_size=3", "model.latent_dim=16",
    "model.cond_dim=8", "model.heads.hidden_dim=16", "model.condition_dropout=0.3",
    "gan.epochs=2", "gan.batch_size=3", "gan.noise_dim=8",
    # the shipped config's speed settings and validation monitor are for hours-long runs
    "train.compile=false", "train.precision=float32", "train.recon_every=0",
    *[f"model.{part}.{k}={v}" for part in ("encoder", "decoder") for k, v in (
        ("num_layers", 1), ("sphere_channels", 8), ("lmax", 1), ("mmax", 1), ("num_heads", 2),
        ("attn_alpha_channels", 4), ("attn_value_channels", 4), ("attn_hidden_channels", 8),
        ("ffn_hidden_channels", 8), ("edge_channels", 8), ("num_distance_basis", 8),
        ("grid_resolution", 6), ("cutoff", 5.0), ("max_neighbors", 12))],
)
"""Config overrides of a ConditionCDVAE+ small enough to train for one epoch in seconds."""


def _tiny_train_argv(out: Path, epochs: int, *extra: str) -> list[str]:
    sets = [x for item in [*TINY_OVERRIDES, f"train.epochs={epochs}"] for x in ("--set", item)]
    return ["train", "--out", str(out), *sets, *extra]


def _bilayer(shift: float = 0.0) -> Structure:
    a, c = 3.6, 2 * 4.6 + 3.2 + 20.0
    z = np.array([0.0, 1.15, 3.60, 4.75, 7.95, 9.10, 11.55, 12.70]) + 5.0 + shift
    site = {"A": (1 / 3, 2 / 3), "B": (2 / 3, 1 / 3)}  # Ga-Ga bonds are vertical, S sits off them
    frac = [site[p] + (zk / c,) for p, zk in zip("ABBAABBA", z, strict=True)]
    return Structure(Lattice.hexagonal(a, c), ["S", "Ga", "Ga", "S", "S", "Ga", "Ga", "S"], frac)


def _perturbed_dataset_bilayer() -> tuple[Structure, float]:
    from scoring.novelty import table_structure

    row = pd.read_parquet(DATASET_TABLE).set_index("id").loc[PERTURBED_ROW]
    s = table_structure(row["lattice"], row["species"], row["frac_coords"])
    moved = s.cart_coords + np.random.default_rng(7).normal(scale=0.04, size=(len(s), 3))
    return Structure(s.lattice, s.species, moved, coords_are_cartesian=True), float(row["formation_energy_per_atom"])


def _strained_displaced(structure: Structure, seed: int) -> Structure:
    """``structure`` with its in-plane lattice stretched by 2 % (atoms follow), then every atom moved 0.1 Å in a
    random direction (seeded): a crystal a little off its minimum, as generated crystals arrive."""
    s = Structure(Lattice(structure.lattice.matrix @ np.diag([1.02, 1.02, 1.0])), structure.species,
                  structure.frac_coords)
    directions = np.random.default_rng(seed).normal(size=(len(s), 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return Structure(s.lattice, s.species, s.cart_coords + 0.1 * directions, coords_are_cartesian=True)


def _perovskite(a_site: str, b_site: str, a: float) -> Structure:
    """Cubic ABO3 in its 5-atom cell."""
    return Structure(Lattice.cubic(a), [a_site, b_site, "O", "O", "O"],
                     [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])


def _write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["material_id", "cif", "heat_ref", "band_gap"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def _perovskite_rows(n: int = 20, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    combos = itertools.cycle(itertools.product(("Sr", "Ba", "Ca"), ("Ti", "Zr")))
    rows = []
    for k in range(n):
        a_site, b_site = next(combos)
        a = float(rng.uniform(3.9, 4.2))
        rows.append({"material_id": f"p{k}", "cif": _perovskite(a_site, b_site, a).to(fmt="cif"),
                     "heat_ref": round(-a + 3.0, 4), "band_gap": "" if k == 3 else round(a - 2.0, 3)})
    return rows


def _perovskite_csv(path: Path, n: int = 20, seed: int = 0,
                    edit: Callable[[dict], dict] | None = None) -> Path:
    rows = _perovskite_rows(n, seed)
    return _write_csv(Path(path), [edit(r) for r in rows] if edit is not None else rows)


@pytest.fixture(scope="session")
def perovskite_csv() -> Callable[..., Path]:
    """``(path, n=20, seed=0, edit=None) -> path``: a CDVAE-layout CSV of ``n`` cubic ABO3 perovskites (A in Sr,
    Ba, Ca; B in Ti, Zr; a from 3.9 to 4.2 Å, seeded), ids ``p0``..., a ``heat_ref`` of ``3 - a`` and a ``band_gap``
    of ``a - 2`` that is empty in row ``p3``; ``edit`` changes each row (a dict) before it is written."""
    return _perovskite_csv


@pytest.fixture(scope="session")
def tiny_overrides() -> tuple[str, ...]:
    """:data:`TINY_OVERRIDES`."""
    return TINY_OVERRIDES


@pytest.fixture(scope="session")
def tiny_train_argv() -> Callable[..., list[str]]:
    """``(out, epochs, *extra) -> argv`` of ``vdwgen train`` on the tiny model."""
    return _tiny_train_argv


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One-epoch tiny training runs, trained once per session: ``model`` (both conditions) and
    ``baseline`` (unconditional CDVAE). Treat the folders as read-only."""
    from vdwgen.cli import main

    root = tmp_path_factory.mktemp("tiny_runs")
    assert main(_tiny_train_argv(root / "model", 1)) == 0
    assert main(_tiny_train_argv(root / "baseline", 1, "--set", "model.condition=none",
                                 "--set", "model.condition_dropout=0")) == 0
    return {"model": root / "model", "baseline": root / "baseline"}


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory: pytest.TempPathFactory, tiny_runs: dict[str, Path]) -> dict[str, Path]:
    """The tiny runs as shipped (float16 weights, ``training.train.ship``) and exported (2 Langevin steps per
    level): ``model`` and ``baseline`` artifact folders, ``model_weights``/``weights`` and ``baseline_weights``."""
    from export.build import export_artifact
    from training.train.ship import ship

    root = tmp_path_factory.mktemp("tiny_artifacts")
    out = {}
    for name in ("model", "baseline"):
        weights = ship(tiny_runs[name], root / "models" / name)
        export_artifact(weights, root / "artifacts" / name, steps_per_level=2)
        out[name], out[f"{name}_weights"] = root / "artifacts" / name, weights
    out["weights"] = out["model_weights"]
    return out


@pytest.fixture(scope="session")
def perovskite_artifact(tmp_path_factory: pytest.TempPathFactory, perovskite_csv: Callable[..., Path],
                        tiny_overrides: tuple[str, ...]) -> Path:
    """A tiny model trained for one epoch through `vdwgen train --data` on 30 perovskites (property heat_ref, eV/atom),
    shipped and exported with 1 Langevin step per level: the artifact folder (named ``perov``)."""
    from vdwgen.cli import main

    root = tmp_path_factory.mktemp("perov")
    csv = perovskite_csv(root / "perov.csv", 30)
    sets = [x for item in [*tiny_overrides, "train.epochs=1"] if not item.startswith("train.limit")
            for x in ("--set", item)]
    assert main(["train", "--data", str(csv), "--property", "heat_ref", "--unit", "eV/atom",
                 "--out", str(root / "run"), *sets]) == 0
    assert main(["ship", str(root / "run"), str(root / "models" / "perov")]) == 0
    assert main(["export", str(root / "models" / "perov" / "model.pt"), "--out", str(root / "artifacts" / "perov"),
                 "--steps-per-level", "1"]) == 0
    return root / "artifacts" / "perov"


@pytest.fixture(scope="session")
def bilayer() -> Callable[[float], Structure]:
    """``shift -> Structure``: a GaS-like bilayer, two S-Ga-Ga-S layers 3.2 Å apart along z, 20 Å vacuum,
    everything moved up by ``shift`` Å."""
    return _bilayer


@pytest.fixture(scope="session")
def strained_displaced() -> Callable[[Structure, int], Structure]:
    """``(structure, seed) -> Structure``: in-plane lattice +2 %, every atom moved 0.1 Å (seeded)."""
    return _strained_displaced


@pytest.fixture(scope="session")
def perturbed_dataset_bilayer() -> Callable[[], tuple[Structure, float]]:
    """``() -> (structure, label)``: dataset bilayer ``jb-06002`` with its atoms moved 0.04 Å (seeded),
    and its formation-energy label (eV/atom)."""
    return _perturbed_dataset_bilayer


TINY_PREDICTOR_BACKBONE = {"num_layers": 1, "sphere_channels": 8, "lmax": 1, "mmax": 1, "num_heads": 2,
                           "attn_alpha_channels": 4, "attn_value_channels": 4, "attn_hidden_channels": 8,
                           "ffn_hidden_channels": 8, "edge_channels": 8, "num_distance_basis": 8,
                           "grid_resolution": 4}


def _tiny_predictor():  # noqa: ANN202
    """An untrained tiny predictor of every Janus label, its mean and spread fitted on the training part."""
    import torch

    from training.model.equiformer import EquiformerConfig
    from training.model.predictor import PredictorConfig
    from training.train.predictor import JANUS_LABELS, PredictorTraining, build_predictor, janus_parts

    settings = PredictorTraining(config=PredictorConfig(EquiformerConfig(**TINY_PREDICTOR_BACKBONE), hidden_dim=8))
    torch.manual_seed(0)
    return build_predictor(settings, janus_parts(tuple(JANUS_LABELS))["train"], tuple(JANUS_LABELS))


@pytest.fixture(scope="session")
def tiny_predictor():  # noqa: ANN201
    """``() -> PropertyPredictor``: a fresh untrained tiny predictor of the Janus labels (float32, eval mode)."""
    return lambda: _tiny_predictor().eval()


@pytest.fixture(scope="session")
def tiny_predictor_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny predictor saved (``predictor.pt`` weights) and exported: the artifact folder (read-only)."""
    from export.predictor import export_predictor
    from training.train.predictor import JANUS_LABELS, save_predictor

    root = tmp_path_factory.mktemp("tiny_predictor")
    weights = save_predictor(_tiny_predictor(), JANUS_LABELS, root / "weights" / "predictor.pt")
    export_predictor(weights, root / "artifacts" / "predictor")
    return root / "artifacts" / "predictor"


def _distinct_stackings(formula: str, k: int) -> list[Structure]:
    """``k`` bilayers of ``formula`` that the paper's tolerances tell apart (the first such rows of the table)."""
    from scoring.novelty import matcher, table_structure

    table = pd.read_parquet(ROOT / "data" / "janus_iii_vi" / "bilayers.parquet")
    m = matcher()
    chosen: list[Structure] = []
    for r in table[table["reduced_formula"] == formula].itertuples():
        s = table_structure(r.lattice, r.species, r.frac_coords)
        if not any(m.fit(s, other) for other in chosen):
            chosen.append(s)
        if len(chosen) == k:
            return chosen
    raise AssertionError(f"fewer than {k} distinguishable {formula} bilayers")


@pytest.fixture(scope="session")
def repeated_stackings():  # noqa: ANN201
    """Three chunks of a run's generated crystals (``serving.engine.GeneratedCrystal``, indices 0..4, chunks of 2):
    distinct Al2InGaTeS3 stackings a, b, c and jiggled copies, as ``[[a, b], [a', c], [b']]``: a' is a duplicate of
    crystal 0 one chunk later, b' of crystal 1 two chunks later."""
    from serving.engine import GeneratedCrystal

    def jiggled(s: Structure, seed: int) -> Structure:
        moved = s.cart_coords + np.random.default_rng(seed).uniform(-0.02, 0.02, (len(s), 3))
        return Structure(s.lattice, s.species, moved, coords_are_cartesian=True)

    a, b, c = _distinct_stackings("Al2InGaTeS3", 3)
    made = [a, b, jiggled(a, 1), c, jiggled(b, 2)]
    crystals = [GeneratedCrystal(i, s, -0.8) for i, s in enumerate(made)]
    return [crystals[0:2], crystals[2:4], crystals[4:5]]
