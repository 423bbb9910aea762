"""``generator:glyphs`` — class names rendered as font glyphs: one synthetic image per class.

Paper: Charles Jin and Martin Rinard, "Learning From Context-Agnostic Synthetic Data"
(arXiv:2005.14707, 2020; NeurIPS 2021 as "Towards Context-Agnostic Learning Using Synthetic Data"):
a classifier is trained from a single synthetic image per class — for Digit→MNIST, the digit drawn in
a font — composited onto contexts (see ``mixer:biregular``). This generator draws each class name
(``"0"``..``"9"`` or any short text) with

* ``font: null`` — the font Pillow ships (``ImageFont.load_default(size=...)``, a scalable FreeType
  font in Pillow ≥ 10.1);
* ``font: PATH`` — any TrueType/OpenType file;
* ``font: FAMILY`` — a family (or fontconfig pattern such as ``"DejaVu Sans:bold"``) resolved by
  ``matplotlib.font_manager``; matplotlib ships DejaVu Sans / Serif / Sans Mono (+ Condensed, Bold,
  …), STIX and the Computer Modern ``cm*`` fonts, so these work offline everywhere;
* ``font: [A, B, ...]`` — several fonts: seed 0 draws with the first, any other seed picks one of
  them (seeded). One image per class means one font: the paper-faithful recipes give one.

Seed 0 gives the canonical glyph (centred, no jitter); other seeds add a small seeded jitter of
offset, scale, stroke width and rotation so several seeds give variants of the same class. Glyphs
are drawn ``supersample`` times larger and box-filtered down, so edges are anti-aliased.

**Augmentation of the rendering** (all off by default; seed 0 is never augmented): for seed ≠ 0 the
rendered canvas is transformed before it is box-filtered down — ``thickness`` (stroke thickening or
thinning, uniform in ±t of the font size: Pillow's ``MaxFilter``/``MinFilter``), ``shear`` (slant,
uniform in ±degrees) and ``aspect`` (width × U(1 − a, 1 + a)) as one Pillow affine map about the
centre, and ``elastic_alpha``/``elastic_sigma`` (Simard et al.'s elastic deformation, 2003: the
displacement field of torchvision's ``v2.ElasticTransform``, drawn at the output size from a
generator seeded by the image's seed, applied with ``v2.functional.elastic``; σ must stay below a
quarter of the image size). With the render jitter at 0, every image of a class is then a transform
of one rendering: one synthetic image per class, seen through many augmentations (the
``context-agnostic-mnist`` recipe stores 200 per class).

Output: ``float32 B×C×H×W`` in [0,1]; by default a white glyph (``foreground`` = 1) on a black
background (``background`` = 0), so thresholding an image at the midpoint gives the glyph's mask.
``(C, H, W)`` follow the real data seen by ``fit`` unless ``channels``/``image_size`` are set
(without real data: 1×28×28). ``font_size`` is the glyph's ink height as a fraction of the image
height (MNIST digits are about 20 of 28 pixels: 0.7). Image ``i`` depends only on
``(labels[i], seeds[i], options)``.

Example (the ten digits at 28×28 in DejaVu Sans)::

    generator = dreamset.registry.create("generator:glyphs", font="DejaVu Sans", image_size=28, font_size=0.7)
    batch = generator.generate(torch.arange(10), [0] * 10, [str(d) for d in range(10)])  # 10×1×28×28
    augmented = dreamset.registry.create("generator:glyphs", font="DejaVu Sans", font_size=0.7, stroke=0,
                                         jitter_offset=0, jitter_scale=0, jitter_stroke=0, jitter_rotation=0,
                                         thickness=0.03, shear=20, aspect=0.25, elastic_alpha=30)
    variants = augmented.generate(torch.tensor([7] * 4), [1, 2, 3, 4], [str(d) for d in range(10)])  # four 7s
"""
from __future__ import annotations

from pathlib import Path

from pydantic import Field

from dreamset import BadInputError, Options, register
from dreamset.contracts.interfaces import GeneratedBatch, Generator
from dreamset.contracts.lazy import lazy_module

torch = lazy_module("torch")

FALLBACK_SHAPE = (1, 28, 28)


class GlyphsOptions(Options):
    image_size: int | None = Field(default=None, ge=4, le=1024,
                                   description="square output size; None = the real data's H×W")
    channels: int | None = Field(default=None, ge=1, le=4, description="output channels; None = the real data's")
    font: str | list[str] | None = Field(
        default=None, description="a .ttf/.otf path or a font family (matplotlib's font manager), or a list of them; "
                                  "None = Pillow's default font")
    font_size: float = Field(default=1.0, gt=0, le=2,
                             description="ink height of the glyph as a fraction of the image height")
    stroke: float = Field(default=0.03, ge=0, le=0.5,
                          description="outline width of the canonical glyph, as a fraction of the font size")
    foreground: float = Field(default=1.0, ge=0, le=1, description="glyph intensity")
    background: float = Field(default=0.0, ge=0, le=1, description="background intensity")
    jitter_offset: float = Field(default=0.08, ge=0, le=0.5, description="max shift, fraction of the image size (seed != 0)")
    jitter_scale: float = Field(default=0.15, ge=0, lt=1, description="max relative size change (seed != 0)")
    jitter_stroke: float = Field(default=0.06, ge=0, le=0.5, description="max extra stroke, fraction of the font size (seed != 0)")
    jitter_rotation: float = Field(default=8.0, ge=0, le=180, description="max rotation in degrees (seed != 0)")
    supersample: int = Field(default=4, ge=1, le=16, description="render this many times larger, then box-filter down")
    # augmentation of the rendered glyph (seed != 0), applied to the image after rendering: every
    # variant is a transform of the same rendering, so one font still means one image per class
    thickness: float = Field(default=0.0, ge=0, le=0.3,
                             description="max stroke thickening/thinning (morphological dilation/erosion), fraction of "
                                         "the font size, uniform in [-t, t] (seed != 0)")
    shear: float = Field(default=0.0, ge=0, le=60, description="max horizontal shear (slant) in degrees (seed != 0)")
    aspect: float = Field(default=0.0, ge=0, lt=1, description="max relative change of the glyph's width (seed != 0)")
    elastic_alpha: float = Field(default=0.0, ge=0, le=200,
                                 description="elastic deformation strength in output pixels (torchvision's "
                                             "ElasticTransform alpha; 0 = off; seed != 0)")
    elastic_sigma: float = Field(default=4.0, gt=0, le=50, description="smoothness of the elastic displacement field, in output pixels")


def resolve_font(spec: str) -> str:
    """The font file for ``spec``: an existing file, else a family or fontconfig pattern looked up in
    matplotlib's font manager (no fallback: an unknown family is a one-line error naming it)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return str(path)
    if path.suffix.lower() in {".ttf", ".otf", ".ttc"} or "/" in spec or "\\" in spec:
        raise BadInputError(f"font: {spec} is not a file; give the path of a .ttf/.otf font, a font family, or leave it unset")
    import difflib

    from matplotlib import font_manager

    try:
        return font_manager.findfont(font_manager.FontProperties(spec), fallback_to_default=False)
    except ValueError:
        families = sorted({f.name for f in font_manager.fontManager.ttflist})
        close = difflib.get_close_matches(spec, families, n=3) or families[:5]
        raise BadInputError(f"font: no font file or family {spec!r} (matplotlib knows e.g. {', '.join(close)})") from None


@register(description="class names rendered as font glyphs, one image per class (Jin & Rinard, arXiv:2005.14707)")
class GlyphsGenerator(Generator):
    """Class names rendered with a font; seed 0 = canonical glyph (Jin & Rinard, arXiv:2005.14707)."""

    key = "generator:glyphs"

    Options = GlyphsOptions

    def __init__(self, options: GlyphsOptions | None = None) -> None:
        super().__init__(options)
        self._real_shape: tuple[int, int, int] | None = None
        self._fonts: dict[tuple[int, int], object] = {}
        font = self.options.font
        if isinstance(font, list) and not font:
            raise BadInputError("font: an empty list; give one font (a path or a family) or leave it unset")
        #: font files, one per entry of ``font``; ``[None]`` = Pillow's default font
        self.font_files: list[str | None] = [None] if font is None else [
            resolve_font(f) for f in ([font] if isinstance(font, str) else font)]

    def fit(self, real, workdir: Path, services=None) -> None:
        """Nothing to train: only remember the real data's shape."""
        self._real_shape = tuple(int(v) for v in real.image_shape)

    def image_shape(self, real=None) -> tuple[int, int, int]:
        base = tuple(int(v) for v in real.image_shape) if real is not None else (self._real_shape or FALLBACK_SHAPE)
        c = self.options.channels if self.options.channels is not None else base[0]
        if self.options.image_size is not None:
            return (c, self.options.image_size, self.options.image_size)
        return (c, base[1], base[2])

    # -- rendering -----------------------------------------------------------------------------
    def _font(self, index: int, pixels: int):
        from PIL import ImageFont

        pixels = max(1, int(pixels))
        if (index, pixels) not in self._fonts:
            path = self.font_files[index]
            if path is None:
                self._fonts[index, pixels] = ImageFont.load_default(size=pixels)
            else:
                try:
                    self._fonts[index, pixels] = ImageFont.truetype(path, size=pixels)
                except OSError as exc:
                    raise BadInputError(f"font: cannot read {path} as a font ({exc})") from None
        return self._fonts[index, pixels]

    def font_index(self, seed: int) -> int:
        """Which of the fonts draws seed ``seed``: the first for seed 0, a seeded choice otherwise."""
        if seed == 0 or len(self.font_files) == 1:
            return 0
        import numpy as np

        return int(np.random.default_rng([seed, 1]).integers(len(self.font_files)))

    def _jitter(self, seed: int) -> tuple[float, float, float, float, float]:
        """``(dx, dy, scale, extra_stroke, degrees)``; all neutral for seed 0."""
        if seed == 0:
            return 0.0, 0.0, 1.0, 0.0, 0.0
        import numpy as np

        o = self.options
        u = np.random.default_rng(seed).uniform(-1.0, 1.0, size=5)
        return (float(u[0]) * o.jitter_offset, float(u[1]) * o.jitter_offset, 1.0 + float(u[2]) * o.jitter_scale,
                (float(u[3]) + 1.0) / 2.0 * o.jitter_stroke, float(u[4]) * o.jitter_rotation)

    def render(self, text: str, seed: int, height: int, width: int):
        """Glyph coverage of ``text`` as a ``float32 H×W`` numpy array in [0,1]."""
        import numpy as np
        from PIL import Image, ImageDraw

        o = self.options
        ss = o.supersample
        canvas_w, canvas_h = width * ss, height * ss
        dx, dy, scale, extra_stroke, degrees = self._jitter(seed)
        font = self.font_index(seed)
        target = o.font_size * canvas_h * scale  # ink height of the glyph, in canvas pixels
        stroke = lambda px: int(round((o.stroke + extra_stroke) * px))  # noqa: E731
        probe = ImageDraw.Draw(Image.new("L", (1, 1)))

        def bbox(px):
            return probe.textbbox((0, 0), text, font=self._font(font, px), stroke_width=stroke(px))

        # size the font so the ink (not the em box) is `target` high, and at most 95% of the width
        pixels = float(canvas_h)
        for _ in range(2):  # ink size is nearly proportional to the font size: two passes suffice
            left, top, right, bottom = bbox(pixels)
            pixels *= min(target / max(1, bottom - top), 0.95 * canvas_w * max(1.0, scale) / max(1, right - left))
        left, top, right, bottom = bbox(pixels)
        image = Image.new("L", (canvas_w, canvas_h), 0)
        x = canvas_w / 2 + dx * canvas_w - (left + right) / 2
        y = canvas_h / 2 + dy * canvas_h - (top + bottom) / 2
        ImageDraw.Draw(image).text((x, y), text, fill=255, font=self._font(font, pixels),
                                   stroke_width=stroke(pixels), stroke_fill=255)
        if degrees:
            image = image.rotate(degrees, resample=Image.Resampling.BILINEAR)
        image = self._augment(image, seed, target)
        if ss > 1:
            image = image.resize((width, height), resample=Image.Resampling.BOX)
        return np.asarray(image, dtype=np.float32) / 255.0

    def augmentation(self, seed: int) -> tuple[float, float, float]:
        """``(thickness, shear, aspect)`` of seed ``seed``: thickness as a fraction of the font size
        (negative = thinner), shear in degrees, aspect as a width factor; neutral for seed 0. Drawn from
        their own stream, so turning them on leaves the render jitter of every seed unchanged."""
        o = self.options
        if seed == 0 or not (o.thickness or o.shear or o.aspect):
            return 0.0, 0.0, 1.0
        import numpy as np

        u = np.random.default_rng([seed, 2]).uniform(-1.0, 1.0, size=3)
        return float(u[0]) * o.thickness, float(u[1]) * o.shear, 1.0 + float(u[2]) * o.aspect

    def _augment(self, image, seed: int, ink: float):
        """The rendered canvas (PIL ``L``, ``supersample`` times the output size) after the seeded
        thickness change (Pillow's Max/MinFilter), shear and width change (one Pillow affine map about
        the centre) and elastic deformation (``torchvision.transforms.v2.functional.elastic``, with
        the displacement field of ``v2.ElasticTransform`` drawn at the output size from a generator
        seeded by ``seed``)."""
        import math

        from PIL import Image, ImageFilter

        o = self.options
        thickness, shear, aspect = self.augmentation(seed)
        radius = int(round(abs(thickness) * ink))
        if radius:
            size = 2 * radius + 1
            image = image.filter(ImageFilter.MaxFilter(size) if thickness > 0 else ImageFilter.MinFilter(size))
        if shear or aspect != 1.0:
            w, h = image.size
            cx, cy, slant = w / 2, h / 2, math.tan(math.radians(shear))
            # output -> input: x_in = ((x - cx) + slant·(y - cy)) / aspect + cx (top leans right for shear > 0)
            data = (1 / aspect, slant / aspect, cx - (cx + slant * cy) / aspect, 0.0, 1.0, 0.0)
            image = image.transform(image.size, Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR)
        if seed != 0 and o.elastic_alpha:
            import numpy as np
            from torchvision.transforms import v2

            ss = o.supersample
            w, h = image.size[0] // ss, image.size[1] // ss
            kernel = int(8 * o.elastic_sigma + 1) | 1  # torchvision's kernel size for sigma (odd)
            if kernel // 2 >= min(w, h):  # the blur's reflect padding must be smaller than the image
                raise BadInputError(f"elastic_sigma: {o.elastic_sigma} is too smooth for {w}×{h} images "
                                    f"(must be below a quarter of the image size)")
            tensor = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)[None]
            # the displacement field of torchvision's v2.ElasticTransform (uniform noise in [-1, 1]
            # smoothed by a Gaussian of sigma, times alpha / size, in normalised coordinates), drawn at the
            # output size from a generator seeded by `seed` and upsampled to the canvas
            generator = torch.Generator().manual_seed(seed)
            noise = torch.rand(2, 1, h, w, generator=generator) * 2 - 1
            noise = v2.functional.gaussian_blur(noise, [kernel, kernel], [o.elastic_sigma, o.elastic_sigma])
            field = torch.stack([noise[0, 0] * o.elastic_alpha / w, noise[1, 0] * o.elastic_alpha / h], -1)[None]
            if ss > 1:
                field = torch.nn.functional.interpolate(field.permute(0, 3, 1, 2), size=tensor.shape[-2:], mode="bilinear",
                                                        align_corners=False).permute(0, 2, 3, 1)
            tensor = v2.functional.elastic(tensor, field, interpolation=v2.InterpolationMode.BILINEAR, fill=[0.0])
            image = Image.fromarray((tensor[0].clamp(0, 1).numpy() * 255).round().astype(np.uint8), mode="L")
        return image

    def generate(self, labels, seeds, class_names) -> GeneratedBatch:
        import numpy as np

        labels = torch.as_tensor(labels, dtype=torch.int64)
        seeds = [int(s) for s in seeds]
        if len(seeds) != len(labels):
            raise BadInputError(f"generator:glyphs: {len(labels)} labels but {len(seeds)} seeds")
        c, h, w = self.image_shape()
        o = self.options
        masks = np.zeros((len(seeds), h, w), dtype=np.float32)
        for i, (label, seed) in enumerate(zip(labels.tolist(), seeds)):
            masks[i] = self.render(str(class_names[label]), seed, h, w)
        images = torch.from_numpy(o.background + (o.foreground - o.background) * masks)
        images = images[:, None].expand(-1, c, -1, -1).contiguous().clamp_(0.0, 1.0)
        provenance = [
            {
                "generator": self.key or "generator:glyphs",
                "label": label,
                "class_name": str(class_names[label]),
                "prompt": str(class_names[label]),
                "seed": seed,
                "steps": None,
                "guidance": None,
                "scheduler": None,
                "width": w,
                "height": h,
            }
            for label, seed in zip(labels.tolist(), seeds)
        ]
        return GeneratedBatch(images=images, labels=labels.clone(), provenance=provenance)
