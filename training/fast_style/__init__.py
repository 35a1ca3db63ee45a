"""Fast-style training of a TransformerNet (Johnson et al. 2016), one module per stage, in the
shape of training/lora/: config.py (the frozen config) -> data.py (content batches, the style
image) -> perceptual.py (the loss, over vgg16.py's features) -> train.py (the loop, metrics,
checkpoints, export) -> cli.py (`python -m training.fast_style`)."""
