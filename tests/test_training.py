"""The trainer (dreamset.training.trainer.train_classifier) on a toy problem — 1×8×8 images where class ``c``
lights up one row (``dreamset.conformance.metrics``' blobs), 3 classes, ``model:small-cnn`` width 4:
standard / PGD-AT / TRADES / FGSM-RS learning and robustness, optimizers × schedules, the learning-rate
formulas, label smoothing, EMA, bit-identical resume after SIGKILL, and checkpoint loading refusing
malicious or damaged files."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import dreamset.registry as registry
import dreamset.training.trainer as training
from dreamset.conformance.metrics import toy_row_images as blobs
from dreamset.contracts.errors import BadInputError
from dreamset.files.checkpoints import load_checkpoint, load_torch_weights
from dreamset.orchestration.evaluation import accuracy
from dreamset.orchestration.recipe import TrainStage
from dreamset.training.objectives import objective_for

SCRIPT = Path(__file__).parent / "scripts" / "train_until_killed.py"
EPS = 0.2  # L∞ radius: a row lit by +0.6 survives it only if the classifier uses the whole row
SEED = 1


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add overhead (and noise on shared machines)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def toy():
    g = torch.Generator().manual_seed(SEED)
    return blobs(90, 3, 0.0, g), blobs(60, 3, 0.0, g)


def settings(**overrides) -> TrainStage:
    values = dict(model="small-cnn", epochs=10, batch_size=20, optimizer="adamw", lr=0.01, weight_decay=0.0,
                  mixed_precision=False)
    return TrainStage(**(values | overrides))


def train(tmp: Path, data, attacker=None, losses: list | None = None, monkeypatch=None, seed: int = SEED, **overrides):
    """Train a fresh small CNN (init from ``seed``); optionally record every training loss."""
    if losses is not None:
        original = training._loss

        def recording(*args, **kwargs):
            loss = original(*args, **kwargs)
            losses.append(float(loss.detach()))
            return loss

        monkeypatch.setattr(training, "_loss", recording)
    torch.manual_seed(seed)
    model = registry.create("model:small-cnn", width=4).build((1, 8, 8), 3)
    trained = training.train_classifier(None, model, mixer=registry.create("mixer:ratio", real_fraction=1.0),
                                        real=data, synthetic=None, attacker=attacker, settings=settings(**overrides),
                                        seed=seed, checkpoint_dir=tmp)
    return trained, model


def robust_accuracy(model, test) -> float:
    torch.manual_seed(123)
    return accuracy(model, test, attacker=registry.create("attacker:pgd", eps=EPS, steps=10))


@pytest.fixture(scope="module")
def standard(toy, tmp_path_factory):
    model, _ = train(tmp_path_factory.mktemp("standard"), toy[0])
    return model


# -- training modes -------------------------------------------------------------------------------

def test_standard_training_learns_the_toy_problem(toy, tmp_path, monkeypatch):
    losses: list[float] = []
    model, _ = train(tmp_path, toy[0], losses=losses, monkeypatch=monkeypatch)
    assert accuracy(model, toy[1]) >= 0.95
    per_epoch = len(losses) // 10
    assert len(losses) == 10 * math.ceil(90 / 20)
    assert sum(losses[-per_epoch:]) / per_epoch < 0.25 * sum(losses[:per_epoch]) / per_epoch


def test_pgd_adversarial_training_raises_robust_accuracy(toy, standard, tmp_path):
    train_set, test = toy
    robust_standard = robust_accuracy(standard, test)
    model, _ = train(tmp_path, train_set, attacker=registry.create("attacker:pgd", eps=EPS, steps=3))
    robust_at = robust_accuracy(model, test)
    assert accuracy(model, test) >= 0.9
    assert robust_standard <= 0.5, "the toy problem must not be robust without adversarial training"
    assert robust_at >= robust_standard + 0.4, (robust_standard, robust_at)


@pytest.mark.parametrize("key,options", [("attacker:trades", {"eps": EPS, "alpha": EPS / 2, "steps": 3}),
                                         ("attacker:fgsm-rs", {"eps": EPS})])
def test_trades_and_fgsm_rs_training_learn_robustly(toy, standard, tmp_path, key, options):
    train_set, test = toy
    model, _ = train(tmp_path, train_set, attacker=registry.create(key, **options))
    assert accuracy(model, test) >= 0.9
    assert robust_accuracy(model, test) >= robust_accuracy(standard, test) + 0.3


def test_loss_of_each_mode_follows_its_formula(toy):
    x, y = toy[0].get(range(12))
    torch.manual_seed(0)
    model = registry.create("model:small-cnn", width=4).build((1, 8, 8), 3)
    s = settings(label_smoothing=0.1, trades_beta=3.0)
    standard = objective_for(None, s)
    assert torch.allclose(training._loss(model, x, y, standard, s), F.cross_entropy(model(x), y, label_smoothing=0.1))
    for key, options in (("attacker:pgd", {"eps": EPS, "steps": 2}), ("attacker:trades", {"eps": EPS, "steps": 2})):
        attacker = registry.create(key, **options)
        objective = objective_for(attacker, s)  # the legacy choice: trades -> objective:trades(β=3)
        assert objective.key == ("objective:trades" if key == "attacker:trades" else "objective:pgd-at")
        torch.manual_seed(5)
        loss = training._loss(model, x, y, objective, s, attacker)
        torch.manual_seed(5)  # the same random start
        x_adv = attacker.attack(model, x, y)
        if key == "attacker:trades":  # CE(f(x), y) + β·KL(f(x) ‖ f(x_adv))
            p = F.softmax(model(x), dim=1)
            kl = (p * (p.log() - F.log_softmax(model(x_adv), dim=1))).sum(1).mean()
            expected = F.cross_entropy(model(x), y, label_smoothing=0.1) + 3.0 * kl
        else:  # PGD-AT: CE on the adversarial examples only
            expected = F.cross_entropy(model(x_adv), y, label_smoothing=0.1)
        assert torch.allclose(loss, expected, atol=1e-6), key


# -- optimizers, schedules, learning rate ---------------------------------------------------------

@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
@pytest.mark.parametrize("schedule", ["cosine", "onecycle", "constant"])
def test_optimizer_and_schedule_combinations(toy, tmp_path, monkeypatch, optimizer, schedule):
    losses: list[float] = []
    rates: list[tuple[int, int, float]] = []
    original = training.learning_rate

    def recording(s, step, total):
        rates.append((step, total, original(s, step, total)))
        return rates[-1][2]

    monkeypatch.setattr(training, "learning_rate", recording)
    lr = 0.05 if optimizer == "sgd" else 0.01
    model, _ = train(tmp_path, toy[0], losses=losses, monkeypatch=monkeypatch, epochs=4, optimizer=optimizer,
                     schedule=schedule, lr=lr)
    steps = 4 * math.ceil(90 / 20)
    assert len(losses) == steps and all(math.isfinite(v) for v in losses)
    called = [(s, t) for s, t, _ in rates]  # once per parameter group, before every optimizer step
    assert called == sorted(called) and sorted(set(called)) == [(s, steps) for s in range(steps)]
    assert sum(losses[-5:]) < sum(losses[:5])
    assert all(torch.isfinite(p).all() for p in model.parameters())
    tensors, meta = load_checkpoint(tmp_path / "final.safetensors")
    state_names = {k.split(".", 2)[2] for k in tensors if k.startswith("optim.")}
    assert state_names == ({"momentum_buffer"} if optimizer == "sgd" else {"exp_avg", "exp_avg_sq", "step"})
    assert {k: meta[k] for k in ("epoch", "seed")} == {"epoch": 3, "seed": SEED}
    assert meta["cost"]["optimizer_steps"] == steps and meta["cost"]["images_seen"] == 4 * 90


def test_learning_rate_formulas_at_start_middle_end():
    base, total = 0.2, 1000
    constant, cosine, onecycle = (settings(lr=base, schedule=s) for s in ("constant", "cosine", "onecycle"))
    lr = training.learning_rate
    assert [lr(constant, s, total) for s in (0, 500, 1000)] == [base, base, base]
    assert lr(cosine, 0, total) == pytest.approx(base)
    assert lr(cosine, 250, total) == pytest.approx(base * (1 + math.cos(math.pi / 4)) / 2)
    assert lr(cosine, 500, total) == pytest.approx(base / 2)
    assert lr(cosine, 1000, total) == pytest.approx(0, abs=1e-12)
    assert lr(onecycle, 0, total) == pytest.approx(0.04 * base)  # linear warm-up over the first 30%
    assert lr(onecycle, 150, total) == pytest.approx(base * (0.04 + 0.96 * 0.5))
    assert lr(onecycle, 300, total) == pytest.approx(base)  # the peak
    assert lr(onecycle, 650, total) == pytest.approx(base / 2)  # half-way through the cosine annealing
    assert lr(onecycle, 1000, total) == pytest.approx(0, abs=1e-12)
    rates = [lr(onecycle, s, total) for s in range(total + 1)]
    assert max(rates) == pytest.approx(base) and rates.index(max(rates)) == 300


# -- label smoothing and EMA ----------------------------------------------------------------------

def test_label_smoothing_caps_the_confidence(toy, standard, tmp_path):
    smoothed, _ = train(tmp_path, toy[0], label_smoothing=0.3)
    x, _ = toy[1].get(range(len(toy[1])))
    with torch.no_grad():
        confident = F.softmax(standard(x), 1).max(1).values.mean()
        capped = F.softmax(smoothed(x), 1).max(1).values.mean()
    assert accuracy(smoothed, toy[1]) >= 0.95
    assert capped < confident
    assert capped < 1 - 0.3 + 0.3 / 3 + 0.05  # the smoothed target's top probability is 0.8


def test_ema_is_the_moving_average_of_the_weights(toy, tmp_path):
    one_batch = toy[0].subset(range(20))
    torch.manual_seed(SEED)
    initial = registry.create("model:small-cnn", width=4).build((1, 8, 8), 3).state_dict()
    ema, raw = train(tmp_path / "one", one_batch, epochs=1, batch_size=20, ema_decay=0.75)
    assert ema is not raw and not ema.training
    for key, value in raw.state_dict().items():
        if key in ("mean", "std"):
            continue
        assert not torch.equal(value, initial[key]), f"{key} was not trained"
        assert torch.allclose(ema.state_dict()[key], 0.75 * initial[key] + 0.25 * value, atol=1e-7), key


def test_ema_weights_differ_from_raw_and_are_checkpointed(toy, tmp_path):
    ema, raw = train(tmp_path, toy[0], ema_decay=0.9)
    differing = [k for k, v in ema.state_dict().items() if not torch.equal(v, raw.state_dict()[k])]
    assert {"head.weight", "head.bias"} <= set(differing)
    assert not any(p.requires_grad for p in ema.parameters())
    assert accuracy(ema, toy[1]) >= 0.95
    tensors, _ = load_checkpoint(tmp_path / "final.safetensors")
    for key, value in ema.state_dict().items():
        assert torch.equal(tensors[f"ema.{key}"], value) and torch.equal(tensors[f"model.{key}"], raw.state_dict()[key])
    again, _ = train(tmp_path, toy[0], ema_decay=0.9, seed=SEED)  # finished: loaded, not retrained
    assert all(torch.equal(v, ema.state_dict()[k]) for k, v in again.state_dict().items())


# -- resume after SIGKILL -------------------------------------------------------------------------

def _script(out: Path, *extra: str, **popen) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(SCRIPT), str(out), *extra], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def test_resume_after_sigkill_is_bit_identical(tmp_path):
    epochs = "6"
    reference = _script(tmp_path / "uninterrupted", "--epochs", epochs)
    killed_dir = tmp_path / "killed"
    victim = _script(killed_dir, "--epochs", epochs, "--batch-delay", "0.3")
    last = killed_dir / "ckpt" / "last.safetensors"
    deadline = time.monotonic() + 180
    while not last.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert last.exists(), f"no epoch checkpoint appeared: {victim.communicate()[1][-2000:]}"
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    assert not (killed_dir / "ckpt" / "final.safetensors").exists()
    killed_after = load_checkpoint(last)[1]["epoch"]
    assert 0 <= killed_after < int(epochs) - 1
    resumed = _script(killed_dir, "--epochs", epochs)
    _, log = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, log[-2000:]
    assert f"resuming after epoch {killed_after}" in log
    _, log = reference.communicate(timeout=300)
    assert reference.returncode == 0, log[-2000:]
    assert "resuming" not in log
    expected = load_checkpoint(tmp_path / "uninterrupted" / "weights.safetensors")[0]
    got = load_checkpoint(killed_dir / "weights.safetensors")[0]
    assert sorted(got) == sorted(expected) and any(k.startswith("ema.") for k in got)
    for key, value in expected.items():
        assert torch.equal(got[key], value), f"{key} differs after resume"


# -- a compositing mixer's context mask reaches a masked attacker (Jin & Rinard's refinement) ----------

class _TopHalfContext:
    """A mixer wrapper adding a context mask: the top half of every image may be perturbed."""

    def __init__(self, mixer):
        self.mixer = mixer

    def steps_per_epoch(self, real, synthetic, batch_size):
        return self.mixer.steps_per_epoch(real, synthetic, batch_size)

    def batches(self, real, synthetic, batch_size, epoch, seed):
        for x, y in self.mixer.batches(real, synthetic, batch_size, epoch, seed):
            mask = torch.zeros(len(x), 1, 8, 8)
            mask[:, :, :4] = 1
            yield x, y, mask


def test_the_context_mask_reaches_a_masked_attacker_and_nothing_else(toy, tmp_path):
    attacker = registry.create("attacker:masked-pgd", eps=0.3, steps=2, region="given")  # refuses to run without a mask
    seen = []
    original = attacker.attack

    def recording(model, x, y, mask=None):
        x_adv = original(model, x, y, mask=mask)
        seen.append((x_adv - x).abs().amax(dim=(0, 1, 3)))  # largest change per row
        return x_adv

    attacker.attack = recording
    torch.manual_seed(SEED)
    model = registry.create("model:small-cnn", width=4).build((1, 8, 8), 3)
    training.train_classifier(None, model, mixer=_TopHalfContext(registry.create("mixer:ratio", real_fraction=1.0)),
                              real=toy[0], synthetic=None, attacker=attacker, settings=settings(epochs=1),
                              seed=SEED, checkpoint_dir=tmp_path)
    assert len(seen) == math.ceil(90 / 20)
    for change in seen:
        assert float(change[:4].max()) > 0 and float(change[4:].max()) == 0  # only the context rows moved
    # an attacker without a mask parameter is called as before
    pgd = registry.create("attacker:pgd", eps=0.1, steps=1)
    assert not pgd.takes_mask and attacker.takes_mask  # declared by the class, not sniffed
    training.train_classifier(None, registry.create("model:small-cnn", width=4).build((1, 8, 8), 3),
                              mixer=_TopHalfContext(registry.create("mixer:ratio", real_fraction=1.0)), real=toy[0],
                              synthetic=None, attacker=pgd, settings=settings(epochs=1), seed=SEED,
                              checkpoint_dir=tmp_path / "pgd")


# -- checkpoint loading refuses malicious or damaged files ----------------------------------------

class _CreatesMarker:
    """Unpickling this calls ``open(marker, "w")``: a stand-in for arbitrary code execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_pickle_is_refused_without_running(toy, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "weights.pth"
    torch.save({"head.weight": torch.zeros(3, 16), "payload": _CreatesMarker(marker)}, evil)
    with pytest.raises(BadInputError, match=r"weights\.pth: refused to load"):
        load_torch_weights(evil)
    assert not marker.exists()
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "last.safetensors").write_bytes(evil.read_bytes())  # a pickle posing as a checkpoint
    with pytest.raises(BadInputError, match=r"last\.safetensors: not a valid dreamset safetensors checkpoint"):
        train(ckpt, toy[0], epochs=1)
    assert not marker.exists()
    torch.load(evil, weights_only=False)["payload"].close()  # control: a plain unpickle does run the payload
    assert marker.exists()


@pytest.mark.parametrize("keep", [0.5, 0.01, 4])
def test_truncated_checkpoint_gives_an_error_naming_the_file(toy, tmp_path, keep):
    train(tmp_path / "run", toy[0], epochs=1)
    final = tmp_path / "run" / "final.safetensors"
    data = final.read_bytes()
    load_checkpoint(final)  # intact: loads
    final.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])
    with pytest.raises(BadInputError, match=rf"{final}: not a valid dreamset safetensors checkpoint"):
        load_checkpoint(final)
    with pytest.raises(BadInputError, match=r"final\.safetensors"):
        load_torch_weights(final)
    with pytest.raises(BadInputError, match=rf"{final}: not a valid"):
        train(tmp_path / "run", toy[0], epochs=1)  # the trainer would reuse the finished checkpoint
