"""Noise schedules: the discrete-time ᾱ_t table and the continuous quantities samplers need.

Conventions (as in DiffuSeq / improved-diffusion): timesteps are integers t ∈ {0, …, T-1};
``alphas_cumprod[t]`` is ᾱ_t after t+1 noising steps, so t = 0 is already slightly noisy.
For ODE solvers we use α_t = sqrt(ᾱ_t), σ_t = sqrt(1-ᾱ_t) and λ_t = log(α_t/σ_t).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

MAX_BETA = 0.999


def _betas_for_alpha_bar(steps: int, alpha_bar: Callable[[float], float]) -> np.ndarray:
    """β_i = 1 - ᾱ((i+1)/T) / ᾱ(i/T), clipped at MAX_BETA (Nichol & Dhariwal's construction)."""
    t1 = np.arange(steps, dtype=np.float64) / steps
    t2 = np.arange(1, steps + 1, dtype=np.float64) / steps
    a1 = np.array([alpha_bar(x) for x in t1])
    a2 = np.array([alpha_bar(x) for x in t2])
    return np.minimum(1.0 - a2 / a1, MAX_BETA)


def _sqrt_betas(steps: int) -> np.ndarray:
    return _betas_for_alpha_bar(steps, lambda t: 1.0 - math.sqrt(t + 1e-4))


def _cosine_betas(steps: int) -> np.ndarray:
    return _betas_for_alpha_bar(steps, lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2)


def _linear_betas(steps: int) -> np.ndarray:
    scale = 1000 / steps
    return np.linspace(scale * 1e-4, scale * 0.02, steps, dtype=np.float64)


SCHEDULES: dict[str, Callable[[int], np.ndarray]] = {
    "sqrt": _sqrt_betas,
    "cosine": _cosine_betas,
    "linear": _linear_betas,
}


class NoiseSchedule:
    """A discrete variance-preserving schedule with T steps, stored in float64.

    Tensors returned by the helpers are float32 on the requested device.
    """

    def __init__(self, name: str = "sqrt", steps: int = 2000):
        if name not in SCHEDULES:
            raise ValueError(f"unknown noise schedule {name!r}; choose one of {sorted(SCHEDULES)}")
        self.name, self.steps = name, steps
        self.betas = SCHEDULES[name](steps)
        self.alphas_cumprod = np.cumprod(1.0 - self.betas)
        self._log_alpha = 0.5 * np.log(self.alphas_cumprod)
        self._table = torch.from_numpy(
            np.stack(
                [
                    np.sqrt(self.alphas_cumprod),  # 0: sqrt(ᾱ_t)
                    np.sqrt(1.0 - self.alphas_cumprod),  # 1: sqrt(1-ᾱ_t)
                ]
            )
        ).float()

    @property
    def T(self) -> int:
        return self.steps

    def _take(self, row: int, t: torch.Tensor) -> torch.Tensor:
        table = self._table.to(t.device)
        return table[row][t]

    def sqrt_alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        """sqrt(ᾱ_t) for integer timesteps ``t`` of any shape."""
        return self._take(0, t)

    def sqrt_one_minus_alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        """sqrt(1-ᾱ_t) for integer timesteps ``t``; also the training discrete-noise rate / γ."""
        return self._take(1, t)

    # Continuous-time view used by ODE solvers (float64). Integer t reads the table; a fractional
    # t interpolates log α linearly between its integer neighbours (as the reference DPM-Solver
    # does for discrete-time models), so α, σ and λ are continuous and monotone in t.
    def log_alpha(self, t: float) -> float:
        """log α_t = ½·log ᾱ_t for t ∈ [0, T-1], integer or fractional."""
        if float(t).is_integer():
            return 0.5 * float(np.log(self.alphas_cumprod[int(t)]))
        return float(np.interp(t, np.arange(self.steps), self._log_alpha))

    def alpha(self, t: float) -> float:
        if float(t).is_integer():
            return float(np.sqrt(self.alphas_cumprod[int(t)]))
        return math.exp(self.log_alpha(t))

    def sigma(self, t: float) -> float:
        if float(t).is_integer():
            return float(np.sqrt(1.0 - self.alphas_cumprod[int(t)]))
        return math.sqrt(-math.expm1(2.0 * self.log_alpha(t)))

    def log_snr(self, t: float) -> float:
        """λ_t = log(α_t / σ_t)."""
        return float(np.log(self.alpha(t)) - np.log(self.sigma(t)))

    def alpha_bar(self, t: float) -> float:
        if float(t).is_integer():
            return float(self.alphas_cumprod[int(t)])
        return math.exp(2.0 * self.log_alpha(t))

    def posterior(self, t: int, t_prev: int) -> tuple[float, float, float]:
        """Coefficients of q(x_{t_prev} | x_t, x_0) for a (possibly respaced) step t → t_prev.

        Returns (coef_x0, coef_xt, variance) with mean = coef_x0·x0 + coef_xt·x_t.
        ``t_prev = -1`` means the clean end point (ᾱ = 1).
        """
        ab_t = self.alphas_cumprod[t]
        ab_prev = self.alphas_cumprod[t_prev] if t_prev >= 0 else 1.0
        beta = 1.0 - ab_t / ab_prev  # effective β of the respaced step
        coef_x0 = np.sqrt(ab_prev) * beta / (1.0 - ab_t)
        coef_xt = np.sqrt(ab_t / ab_prev) * (1.0 - ab_prev) / (1.0 - ab_t)
        var = beta * (1.0 - ab_prev) / (1.0 - ab_t)
        return float(coef_x0), float(coef_xt), float(var)
