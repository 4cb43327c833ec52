"""Stops a pretraining run that has diverged, before it can export a dead model.

Two failure modes seen on CPU runs of the demo recipe on unseen corpora:

- **non-finite steps**: a loss or gradient that is inf/NaN. The step is skipped (the optimizer never sees it) and
  counted; ``max_nonfinite`` of them in a row stop the run.
- **contrastive collapse**: after a loss spike every video and caption maps to one direction and the VTC loss sits
  at exactly ``ln(global batch)`` (chance) for the rest of the run. The guard watches the VTC loss over a window of
  steps: once its window mean has fallen well below chance, a whole window back at chance stops the run. A run
  whose VTC never left chance over many windows is stopped at the end instead of being exported.

Decisions use only values that are identical on every rank (the VTC loss is computed over the gathered batch, the
gradient norm after DDP's all-reduce), so every rank stops at the same step and none waits in a collective.
"""

from __future__ import annotations

import math
from collections import deque

from vtr.errors import VtrError

FELL = 0.85  # the VTC window mean "has fallen" once it is below this fraction of chance
AT_CHANCE = 0.97  # a step "is at chance" when its VTC loss is above this fraction of chance
NEVER_LEARNED_WINDOWS = 5  # a run this many windows long whose VTC never fell is stopped at the end


class TrainingDiverged(VtrError):
    """A pretraining run diverged; nothing was exported."""


class DivergenceGuard:
    def __init__(self, global_batch: int, window: int, max_nonfinite: int, advice: str):
        self.chance = math.log(max(2, global_batch))
        self.window, self.max_nonfinite, self.advice = window, max_nonfinite, advice
        self.recent: deque[float] = deque(maxlen=max(1, window))
        self.best_mean, self.best_step = math.inf, None
        self.nonfinite_run = self.nonfinite_total = self.steps_seen = 0
        self.last_spread: dict = {}
        self.on_diverge = None  # called with the message before raising (the trainer logs it)

    # ------------------------------------------------------------------ non-finite steps
    def step_is_finite(self, step: int, loss: float, grad_norm: float) -> bool:
        """Record one step; False means: skip the optimizer update. Raises after ``max_nonfinite`` in a row."""
        if math.isfinite(loss) and math.isfinite(grad_norm):
            self.nonfinite_run = 0
            return True
        self.nonfinite_run += 1
        self.nonfinite_total += 1
        if self.max_nonfinite and self.nonfinite_run >= self.max_nonfinite:
            self._fail(
                f"step {step}: {self.nonfinite_run} steps in a row had a non-finite loss or gradient (loss {loss}, "
                f"gradient norm {grad_norm}); they were skipped, but the run cannot recover. {self.advice}")
        return False

    # ------------------------------------------------------------------ collapse
    def observe_vtc(self, step: int, vtc: float, spread: dict | None = None) -> None:
        """Record the VTC loss of ``step``; raises :class:`TrainingDiverged` on a collapse back to chance."""
        if not self.window or not math.isfinite(vtc):
            return
        self.steps_seen += 1
        self.recent.append(vtc)
        if spread:
            self.last_spread = spread
        if len(self.recent) < self.window:
            return
        mean = sum(self.recent) / len(self.recent)
        if mean < self.best_mean:
            self.best_mean, self.best_step = mean, step
        if self.best_mean <= FELL * self.chance and min(self.recent) >= AT_CHANCE * self.chance:
            self._fail(
                f"step {step}: the contrastive (VTC) loss has been at chance, ln(global batch) = {self.chance:.3f}, "
                f"for the last {self.window} steps (now {vtc:.3f}) after falling to a {self.window}-step mean of "
                f"{self.best_mean:.3f} at step {self.best_step}: the embeddings collapsed"
                f"{self._spread_text()}. Nothing was exported. {self.advice}")

    def check_learned(self, step: int) -> None:
        """At the end of a long run: raise when the VTC loss never left chance (a dead model is not exported)."""
        if not self.window or self.steps_seen < NEVER_LEARNED_WINDOWS * self.window:
            return
        if self.best_mean > FELL * self.chance:
            self._fail(
                f"step {step}: the contrastive (VTC) loss never fell below {FELL:.0%} of chance "
                f"(ln(global batch) = {self.chance:.3f}; best {self.window}-step mean {self.best_mean:.3f}): the model "
                f"learned nothing{self._spread_text()}. Nothing was exported. {self.advice}")

    def _fail(self, message: str) -> None:
        if self.on_diverge is not None:
            self.on_diverge(message)
        raise TrainingDiverged(message)

    def _spread_text(self) -> str:
        if not self.last_spread:
            return ""
        return " (mean pairwise cosine in the batch: " + ", ".join(
            f"{k} {v:.3f}" for k, v in self.last_spread.items()) + ")"

    def state(self) -> dict:
        return {"best_mean": self.best_mean, "best_step": self.best_step, "recent": list(self.recent),
                "nonfinite_total": self.nonfinite_total, "steps_seen": self.steps_seen}

    def load_state(self, s: dict) -> None:
        self.best_mean, self.best_step = s["best_mean"], s["best_step"]
        self.recent.extend(s["recent"])
        self.nonfinite_total, self.steps_seen = s["nonfinite_total"], s["steps_seen"]


def mean_pairwise_cosine(x) -> float:
    """Mean cosine between different rows of unit vectors x [N, E] (1.0: every row the same direction)."""
    n = x.shape[0]
    if n < 2:
        return float("nan")
    gram = x.float() @ x.float().t()
    return float((gram.sum() - gram.diagonal().sum()) / (n * (n - 1)))
