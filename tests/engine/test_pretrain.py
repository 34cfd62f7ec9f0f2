"""Issue 16 item 3: self-supervised pretraining on the user's own imagery (PRETRAIN_ON_RASTER).
Real crops of the export's source raster (or of the chips when it is gone), a real short pretraining
before a real tiny training."""
import os

import numpy as np
import pytest

from deep_pixel.chips.reader import read_chip_folders
from deep_pixel.core.errors import Cancelled, DeepPixelError
from deep_pixel.core.inputs import InputTransform
from deep_pixel.core.progress import RecordingProgress
from deep_pixel.train.loop import train_model
from deep_pixel.train.options import TrainOptions
from deep_pixel.train.pretrain import MASK_SQUARE, Crops
from gis_files import chips_without_source, scene_chips


@pytest.fixture(scope="module")
def chips(scene, tmp_path_factory):
    return scene_chips(scene, tmp_path_factory.mktemp("pretrain") / "chips", stride=64)


def _crops(folder, crop=32):
    data = read_chip_folders([folder])
    transform = InputTransform(data.band_stats["mean"], data.band_stats["std"])
    return Crops(data, transform, crop, seed=0)


def test_crops_come_from_the_source_raster_and_masks_cover_about_half(chips, scene):
    crops = _crops(chips)
    try:
        assert crops.rasters and os.path.basename(scene.image) in crops.described
        x = crops.batch(4)
        assert x.shape == (4, 4, 32, 32) and np.isfinite(x).all() and x.std() > 0.1
        m = crops.masks(64)
        assert m.shape == (64, 1, 32, 32) and set(np.unique(m)) == {0.0, 1.0}
        assert 0.4 < m.mean() < 0.6
        assert (m[:, :, :MASK_SQUARE, :MASK_SQUARE].std(axis=(2, 3)) == 0).all()     # whole squares
    finally:
        crops.close()


def test_without_the_source_raster_the_chips_stand_in(chips, scene, tmp_path):
    crops = _crops(chips_without_source(chips, str(tmp_path)))
    assert not crops.rasters and "chips" in crops.described
    assert crops.batch(2).shape == (2, 4, 32, 32)


def _options(**kw):
    args = {"chip_size": 32, "steps_per_epoch": 3, "lr_test_steps": 0, "semi_supervised": False}
    return TrainOptions(backbone="resnet18", batch_size=4, learning_rate=3e-3, device="cpu", max_epochs=1,
                        model_arguments=args, **kw)


def test_pretraining_runs_before_training_and_starts_its_network(chips, tmp_path):
    progress = RecordingProgress()
    result = train_model(chips, str(tmp_path / "model"), _options(pretrain_on_raster=0.03), progress)
    text = "\n".join(progress.messages)
    assert "Self-supervised pretraining for 0.03 min" in text and "Pretraining done" in text
    assert "Loaded" in text and "from the self-supervised pretraining" in text
    assert any(m.startswith("pretraining step") and "ETA" in m for m in progress.messages)
    assert result.log["epochs"] and os.path.isfile(result.emd_path)
    assert max(progress.fractions) <= 1.0


def test_pretraining_can_be_cancelled_and_leaves_nothing(chips, tmp_path):
    with pytest.raises(Cancelled):
        train_model(chips, str(tmp_path / "model"), _options(pretrain_on_raster=5), RecordingProgress(cancel_after=8))
    assert not os.path.exists(tmp_path / "model") and not os.path.exists(str(tmp_path / "model") + ".checkpoint")


def test_pretraining_and_a_pretrained_model_are_refused_together(tmp_path):
    with pytest.raises(DeepPixelError, match="PRETRAIN_ON_RASTER.*PRETRAINED_MODEL"):
        _options(pretrain_on_raster=1, pretrained_model=str(tmp_path / "m.emd")).validate()



def test_pretrain_parts_encoder_passes_on_the_encoder_only(chips, tmp_path):
    def loaded(parts):
        progress = RecordingProgress()
        opts = _options(pretrain_on_raster=0.01)
        opts.model_arguments["pretrain_parts"] = parts
        train_model(chips, str(tmp_path / parts), opts, progress)
        line = next(m for m in progress.messages if "from the self-supervised pretraining" in m)
        return int(line.split("Loaded ")[1].split(" ")[0])
    encoder, both = loaded("encoder"), loaded("encoder+decoder")
    assert 0 < encoder < both
