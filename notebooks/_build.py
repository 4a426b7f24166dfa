"""Generate the numbered workbook notebooks (run: python notebooks/_build.py).

Each notebook: narrative markdown, ONE cell tagged ``parameters`` (annotated assignments
with a comment each, so ``papermill --help-notebook`` documents them), a cell of derived
values, then calls into vlmkit and figures.  All logic lives in vlmkit (tested there).
"""

from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).parent
RUN_DIR = 'run_dir: str = "runs/interactive"  # the run directory every notebook reads and writes'
SETUP = """import warnings; warnings.filterwarnings("ignore")
from pathlib import Path
import numpy as np, pandas as pd, torch
from vlmkit import workbook as wb
from vlmkit import viz
run = wb.prepare_run_dir(run_dir)
HEADLESS = wb.headless()  # papermill / vlmkit run: static figures only
"""


def nb(name, cells):
    book = nbf.v4.new_notebook()
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, src in cells:
        if kind == "md":
            book.cells.append(nbf.v4.new_markdown_cell(src.strip()))
        elif kind == "params":
            c = nbf.v4.new_code_cell(src.strip())
            c.metadata["tags"] = ["parameters"]
            book.cells.append(c)
        else:
            book.cells.append(nbf.v4.new_code_cell(src.strip()))
    for i, cell in enumerate(book.cells):  # stable ids: rebuilding gives a clean diff
        cell.id = f"{name[:2]}-{i:02d}"
    nbf.write(book, HERE / f"{name}.ipynb")


nb("00_primer", [
    ("md", """
# 00 · Primer: the modality gap from scratch

CLIP-style models embed images and captions on one unit sphere, yet the two clouds sit apart:
the **modality gap** (Liang et al., *Mind the Gap*, 2022). Two causes are shown here with no data:

1. **The cone effect.** A randomly initialised encoder already maps its inputs into a narrow
   cone; two encoders give two different cones — a gap before any training.
2. **Temperature.** Contrastive training at a low temperature τ matches pairs without pulling
   the cones together, so the gap survives; at high τ it closes.
3. **Shifting.** Closing the gap by hand (moving the clouds along the gap direction) does not
   buy retrieval and raises the loss the model was trained on.
"""),
    ("params", f"""{RUN_DIR}
seed: int = 0  # random seed of the toy embeddings and the random-weight model
primer_steps: int = 200  # optimisation steps of the free-embedding toy per temperature
temperatures: list = [0.01, 0.05, 0.1, 1.0]  # contrastive temperatures τ compared in the toy
shifts: list = [-0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0]  # shift amounts along the gap (1 makes the centroids meet)
"""),
    ("code", SETUP + """from vlmkit import analysis
from vlmkit.data import make_shapes
"""),
    ("md", "## 1 · Two cones from random weights\nA random-weight `vlmkit-tiny` encodes 100 embedded images and their captions."),
    ("code", """small = make_shapes("test", n_images=100, seed=seed)
rand = analysis.random_init_features(small, seed=seed)
stats = analysis.cone_stats(rand.images, rand.texts)
print({k: round(v, 3) for k, v in stats.items()})
wb.write_table(run, "primer_cones", pd.DataFrame([stats]), protocol="random-init vlmkit-tiny, 100 shapes test images")
fig = viz.embedding_figure(rand.images, rand.texts, small.caption_image, n_lines=40,
                           title="Random-weight encoders: two cones (PCA, 100 shapes test images)")
wb.show(fig, run, "00_random_init_cones")"""),
    ("md", "## 2 · Temperature decides whether training closes the gap\nFree unit embeddings start as two cones and are trained with the symmetric CLIP loss."),
    ("code", """curves = analysis.temperature_gap(temperatures, n=128, d=32, steps=primer_steps, seed=seed)
wb.write_table(run, "primer_temperature", curves, protocol="free embeddings, two cones, symmetric InfoNCE")
import plotly.express as px
fig = px.line(curves, x="step", y="gap", color=curves["temperature"].astype(str), markers=True,
              labels={"step": "training step", "gap": "gap ‖c_img − c_txt‖", "color": "temperature τ"},
              title="Free embeddings: modality gap during contrastive training, per temperature")
wb.show(fig, run, "00_temperature_gap")
curves.groupby("temperature").last()[["gap", "loss", "r1"]]"""),
    ("md", """## 3 · Shifting the clouds together
Take the embeddings trained at the lowest τ (their gap survived training) and move both clouds
along the gap direction Δ = c_img − c_txt, renormalising after the move (shift 1 makes the
centroids meet). Retrieval barely changes, but the contrastive loss at that τ rises: the
trained model *prefers* its gap (Liang et al., 2022)."""),
    ("code", """x_free, y_free = analysis.free_embeddings(min(temperatures), n=128, d=32, steps=primer_steps, seed=seed)
pairs = np.arange(len(x_free))
shift_free = analysis.embedding_shift(x_free, y_free, pairs, shifts, temperature=min(temperatures))
wb.write_table(run, "primer_shift", shift_free, protocol=f"free embeddings trained at τ={min(temperatures)}; R@1 over 128 row-paired items")
wb.show(viz.gap_shift_figure(shift_free, title=f"Free embeddings (τ={min(temperatures)}): shifting the clouds along Δ"), run, "00_shift")
shift_free"""),
    ("md", "## 4 · Interactive: pick τ, drag the shift (static figures above when headless)"),
    ("code", """if HEADLESS:
    print("headless run: the figures above are the static views")
else:
    import ipywidgets as W
    def _tau(tau):
        sub = curves[curves.temperature == tau]
        px.line(sub, x="step", y="gap", title=f"gap during training at τ={tau}",
                labels={"step": "training step", "gap": "gap"}).show()
    def _shift(amount):
        xs, ys = analysis.shift_embeddings(x_free, y_free, amount)
        viz.embedding_figure(xs, ys, pairs, n_lines=40, title=f"shift {amount:.2f}: gap {float((xs.mean(0) - ys.mean(0)).norm()):.3f}").show()
    W.interact(_tau, tau=W.Dropdown(options=sorted(curves.temperature.unique()), description="τ"))
    W.interact(_shift, amount=W.FloatSlider(value=0.0, min=-0.5, max=1.0, step=0.05, description="shift"))"""),
])

nb("01_data_and_model", [
    ("md", """
# 01 · Data and model

Loads the evaluation data (the **embedded shapes** test split by default: exact truth for every
image–caption pair) and the model (the **stand-in tiny CLIP** pretrained here by `pretrain_tiny`,
cached across runs, or any open_clip model/checkpoint), encodes the test set, and counts the
**false negatives** that one-to-one labels create.
"""),
    ("params", f"""{RUN_DIR}
dataset: str = "shapes"  # shapes (the embedded data) or a vlmkit.data.load_dataset spec of real test data
test_images: int = 1000  # test images of the embedded data (5 captions each)
seed: int = 0  # data and training seed
model: str = "vlmkit-tiny"  # open_clip architecture name
pretrained: str = ""  # empty: the embedded stand-in (pretrain_tiny); else an open_clip tag or a checkpoint file/dir
pretrain_steps: int = 170  # pretraining steps of the stand-in checkpoint
pretrain_images: int = 10000  # images of the web-like pretraining split
pretrain_batch: int = 256  # pretraining batch size
cache_dir: str = ""  # checkpoint and feature cache; empty: $VLMKIT_CACHE or ~/.cache/vlmkit
device: str = "auto"  # auto (GPU when present), cpu or cuda
"""),
    ("code", SETUP + """from vlmkit.features import encode_dataset
from vlmkit.metrics import false_negative_census
from vlmkit.models.factory import load_model
from vlmkit.pretrain import PretrainConfig, pretrain_tiny
cache = Path(cache_dir) if cache_dir else wb.default_cache_dir()
"""),
    ("code", """if pretrained:
    loaded = load_model(model, pretrained=pretrained, device=device)
    pretrained_dir = pretrained
else:
    cfg = PretrainConfig(model=model, n_images=pretrain_images, steps=pretrain_steps, batch_size=pretrain_batch, seed=seed)
    pretrained_dir = str(cache / "pretrained" / cfg.key())
    loaded = pretrain_tiny(pretrained_dir, cfg, device=device)
ds = wb.load_test_dataset(dataset, test_images, seed)
wb.save_data_spec(run, dataset, test_images, seed, model=model, pretrained_dir=pretrained_dir, name=ds.name)
print(ds, "| model:", model, "from", pretrained_dir)"""),
    ("code", """feats = encode_dataset(loaded, ds, cache_dir=cache / "features")
wb.register_method(run, "pretrained", img=feats.images, txt=feats.texts,
                   info={"score_kind": "cosine", "description": "zero-shot: the pretrained checkpoint"})
print("test features:", tuple(feats.images.shape), tuple(feats.texts.shape))"""),
    ("md", "## False-negative census\nFor every caption: the images it is *true of* other than its own. By caption specificity (0 = count only … 4 = full scene)."),
    ("code", """if ds.has_extended_positives:
    census = false_negative_census(ds)
    wb.write_table(run, "census", census, protocol=f"false-negative census, {'exact' if ds.has_exact_truth else 'partial'} truth, {ds.name}")
    wb.show(viz.table_figure(census.drop(columns=["split"]), title=f"False-negative census ({ds.name}; one-to-one labels vs exact truth)"),
            run, "01_census")
    display(census) if not HEADLESS else print(census.to_string())
else:
    print(f"note: {ds.name} has no extended truth; the census is skipped")"""),
    ("code", """rows = [{"caption": ds.captions[j], "specificity": int(ds.caption_meta["specificity"][j]) if "specificity" in ds.caption_meta else -1,
         "images it is true of": int(ds.positives(None, [j]).sum())} for j in ds.captions_of(0)]
examples = pd.DataFrame(rows)
wb.show(viz.table_figure(examples, title=f"Captions written for image 0 of {ds.name} and how many test images each is true of"), run, "01_example_captions")
print(examples.to_string())"""),
])

nb("02_finetune", [
    ("md", """
# 02 · Fine-tuning methods and VACSR

Fine-tunes the pretrained checkpoint with each method in `methods` — `contrastive`, `sigmoid`,
the m²-Mix family (`m2mix`, `vmix`, `lmix`, `vlmix`, `all`) and `vacsr-joint` (encoders and the
VACSR adapter trained together) — on the noisy training split (`noise_ratio` of captions
permuted), keeps the epoch with the best validation RSUM, encodes the test set with it, and
trains the **VACSR** adapter on frozen pretrained features (the cheap path). Uses the GPU when
present (`device="auto"`). Each method's run directory (`methods/<name>/`) holds its checkpoint,
so an interrupted notebook resumes where it stopped.
"""),
    ("params", f"""{RUN_DIR}
methods: list = ["contrastive", "m2mix"]  # fine-tuning methods of vlmkit.train (empty list: none)
train_dataset: str = ""  # real data only: load_dataset spec of the training data (empty: no fine-tuning)
train_images: int = 2000  # training images (5 captions each) of the embedded data
val_images: int = 200  # validation images for checkpoint selection
noise_ratio: float = 0.2  # fraction of training captions permuted
epochs: int = 2  # fine-tuning epochs
batch_size: int = 128  # fine-tuning batch size
lr: float = 5e-4  # fine-tuning learning rate (suits the tiny stand-in; about 1e-5 for real CLIPs)
seed: int = 0  # training seed
vacsr: bool = True  # train the VACSR adapter on frozen pretrained features
vacsr_epochs: int = 3  # VACSR epochs on frozen features
vacsr_batch: int = 128  # captions per VACSR batch (each scored against every image in it)
vacsr_cosine_skip: float = 30.0  # initial scale of the adapter skip path a(v.t); 0 is the paper adapter
cache_dir: str = ""  # checkpoint and feature cache; empty: $VLMKIT_CACHE or ~/.cache/vlmkit
device: str = "auto"  # auto (GPU when present), cpu or cuda
"""),
    ("code", SETUP + """from vlmkit.features import encode_dataset
from vlmkit.models.factory import load_model
from vlmkit.train import finetune
from vlmkit.utils import resolve_device
from vlmkit.vacsr import load_adapter, score_all
spec = wb.run_data_spec(run)
cache = Path(cache_dir) if cache_dir else wb.default_cache_dir()
ds = wb.run_dataset(run)
method_list = wb.parse_methods(methods)
if spec["dataset"] != "shapes" and not train_dataset and method_list:
    print(f"NOTE: real test data and no train_dataset: fine-tuning of {method_list} skipped (zero-shot only)")
    method_list = []
print("device:", resolve_device(device), "| methods:", method_list, "| noise ratio:", noise_ratio)"""),
    ("code", """for name in method_list:
    result = finetune(wb.train_config(spec, name, train_dataset=train_dataset, train_images=train_images, val_images=val_images,
                                      noise_ratio=noise_ratio, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device),
                      out_dir=run / "methods" / name, resume=True)
    tuned = load_model(pretrained=result.best_dir, device=device)
    f = encode_dataset(tuned, ds, cache_dir=cache / "features")
    info = {"score_kind": "cosine", "description": f"fine-tuned: {name}", "best_dir": str(result.best_dir), "best_epoch": result.best_epoch}
    if name == "vacsr-joint":  # the adapter trained with the encoders scores the test pairs
        adapter = load_adapter(result.best_dir / "vacsr_adapter", device=device)
        s, u = score_all(adapter, f.images, f.texts, device=device, show_progress=False)
        wb.register_method(run, name, img=f.images, txt=f.texts, scores=s, uncertainty=u, info={**info, "score_kind": "logit"})
    else:
        wb.register_method(run, name, img=f.images, txt=f.texts, info=info)
    h = pd.DataFrame(result.history)
    wb.write_table(run, f"history_{name}", h, protocol=f"validation R@K ({h.val_protocol.iloc[-1]}), noisy train split")
    print(f"{name}: best epoch {result.best_epoch}, val RSUM {result.best_rsum:.1f} -> registered")"""),
    ("md", "## VACSR on frozen features\nThe adapter scores every pair and gives it an uncertainty; trained on the noisy training split."),
    ("code", """if vacsr and (spec["dataset"] == "shapes" or train_dataset):
    from vlmkit.vacsr import VACSRConfig, train_on_features
    pre = load_model(pretrained=spec["pretrained_dir"], device=device)
    train = wb.training_data(spec, train_dataset, train_images, noise_ratio, seed)
    tf = encode_dataset(pre, train, cache_dir=cache / "features")
    adapter, hist = train_on_features(tf.images, tf.texts, torch.as_tensor(train.caption_image),
                                      VACSRConfig(dim=int(tf.images.shape[1]), cosine_skip=vacsr_cosine_skip), epochs=vacsr_epochs,
                                      batch_size=vacsr_batch, seed=seed, device=device,
                                      checkpoint_dir=run / "methods" / "vacsr", resume=True, show_progress=True)
    test = wb.load_method(run, "pretrained")
    s, u = score_all(adapter, test["img"], test["txt"], device=device, show_progress=False)
    wb.register_method(run, "vacsr", scores=s, uncertainty=u,
                       info={"score_kind": "logit", "description": "VACSR adapter on frozen pretrained features"})
    h = pd.DataFrame(hist)
    wb.write_table(run, "vacsr_history", h, protocol="VACSR training history (noisy train split)")
    print(h.tail(3).to_string())
else:
    print("VACSR on frozen features skipped (vacsr=False, or real test data without train_dataset)")"""),
    ("code", """reg = pd.DataFrame([{"method": k, **{c: v[c] for c in ("description", "score_kind") if c in v}} for k, v in wb.list_methods(run).items()])
wb.write_table(run, "methods", reg, protocol=f"methods of this run (noise ratio {noise_ratio})")
print(reg.to_string())"""),
])

nb("03_modality_gap", [
    ("md", """
# 03 · The modality gap

The gap Δ = centroid(images) − centroid(captions) of each method's test embeddings, the two
clouds in 2-D/3-D (PCA of the union, UMAP optional), and the **embedding-shift experiment**:
move both clouds along Δ, renormalise, and watch the gap, R@1 and the contrastive loss.
"""),
    ("params", f"""{RUN_DIR}
projection: str = "pca"  # pca, umap or both
max_points: int = 1500  # images plotted per projection (their captions come along)
shifts: list = [-0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0]  # shift amounts (1 makes the centroids meet)
temperature: float = 0.01  # τ of the contrastive loss in the shift experiment
seed: int = 0  # subsampling seed
"""),
    ("code", SETUP + """from vlmkit import analysis
from vlmkit.metrics import modality_gap
ds = wb.run_dataset(run)
methods = {k: v for k, v in wb.list_methods(run).items() if v.get("has_features")}
print("methods with features:", list(methods))"""),
    ("code", """rows = []
for name in methods:
    m = wb.load_method(run, name)
    rows.append({"method": name, "gap": modality_gap(m["img"], m["txt"]).distance, **analysis.cone_stats(m["img"][:500], m["txt"][:500])})
gaps = pd.DataFrame(rows)
wb.write_table(run, "gap", gaps[["method", "gap"]], protocol=f"centroid distance of unit test embeddings, {ds.name}")
wb.show(viz.gap_bar_figure(gaps, title=f"Modality gap per method ({ds.name} test)"), run, "03_gap_per_method")
print(gaps.to_string())"""),
    ("code", """keep, caps = viz.subsample_pairs(ds.num_images, ds.caption_image, max_points, seed)
remap = -np.ones(ds.num_images, dtype=int); remap[keep] = np.arange(len(keep))
kinds = ["pca", "umap"] if projection == "both" else [projection]
for name in methods:
    m = wb.load_method(run, name)
    for kind in kinds:
        fig = viz.embedding_figure(m["img"][keep], m["txt"][caps], remap[ds.caption_image[caps]], method=kind, dim=2,
                                   title=f"{name}: image and caption embeddings ({kind.upper()}, {len(keep)} {ds.name} images)")
        wb.show(fig, run, f"03_embeddings_{name}_{kind}")
m = wb.load_method(run, "pretrained")
fig3 = viz.embedding_figure(m["img"][keep], m["txt"][caps], remap[ds.caption_image[caps]], method="pca", dim=3,
                            title=f"pretrained: embeddings in 3-D (PCA, {ds.name})")
wb.show(fig3, run, "03_embeddings_pretrained_pca3d")"""),
    ("md", "## Embedding shift along the gap direction"),
    ("code", """shift_rows = []
for name in methods:
    m = wb.load_method(run, name)
    t = analysis.embedding_shift(m["img"], m["txt"], ds.caption_image, shifts, temperature)
    t.insert(0, "method", name)
    shift_rows.append(t)
shift = pd.concat(shift_rows)
wb.write_table(run, "gap_shift", shift, protocol=f"embedding shift; R@1 on one-to-one labels (full {ds.num_images}x{ds.num_captions}); loss on first caption per image, τ={temperature}")
wb.show(viz.gap_shift_figure(shift[shift.method == "pretrained"], title=f"pretrained: shifting the clouds along Δ ({ds.name}, τ={temperature})"), run, "03_gap_shift")
print(shift.to_string())"""),
    ("code", """if not HEADLESS:
    import ipywidgets as W
    W.interact(lambda method: viz.embedding_figure(wb.load_method(run, method)["img"][keep], wb.load_method(run, method)["txt"][caps],
               remap[ds.caption_image[caps]], title=f"{method} (PCA)").show(), method=W.Dropdown(options=list(methods)))
else:
    print("headless: one static figure per method was saved above")"""),
])

nb("04_mixed_retrievals", [
    ("md", """
# 04 · Mixed retrievals along the geodesic

m²-Mix builds hard negatives m = slerp(v, t; λ) between an image v and its caption t.
What lies near such a mix? For λ from 0 (the caption) to 1 (the image), the nearest gallery
items (images ■ and captions ●, green when true for the query pair). Then: are mixed
negatives harder than the original ones?
"""),
    ("params", f"""{RUN_DIR}
method: str = "pretrained"  # the registered method whose embeddings are used
query: int = 0  # index of the query image (its first caption is t)
k: int = 5  # gallery items shown per λ
n_lambdas: int = 11  # λ grid size over [0, 1]
mix_lambda: float = 0.5  # λ of the mixed negatives in the hardness comparison
max_pairs: int = 400  # pairs in the hardness comparison
seed: int = 0  # subsampling seed
"""),
    ("code", SETUP + """from vlmkit import analysis
ds = wb.run_dataset(run)
m = wb.load_method(run, method)
first = wb.one_caption_per_image(ds.caption_image, ds.num_images)
lambdas = np.linspace(0, 1, n_lambdas)"""),
    ("code", """def path_table(q):
    t = analysis.slerp_neighbours(m["img"][q], m["txt"][first[q]], m["img"], m["txt"], lambdas, k)
    cap = first[q]
    t["relevant"] = [bool(ds.positives([r.index], [cap])[0, 0]) if r.modality == "image" else bool(ds.positives([q], [r.index])[0, 0])
                     for r in t.itertuples()]
    t["label"] = [f"image {r.index}" if r.modality == "image" else ds.captions[r.index] for r in t.itertuples()]
    return t

path = path_table(query)
wb.write_table(run, "slerp_path", path, protocol=f"{method}: top-{k} of slerp(v, t; λ) among {ds.num_images} images + {ds.num_captions} captions")
title = f"{method}: nearest items along slerp(image {query}, “{ds.captions[first[query]][:50]}”; λ)"
wb.show(viz.slerp_path_figure(path, title=title), run, "04_slerp_path")
print(path[path["rank"] == 1][["lam", "modality", "label", "similarity", "relevant"]].to_string())"""),
    ("code", """if not HEADLESS:
    import ipywidgets as W
    def _view(q, lam):
        t = path_table(q)
        print(t[np.isclose(t.lam, lambdas[np.abs(lambdas - lam).argmin()])][["rank", "modality", "label", "similarity", "relevant"]])
        viz.slerp_path_figure(t, title=f"query image {q}").show()
    W.interact(_view, q=W.IntSlider(0, 0, ds.num_images - 1), lam=W.FloatSlider(value=0.5, min=0, max=1, step=0.1, description="λ"))
else:
    print("headless: static view saved (query", query, ")")"""),
    ("md", "## Mixed vs original negatives"),
    ("code", """hard = analysis.mixed_negative_hardness(m["img"], m["txt"][first], lam=mix_lambda, max_pairs=max_pairs, seed=seed)
summary = analysis.hardness_summary(hard)
wb.write_table(run, "hardness", summary, protocol=f"{method}: cosine(anchor image, negative), {min(max_pairs, ds.num_images)} pairs, first caption per image")
wb.show(viz.hardness_figure(hard, title=f"{method}: original vs m²-Mix negatives (λ={mix_lambda}, {ds.name})"), run, "04_hardness")
print(summary.to_string())"""),
])

nb("05_uncertainty", [
    ("md", """
# 05 · Uncertainty vs accuracy (VACSR)

VACSR Fig. 3: per query, the uncertainty of its top-1 pair; 10 equal-width bins; R@1 per
bin; Pearson r (the paper reports r ≈ −0.93). Correct = the top-1 is *true* (exact truth).
Also: do false negatives get higher uncertainty than true negatives (AUROC)?
"""),
    ("params", f"""{RUN_DIR}
n_bins: int = 10  # equal-width uncertainty bins
query: int = 0  # query shown by the query picker (an image for i2t, a caption for t2i)
k: int = 10  # items shown per query
"""),
    ("code", SETUP + """from vlmkit import analysis
from vlmkit.metrics import false_negative_auroc, top1_uncertainty, uncertainty_bins, uncertainty_correlation
ds = wb.run_dataset(run)
with_unc = [k for k, v in wb.list_methods(run).items() if v.get("has_uncertainty")]
print("methods with uncertainty:", with_unc)"""),
    ("code", """rows = []
P = ds.positives()
for name in with_unc:
    m = wb.load_method(run, name)
    for d, S, U, Pd in (("i2t", m["scores"], m["uncertainty"], P), ("t2i", m["scores"].T, m["uncertainty"].T, P.T)):
        u, ok = top1_uncertainty(S, Pd, U)
        bins = uncertainty_bins(u, ok, n_bins)
        c = uncertainty_correlation(u, ok, n_bins)
        rows.append({"method": name, "direction": d, "pearson": c["pearson"], "spearman": c["spearman"], "n_queries": c["n_queries"]})
        wb.write_table(run, f"uncertainty_bins_{name}_{d}", bins, protocol=f"top-1 uncertainty bins, correct = exact truth, {ds.name}")
        wb.show(viz.uncertainty_figure(bins, c["pearson"], title=f"{name} {d}: R@1 per uncertainty bin ({ds.name}, exact truth)"), run, f"05_uncertainty_{name}_{d}")
    if ds.has_extended_positives:
        a = false_negative_auroc(m["uncertainty"], ds.caption_image, P)
        rows.append({"method": name, "direction": "pairs", "fn_auroc": a["auroc"], "n_queries": a["n_false_negatives"]})
unc = pd.DataFrame(rows)
if with_unc:
    wb.write_table(run, "uncertainty", unc, protocol=f"uncertainty–R@1 Pearson r over {n_bins} bins; FN AUROC over all unlabelled pairs ({ds.name})")
    print(unc.to_string())
else:
    print("note: no method with uncertainty in this run (VACSR was not trained); nothing to show")"""),
    ("md", "## Query picker: a query's top-K with scores, uncertainties and truth\nIn JupyterLab: pick the method, the direction and the query. Headless: query `query` is saved as a table."),
    ("code", """def topk_table(name, direction, q):
    m = wb.load_method(run, name)
    S, U = m["scores"], m["uncertainty"]
    L, T = ds.labels(), P
    if direction == "t2i":
        S, U, L, T = S.T, (U.T if U is not None else None), L.T, T.T
    t = analysis.query_topk(S, q, k=k, uncertainty=U, labels=L, truth=T)
    t["item"] = [f"image {i}" for i in t["index"]] if direction == "t2i" else [ds.captions[i] for i in t["index"]]
    return t

if with_unc:
    pick = topk_table(with_unc[0], "i2t", query)
    wb.write_table(run, "query_topk", pick, protocol=f"{with_unc[0]}: top-{k} captions of image {query}, labels = one-to-one, true = exact truth")
    print(pick.to_string())
if with_unc and not HEADLESS:
    import ipywidgets as W
    W.interact(lambda method, direction, q: display(topk_table(method, direction, q)),
               method=W.Dropdown(options=list(wb.list_methods(run))), direction=W.Dropdown(options=["i2t", "t2i"]),
               q=W.IntText(value=query, description="query"))"""),
])

nb("06_similarity_histograms", [
    ("md", """
# 06 · Similarity by pair type

One-to-one labels call every other caption a negative; the exact truth splits those into
**false negatives** (the caption is true of the image) and **true negatives**. A good
model scores false negatives like positives — and a loss that pushes them down hurts.
"""),
    ("params", f"""{RUN_DIR}
max_negatives: int = 200000  # true negatives sampled per histogram
"""),
    ("code", SETUP + """ds = wb.run_dataset(run)
L, P = ds.labels(), ds.positives()
reg = wb.list_methods(run)"""),
    ("code", """rows = []
for name, info in reg.items():
    m = wb.load_method(run, name)
    S = m["scores"].numpy()
    kind = "VACSR logit μ" if info.get("score_kind") == "logit" else "cosine similarity"
    fig = viz.similarity_histogram(S, L, P, title=f"{name}: {kind} by pair type ({ds.name}, exact truth)", x_label=kind,
                                   max_negatives=max_negatives)
    wb.show(fig, run, f"06_similarity_{name}")
    t = viz.pair_types(L, P)
    for k, label in enumerate(("positive", "false negative", "true negative")):
        rows.append({"method": name, "pair_type": label, "n": int((t == k).sum()), "mean": float(S[t == k].mean()) if (t == k).any() else np.nan})
tab = pd.DataFrame(rows)
wb.write_table(run, "similarity_by_type", tab, protocol=f"mean score per pair type over all {ds.num_images}x{ds.num_captions} pairs, exact truth")
print(tab.to_string())"""),
])

nb("07_reliability", [
    ("md", """
# 07 · Calibration

Reliability diagrams of top-1 retrieval: confidence = softmax over the gallery at temperature
τ (cosine methods) or sigmoid(μ) (VACSR); correct = top-1 is true (exact truth). ECE over
15 equal-width bins.
"""),
    ("params", f"""{RUN_DIR}
temperature: float = 0.01  # softmax temperature for cosine-similarity confidences
n_bins: int = 15  # reliability bins
"""),
    ("code", SETUP + """from vlmkit.metrics import retrieval_calibration
ds = wb.run_dataset(run)
P = ds.positives()
reg = wb.list_methods(run)"""),
    ("code", """rows = []
for name, info in reg.items():
    m = wb.load_method(run, name)
    conf = "sigmoid" if info.get("score_kind") == "logit" else "softmax"
    for d, S, Pd in (("i2t", m["scores"], P), ("t2i", m["scores"].T, P.T)):
        ece, bins = retrieval_calibration(S, Pd, confidence=conf, temperature=temperature, n_bins=n_bins)
        rows.append({"method": name, "direction": d, "confidence": conf if conf == "sigmoid" else f"softmax τ={temperature}", "ece": 100 * ece})
        wb.show(viz.reliability_figure(bins, ece, title=f"{name} {d} ({ds.name}, top-1, exact truth)"), run, f"07_reliability_{name}_{d}")
cal = pd.DataFrame(rows)
wb.write_table(run, "calibration", cal, protocol=f"ECE (%) of top-1 retrieval, {n_bins} bins, correct = exact truth, {ds.name}")
print(cal.to_string())"""),
    ("code", """if not HEADLESS:
    import ipywidgets as W
    W.interact(lambda method: print(cal[cal.method == method]), method=W.Dropdown(options=list(reg)))"""),
])

nb("08_report", [
    ("md", """
# 08 · Report

Retrieval under the standard protocols (each table names its protocol), the gap, calibration
and uncertainty per method — and, given several `run_dirs`, the same across methods, seeds
and noise ratios.
"""),
    ("params", f"""{RUN_DIR}
run_dirs: list = []  # other run directories to compare with this one (batch report)
"""),
    ("code", SETUP + """from vlmkit.metrics import evaluate_similarity
ds = wb.run_dataset(run)
reg = wb.list_methods(run)
protocols = ("coco5k", "eccv") + (("coco1k",) if ds.num_images % 1000 == 0 and ds.num_images > 1000 else ())"""),
    ("code", """frames = []
for name in reg:
    m = wb.load_method(run, name)
    frames.append(evaluate_similarity(m["scores"], ds.caption_image, positives=ds if ds.has_extended_positives else None,
                                      protocols=protocols, uncertainty=m["uncertainty"], method=name))
ret = pd.concat(frames, ignore_index=True)
wb.write_table(run, "retrieval", ret)
wide = ret[ret.metric.isin(["R@1", "R@5", "R@10", "RSUM", "mAP@R", "R-P"])].pivot_table(index=["protocol", "direction", "metric"], columns="method", values="value").reset_index()
wb.show(viz.table_figure(wide, title=f"Retrieval on {ds.name} — protocol per row (one-to-one labels: 'full NxM'; exact truth: ECCV-style)"), run, "08_retrieval_table")
print(wide.to_string())"""),
    ("code", """summary = wb.method_summary(run)
wb.write_table(run, "summary", summary)
wb.show(viz.table_figure(summary, title=f"Summary per method ({ds.name}; protocol in each column name)"), run, "08_summary_table")
print(summary.T.to_string())"""),
    ("code", """sections = [viz.table_html(summary, "Summary per method", f"{ds.name}; protocol in each column name."),
            viz.table_html(wide, "Retrieval", "Protocol per row: 'full NxM' = R@K on the whole test split with one-to-one labels; ECCV-style = mAP@R/R-P over exact extended positives.")]
for name, note in (("gap", "Centroid distance of unit test embeddings."), ("calibration", "ECE (%) of top-1 retrieval; correct = exact truth."),
                   ("uncertainty", "VACSR Fig. 3 protocol: Pearson r of bin-mean uncertainty vs bin R@1."), ("census", "False negatives created by one-to-one labels."),
                   ("hardness", "Cosine of anchor image to original vs mixed negatives.")):
    t = wb.read_table(run, name)
    if t is not None:
        sections.append(viz.table_html(t, name, note))
if run_dirs:
    across = wb.summarise_runs([run] + [Path(r) for r in run_dirs])
    wb.write_table(run, "across_runs", across)
    sections.insert(0, viz.table_html(across, "Across runs", "One row per run and method; parameters of each grid point first."))
figs = sorted(p.name for p in (run / "figures").glob("*.html"))
links = "<h2>Figures</h2><ul>" + "".join(f"<li><a href='../figures/{f}'>{f}</a></li>" for f in figs) + "</ul>"
(run / "report" / "report.html").write_text("<html><head><meta charset='utf-8'><title>vlmkit report</title></head><body><h1>vlmkit report</h1>"
                                            + "".join(sections) + links + "</body></html>")
print("report:", run / "report" / "report.html")"""),
])
