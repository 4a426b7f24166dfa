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
    return make_shapes("test", n_images=200, seed=3, preset="stress")


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
    moved = noisy.caption_meta["moved"]
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


# --------------------------------------------------------------------------- presets


def _census(ds):
    pos = ds.positives()
    caps = np.array(ds.captions)
    return pos, pos.sum(0), 1 - len(set(ds.captions)) / len(caps)


@pytest.fixture(scope="module")
def coco_test():
    return make_shapes("test")  # the default benchmark: coco preset, seed 0, 1,000 × 5,000


def test_coco_preset_is_the_default_and_in_the_papers_regime(coco_test):
    ds = coco_test
    assert ds.name == "shapes-test-s0" and ds.num_images == 1000 and ds.num_captions == 5000
    pos, per_caption, dup = _census(ds)
    assert dup <= 0.05  # at most 5 % of caption strings are duplicates
    assert 1.5 <= per_caption.mean() <= 10  # a caption is true of a handful of images (ECCV Caption: ×8.5)
    assert pos[ds.caption_image, np.arange(ds.num_captions)].all()  # truth consistent with labels
    spec_ = ds.caption_meta["specificity"]
    assert per_caption[spec_ == 4].mean() < 1.1  # a full description is (nearly) unique
    assert per_caption[spec_ == 0].mean() > per_caption[spec_ == 3].mean()  # the gist is looser
    assert set(ds.image_meta["background"]) == {0, 1, 2, 3}
    assert 2 <= ds.image_meta["count"].min() and ds.image_meta["count"].max() <= 3


def test_stress_preset_keeps_the_false_negative_heavy_mix():
    ds = make_shapes("test", n_images=300, preset="stress")
    _, per_caption, dup = _census(ds)
    assert ds.name == "shapes-stress-test-s0"
    assert per_caption.mean() > 30 and dup > 0.5  # generic captions true of a large share of the gallery
    assert "background" not in ds.image_meta


@pytest.mark.parametrize("preset", ["coco", "stress"])
def test_presets_are_deterministic_per_seed(preset):
    a, b = make_shapes("val", 40, seed=4, preset=preset), make_shapes("val", 40, seed=4, preset=preset)
    c = make_shapes("val", 40, seed=5, preset=preset)
    assert a.captions == b.captions and np.array_equal(a.images.array, b.images.array)
    assert np.array_equal(a.relevance(), b.relevance())
    assert a.captions != c.captions


def test_coco_captions_state_what_the_scene_holds(coco_test):
    from vlmkit.data.shapes import BACKGROUNDS
    for i in range(20):
        objs = scene_of(coco_test, i)
        full = coco_test.captions[5 * i]
        bg = BACKGROUNDS[coco_test.image_meta["background"][i]]
        assert f"{bg} background" in full
        assert ["two shapes", "three shapes"][len(objs) - 2] in full
        for o in objs:
            assert f"{o['size']} {o['colour']} {o['shape']}" in full


def test_background_atom_counts_in_truth():
    img = scene(obj("circle", "red", "large", "left"))
    sp = spec(clause("circle"))
    sp_bg = CaptionSpec(sp.clauses, sp.count, np.array([1], dtype=np.int8))
    assert match_atoms(img, sp_bg, np.array([1]))[0, 0] == 2
    assert match_atoms(img, sp_bg, np.array([2]))[0, 0] == 1  # wrong background
    assert match_atoms(img, sp_bg, None)[0, 0] == 1  # a plain image fits no background claim


def test_coco_web_captions_mention_backgrounds_and_keep_exact_truth():
    ds = make_shapes("pretrain", n_images=200, captions="web", web_per_image=2)
    assert any("background" in c for c in ds.captions)
    own = ds.positives()[ds.caption_image, np.arange(ds.num_captions)]
    assert 0.6 < own.mean() < 1.0


def test_noisy_marks_only_truly_mismatched_captions():
    ds = make_shapes("train", n_images=300, preset="stress", seed=1)
    noisy = inject_noise(ds, 0.5, seed=2)
    moved, flagged = noisy.caption_meta["moved"], noisy.caption_meta["noisy"]
    own_true = noisy.positives()[noisy.caption_image, np.arange(noisy.num_captions)]
    assert moved.sum() == round(0.5 * ds.num_captions)
    assert np.array_equal(flagged, moved & ~own_true)  # noisy = moved and not true of its labelled image
    assert flagged.sum() < moved.sum()  # generic stress captions often stay true after moving


def test_noise_census_counts_moved_and_truly_mismatched():
    """metrics.noise_census (what notebook 02 reports) and caption_census agree with the flags'
    brute-force definition; without a truth every moved caption counts as mismatched."""
    from vlmkit.data import ArrayImages, PairDataset
    from vlmkit.metrics import caption_census, noise_census

    noisy = inject_noise(make_shapes("train", n_images=120, preset="stress", seed=4), 0.5, seed=1)
    own = noisy.positives()[noisy.caption_image, np.arange(noisy.num_captions)]
    moved = noisy.caption_meta["moved"]
    (row,) = noise_census(noisy).to_dict("records")
    assert (row["n_captions"], row["moved"], row["mismatched"], row["truth"]) == (600, 300, int((moved & ~own).sum()), "exact")
    assert row["moved_share"] == 0.5 and row["mismatched_share"] == pytest.approx((moved & ~own).mean()) and row["mismatched"] < 300
    full = caption_census(noisy, by=None).iloc[0]
    assert (full.moved, full.mismatched) == (row["moved"], row["mismatched"])
    (clean,) = noise_census(make_shapes("train", n_images=10, seed=0)).to_dict("records")
    assert (clean["moved"], clean["mismatched"]) == (0, 0)
    labels = PairDataset("t", ArrayImages(np.zeros((4, 4, 4, 3), np.uint8)), [f"c{i}" for i in range(8)], [0, 0, 1, 1, 2, 2, 3, 3],
                         ["0", "1", "2", "3"])
    (lab,) = noise_census(inject_noise(labels, 0.5, seed=0)).to_dict("records")
    assert lab["truth"] == "labels" and lab["moved"] == lab["mismatched"] == 4


def test_bad_preset():
    with pytest.raises(VlmkitError, match="preset"):
        make_shapes("test", 5, preset="flickr")


# ------------------------------------------------------------------ the web domain (the stand-in's pretraining)
def test_web_domain_is_deterministic_and_shifted_from_the_coco_preset():
    from vlmkit.data.shapes import ALL_BACKGROUNDS, WEB_SYNONYMS, domain_census

    a = make_shapes("pretrain", n_images=150, captions="web", web_per_image=2, preset="web", seed=3)
    b = make_shapes("pretrain", n_images=150, captions="web", web_per_image=2, preset="web", seed=3)
    assert np.array_equal(a.images.array, b.images.array) and a.captions == b.captions
    coco = make_shapes("test", n_images=150)
    web, target = domain_census(a), domain_census(coco)
    # backgrounds: never the coco preset's striped / checkered; mostly kinds coco never draws
    assert web["background:striped"] == web["background:checkered"] == 0
    assert web["background:gradient"] + web["background:tinted"] + web["background:speckled"] > 0.4
    assert target["background:gradient"] == 0
    bg_names = {ALL_BACKGROUNDS[i] for i in a.image_meta["background"]}
    assert not bg_names & {"striped", "checkered"}
    # alt-text: short, few objects, rarely positions or counts; web synonyms appear
    assert web["words per caption"] < 0.5 * target["words per caption"]
    assert web["objects stated per caption"] < 1.5 < target["objects stated per caption"]
    assert web["states:position"] < 0.25 and web["states:count"] < 0.25
    words = {w for c in a.captions for w in c.replace(",", " ").split()}
    assert {"dot", "violet"} & words and not {"striped", "checkered"} & words
    assert set(WEB_SYNONYMS.values()) - words != set(WEB_SYNONYMS.values())
    # image statistics: a colour cast and stronger jitter make the web images more colourful
    assert web["colourfulness (mean channel spread)"] > 1.5 * target["colourfulness (mean channel spread)"]
    # exact truth: most captions are true of their image (some are about another, some wrong)
    assert 0.75 < web["captions true of their image"] < 0.97 and target["captions true of their image"] == 1.0


def test_web_captions_truth_matches_their_words():
    """Each alt-text's CaptionSpec is what its words say: a spec attribute appears as its word or
    the word's web synonym."""
    from vlmkit.data.shapes import COLOURS, SHAPES, SIZES, WEB_SYNONYMS

    ds = make_shapes("pretrain", n_images=80, captions="web", web_per_image=2, preset="web")
    for text, clauses in zip(ds.captions, ds.truth.spec.clauses):
        for c in clauses:
            for a, names in ((0, SHAPES), (1, COLOURS), (2, SIZES)):
                if c[a] >= 0:
                    word = names[c[a]]
                    assert word in text or WEB_SYNONYMS.get(word, "\0") in text, (text, word)


def test_dense_recaptions_name_every_object_and_keep_exact_truth():
    """``web_dense=1``: every caption names every object of the image it is about (a dense re-caption),
    still true to its words; ``web_dense=0`` draws nothing extra, so the captions equal the default's."""
    from vlmkit.data.shapes import SHAPES, WEB_SYNONYMS, alt_text_captions, domain_census

    plain = make_shapes("pretrain", n_images=120, captions="web", web_per_image=2, preset="web", seed=4)
    zero = make_shapes("pretrain", n_images=120, captions="web", web_per_image=2, preset="web", seed=4, web_dense=0.0)
    assert zero.captions == plain.captions
    rng = np.random.default_rng(0)
    objs, bgs = plain.truth.objs, plain.truth.backgrounds
    texts, spec = alt_text_captions(objs, bgs, rng, per_image=1, p_dense=1.0, p_other=0.0, p_wrong=0.0)
    stated = (spec.clauses[:, :, 0] >= 0).sum(axis=1)
    assert np.array_equal(stated, (objs[:, :, 0] >= 0).sum(axis=1))  # every object named
    assert (spec.clauses[:, :, 1] >= 0).sum() > 0.85 * stated.sum()  # colour almost always
    for text, clauses in zip(texts, spec.clauses):
        for c in clauses[clauses[:, 0] >= 0]:
            word = SHAPES[c[0]]
            assert word in text or WEB_SYNONYMS.get(word, "\0") in text, (text, word)
    half = make_shapes("pretrain", n_images=400, captions="web", web_per_image=2, preset="web", web_dense=0.5)
    web, dense = domain_census(plain), domain_census(half)
    assert dense["objects stated per caption"] > web["objects stated per caption"] + 0.3
    assert dense["background:striped"] == 0  # the images are the web domain's either way


def test_dense_recaptions_are_checked():
    from vlmkit.data.shapes import alt_text_captions

    with pytest.raises(VlmkitError, match="web_dense"):
        make_shapes("test", 5, captions="web", web_dense=0.5)  # coco preset: no alt-text to re-caption
    with pytest.raises(VlmkitError, match="web_dense"):
        make_shapes("test", 5, preset="web", web_dense=0.5)  # exact captions: it would be silently ignored
    with pytest.raises(VlmkitError, match="p_dense"):
        alt_text_captions(np.zeros((1, 3, 4), np.int8), np.zeros(1, np.int8), np.random.default_rng(0), p_dense=1.5)
