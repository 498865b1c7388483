"""Names looked up in one small generic registry: each entry a lazy ``"module:object"`` string,
imported on first use, and an unknown name an error listing the known ones (the idea of
lm-evaluation-harness's ``lm_eval/api/registry.py``).

This module imports nothing heavy, so configuration can validate names without importing torch
models. It holds the model families (:data:`FAMILIES`) and which family owns each sampler of
the families other than the continuous one (:data:`SAMPLER_FAMILIES`; the continuous samplers
are classes registered in ``diffuseq.sampling.spec``).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any


class Registry:
    """``name → "module:object"``, loaded on demand; iterates over the names in order."""

    def __init__(self, what: str, entries: Mapping[str, str]):
        self.what, self._entries = what, dict(entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def check(self, name: object) -> str:
        """``name`` if it is registered, else a ValueError naming the registered ones."""
        if name not in self._entries:
            raise ValueError(f"unknown {self.what} {name!r}; available: {', '.join(self.names())}")
        return str(name)

    def load(self, name: str) -> Any:
        """The object registered as ``name``, imported now."""
        module, obj = self._entries[self.check(name)].split(":")
        return getattr(importlib.import_module(module), obj)


# To add a model family: its name and "module:Class" here, and its sampler names below (a test
# checks both against the classes).
FAMILIES = Registry("model family", {
    "continuous": "diffuseq.family:ContinuousFamily",
    "masked_diffusion": "diffuseq.masked_diffusion:MaskedDiffusionFamily",
    "ar_transformer": "diffuseq.ar_transformer:ARTransformerFamily",
})
# sampler name → the family that decodes with it, for the families other than the continuous one
# (the union of their ``samplers``; listed here so that naming one imports no model code).
SAMPLER_FAMILIES: dict[str, str] = {
    "unmask": "masked_diffusion",
    "greedy": "ar_transformer", "beam": "ar_transformer",
}
