"""How a model is MADE: the pretraining program (train.py) and its configs."""

import vtr  # noqa: F401  (first: sets OpenMP's wait policy before torch loads)
