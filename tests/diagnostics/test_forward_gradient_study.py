"""GrAPE Fig. 2's study: forward gradients point better with more JVPs and worse with depth."""

import pytest

from bpfree.diagnostics.forward_gradient_study import forward_gradient_cosines

SMALL = {"width": 32, "input_size": 20, "repeats": 6}


def test_more_jvps_and_shallower_nets_point_closer_to_the_true_gradient():
    one = forward_gradient_cosines("fg-activity", depths=(1, 4), batch_sizes=(8,), **SMALL)
    many = forward_gradient_cosines(
        "fg-activity", depths=(1, 4), batch_sizes=(8,), perturbations=16, **SMALL
    )
    assert all(many[d][8] > 2 * one[d][8] for d in (1, 4))  # averaging K estimates: ~√K
    assert many[1][8] > many[4][8]
    assert all(
        -1.0 <= c <= 1.0 for table in (one, many) for row in table.values() for c in row.values()
    )


def test_bad_study_arguments_are_named():
    with pytest.raises(ValueError, match="rule must be one of fg-activity, fg-weight"):
        forward_gradient_cosines("dfa", depths=(1,), batch_sizes=(1,))
    with pytest.raises(ValueError, match="at least one depth"):
        forward_gradient_cosines("fg-weight", depths=(), batch_sizes=(1,))
