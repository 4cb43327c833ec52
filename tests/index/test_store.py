import numpy as np
import pytest

from index.store import VectorStore, choose_factory, gpu_available


def clustered(n, d, seed, centers=200):
    """Unit vectors with neighbour structure (like real embeddings): noisy points around random centres."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, d)).astype(np.float32)
    x = c[rng.integers(0, centers, n)] + 0.6 * rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def recall_at(exact_ids, approx_ids, k=10):
    return np.mean([len(set(a[:k]) & set(e[:k])) / k for a, e in zip(approx_ids, exact_ids)])


def test_choose_factory_by_size():
    assert choose_factory(1_000) == "Flat"
    assert choose_factory(1_000_000) == "IVF4096,Flat"


@pytest.mark.parametrize("factory,params", [("IVF256,Flat", {"nprobe": 32}), ("HNSW32,Flat", {"ef_search": 512})])
def test_approximate_recall_against_exact(factory, params):
    x = clustered(20_000, 64, seed=0)
    q = clustered(200, 64, seed=1)
    ids = np.arange(1000, 1000 + len(x))
    chunks = lambda: iter([(ids[:10_000], x[:10_000]), (ids[10_000:], x[10_000:])])  # noqa: E731
    exact = VectorStore.build(64, chunks, len(x), "Flat")
    approx = VectorStore.build(64, chunks, len(x), factory)
    approx.set_search_params(**params)
    _, e = exact.search(q, 10)
    _, a = approx.search(q, 10)
    assert recall_at(e, a) >= 0.95


def test_remove_save_load_and_filtered_search(tmp_path):
    x = clustered(3_000, 32, seed=2)
    ids = np.arange(10, 3010)
    store = VectorStore.build(32, lambda: iter([(ids, x)]), len(x), "IVF64,Flat")
    assert store.remove(ids[:100]) == 100
    assert store.ntotal == 2900 and not set(ids[:100]) & set(store.ids())
    store.save(tmp_path / "v.faiss")
    loaded = VectorStore.load(tmp_path / "v.faiss", "IVF64,Flat")
    _, got = loaded.search(x[200:201], 1)
    assert got[0, 0] == 210
    flat = VectorStore.build(32, lambda: iter([(ids, x)]), len(x))
    _, got = flat.search(x[:1], 3, allowed_ids=np.array([500, 600]))
    assert set(got[0][:2]) == {500, 600} and got[0][2] == -1


def test_more_neighbours_than_a_gpu_index_returns_come_from_the_cpu_index():
    """faiss's GPU indexes refuse k > 2048 ("GPU index only supports k <= 2048"); the app's "More results" pages and
    `vtr index search -k 500` (5 windows per result) ask for more. A stand-in GPU index with that limit."""
    from index.store import GPU_MAX_K

    class GpuLike:
        calls = []

        def search(self, q, k):
            self.calls.append(k)
            if k > GPU_MAX_K:
                raise RuntimeError("GPU index only supports k <= 2048")
            return store.index.search(q, k)

    x = clustered(3000, 16, seed=5)
    ids = np.arange(len(x)) * 3
    store = VectorStore.build(16, lambda: iter([(ids, x)]), len(x), "Flat")
    exact_scores, exact_ids = store.search(x[:2], 2500)
    store._gpu = (gpu := GpuLike(), None)
    _, small = store.search(x[:2], 10)
    scores, got = store.search(x[:2], 2500)
    assert gpu.calls == [10]  # the small search on the GPU, the large one on the CPU
    np.testing.assert_array_equal(small, exact_ids[:, :10])
    np.testing.assert_array_equal(got, exact_ids)
    np.testing.assert_allclose(scores, exact_scores)


@pytest.mark.gpu
def test_gpu_search_matches_cpu():
    pytest.importorskip("faiss", reason="faiss is not installed")
    if not gpu_available():
        pytest.skip("faiss has no GPU support here (faiss-cpu)")
    x = clustered(50_000, 128, seed=3)
    q = clustered(100, 128, seed=4)
    ids = np.arange(len(x)) * 7
    for factory in ("Flat", "IVF256,Flat"):
        cpu = VectorStore.build(128, lambda: iter([(ids, x)]), len(x), factory)
        gpu = VectorStore.build(128, lambda: iter([(ids, x)]), len(x), factory)
        assert gpu.to_gpu()
        sc, ic = cpu.search(q, 10)
        sg, ig = gpu.search(q, 10)
        assert (ic[:, 0] == ig[:, 0]).mean() >= 0.99
        assert recall_at(ic, ig) >= 0.98
        np.testing.assert_allclose(sc[:, 0], sg[:, 0], atol=1e-3)


@pytest.mark.parametrize("factory, exact", [("Flat", True), ("IVF16,Flat", True), ("HNSW16,Flat", False),
                                            ("IVF16,SQ8", False)])
def test_filtered_search_is_exact_where_the_store_keeps_its_vectors(factory, exact):
    """Flat and IVF…,Flat find the exact top k among the allowed ids themselves (IVF with every list probed: an
    allowed vector in a list the query would not probe is still found); other stores say they cannot."""
    vecs = clustered(4000, 32, seed=3)
    ids = np.arange(10, 4010, dtype=np.int64)
    store = VectorStore.build(32, lambda: iter([(ids, vecs)]), len(ids), factory)
    store.set_search_params(nprobe=1)  # a filtered exact search ignores it
    rng = np.random.default_rng(0)
    allowed = np.sort(rng.choice(ids, 300, replace=False))
    queries = clustered(5, 32, seed=9)
    found = store.search_allowed_exactly(queries, 10, allowed)
    if not exact:
        assert found is None
        return
    scores, got = found
    mask = np.isin(ids, allowed)
    truth = queries @ vecs[mask].T
    for qi in range(len(queries)):
        best = np.argsort(-truth[qi])[:10]
        assert list(got[qi]) == list(ids[mask][best])
        np.testing.assert_allclose(scores[qi], truth[qi][best], rtol=1e-5, atol=1e-5)
