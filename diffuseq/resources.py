"""Built-in arms and suites ship inside the packages; user folders, read first, override them.

An arm ``NAME`` is the first ``NAME.yaml`` found in ``$DIFFUSEQ_ARMS_DIR``, then
``ablations/arms/`` under the working directory, then the built-in ``diffuseq/arms/`` (read with
:mod:`importlib.resources`, so it works from a source tree and after ``pip install``). Suites
likewise: ``$DIFFUSEQ_SUITES_DIR``, ``ablations/suites/``, ``bench/suites/``. Adding an arm or a
suite is adding one YAML file to one of these folders; a path to a YAML file works as well.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable


@dataclass(frozen=True)
class Catalog:
    """Where the YAML files of one kind (arms or suites) are looked up, user folders first."""

    kind: str  # "arm" or "suite", for messages
    env: str  # environment variable naming a user folder
    user: str  # user folder relative to the working directory
    package: str  # package holding the built-in files ...
    folder: str  # ... in this sub-folder

    def folders(self) -> list[Traversable]:
        """The folders searched, in order."""
        env = os.environ.get(self.env)
        return [*([Path(env)] if env else []), Path(self.user), files(self.package) / self.folder]

    def find(self, name: str) -> Traversable | None:
        """The first ``<name>.yaml`` in :meth:`folders`, or None."""
        return next((f / f"{name}.yaml" for f in self.folders() if (f / f"{name}.yaml").is_file()), None)

    def names(self) -> list[str]:
        """Every name that :meth:`find` resolves."""
        return sorted({p.name[: -len(".yaml")] for f in self.folders() if f.is_dir()
                       for p in f.iterdir() if p.name.endswith(".yaml")})

    def searched(self) -> str:
        """The folders, for an error message (``$ENV`` shown when it is not set)."""
        env = os.environ.get(self.env)
        return ", ".join([env or f"${self.env} (not set)", f"./{self.user}", str(files(self.package) / self.folder)])
