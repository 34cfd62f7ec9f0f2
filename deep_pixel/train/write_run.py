"""The package of a training run's best epoch so far (the final model and each checkpoint) and its log."""
from __future__ import annotations

import numpy as np

from .pretrained import frozen_eval
from .write import build_emd, sample_pictures, training_log, write_model


def run_log(run) -> dict:
    """training_log.json's content, with the processes and the resume."""
    log = training_log(run.epochs, run.best.epoch, run.options, run.stopped_early, run.lr, run.lr_test, run.reason,
                       run.crop, run.data, run.split, run.model_type, run.backbone, run.why, run.params)
    log["batch"] = run.batch                    # crops per step (per process), whatever the number of chips
    log["kept_epoch"] = "average" if run.best.averaged else "last" if run.best.keep_last else "best"
    if run.best.averaged:
        log["averaged_epochs"] = [run.best.first, run.best.epoch]
    if run.dist.active:
        log["distributed"] = {"processes": run.dist.world, "backend": run.dist.backend,
                              "batch_per_process": run.batch, "global_batch": run.batch * run.dist.world,
                              "lr_scaling": run.options.arg("lr_scaling")}
    if run.resumed:
        log["resumed_from_epoch"] = run.resumed["epoch"]
    log["stopped_by_time_limit"] = run.stopped_by_time
    if run.finished and run.params.get("members"):          # the averaged networks (not a fine-tuned average)
        from .members import members_log
        log["members"] = members_log(run)
    return log


def write_best(run, folder: str, model, checkpoint=None, with_onnx=False) -> dict:
    """The package of the best epoch so far (``model`` holds its weights) into ``folder``."""
    import torch
    options, best = run.options, run.best
    log = run_log(run)

    def predict(x):
        with torch.no_grad():
            logits = run.stepper.forward(run.stepper.to_device(x), model)
            return np.asarray(run.class_values)[logits.float().argmax(1).cpu().numpy()]

    was_training = model.training
    model.eval()
    try:
        pictures = sample_pictures(predict, run.data, run.eval_idx, run.schema, run.transform, run.multiple)
    finally:
        model.train(was_training)
        if run.frozen and was_training:
            frozen_eval(model)
    emd = build_emd(run.name, run.data, run.schema, options, run.model_type, run.backbone, run.transform.channels,
                    run.params, run.transform, best.summary, log, run.data.tile_size)
    if run.indices:
        emd["SpectralIndices"] = [{"Name": n, "Bands": [run.data.bands[a], run.data.bands[b]],
                                   "Formula": "(a - b) / (a + b)"} for n, (a, b) in run.indices]
    if checkpoint:
        emd["Checkpoint"] = checkpoint
    write_model(folder, run.name, best.state, emd, log, best.summary, run.schema, pictures,
                onnx_model=model if with_onnx else None, progress=run.progress, dlpk=not checkpoint)
    return log
