"""The embedded dataset: determinism, exact truth, captions, noise injection, subsets."""

import numpy as np
import pytest

from vlmkit.data.shapes import (
    COLOURS, POSITIONS, SHAPES, SIZES, CaptionSpec, ShapesConfig, caption_text, inject_noise,
    make_shapes, match_atoms, scene_of,
)
from vlmkit.utils import VlmkitError


@pytest.fixture(scope="module")
def test_split():
    return make_shapes("test", n_images=200, seed=3)


def obj(shape, colour, size, position):
    return [SHAPES.index(shape), COLOURS.index(colour), SIZES.index(size), POSITIONS.index(position)]


def scene(*objects):
    arr = np.full((1, 3, 4), -1, dtype=np.int8)
    for k, o in enumerate(objects):
        arr[0, k] = o
    return arr


def clause(shape=None, colour=None, size=None, position=None):
    return [
        -1 if shape is None else SHAPES.index(shape),
        -1 if colour is None else COLOURS.index(colour),
        -1 if size is None else SIZES.index(size),
        -1 if position is None else POSITIONS.index(position),
    ]


def spec(*clauses, count=-1):
    cl = np.full((1, 3, 4), -1, dtype=np.int8)
    for k, c in enumerate(clauses):
        cl[0, k] = c
    return CaptionSpec(cl, np.array([count], dtype=np.int8))


def test_same_seed_same_data_different_seed_different():
    a, b, c = make_shapes("val", 50, seed=1), make_shapes("val", 50, seed=1), make_shapes("val", 50, seed=2)
    assert np.array_equal(a.images.array, b.images.array)
    assert a.captions == b.captions
    assert np.array_equal(a.relevance(), b.relevance())
    assert not np.array_equal(a.images.array, c.images.array)
    assert a.captions != c.captions


def test_splits_are_different_draws():
    assert make_shapes("train", 30).captions != make_shapes("test", 30).captions


def test_shapes_and_sizes(test_split):
    ds = test_split
    assert ds.num_images == 200 and ds.num_captions == 1000
    assert ds.images.array.shape == (200, 64, 64, 3) and ds.images.array.dtype == np.uint8
    assert np.array_equal(ds.caption_image, np.repeat(np.arange(200), 5))
    assert list(ds.caption_meta["specificity"][:5]) == [4, 3, 2, 1, 0]
    assert make_shapes("test").num_captions == 5000  # COCO-1K-sized default


def test_every_caption_true_of_its_own_image(test_split):
    pos = test_split.positives()
    rel = test_split.relevance()
    own = pos[test_split.caption_image, np.arange(test_split.num_captions)]
    assert own.all()
    assert np.all(rel[test_split.caption_image, np.arange(test_split.num_captions)] == 1.0)
    assert ((rel >= 0) & (rel <= 1)).all()
    assert np.array_equal(rel >= 1.0, pos)


def test_under_specified_captions_are_true_of_many_images(test_split):
    pos = test_split.positives()
    spec_ = test_split.caption_meta["specificity"]
    true_per_caption = pos.sum(0)
    means = [true_per_caption[spec_ == s].mean() for s in range(5)]
    assert means[0] > 30 and means[1] > 30  # "two shapes", "a red shape": many images
    assert means[0] > means[3] > means[4] >= 1  # fewer as captions get specific
    fn = test_split.false_negatives()
    assert fn.sum() == pos.sum() - test_split.num_captions  # every non-own true pair is a false negative


def test_hand_checked_truth():
    img = scene(obj("circle", "red", "large", "left"), obj("square", "blue", "small", "right"))
    cases = [
        (spec(clause("circle", "red")), 2),
        (spec(clause("square", "red")), 1),  # best object satisfies one of two atoms
        (spec(clause(colour="blue", position="right")), 2),
        (spec(clause(colour="blue", position="left")), 1),
        (spec(count=2), 1),
        (spec(count=3), 0),
        (spec(clause("circle", "red", "large", "left"), clause("square", "blue", "small", "right"), count=2), 9),
        (spec(clause("circle"), clause("circle")), 1),  # clauses need distinct objects
    ]
    for sp, expected in cases:
        assert match_atoms(img, sp)[0, 0] == expected, caption_text(sp.clauses[0], int(sp.count[0]))


def test_caption_text_grammar():
    assert caption_text(np.array(spec(clause("cross", "orange")).clauses[0]), -1) == "an orange cross"
    assert caption_text(np.array(spec(clause(colour="red")).clauses[0]), -1) == "a red shape"
    assert caption_text(spec(count=1).clauses[0], 1) == "one shape"
    full = spec(clause("circle", "red", "large", "left"), clause("star", "blue", "small", "right"), count=2)
    assert caption_text(full.clauses[0], 2) == "two shapes: a large red circle on the left and a small blue star on the right"


def test_scene_matches_caption_words(test_split):
    objs = scene_of(test_split, 0)
    full = test_split.captions[0]
    assert full.startswith(["one shape", "two shapes", "three shapes"][len(objs) - 1])
    for o in objs:
        assert f"{o['size']} {o['colour']} {o['shape']}" in full


def test_web_captions_have_exact_truth():
    ds = make_shapes("pretrain", n_images=100, captions="web", web_per_image=2)
    assert ds.num_captions == 200 and ds.has_exact_truth
    pos = ds.positives()
    # Most (not all: some are about other images or have a wrong word) are true of their image.
    own = pos[ds.caption_image, np.arange(200)]
    assert 0.6 < own.mean() < 1.0


@pytest.mark.parametrize("ratio", [0.2, 0.5])
def test_noise_injection_moves_exactly_the_fraction(test_split, ratio):
    noisy = inject_noise(test_split, ratio, seed=5)
    m = test_split.num_captions
    moved = noisy.caption_meta["noisy"]
    assert moved.sum() == round(ratio * m)
    assert np.array_equal(noisy.caption_image, test_split.caption_image)  # labels stay
    texts_same = np.array([a == b for a, b in zip(noisy.captions, test_split.captions)])
    assert not texts_same[~moved].__contains__(False)
    assert sorted(noisy.captions) == sorted(test_split.captions)  # permuted among themselves
    # Truth follows the text: a moved caption is true of the image it was written about.
    pos = noisy.positives()
    src = {c: i for i, c in enumerate(test_split.captions)}
    for j in np.flatnonzero(moved)[:50]:
        assert test_split.positives([test_split.caption_image[src[noisy.captions[j]]]], [src[noisy.captions[j]]])[0, 0]
    assert inject_noise(test_split, 0.2, seed=5).captions == noisy.captions if ratio == 0.2 else True
    assert pos.shape == (test_split.num_images, m)


def test_subset_reindexes_truth(test_split):
    idx = np.array([5, 2, 9])
    sub = test_split.subset(idx)
    assert sub.num_images == 3 and sub.num_captions == 15
    full = test_split.relevance()
    caps = np.concatenate([test_split.captions_of(i) for i in idx])
    assert np.array_equal(sub.relevance(), full[np.ix_(idx, caps)])
    assert [sub.captions[k] for k in range(15)] == [test_split.captions[c] for c in caps]


def test_bad_arguments():
    with pytest.raises(VlmkitError, match="split"):
        make_shapes("holdout")
    with pytest.raises(VlmkitError, match="n_images"):
        make_shapes("test", n_images=0)
    with pytest.raises(VlmkitError, match="captions"):
        make_shapes("test", 5, captions="poetry")
    with pytest.raises(VlmkitError, match="image_size"):
        ShapesConfig(image_size=8)
    with pytest.raises(VlmkitError, match="noise ratio"):
        inject_noise(make_shapes("test", 5), 1.5)
