"""Held-out measurements of a model trained on the synthetic corpus (:mod:`vtr.data.synthetic`): retrieval on
the attribute combinations never seen in training, and the temporal-pair accuracy (true caption against its
time-reversed twin). Used by ``vtr demo`` (:mod:`demo.run`) and ``bench/learning.py``.
"""

from __future__ import annotations

from pathlib import Path


def heldout_features(model, corpus, shuffle_frames: bool = False, seed: int = 0, batch_size: int = 16,
                     with_itm_inputs: bool = False) -> dict:
    """Embeddings of the held-out split: ``video`` [Nv, E] (mean of unit frame embeddings, as ``similarity``),
    ``text`` [Nv, E] (captions), ``twin`` [Nv, E] (time-reversed twin captions); with ``with_itm_inputs`` also
    what the matching head reads: ``tokens`` [Nv, T*P, D] and the captions' ``text_hidden`` [Nv, L, H] and
    ``text_mask`` [Nv, L].

    shuffle_frames: feed each video's sampled frames in a seeded random order (the bag-of-frames control).
    """
    import numpy as np
    import torch

    from vtr.data.synthetic import read_heldout
    from vtr.data.text import normalize_caption, tokenize
    from vtr.data.video import read_frames
    from vtr.models.registry import get_tokenizer

    entries = read_heldout(corpus)
    videos_dir = Path(corpus) / "heldout" / "videos"
    pre, transform = model.preprocess, model.preprocess.eval_transform()
    tokenizer = get_tokenizer(model)
    rng = np.random.default_rng([seed, 99])
    model.eval()
    device = next(model.parameters()).device  # the features stay there; heldout_scores brings the scores back
    video, tokens = [], []
    with torch.no_grad():
        for i in range(0, len(entries), batch_size):
            clips = []
            for e in entries[i:i + batch_size]:
                frames = transform(read_frames(videos_dir / e["video"], pre.num_frames, sample="middle"))
                if shuffle_frames:
                    frames = frames[torch.from_numpy(rng.permutation(len(frames)))]
                clips.append(frames)
            out = model.encode_video(torch.stack(clips).to(device), return_tokens=with_itm_inputs)
            video.append(out.frame_embeds.mean(1))
            if with_itm_inputs:
                tokens.append(out.tokens)

        def encode(texts):
            batch = tokenize(tokenizer, [normalize_caption(t) for t in texts], pre.max_txt_l)
            return model.encode_text(batch["input_ids"].to(device), batch["attention_mask"].to(device))

        captions = encode([e["caption"] for e in entries])
        features = {"video": torch.cat(video), "text": captions.embedding,
                    "twin": encode([e["twin_caption"] for e in entries]).embedding}
        if with_itm_inputs:
            features.update(tokens=torch.cat(tokens), text_hidden=captions.hidden, text_mask=captions.attention_mask)
        return features


#: Candidates the matching head re-ranks in each direction for the held-out ITM row (UMT's k_test is 128 over
#: 1000 videos; the held-out split has about 70, where 128 would let ITM alone rank everything).
HELDOUT_ITM_K = 16


def heldout_scores(model, corpus, shuffle_frames: bool = False, seed: int = 0, itm: bool | None = None,
                   itm_k: int = HELDOUT_ITM_K) -> dict:
    """Held-out retrieval (ITC: T2V/V2T R@1/5/10, MdR, MnR), chance R@1, and the temporal-pair accuracy: the share
    of held-out videos whose true caption scores above its time-reversed twin (a tie counts one half).

    itm: also the ITM row (the ITC top ``itm_k`` re-ranked by the matching head, as the published protocol) under
    ``"itm"``; None: when the model's config says its matching head was trained."""
    import torch

    from vtr.eval.metrics import retrieval_metrics
    from vtr.eval.rerank import itm_rerank

    itm = model.cfg.itm_trained if itm is None else itm
    f = heldout_features(model, corpus, shuffle_frames=shuffle_frames, seed=seed, with_itm_inputs=itm)
    itc = (f["video"] @ f["text"].t()).float().cpu()  # [Nv, Nt], text t belongs to video t
    n = itc.shape[0]
    true = (f["video"] * f["text"]).sum(-1)
    twin = (f["video"] * f["twin"]).sum(-1)
    pair_acc = float(((true > twin).float() + 0.5 * (true == twin).float()).mean()) * 100.0
    txt2video, video2txt = list(range(n)), [[i] for i in range(n)]
    metrics = retrieval_metrics(itc.numpy(), txt2video, video2txt)
    scores = {"videos": n, "chance_r1": 100.0 / n, "temporal_pair_acc": pair_acc,
              **{k: round(v, 2) for k, v in metrics.items()}}
    if itm:
        def score_pairs(video_idx, text_idx):  # sorted by video: each video's keys and values projected once
            uniq_v, inv_v = torch.unique(video_idx, return_inverse=True)
            uniq_t, inv_t = torch.unique(text_idx, return_inverse=True)
            dev = f["tokens"].device
            with torch.no_grad():
                return model.itm_score_pairs(f["text_hidden"][uniq_t.to(dev)], f["text_mask"][uniq_t.to(dev)],
                                             f["tokens"][uniq_v.to(dev)], inv_t.to(dev), inv_v.to(dev)).float().cpu()

        itm_v2t, itm_t2v, _ = itm_rerank(itc, score_pairs, k=itm_k, batch_size=64)
        rows = retrieval_metrics(itm_v2t.numpy(), txt2video, video2txt, scores_t2v=itm_t2v.numpy(),
                                 rank_scores_v2t=itc.numpy())
        scores["itm"] = {"k": itm_k, **{k: round(v, 2) for k, v in rows.items()}}
    return scores


__all__ = ["HELDOUT_ITM_K", "heldout_features", "heldout_scores"]
