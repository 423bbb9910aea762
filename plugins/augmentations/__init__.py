"""Built-in training augmentations (``augmentation:*``): torchvision ``transforms.v2``, one per file."""
