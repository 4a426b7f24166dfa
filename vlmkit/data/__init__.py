"""Datasets: the PairDataset interface, the embedded generator and the real-format loaders."""

from .base import ArrayImages, FileImages, ImageSource, PairDataset, SkipRecord, SparseTruth, Truth, open_image, to_rgb
from .coco import load_coco_captions
from .fashion_mnist import FASHION_MNIST_CLASSNAMES, FASHION_MNIST_ROOT, FASHION_MNIST_TEMPLATES, fashion_mnist_available, load_fashion_mnist, read_idx
from .folder import ClassificationDataset, LabelTruth, load_image_folder
from .formats import SkippedItemsWarning, load_dataset
from .karpathy import KARPATHY_SPLITS, load_karpathy
from .tabular import load_csv
from .shapes import ShapesConfig, inject_noise, make_shapes, scene_of
