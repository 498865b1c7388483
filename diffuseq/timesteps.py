"""Timestep samplers for training: uniform, and the loss-aware second-moment resampler.

``sample`` returns timesteps and importance weights so that E[w · loss(t)] is the uniform
average of the loss over t; the loss-aware sampler draws t ∝ sqrt(E[loss(t)²]) once every t has
``history`` recorded losses (uniform before that), mixed with ``uniform_prob`` of uniform mass.
"""

from __future__ import annotations

import numpy as np
import torch


class UniformTimesteps:
    def __init__(self, num_steps: int):
        self.num_steps = num_steps

    def probs(self) -> np.ndarray:
        return np.full(self.num_steps, 1.0 / self.num_steps)

    def sample(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(t, weights), both (batch,)."""
        p = torch.from_numpy(self.probs())
        t = torch.multinomial(p, batch, replacement=True, generator=generator)
        w = 1.0 / (self.num_steps * p[t])
        return t, w.float()

    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Record per-example losses (all ranks' values, already gathered)."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Uniform sampling keeps no state."""


class LossAwareTimesteps(UniformTimesteps):
    def __init__(self, num_steps: int, history: int = 10, uniform_prob: float = 1e-3):
        super().__init__(num_steps)
        self.history, self.uniform_prob = history, uniform_prob
        self.losses = np.zeros((num_steps, history), dtype=np.float64)
        self.counts = np.zeros(num_steps, dtype=np.int64)

    def probs(self) -> np.ndarray:
        if not (self.counts == self.history).all():
            return super().probs()
        w = np.sqrt(np.mean(self.losses**2, axis=-1))
        w = w / w.sum()
        return w * (1 - self.uniform_prob) + self.uniform_prob / self.num_steps

    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        for ti, li in zip(t.tolist(), losses.tolist(), strict=True):
            if self.counts[ti] == self.history:
                self.losses[ti, :-1] = self.losses[ti, 1:]
                self.losses[ti, -1] = li
            else:
                self.losses[ti, self.counts[ti]] = li
                self.counts[ti] += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"losses": torch.from_numpy(self.losses.copy()), "counts": torch.from_numpy(self.counts.copy())}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.losses, self.counts = state["losses"].numpy().copy(), state["counts"].numpy().copy()


def make_timesteps(name: str, num_steps: int) -> UniformTimesteps:
    return {"uniform": UniformTimesteps, "loss_aware": LossAwareTimesteps}[name](num_steps)
