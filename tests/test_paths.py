"""Mask paths are built in one place (issue 25): rule patterns and concrete files agree."""

from prunebias.workflow.paths import control_path, mask_path
from prunebias.report.side_effects import mask_file, mask_ids


def test_left_out_parts_stay_wildcards():
    assert mask_path() == "results/masks/{model}/{kind}/{setting}/{source}.npz"
    assert mask_path(kind="heads", setting="sum_k10") == "results/masks/{model}/heads/sum_k10/{source}.npz"
    assert control_path("m", "neurons", "b", "common@p", 1) == "results/masks/m/random_neurons/b/common@p/draw1.npz"


def test_side_effect_masks_resolve_to_the_same_files():
    ids = mask_ids(["neurons/black_b15_w15_global/hiring-lawyer"], controls=True)
    assert [mask_file(i, "m") for i in ids] == [
        "results/masks/m/neurons/black_b15_w15_global/hiring-lawyer.npz",
        "results/masks/m/random_neurons/black_b15_w15_global/hiring-lawyer/draw0.npz"]
