"""Tune a PyTorch MLP on scikit-learn's 8x8 digits with everything practitioners tune.

One hpcore search space holds the learning rate, the LR schedule (none / step decay
with its step size and gamma / cosine annealing, via ``torch.optim.lr_scheduler``), the
optimizer and SGD's momentum, the batch size, dropout, weight decay (L2) and an L1
penalty, data-augmentation strength (random shifts, small rotations and pixel noise on
the training images; 0 = off), the number of hidden layers and nodes per layer, and the
activation.  Epochs are the resource of a Hyperband pruner (each epoch's validation
accuracy is reported), combined with early stopping by patience:
``hp.any_of(hp.Hyperband(1, E, eta=3), hp.PatiencePruner(4))``.

It prints a table of the best trials and saves one plot of each kind (convergence,
parallel coordinates, slices, intermediate values, parameter importance, and the
Pareto front of accuracy against model size over the completed trials).

    pip install 'hpcore[torch,plot,sklearn]'      # torch's CPU wheel is enough
    python python/tune_torch_digits.py --quick    # under a minute on 2 cores
    python python/tune_torch_digits.py            # 120 trials, up to 27 epochs each

Each trial runs single-threaded (``torch.set_num_threads(1)``) and is seeded with
``seed + trial.number``, so a run is reproducible.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

import hpcore as hp

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("this example needs PyTorch (CPU is enough): pip install 'hpcore[torch]'")

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "leaky_relu": nn.LeakyReLU}


def search_space(max_epochs: int) -> hp.Space:
    """Every knob of the example in one space (conditional parameters marked)."""
    return hp.Space({
        "lr": hp.Float(1e-4, 0.3, log=True),
        "optimizer": hp.Categorical(["sgd", "adam", "adamw"]),
        "momentum": hp.Float(0.0, 0.99, condition={"optimizer": "sgd"}),
        "schedule": hp.Categorical(["none", "step", "cosine"]),
        "step_size": hp.Int(1, max(2, max_epochs // 2), condition={"schedule": "step"}),
        "gamma": hp.Float(0.1, 0.9, condition={"schedule": "step"}),
        "batch_size": hp.Int(16, 256, log=True),
        "dropout": hp.Float(0.0, 0.5),
        "weight_decay": hp.Float(1e-6, 1e-2, log=True),
        "l1": hp.Float(1e-7, 1e-3, log=True),
        "augment": hp.Float(0.0, 1.0),
        "n_layers": hp.Int(1, 3),
        "units": hp.Int(16, 256, log=True),
        "activation": hp.Categorical(list(ACTIVATIONS)),
    })


_DATA: dict = {}


def digits():
    """(X_train, y_train, X_val, y_val) as tensors; images (N, 1, 8, 8) scaled to [0, 1]."""
    if not _DATA:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        X, y = load_digits(return_X_y=True)
        X = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
        Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
        _DATA["xy"] = (torch.from_numpy(Xtr), torch.from_numpy(ytr).long(),
                       torch.from_numpy(Xva), torch.from_numpy(yva).long())
    return _DATA["xy"]


def augment(x: torch.Tensor, strength: float, gen: torch.Generator) -> torch.Tensor:
    """Random shifts (up to 1.5 px at strength 1), rotations (up to 15 degrees) and
    Gaussian pixel noise (sd 0.1) on a batch of (N, 1, 8, 8) images; 0 = unchanged."""
    if strength <= 0:
        return x
    n = x.shape[0]
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(15.0) * strength
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * (1.5 * 2 / 8) * strength  # normalized units
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)
    out = out + 0.1 * strength * torch.randn(out.shape, generator=gen)
    return out.clamp_(0.0, 1.0)


def build_model(p: dict) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = 64
    for _ in range(p["n_layers"]):
        layers += [nn.Linear(width, p["units"]), ACTIVATIONS[p["activation"]](), nn.Dropout(p["dropout"])]
        width = p["units"]
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def make_optimizer(p: dict, params) -> torch.optim.Optimizer:
    if p["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=p["lr"], momentum=p["momentum"], weight_decay=p["weight_decay"])
    cls = torch.optim.Adam if p["optimizer"] == "adam" else torch.optim.AdamW
    return cls(params, lr=p["lr"], weight_decay=p["weight_decay"])


def make_scheduler(p: dict, opt: torch.optim.Optimizer, max_epochs: int):
    if p["schedule"] == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=p["step_size"], gamma=p["gamma"])
    if p["schedule"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max_epochs)
    return None


def make_objective(max_epochs: int, seed: int):
    def objective(trial: hp.Trial) -> float:
        """Validation accuracy after up to ``max_epochs`` epochs, one report per epoch."""
        torch.set_num_threads(1)
        torch.manual_seed(seed + trial.number)
        gen = torch.Generator().manual_seed(seed + trial.number)
        p = trial.params
        Xtr, ytr, Xva, yva = digits()
        model = build_model(p)
        opt = make_optimizer(p, model.parameters())
        sched = make_scheduler(p, opt, max_epochs)
        n_weights = sum(w.numel() for w in model.parameters())
        trial.set_user_attr("n_weights", int(n_weights))
        bs = p["batch_size"]
        acc = 0.0
        for epoch in range(1, max_epochs + 1):
            model.train()
            order = torch.randperm(len(Xtr), generator=gen)
            for i in range(0, len(order), bs):
                idx = order[i:i + bs]
                xb = augment(Xtr[idx], p["augment"], gen)
                loss = F.cross_entropy(model(xb), ytr[idx])
                if p["l1"] > 0:
                    loss = loss + p["l1"] * sum(w.abs().sum() for n, w in model.named_parameters()
                                                if n.endswith("weight"))
                opt.zero_grad()
                loss.backward()
                opt.step()
            if sched is not None:
                sched.step()
            model.eval()
            with torch.no_grad():
                logits = model(Xva)
                val_loss = float(F.cross_entropy(logits, yva))
                acc = float((logits.argmax(1) == yva).float().mean())
            if not math.isfinite(val_loss):
                acc = float("nan")
            trial.report(epoch, acc)
            if trial.should_prune():
                trial.set_user_attr("epochs", epoch)
                raise hp.TrialPruned()
        trial.set_user_attr("epochs", max_epochs)
        trial.set_user_attr("val_loss", val_loss)
        return acc

    return objective


def make_sampler(name: str, seed: int) -> hp.BaseSampler:
    if name == "random":
        return hp.RandomSampler(seed=seed)
    if name == "bayes":
        return hp.BayesSampler(seed=seed, n_startup_trials=10)
    if name == "genetic":
        return hp.GeneticSampler(seed=seed, population_size=12)
    raise ValueError(f"sampler must be random, bayes or genetic, got {name!r}")


def pareto_study(study: hp.Study) -> hp.Study:
    """The completed trials as a 2-objective study: accuracy (max) against weights (min)."""
    mo = hp.Study(study.space, directions=["maximize", "minimize"], name=f"{study.name}-size")
    for t in study.get_trials([hp.TrialState.COMPLETE]):
        tr = mo.ask(params=t.params)
        mo.tell(tr, (t.values[0], float(t.user_attrs["n_weights"])))
    return mo


def save_plots(study: hp.Study, out: str) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        from hpcore import plot as P
    except ImportError:
        print("(matplotlib not installed: no plots)")
        return []
    paths = []

    def save(kind: str, fn, *args, **kw):
        path = os.path.join(out, f"{kind}.png")
        try:
            fn(*args, path, **kw)
        except (ImportError, ValueError) as exc:
            print(f"  no {kind} plot: {exc}")
            return
        paths.append(path)

    save("convergence", P.plot_convergence, {study.name: study}, title="digits MLP: best validation "
         "accuracy", ylabel="best validation accuracy")
    save("parallel", P.plot_parallel_coordinates, study)
    save("slice", P.plot_slice, study)
    save("intermediate", P.plot_intermediate_values, study)
    save("importance", P.plot_param_importances, study)
    save("pareto", P.plot_pareto_front, pareto_study(study),
         title="accuracy against model size (completed trials)",
         labels=("validation accuracy (maximize)", "number of weights (minimize)"))
    return paths


def main(argv: list[str] | None = None) -> hp.Study:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="40 trials of up to 9 epochs (under a minute)")
    ap.add_argument("--trials", type=int, default=None, help="number of trials")
    ap.add_argument("--epochs", type=int, default=None, help="maximum epochs per trial")
    ap.add_argument("--sampler", default="random", choices=["random", "bayes", "genetic"],
                    help="random = Hyperband as published; bayes = BOHB-style")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="torch_digits_out", help="folder for the study file and plots")
    ap.add_argument("--top", type=int, default=10, help="rows in the best-trials table")
    args = ap.parse_args(argv)
    n_trials = args.trials or (40 if args.quick else 120)
    max_epochs = args.epochs or (9 if args.quick else 27)
    os.makedirs(args.out, exist_ok=True)
    storage = f"sqlite:///{os.path.join(args.out, 'runs.db')}"
    name = f"digits-mlp-{args.sampler}-e{max_epochs}-s{args.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    pruner = hp.any_of(hp.Hyperband(1, max_epochs, eta=3, seed=args.seed), hp.PatiencePruner(4))
    study = hp.Study(search_space(max_epochs), sampler=make_sampler(args.sampler, args.seed),
                     pruner=pruner, direction="maximize", storage=storage, name=name)
    print(f"study {name!r} in {storage}: {n_trials} trials, up to {max_epochs} epochs, "
          f"sampler {args.sampler}, pruner {pruner!r}")
    t0 = time.perf_counter()
    study.optimize(make_objective(max_epochs, args.seed), n_trials=n_trials, show_progress=True)
    elapsed = time.perf_counter() - t0
    trials = study.trials
    counts = {s.name: sum(t.state == s for t in trials) for s in hp.TrialState}
    epochs = sum(int(t.user_attrs.get("epochs", 0)) for t in trials)
    print(f"\n{len(trials)} trials in {elapsed:.1f} s: {counts['COMPLETE']} complete, "
          f"{counts['PRUNED']} pruned, {counts['FAIL']} failed; {epochs} epochs trained "
          f"({epochs / (len(trials) * max_epochs):.2f} of {len(trials)} x {max_epochs})")
    print(f"best validation accuracy {study.best_value:.4f} (trial {study.best_trial.number})\n")
    print(hp.best_trials_table(study, top=args.top))
    paths = save_plots(study, args.out)
    if paths:
        print("\nplots: " + ", ".join(paths))
    print(f"\ninspect later: hpcore show {os.path.join(args.out, 'runs.db')} {name}")
    return study


if __name__ == "__main__":
    main()
