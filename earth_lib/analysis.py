"""Exploratory analysis and PCA (notebook 2, sections 2-3).

PCA follows the original method: flatten each image, keep the components that explain
a variance threshold (95 % by default), and optionally run the search on images
reconstructed from those components. Only the component scores are kept in memory
(N x k instead of N x H*W*C); images are rebuilt batch by batch inside ``tf.data``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from earth_lib.data import (
    CHUNK,
    SPLITS,
    Split,
    chunks,
    read_rows,
    same_pixels_as_64px,
    subsample,
)


def label_matrix(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, classes) booleans: one-hot for class indices, the labels themselves if multi-label."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        return labels.astype(bool)
    return labels[:, None] == np.arange(n_classes)[None, :]


def class_counts(labels: np.ndarray, split: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    """Images per class and split, with totals: the table every run shows first.

    Multi-label: images showing each label, and a last row with the images of each split.
    """
    if np.ndim(labels) == 2:
        df = pd.DataFrame({s: np.asarray(labels)[split == s].sum(axis=0).astype(int)
                           for s in SPLITS}, index=pd.Index(class_names, name="label"))
        df["total"] = df.sum(axis=1)
        df.loc["images"] = [int((split == s).sum()) for s in SPLITS] + [len(split)]
        return df
    df = pd.crosstab(pd.Categorical([class_names[i] for i in labels], categories=class_names),
                     pd.Categorical(split, categories=list(SPLITS)), dropna=False)
    df.index.name, df.columns.name = "class", None
    df["total"] = df.sum(axis=1)
    df.loc["total"] = df.sum(axis=0)
    return df


def label_cooccurrence(labels: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    """Images showing both labels (diagonal: each label's count); diagonal only if single-label."""
    m = label_matrix(labels, len(class_names)).astype(np.int64)
    return pd.DataFrame(m.T @ m, index=class_names, columns=class_names)


def labels_per_image(labels: np.ndarray, n_classes: int) -> pd.Series:
    """How many images carry 1, 2, ... labels."""
    counts = label_matrix(labels, n_classes).sum(axis=1)
    return pd.Series(counts).value_counts().sort_index().rename_axis("labels").rename("images")


def band_histograms(images: np.ndarray, labels: np.ndarray, n_classes: int,
                    bins: int = 32) -> np.ndarray:
    """Normalised intensity histograms, shape (classes, bands, bins), over 0-255.

    Multi-label: each label's histogram is over the images that show it.
    """
    edges = np.linspace(0, 256, bins + 1)
    counts = np.zeros((n_classes, images.shape[-1], bins))
    for part in chunks(len(labels)):  # chunk by chunk: the images may be read from disk
        x, m = read_rows(images, part), label_matrix(labels[part], n_classes)
        for k in np.flatnonzero(m.any(axis=0)):
            sel = x[m[:, k]]
            for b in range(images.shape[-1]):
                counts[k, b] += np.histogram(sel[..., b], bins=edges)[0]
    return counts / np.maximum(counts.sum(axis=-1, keepdims=True), 1)


def mean_images(images: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Mean image per class (multi-label: per label), float32 (classes, H, W, C), 0-255.

    A class without images gets zeros.
    """
    sums = np.zeros((n_classes, *images.shape[1:]))
    n = np.zeros(n_classes)
    for part in chunks(len(labels)):
        x, m = read_rows(images, part, np.float64), label_matrix(labels[part], n_classes)
        for k in np.flatnonzero(m.any(axis=0)):
            sums[k] += x[m[:, k]].sum(axis=0)
        n += m.sum(axis=0)
    return (sums / np.maximum(n, 1).reshape(-1, *[1] * (images.ndim - 1))).astype(np.float32)


@dataclass
class PCAResult:
    """A PCA fitted on flattened training images, cut at a variance threshold."""

    mean_: np.ndarray
    components_: np.ndarray  # (k, D): the kept components only
    explained_variance_ratio_: np.ndarray  # full spectrum, for the curve
    n_components_: int
    variance: float
    image_shape: tuple[int, int, int]

    def transform(self, images: np.ndarray) -> np.ndarray:
        """Component scores (N, k) of images (N, H, W, C), chunk by chunk (bounded memory)."""
        out = np.empty((len(images), self.n_components_), dtype=np.float32)
        for part in chunks(len(images), same_pixels_as_64px(CHUNK, self.image_shape)):
            flat = read_rows(images, part).reshape(part.stop - part.start, -1)
            out[part] = (flat.astype(np.float32) - self.mean_) @ self.components_.T
        return out

    def reconstruct(self, scores: np.ndarray) -> np.ndarray:
        """Float32 images (N, H, W, C) rebuilt from scores, clipped to 0-255.

        Called batch by batch inside ``tf.data`` (augmentation.make_dataset).
        """
        flat = np.asarray(scores, dtype=np.float32) @ self.components_ + self.mean_
        return np.clip(flat, 0, 255).reshape((-1, *self.image_shape))

    def eigen_images(self, n: int = 8) -> np.ndarray:
        """The first n components reshaped to images (for display)."""
        return self.components_[:n].reshape((-1, *self.image_shape))

    def memory_report(self, n_images: int) -> dict[str, float]:
        """Bytes of the full float32 images vs. their PCA scores plus the basis."""
        d = int(np.prod(self.image_shape))
        full = n_images * d * 4
        pca = (n_images * self.n_components_ + (self.n_components_ + 1) * d) * 4
        return {"images": n_images, "full_mb": full / 2**20, "pca_mb": pca / 2**20,
                "saving_ratio": full / pca}

    def record(self, n_images: int) -> dict[str, float]:
        """What a run's metrics keep of the PCA: components, variance and the memory figures."""
        return {"components": self.n_components_, "variance": self.variance,
                **self.memory_report(n_images)}


def fit_pca(images: np.ndarray, variance: float, max_images: int, seed: int,
            svd_max_mb: float = 256) -> PCAResult:
    """Fit PCA on (a seeded subsample of) training images; keep components up to ``variance``.

    While the images as float32 take at most ``svd_max_mb``, scikit-learn's exact SVD;
    above it (e.g. 1,000 images of 224 px: 602 MB, 4.4 GB at the SVD's peak), the same
    components from the images' Gram matrix, computed a slice of pixels at a time.
    """
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(images), max_images, replace=False) if len(images) > max_images \
        else slice(None)
    images = read_rows(images, pick)
    flat = images.reshape(len(images), -1)
    if flat.size * 4 > svd_max_mb * 2**20:
        mean, ratio, components = _gram_pca(flat, variance)
        return PCAResult(mean, components, ratio, len(components), variance, images.shape[1:])
    pca = PCA(svd_solver="full", random_state=seed).fit(flat.astype(np.float32))
    k = _components_for(pca.explained_variance_ratio_, variance)
    return PCAResult(pca.mean_.astype(np.float32), pca.components_[:k].astype(np.float32),
                     pca.explained_variance_ratio_, k, variance, images.shape[1:])


def _components_for(ratio: np.ndarray, variance: float) -> int:
    """How many leading components explain at least ``variance`` of the total."""
    cum = np.cumsum(ratio)
    return int(min(np.searchsorted(cum, variance - 1e-12) + 1, len(cum)))


def _gram_pca(flat: np.ndarray, variance: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of N flattened images (N x D, N < D) through the N x N Gram matrix, in float64.

    The eigenvectors u_i of Xc Xc^T give the components Xc^T u_i / sqrt(lambda_i); only
    a slice of pixels (about 64 MB as float64) is ever converted at a time.
    Returns (mean, full explained-variance ratio, kept components as float32 rows).
    """
    n, d = flat.shape
    cols = list(chunks(d, max(1, 2**23 // n)))
    mean = np.concatenate([flat[:, c].mean(axis=0, dtype=np.float64) for c in cols])
    gram = np.zeros((n, n))
    for c in cols:
        xc = flat[:, c] - mean[c]
        gram += xc @ xc.T
    evals, evecs = np.linalg.eigh(gram)
    evals, evecs = np.clip(evals[::-1], 0, None), evecs[:, ::-1]
    ratio = evals / max(evals.sum(), 1e-12)
    k = _components_for(ratio, variance)
    scale = evecs[:, :k] / np.sqrt(np.maximum(evals[:k], 1e-12))
    components = np.empty((k, d), dtype=np.float32)
    for c in cols:
        components[:, c] = scale.T @ (flat[:, c] - mean[c])
    return mean.astype(np.float32), ratio, components


@dataclass
class BandPCA:
    """Spectral band reduction: PCA over pixels (bands as features), fitted on training images.

    Components are scaled to 0-255 between their 1st and 99th training percentiles, so the
    reduced images feed the same network input as 8-bit images.
    """

    mean_: np.ndarray  # (C,)
    components_: np.ndarray  # (k, C)
    lo_: np.ndarray  # (k,)
    hi_: np.ndarray  # (k,)
    explained_variance_ratio_: np.ndarray  # (k,)

    def transform(self, images: np.ndarray) -> np.ndarray:
        """Reduce (N, H, W, C) images to (N, H, W, k) uint8 component images."""
        if images.shape[-1] != len(self.mean_):
            raise ValueError(f"images have {images.shape[-1]} bands; the band PCA was fitted "
                             f"on {len(self.mean_)}.")
        z = (np.asarray(images, dtype=np.float32) - self.mean_) @ self.components_.T
        z = (z - self.lo_) / np.maximum(self.hi_ - self.lo_, 1e-6)
        return np.round(np.clip(z, 0, 1) * 255).astype(np.uint8)

    def save(self, path) -> None:
        """Store the fitted reduction (``.npz``) beside the model."""
        import io as _io

        from earth_lib.io import atomic_write_bytes

        buf = _io.BytesIO()
        np.savez(buf, **self.__dict__)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path) -> BandPCA:
        """Read a reduction written by :meth:`save`."""
        with np.load(path) as f:
            return cls(**{k: f[k] for k in f.files})


def fit_band_pca(images: np.ndarray, n_components: int, max_pixels: int = 200_000, *,
                 seed: int) -> BandPCA:
    """Fit a band PCA on a seeded sample of training pixels (never on val/test)."""
    bands = images.shape[-1]
    if not 1 <= n_components <= bands:
        raise ValueError(f"pca.band_components must be between 1 and the band count "
                         f"({bands}). Got {n_components} instead.")
    pixels = np.asarray(images, dtype=np.float32).reshape(-1, bands)
    rng = np.random.default_rng(seed)
    if len(pixels) > max_pixels:
        pixels = pixels[rng.choice(len(pixels), max_pixels, replace=False)]
    pca = PCA(n_components, random_state=seed).fit(pixels)
    z = pca.transform(pixels)
    return BandPCA(pca.mean_.astype(np.float32), pca.components_.astype(np.float32),
                   np.percentile(z, 1, axis=0).astype(np.float32),
                   np.percentile(z, 99, axis=0).astype(np.float32),
                   pca.explained_variance_ratio_)


def search_inputs(train: Split, val: Split, pca: PCAResult, *, max_images: int | None,
                  use_pca: bool, seed: int) -> tuple[Split, Split, PCAResult | None]:
    """What the search trains on: a seeded subsample of train, as PCA scores when ``use_pca``.

    Returns (train, val, decoder); the decoder is the PCA that rebuilds the images batch by
    batch, or None when the search sees the images themselves.
    """
    train = subsample(train, max_images, seed)
    if not use_pca:
        return train, val, None
    return Split(pca.transform(train.x), train.y), Split(pca.transform(val.x), val.y), pca


def reduce_bands(splits: dict[str, Split], n_components: int | None,
                 seed: int) -> tuple[dict[str, Split], BandPCA | None]:
    """Apply the spectral band PCA (fitted on train only) to every split; unchanged when None."""
    if not n_components:
        return splits, None
    band_pca = fit_band_pca(splits["train"].x, n_components, seed=seed)
    return {k: Split(band_pca.transform(v.x), v.y) for k, v in splits.items()}, band_pca


def describe_bands(bands: int, band_pca: BandPCA | None) -> str:
    """One line on the network's input bands: as they are, or reduced by the band PCA."""
    if band_pca is None:
        return f"{bands} band(s) used as they are"
    return (f"bands {bands} -> {band_pca.components_.shape[0]} components "
            f"({band_pca.explained_variance_ratio_.sum():.1%} of the spectral variance)")
