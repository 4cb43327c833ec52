"""BertFusionModel: parity with transformers' BertModel on real MiniLM weights, modes, masks, MLM head."""

import os

import pytest
import torch

from tests.helpers_text import close_on_tokens, minilm_dir, tiny_text_config
from vtr.models.bert import BertFusionModel, BertMLMHead, TextConfig, additive_attention_mask
from vtr.models.hf_bert import load_hf_bert, load_tokenizer

SENTENCES = [
    "a man is playing the guitar on a stage",
    "two dogs run across a snowy field while a child laughs and throws a ball for them",
    "cooking",
]


@pytest.fixture(scope="module")
def batch():
    tokenizer = load_tokenizer(minilm_dir())
    return tokenizer(SENTENCES, padding="max_length", truncation=True, max_length=24, return_tensors="pt")


@pytest.fixture(scope="module")
def hf_hidden_states(batch):
    from transformers import BertModel

    hf = BertModel.from_pretrained(minilm_dir()).eval()
    with torch.no_grad():
        return hf(**batch, output_hidden_states=True).hidden_states


def _minilm_model(fusion_layer, encoder_width=48):
    cfg = TextConfig.from_hf_config(minilm_dir(), fusion_layer=fusion_layer, encoder_width=encoder_width)
    model = BertFusionModel(cfg).eval()
    report = load_hf_bert(model, minilm_dir())
    return model, report


@pytest.fixture(scope="module")
def minilm_full():
    """MiniLM as a plain 6-layer BERT (fusion_layer = num_layers: no cross-attention), with its load report."""
    return _minilm_model(fusion_layer=6)


def test_default_config_is_bert_base_with_fusion():
    cfg = TextConfig()
    assert (cfg.vocab_size, cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.intermediate_size) == (
        30522, 768, 12, 12, 3072)
    assert (cfg.fusion_layer, cfg.encoder_width, cfg.layer_norm_eps, cfg.max_position_embeddings) == (
        9, 576, 1e-12, 512)


def test_config_from_hf_config_json():
    cfg = TextConfig.from_hf_config(os.path.join(minilm_dir(), "config.json"), fusion_layer=6)
    assert (cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.intermediate_size) == (384, 6, 12, 1536)
    assert cfg.fusion_layer == 6 and cfg.layer_norm_eps == 1e-12 and cfg.hidden_dropout == 0.1
    with pytest.raises(ValueError, match="fusion_layer"):
        TextConfig.from_hf_config(minilm_dir())  # default fusion_layer 9 > 6 layers
    with pytest.raises(TypeError):
        TextConfig.from_hf_config(minilm_dir(), fusion_layers=6)


RELEASE_KEYS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "official_keys_release.tsv")


def test_state_dict_matches_release_text_encoder_keys():
    """Default TextConfig reproduces the release's `text_encoder.bert.*` / `text_encoder.cls.*` names and shapes,
    less `embeddings.position_ids` (a buffer the checkpoint loader drops)."""
    with torch.device("meta"):
        model, head = BertFusionModel(), BertMLMHead()
    ours = {f"bert.{k}": tuple(v.shape) for k, v in model.state_dict().items()}
    ours.update({f"cls.{k}": tuple(v.shape) for k, v in head.state_dict().items()})
    release = {}
    with open(RELEASE_KEYS, encoding="utf-8") as f:
        for line in f:
            key, shape, _ = line.rstrip("\n").split("\t")
            if key.startswith("text_encoder."):
                release[key[len("text_encoder."):]] = tuple(int(d) for d in shape.strip("()").split(",") if d.strip())
    assert release.pop("bert.embeddings.position_ids") == (1, 512)
    assert len(release) == 234
    assert ours == release
    assert not any(k.startswith("bert.encoder.layer.8.crossattention") for k in ours)


def test_minilm_text_mode_matches_transformers_layer4(batch, hf_hidden_states):
    model, report = _minilm_model(fusion_layer=4)
    assert {k for k in report["initialized"]} == {
        k for k in model.state_dict() if ".crossattention." in k}
    assert sorted(report["ignored"]) == ["embeddings.position_ids", "pooler.dense.bias", "pooler.dense.weight"]
    assert len(report["loaded"]) == 101
    with torch.no_grad():
        ours = model(batch["input_ids"], batch["attention_mask"], mode="text")
    close_on_tokens(ours, hf_hidden_states[4], batch["attention_mask"])


def test_minilm_all_layers_match_transformers(batch, hf_hidden_states, minilm_full):
    model, report = minilm_full
    assert report["initialized"] == []
    with torch.no_grad():
        ours = model(batch["input_ids"], batch["attention_mask"], mode="text")
        embeds = model.embeddings(batch["input_ids"])
    close_on_tokens(embeds, hf_hidden_states[0], batch["attention_mask"])
    close_on_tokens(ours, hf_hidden_states[6], batch["attention_mask"])


def test_padding_does_not_change_token_states(batch, minilm_full):
    model, _ = minilm_full
    length = int(batch["attention_mask"].sum(1).max())
    with torch.no_grad():
        padded = model(batch["input_ids"], batch["attention_mask"])
        trimmed = model(batch["input_ids"][:, :length], batch["attention_mask"][:, :length])
    close_on_tokens(padded[:, :length], trimmed, batch["attention_mask"][:, :length])


@pytest.fixture
def fusion_setup():
    model = BertFusionModel(tiny_text_config()).eval()
    ids = torch.randint(1, 99, (3, 10))
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    video = torch.randn(3, 7, 24)
    return model, ids, mask, video


def test_fusion_of_text_equals_multi_modal(fusion_setup):
    model, ids, mask, video = fusion_setup
    with torch.no_grad():
        text = model(ids, mask, mode="text")
        fused = model(None, mask, mode="fusion", hidden_states=text, encoder_hidden_states=video)
        full = model(ids, mask, mode="multi_modal", encoder_hidden_states=video)
        ones = model(None, mask, mode="fusion", hidden_states=text, encoder_hidden_states=video,
                     encoder_attention_mask=torch.ones(3, 7, dtype=torch.long))
    assert fused.shape == (3, 10, 32)
    torch.testing.assert_close(fused, full)
    torch.testing.assert_close(ones, fused)  # all-ones video mask == no mask, as in the release


def test_cross_attention_affects_fusion_only(fusion_setup):
    model, ids, mask, video = fusion_setup
    with torch.no_grad():
        text_before = model(ids, mask, mode="text")
        fused_before = model(None, mask, mode="fusion", hidden_states=text_before, encoder_hidden_states=video)
        for name, p in model.named_parameters():
            if ".crossattention." in name:
                p.add_(torch.randn_like(p))
        text_after = model(ids, mask, mode="text")
        fused_after = model(None, mask, mode="fusion", hidden_states=text_after, encoder_hidden_states=video)
        other_video = model(None, mask, mode="fusion", hidden_states=text_after, encoder_hidden_states=video + 1)
    torch.testing.assert_close(text_after, text_before, rtol=0, atol=0)
    assert not torch.allclose(fused_after, fused_before, atol=1e-3)
    assert not torch.allclose(other_video, fused_after, atol=1e-3)


def test_fuse_pairs_equals_fusion_over_the_gathered_pairs_with_the_same_gradients(fusion_setup):
    """The ranking stage's path: what pairs share (a text's first fusion self-attention, a video's keys and values)
    is computed once, and outputs and gradients are those of running every pair through mode ``fusion``."""
    model, ids, mask, video = fusion_setup
    with torch.no_grad():
        text = model(ids, mask, mode="text")
    text_idx = torch.tensor([0, 0, 1, 2, 2, 1, 0])
    video_idx = torch.tensor([0, 1, 1, 2, 0, 0, 2])
    results = []
    for paired in (False, True):
        model.zero_grad()
        h, v = text.clone().requires_grad_(True), video.clone().requires_grad_(True)
        if paired:
            out = model.fuse_pairs(h, mask, v, text_idx, video_idx)
        else:
            out = model(None, mask[text_idx], mode="fusion", hidden_states=h[text_idx],
                        encoder_hidden_states=v[video_idx])
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append([out.detach(), h.grad, v.grad] + [p.grad.clone() for p in model.parameters()
                                                          if p.grad is not None])
    assert results[0][0].shape == (7, 10, 32) and len(results[0]) == len(results[1])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="no fusion layers"):
        BertFusionModel(tiny_text_config(fusion_layer=4)).fuse_pairs(text, mask, video, text_idx, video_idx)


@pytest.mark.parametrize("fusion_layer", [2, 3])  # two fusion layers; one (the first is then the last)
@pytest.mark.parametrize("checkpointing", [False, True])
def test_cls_only_gives_the_cls_row_and_its_gradients_with_less_work(fusion_layer, checkpointing):
    """``cls_only`` (the matching head reads [CLS] alone): the last fusion layer computes that row only. Outputs and
    every gradient are those of the full layer's [CLS] row, through ``forward`` and ``fuse_pairs``, and the work
    counted by PyTorch's FLOP counter drops (the skipped rows' queries, cross-attention and FFN)."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = BertFusionModel(tiny_text_config(fusion_layer=fusion_layer)).train(checkpointing)  # no dropout
    model.set_gradient_checkpointing(checkpointing)
    ids = torch.randint(1, 99, (3, 10))
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[1, 6:] = 0
    video = torch.randn(3, 7, 24)
    text_idx, video_idx = torch.tensor([0, 1, 2, 2, 0]), torch.tensor([1, 1, 0, 2, 2])
    with torch.no_grad():
        text = model(ids, mask, mode="text")
    for paired in (False, True):
        results, flops = [], []
        for cls_only in (False, True):
            model.zero_grad()
            h, v = text.clone().requires_grad_(True), video.clone().requires_grad_(True)
            with FlopCounterMode(display=False) as counter:
                if paired:
                    out = model.fuse_pairs(h, mask, v, text_idx, video_idx, cls_only=cls_only)
                else:
                    out = model(None, mask[text_idx], mode="fusion", hidden_states=h[text_idx],
                                encoder_hidden_states=v[video_idx], cls_only=cls_only)
            flops.append(counter.get_total_flops())
            assert out.shape == (5, 1 if cls_only else 10, 32)
            out[:, 0].pow(2).sum().backward()
            results.append([out[:, 0].detach(), h.grad, v.grad]
                           + [p.grad.clone() for p in model.parameters() if p.grad is not None])
        assert len(results[0]) == len(results[1])
        for a, b in zip(*results):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)  # sums over other rows' zeros: last bits
        assert flops[1] < 0.9 * flops[0]


def test_modes_validate_inputs(fusion_setup):
    model, ids, mask, video = fusion_setup
    with pytest.raises(ValueError, match="encoder_hidden_states"):
        model(ids, mask, mode="multi_modal")
    with pytest.raises(ValueError, match="hidden_states"):
        model(None, mask, mode="fusion", encoder_hidden_states=video)
    with pytest.raises(ValueError, match="mode"):
        model(ids, mask, mode="video")


def test_additive_mask_is_minus_10000():
    bias = additive_attention_mask(torch.tensor([[1, 1, 0]]), torch.float32)
    assert bias.shape == (1, 1, 1, 3)
    assert bias.flatten().tolist() == [0.0, 0.0, -10000.0]


def test_gradient_checkpointing_gives_same_outputs_and_grads(fusion_setup):
    model, ids, mask, video = fusion_setup
    model.train()
    results = []
    for enable in (False, True):
        model.zero_grad()
        model.set_gradient_checkpointing(enable)
        out = model(ids, mask, mode="multi_modal", encoder_hidden_states=video)
        out.square().mean().backward()
        results.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b)


def test_dropout_only_in_training():
    model = BertFusionModel(tiny_text_config(hidden_dropout=0.5, attention_dropout=0.5, fusion_layer=4))
    ids = torch.randint(1, 99, (2, 8))
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(ids), model(ids))
    model.train()
    with torch.no_grad():
        assert not torch.allclose(model(ids), model(ids))


def test_mlm_head_logits_and_tying():
    cfg = tiny_text_config()
    model, head = BertFusionModel(cfg), BertMLMHead(cfg)
    hidden = model(torch.randint(1, 99, (2, 5)))
    assert head(hidden).shape == (2, 5, 99)
    assert head.predictions.decoder.weight is not model.embeddings.word_embeddings.weight
    head.tie_weights(model)
    assert head.predictions.decoder.weight is model.embeddings.word_embeddings.weight
    assert head.predictions.decoder.bias is head.predictions.bias
    with pytest.raises(ValueError, match="cannot tie"):
        head.tie_weights(torch.nn.Embedding(10, 32))
