"""vtr.data.video.start_loader: DataLoader workers forked with no garbage of the parent's left to collect.

A PyAV scaler left in the parent's uncollected reference cycles used to be freed by a forked worker's garbage
collector, which then waited forever on a condition variable of FFmpeg threads that the fork did not copy: the
evaluation's DataLoader hung (seen in CI, tests/eval/test_retrieval_eval.py::test_eval_command_end_to_end)."""
import gc
import weakref

import torch

from vtr.data.video import start_loader


class _FreezeCount(torch.utils.data.Dataset):
    def __len__(self):
        return 1

    def __getitem__(self, i):
        return gc.get_freeze_count()  # in the worker: the objects it inherited and will never collect


class _Cycle:
    pass


def test_start_loader_collects_the_parents_cycles_before_the_fork_and_freezes_the_rest_in_the_workers():
    garbage = _Cycle()
    garbage.self = garbage  # an unreachable cycle once dropped, as a decoder's frames and scaler can leave
    freed = []
    weakref.finalize(garbage, freed.append, "freed")
    del garbage
    gc.disable()  # no collection by chance between here and the fork: only start_loader's own
    try:
        batches = start_loader(torch.utils.data.DataLoader(_FreezeCount(), batch_size=None, num_workers=1,
                                                           timeout=60))
        assert freed == ["freed"]  # collected in the parent, where its threads live, before any worker forked
        assert gc.get_freeze_count() == 0  # the parent collects its own objects again
        assert next(batches) > 0  # the worker inherited its parent's objects frozen
    finally:
        gc.enable()
