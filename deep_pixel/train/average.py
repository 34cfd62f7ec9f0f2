"""A running average of the weights (exponential moving average over the training steps).

Sparse labels make each step's weights jumpy: a model taken at the end of an epoch is one noisy point of
the trajectory. The average follows the weights with a time constant of ``epochs`` epochs of steps (warmed
up over the first steps, so it does not remember the random start); batch-norm statistics are averaged the
same way. Epochs are measured, the best epoch kept and the package written from the average; with
semi-supervision it is also the teacher that labels the unlabelled pixels (a steadier teacher than the
student itself). Resuming starts the average again from the checkpoint's weights.
"""
from __future__ import annotations

import copy


class WeightAverage:
    """``model``: a copy of the network whose weights are the running average of the trained one's."""

    def __init__(self, network, epochs: float, steps_per_epoch: int):
        self.model = copy.deepcopy(network).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.decay = 1.0 - 1.0 / max(1.0, epochs * steps_per_epoch)
        self.updates = 0

    def update(self, network) -> None:
        """One more step of ``network``'s weights into the average."""
        import torch
        self.updates += 1
        keep = min(self.decay, (1 + self.updates) / (10 + self.updates))
        with torch.no_grad():
            mine = self.model.state_dict()
            for name, value in network.state_dict().items():
                target = mine[name]
                if target.is_floating_point():
                    target.mul_(keep).add_(value.detach().to(target.dtype), alpha=1 - keep)
                else:
                    target.copy_(value)
