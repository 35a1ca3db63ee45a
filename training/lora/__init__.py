"""LoRA fine-tuning of SD 1.5 for the `animals` and `txt2img` archives, one module per stage:
config.py (the frozen config) -> data.py (datasets, augmentation, prompts) -> trainer.py (one
optimizer step on the UNet's LoRA) -> train.py (the loop, metrics, checkpoints, export) ->
cli.py (`python -m training.lora`)."""
