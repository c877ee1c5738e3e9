"""The `vdwgen` command line: thin subcommands, each calling one library function.

Heavy packages are imported inside the subcommand that needs them, so serving
commands never import ``training``.  Errors a user can fix exit with status 2 and a
one-line reason; interrupted long operations exit with status 130.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from core.compositions import COMPOSITION_RULES
from core.errors import VdwgenError
from core.manifest import DEFAULT_NOISE_SCALE, DEFAULT_SITE_TYPES, SITE_TYPES


class UsageError(VdwgenError):
    """A bad command line; printed as one line."""


DB_HELP = "DuckDB file (default: VDWGEN_DB or var/candidates.duckdb)"


def _at_least(value: int, minimum: int, flag: str) -> int:
    """``value`` when it is at least ``minimum``; otherwise a one-line :class:`UsageError`."""
    if value < minimum:
        raise UsageError(f"{flag} must be at least {minimum} (got {value})")
    return value


def _output_path(path: Path, flag: str, *, folder: bool) -> Path:
    """``path`` when something can be written there (a folder, or a file when ``folder`` is False).

    Nothing is created: the check only looks at what exists, so a bad ``--out`` is refused in one
    line before any work starts.
    """
    if path.exists() and path.is_dir() != folder:
        raise UsageError(f"{flag} {path} is {'a file' if folder else 'a folder'}; "
                         f"give {'a folder' if folder else 'a file name'}")
    existing = path if path.exists() else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        if existing == path:  # an existing file to replace: its folder must be writable
            existing = path.parent
        else:
            raise UsageError(f"cannot write to {flag} {path}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write to {flag} {path}: {existing} is not writable")
    return path


CONDITIONS = {
    "both": ["model.condition=both"],
    "property": ["model.condition=formation_energy"],
    "formula": ["model.condition=formula"],
    "none": ["model.condition=none", "model.condition_dropout=0"],
}
"""``vdwgen train --condition``: the config overrides of each choice (``property`` is the model's
``formation_energy`` condition, on whatever column ``--property`` names)."""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vdwgen", description="Inverse design of van der Waals bilayers (ConditionCDVAE+)."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    ds = sub.add_parser("dataset", help="build, import or describe crystal datasets")
    ds_sub = ds.add_subparsers(dest="dataset_command", required=True)

    build = ds_sub.add_parser(
        "build", help="build and label the Janus III-VI bilayer dataset (CHGNet + D3)",
        description="Build the 19,926 Janus III-VI bilayers and label them. Progress is shown per "
        "step; an interrupted build resumes from <out>/_work when run again.",
    )
    build.add_argument("--out", type=Path, default=None,
                       help="output folder (default: data/janus_iii_vi in the checkout)")
    build.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    build.add_argument("--monolayers", default=None,
                       help="comma-separated monolayer names for a small build, e.g. "
                            "S-Ga-Ga-S,Se-In-In-Se (default: all 45)")
    build.add_argument("--chunk-size", type=int, default=60,
                       help="configurations per stored chunk (default 60)")
    build.add_argument("--fresh", action="store_true", help="discard stored work and start over")
    build.add_argument("--cluster", default=None, metavar="ADDRESS|local:N",
                       help="label on a Dask cluster: its scheduler (e.g. tcp://HOST:8786) or local:N worker "
                            "processes started here (default: a local process pool of --workers)")

    imp = ds_sub.add_parser(
        "import", help="import a CSV in the CDVAE layout (cif column + property columns)"
    )
    imp.add_argument("csv", type=Path, help="CSV file with a `cif` column")
    imp.add_argument("--property", action="append", required=True, dest="properties",
                     metavar="COLUMN", help="property column to keep (repeatable)")
    imp.add_argument("--max-atoms", type=int, default=20,
                     help="largest unit cell accepted (default 20)")
    imp.add_argument("--strict", action="store_true", help="stop at the first malformed row")
    imp.add_argument("--no-niggli", action="store_true",
                     help="skip the Niggli reduction (the lattice is still put in the standard orientation)")
    imp.add_argument("--out", type=Path, default=None,
                     help="write the imported dataset as Parquet here")

    info = ds_sub.add_parser("info", help="summarise a built dataset")
    info.add_argument("--path", type=Path, default=None,
                      help="dataset folder (default: data/janus_iii_vi in the checkout)")
    train = sub.add_parser(
        "train", help="train ConditionCDVAE+ (stage 1, then the stage-2 CWGAN-GP) from a YAML config",
        description="Train stage 1 (VAE + LMF + heads + score decoder), then stage 2 (CWGAN-GP on the "
        "frozen latents) on the training part of the Janus dataset. Checkpoints at least every 10 "
        "minutes; --resume continues where a run stopped. Writes <out>/model.pt at the end.",
    )
    train.add_argument("--config", default=None,
                       help="shipped config name (cpu-small; cpu-medium, the shipped model's; paper) or a YAML path "
                       "(default: cpu-small; with --resume, the run's own config.yaml)")
    train.add_argument("--out", type=Path, required=True, help="run folder (checkpoint, metrics, config)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    train.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                       help="override a config value, e.g. train.epochs=2 or model.encoder.num_layers=1")
    train.add_argument("--data", type=Path, default=None,
                       help="a CDVAE-layout CSV (split here 6:2:2, seeded), a folder with train.csv, val.csv and "
                            "test.csv, or a Parquet from `vdwgen dataset import` (default: the committed Janus data)")
    train.add_argument("--property", action="append", default=None, metavar="COLUMN", dest="properties",
                       help="the property column to condition on and predict (default: formation_energy_per_atom); "
                            "one column: a model conditions on one property")
    train.add_argument("--unit", default=None, help="the property's unit, shown with it (default: none for --data)")
    train.add_argument("--condition", choices=sorted(CONDITIONS), default=None,
                       help="what the model is conditioned on (default: the config's, both)")

    tp = sub.add_parser(
        "train-predictor", help="train the multi-property predictor that `vdwgen design` (SMOACS) optimises through",
        description="Learn every label of the bilayer table at once (formation energy, interlayer energy, binding "
        "energy per area, interlayer gap, lattice constant) on the random split's training part; validation MAE per "
        "epoch, test MAE at the end (metrics.json). Checkpoints at least every 10 minutes; --resume continues.")
    tp.add_argument("--out", type=Path, required=True, help="run folder (checkpoint, metrics, predictor.pt)")
    tp.add_argument("--resume", action="store_true", help="continue the run in --out")
    tp.add_argument("--epochs", type=int, default=30, help="passes over the training part (default 30)")
    tp.add_argument("--limit-train", type=int, default=0, help="use only N training crystals (0 = all)")
    tp.add_argument("--seed", type=int, default=0)
    tp.add_argument("--data", type=Path, default=None,
                    help="a CDVAE-layout CSV, a folder with train/val/test CSVs or a Parquet (default: the bilayers)")
    tp.add_argument("--label", action="append", default=None, metavar="COLUMN[:UNIT]", dest="labels",
                    help="a label column to learn, with its unit after a colon (repeat; needed with --data), "
                         "e.g. heat_ref:eV/atom --label dir_gap:eV")

    ep = sub.add_parser("export-predictor", help="export predictor weights as an artifact folder for `vdwgen design`",
                        description="Write predictor.pt (TorchScript, gradients kept) and predictor.json (labels, "
                        "units, training span, test MAE); values and gradients are checked against the eager model.")
    ep.add_argument("weights", type=Path, help="predictor.pt of a `vdwgen train-predictor` run")
    ep.add_argument("--out", type=Path, required=True,
                    help="artifact folder, e.g. artifacts/predictor-janus (replaced)")
    ep.add_argument("--name", default=None, help="name in the manifest (default: the folder name)")

    des = sub.add_parser(
        "design", help="design crystals for several targets at once (SMOACS), relaxed and judged by the oracle",
        description="Optimise crystals directly (coordinates, in-plane lattice, element per site under "
        "oxidation-number masks) through the exported multi-property predictor, then score, store, relax them "
        "with CHGNet + D3 and judge every target again on the relaxed crystal.")
    des.add_argument("--target", action="append", default=[], dest="targets", metavar="LABEL<=V|LABEL>=V|LABEL=LO:HI",
                     help="a target, e.g. formation_energy_per_atom<=-0.8 or interlayer_gap=3.0:3.3 (repeat for more)")
    des.add_argument("--templates", choices=("dataset", "generated", "both"), default="dataset",
                     help="start from training bilayers, from crystals our generator makes, or half of each")
    des.add_argument("--n", type=int, default=256, help="candidates optimised together (default 256)")
    des.add_argument("--steps", type=int, default=200, help="optimisation steps (default 200)")
    des.add_argument("--minimise", default=None, metavar="LABEL", help="also push this label down")
    des.add_argument("--seed", type=int, default=0)
    des.add_argument("--predictor", type=Path, default=None,
                     help="predictor artifact folder (default: the shipped one)")
    des.add_argument("--artifacts", type=Path, default=None,
                     help="generator artifact for --templates generated (default: the shipped model)")
    des.add_argument("--db", type=Path, default=None, help=DB_HELP + "; every design run is stored")
    des.add_argument("--out", type=Path, default=None, help="folder for POSCAR/CIF files")
    des.add_argument("--no-relax", action="store_true",
                     help="skip the oracle's relaxation (targets judged as designed only)")
    des.add_argument("--relax-workers", type=int, default=0, help="worker processes for the relaxation (0: this one)")

    evd = sub.add_parser(
        "evaluate-design", help="compare SMOACS, the generator, random search and the dataset on multi-property tasks",
        description="Run every task with every method (services/design_evaluation.py), relax every candidate with the "
        "oracle and write results.json and report.md; finished runs are kept in --db and not run again.")
    evd.add_argument("--n", type=int, default=256, help="candidates per task and method (default 256)")
    evd.add_argument("--steps", type=int, default=200, help="optimisation steps (default 200)")
    evd.add_argument("--seed", type=int, default=0)
    evd.add_argument("--only", action="append", default=None, metavar="TASK|METHOD",
                     help="run only the named tasks (all if none is named) with the named methods (all if none is "
                          "named); repeat; the report covers every finished run")
    evd.add_argument("--out", type=Path, default=Path("reports/design"), help="report folder (default reports/design)")
    evd.add_argument("--db", type=Path, default=Path("var/design-evaluation.duckdb"),
                     help="DuckDB file that keeps every run (default var/design-evaluation.duckdb)")
    evd.add_argument("--predictor", type=Path, default=None, help="predictor artifact (default: the shipped one)")
    evd.add_argument("--artifacts", type=Path, default=None,
                     help="generator artifact for the cdvae and generated-template runs (default: the shipped model)")

    exp = sub.add_parser(
        "export", help="export a trained model (weights file) as a served artifact folder",
        description="Write condition/generator/fusion_heads ONNX graphs, the TorchScript Langevin decoder "
        "and manifest.json; every part is checked against the eager model first.",
    )
    exp.add_argument("weights", type=Path, help="model.pt of a run or of models/NAME/")
    exp.add_argument("--out", type=Path, required=True, help="artifact folder, e.g. artifacts/NAME (replaced)")
    exp.add_argument("--name", default=None, help="model name in the manifest (default: the folder name)")
    exp.add_argument("--steps-per-level", type=int, default=None, help="default Langevin steps per level")
    exp.add_argument("--site-types", choices=SITE_TYPES, default=DEFAULT_SITE_TYPES,
                     help="how the decoder types the sites: 'counts' keeps each crystal's element counts (the "
                     "formula, or the composition head's) and lets the decoder's logits place them (default); "
                     "'argmax' is the reference (free arg-max; a formula's types stay where they were drawn)")
    exp.add_argument("--noise-scale", type=float, default=DEFAULT_NOISE_SCALE,
                     help=f"Langevin noise factor in [0, 1] (default {DEFAULT_NOISE_SCALE}; 1 is the reference "
                     "sampler, whose noise leaves an atom in the vacuum in about 1 crystal in 10)")
    exp.add_argument("--compositions", choices=COMPOSITION_RULES, default=None,
                     help="element counts of a crystal of free composition (a target, unconditional, a "
                     "reconstruction): 'known' takes the training composition of that atom count nearest to the "
                     "composition head's (the default where the training part holds every composition of its "
                     "dataset, as the Janus bilayers' random split does); 'head' rounds the head's (the "
                     "reference, and the default where the dataset has compositions its training part lacks)")

    gen = sub.add_parser(
        "generate", help="generate candidate crystals from a shipped or exported model",
        description="Generate crystals for a target of the model's property (the formation energy per atom for "
        "the shipped Janus model), a formula, or unconditionally; writes POSCAR and CIF files and prints a "
        "summary with validity.",
    )
    what = gen.add_mutually_exclusive_group()
    what.add_argument("--target", "--formation-energy", dest="target", type=float, metavar="VALUE",
                      help="a target of the model's property, in its unit (the shipped model: formation energy, "
                           "eV/atom; --formation-energy is the same option)")
    what.add_argument("--formula", help="formula, e.g. GaInSSe (scaled to the model's cell)")
    what.add_argument("--unconditional", action="store_true", help="sample the CDVAE baseline's prior")
    gen.add_argument("--n", type=int, default=10, help="number of crystals (default 10)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--steps-per-level", type=int, default=None, help="Langevin steps per noise level")
    gen.add_argument("--screening-ratio", type=int, default=None,
                     help="latents drawn per crystal kept (default 100)")
    gen.add_argument("--artifacts", type=Path, default=None,
                     help="artifact folder (default: the shipped model that serves the request)")
    gen.add_argument("--out", type=Path, default=None, help="folder for POSCAR/CIF files")
    gen.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    gen.add_argument("--db", type=Path, default=None,
                     help="store the run and its scored candidates in this DuckDB file")
    gen.add_argument("--cluster", default=None, metavar="ADDRESS|local:N",
                     help="generate and score in chunks on a Dask cluster: its scheduler (e.g. tcp://HOST:8786) or "
                          "local:N worker processes started here; allows up to 100,000 crystals")
    gen.add_argument("--chunk-size", type=int, default=None,
                     help="crystals per chunk with --cluster or in a streamed run (default: the decode batch, 128)")
    gen.add_argument("--relax", action="store_true",
                     help="relax every crystal with the oracle (CHGNet + D3: positions and the in-plane cell, "
                          "fmax 0.05 eV/Å, at most 500 steps) and store both structures (in --db, else the default "
                          "store); --out gets the relaxed POSCARs too")
    gen.add_argument("--relax-workers", type=int, default=0,
                     help="worker processes for --relax (default 0: relax in this process)")
    gen.add_argument("--resume", type=int, default=None, metavar="RUN",
                     help="go on with a streamed run (more crystals than one request may hold, stored chunk by "
                          "chunk) that was interrupted: its request is read from --db (else the default store)")

    ev = sub.add_parser(
        "evaluate",
        help="measure a served model as the paper does (Tables 1-3, Figs. 3-4), checked by the oracle",
        description="Reconstruction, validity/COV/EMD, formation-energy and formula requests checked with "
        "CHGNet + D3, relaxation of novel crystals, latent t-SNE; writes report.md, metrics.json and PNGs. "
        "Finished stages and chunks are kept: run the same command again to resume.",
    )
    ev.add_argument("artifacts", type=Path, help="artifact folder of the model (e.g. artifacts/cdvae-plus-janus)")
    ev.add_argument("--data", type=Path, default=None,
                    help="the model's dataset: a Janus dataset folder, a CDVAE-layout CSV, a folder with train.csv, "
                         "val.csv and test.csv, or an imported Parquet, split as `vdwgen train --data` split it "
                         "(default: the table the model carries, else data/janus_iii_vi)")
    ev.add_argument("--split", default="test", help="part of the splits to evaluate on: test (default) or val")
    ev.add_argument("--out", type=Path, required=True, help="report folder, e.g. reports/cdvae-plus-janus")
    size = ev.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="tiny counts: checks every stage runs (minutes)")
    size.add_argument("--full", action="store_true", help="paper-comparable counts (9,600 samples; hours)")
    ev.add_argument("--baseline", type=Path, default=None,
                    help="artifact folder of an unconditional CDVAE baseline trained on the same data (default: "
                         "cdvae-baseline-janus beside the model, when it was trained on the model's data)")
    ev.add_argument("--checkpoint", type=Path, default=None,
                    help="model weights for reconstruction, the property head and latents (default: "
                         "models/NAME/model.pt beside the artifacts folder or in the checkout)")
    ev.add_argument("--baseline-checkpoint", type=Path, default=None)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--steps-per-level", type=int, default=None, help="default: the manifest's")
    ev.add_argument("--workers", type=int, default=2, help="processes for structure fingerprints (default 2)")
    ev.add_argument("--stage", action="append", default=None, dest="stages",
                    help="run only this stage (repeatable): reconstruction, property, samples, generation, "
                         "energy_targets, formulas, relaxation, latent")

    card = sub.add_parser(
        "model-card", help="measure trained weights on the test split (the model card's figures) as JSON",
        description="Parameter counts, property-head MAE, reconstruction, validity, formation-energy targets "
        "and formula hits of a conditional model next to its unconditional CDVAE baseline, checked with the "
        "model's own encoder + property head. Finished stages are kept in --out: run again to resume.",
    )
    card.add_argument("--model", type=Path, required=True, help="weights file or run folder (conditional model)")
    card.add_argument("--baseline", type=Path, required=True, help="the unconditional CDVAE baseline")
    card.add_argument("--out", type=Path, required=True, help="JSON file (kept and extended on reruns)")
    card.add_argument("--steps-per-level", type=int, default=5, help="Langevin steps per noise level (default 5)")
    card.add_argument("--recon-limit", type=int, default=0, help="test crystals to reconstruct (0 = all)")
    card.add_argument("--samples", type=int, default=1000, help="crystals per model for validity (default 1000)")
    card.add_argument("--per-target", type=int, default=100,
                      help="crystals per energy target and per formula (default 100)")
    card.add_argument("--seed", type=int, default=0)

    ship = sub.add_parser(
        "ship", help="ship a finished training run under models/ (float16 weights + training record)",
        description="Write RUN's weights (float16, at most 10 MB), config, training logs and training.json "
        "into DEST, e.g. models/NAME.",
    )
    ship.add_argument("run", type=Path, metavar="RUN", help="finished run folder (holds model.pt)")
    ship.add_argument("dest", type=Path, metavar="DEST", help="destination folder, e.g. models/NAME")

    query = sub.add_parser("query", help="run one read-only SELECT over the candidate store",
                           description="Tables: candidates, runs. One SELECT statement; no file access; "
                           "at most --max-rows rows; stopped after 10 s.")
    query.add_argument("sql", help='e.g. "SELECT id, formula FROM candidates WHERE valid LIMIT 10"')
    query.add_argument("--db", type=Path, default=None, help=DB_HELP)
    query.add_argument("--max-rows", type=int, default=1000)

    poscar = sub.add_parser("export-poscar", help="write POSCARs of the candidates a query selects",
                            description="The query's id column (or first column) picks candidates; --out is "
                            "a folder or a .zip (with summary.csv).")
    poscar.add_argument("--query", required=True, help='e.g. "SELECT id FROM candidates WHERE valid"')
    poscar.add_argument("--out", type=Path, required=True, help="folder, or FILE.zip")
    poscar.add_argument("--db", type=Path, default=None, help=DB_HELP)

    verify = sub.add_parser("verify", help="check stored candidates with the physics oracle (CHGNet + D3)",
                            description="Relax each candidate (all positions and the in-plane cell) with CHGNet + "
                            "D3, the physics that labelled the dataset, and store its formation energy, energy drop, "
                            "interlayer gap, RMSD and relaxed POSCAR in the candidate's oracle_* columns.")
    verify.add_argument("ids", type=int, nargs="*", metavar="ID", help="candidate id(s)")
    verify.add_argument("--run", type=int, default=None, metavar="RUN",
                        help="relax every candidate of run RUN the oracle has not relaxed yet (finishes a run whose "
                             "relaxation was cut short) and record how it ended")
    verify.add_argument("--db", type=Path, default=None, help=DB_HELP)
    verify.add_argument("--fmax", type=float, default=0.05, help="force threshold in eV/Å (default 0.05)")
    verify.add_argument("--max-steps", type=int, default=500, help="FIRE steps at most (default 500)")
    return parser


def _export(args: argparse.Namespace) -> int:
    if not args.weights.exists():
        raise UsageError(f"no such weights file: {args.weights}")
    if args.steps_per_level is not None:
        _at_least(args.steps_per_level, 1, "--steps-per-level")
    if not 0.0 <= args.noise_scale <= 1.0:
        raise UsageError(f"--noise-scale must lie in [0, 1] (got {args.noise_scale})")
    _output_path(args.out, "--out", folder=True)
    from export.build import DEFAULT_STEPS_PER_LEVEL, export_artifact

    steps = args.steps_per_level or DEFAULT_STEPS_PER_LEVEL
    path = export_artifact(args.weights, args.out, name=args.name, steps_per_level=steps, site_types=args.site_types,
                           noise_scale=args.noise_scale, compositions=args.compositions)
    print(f"wrote {path}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from serving.request import GenerationRequest
    from vdwgen.generate_cli import resume_generate, run_generate

    if args.resume is not None:
        if args.target is not None or args.formula is not None or args.unconditional:
            raise UsageError("--resume reads the request from the stored run: give no --target, --formula or "
                             "--unconditional with it")
        if args.cluster is not None or args.relax:
            raise UsageError("--resume goes on with a streamed run here; --cluster and --relax do not apply")
        _at_least(args.resume, 1, "--resume")
        if args.out is not None:
            _output_path(args.out, "--out", folder=True)
        return resume_generate(args.resume, args.artifacts, args.out, args.db, args.device)
    if args.target is None and args.formula is None and not args.unconditional:
        raise UsageError("say what to generate: --target VALUE, --formula FORMULA or --unconditional "
                         "(or --resume RUN to go on with a stored run)")
    if args.target is not None:
        if not math.isfinite(args.target):
            raise UsageError(f"--target must be a finite number in the model's property unit (got {args.target})")
        mode = "formation_energy"  # the request mode of a property target (its historic name)
    else:
        mode = "formula" if args.formula is not None else "unconditional"
    if args.out is not None:
        _output_path(args.out, "--out", folder=True)
    if args.chunk_size is not None:
        _at_least(args.chunk_size, 1, "--chunk-size")
    if args.cluster is not None:
        from core.executor import parse_cluster

        parse_cluster(args.cluster)  # a malformed value is refused before the model loads
    if args.relax_workers != 0:
        if not args.relax:
            raise UsageError("--relax-workers applies to --relax runs only")
        _at_least(args.relax_workers, 0, "--relax-workers")
    request = GenerationRequest(mode, args.n, target=args.target, formula=args.formula, seed=args.seed,
                                steps_per_level=args.steps_per_level, screening_ratio=args.screening_ratio)
    return run_generate(request, args.artifacts, args.out, args.db, args.device, args.cluster, args.chunk_size,
                        args.relax, args.relax_workers)


def _train(args: argparse.Namespace) -> int:
    _output_path(args.out, "--out", folder=True)
    from training.train.config import load_config
    from training.train.run import run_training

    overrides = list(args.overrides)
    if args.properties is not None and len(args.properties) > 1:
        raise UsageError(f"--property takes one column (got {', '.join(args.properties)}): a model conditions on "
                         "and predicts one property; train one model per property")
    prop = args.properties[0] if args.properties else None
    if args.data is not None:
        if not args.data.exists():
            raise UsageError(f"no dataset at {args.data}: give a CSV, a folder with train.csv, val.csv and "
                             "test.csv, or a Parquet")
        overrides += [f"data.path={json.dumps(str(args.data))}", f"data.unit={json.dumps(args.unit or '')}"]
        if prop is None:
            raise UsageError("--data needs --property COLUMN: the column to condition on and predict")
    elif args.unit is not None:
        overrides.append(f"data.unit={json.dumps(args.unit)}")
    if prop is not None:
        overrides.append(f"data.property={json.dumps(prop)}")
    if args.condition is not None:
        overrides += CONDITIONS[args.condition]
    name = args.config
    if name is None:  # a resumed run continues with the configuration it started with
        saved = args.out / "config.yaml"
        name = str(saved) if args.resume and saved.exists() else "cpu-small"
    config = load_config(name, overrides)
    path = run_training(config, args.out, resume=args.resume)
    print(f"wrote {path}")
    return 0


def _export_predictor(args: argparse.Namespace) -> int:
    if not args.weights.is_file():
        raise UsageError(f"no such weights file: {args.weights}")
    _output_path(args.out, "--out", folder=True)
    from export.predictor import export_predictor

    print(f"wrote {export_predictor(args.weights, args.out, args.name)}")
    return 0


def _design(args: argparse.Namespace) -> int:
    from services.design import DesignRequest
    from vdwgen.design_cli import run_design_cli

    if args.out is not None:
        _output_path(args.out, "--out", folder=True)
    _at_least(args.relax_workers, 0, "--relax-workers")
    request = DesignRequest(tuple(args.targets), args.n, args.steps, args.templates, args.seed, args.minimise)
    return run_design_cli(request, args.predictor, args.artifacts, args.db, args.out, not args.no_relax,
                          args.relax_workers)


def _evaluate_design(args: argparse.Namespace) -> int:
    _at_least(args.n, 1, "--n")
    _at_least(args.steps, 1, "--steps")
    _output_path(args.out, "--out", folder=True)
    from services.design import MAX_COUNT as MAX_DESIGN_COUNT
    from services.design_evaluation import ABLATIONS, METHODS, NEEDS_GENERATOR, TASKS, evaluate_design, selected
    from serving.artifacts import find_artifact
    from serving.engine import Engine
    from serving.predictor import load_predictor_artifact
    from store.database import open_store
    from vdwgen.progress import stage_bar

    known = set(TASKS) | set(METHODS) | set(ABLATIONS)
    for name in args.only or []:
        if name not in known:
            raise UsageError(f"--only {name!r} is neither a task nor a method; choose from {', '.join(sorted(known))}")
    if args.n > MAX_DESIGN_COUNT:
        raise UsageError(f"--n must be between 1 and {MAX_DESIGN_COUNT} candidates (got {args.n})")
    predictor = load_predictor_artifact(args.predictor)
    engine = None
    if any(job.method in NEEDS_GENERATOR for job in selected(args.only)):  # only what the chosen runs need
        engine = Engine.load(args.artifacts or find_artifact("formation_energy"))
    bar, progress = stage_bar("evaluate-design", 1)
    try:
        report = evaluate_design(predictor, open_store(args.db), args.out, args.n, args.steps, args.seed, engine,
                                 args.only, progress)
    finally:
        bar.close()
    print(f"wrote {report}")
    return 0


def _train_predictor(args: argparse.Namespace) -> int:
    _output_path(args.out, "--out", folder=True)
    _at_least(args.epochs, 1, "--epochs")
    _at_least(args.limit_train, 0, "--limit-train")
    from training.train.predictor import PredictorTraining, train_predictor

    labels = None
    if args.data is not None:
        if not args.labels:
            raise UsageError("--data needs --label COLUMN[:UNIT] (repeat for each label to learn)")
        if not args.data.exists():
            raise UsageError(f"no dataset at {args.data}")
    if args.labels:
        labels = dict((item.split(":", 1) + [""])[:2] for item in args.labels)  # type: ignore[misc]
    settings = PredictorTraining(epochs=args.epochs, limit_train=args.limit_train, seed=args.seed)
    data = str(args.data) if args.data is not None else ""
    print(f"wrote {train_predictor(args.out, settings, resume=args.resume, labels=labels, data=data)}")
    return 0


def _dataset_build(args: argparse.Namespace) -> int:
    from core.paths import dataset_dir

    _at_least(args.workers, 1, "--workers")
    _at_least(args.chunk_size, 1, "--chunk-size")
    if args.cluster is not None:
        from core.executor import parse_cluster

        parse_cluster(args.cluster)  # a malformed value is refused before any work
    names = tuple(n.strip() for n in args.monolayers.split(",") if n.strip()) if args.monolayers else None
    out = _output_path(args.out or dataset_dir(), "--out", folder=True)
    from training.data.build import BuildOptions, build_dataset

    path = build_dataset(BuildOptions(out=out, workers=args.workers, monolayers=names,
                                      chunk_size=args.chunk_size, fresh=args.fresh, cluster=args.cluster))
    print(f"wrote {path}")
    return 0


def _dataset_import(args: argparse.Namespace) -> int:
    if not args.csv.exists():
        raise UsageError(f"no such file: {args.csv}")
    _at_least(args.max_atoms, 1, "--max-atoms")
    if args.out is not None:
        _output_path(args.out, "--out", folder=False)
    from training.data.cdvae_csv import import_cdvae_csv
    from training.data.crystal import write_parquet

    result = import_cdvae_csv(args.csv, args.properties, max_atoms=args.max_atoms,
                              strict=args.strict, niggli=not args.no_niggli)
    for problem in result.problems[:20]:
        print(f"row {problem.row} ({problem.id}): {problem.reason}", file=sys.stderr)
    if len(result.problems) > 20:
        print(f"... and {len(result.problems) - 20} more skipped rows", file=sys.stderr)
    print(result.summary())
    if args.out is not None:
        write_parquet(result.dataset, args.out)
        print(f"wrote {args.out}")
    return 0


def _dataset_info(args: argparse.Namespace) -> int:
    import pandas as pd

    from core.paths import dataset_dir

    folder = args.path or dataset_dir()
    table = Path(folder) / "bilayers.parquet"
    if not table.exists():
        raise UsageError(f"no dataset at {table}; build it with `vdwgen dataset build`")
    df = pd.read_parquet(table, columns=None)
    print(f"{table}: {len(df):,} configurations, {df['flip_class'].nunique():,} flip classes, "
          f"{df['relaxed'].sum():,} relaxed")
    for col in ("formation_energy_per_atom", "interlayer_energy_per_atom", "binding_energy_per_area",
                "interlayer_gap", "a_common"):
        if col in df:
            print(f"  {col:32s} min {df[col].min():9.4f}  median {df[col].median():9.4f}  "
                  f"max {df[col].max():9.4f}")
    for col in ("split_random", "split_pair"):
        if col in df:
            counts = df[col].value_counts()
            print(f"  {col}: " + ", ".join(f"{k} {counts.get(k, 0):,}" for k in ("train", "val", "test")))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    _at_least(args.workers, 1, "--workers")
    _at_least(args.seed, 0, "--seed")
    if args.steps_per_level is not None:
        _at_least(args.steps_per_level, 1, "--steps-per-level")
    for folder in (args.artifacts, args.baseline):
        if folder is not None and not folder.is_dir():
            raise UsageError(f"no such artifact folder: {folder}")
    _output_path(args.out, "--out", folder=True)
    from training.evaluation.evaluate import evaluate

    preset = "quick" if args.quick else "full" if args.full else "default"
    evaluate(args.artifacts, args.out, args.data, args.split, preset, args.baseline,
             args.checkpoint, args.baseline_checkpoint, args.seed, args.steps_per_level, args.workers,
             tuple(args.stages) if args.stages else None)
    print(f"report: {args.out / 'report.md'}")
    return 0


def _model_card(args: argparse.Namespace) -> int:
    _at_least(args.steps_per_level, 1, "--steps-per-level")
    _at_least(args.recon_limit, 0, "--recon-limit")
    _at_least(args.samples, 1, "--samples")
    _at_least(args.per_target, 1, "--per-target")
    _at_least(args.seed, 0, "--seed")
    for flag, path in (("--model", args.model), ("--baseline", args.baseline)):
        if not path.exists():
            raise UsageError(f"{flag}: no such weights file or run folder: {path}")
    _output_path(args.out, "--out", folder=False)
    from training.evaluation.model_card import write_model_card

    write_model_card(args.model, args.baseline, args.out, steps_per_level=args.steps_per_level,
                     recon_limit=args.recon_limit, samples=args.samples, per_target=args.per_target, seed=args.seed)
    print(f"wrote {args.out}")
    return 0


def _ship(args: argparse.Namespace) -> int:
    _output_path(args.dest, "DEST", folder=True)
    from training.train.ship import ship

    print(f"wrote {ship(args.run, args.dest)}")
    return 0


def _query(args: argparse.Namespace) -> int:
    from vdwgen.store_cli import run_query_command

    if args.max_rows < 1:
        raise UsageError(f"--max-rows must be at least 1 (got {args.max_rows})")
    return run_query_command(args.sql, args.db, args.max_rows)


def _export_poscar(args: argparse.Namespace) -> int:
    from vdwgen.store_cli import run_export_poscar

    return run_export_poscar(args.query, args.out, args.db)


def _verify(args: argparse.Namespace) -> int:
    from vdwgen.verify_cli import run_verify

    if bool(args.ids) == (args.run is not None):
        raise UsageError("give candidate ids or --run RUN (one of the two)")
    return run_verify(args.ids, args.db, args.fmax, args.max_steps, args.run)


_COMMANDS = {
    ("dataset", "build"): _dataset_build,
    ("dataset", "import"): _dataset_import,
    ("dataset", "info"): _dataset_info,
    ("train", None): _train,
    ("train-predictor", None): _train_predictor,
    ("export-predictor", None): _export_predictor,
    ("design", None): _design,
    ("evaluate-design", None): _evaluate_design,
    ("export", None): _export,
    ("generate", None): _generate,
    ("evaluate", None): _evaluate,
    ("model-card", None): _model_card,
    ("ship", None): _ship,
    ("query", None): _query,
    ("export-poscar", None): _export_poscar,
    ("verify", None): _verify,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vdwgen` console script; returns the exit status."""
    args = _build_parser().parse_args(argv)
    handler = _COMMANDS[(args.command, getattr(args, f"{args.command}_command", None))]
    try:
        return handler(args)
    except VdwgenError as exc:
        print(f"vdwgen: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vdwgen: interrupted; work finished so far is kept — run the same command again "
              "to resume", file=sys.stderr)
        return 130
    except ValueError as exc:  # our library's validation errors name the limit or options
        print(f"vdwgen: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file that cannot be read or written mid-way (disk full, permissions changed)
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"vdwgen: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
