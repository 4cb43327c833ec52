"""Stand-ins for ``index.decode._worker_main`` that misbehave on purpose, for the decoding pool's tests. Module-level
functions, so a spawned worker process can import them by name."""

import os
import time


def misbehaving_worker(task_conn, result_conn, settings):
    """The real worker, except that a file whose name holds ``crash`` kills the process (exit code 3) and one whose
    name holds ``hang`` never returns, each after the worker said it started the task."""
    from index import decode

    real = decode.decode_chunk

    def decode_chunk(path, chunk, settings, key=None):
        name = os.path.basename(path)
        if "crash" in name:
            time.sleep(1)  # the pool reads "start" first: the file is at fault, not the start-up
            os._exit(3)
        if "hang" in name:
            time.sleep(3600)
        return real(path, chunk, settings, key=key)

    decode.decode_chunk = decode_chunk  # in this worker process only
    decode._worker_main(task_conn, result_conn, settings)


def dies_at_start(task_conn, result_conn, settings):
    """A worker that exits before it starts any task (a broken install, say)."""
    os._exit(1)
