"""The offline demo (``vtr demo``): a program over the library, like ``pretrain/``, ``index/`` and ``app/``; it
makes a synthetic corpus, pretrains on it, evaluates, indexes and opens the app (see :mod:`demo.run`).
The library never imports it; ``vtr.cli`` loads :func:`demo.run.demo_command` only when the verb runs."""
