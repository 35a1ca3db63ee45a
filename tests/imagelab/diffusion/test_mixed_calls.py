"""The rule that splits a mixed-style group into pipeline calls (imagelab/diffusion/mixed_calls.py)."""

from imagelab.diffusion.mixed_calls import MixedCall, plan_mixed_calls

MONET = (("monet", 1.0),)
MONET_HALF = (("monet", 0.5),)
INK = (("ink", 1.0),)
INK_LCM = (("ink", 1.0), ("lcm", 1.0))


def test_jobs_wanting_the_same_adapters_share_one_fused_call():
    assert plan_mixed_calls({0: MONET, 2: MONET}, loaded=set()) == [MixedCall([0, 2], per_row=False)]
    assert plan_mixed_calls({0: (), 1: ()}, loaded={"monet"}) == [MixedCall([0, 1], per_row=False)]


def test_different_adapters_all_loaded_share_one_call_row_by_row():
    wanted = {0: MONET, 1: (), 2: MONET_HALF, 3: INK_LCM}
    assert plan_mixed_calls(wanted, loaded={"monet", "ink", "lcm"}) == [MixedCall([0, 1, 2, 3], per_row=True)]


def test_an_adapter_not_loaded_splits_the_group_per_adapter_set_in_first_seen_order():
    wanted = {0: INK, 1: MONET, 3: INK, 4: MONET_HALF}
    assert plan_mixed_calls(wanted, loaded={"monet"}) == [
        MixedCall([0, 3], per_row=False),
        MixedCall([1], per_row=False),
        MixedCall([4], per_row=False),
    ]
