"""vlmkit: study and fix the modality gap and false negatives of CLIP-style models."""

__version__ = "0.1.0"
