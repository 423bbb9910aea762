"""``generator:glyphs``: the generator contract, canonical glyphs, variants, and a real-digits oracle."""
from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
import torch

from dreamset import BadInputError
from dreamset.conformance.generators import check_generator
from dreamset.contracts.data import TensorImageSet
from dreamset.plugins.generators.glyphs import GlyphsGenerator, GlyphsOptions

DIGITS = [str(i) for i in range(10)]


def make(**options) -> GlyphsGenerator:
    generator = GlyphsGenerator(GlyphsOptions(**options))
    generator.key = "generator:glyphs"
    return generator


def test_contract_and_shape_follow_real_data(tmp_path):
    real = TensorImageSet(torch.zeros(4, 3, 12, 10), torch.tensor([0, 1, 2, 0]), ["cat", "dog", "7"])
    generator = make()
    generator.fit(real, tmp_path)
    assert generator.image_shape(real) == (3, 12, 10)
    assert generator.image_shape() == (3, 12, 10)
    check_generator(generator, real.class_names, (3, 12, 10), n=5)
    out = generator.generate(torch.tensor([2]), [0], real.class_names)
    assert torch.equal(out.images[0, 0], out.images[0, 1]) and torch.equal(out.images[0, 1], out.images[0, 2])
    assert out.provenance[0]["prompt"] == "7"


def test_options_override_shape_and_fallback():
    assert make().image_shape() == (1, 28, 28)
    assert make(image_size=16, channels=3).image_shape() == (3, 16, 16)
    out = make(image_size=16, channels=3).generate(torch.tensor([1, 0]), [0, 5], DIGITS)
    assert out.images.shape == (2, 3, 16, 16) and out.images.dtype == torch.float32


def test_intensities_and_mask():
    """Default: white glyph on black; a threshold at 0.5 gives the mask. Custom intensities are
    an affine map of the same coverage, so the masks agree."""
    default = make(image_size=24).generate(torch.tensor([8]), [0], DIGITS).images[0, 0]
    assert float(default.min()) == 0.0 and float(default.max()) == 1.0
    assert float(default[0, 0]) == 0.0  # corner = background
    mask = default > 0.5
    assert 0.05 < mask.float().mean() < 0.6
    custom = make(image_size=24, foreground=0.2, background=0.9).generate(torch.tensor([8]), [0], DIGITS).images[0, 0]
    torch.testing.assert_close(custom, 0.9 + (0.2 - 0.9) * default)
    assert torch.equal(custom < 0.55, mask)


def test_glyphs_differ_per_class_and_seed_variants():
    generator = make(image_size=16)
    canonical = generator.generate(torch.arange(10), [0] * 10, DIGITS).images
    flat = canonical.flatten(1)
    distances = torch.cdist(flat, flat)
    assert (distances + torch.eye(10) * 1e9).min() > 0.5  # every pair of classes differs clearly
    # seed 0 is the canonical glyph: centred (centre of mass near the middle)
    ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    for image in canonical[:, 0]:
        cy, cx = float((image * ys).sum() / image.sum()), float((image * xs).sum() / image.sum())
        assert abs(cy - 7.5) < 2.0 and abs(cx - 7.5) < 2.0
    variants = generator.generate(torch.full((4,), 3), [0, 1, 2, 3], DIGITS).images
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.equal(variants[i], variants[j])
    # the jitter is small: most variants are still nearest (in pixels) to their own canonical glyph
    labels = torch.arange(10).repeat_interleave(10)
    variants = generator.generate(labels, list(range(1, 11)) * 10, DIGITS).images
    nearest = torch.cdist(variants.flatten(1), flat).argmin(1)
    assert (nearest == labels).float().mean() >= 0.6  # measured 0.79 on seeds 1..20 (chance 0.1)


def test_zero_jitter_makes_seeds_irrelevant():
    generator = make(image_size=12, jitter_offset=0, jitter_scale=0, jitter_stroke=0, jitter_rotation=0)
    out = generator.generate(torch.tensor([5, 5]), [0, 99], DIGITS).images
    assert torch.equal(out[0], out[1])


def test_long_names_fit_the_image():
    out = make(image_size=32).generate(torch.tensor([0]), [0], ["a-rather-long-class-name"]).images[0, 0]
    assert out.sum() > 0
    assert out[:, 0].max() < 0.5 and out[:, -1].max() < 0.5  # nothing cut off at the borders


def test_bad_options():
    for bad in ({"image_size": 0}, {"font_size": 0}, {"foreground": 1.5}, {"jitter_scale": -0.1}, {"color": 1}):
        with pytest.raises(ValidationError):
            GlyphsOptions(**bad)
    with pytest.raises(BadInputError, match="font: /no/such/font.ttf is not a file"):
        GlyphsGenerator(GlyphsOptions(font="/no/such/font.ttf"))
    with pytest.raises(BadInputError, match=r"font: no font file or family 'DejaVu Sanz' .*DejaVu Sans"):
        GlyphsGenerator(GlyphsOptions(font="DejaVu Sanz"))
    with pytest.raises(BadInputError, match="font: an empty list"):
        GlyphsGenerator(GlyphsOptions(font=[]))


def test_named_fonts_at_28_are_deterministic_and_match_their_file():
    """A family name resolves through matplotlib's font manager to the file it ships; the same
    family twice renders bit-identical 28×28 glyphs; another family renders different ones."""
    from matplotlib import font_manager

    sans = make(font="DejaVu Sans", image_size=28, font_size=0.7)
    assert sans.font_files[0].endswith("DejaVuSans.ttf")
    first = sans.generate(torch.arange(10), [0] * 10, DIGITS).images
    assert first.shape == (10, 1, 28, 28) and first.dtype == torch.float32
    assert float(first.min()) == 0.0 and float(first.max()) == 1.0
    again = make(font="DejaVu Sans", image_size=28, font_size=0.7).generate(torch.arange(10), [0] * 10, DIGITS).images
    assert torch.equal(first, again)
    path = font_manager.findfont(font_manager.FontProperties("DejaVu Sans"), fallback_to_default=False)
    by_path = make(font=path, image_size=28, font_size=0.7).generate(torch.arange(10), [0] * 10, DIGITS).images
    assert torch.equal(first, by_path)
    serif = make(font="DejaVu Serif", image_size=28, font_size=0.7).generate(torch.arange(10), [0] * 10, DIGITS).images
    assert all(not torch.equal(a, b) for a, b in zip(first, serif))
    # font_size is the ink height: 0.7 of 28 pixels is about MNIST's 20-pixel digit box
    rows = (first[:, 0] > 0.5).any(dim=2).sum(dim=1)
    assert int(rows.min()) >= 17 and int(rows.max()) <= 22


def test_several_fonts_seed_zero_uses_the_first():
    both = make(font=["DejaVu Serif", "DejaVu Sans Mono"], image_size=28, jitter_offset=0, jitter_scale=0,
                jitter_stroke=0, jitter_rotation=0)
    serif = make(font="DejaVu Serif", image_size=28).generate(torch.tensor([4]), [0], DIGITS).images
    assert torch.equal(both.generate(torch.tensor([4]), [0], DIGITS).images, serif)
    used = {both.font_index(seed) for seed in range(1, 40)}
    assert used == {0, 1}
    images = both.generate(torch.full((39,), 4), list(range(1, 40)), DIGITS).images
    assert len({image.numpy().tobytes() for image in images}) == 2  # no jitter: one glyph per font


def test_canonical_dejavu_digits_recognised_by_a_real_mnist_classifier():
    """Oracle at the paper's resolution: a ridge classifier on 1,000 real MNIST digits (28×28,
    dataset:mnist) reads the canonical DejaVu Sans glyphs (font_size 0.7). Measured 6/10 (chance
    1/10); we assert >= 5 to allow for FreeType differences."""
    from sklearn.linear_model import RidgeClassifier

    import dreamset.registry as registry

    train = registry.create("dataset:mnist", train_size=1000).load("train")
    x, y = train.get(range(len(train)))
    classifier = RidgeClassifier(alpha=10).fit(x.flatten(1).numpy(), y.numpy())
    glyphs = make(font="DejaVu Sans", image_size=28, font_size=0.7).generate(torch.arange(10), [0] * 10, DIGITS).images
    predicted = classifier.predict(glyphs.flatten(1).numpy())
    assert (predicted == np.arange(10)).sum() >= 5, predicted


def test_canonical_digits_recognised_by_a_real_digits_classifier():
    """Oracle: logistic regression trained on 500 real sklearn digits (8×8, ink bright). With
    Pillow 13's default font the canonical glyphs score 6/10 (chance: 1/10); we assert >= 5 to
    allow for small rendering differences across FreeType versions."""
    sklearn = pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    assert sklearn
    digits = load_digits()
    x = digits.images.reshape(len(digits.images), -1) / 16.0
    train, _ = train_test_split(np.arange(len(x)), train_size=500, stratify=digits.target, random_state=0)
    classifier = LogisticRegression(max_iter=2000).fit(x[train], digits.target[train])
    glyphs = make(image_size=8, channels=1).generate(torch.arange(10), [0] * 10, DIGITS).images
    predicted = classifier.predict(glyphs.reshape(10, -1).numpy())
    assert (predicted == np.arange(10)).sum() >= 5, predicted


AUGMENT = dict(font="DejaVu Sans", image_size=28, font_size=0.7, stroke=0.0, jitter_offset=0, jitter_scale=0,
               jitter_stroke=0, jitter_rotation=0)


def test_augmentation_is_off_for_seed_zero_and_by_default():
    plain = make(**AUGMENT).generate(torch.arange(10), [0] * 10, DIGITS).images
    augmented = make(**AUGMENT, thickness=0.03, shear=20, aspect=0.25, elastic_alpha=30).generate(
        torch.arange(10), [0] * 10, DIGITS).images
    assert torch.equal(plain, augmented)  # seed 0 is the canonical rendering
    # without augmentation options, zero jitter makes every seed the canonical rendering
    assert torch.equal(make(**AUGMENT).generate(torch.arange(10), list(range(1, 11)), DIGITS).images, plain)


@pytest.mark.parametrize("option", [dict(thickness=0.03), dict(shear=20), dict(aspect=0.25), dict(elastic_alpha=30)])
def test_each_augmentation_is_seeded_and_deterministic(option):
    generator = make(**AUGMENT, **option)
    seeds = [3, 4, 5, 3]
    first = generator.generate(torch.tensor([8, 8, 8, 8]), seeds, DIGITS).images
    again = make(**AUGMENT, **option).generate(torch.tensor([8, 8, 8, 8]), seeds, DIGITS).images
    canonical = make(**AUGMENT).generate(torch.tensor([8]), [0], DIGITS).images
    assert torch.equal(first, again)  # a fresh generator draws the same variants
    assert torch.equal(first[0], first[3])  # image i depends on its seed only
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[0], canonical[0])
    assert first.min() >= 0 and first.max() <= 1


def test_augmentations_do_what_they_say():
    canonical = make(**AUGMENT).generate(torch.tensor([1]), [0], DIGITS).images[0, 0]
    ink = float(canonical.sum())
    g = make(**AUGMENT, thickness=0.03)
    thick, thin = [], []
    for seed in range(1, 40):
        t = g.augmentation(seed)[0]
        image = g.generate(torch.tensor([1]), [seed], DIGITS).images[0, 0]
        if abs(t) * 0.7 * 28 * 4 >= 0.5:  # a radius of at least one canvas pixel
            (thick if t > 0 else thin).append(float(image.sum()))
    assert thick and thin and min(thick) > ink > max(thin)  # dilation adds ink, erosion removes it
    # shear slants: positive shear moves the top of the "1" right and its bottom left
    g = make(**AUGMENT, shear=30)
    seed = next(s for s in range(1, 100) if g.augmentation(s)[1] > 20)
    image = g.generate(torch.tensor([1]), [seed], DIGITS).images[0, 0]
    cols = torch.arange(28, dtype=torch.float32)
    centre = lambda rows: float((image[rows] * cols).sum() / image[rows].sum())  # noqa: E731
    assert centre(slice(4, 10)) > centre(slice(18, 24)) + 2
    # the width factor narrows or widens the "0"
    g = make(**AUGMENT, aspect=0.3)
    widths = {}
    for seed in range(1, 40):
        image = g.generate(torch.tensor([0]), [seed], DIGITS).images[0, 0]
        columns = torch.nonzero(image.amax(0) > 0.5).flatten()
        widths[g.augmentation(seed)[2]] = int(columns.max() - columns.min() + 1)
    narrow, wide = widths[min(widths)], widths[max(widths)]
    assert narrow < wide


def test_elastic_sigma_too_smooth_for_the_image_is_bad_input():
    with pytest.raises(BadInputError, match="elastic_sigma"):
        make(**{**AUGMENT, "image_size": 8}, elastic_alpha=10, elastic_sigma=4).generate(torch.tensor([1]), [1], DIGITS)
    with pytest.raises(ValidationError):
        make(thickness=-0.1)
