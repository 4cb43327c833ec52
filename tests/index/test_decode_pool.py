"""The decoding pool's worker processes: a crash or a hang fails that one file, the others are decoded by a fresh
worker; workers that die before decoding anything stop the run with a clear error."""

import numpy as np
import pytest

import index.decode as decode
from index.decode import ChunkResult, DecodePool, DecodeSettings, FileFailure
from tests.index.media import make_video
from tests.index.pool_workers import dies_at_start, misbehaving_worker, slow_worker, waits_for_chunk_1
from vtr.errors import VtrError

SETTINGS = DecodeSettings(num_frames=4, img_size=32, window_s=4.0, stride_s=2.0, chunk_windows=2, thumbnails=False)


@pytest.fixture
def files(tmp_path):
    """(bad file, two good files of several chunks each): the bad one first, so the good ones queue behind it."""
    return [make_video(tmp_path / "bad.mp4", 4, seed=1)] + [make_video(tmp_path / f"good{i}.mp4", 10, seed=2 + i)
                                                             for i in range(2)]


def run(tmp_path, files, bad_name, worker, monkeypatch, **pool_options):
    bad = tmp_path / bad_name
    files[0].rename(bad)
    monkeypatch.setattr(decode, "_worker_main", worker)
    pool = DecodePool(SETTINGS, **{"workers": 1, **pool_options})
    return list(pool.run([(0, str(bad))] + [(i, str(p)) for i, p in enumerate(files[1:], 1)]))


def assert_good_files_decoded_as_inline(events, files):
    inline = list(DecodePool(SETTINGS, workers=0).run([(i, str(p)) for i, p in enumerate(files[1:], 1)]))
    chunks = sorted((e for e in events if isinstance(e, ChunkResult)), key=lambda c: (c.key, c.chunk))
    assert [(c.key, c.chunk, c.n_chunks) for c in inline] == [(c.key, c.chunk, c.n_chunks) for c in chunks]
    assert {c.key for c in chunks} == {1, 2} and all(c.n_chunks >= 2 for c in chunks)  # chunk 0 queued the rest
    for got, want in zip(chunks, inline):
        assert got.windows == want.windows and np.array_equal(got.frames, want.frames)


def test_a_worker_crash_fails_its_file_and_a_new_worker_decodes_the_rest(tmp_path, files, monkeypatch):
    events = run(tmp_path, files, "crash.mp4", misbehaving_worker, monkeypatch, per_worker=2)
    failures = [e for e in events if isinstance(e, FileFailure)]
    assert [(f.key, f.reason) for f in failures] == [(0, "decoder process crashed (exit code 3)")]
    assert_good_files_decoded_as_inline(events, files)


def test_a_hung_decode_times_out_and_fails_only_its_file(tmp_path, files, monkeypatch):
    events = run(tmp_path, files, "hang.mp4", misbehaving_worker, monkeypatch, per_worker=2, timeout_s=10.0)
    failures = [e for e in events if isinstance(e, FileFailure)]
    assert [(f.key, f.reason) for f in failures] == [(0, "timed out: decoding took longer than 10 s")]
    assert_good_files_decoded_as_inline(events, files)


def test_workers_that_die_before_decoding_anything_stop_the_run(tmp_path, files, monkeypatch):
    with pytest.raises(VtrError, match="die before decoding anything"):
        run(tmp_path, files, "fine.mp4", dies_at_start, monkeypatch)


@pytest.mark.parametrize("policy", ["stride", "shots"])
def test_the_chunks_of_one_long_file_decode_beside_its_first(tmp_path, monkeypatch, policy):
    """A build of one long file began with one worker (one task: chunk 0) and queued the file's other chunks when
    chunk 0's whole result came back: a long file's first chunk decoded alone, on one core. Chunk 0 now says how
    many chunks there are once its file is open, and another worker decodes them beside it. Here chunk 0 waits
    until chunk 1 is done, which only another worker can do: with the count sent early but chunk 1 queued behind
    the busy worker (a version of this change), chunk 0 waited its 60 s and came back first."""
    video = make_video(tmp_path / "long.mp4", 10, seed=3)
    settings = DecodeSettings(num_frames=4, img_size=32, window_s=4.0, stride_s=2.0, chunk_windows=2,
                              thumbnails=False, window_policy=policy)
    monkeypatch.setattr(decode, "_worker_main", waits_for_chunk_1)
    chunks = list(DecodePool(settings, workers=2).run([(0, str(video))]))
    inline = list(DecodePool(settings, workers=0).run([(0, str(video))]))
    assert all(isinstance(c, ChunkResult) for c in chunks) and chunks[0].chunk != 0
    assert len(inline) >= 2 and sorted(c.chunk for c in chunks) == [c.chunk for c in inline]
    for got in chunks:
        want = inline[got.chunk]
        assert (got.n_chunks, got.windows) == (want.n_chunks, want.windows)
        assert np.array_equal(got.frames, want.frames)


@pytest.mark.parametrize("workers, memory, peak", [(None, None, 4), (2, None, 2), (None, 1 << 30, 2)],
                         ids=["automatic", "two given", "automatic, memory short"])
def test_an_automatic_pool_starts_workers_while_it_is_waited_for(tmp_path, monkeypatch, workers, memory, peak):
    """Builds ran two decode workers unless told otherwise, so where the encoder is fast (a GPU, a cheap model)
    decoding on two cores was the whole build, whatever cores the machine had. An automatic pool (``workers=None``)
    starts more, up to its cap, while its caller waits for results and tasks wait for a worker; a number given is
    kept, and no worker starts while memory is short. Here every task sleeps 0.4 s and the caller takes each result
    at once: it waits nearly all the time. 24 tasks of 0.4 s: tasks still wait for a worker when the measurement
    ends, even where starting the workers took seconds (a loaded machine)."""
    videos = [make_video(tmp_path / f"v{i}.mp4", 16, seed=i) for i in range(6)]
    monkeypatch.setattr(decode, "_worker_main", slow_worker)
    monkeypatch.setattr(decode, "auto_worker_cap", lambda: 4)
    monkeypatch.setattr(decode, "GROW_AFTER_S", 0.3)
    monkeypatch.setattr(decode, "_memory_available", lambda: memory)
    pool = DecodePool(SETTINGS, workers=workers)
    files = [(i, str(v)) for i, v in enumerate(videos)]
    chunks = list(pool.run(files))
    assert pool.peak_workers == peak
    inline = list(DecodePool(SETTINGS, workers=0).run(files))
    assert len(inline) == 24 and sorted((c.key, c.chunk) for c in chunks) == [(c.key, c.chunk) for c in inline]
    for got in sorted(chunks, key=lambda c: (c.key, c.chunk)):
        want = next(c for c in inline if (c.key, c.chunk) == (got.key, got.chunk))
        assert got.windows == want.windows and np.array_equal(got.frames, want.frames)


def test_an_automatic_pool_keeps_two_workers_when_its_caller_is_the_slower(tmp_path, monkeypatch):
    """The caller (the encoder) takes 0.3 s a result, decoding much less: the results wait for it, never it for
    them, and no worker starts beyond the first two."""
    import time

    videos = [make_video(tmp_path / f"v{i}.mp4", 10, seed=i) for i in range(4)]
    monkeypatch.setattr(decode, "auto_worker_cap", lambda: 4)
    monkeypatch.setattr(decode, "GROW_AFTER_S", 1.0)  # a pause of a loaded machine would need 0.15 s to count
    pool = DecodePool(SETTINGS)
    got = 0
    for event in pool.run([(i, str(v)) for i, v in enumerate(videos)]):
        assert isinstance(event, ChunkResult)
        got += 1
        time.sleep(0.3)
    assert got >= 8 and pool.peak_workers == 2


def test_the_automatic_cap_leaves_a_core_to_the_encoder_and_shares_a_node_between_ranks(monkeypatch):
    import vtr.device

    for cores, local, cap in [(16, None, 15), (16, "4", 3), (2, None, 2), (1, None, 2), (64, "8", 7)]:
        monkeypatch.setattr(vtr.device, "usable_cores", lambda cores=cores: cores)
        if local is None:
            monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
        else:
            monkeypatch.setenv("LOCAL_WORLD_SIZE", local)
        assert decode.auto_worker_cap() == cap, (cores, local)


def test_a_pool_feeding_a_gpu_starts_with_every_worker_memory_allows(monkeypatch):
    """On a GPU the encoder outruns a decode worker 60-90 times: growing from two would first wait a chunk's decode.
    A pool feeding one starts with its cap, fewer where memory is short; on a CPU it starts with two."""
    import torch

    monkeypatch.setattr(decode, "auto_worker_cap", lambda: 15)
    for memory, start in [(None, 15), (64 << 30, 15), (4 << 30, 5), (1 << 30, 2)]:
        monkeypatch.setattr(decode, "_memory_available", lambda memory=memory: memory)
        assert decode.auto_start(torch.device("cuda", 0)) == start, memory
        assert decode.auto_start("cuda") == start and decode.auto_start(torch.device("cpu")) == decode.AUTO_START


def test_the_embedding_loop_starts_the_pool_its_device_wants(tmp_path, monkeypatch, test_model):
    """``embed_chunks`` (through ``make_pool``, which the index bench uses too) with ``workers`` left out asks
    :func:`index.decode.auto_start` for its encoder's device (a CPU here, standing in for a GPU through the
    stand-in), and a number given starts as given."""
    import index.embed as embed

    videos = [make_video(tmp_path / f"v{i}.mp4", 10, seed=i) for i in range(4)]
    asked, made = [], []

    class Recorded(DecodePool):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(embed, "DecodePool", Recorded)
    monkeypatch.setattr(embed, "auto_start", lambda device: asked.append(str(device)) or 3)
    monkeypatch.setattr(decode, "auto_worker_cap", lambda: 4)
    monkeypatch.setattr(decode, "GROW_AFTER_S", 60.0)  # no growth: the start alone is measured
    files = [(i, str(v)) for i, v in enumerate(videos)]
    for workers, peak in [(None, 3), (1, 1)]:
        got = list(embed.embed_chunks(test_model, files, SETTINGS, workers=workers, progress=False))
        assert len(got) >= 8 and made[-1].peak_workers == peak, workers
    assert asked == ["cpu"]


def test_a_worker_leaves_ctrl_c_to_the_build(tmp_path):
    """A terminal's Ctrl-C reaches the decoding workers too (one process group): each printed a KeyboardInterrupt
    traceback above the build's message. A worker now ignores it and goes on until the build stops it."""
    import multiprocessing as mp
    import os
    import signal

    video = make_video(tmp_path / "a.mp4", 4, seed=1)
    worker = decode._Worker(mp.get_context("spawn"), SETTINGS)
    try:
        for tid in (0, 1):
            worker.task_send.send((tid, 0, str(video), 0))
            assert worker.result_recv.recv() == ("start", tid)
            assert worker.result_recv.recv()[:2] == ("plan", tid)  # chunk 0: how many chunks, before decoding
            assert worker.result_recv.recv()[:2] == ("ok", tid)  # the worker runs its loop, its handler set
            if tid == 0:
                os.kill(worker.process.pid, signal.SIGINT)
                worker.process.join(timeout=1)
                assert worker.process.is_alive()
        worker.task_send.send(None)
        worker.process.join(timeout=10)
        assert worker.process.exitcode == 0
    finally:
        worker.kill()
