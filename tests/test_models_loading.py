"""load_model: every documented form of ``pretrained`` round-trips a real (tiny) open_clip model from
disk, and every loading failure is a VlmkitError naming the file, never advising ``weights_only=False``."""

import hashlib
import traceback
import warnings

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from vlmkit.models import load_model, save_model
from vlmkit.utils import VlmkitError

TAG_CFG = {"mean": (0.25, 0.5, 0.75), "std": (0.2, 0.3, 0.4), "interpolation": "bicubic", "resize_mode": "shortest"}


class Opaque:  # pickled by a test: loading it would need this module's code
    def __init__(self) -> None:
        self.x = 1


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(123)
    return load_model("vlmkit-tiny", device="cpu")


def _weights(loaded):
    return {k: v.detach().clone() for k, v in loaded.model.state_dict().items()}


def _assert_same_weights(a, b):
    sa, sb = _weights(a), _weights(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _fresh_differs(tiny):
    """The seed-independent check that a load did something: random init differs from `tiny`."""
    fresh = load_model("vlmkit-tiny", device="cpu")
    assert not torch.equal(_weights(fresh)["text_projection"], _weights(tiny)["text_projection"])


# ---- every documented form ----------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin", ".safetensors"])
def test_state_dict_file_each_suffix(tiny, tmp_path, suffix):
    path = tmp_path / f"weights{suffix}"
    state = {k: v.contiguous() for k, v in tiny.model.state_dict().items()}
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    back = load_model("vlmkit-tiny", pretrained=str(path), device="cpu")
    _assert_same_weights(tiny, back)
    assert back.name == "vlmkit-tiny" and back.pretrained == str(path)
    _fresh_differs(tiny)


@pytest.mark.parametrize("prefix", ["", "module."])
def test_open_clip_training_checkpoint(tiny, tmp_path, prefix):
    """open_clip's training writes {'epoch', 'name', 'state_dict', 'optimizer', …}; DDP adds 'module.'."""
    opt = torch.optim.AdamW(tiny.model.parameters(), lr=1e-3)
    ckpt = {
        "epoch": 3,
        "name": "run",
        "state_dict": {prefix + k: v for k, v in tiny.model.state_dict().items()},
        "optimizer": opt.state_dict(),
    }
    path = tmp_path / "epoch_3.pt"
    torch.save(ckpt, path)
    _assert_same_weights(tiny, load_model("vlmkit-tiny", pretrained=path, device="cpu"))


def test_save_model_directory_with_and_without_name(tiny, tmp_path):
    save_model(tiny, tmp_path / "m")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = load_model(pretrained=tmp_path / "m", device="cpu")
        b = load_model("vlmkit-tiny", pretrained=str(tmp_path / "m"), device="cpu")
        c = load_model(f"local-dir:{tmp_path / 'm'}", device="cpu")
    assert not [w for w in caught if "ignored" in str(w.message)]
    for back in (a, b, c):
        _assert_same_weights(tiny, back)
        assert back.name == "vlmkit-tiny" and back.embed_dim == 128


def test_directory_config_wins_over_a_disagreeing_name(tiny, tmp_path):
    save_model(tiny, tmp_path / "m")
    with pytest.warns(UserWarning, match=r"name='vlmkit-small' ignored: .* holds a vlmkit-tiny model"):
        back = load_model("vlmkit-small", pretrained=tmp_path / "m", device="cpu")
    assert back.name == "vlmkit-tiny" and back.embed_dim == 128
    _assert_same_weights(tiny, back)


def _register_tag(monkeypatch, cfg):
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, "vlmkit-tiny", {"vlmkit_test": {**TAG_CFG, **cfg}})


def test_open_clip_tag_from_hf_cache(tiny, tmp_path, monkeypatch):
    """A real hub-cache layout (refs/main → snapshots/<commit>/file), found with local_files_only."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    _register_tag(monkeypatch, {"hf_hub": "vlmkit-test/tiny-clip/"})
    repo = tmp_path / "hub" / "models--vlmkit-test--tiny-clip"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in tiny.model.state_dict().items()},
              str(repo / "snapshots" / commit / "open_clip_model.safetensors"))
    back = load_model("vlmkit-tiny", pretrained="vlmkit_test", device="cpu")
    _assert_same_weights(tiny, back)
    assert back.pretrained == "vlmkit_test"
    assert tuple(back.preprocess_cfg["mean"]) == TAG_CFG["mean"] and tuple(back.preprocess_cfg["std"]) == TAG_CFG["std"]
    # without the file the same tag fails at once, saying how to pass a local file
    (repo / "snapshots" / commit / "open_clip_model.safetensors").unlink()
    with pytest.raises(VlmkitError, match="not in the local cache"):
        load_model("vlmkit-tiny", pretrained="vlmkit_test", device="cpu")


def _openai_style_file(tiny, tmp_path, monkeypatch):
    """OpenAI's URL cache: a TorchScript file in ~/.cache/clip whose URL names its SHA-256."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home" / ".cache" / "clip").mkdir(parents=True)
    path = tmp_path / "home" / ".cache" / "clip" / "tiny.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, OpenAI's files are not going away
        torch.jit.save(torch.jit.script(tiny.model), str(path))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    _register_tag(monkeypatch, {"hf_hub": "vlmkit-test/not-cached/", "url": f"https://example.invalid/clip/models/{sha}/tiny.pt",
                                "quick_gelu": True})  # as OpenAI's tags
    return path


@pytest.mark.filterwarnings("ignore:open_clip tag 'vlmkit_test' was trained", "ignore:`torch.jit.load` is deprecated")
def test_open_clip_tag_from_openai_url_cache(tiny, tmp_path, monkeypatch):
    path = _openai_style_file(tiny, tmp_path, monkeypatch)
    with pytest.warns(UserWarning, match="quick_gelu=True .* use vlmkit-tiny-quickgelu"):
        back = load_model("vlmkit-tiny", pretrained="vlmkit_test", device="cpu")
    _assert_same_weights(tiny, back)
    # the same TorchScript file passed as a user file is refused (it may hold code)
    with pytest.raises(VlmkitError, match="TorchScript archive") as info:
        load_model("vlmkit-tiny", pretrained=str(path), device="cpu")
    assert str(path) in str(info.value)
    # a damaged cached file is reported, not loaded
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(VlmkitError, match="SHA-256"):
        load_model("vlmkit-tiny", pretrained="vlmkit_test", device="cpu")


# ---- every failure: VlmkitError naming the file, never weights_only=False -------------------------

def _fails(path, match, name="vlmkit-tiny"):
    with pytest.raises(VlmkitError, match=match) as info:
        load_model(name, pretrained=str(path), device="cpu")
    text = "".join(traceback.format_exception(info.value))  # chained causes included
    assert str(path) in str(info.value)
    assert "weights_only" not in text
    return str(info.value)


def test_garbage_bytes(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(bytes(range(7, 250)) * 8)
    _fails(path, "not a weights file.*expected a safetensors file or a PyTorch checkpoint")


def test_garbage_safetensors(tmp_path):
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(b"\xff" * 500)
    _fails(path, "damaged safetensors file")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    _fails(path, "empty")


def test_truncated_pt(tiny, tmp_path):
    full = tmp_path / "full.pt"
    torch.save(tiny.model.state_dict(), full)
    path = tmp_path / "truncated.pt"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    _fails(path, "truncated or corrupted")


def test_truncated_safetensors(tiny, tmp_path):
    full = tmp_path / "full.safetensors"
    save_file({k: v.contiguous() for k, v in tiny.model.state_dict().items()}, str(full))
    path = tmp_path / "truncated.safetensors"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    _fails(path, "damaged safetensors file")


def test_foreign_architecture(tmp_path):
    """vlmkit-small weights into vlmkit-tiny: open_clip's raw AssertionError before."""
    small = load_model("vlmkit-small", device="cpu")
    path = tmp_path / "small.pt"
    torch.save(small.model.state_dict(), path)
    msg = _fails(path, "another architecture")
    assert "unexpected keys: 48" in msg and "visual.transformer.resblocks.3." in msg
    assert "text_projection: checkpoint (256, 256) vs model (128, 128)" in msg
    assert "Pass the architecture it was saved from" in msg


def test_default_name_is_said_when_the_checkpoint_does_not_fit(tmp_path):
    path = tmp_path / "small.safetensors"
    save_file({k: v.contiguous() for k, v in load_model("vlmkit-small", device="cpu").model.state_dict().items()}, str(path))
    with pytest.raises(VlmkitError, match="No model name was given, so vlmkit-tiny was assumed"):
        load_model(pretrained=str(path), device="cpu")
    assert load_model("vlmkit-small", pretrained=str(path), device="cpu").embed_dim == 256


def test_wrong_embedding_size(tmp_path):
    model = open_clip.create_model("vlmkit-tiny", embed_dim=64)
    path = tmp_path / "embed64.pt"
    torch.save(model.state_dict(), path)
    msg = _fails(path, "embedding size is 64, vlmkit-tiny's is 128")
    assert "text_projection: checkpoint (128, 64) vs model (128, 128)" in msg


def test_missing_keys_are_named(tiny, tmp_path):
    state = dict(tiny.model.state_dict())
    del state["ln_final.weight"], state["visual.proj"]
    path = tmp_path / "missing.pt"
    torch.save(state, path)
    msg = _fails(path, "missing keys: 2")
    assert "visual.proj" in msg and "ln_final.weight" in msg


def test_unexpected_keys_are_named(tiny, tmp_path):
    state = dict(tiny.model.state_dict())
    state["head.extra.weight"] = torch.zeros(2)
    path = tmp_path / "extra.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    _fails(path, r"unexpected keys: 1 \(e.g. head.extra.weight\)")


def test_pickle_that_needs_code_execution(tiny, tmp_path):
    path = tmp_path / "with_object.pt"
    torch.save({"state_dict": tiny.model.state_dict(), "args": Opaque()}, path)
    msg = _fails(path, "pickled Python objects")
    assert "Opaque" in msg and "never running code" in msg


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], path)
    _fails(path, "holds a list")
    path = tmp_path / "mixed.pt"
    torch.save({"a": torch.zeros(2), "b": 3}, path)
    _fails(path, "not named tensors")


def test_save_model_directory_with_damaged_or_swapped_weights(tiny, tmp_path):
    save_model(tiny, tmp_path / "m")
    weights = tmp_path / "m" / "open_clip_model.safetensors"
    small = load_model("vlmkit-small", device="cpu")
    save_file({k: v.contiguous() for k, v in small.model.state_dict().items()}, str(weights))
    with pytest.raises(VlmkitError, match="do not fit the directory's own open_clip_config.json") as info:
        load_model(pretrained=tmp_path / "m", device="cpu")
    assert str(weights) in str(info.value)
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(VlmkitError, match="damaged safetensors file") as info:
        load_model(pretrained=tmp_path / "m", device="cpu")
    assert str(weights) in str(info.value)
