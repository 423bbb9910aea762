"""dreamset.orchestration.distributed without torchrun (rank 0 of 1), the store's bounded wait for other ranks,
and the background bank's memory cap."""
from __future__ import annotations

import pytest
import torch

from dreamset.contracts.errors import BadInputError
from dreamset.orchestration import distributed
from dreamset.store.generation import generate_to_store
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
    # a lost peer is not the user's data: exit code 1 (DistributedError), not 2 (docs/reliability.md, "Exit codes")
    with pytest.raises(distributed.DistributedError, match=r"rank 1 did not write shard\(s\) \[1, 3, 5, 7, 9\] within 0 s"):
        generate_to_store(ToyGenerator(), tmp_path / "s", rank=0, world_size=2, **PLAN)


def test_bad_timeout_setting_is_named(monkeypatch):
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "soon")
    with pytest.raises(BadInputError, match="DREAMSET_DIST_TIMEOUT"):
        distributed.timeout()


def test_background_bank_beyond_the_cap_is_refused_with_one_line():
    from dreamset.plugins.mixers.backgrounds import background_bank

    with pytest.raises(BadInputError, match=r"n_backgrounds: 1,000,000 backgrounds of \(3, 32, 32\) need 11.4 GiB"):
        background_bank("procedural", 1_000_000, (3, 32, 32), 0)


def test_torchrun_sigterm_raises_once_and_never_into_an_error_already_in_flight(monkeypatch):
    """The SIGTERM torchrun sends after a peer died may land while the broken collective's error is
    unwinding (through the prefetch generator's ``finally``): raising there printed a second
    traceback ("Exception ignored in ..."), so the handler leaves that error to be reported."""
    monkeypatch.setattr(distributed._state, "stop", __import__("threading").Event())
    with pytest.raises(distributed.DistributedError, match="torchrun's SIGTERM"):
        distributed._on_sigterm(15, None)
    try:
        raise RuntimeError("Connection closed by peer")
    except RuntimeError:
        assert distributed._on_sigterm(15, None) is None
    assert distributed._state.stop.is_set()


def test_row_groups_refuse_a_world_size_that_does_not_divide_them():
    from dreamset.training.row_groups import check_groups

    check_groups(4, 2)
    with pytest.raises(BadInputError, match="train.batch_groups: 3 row groups cannot be split evenly across 2 processes"):
        check_groups(3, 2)


def test_row_groups_gradient_is_the_whole_batch_mean_even_for_uneven_groups():
    import torch.nn.functional as F

    from dreamset.training.row_groups import grouped_backward

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    x, y = torch.rand(7, 1, 3, 4), torch.tensor([0, 1, 2, 0, 1, 2, 0])
    F.cross_entropy(model(x), y).backward()
    whole = [p.grad.clone() for p in model.parameters()]
    seen = []
    grouped_backward(model, x, y, None, groups=3, rank=0, world=1, seed=0, epoch=0, step=0, device=torch.device("cpu"),
                     loss_of=lambda xg, yg, mg, first: (seen.append((len(yg), first)), F.cross_entropy(model(xg), yg))[1])
    assert seen == [(3, True), (2, False), (2, False)]  # rows 0::3, 1::3, 2::3
    for got, want in zip((p.grad for p in model.parameters()), whole):
        assert torch.allclose(got, want, atol=1e-6)
