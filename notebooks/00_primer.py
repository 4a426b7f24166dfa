# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Primer: the modality gap from scratch
#
# CLIP-style models embed images and captions on one unit sphere, yet the two clouds sit apart:
# the **modality gap** (Liang et al., *Mind the Gap*, 2022). Two causes are shown here with no data:
#
# 1. **The cone effect.** A randomly initialised encoder already maps its inputs into a narrow
#    cone; two encoders give two different cones — a gap before any training.
# 2. **Temperature.** Contrastive training at a low temperature τ matches pairs without pulling
#    the cones together, so the gap survives; at high τ it closes.
# 3. **Shifting.** Closing the gap by hand (moving the clouds along the gap direction) does not
#    buy retrieval and raises the loss the model was trained on.

# %% tags=["parameters"]
run_dir: str = "runs/interactive"  # the run directory every notebook reads and writes
seed: int = 0  # random seed of the toy embeddings and the random-weight model
primer_steps: int = 200  # optimisation steps of the free-embedding toy per temperature
temperatures: list = [0.01, 0.05, 0.1, 1.0]  # contrastive temperatures τ compared in the toy
shifts: list = [-0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0]  # shift amounts along the gap (1 makes the centroids meet)

# %%
import numpy as np
import pandas as pd
import plotly.express as px

from vlmkit import analysis, primer, viz
from vlmkit import workbook as wb
from vlmkit.data import make_shapes

run = wb.prepare_run_dir(run_dir)
HEADLESS = wb.headless()  # papermill / vlmkit run: no widgets (figures are embedded either way)

# %% [markdown]
# ## 1 · Two cones from random weights
# A random-weight `vlmkit-tiny` encodes 100 embedded images and their captions.

# %%
small = make_shapes("test", n_images=100, seed=seed)
rand = primer.random_init_features(small, seed=seed)
stats = analysis.cone_stats(rand.images, rand.texts)
print({k: round(v, 3) for k, v in stats.items()})
wb.write_table(run, "primer_cones", pd.DataFrame([stats]), protocol="random-init vlmkit-tiny, 100 shapes test images")
fig = viz.embedding_figure(rand.images, rand.texts, small.caption_image, n_lines=40,
                           title="Random-weight encoders: two cones (PCA, 100 shapes test images)")
wb.show(fig, run, "00_random_init_cones")

# %% [markdown]
# ## 2 · Temperature decides whether training closes the gap
# Free unit embeddings start as two cones and are trained with the symmetric CLIP loss.

# %%
curves = primer.temperature_gap(temperatures, n=128, d=32, steps=primer_steps, seed=seed)
wb.write_table(run, "primer_temperature", curves, protocol="free embeddings, two cones, symmetric InfoNCE")
fig = px.line(curves, x="step", y="gap", color=curves["temperature"].astype(str), markers=True,
              labels={"step": "training step", "gap": "gap ‖c_img − c_txt‖", "color": "temperature τ"},
              title="Free embeddings: modality gap during contrastive training, per temperature")
wb.show(fig, run, "00_temperature_gap")
curves.groupby("temperature").last()[["gap", "loss", "r1"]]

# %% [markdown]
# ## 3 · Shifting the clouds together
# Take the embeddings trained at the lowest τ (their gap survived training) and move both clouds
# along the gap direction Δ = c_img − c_txt, renormalising after the move (shift 1 makes the
# centroids meet). Retrieval barely changes, but the contrastive loss at that τ rises: the
# trained model *prefers* its gap (Liang et al., 2022).

# %%
x_free, y_free = primer.free_embeddings(min(temperatures), n=128, d=32, steps=primer_steps, seed=seed)
pairs = np.arange(len(x_free))
shift_free = analysis.embedding_shift(x_free, y_free, pairs, shifts, temperature=min(temperatures))
wb.write_table(run, "primer_shift", shift_free, protocol=f"free embeddings trained at τ={min(temperatures)}; R@1 over 128 row-paired items")
wb.show(viz.gap_shift_figure(shift_free, title=f"Free embeddings (τ={min(temperatures)}): shifting the clouds along Δ"), run, "00_shift")
shift_free

# %% [markdown]
# ## 4 · Interactive: pick τ, drag the shift (JupyterLab; the figures above are in every run)

# %%
if HEADLESS:
    print("headless run: the figures are above (the τ picker and the shift slider need JupyterLab)")
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
    W.interact(_shift, amount=W.FloatSlider(value=0.0, min=-0.5, max=1.0, step=0.05, description="shift"))
