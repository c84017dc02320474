import numpy as np
import pytest

from earth_lib.model import PRESETS, build_from_preset, build_resnet


def _proj(model):
    return [layer.name for layer in model.layers if layer.name.endswith("_proj")]


def test_output_shape_and_softmax():
    m = build_resnet((16, 16, 3), 5, stage_depths=(1, 1), filters=(8, 16))
    out = m.predict(np.random.default_rng(0).integers(0, 255, (2, 16, 16, 3)), verbose=0)
    assert out.shape == (2, 5)
    assert np.allclose(out.sum(axis=1), 1, atol=1e-5)


def test_projection_exactly_where_shape_changes():
    m = build_resnet((32, 32, 3), 4, stage_depths=(2, 2, 2), filters=(16, 32, 64))
    assert _proj(m) == ["stage2_block1_proj", "stage3_block1_proj"]
    # a first stage wider than the stem would need one too: here filters stay at 16
    m2 = build_resnet((32, 32, 3), 4, stage_depths=(1, 1), filters=(16, 16))
    assert _proj(m2) == ["stage2_block1_proj"]  # same width, but stride 2


def test_stages_halve_the_spatial_size():
    m = build_resnet((32, 32, 3), 4, stage_depths=(1, 1, 1), filters=(8, 16, 32))
    shapes = {layer.name: layer.output.shape for layer in m.layers if layer.name.endswith("_add")}
    assert shapes["stage1_block1_add"][1:3] == (32, 32)
    assert shapes["stage2_block1_add"][1:3] == (16, 16)
    assert shapes["stage3_block1_add"][1:3] == (8, 8)


def test_kernel_size_changes_the_convolutions():
    m1 = build_resnet((16, 16, 3), 3, stage_depths=(1,), filters=(8,), kernel_size=1)
    m5 = build_resnet((16, 16, 3), 3, stage_depths=(1,), filters=(8,), kernel_size=5)
    assert m1.get_layer("stage1_block1_conv1").kernel.shape[:2] == (1, 1)
    assert m5.get_layer("stage1_block1_conv1").kernel.shape[:2] == (5, 5)
    assert m5.count_params() > m1.count_params()


def test_any_band_count():
    m = build_from_preset((16, 16, 13), 10, "tiny")
    assert m.input_shape == (None, 16, 16, 13) and m.output_shape == (None, 10)


def test_paper_preset_is_the_original_24_block_network():
    m = build_from_preset((64, 64, 3), 3, "paper")
    blocks = {layer.name.split("_conv")[0] for layer in m.layers if "_conv" in layer.name}
    assert len(blocks) == sum(PRESETS["paper"]["stage_depths"]) == 24
    assert len(_proj(m)) == 3
    assert 15e6 < m.count_params() < 40e6


@pytest.mark.parametrize("kwargs, match", [
    ({"stage_depths": (1, 1), "filters": (8,)}, "same length"),
    ({"stage_depths": (1,), "filters": (8,), "num_classes": 1}, "at least 2"),
])
def test_bad_settings(kwargs, match):
    n = kwargs.pop("num_classes", 3)
    with pytest.raises(ValueError, match=match):
        build_resnet((8, 8, 1), n, **kwargs)


def test_unknown_preset():
    with pytest.raises(ValueError, match="Unknown model preset 'huge'"):
        build_from_preset((8, 8, 3), 2, "huge")
