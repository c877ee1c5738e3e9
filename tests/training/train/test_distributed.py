"""Data-parallel `vdwgen train` under torchrun (2 gloo processes on the CPU) against one process.

The runs train the tiny model on 7 perovskites, every third a 2x1x1 supercell (10 atoms, the
others 5), in global batches of 4: a full batch splits 2 + 2 crystals with unequal atom counts,
the short last batch 1 + 2 crystals, so both the per-atom and the per-crystal weighting of the
ranks' loss terms are needed for the 2-process gradient to be the 1-process one.

Tolerance: the two runs add the same numbers in a different order, so gradients agree to about
1e-7 relative. Adam divides each gradient entry by its running size (plus eps 1e-8), which turns
float noise on an entry that is zero in exact arithmetic into a step of up to lr * noise / eps:
after 4 steps at lr 1e-3 the largest parameter difference measured 2.6e-7 on this data (2.7e-6 on
Janus bilayers), the difference of all parameters 3e-9 of their norm. The test asks for at most
1e-5 (1 % of one learning-rate step) per entry and 1e-7 of the norm; leaving out the per-atom
weighting gives 2.5e-4 and 1.3e-5, and drawing the noise per rank instead of per crystal far more.
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from pymatgen.core import Structure

from training.train.distributed import SINGLE, Ranks, batch_share, check_batch_size, process_group
from training.train.runfiles import TrainingError
from vdwgen.cli import main

ROOT = Path(__file__).resolve().parents[3]
EPOCHS = 2
SETTINGS = ("--property", "heat_ref", *[x for item in (
    "train.batch_size=4", "train.limit_train=7", "train.lr_schedule=constant", "train.checkpoint_minutes=0",
    "gan.epochs=1") for x in ("--set", item)])
ENTRY_TOLERANCE = 1e-5
NORM_TOLERANCE = 1e-7


def torchrun(argv: list[str], processes: int = 2) -> subprocess.CompletedProcess[str]:
    """``python -m torch.distributed.run --nproc_per_node N -m vdwgen ARGV`` on the CPU (gloo), on a free port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                           "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", "vdwgen", *argv],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def assert_same_weights(a: Path, b: Path) -> None:
    """The stage-1 parameters of two runs agree within the module's tolerance."""
    wa = torch.load(a / "checkpoint.pt", weights_only=False)
    wb = torch.load(b / "checkpoint.pt", weights_only=False)
    assert (wa["epoch"], wa["batch"], wa["step"]) == (wb["epoch"], wb["batch"], wb["step"]) == (EPOCHS, 0, 4)
    keys = [k for k, v in wa["model"].items() if v.is_floating_point()]
    worst = max(float((wa["model"][k] - wb["model"][k]).abs().max()) for k in keys)
    norm = sum(float((wa["model"][k] - wb["model"][k]).square().sum()) for k in keys) ** 0.5
    scale = sum(float(wa["model"][k].square().sum()) for k in keys) ** 0.5
    assert worst <= ENTRY_TOLERANCE and norm <= NORM_TOLERANCE * scale, (worst, norm / scale)


def metric_rows(run: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((run / "metrics.csv").open()))


@pytest.fixture(scope="module")
def mixed_csv(perovskite_csv: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 perovskites, every third one as a 10-atom 2x1x1 supercell."""
    def supercell(row: dict) -> dict:
        if int(row["material_id"][1:]) % 3:
            return row
        structure = Structure.from_str(row["cif"], fmt="cif")
        structure.make_supercell([2, 1, 1])
        return {**row, "cif": structure.to(fmt="cif")}

    return perovskite_csv(tmp_path_factory.mktemp("mixed") / "mixed.csv", 24, 0, supercell)


@pytest.fixture(scope="module")
def runs(mixed_csv: Path, tiny_train_argv: Callable[..., list[str]],
         tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same tiny `--data` run trained in one process (``single``) and in two (``ddp``)."""
    root = tmp_path_factory.mktemp("ddp_runs")
    assert main(tiny_train_argv(root / "single", EPOCHS, "--data", str(mixed_csv), *SETTINGS)) == 0
    done = torchrun(tiny_train_argv(root / "ddp", EPOCHS, "--data", str(mixed_csv), *SETTINGS))
    assert done.returncode == 0, done.stderr[-3000:]
    return {"single": root / "single", "ddp": root / "ddp"}


def test_two_processes_train_like_one(runs: dict[str, Path]) -> None:
    single, ddp = runs["single"], runs["ddp"]
    assert_same_weights(single, ddp)
    for a, b in zip(metric_rows(single), metric_rows(ddp), strict=True):
        assert a["epoch"] == b["epoch"] and a["skipped_batches"] == b["skipped_batches"] == "0"
        for key in ("train_loss", "train_coord", "train_type", "train_natoms", "val_loss"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-5), key
    assert torch.load(ddp / "gan.pt", weights_only=False)["epoch"] == 1


def test_only_rank_0_writes(runs: dict[str, Path]) -> None:
    single, ddp = runs["single"], runs["ddp"]
    listing = sorted(str(p.relative_to(single)) for p in single.rglob("*"))
    assert sorted(str(p.relative_to(ddp)) for p in ddp.rglob("*")) == listing
    assert "data.parquet" in listing and "model.pt" in listing
    for name in ("config.yaml", "data.parquet"):  # rank 0 wrote the table once; rank 1 read it
        assert (single / name).read_bytes() == (ddp / name).read_bytes(), name


def test_resume_under_ddp_continues_the_interrupted_run(
    runs: dict[str, Path], mixed_csv: Path, tiny_train_argv: Callable[..., list[str]], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Cut a 1-process run off after the first batch of epoch 2 (checkpointed after every batch), then
    resume it in 2 processes: the last, short batch (1 + 2 crystals), validation and stage 2 run under DDP."""
    import training.train.stage1 as stage1

    out = tmp_path / "split"
    real = stage1.learning_rate

    def interrupting(cfg, step, total):
        if step == 3:
            raise KeyboardInterrupt
        return real(cfg, step, total)

    monkeypatch.setattr(stage1, "learning_rate", interrupting)
    assert main(tiny_train_argv(out, EPOCHS, "--data", str(mixed_csv), *SETTINGS)) == 130
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert (state["epoch"], state["batch"], state["step"]) == (1, 1, 3)
    done = torchrun(tiny_train_argv(out, EPOCHS, "--data", str(mixed_csv), "--resume", *SETTINGS))
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_weights(runs["single"], out)
    assert_same_weights(runs["ddp"], out)
    rows = metric_rows(out)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[1]["train_loss"]) == pytest.approx(float(metric_rows(runs["single"])[1]["train_loss"]),
                                                         rel=1e-5)


def test_batch_shares_cover_the_global_batch_once() -> None:
    atoms = [5, 10, 5, 10, 5]
    shares = [batch_share(atoms, Ranks(rank, 2, waits=object())) for rank in (0, 1)]
    assert [(s.start, s.stop) for s in shares] == [(0, 2), (2, 5)]
    assert [s.rows.first_atom for s in shares] == [0, 15]  # type: ignore[union-attr]
    assert sum(s.crystal_weight for s in shares) / 2 == 1.0
    assert [s.atom_weight for s in shares] == [2 * 15 / 35, 2 * 20 / 35]
    alone = [batch_share([8], Ranks(rank, 2, waits=object())) for rank in (0, 1)]
    assert alone[0].crystal_weight == alone[0].atom_weight == 0.0  # a stand-in that adds nothing
    assert (alone[1].start, alone[1].stop, alone[1].crystal_weight) == (0, 1, 2.0)
    assert batch_share(atoms, SINGLE) == type(shares[0])(0, 5)  # one process: the whole batch, no rows


def test_a_batch_that_does_not_split_is_refused(tiny_train_argv: Callable[..., list[str]], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(TrainingError, match="train.batch_size=6 does not split over 4 processes"):
        check_batch_size(6, 4)
    monkeypatch.setenv("WORLD_SIZE", "2")  # refused before any process group is joined
    assert main(tiny_train_argv(tmp_path / "run", 1)) == 2  # the tiny batch is 3
    err = capsys.readouterr().err.strip()
    assert err == "vdwgen: train.batch_size=3 does not split over 2 processes: choose a multiple of 2"
    assert not (tmp_path / "run").exists()


def test_a_plain_run_is_one_process_on_the_gpu_when_torch_sees_one_else_on_the_cpu(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with process_group() as ranks:
        assert ranks == SINGLE and ranks.device == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with process_group() as ranks:
        assert ranks.device == torch.device("cuda", 0)
        assert (ranks.rank, ranks.world_size, ranks.joined, ranks.main) == (0, 1, False, True)
