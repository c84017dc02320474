"""The embedded default data set: Earth-like scene patches generated from a seed.

Six land-cover classes drawn with random orientation, scale, colour and noise,
written as PNG files in class folders so that the real loading path runs on them.
Classes overlap in colour (forest and water share dark tones; soil, crops and urban
draw from one palette of browns, greens and greys), so texture and layout must be
learned; and most patches, like real ones, show a second land cover over a fifth to
nearly half of their area, so that neither the network nor the classical baseline is
always right: learnable in minutes, not trivial.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from earth_lib.data.folders import DATASET_FILE
from earth_lib.images import atomic_write_image
from earth_lib.io import atomic_write_text
from earth_lib.progress import progress_bar

CLASSES = ("water", "forest", "cropland", "urban", "bare_soil", "cloud")


def _noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Smooth random field scaled to [0, 1]."""
    f = gaussian_filter(rng.normal(size=(size, size)), sigma, mode="wrap")
    f -= f.min()
    return f / max(float(f.max()), 1e-9)


def _coords(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates rotated by a random angle (random scene orientation)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    t = rng.uniform(0, np.pi)
    return xx * np.cos(t) + yy * np.sin(t), -xx * np.sin(t) + yy * np.cos(t)


def _colour(rng: np.random.Generator, base, jitter: float = 0.06) -> np.ndarray:
    return np.clip(np.array(base, dtype=float) + rng.normal(0, jitter, 3), 0, 1)


# Colours shared by the land classes (soil, crops, urban), so that colour alone cannot
# tell them apart: their layout (blobs, stripes, blocks) has to be learned.
LAND_PALETTE = ((0.55, 0.42, 0.30), (0.35, 0.50, 0.18), (0.62, 0.56, 0.30), (0.45, 0.35, 0.22),
                (0.50, 0.50, 0.50), (0.40, 0.45, 0.30), (0.65, 0.45, 0.35))


def _land_colours(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    idx = rng.choice(len(LAND_PALETTE), n, replace=False)
    return [_colour(rng, LAND_PALETTE[i]) for i in idx]


def _dark(rng: np.random.Generator) -> np.ndarray:
    """A dark blue-green to olive tone shared by water and forest."""
    t = rng.uniform()
    return _colour(rng, (0.10 + 0.05 * t, 0.22 + 0.06 * t, 0.30 - 0.16 * t), 0.04)


def _water(rng, s):
    img = _dark(rng) * (0.9 + 0.2 * _noise(rng, s, s / 6))[..., None]
    if rng.random() < 0.5:  # a shore of land
        u, _ = _coords(rng, s)
        shore = u > np.quantile(u, rng.uniform(0.7, 0.95))
        img[shore] = _land_colours(rng, 1)[0]
    return img


def _forest(rng, s):
    crowns = _noise(rng, s, rng.uniform(1.2, 2.2) * s / 64)  # tree crowns of a few pixels
    return _dark(rng) * (0.6 + 0.8 * crowns)[..., None]


def _cropland(rng, s):
    u, v = _coords(rng, s)
    period = rng.uniform(s / 14, s / 5)
    palette = _land_colours(rng, 3)
    band = ((u // period).astype(int)) % len(palette)
    img = np.stack(palette)[band]
    edge = (v % rng.uniform(s / 3, s)) < 1.2  # a field boundary across the stripes
    img[edge] = palette[0] * 0.7
    return img


def _urban(rng, s):
    u, v = _coords(rng, s)
    block = rng.uniform(s / 9, s / 4)
    street = rng.uniform(1.0, 2.0) * s / 64 + 0.5
    palette = np.stack(_land_colours(rng, 3))
    bu, bv = np.floor(u / block).astype(int), np.floor(v / block).astype(int)
    idx = (bu * 7 + bv * 13 + int(rng.integers(3))) % 3
    img = palette[idx] * rng.uniform(0.85, 1.15, size=(1, 1, 3))
    streets = ((u % block) < street) | ((v % block) < street)
    img[streets] = _colour(rng, (0.30, 0.30, 0.32), 0.03)
    return img


def _bare_soil(rng, s):
    a, b = _land_colours(rng, 2)
    mix = _noise(rng, s, rng.uniform(s / 10, s / 5))[..., None]
    return a * (1 - mix) + b * mix


def _cloud(rng, s):
    ground = [_bare_soil, _forest, _cropland, _water, _urban][int(rng.integers(5))](rng, s)
    cover = np.clip((_noise(rng, s, rng.uniform(s / 10, s / 5)) - rng.uniform(0.3, 0.6)) * 3,
                    0, 1)[..., None]
    white = _colour(rng, (0.85, 0.86, 0.88), 0.05)
    return ground * (1 - cover) + white * cover


_DRAW: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "water": _water, "forest": _forest, "cropland": _cropland,
    "urban": _urban, "bare_soil": _bare_soil, "cloud": _cloud,
}


# Share of the patches that show a second land cover, and the range of area it covers
# (always less than the class's own, which stays the label).
MIXED_SHARE = 0.6
MIXED_COVER = (0.2, 0.45)


def _second_cover(img: np.ndarray, class_name: str, size: int, rng: np.random.Generator
                  ) -> np.ndarray:
    """Another land cover (never cloud) over a smooth region of a fifth to ~half the patch."""
    others = [c for c in _DRAW if c not in (class_name, "cloud")]
    other = others[int(rng.integers(len(others)))]
    field = _noise(rng, size, rng.uniform(size / 8, size / 4))
    cover = np.quantile(field, 1 - rng.uniform(*MIXED_COVER))
    mask = np.clip((field - cover) * 8 + 0.5, 0, 1)[..., None]  # a soft edge
    return img * (1 - mask) + _DRAW[other](rng, size) * mask


def make_scene(class_name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Draw one RGB scene of a class as uint8 (size, size, 3), with haze, light and noise."""
    img = _DRAW[class_name](rng, size)
    if rng.random() < MIXED_SHARE:
        img = _second_cover(img, class_name, size, rng)
    img = img * rng.uniform(0.75, 1.25) + rng.uniform(-0.06, 0.06)  # illumination
    haze = rng.uniform(0, 0.25)
    img = img * (1 - haze) + haze * np.array([0.6, 0.65, 0.7])
    img = img + rng.normal(0, rng.uniform(0.02, 0.06), img.shape)  # sensor noise
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def generate_synthetic_dataset(
    root: str | Path,
    images_per_class: int,
    image_size: int,
    n_classes: int,
    seed: int,
    progress: bool = True,
) -> dict[str, int]:
    """Write the embedded data set to ``root/<class>/<class>_<i>.png``; a no-op when present.

    Each image is drawn from its own generator seeded by (seed, class, index), so the
    set is identical on every machine and a partial run completes on the next call.
    """
    root = Path(root)
    settings = {"images_per_class": images_per_class, "image_size": image_size,
                "n_classes": n_classes, "seed": seed, "generator": "earth_lib.synthetic v4"}
    manifest = root / DATASET_FILE
    if manifest.is_file() and (made := json.loads(manifest.read_text())) != settings:
        changed = ", ".join(f"{k} {made.get(k)} (now {v})" for k, v in settings.items()
                            if made.get(k) != v)
        raise FileExistsError(
            f"{root} holds a synthetic set made with other settings ({changed}; "
            f"{manifest}); delete the folder (its processed copy is redone by itself) or "
            "choose another data.raw_dir."
        )
    classes = CLASSES[:n_classes]
    counts = {}
    todo = [(c, ci, i) for ci, c in enumerate(classes) for i in range(images_per_class)]
    for c, ci, i in progress_bar(todo, desc="synthetic images", disable=not progress,
                                 mininterval=2):
        path = root / c / f"{c}_{i:04d}.png"
        if not path.exists():
            rng = np.random.default_rng([seed, ci, i])
            atomic_write_image(path, make_scene(c, image_size, rng))
        counts[c] = counts.get(c, 0) + 1
    atomic_write_text(manifest, json.dumps(settings, indent=2))
    return counts
