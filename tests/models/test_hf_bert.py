"""Hugging Face BERT into BertFusionModel: prefixed/old names, tied and untied decoders, shape and strictness
errors, hub names offline (cached and not)."""

import os

import pytest
import torch

from tests.helpers_text import close_on_tokens, minilm_dir, tiny_text_config
from vtr.errors import CheckpointError, WeightsNotFoundError
from vtr.models.bert import BertFusionModel, BertMLMHead, TextConfig
from vtr.models.hf_bert import load_hf_bert, load_tokenizer


def _save_tiny_hf_mlm(folder):
    """A random transformers BertForMaskedLM (`bert.` names, `cls.predictions.*`, tied decoder) saved to folder."""
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=37, max_position_embeddings=64)
    hf = BertForMaskedLM(config).eval()
    with torch.no_grad():
        hf.cls.predictions.bias.normal_()
        for m in hf.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.normal_(1.0, 0.1)
                m.bias.normal_(0.0, 0.1)
    hf.save_pretrained(folder)
    return hf


def test_load_bert_prefixed_mlm_checkpoint_matches_transformers(tmp_path):
    hf = _save_tiny_hf_mlm(tmp_path)
    cfg = TextConfig.from_hf_config(tmp_path, fusion_layer=4, encoder_width=24)
    model, head = BertFusionModel(cfg).eval(), BertMLMHead(cfg)
    head.tie_weights(model)
    report = load_hf_bert(model, str(tmp_path), mlm_head=head)
    assert report["initialized"] == []
    assert "cls.predictions.decoder.weight" in report["loaded"]
    ids = torch.randint(1, 99, (2, 9))
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0
    with torch.no_grad():
        ours = head(model(ids, mask))
        theirs = hf(input_ids=ids, attention_mask=mask).logits
    close_on_tokens(ours, theirs, mask)


def test_load_old_gamma_beta_names_and_untied_decoder(tmp_path):
    hf = _save_tiny_hf_mlm(tmp_path / "hf")
    state = {}
    for k, v in hf.state_dict().items():
        if k == "cls.predictions.decoder.weight":
            continue  # checkpoints that rely on tying omit it
        k = k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        state[k] = v.clone()
    torch.save(state, tmp_path / "pytorch_model.bin")
    cfg = tiny_text_config(hidden_dropout=0.1, attention_dropout=0.1)
    model, head = BertFusionModel(cfg).eval(), BertMLMHead(cfg)  # head deliberately not tied
    report = load_hf_bert(model, str(tmp_path / "pytorch_model.bin"), mlm_head=head)
    assert all(".crossattention." in k for k in report["initialized"])
    torch.testing.assert_close(head.predictions.decoder.weight, model.embeddings.word_embeddings.weight)
    torch.testing.assert_close(model.encoder.layer[1].output.LayerNorm.weight,
                               hf.bert.encoder.layer[1].output.LayerNorm.weight)


def test_load_rejects_wrong_shapes_without_touching_the_model():
    model = BertFusionModel(tiny_text_config(vocab_size=30522))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match="does not fit"):
        load_hf_bert(model, minilm_dir())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_load_strict_text_reports_missing_layers(tmp_path):
    hf = _save_tiny_hf_mlm(tmp_path / "hf")
    state = {k: v for k, v in hf.state_dict().items() if ".layer.1." not in k}
    torch.save(state, tmp_path / "partial.bin")
    with pytest.raises(CheckpointError, match="lacks"):
        load_hf_bert(BertFusionModel(tiny_text_config()), str(tmp_path / "partial.bin"))
    report = load_hf_bert(BertFusionModel(tiny_text_config()), str(tmp_path / "partial.bin"), strict_text=False)
    assert "encoder.layer.1.output.dense.weight" in report["initialized"]


def test_offline_uncached_hub_name_raises_helpful_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    model = BertFusionModel(tiny_text_config())
    with pytest.raises(WeightsNotFoundError) as err:
        load_hf_bert(model, "bert-base-uncased")
    message = str(err.value)
    assert "hf download bert-base-uncased" in message
    assert str(tmp_path) in message and "HF_HUB_OFFLINE" in message and "folder" in message
    with pytest.raises(WeightsNotFoundError, match="hf download bert-base-uncased"):
        load_tokenizer("bert-base-uncased")
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        load_hf_bert(model, str(tmp_path / "no" / "such" / "folder"))


def test_offline_cached_hub_name_loads_from_cache(tmp_path, monkeypatch):
    """A hub name resolves through the HF cache layout (refs/main -> snapshots/<commit>/...) with HF_HUB_OFFLINE=1."""
    commit = "0" * 40
    repo = tmp_path / "hub" / "models--bert-base-uncased"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for filename in ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"):
        os.symlink(os.path.join(minilm_dir(), filename), snapshot / filename)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)

    cfg = TextConfig.from_hf_config("bert-base-uncased", fusion_layer=6)
    assert cfg.hidden_size == 384
    report = load_hf_bert(BertFusionModel(cfg), "bert-base-uncased")
    assert report["source"].startswith(str(tmp_path)) and report["initialized"] == []
    assert load_tokenizer("bert-base-uncased")("the man")["input_ids"] == [101, 1996, 2158, 102]
