"""``attacker:autoattack`` — AutoAttack (Croce & Hein, 2020, "Reliable evaluation of adversarial
robustness with an ensemble of diverse parameter-free attacks", arXiv:2003.01690), L∞ or L2, backed by torchattacks
``AutoAttack``.

An ensemble run one after the other on the points still classified correctly, keeping for every
image the first perturbation that fools the model: ``standard`` = APGD-CE, APGD-T (targeted DLR),
FAB-T, Square (5000 queries); ``plus`` adds restarts, APGD-DLR and untargeted FAB; ``rand`` = APGD-CE
and APGD-DLR with 20-sample expectation over transformation, for randomised models. The robust
accuracy it leaves is the standard reported number (RobustBench). The number of classes is read from
the model's output (one forward of one image under ``no_grad``), never asked for. The targeted DLR
loss needs 4 classes and the DLR loss 3 (Croce & Hein's own code only warns, then fails): with 3
classes APGD-T is replaced by untargeted APGD-DLR (or dropped when the ensemble already has one), with
2 classes every DLR attack is dropped (:meth:`AutoAttackAttacker.ensemble`). Random starts are a deterministic function of
``seed``; torch's global RNG state is saved and restored around the attack. Input/output: ``float32
N×C×H×W`` in [0,1], ``eps`` in pixel units of [0,1]; ``‖x_adv − x‖ ≤ eps``.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from dreamset import register
from dreamset.toolkit.attacking import NormBallOptions, TorchattacksAttacker, check_attack_inputs, preserved_modes
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.lazy import lazy_module

torch = lazy_module("torch")


class AutoAttackOptions(NormBallOptions):
    version: Literal["standard", "plus", "rand"] = Field(default="standard", description="which ensemble")
    seed: int = Field(default=0, ge=0, description="seed of every attack's random start")


@register(description="AutoAttack ensemble, L-inf or L2 (Croce & Hein 2020)")
class AutoAttackAttacker(TorchattacksAttacker):
    """The AutoAttack ensemble; the class count comes from the model's logits."""

    key = "attacker:autoattack"

    Options = AutoAttackOptions
    #: the conformance suite runs the real standard ensemble, only on its tiny model and batch
    conformance_options = {"version": "standard"}

    _num_classes: int = 10  # set by attack() before make() is called

    def ensemble(self, model, num_classes: int):
        """The torchattacks ensemble for ``num_classes`` classes. Fewer than 4 classes: the targeted
        DLR loss (APGD-T) is undefined: with 3 classes APGD-T becomes untargeted APGD-DLR (dropped if
        the ensemble already has APGD-DLR); with 2 classes, where DLR itself is undefined, APGD-T and
        APGD-DLR are dropped. torchattacks' ``AutoAttack`` is built as is and only its member list
        (the private ``_autoattack``) is replaced in those cases."""
        import torchattacks

        o = self.options
        attack = torchattacks.AutoAttack(model, norm="Linf" if o.norm == "linf" else "L2", eps=o.eps,
                                         version=o.version, n_classes=num_classes, seed=o.seed)
        if num_classes >= 4:
            return attack
        members = attack._autoattack.attacks
        has_dlr = any(getattr(m, "loss", None) == "dlr" and not isinstance(m, torchattacks.APGDT) for m in members)
        kept = []
        for member in members:
            if isinstance(member, torchattacks.APGDT):
                if num_classes == 3 and not has_dlr:
                    kept.append(torchattacks.APGD(model, norm=member.norm, eps=o.eps, steps=member.steps,
                                                  n_restarts=member.n_restarts, seed=o.seed, loss="dlr"))
            elif getattr(member, "loss", None) != "dlr" or num_classes == 3:
                kept.append(member)
        attack._autoattack = kept[0] if len(kept) == 1 else torchattacks.MultiAttack(kept)
        return attack

    def make(self, model):
        return self.ensemble(model, self._num_classes)

    def attack(self, model, x, y):
        check_attack_inputs(x, y)
        if x.shape[0] == 0:
            return x.clone()
        with preserved_modes(model), torch.no_grad():
            model.eval()
            num_classes = model(x[:1]).shape[1]
        if num_classes < 2:
            raise BadInputError(f"attacker:autoattack: the model must output at least 2 logits, got {num_classes}")
        self._num_classes = num_classes
        return super().attack(model, x, y)  # the base restores .grad (FAB calls backward()) and the RNG
