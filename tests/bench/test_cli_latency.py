"""bench.cli_latency's timing of one vtr command in a process of its own."""

import pytest

from bench.cli_latency import ROOT, run_timed


def test_a_command_is_timed_in_its_own_process_and_a_failure_stops_the_bench():
    wall, rss = run_timed(["models"], ROOT)
    assert wall > 0 and 10 < rss < 4096  # MiB: the child's own peak (torch imported), not this process's
    with pytest.raises(SystemExit, match="(?s)index status --index .*nowhere failed .*not an index folder"):
        run_timed(["index", "status", "--index", str(ROOT / "nowhere")], ROOT)
