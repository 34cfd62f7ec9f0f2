"""``train``: chips folder(s) -> model folder (.emd, .pth, .dlpk, model_metrics.html, training_log.json)."""
from __future__ import annotations

from ..device import DEVICES_HELP
from ..models import ARCHITECTURES, BACKBONES
from ..train import train_model
from ..train_options import AUGMENTATIONS, MODEL_ARGUMENTS, MONITORS, TrainOptions, parse_model_arguments

HELP = "Train Model: train a segmentation network on exported chips and write a model package."


def add_arguments(p):
    d = TrainOptions()
    p.add_argument("--input-training-data", required=True, nargs="+", help="one or more chips folders")
    p.add_argument("--output-model", required=True, help="new or empty folder for the model package")
    p.add_argument("--max-epochs", type=int, default=d.max_epochs)
    p.add_argument("--model-type", choices=list(ARCHITECTURES),
                   help=f"default {d.model_type}, or the pretrained model's")
    p.add_argument("--backbone", help=f"default {d.backbone}, or the pretrained model's; e.g. " + ", ".join(BACKBONES))
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--learning-rate", type=float, default=d.learning_rate,
                   help="empty: found with a learning-rate range test")
    p.add_argument("--validation-percent", type=float, default=d.validation_percent,
                   help="chips held out (spatially apart) for validation; default 10, or 0 with fewer than "
                        "200 chips")
    p.add_argument("--no-early-stop", dest="stop_when_not_improving", action="store_false",
                   default=d.stop_when_not_improving, help="train all epochs")
    p.add_argument("--monitor", choices=MONITORS, default=d.monitor)
    p.add_argument("--no-freeze-backbone", dest="freeze_backbone", action="store_false", default=d.freeze_backbone,
                   help="with --pretrained-model: train the backbone too from the start")
    p.add_argument("--pretrained-model", help="our .emd/.dlpk to fine-tune, or an encoder weights file")
    p.add_argument("--augmentation", choices=AUGMENTATIONS, default=d.augmentation)
    p.add_argument("--model-arguments", default="",
                   help="key=value, ...: " + "; ".join(f"{k} ({v[2]})" for k, v in MODEL_ARGUMENTS.items()))
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device, help=DEVICES_HELP)


def run(args, progress):
    d = TrainOptions()
    options = TrainOptions(
        max_epochs=args.max_epochs, model_type=args.model_type or d.model_type, backbone=args.backbone or d.backbone,
        network_given=bool(args.model_type or args.backbone),
        batch_size=args.batch_size, learning_rate=args.learning_rate,
        validation_percent=args.validation_percent, stop_when_not_improving=args.stop_when_not_improving,
        monitor=args.monitor, freeze_backbone=args.freeze_backbone, pretrained_model=args.pretrained_model,
        augmentation=args.augmentation, model_arguments=parse_model_arguments(args.model_arguments),
        seed=args.seed, device=args.device)
    r = train_model(args.input_training_data, args.output_model, options, progress)
    return {"output_model": r.folder, "model_definition": r.emd_path, "best_epoch": r.best_epoch,
            "epochs_run": r.epochs_run, "accuracy": r.summary.get("overall_accuracy"),
            "miou": r.summary.get("mean_iou")}
