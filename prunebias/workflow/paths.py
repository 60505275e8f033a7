"""Where the workflow keeps masks and their controls: the one place their path templates
are written (the rules and the jobs build them here; tests spell them out, as a check).

Each argument left out stays a Snakemake wildcard (``{model}``, ``{kind}``, ...), so the
same call gives a rule's output pattern or a concrete file.
"""

from __future__ import annotations

MASK = "results/masks/{model}/{kind}/{setting}/{source}.npz"
CONTROL = "results/masks/{model}/random_{kind}/{setting}/{source}/draw{draw}.npz"


def mask_path(model: str = "{model}", kind: str = "{kind}", setting: str = "{setting}",
              source: str = "{source}") -> str:
    """A real mask's file (or pattern)."""
    return MASK.format(model=model, kind=kind, setting=setting, source=source)


def control_path(model: str = "{model}", kind: str = "{kind}", setting: str = "{setting}",
                 source: str = "{source}", draw: int | str = "{draw}") -> str:
    """The file (or pattern) of a mask's matched random control, draw ``draw``."""
    return CONTROL.format(model=model, kind=kind, setting=setting, source=source, draw=draw)
