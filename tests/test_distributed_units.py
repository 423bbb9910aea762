"""dreamset.distributed without torchrun (rank 0 of 1), the store's bounded wait for other ranks,
and the background bank's memory cap."""
from __future__ import annotations

import pytest
import torch

from dreamset import distributed
from dreamset.errors import BadInputError, StoreError
from dreamset.store import generate_to_store
from test_store import PLAN, ToyGenerator


def test_one_process_is_rank_0_of_1_and_does_all_the_work():
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    calls = []
    flags = distributed.split_rows(7, 3, lambda c, lo, hi: (calls.append(c), torch.arange(lo, hi) % 2 == 0)[1])
    assert calls == [0, 1, 2] and flags.tolist() == [True, False, True, False, True, False, True]
    assert distributed.main_first("a stage", lambda: 5) == 5 and distributed.broadcast_int(9) == 9
    with distributed.session("cpu") as device:
        assert device == torch.device("cpu") and not distributed.initialized()


def test_a_rank_waiting_without_a_process_group_gives_up_naming_the_missing_rank(tmp_path, monkeypatch):
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "0.5")
    with pytest.raises(StoreError, match=r"rank 1 did not write shard\(s\) \[1, 3, 5, 7, 9\] within 0 s"):
        generate_to_store(ToyGenerator(), tmp_path / "s", rank=0, world_size=2, **PLAN)


def test_bad_timeout_setting_is_named(monkeypatch):
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "soon")
    with pytest.raises(BadInputError, match="DREAMSET_DIST_TIMEOUT"):
        distributed.timeout()


def test_background_bank_beyond_the_cap_is_refused_with_one_line():
    from dreamset.plugins.mixers.backgrounds import background_bank

    with pytest.raises(BadInputError, match=r"n_backgrounds: 1,000,000 backgrounds of \(3, 32, 32\) need 11.4 GiB"):
        background_bank("procedural", 1_000_000, (3, 32, 32), 0)
