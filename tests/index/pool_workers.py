"""Stand-ins for ``index.decode._worker_main`` that misbehave on purpose, for the decoding pool's tests. Module-level
functions, so a spawned worker process can import them by name."""

import os
import time


def misbehaving_worker(task_conn, result_conn, settings):
    """The real worker, except that a file whose name holds ``crash`` kills the process (exit code 3) and one whose
    name holds ``hang`` never returns, each after the worker said it started the task."""
    from index import decode

    real = decode.decode_chunk

    def decode_chunk(path, chunk, settings, key=None, on_plan=None):
        name = os.path.basename(path)
        if "crash" in name:
            time.sleep(1)  # the pool reads "start" first: the file is at fault, not the start-up
            os._exit(3)
        if "hang" in name:
            time.sleep(3600)
        return real(path, chunk, settings, key=key, on_plan=on_plan)

    decode.decode_chunk = decode_chunk  # in this worker process only
    decode._worker_main(task_conn, result_conn, settings)


def waits_for_chunk_1(task_conn, result_conn, settings):
    """The real worker, except that chunk 0 of a file, once it has said how many chunks the file has, waits (up to
    60 s) until chunk 1 of the file has been decoded, which another worker must do meanwhile."""
    from index import decode

    real = decode.decode_chunk

    def decode_chunk(path, chunk, settings, key=None, on_plan=None):
        marker = path + ".chunk1-done"

        def plan(n):
            on_plan(n)
            deadline = time.monotonic() + 60
            while not os.path.exists(marker) and time.monotonic() < deadline:
                time.sleep(0.05)

        result = real(path, chunk, settings, key=key, on_plan=plan if on_plan is not None else None)
        if chunk == 1:
            open(marker, "w").close()
        return result

    decode.decode_chunk = decode_chunk  # in this worker process only
    decode._worker_main(task_conn, result_conn, settings)


def dies_at_start(task_conn, result_conn, settings):
    """A worker that exits before it starts any task (a broken install, say)."""
    os._exit(1)


def slow_worker(task_conn, result_conn, settings):
    """The real worker, except that each task takes 0.4 s more, sleeping (a decoder slower than its consumer, whatever
    the machine's load)."""
    from index import decode

    real = decode.decode_chunk

    def decode_chunk(path, chunk, settings, key=None, on_plan=None):
        time.sleep(0.4)
        return real(path, chunk, settings, key=key, on_plan=on_plan)

    decode.decode_chunk = decode_chunk  # in this worker process only
    decode._worker_main(task_conn, result_conn, settings)
