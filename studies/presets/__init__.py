"""The built-in presets: the embedded digits model, and torchvision's ImageNet classifiers."""
