"""One way to hook a model: ``hooked(points)`` registers every hook and removes every one
on exit, also when the forward pass raises (in the spirit of TransformerLens' hook points,
on a plain transformers model). Caching, patching, planting and attribution all go
through it, so no hook outlives the code that needed it.

A hook point is (module or parameter, where, function):

- ``"input"``: ``fn(module, args)`` before the module runs (a forward pre-hook);
- ``"output"``: ``fn(module, args, output)`` after it (a forward hook);
- ``"grad"``: ``fn(param)`` once the parameter's gradient is accumulated.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterable, Iterator

REGISTER = {"input": "register_forward_pre_hook", "output": "register_forward_hook",
            "grad": "register_post_accumulate_grad_hook"}

HookPoint = tuple[Any, str, Callable[..., Any]]


@contextlib.contextmanager
def hooked(points: Iterable[HookPoint]) -> Iterator[None]:
    """Register each hook point; on exit remove them all, in reverse order."""
    handles = []
    try:
        for target, where, fn in points:
            if where not in REGISTER:
                raise ValueError(f"not a hook point: {where!r} (one of {sorted(REGISTER)})")
            handles.append(getattr(target, REGISTER[where])(fn))
        yield
    finally:
        for handle in reversed(handles):
            handle.remove()
