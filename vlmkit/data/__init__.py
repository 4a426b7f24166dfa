"""Datasets: the PairDataset interface, noisy correspondence on any of them (``inject_noise``),
the embedded generator, the real-format loaders and the one dataset-spec grammar (``parse_spec``)."""

from .base import ArrayImages, FileImages, ImageSource, PairDataset, SkipRecord, SparseTruth, Truth, open_image, to_rgb
from .classification import base_novel_split, class_names, load_shape_classes, make_shape_classes
from .coco import load_coco_captions
from .fashion_mnist import (FASHION_MNIST_CLASSNAMES, FASHION_MNIST_ROOT, FASHION_MNIST_TEMPLATES,
                            fashion_mnist_available, load_fashion_mnist, read_idx)
from .folder import ClassificationDataset, LabelTruth, load_image_folder
from .formats import SkippedItemsWarning, load_dataset
from .karpathy import KARPATHY_SPLITS, load_karpathy
from .noise import inject_noise
from .shapes import ShapesConfig, make_shapes, scene_of
from .spec import DataSpec, parse_spec
from .tabular import load_csv
