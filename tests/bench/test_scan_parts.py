"""bench.scan_parts takes this checkout's kernel apart: every cut must still find its code, or the bench says so."""

import pytest

from bench import scan_parts


def test_every_cut_applies_to_this_checkouts_kernel_exactly_once():
    source = scan_parts.KERNEL.read_text()
    edits = [scan_parts._no_recurrence(source), *scan_parts._CUTS.values()]
    for old, new in edits:
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    assert "pass\n" in scan_parts._empty_body(scan_parts.KERNEL.read_text())


def test_a_cut_that_no_longer_matches_stops_with_a_message():
    with pytest.raises(SystemExit, match="no longer has the code"):
        scan_parts._variant("gone", "def scan_fwd(): pass\n", [("this text is not in the kernel", "")])
    with pytest.raises(SystemExit, match="no longer reads"):
        scan_parts._no_recurrence("def scan_fwd(): pass\n")
