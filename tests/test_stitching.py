"""Tests of findiffusion.stitching: the chunk plan (the sampling loop and its states are checked through
DiffusionModel.sample in tests/test_model.py and tests/test_calibration.py)."""

from __future__ import annotations

import pytest

from findiffusion.stitching import chunk_plan


@pytest.mark.parametrize(("L", "C"), [(32, 8), (128, 64), (64, 63)])
def test_chunk_plan_covers_the_path(L, C):
    for has_context in (False, True):
        for length in (1, L - C, L, L + 1, 3 * L + 7):
            plan = chunk_plan(L, C, length, has_context)
            assert sum(new for _, new in plan) == length
            assert all(new >= 1 for _, new in plan)
            first_obs = C if has_context else 0
            assert [obs for obs, _ in plan] == [first_obs] + [C] * (len(plan) - 1)
            assert all(obs + new <= L for obs, new in plan)
            assert all(obs + new == L for obs, new in plan[:-1])  # every window but the last is used whole
