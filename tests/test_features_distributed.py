"""``encode_dataset`` under ``torchrun``: two CPU processes (gloo) each encode a block of the
images and captions, gather them in order and return exactly what one process computes; the
feature cache they write has the single-process key and serves a single process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from vlmkit.data.shapes import make_shapes
from vlmkit.features import cache_path, encode_dataset, feature_key, shard
from vlmkit.models import load_model, save_model

ROOT = Path(__file__).resolve().parents[1]

WORKER = textwrap.dedent('''
    import os, sys
    import torch
    from vlmkit.data.shapes import make_shapes
    from vlmkit.features import encode_dataset
    from vlmkit.models import load_model
    from vlmkit.train.distributed import cleanup, setup

    model_dir, cache, out = sys.argv[1:4]
    info = setup("cpu")
    assert info.enabled and info.world_size == 2
    loaded = load_model(pretrained=model_dir, device="cpu")
    ds = make_shapes("test", n_images=7, seed=4)   # 7 images, 35 captions: blocks of 4 + 3 and 18 + 17
    f = encode_dataset(loaded, ds, cache_dir=cache, batch_size=3)
    torch.save({"images": f.images, "texts": f.texts, "key": f.key, "from_cache": f.from_cache}, f"{out}.{info.rank}")
    g = encode_dataset(loaded, ds, cache_dir=cache, batch_size=3)  # now every rank finds the cache
    torch.save({"from_cache": g.from_cache, "equal": bool(torch.equal(g.images, f.images))}, f"{out}.again.{info.rank}")
    torch.distributed.barrier()
    cleanup(info)
    # torch's gloo can abort during interpreter shutdown after a clean destroy (see tests/test_losses.py):
    # the results are saved, so leave without running C++ static destructors
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(0)
''')


def test_shard_blocks_cover_every_row_once():
    for n in (0, 1, 5, 7, 35, 100):
        for world in (1, 2, 3, 8):
            rows = [i for r in range(world) for i in range(*shard(n, r, world))]
            assert rows == list(range(n)), (n, world)


@pytest.mark.slow
def test_two_process_torchrun_features_equal_single_process(tmp_path):
    torch.manual_seed(0)
    tiny = load_model("vlmkit-tiny", device="cpu")
    save_model(tiny, tmp_path / "model")
    loaded = load_model(pretrained=tmp_path / "model", device="cpu")
    ds = make_shapes("test", n_images=7, seed=4)
    single = encode_dataset(loaded, ds, batch_size=5)  # no cache, one process, other batch boundaries

    (tmp_path / "worker.py").write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "VLMKIT_NO_PROGRESS": "1"}
    cache = tmp_path / "cache"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        str(tmp_path / "worker.py"), str(tmp_path / "model"), str(cache), str(tmp_path / "res")],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = [torch.load(f"{tmp_path / 'res'}.{rank}") for rank in range(2)]
    for got in res:  # every rank holds the whole, in order
        assert got["images"].shape == (7, single.images.shape[1]) and got["texts"].shape == (35, single.texts.shape[1])
        assert torch.allclose(got["images"], single.images, atol=1e-6, rtol=0)
        assert torch.allclose(got["texts"], single.texts, atol=1e-6, rtol=0)
        assert got["key"] == single.key == feature_key(loaded, ds) and not got["from_cache"]
    assert torch.equal(res[0]["images"], res[1]["images"]) and torch.equal(res[0]["texts"], res[1]["texts"])
    assert all(torch.load(f"{tmp_path / 'res'}.again.{rank}") == {"from_cache": True, "equal": True} for rank in range(2))
    # one cache file, under the single-process key: a single process reads it
    assert [p.name for p in cache.iterdir() if not p.name.startswith(".")] == [cache_path(cache, ds, single.key).name]
    back = encode_dataset(loaded, ds, cache_dir=cache)
    assert back.from_cache and torch.equal(back.images, res[0]["images"]) and torch.equal(back.texts, res[0]["texts"])


def test_distributed_true_without_a_process_group_says_how_to_start_one():
    from vlmkit.utils import VlmkitError

    torch.manual_seed(0)
    tiny = load_model("vlmkit-tiny", device="cpu")
    with pytest.raises(VlmkitError, match="needs an initialised torch.distributed process group"):
        encode_dataset(tiny, make_shapes("test", n_images=3, seed=4), distributed=True)
