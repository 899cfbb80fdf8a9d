"""Retraining CNNSpot and UnivFD (linear probe) without augmentation, with the upstream recipes.

Recipe (CNNDetection ``train.py`` / ``earlystop.py``; UnivFD the same with ``--fix_backbone``):
``BCEWithLogitsLoss``; Adam, lr 1e-4, betas (0.9, 0.999) (UnivFD: AdamW with weight decay
0, i.e. Adam); batch 64 (UnivFD 256); early stopping on *validation accuracy* with
patience 5: on a plateau the lr is divided by 10 and patience resets, and training
stops once the lr would drop below 1e-6; the best epoch's weights are kept; the new
head is initialised N(0, 0.02).

Deliberate differences, each stated in the checkpoint's ``config.json``:

- **No augmentation**, as the paper's retrains: no blur / JPEG, and also no random
  crop or flip by default (deterministic resize + centre crop, the evaluation
  pipeline); ``flip=true`` restores upstream's flip.
- **Validation on the task's validation split**: UnivFD's ``data_mode=wang2020``
  validates on the ProGAN *test* set, a leak not copied.
- UnivFD's "best" checkpoint is really the latest (saved every epoch upstream); here it
  is the best by validation accuracy.
- CNNSpot starts from ImageNet weights upstream; pass ``pretrained=PATH`` (a local
  torchvision ResNet state dict); without it training starts from random init, recorded.

Training resumes from the last finished epoch (``resume.pt`` in the output folder,
loaded with ``weights_only=True``). Output: ``weights.safetensors`` + ``config.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.images import load_image
from harness.interfaces import Trainer
from harness.records import Sample
from harness.trainers.common import seen_generators, validation_summary

RESUME = "resume.pt"


def _tensors(samples: Sequence[Sample], pipeline: Any, desc: str, progress: bool) -> tuple[Any, Any, list[str]]:
    """Stack pipeline outputs of every readable labelled sample; unreadable ones are reported."""
    import torch

    from harness.progress import progress_bar

    xs, ys, errors = [], [], []
    for sample in progress_bar(
        [s for s in samples if s.label is not None], desc=desc, unit="img", enabled=progress, leave=False
    ):
        try:
            tensor, _ = pipeline(load_image(sample))
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{sample.describe()}: {type(exc).__name__}: {exc}")
            continue
        xs.append(tensor)
        ys.append(float(sample.label))
    if not xs:
        raise ValueError(f"{desc}: no readable labelled samples")
    return torch.stack(xs), torch.tensor(ys), errors


class EarlyStopping:
    """CNNDetection's ``earlystop.py`` + ``adjust_learning_rate`` schedule, with its best-model quirk fixed.

    Upstream counts an epoch as a plateau when ``acc < stage_best - delta`` (delta -0.001:
    gains under 0.001 do not count); after ``patience`` such epochs the lr is divided by
    10 (training stops when it would fall below ``min_lr``) and a fresh stopper with
    delta -0.002 starts. That fresh stopper saves the next epoch as "best" even when it
    is worse than the best so far; here the kept weights are the best validation
    accuracy over the whole run.
    """

    def __init__(self, lr: float, patience: int = 5, delta: float = -0.001, min_lr: float = 1e-6) -> None:
        self.lr, self.patience, self.delta, self.min_lr = lr, patience, delta, min_lr
        self.stage_best: float | None = None
        self.best: float | None = None
        self.bad_epochs = 0

    def step(self, value: float) -> tuple[bool, bool]:
        """Record an epoch's validation accuracy; returns (new overall best, stop)."""
        improved = self.best is None or value > self.best
        if improved:
            self.best = value
        if self.stage_best is None or not value < self.stage_best - self.delta:
            self.stage_best, self.bad_epochs = value, 0
            return improved, False
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            self.lr /= 10.0
            if self.lr < self.min_lr:
                return improved, True
            self.stage_best, self.bad_epochs, self.delta = None, 0, -0.002
        return improved, False

    def state(self) -> dict[str, Any]:
        """For ``resume.pt``."""
        return {
            "lr": self.lr,
            "best": self.best,
            "stage_best": self.stage_best,
            "bad_epochs": self.bad_epochs,
            "delta": self.delta,
        }

    def load(self, state: dict[str, Any]) -> None:
        """From ``resume.pt``."""
        self.lr, self.best, self.stage_best = float(state["lr"]), state["best"], state["stage_best"]
        self.bad_epochs, self.delta = int(state["bad_epochs"]), float(state["delta"])


def train_epoch(
    forward: Callable[[Any], Any],
    optimizer: Any,
    loss_fn: Any,
    train: tuple[Any, Any],
    starts: Any,
    batch_size: int,
    flip: bool,
) -> list[float]:
    """One pass over the training tensors in a random order (``starts``: the batch offsets, a progress bar);
    ``flip``: each image mirrored with probability 1/2. Returns the batch losses."""
    import torch

    x_train, y_train = train
    order = torch.randperm(len(x_train))
    losses = []
    for start in starts:
        index = order[start : start + batch_size]
        batch = x_train[index]
        if flip:
            mask = torch.rand(len(batch)) < 0.5
            batch = torch.where(mask[:, None, None, None], batch.flip(-1), batch)
        loss = loss_fn(forward(batch), y_train[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def validation_accuracy(forward: Callable[[Any], Any], val: tuple[Any, Any], batch_size: int) -> float:
    """Accuracy at P(fake) > 0.5 on the validation tensors (the early-stopping criterion)."""
    import torch

    with torch.no_grad():
        scores = torch.cat(
            [torch.sigmoid(forward(val[0][i : i + batch_size])) for i in range(0, len(val[0]), batch_size)]
        ).numpy()
    return float(np.mean((scores > 0.5) == val[1].numpy().astype(bool)))


def fit(
    module: Any,
    parameters: Callable[[], Any],
    forward: Callable[[Any], Any],
    train: tuple[Any, Any],
    val: tuple[Any, Any],
    out_dir: Path,
    lr: float,
    batch_size: int,
    max_epochs: int,
    seed: int,
    resume: bool,
    progress: bool,
    flip: bool = False,
) -> dict[str, Any]:
    """Train ``module`` (only ``parameters()``) on tensors with early stopping; returns the history."""
    import torch

    from harness.progress import progress_bar

    torch.manual_seed(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    optimizer = torch.optim.Adam(parameters(), lr=lr, betas=(0.9, 0.999))
    stopper = EarlyStopping(lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    start_epoch, history = 0, []
    best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    resume_path = out_dir / RESUME
    if resume and resume_path.exists():
        saved = torch.load(str(resume_path), map_location="cpu", weights_only=True)
        module.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        best_state = saved["best_model"]
        stopper.load(saved["stopper"])
        start_epoch, history = int(saved["epoch"]) + 1, json.loads(saved["history"])
        torch.set_rng_state(saved["rng"])
    x_train, y_train = train
    for epoch in range(start_epoch, max_epochs):
        for group in optimizer.param_groups:
            group["lr"] = stopper.lr
        module.train()
        bar = progress_bar(range(0, len(x_train), batch_size), desc=f"epoch {epoch + 1}", leave=False, enabled=progress)
        losses = train_epoch(forward, optimizer, loss_fn, (x_train, y_train), bar, batch_size, flip)
        module.eval()
        val_acc = validation_accuracy(forward, val, batch_size)
        improved, stop = stopper.step(val_acc)
        if improved:
            best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        history.append(
            {
                "epoch": epoch + 1,
                "loss": float(np.mean(losses)),
                "val_acc": val_acc,
                "lr": stopper.lr,
                "improved": improved,
            }
        )
        torch.save(
            {
                "model": module.state_dict(),
                "optimizer": optimizer.state_dict(),
                "best_model": best_state,
                "stopper": stopper.state(),
                "epoch": epoch,
                "history": json.dumps(history),
                "rng": torch.get_rng_state(),
            },
            str(resume_path),
        )
        if stop:
            break
    module.load_state_dict(best_state)
    return {"history": history, "best_val_acc": stopper.best}


def _val_summary(module_forward: Callable[[Any], Any], val: tuple[Any, Any], batch_size: int) -> dict[str, Any]:
    import torch

    with torch.no_grad():
        scores = torch.cat(
            [torch.sigmoid(module_forward(val[0][i : i + batch_size])) for i in range(0, len(val[0]), batch_size)]
        ).numpy()
    return validation_summary(val[1].numpy().astype(int), scores)


def _save(out_dir: Path, state: dict[str, Any], config: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    from harness.checkpoints import CONFIG, WEIGHTS

    save_file({k: v.detach().contiguous() for k, v in state.items()}, str(out_dir / WEIGHTS))
    (out_dir / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True, default=str) + "\n")


class CNNSpotTrainer(Trainer):
    """Retrain CNNSpot (whole network) on a task's training split."""

    name = "cnnspot"
    model_name = "cnnspot"

    def __init__(
        self,
        arch: str = "resnet50",
        crop: int = 224,
        resize: int | None = 256,
        lr: float = 1e-4,
        batch_size: int = 64,
        max_epochs: int = 100,
        pretrained: str | None = None,
        flip: bool = False,
        seed: int = 0,
        progress: bool = True,
        **args: Any,
    ) -> None:
        super().__init__(
            arch=arch,
            crop=crop,
            resize=resize,
            lr=lr,
            batch_size=batch_size,
            max_epochs=max_epochs,
            pretrained=pretrained,
            flip=flip,
            seed=seed,
            **args,
        )
        self.arch, self.crop, self.resize = arch, int(crop), (int(resize) if resize else None)
        self.lr, self.batch_size, self.max_epochs = float(lr), int(batch_size), int(max_epochs)
        self.pretrained, self.flip, self.seed, self.progress = pretrained, bool(flip), int(seed), progress

    def train(
        self, train: Sequence[Sample], val: Sequence[Sample], out_dir: Path, task_name: str, resume: bool = True
    ) -> dict[str, Any]:
        """Fit, keep the best epoch by validation accuracy, save."""
        import torch

        from harness.plugins.detectors import IMAGENET_MEAN, IMAGENET_STD, ImagePipeline, build_resnet
        from harness.plugins.torch_checkpoints import load_torch_file, strip_prefix

        if not val:
            raise ValueError("cnnspot training needs a validation split for early stopping (--val-split)")
        torch.manual_seed(self.seed)
        network = build_resnet(self.arch)
        init = "random (no pretrained= given)"
        if self.pretrained:
            state = strip_prefix(load_torch_file(self.pretrained), "module.")
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
            missing = network.load_state_dict(state, strict=False)
            if [k for k in missing.missing_keys if not k.startswith("fc.")] or missing.unexpected_keys:
                raise ValueError(f"{self.pretrained}: not a torchvision {self.arch} state dict: {missing}")
            init = f"ImageNet weights from {self.pretrained}"
        torch.nn.init.normal_(network.fc.weight, 0.0, 0.02)
        pipeline = ImagePipeline(self.crop, IMAGENET_MEAN, IMAGENET_STD, resize=self.resize)
        x_train, y_train, skipped = _tensors(train, pipeline, "cnnspot images (train)", self.progress)
        x_val, y_val, _ = _tensors(val, pipeline, "cnnspot images (val)", self.progress)
        out_dir = Path(out_dir)
        forward = lambda batch: network(batch).reshape(-1)  # noqa: E731
        result = fit(
            network,
            network.parameters,
            forward,
            (x_train, y_train),
            (x_val, y_val),
            out_dir,
            self.lr,
            self.batch_size,
            self.max_epochs,
            self.seed,
            resume,
            self.progress,
            self.flip,
        )
        network.eval()
        summary = {
            "n_train": len(x_train),
            "train_skipped": skipped,
            **result,
            "val": _val_summary(forward, (x_val, y_val), self.batch_size),
        }
        _save(
            out_dir,
            network.state_dict(),
            {
                "model": "cnnspot",
                "arch": self.arch,
                "crop": self.crop,
                "train_resize": self.resize,
                "init": init,
                "recipe": {
                    "optimizer": "Adam",
                    "lr": self.lr,
                    "batch_size": self.batch_size,
                    "loss": "BCEWithLogits",
                    "early_stopping": "val acc, patience 5, lr/10, stop < 1e-6",
                    "augmentation": "none",
                    "flip": self.flip,
                },
                "trained_on": {"task": task_name, "n_train": len(x_train), "seen_generators": seen_generators(train)},
                "validation": summary["val"],
            },
        )
        return summary


class UnivFDTrainer(Trainer):
    """Linear probe on frozen CLIP features (UnivFD ``--fix_backbone``)."""

    name = "univfd"
    model_name = "univfd"

    def __init__(
        self,
        clip: str | None = None,
        crop: int = 224,
        lr: float = 1e-4,
        batch_size: int = 256,
        max_epochs: int = 100,
        seed: int = 0,
        progress: bool = True,
        **args: Any,
    ) -> None:
        super().__init__(clip=clip, crop=crop, lr=lr, batch_size=batch_size, max_epochs=max_epochs, seed=seed, **args)
        if not clip:
            raise ValueError("univfd training needs --args clip=PATH (the CLIP ViT-L/14 backbone)")
        self.clip, self.crop, self.lr = clip, int(crop), float(lr)
        self.batch_size, self.max_epochs, self.seed, self.progress = (
            int(batch_size),
            int(max_epochs),
            int(seed),
            progress,
        )

    def train(
        self, train: Sequence[Sample], val: Sequence[Sample], out_dir: Path, task_name: str, resume: bool = True
    ) -> dict[str, Any]:
        """Embed once with the frozen backbone, fit the head, save the head."""
        import torch

        from harness.plugins.detectors import CLIP_MEAN, CLIP_STD, ImagePipeline, load_clip_vision

        if not val:
            raise ValueError("univfd training needs a validation split for early stopping (--val-split)")
        backbone, source = load_clip_vision(self.clip)
        backbone.eval().requires_grad_(False)
        pipeline = ImagePipeline(self.crop, CLIP_MEAN, CLIP_STD)
        x_train, y_train, skipped = _tensors(train, pipeline, "univfd images (train)", self.progress)
        x_val, y_val, _ = _tensors(val, pipeline, "univfd images (val)", self.progress)

        def embed(x: Any) -> Any:
            with torch.no_grad():
                return torch.cat([backbone(pixel_values=x[i : i + 64]).image_embeds for i in range(0, len(x), 64)])

        f_train, f_val = embed(x_train), embed(x_val)
        torch.manual_seed(self.seed)
        head = torch.nn.Linear(f_train.shape[1], 1)
        torch.nn.init.normal_(head.weight, 0.0, 0.02)
        forward = lambda feats: head(feats).reshape(-1)  # noqa: E731
        out_dir = Path(out_dir)
        result = fit(
            head,
            head.parameters,
            forward,
            (f_train, y_train),
            (f_val, y_val),
            out_dir,
            self.lr,
            self.batch_size,
            self.max_epochs,
            self.seed,
            resume,
            self.progress,
        )
        summary = {
            "n_train": len(f_train),
            "train_skipped": skipped,
            **result,
            "val": _val_summary(forward, (f_val, y_val), self.batch_size),
        }
        _save(
            out_dir,
            head.state_dict(),
            {
                "model": "univfd",
                "clip": str(self.clip),
                "backbone": source,
                "crop": self.crop,
                "recipe": {
                    "optimizer": "Adam (AdamW wd 0 upstream)",
                    "lr": self.lr,
                    "batch_size": self.batch_size,
                    "loss": "BCEWithLogits",
                    "early_stopping": "val acc, patience 5, lr/10, stop < 1e-6",
                    "augmentation": "none",
                    "backbone": "frozen",
                },
                "trained_on": {"task": task_name, "n_train": len(f_train), "seen_generators": seen_generators(train)},
                "validation": summary["val"],
            },
        )
        return summary
