"""Generated evaluation sets (``evaluate.sets``, :mod:`dreamset.orchestration.generated_sets`): a held-out seed range
of the recipe's generator (or another generator) is evaluated per arm like a shifted set, with its
provenance; a set overlapping the training images' seeds is refused at validation, in one line."""
from __future__ import annotations

import json

import pytest

import dreamset.registry as registry
from dreamset.cli import main
from dreamset.contracts.errors import BadInputError
from dreamset.orchestration.generated_sets import seed_range
from dreamset.orchestration.recipe import validate_recipe


def _recipe(sets, generate=None):
    glyphs = {"key": "glyphs", "options": {"font_size": 0.8}}
    return {"data": {"dataset": {"key": "digits", "options": {"train_size": 60}}},
            "generate": generate if generate is not None else {"generator": glyphs, "count": 50, "seed": 0},
            "arms": {"real": {}, "real+synthetic": {"synthetic": True}},
            "train": {"model": "small-cnn"}, "evaluate": {"sets": sets}}


def test_seed_ranges_follow_the_store_numbering():
    assert seed_range(0, 5) == (0, 4) and seed_range(2, 10) == (2 * 10**9, 2 * 10**9 + 9)


def test_overlap_with_the_training_seeds_is_refused_in_one_line():
    with pytest.raises(BadInputError) as info:
        validate_recipe(_recipe([{"name": "held", "seed": 0, "count": 10}]), registry.get_registry())
    message = str(info.value)
    assert "\n" not in message and message.startswith("evaluate.sets.0.seed")
    assert "overlaps the training images' seeds 0..49" in message and "held-out seed" in message
    # the same generator named explicitly (short or full key) is the same generator
    same = {"key": "generator:glyphs", "options": {"font_size": 0.8}}
    with pytest.raises(BadInputError, match="overlaps"):
        validate_recipe(_recipe([{"name": "held", "generator": same, "seed": 0, "count": 10}]))


def test_held_out_seeds_other_generators_and_imported_stores_are_accepted():
    for sets in ([{"name": "held", "seed": 1, "count": 10}],
                 [{"name": "other", "generator": {"key": "glyphs", "options": {"font_size": 0.5}}, "seed": 0, "count": 10}]):
        validate_recipe(_recipe(sets), registry.get_registry())
    imported = {"generator": "glyphs", "count": 50, "source": "elsewhere.npz"}
    validate_recipe(_recipe([{"name": "held", "seed": 0, "count": 10}], generate=imported))


def test_bad_sets_are_refused_naming_the_field():
    with pytest.raises(BadInputError, match=r"evaluate\.sets\.1\.name: 'a' is used twice"):
        validate_recipe(_recipe([{"name": "a", "seed": 1, "count": 5}, {"name": "a", "seed": 2, "count": 5}]))
    no_generate = _recipe([{"name": "a", "seed": 1, "count": 5}])
    no_generate.pop("generate")
    no_generate["arms"] = {"real": {}}
    with pytest.raises(BadInputError, match=r"evaluate\.sets\.0\.generator: the recipe has no generate stage"):
        validate_recipe(no_generate)
    with pytest.raises(BadInputError, match=r"evaluate\.sets\.0\.generator\.key"):
        validate_recipe(_recipe([{"name": "a", "generator": "no-such-generator", "seed": 1, "count": 5}]),
                        registry.get_registry())


def test_a_run_reports_accuracy_on_generated_sets_per_arm(tmp_path):
    recipe = tmp_path / "r.json"
    data = _recipe([{"name": "held", "seed": 1, "count": 20},
                    {"name": "thin", "generator": {"key": "glyphs", "options": {"font_size": 0.6}}, "seed": 0,
                     "count": 10, "robust": True}])
    data["evaluate"].update(attackers=[{"key": "fgsm", "options": {"eps": 0.1}}], robust_samples=20)
    data.update(seeds=[0, 1], train={"model": "small-cnn", "epochs": 1, "batch_size": 32}, report={"html": False})
    recipe.write_text(json.dumps(data))
    out = tmp_path / "run"
    assert main(["run", str(recipe), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    for arm in report["arms"].values():
        assert set(arm["generated"]) == {"held", "thin"} and set(arm["generated_robust"]) == {"thin"}
        assert all(0 <= v <= 1 for v in arm["generated"].values())
        assert arm["generated_robust"]["thin"] <= arm["generated"]["thin"]
        for seed_result in arm["per_seed"].values():
            assert set(seed_result["generated"]) == {"held", "thin"}
    assert "generated_mean" in report["comparisons"]["real+synthetic"]
    held = report["evaluation"]["generated_sets"]["held"]
    assert held["same_generator_as_training"] and held["image_seeds"] == [10**9, 10**9 + 19]
    assert held["training_image_seeds"] == [0, 49] and sum(held["per_class"].values()) == 20
    thin = report["evaluation"]["generated_sets"]["thin"]
    assert thin["generator"] == {"key": "generator:glyphs", "options": thin["generator"]["options"]}
    assert thin["generator"]["options"]["font_size"] == 0.6 and not thin["same_generator_as_training"]
    store = json.loads((out / "eval-sets" / "held" / "store" / "store.json").read_text())
    assert store["count"] == 20 and store["seed"] == 1
    from dreamset.store.reader import SyntheticStore

    held_store, train_store = SyntheticStore.open(out / "eval-sets" / "held" / "store"), SyntheticStore.open(out / "synthetic")
    held_seeds = {held_store.provenance(i)["seed"] for i in range(20)}
    assert held_seeds == set(range(10**9, 10**9 + 20))
    assert not held_seeds & {train_store.provenance(i)["seed"] for i in range(50)}
    assert report["augmentation"]["real"] == {"real": [], "synthetic": [], "batch": []}


def test_claims_block_lists_accuracy_per_shifted_and_generated_set():
    from dreamset.report.claims import claims_markdown, per_set_rows

    arm = {"clean_accuracy": 0.9, "clean_accuracy_std": 0.01, "shifted": {"blur@2": 0.5}, "shifted_std": {"blur@2": 0.02},
           "generated": {"held": 0.75}, "generated_std": {"held": 0.05}, "training": {"optimizer_steps": 10}}
    report = {"arms": {"real": arm, "real+augmix": {**arm, "generated": {"held": 0.8}}}, "seeds": [0, 1],
              "comparisons": {"real+augmix": {"baseline": "real", "generated_mean": {
                  "mean": 0.05, "low": 0.01, "high": 0.09, "verdict": "gain", "n": 2}}}}
    header, rows = per_set_rows(report)
    assert header == ["arm", "test", "blur@2", "generated: held"]
    assert rows[0] == ["real", "90.0 ± 1.0", "50.0 ± 2.0", "75.0 ± 5.0"] and rows[1][3] == "80.0 ± 5.0"
    block = claims_markdown(report, source="Generated by a test.", per_set=True)
    assert "| arm | test | blur@2 | generated: held |" in block
    assert "**+5.0 [+1.0, +9.0]** gain" in block
    assert "generated: held" not in claims_markdown(report, source="Generated by a test.")
