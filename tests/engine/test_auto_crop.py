"""Issue 16: the random crop size on CPU follows the pixel size (chip_size 0): 64 px, or 128 px for pixels finer
than 2 m, where classes are shapes that need context (measured on the 0.5 m aerial scene, README)."""
from deep_pixel.core.progress import RecordingProgress
from deep_pixel.io.synthetic import make_scene
from deep_pixel.train.loop import train_model
from deep_pixel.train.options import CPU_CROP, FINE_PIXEL_CROP, TrainOptions, auto_crop
from gis_files import scene_chips


def test_auto_crop_by_device_and_pixel_size():
    assert auto_crop(False, 256, 0.5)[0] == FINE_PIXEL_CROP == 128
    assert auto_crop(False, 256, 10.0)[0] == CPU_CROP == 64
    assert auto_crop(False, 256, None)[0] == CPU_CROP           # unknown pixel size: as before
    assert auto_crop(False, 96, 0.5)[0] == 96                   # never more than the chips
    assert auto_crop(False, 32, 30.0)[0] == 32
    assert auto_crop(True, 256, 0.5) == (256, "auto: CUDA, the whole chip")
    assert "0.5 m pixels" in auto_crop(False, 256, 0.5)[1]


def test_a_fine_pixel_raster_trains_on_larger_crops(tmp_path):
    scene = make_scene(str(tmp_path / "scene"), width=256, height=256, seed=5, pixel_size=0.5)
    chips = scene_chips(scene, tmp_path / "chips", stride=128, size=128)
    progress = RecordingProgress()
    args = {"steps_per_epoch": 2, "lr_test_steps": 0, "semi_supervised": False}
    result = train_model(chips, str(tmp_path / "model"), TrainOptions(
        backbone="resnet18", batch_size=2, learning_rate=3e-3, device="cpu", max_epochs=1, model_arguments=args),
        progress)
    assert any("crops of 128 px (auto: CPU, 0.5 m pixels" in m for m in progress.messages), progress.messages
    assert result.log["chip_size"] == 128
