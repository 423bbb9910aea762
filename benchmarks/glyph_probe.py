"""Quick probe of the Digit->MNIST setting (Jin & Rinard, arXiv:2005.14707): glyphs -> one mixer ->
model:small-cnn -> accuracy on dataset:mnist's 5,000 real digits, in one process, one arm, one seed.

It produced the exploration table of docs/recipes.md (`context-agnostic-mnist-biregular`, formerly `context-agnostic-mnist`, "Screened with benchmarks/glyph_probe.py"):
the same components as the recipe (generator:glyphs, mixer:cut-paste / mixer:biregular,
attacker:masked-pgd with the mixer's context mask), AdamW with cosine decay to 0, batch 128, one
torch thread; it differs from `dreamset run` only in applying weight decay 5e-4 to every parameter
(the trainer exempts biases) and in having no store, report or intervals. Use it to screen
settings quickly; claims come from `dreamset run context-agnostic-mnist-biregular`.

    nice -n 10 python benchmarks/glyph_probe.py --epochs 5 --tag baseline
    nice -n 10 python benchmarks/glyph_probe.py --gen '{"font": "DejaVu Sans", "font_size": 0.7, "stroke": 0}' --count 10

    python benchmarks/glyph_probe.py --table   # the markdown table of the log (docs/recipes.md)

    # look before training: the first batch as a grid + mean pixel on the glyph vs its context
    python benchmarks/glyph_probe.py --mixer biregular --mopts '{"backgrounds": "procedural", "background_max": 0.4, "object_degree": 1}' --look --grid /tmp/batch.png
    # watch an arm learn: loss/accuracy on its own (attacked) training stream and on 1,000 test digits every 8 steps
    nice -n 10 python benchmarks/glyph_probe.py --mixer biregular --mopts '{"backgrounds": "procedural", "background_max": 0.4, "object_degree": 1}' --eps 0.03 --trace 8

Prints one JSON line (accuracy %, per-class %, top confusions, steps, seconds) and appends it to --log.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

import dreamset.registry as R
import harness
from dreamset.contracts.data import TensorImageSet


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--gen", default='{"font": "DejaVu Sans", "font_size": 0.7, "jitter_offset": 0, "jitter_scale": 0, "jitter_stroke": 0, "jitter_rotation": 0}')
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--mixer", default="cut-paste")
    p.add_argument("--mopts", default='{"backgrounds": "plain", "repeats": 200}')
    p.add_argument("--model", default='{}')
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--bs", type=int, default=128)
    p.add_argument("--eps", type=float, default=0)
    p.add_argument("--psteps", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="")
    p.add_argument("--log", default="runs/glyph_probe.jsonl", help="append the result line here")
    p.add_argument("--cache", default="runs/glyph_probe_cache", help="folder caching generated glyphs per options")
    p.add_argument("--trace", type=int, default=0, help="every N steps print the loss and accuracy on the training stream (clean and attacked) and on 1,000 test digits")
    p.add_argument("--grid", default="", help="save the first training batch (after the attack) as a PNG grid here")
    p.add_argument("--look", action="store_true", help="no training: save --grid (default runs/glyph_probe_batch.png) of the first batch and print the mean pixel on the glyph vs its context")
    p.add_argument("--table", action="store_true", help="print the markdown table of --log and exit (no training)")
    return p


def print_table(log: str) -> None:
    """The markdown table of the result lines in ``log``."""
    print("| setting | steps | accuracy % | per class 0–9 % | top confusions (true→predicted: count) | wall s |")
    print("|---|---|---|---|---|---|")
    for line in open(log):
        r = json.loads(line)
        print(f"| {r['tag']} | {r['steps']} | **{r['acc']}** | {' '.join(map(str, r['percls']))} | "
              f"{', '.join(r.get('top') or []) or '–'} | {r['secs']} |")


def glyphs(a) -> TensorImageSet:
    """The generated glyphs of ``--gen``/``--count`` (cached in ``--cache`` per options)."""
    gen = R.create("generator:glyphs", **json.loads(a.gen))
    names = [str(d) for d in range(10)]
    labels = torch.arange(a.count) % 10
    seeds = [0 if i < 10 else i for i in range(a.count)]
    os.makedirs(a.cache, exist_ok=True)
    key = a.cache + "/" + hashlib.md5((a.gen + str(a.count)).encode()).hexdigest() + ".pt"
    if os.path.exists(key):
        imgs, labs = torch.load(key)
    else:
        batch = gen.generate(labels, seeds, names)
        imgs, labs = batch.images, batch.labels
        torch.save((imgs, labs), key)
    return TensorImageSet(imgs, labs, names)


def look(a, mixer, syn) -> None:
    """Save the first batch as a grid; print the mean pixel on the glyph vs its context."""
    from torchvision.utils import save_image

    x, y, m = next(iter(mixer.batches(None, syn, a.bs, 0, a.seed)))
    save_image(x[:64], a.grid or "runs/glyph_probe_batch.png", nrow=8, pad_value=0.5)
    print(json.dumps(dict(mopts=json.loads(a.mopts), glyph_mean=round(x[m < 0.5].mean().item(), 3),
                          context_mean=round(x[m >= 0.5].mean().item(), 3), grid=a.grid or "runs/glyph_probe_batch.png")))


def train(a, mixer, syn, model, att, xt, yt):
    """AdamW with cosine decay to 0 over ``--epochs``; the last loss and the number of steps."""
    spe = mixer.steps_per_epoch(None, syn, a.bs)
    total = spe * a.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=5e-4)
    step = 0
    for ep in range(a.epochs):
        model.train()
        for x, y, m in mixer.batches(None, syn, a.bs, ep, a.seed):
            for g in opt.param_groups:
                g["lr"] = a.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            xc = x
            if att is not None:
                x = att.attack(model, x, y, mask=m)
            if a.grid and step == 0:
                from torchvision.utils import save_image
                save_image(x[:64], a.grid, nrow=8, pad_value=0.5)
            out = model(x)
            loss = F.cross_entropy(out, y)
            if a.trace and (step % a.trace == 0 or step == total - 1):
                with torch.no_grad():
                    model.eval()
                    clean = (model(xc).argmax(1) == y).float().mean().item()
                    test_acc = (model(xt[::5]).argmax(1) == yt[::5]).float().mean().item()
                    model.train()
                print(json.dumps(dict(step=step, lr=round(opt.param_groups[0]["lr"], 5), loss=round(loss.item(), 3),
                                      stream_acc=round((out.argmax(1) == y).float().mean().item() * 100, 1),
                                      stream_clean_acc=round(clean * 100, 1), test_acc=round(test_acc * 100, 1))), flush=True)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    return loss, total


def evaluate(model, xt, yt) -> dict:
    """Accuracy, per-class accuracy (%) and the six most frequent confusions on the test digits."""
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(xt[i:i + 1000]).argmax(1) for i in range(0, len(xt), 1000)])
    acc = (pred == yt).float().mean().item()
    percls = [round(((pred == yt) & (yt == c)).sum().item() / (yt == c).sum().item() * 100) for c in range(10)]
    conf = torch.zeros(10, 10, dtype=torch.long)
    for t_, p_ in zip(yt.tolist(), pred.tolist()):
        conf[t_, p_] += 1
    top = sorted([(conf[i, j].item(), f"{i}->{j}") for i in range(10) for j in range(10) if i != j], reverse=True)[:6]
    return dict(top=[f"{n}:{c}" for c, n in top], acc=round(acc * 100, 1), percls=percls)


def main() -> None:
    torch.set_num_threads(1)
    a = build_parser().parse_args()
    if a.table:
        print_table(a.log)
        return
    torch.manual_seed(a.seed)
    test = R.create("dataset:mnist", train_size=0).load("test")
    xt, yt = test.get(range(len(test)))
    syn = glyphs(a)
    mixer = R.create("mixer:" + a.mixer, **json.loads(a.mopts))
    model = R.create("model:small-cnn", **json.loads(a.model)).build((1, 28, 28), 10)
    att = R.create("attacker:masked-pgd", region="given", eps=a.eps, steps=a.psteps) if a.eps else None
    if a.look:
        look(a, mixer, syn)
        return
    with harness.Stopwatch() as took:
        loss, total = train(a, mixer, syn, model, att, xt, yt)
        scores = evaluate(model, xt, yt)
    res = dict(top=scores["top"], tag=a.tag, acc=scores["acc"], steps=total, secs=round(took.seconds), loss=round(loss.item(), 3),
               percls=scores["percls"], argv=sys.argv[1:])
    harness.log_result(a.log, res)


if __name__ == "__main__":
    main()
