"""Time grids: the timesteps at which a sampler evaluates the model.

Every sampler evaluates the model at ``steps`` distinct timesteps
T-1 = t_0 > t_1 > … > t_{steps-1} = 0 and then reads out x̂0 at t = 0 (the final transition to
the clean end, ᾱ = 1, where every sampler's update reduces to x̂0: DDPM's last posterior mean,
DDIM's last step, and the first-order DPM-Solver++ step to σ = 0). So NFE = ``steps``.

Two kinds of time:

- ``discrete`` (default): integer training timesteps, where the model was trained and the
  schedule's α_t, σ_t, λ_t are exact. The price: no step can be shorter than one table step,
  and the sqrt schedule's last β is clipped at 0.999, so the first transition always spans
  Δλ ≈ 3.45 and the last one Δλ ≈ 0.24, and an ODE solver's error stops falling once the grid
  nears the table's resolution (on the logSNR grid, at 2–4e-4 below).
- ``continuous``: fractional timesteps, with log α interpolated linearly between table entries
  (:meth:`~diffuseq.schedule.NoiseSchedule.log_alpha`, as the reference DPM-Solver does) and the
  fractional t fed to the model's time embedding. Steps can be as short as asked, but that
  buys the solver's order only on the ``logSNR`` grid. Measured for DPM-Solver++ on Gaussian
  data with the exact x0 predictor (sqrt schedule, T = 2000; tests/test_samplers.py): with
  ``grid: logSNR``, continuous time gives observed orders 1.00 / 2.0 / 3.0 for solver orders
  1 / 2 / 3 (80 → 160 → 320 steps), while discrete time floors at 2–4e-4 (orders 2 and 3). On
  the default ``time_uniform`` grid, in either time, orders 2 and 3 converge at first order
  only (1.1e-2, 6.0e-3, 3.0e-3 at 80, 160, 320 steps), because the first step carries the
  clipped last β (Δλ ≈ 3.45) whatever the number of steps.

- ``time_uniform``: t_i = round(linspace(T-1, 0, steps)).
- ``logSNR``: targets uniform in λ between λ_{T-1} and λ_0, each snapped to the integer t with
  the nearest λ, then pushed apart so that the grid stays strictly decreasing (the sqrt
  schedule's last β is clipped at 0.999, so λ jumps from -4.3 to -7.7 in the last step and
  several targets share t = T-1 before the push).
"""

from __future__ import annotations

import numpy as np

from diffuseq.schedule import NoiseSchedule

CLEAN = -1  # the clean end point after t = 0 (ᾱ = 1, σ = 0)


def time_grid(schedule: NoiseSchedule, steps: int, kind: str = "time_uniform",
              continuous: bool = False) -> list[float]:
    """``steps`` strictly decreasing timesteps from T-1 to 0 (just [T-1] for steps = 1); integers
    unless ``continuous``."""
    T = schedule.T
    if steps < 1 or (steps > T and not continuous):
        raise ValueError(f"steps ({steps}) must be between 1 and the model's T ({T}) on the discrete grid")
    if steps == 1:
        return [T - 1]
    if continuous:
        return _continuous_grid(schedule, steps, kind)
    if kind == "time_uniform":
        return [int(t) for t in np.rint(np.linspace(T - 1, 0, steps))]
    if kind == "logSNR":
        lam = np.array([schedule.log_snr(t) for t in range(T)])  # decreasing in t
        targets = np.linspace(lam[-1], lam[0], steps)
        # λ is decreasing, so search in the reversed (increasing) table.
        pos = np.clip(np.searchsorted(lam[::-1], targets), 1, T - 1)
        lo, hi = lam[::-1][pos - 1], lam[::-1][pos]
        nearest = T - 1 - np.where(targets - lo <= hi - targets, pos - 1, pos)
        grid: list[int] = []
        for i, t in enumerate(nearest):
            room = steps - 1 - i  # timesteps still needed below this one
            t = min(int(t), grid[-1] - 1) if grid else T - 1
            grid.append(max(t, room))
        grid[-1] = 0
        return grid
    raise ValueError(f"unknown grid {kind!r}; choose time_uniform or logSNR")


def _continuous_grid(schedule: NoiseSchedule, steps: int, kind: str) -> list[float]:
    """Fractional timesteps: uniform in t, or uniform in λ (λ(t) inverted by interpolation)."""
    T = schedule.T
    if kind == "time_uniform":
        grid = np.linspace(T - 1, 0, steps)
    elif kind == "logSNR":
        knots = np.arange(T, dtype=np.float64)
        lam = np.array([schedule.log_snr(t) for t in range(T)])  # decreasing in t
        grid = np.interp(np.linspace(lam[-1], lam[0], steps), lam[::-1], knots[::-1])
    else:
        raise ValueError(f"unknown grid {kind!r}; choose time_uniform or logSNR")
    grid[0], grid[-1] = T - 1, 0
    return [float(t) for t in grid]
