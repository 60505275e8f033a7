"""The one hook context manager (issue 25): every hook is gone after the block, also when
the forward pass raises, and a misspelt hook point is refused."""

import pytest
import torch

from prunebias.model.hooks import hooked


def test_hooks_run_inside_and_are_removed_after_an_error():
    lin = torch.nn.Linear(3, 2)
    seen = []
    with pytest.raises(RuntimeError, match="stop"):
        with hooked([(lin, "input", lambda m, args: seen.append("in")),
                     (lin, "output", lambda m, args, out: seen.append("out"))]):
            lin(torch.ones(1, 3))
            raise RuntimeError("stop")
    assert seen == ["in", "out"]
    lin(torch.ones(1, 3))
    assert seen == ["in", "out"] and not lin._forward_hooks and not lin._forward_pre_hooks


def test_grad_hooks_see_the_accumulated_gradient_and_go():
    w = torch.nn.Parameter(torch.ones(2))
    got = []
    with hooked([(w, "grad", lambda p: got.append(p.grad.clone()))]):
        (w * torch.tensor([2.0, 3.0])).sum().backward()
    assert torch.equal(got[0], torch.tensor([2.0, 3.0]))
    (w.sum()).backward()
    assert len(got) == 1


def test_an_unknown_hook_point_is_refused_and_nothing_stays():
    lin = torch.nn.Linear(3, 2)
    with pytest.raises(ValueError, match="not a hook point: 'pre'"):
        with hooked([(lin, "input", lambda m, a: None), (lin, "pre", lambda m, a: None)]):
            pass
    assert not lin._forward_pre_hooks
