"""Metrics by name: each is one function with the :func:`metric` decorator, and everything else
(suite validation, the results schema, the report's better/worse direction) reads this registry.

Scopes say what a metric's function takes and where :func:`~diffuseq.metrics.evaluate` applies it:

- ``sentence``: ``fn(refs, hyp) -> float`` per output, against its references;
- ``output``: ``fn(hyp) -> float`` per output, on the output alone;
- ``corpus``: ``fn(refs_per_output, hyps) -> (float, signature)`` once per run;
- ``set``: ``fn(candidates, pairwise) -> float`` over the k candidates of one source (self-BLEU,
  div-4), with two runs or more; ``pairwise`` is their (k, k) BLEU matrix, computed once;
- ``model``: needs a scoring model (BERTScore), per output, when the caller gives one.

To add a metric: write the function in a module of this package, decorate it, and import that
module in ``diffuseq/metrics/__init__.py``. Importing this package stays light (the heavy
libraries load on first use), so the report layer can read the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Scope = Literal["sentence", "output", "corpus", "set", "model"]


@dataclass(frozen=True)
class Metric:
    name: str  # the one name: in suite files, results tables and reports
    fn: Callable[..., Any]
    scope: Scope
    higher_is_better: bool | None  # None: neither (e.g. length)
    description: str  # the function's first docstring line

    @property
    def per_sentence(self) -> bool:
        """Whether it has one value per source (and so enters paired tests)."""
        return self.scope != "corpus"


METRICS: dict[str, Metric] = {}


def metric(name: str, *, scope: Scope = "sentence", higher_is_better: bool | None = True) -> Callable:
    """Register the decorated function as metric ``name``."""
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in METRICS:
            raise ValueError(f"metric {name!r} is registered twice ({METRICS[name].fn.__qualname__}, {fn.__qualname__})")
        METRICS[name] = Metric(name, fn, scope, higher_is_better, (fn.__doc__ or name).strip().splitlines()[0])
        return fn

    return register


_ORDER: tuple[Scope, ...] = ("sentence", "model", "output", "corpus", "set")


def metrics(*scopes: Scope) -> list[str]:
    """Registered metric names (of the given scopes), by scope (quality against references first,
    diversity last), then in registration order. This module is imported only through its
    package, whose ``__init__`` first imports (registers) the built-in metrics."""
    ranked = sorted(METRICS.values(), key=lambda m: _ORDER.index(m.scope))
    return [m.name for m in ranked if not scopes or m.scope in scopes]
