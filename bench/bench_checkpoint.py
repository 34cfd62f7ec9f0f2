"""What a training checkpoint costs (``python -m bench checkpoint``): writing the package of the default CPU network
(UNET/resnet34, light decoder, 10 bands, per-pixel branch: 87 MB of weights) as a checkpoint (.emd + .pth, no .dlpk)
against as a finished model (with the .dlpk zip), median of REPEATS, in the same run. Train Model writes a checkpoint
at every best epoch; an epoch of the default network on the real scenes takes a few seconds on 2 cores.
"""
import statistics
import tempfile
import time

import torch

from deep_pixel.model.package import write_package
from deep_pixel.model.registry import build_model
from deep_pixel.train.options import LIGHT_DECODER

REPEATS = 3


def _seconds(state, dlpk: bool) -> float:
    times = []
    for _ in range(REPEATS):
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            write_package(folder, "m", state, {"ModelParameters": {}}, {"training_log.json": "{}"}, dlpk=dlpk)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main():
    torch.set_num_threads(2)
    net = build_model("UNET", "resnet34", 10, 5, pixel_branch=32, **LIGHT_DECODER)
    state = net.state_dict()
    megabytes = sum(v.numel() * v.element_size() for v in state.values()) / 1e6
    full, checkpoint = _seconds(state, True), _seconds(state, False)
    print(f"default CPU network: {megabytes:.0f} MB of weights; median of {REPEATS} writes")
    print(f"{'package':<36}{'seconds':>10}{'ratio':>8}")
    print(f"{'finished model (.emd, .pth, .dlpk)':<36}{full:>10.2f}{1.0:>8.2f}")
    print(f"{'checkpoint (.emd, .pth)':<36}{checkpoint:>10.2f}{checkpoint / full:>8.2f}")


if __name__ == "__main__":
    main()
