"""Small task and model used by the runner tests (importable by subprocesses via PYTHONPATH)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness import hookimpl
from harness.images import load_image
from harness.interfaces import ModelAdapter, Task
from harness.records import Request, Sample


class ToyTask(Task):
    """Samples listed in ``<data_root>/labels.txt`` as ``relative/path label subset`` lines."""

    name = "toy-task"
    version = "1"
    default_metrics = ("acc", "ap", "auc")

    def available(self) -> tuple[bool, str]:
        if self.data_root is None or not (self.data_root / "labels.txt").exists():
            return False, f"no labels.txt under {self.data_root}"
        return True, ""

    def samples(self, split: str | None = None) -> Iterator[Sample]:
        for line in (self.data_root / "labels.txt").read_text().splitlines():
            rel, label, subset = line.split()
            yield Sample(id=rel, image=str(self.data_root / rel), label=int(label), subset=subset)


class MeanModel(ModelAdapter):
    """P(fake) = mean pixel value. Options: ``log`` (append computed ids), ``sleep`` (seconds per batch),
    ``explode_on`` (raise in score_batch when a batch holds that id)."""

    def __init__(self, log: str | None = None, sleep: float = 0.0, explode_on: str | None = None, **args: Any):
        super().__init__(log=log, sleep=sleep, explode_on=explode_on, **args)
        self.log, self.sleep, self.explode_on = log, float(sleep), explode_on

    def fingerprint(self) -> dict[str, Any]:
        # the log path and sleep do not change answers: leave them out so reruns hit the cache
        return {"class": "MeanModel", "explode_on": self.explode_on}

    def prepare(self, request: Request) -> tuple[str, float]:
        pixels = np.asarray(load_image(request.sample), dtype=np.float64)
        return request.sample.id, float(pixels.mean() / 255.0)

    def score_batch(self, inputs: Sequence[tuple[str, float]]) -> list[float]:
        ids = [i for i, _ in inputs]
        if self.explode_on and self.explode_on in ids:
            raise RuntimeError(f"model cannot handle {self.explode_on}")
        if self.sleep:
            time.sleep(self.sleep)
        if self.log:
            with open(self.log, "a", encoding="utf-8") as handle:
                handle.write("".join(i + "\n" for i in ids))
                handle.flush()
                os.fsync(handle.fileno())
        return [v for _, v in inputs]


class OverlapProbe(MeanModel):
    """MeanModel whose first model call waits until more samples than its batch have started preparing:
    it returns only if the runner prepares batch k+1 while the model runs on batch k (whether the
    worker threads get there before or after the call starts)."""

    ran_serially = False  # set when the wait timed out (class-level: the runner builds the instance)

    def __init__(self, **args: Any):
        super().__init__(**args)
        import threading

        self.prepared = 0
        self.changed = threading.Condition()
        self.calls = 0

    def prepare(self, request: Request) -> tuple[str, float]:
        with self.changed:
            self.prepared += 1
            self.changed.notify_all()
        return super().prepare(request)

    def score_batch(self, inputs: Sequence[tuple[str, float]]) -> list[float]:
        self.calls += 1
        if self.calls == 1:
            with self.changed:
                if not self.changed.wait_for(lambda: self.prepared > len(inputs), timeout=10):
                    OverlapProbe.ran_serially = True
                    raise RuntimeError("the next batch did not start preparing while the model ran")
        return super().score_batch(inputs)


class CostlyMeanModel(MeanModel):
    """MeanModel whose requests cost their sample number (img007.png costs 7)."""

    def cost(self, request: Request) -> float:
        return float(request.sample.id[3:6])


class ToyPlugin:
    """Registers the toy task and model."""

    @staticmethod
    @hookimpl
    def register_tasks(register):
        register("toy-task", "toy_components:ToyTask")

    @staticmethod
    @hookimpl
    def register_models(register):
        register("mean-model", "toy_components:MeanModel")
        register("overlap-probe", "toy_components:OverlapProbe")
        register("costly-mean-model", "toy_components:CostlyMeanModel")


register_tasks = ToyPlugin.register_tasks
register_models = ToyPlugin.register_models


def write_toy_data(root: Path, n_good: int = 24, bad: bool = True) -> Path:
    """Real photo crops (half 'fake' = brightened) plus, if ``bad``, every kind of broken file."""
    import io

    import skimage.data
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    photo = skimage.data.astronaut()
    lines = []
    for i in range(n_good):
        y, x = (i * 17) % 400, (i * 29) % 400
        crop = photo[y : y + 48, x : x + 48].astype(np.float64)
        label = i % 2
        if label:
            crop = np.clip(crop * 0.5 + 120, 0, 255)
        Image.fromarray(crop.astype(np.uint8)).save(root / f"img{i:03d}.png")
        lines.append(f"img{i:03d}.png {label} {'gen' if label else 'real'}")
    if bad:
        buffer = io.BytesIO()
        Image.fromarray(photo[:64, :64]).save(buffer, format="JPEG", quality=90)
        (root / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        (root / "zero.png").write_bytes(b"")
        (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
        (root / "notes.jpg").write_text("this is not an image\n")
        (root / "folder.png").mkdir()
        for name in ("truncated.jpg", "zero.png", "corrupt.png", "notes.jpg", "folder.png", "missing.png"):
            lines.append(f"{name} 1 gen")
    (root / "labels.txt").write_text("\n".join(lines) + "\n")
    return root


class ToyQuestionTask(ToyTask):
    """The toy samples asked a FakeClass-style yes/no question (generate mode first, score second)."""

    name = "toy-questions"
    modes = ("generate", "score")
    default_metrics = ("qual_acc", "unknown_rate")
    question = "Is this a real image, yes or no?"

    def request(self, sample: Sample, mode: str) -> Request:
        from harness.records import GenerationParams

        if mode == "score":
            return Request(sample=sample, kind="score")
        return Request(
            sample=sample, kind="generate", prompt=self.question, generation=GenerationParams(max_new_tokens=8)
        )

    def parse_verdict(self, sample: Sample, text: str) -> int | None:
        from harness.verdicts import parse_verdict

        return parse_verdict(text, self.question)


class ToyLmmPlugin:
    """Registers the toy tasks (for LMM tests)."""

    @staticmethod
    @hookimpl
    def register_tasks(register):
        register("toy-task", "toy_components:ToyTask")
        register("toy-questions", "toy_components:ToyQuestionTask")


def jpeg_manifest(
    root: Path, photo: np.ndarray, crops: Sequence[tuple[int, int, int]], png_side: int, quality: int, cut_at: int
) -> Path:
    """A ListTask manifest over JPEG crops of a real photograph (``(top, height, width)`` each, named ``0.jpg``
    ...), a PNG (``p.png``) and a JPEG truncated after ``cut_at`` bytes (``cut.jpg``); labels alternate."""
    import io
    import json

    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    names = []
    for i, (top, height, width) in enumerate(crops):
        Image.fromarray(np.ascontiguousarray(photo[top : top + height, :width])).save(
            root / f"{i}.jpg", quality=quality
        )
        names.append(f"{i}.jpg")
    Image.fromarray(np.ascontiguousarray(photo[:png_side, :png_side])).save(root / "p.png")
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="JPEG")
    (root / "cut.jpg").write_bytes(buffer.getvalue()[:cut_at])
    names += ["p.png", "cut.jpg"]
    with open(root / "manifest.jsonl", "w") as handle:
        for n, name in enumerate(names):
            handle.write(json.dumps({"id": name, "image": name, "label": n % 2}) + "\n")
    return root / "manifest.jsonl"
