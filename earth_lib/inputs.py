"""What a classifier run feeds its stages, prepared once for notebooks 2 and 3 alike.

The processed folder -> images and labels -> split -> split arrays (after the spectral band
PCA) -> image PCA -> the search's trial data and the fingerprint of what its trials mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from earth_lib import analysis, data, params, search
from earth_lib.data import multilabel


@dataclass
class RunInputs:
    """The data of a run at each step, named as the notebooks use them."""

    ds: data.ImageSet
    split: np.ndarray
    S: dict[str, data.Split]
    band_pca: analysis.BandPCA | None
    pca: analysis.PCAResult
    search_splits: tuple[data.Split, data.Split, analysis.PCAResult | None]
    fingerprint: dict[str, str]

    @property
    def num_classes(self) -> int:
        """Classes (or labels, multi-label) the network predicts."""
        return len(self.ds.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One network input: height, width, bands (after the band PCA)."""
        return tuple(self.S["train"].x.shape[1:])


def prepare_inputs(P: dict[str, Any]) -> RunInputs:
    """Everything notebooks 2 and 3 start from, for parameters ``P``.

    Loads the processed images, splits them, fits both PCAs on the training split only,
    and makes the search's inputs and fingerprint.
    """
    pp, d = P["preprocess"], P["data"]
    ds = data.load_images(pp["processed_dir"], expected_size=pp["image_size"],
                          on_bad_file=d["on_bad_file"], in_memory=d["in_memory"])
    ds = multilabel.attach_labels(ds, d["labels_csv"], P["task"], pp["processed_dir"])
    split = data.make_split(ds, P["split"], P["seed"])
    S = data.split_arrays(ds.images, ds.labels, split)
    S, band_pca = analysis.reduce_bands(S, P["pca"]["band_components"], P["seed"])
    pca = analysis.fit_pca(S["train"].x, P["pca"]["variance"], P["pca"]["max_images"], P["seed"])
    search_splits = analysis.search_inputs(S["train"], S["val"], pca,
                                           **params.search_data_settings(P))
    fingerprint = search.fingerprint(params.search_fingerprint(
        P, images=ds.images, labels=ds.labels, split=split))
    return RunInputs(ds, split, S, band_pca, pca, search_splits, fingerprint)
