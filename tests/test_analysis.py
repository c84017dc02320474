import numpy as np
import pytest

from earth_lib.analysis import band_histograms, class_counts, fit_pca, mean_images


def _images(n=60, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(3, 8 * 8 * 3))  # three underlying patterns
    w = rng.normal(size=(n, 3))
    x = 128 + 20 * (w @ base) + rng.normal(0, 2, (n, 8 * 8 * 3))
    return np.clip(x, 0, 255).astype(np.uint8).reshape(n, 8, 8, 3)


@pytest.mark.parametrize("variance", [0.5, 0.9, 0.99])
def test_pca_keeps_the_fewest_components_reaching_the_threshold(variance):
    pca = fit_pca(_images(), variance, 2000, seed=42)
    cum = np.cumsum(pca.explained_variance_ratio_)
    k = pca.n_components_
    assert cum[k - 1] >= variance - 1e-9
    assert k == 1 or cum[k - 2] < variance
    assert pca.components_.shape == (k, 192)


def test_pca_reconstruction_is_close_for_low_rank_images():
    x = _images()
    pca = fit_pca(x, 0.95, 2000, seed=42)
    assert pca.n_components_ <= 10
    rec = pca.reconstruct(pca.transform(x))
    assert rec.shape == x.shape
    assert np.abs(rec - x).mean() < 4


def test_pca_memory_report_shows_saving():
    pca = fit_pca(_images(200), 0.95, 2000, seed=42)
    rep = pca.memory_report(200)
    assert rep["pca_mb"] < rep["full_mb"] and rep["saving_ratio"] > 1


@pytest.mark.parametrize("variance", [0.5, 0.9, 0.999])
def test_pca_from_the_gram_matrix_matches_the_exact_svd(variance):
    # above svd_max_mb the components come from the N x N Gram matrix, a slice of
    # pixels at a time; they must be the SVD's, up to each component's sign
    x = _images(50)  # 192 values per image: fewer images than pixels, as for real images
    exact, gram = fit_pca(x, variance, 2000, seed=42), \
        fit_pca(x, variance, 2000, seed=42, svd_max_mb=0)
    assert gram.n_components_ == exact.n_components_
    np.testing.assert_allclose(gram.explained_variance_ratio_[:10],
                               exact.explained_variance_ratio_[:10], atol=1e-6)
    np.testing.assert_allclose(gram.mean_, exact.mean_, atol=1e-4)
    cos = np.abs(np.sum(gram.components_ * exact.components_, axis=1))
    np.testing.assert_allclose(cos[:3], 1, atol=1e-4)  # the three strong components
    np.testing.assert_allclose(np.linalg.norm(gram.components_, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(gram.reconstruct(gram.transform(x)),
                               exact.reconstruct(exact.transform(x)), atol=0.05)


def test_pca_subsample_is_seeded():
    x = _images(100)
    a = fit_pca(x, 0.9, max_images=40, seed=1)
    b = fit_pca(x, 0.9, max_images=40, seed=1)
    assert np.allclose(a.components_, b.components_)


def test_class_counts_table_has_totals():
    labels = np.array([0, 0, 1, 1, 1])
    split = np.array(["train", "test", "train", "val", "train"])
    t = class_counts(labels, split, ["x", "y"])
    assert t.loc["y", "train"] == 2 and t.loc["total", "total"] == 5
    assert list(t.columns) == ["train", "val", "test", "total"]


def test_histograms_and_means_per_class():
    x = np.zeros((4, 2, 2, 2), np.uint8)
    x[2:] = 255
    labels = np.array([0, 0, 1, 1])
    h = band_histograms(x, labels, 2, bins=4)
    assert h.shape == (2, 2, 4) and h[0, 0, 0] == 1 and h[1, 1, -1] == 1
    m = mean_images(x, labels, 2)
    assert m[0].max() == 0 and m[1].min() == 255


def test_band_pca_reduces_bands_fitted_on_given_images(tmp_path):
    from earth_lib.analysis import BandPCA, fit_band_pca

    rng = np.random.default_rng(0)
    base = rng.normal(size=(2, 13))  # 13 bands driven by 2 spectral factors
    w = rng.normal(size=(10 * 8 * 8, 2))
    x = np.clip(1000 + 300 * (w @ base), 0, 4000).reshape(10, 8, 8, 13).astype(np.uint16)
    bp = fit_band_pca(x, 2, seed=0)
    assert bp.explained_variance_ratio_.sum() > 0.95
    out = bp.transform(x)
    assert out.shape == (10, 8, 8, 2) and out.dtype == np.uint8 and out.std() > 10
    bp.save(tmp_path / "b.npz")
    assert np.array_equal(BandPCA.load(tmp_path / "b.npz").transform(x), out)
    with pytest.raises(ValueError, match="fitted on 13"):
        bp.transform(x[..., :3])
    with pytest.raises(ValueError, match="between 1 and the band count"):
        fit_band_pca(x, 14, seed=0)


def test_chunked_statistics_equal_the_whole_array_ones(monkeypatch):
    """Histograms, class means, PCA scores and classical features walk the images chunk by
    chunk (so on-disk data is never read whole); the chunking changes no figure."""
    from earth_lib import data
    from earth_lib.classical import image_features

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (23, 6, 6, 2), dtype=np.uint8)
    labels = rng.integers(0, 3, 23)
    labels[:3] = [0, 1, 2]
    pca = fit_pca(x, 0.9, 2000, seed=0)
    whole = (band_histograms(x, labels, 4), mean_images(x, labels, 4), pca.transform(x),
             image_features(x, bins=4))
    monkeypatch.setattr(data.arrays, "CHUNK", 5)
    chunked = (band_histograms(x, labels, 4), mean_images(x, labels, 4), pca.transform(x),
               image_features(x, bins=4))
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert whole[1][3].max() == 0  # a class without images: a zero mean image
    flat = x.reshape(23, -1).astype(np.float32)
    np.testing.assert_allclose(whole[2], (flat - pca.mean_) @ pca.components_.T, rtol=1e-4,
                               atol=1e-3)
