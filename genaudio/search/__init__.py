"""Joint hyperparameter search on Ray Tune + Optuna: feature subsets x encoder x LSTM/GAN.

>>> from genaudio.search import SearchConfig
>>> from genaudio.search.run import run_search
>>> run_search("features/", "runs/search1", SearchConfig(trials=40, epochs=10))
"""
from genaudio.search.space import DEFAULT_SPACE, SearchSpace, build_space, define_by_run
from genaudio.search.tuner import SearchConfig, TrialResources, parse_duration, run_tune

__all__ = ["DEFAULT_SPACE", "SearchSpace", "build_space", "define_by_run", "SearchConfig", "TrialResources",
           "parse_duration", "run_tune"]
