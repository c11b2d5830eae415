"""Generative models on encoded audio: an autoregressive LSTM and GANs, one training loop,
data-parallel training with Ray Train, and one comparable quality score.

Public API::

    from genaudio.models import TrainConfig, LSTMConfig, GANConfig, ScoreConfig, train, TrainResult
    from genaudio.models import score_model, generate_clips, load_run, train_distributed

Heavy submodules (Ray Train, the scorer) are imported on first use.
"""
from genaudio.models.config import GANConfig, LSTMConfig, ScoreConfig, TrainConfig
from genaudio.models.data import SequenceData, as_sequence_data, split_by_file
from genaudio.models.train import StopTraining, TrainResult, load_checkpoint, train

__all__ = ["TrainConfig", "LSTMConfig", "GANConfig", "ScoreConfig", "SequenceData", "as_sequence_data",
           "split_by_file", "train", "TrainResult", "StopTraining", "load_checkpoint", "score_model",
           "generate_clips", "load_run", "train_distributed"]


def __getattr__(name):
    if name == "score_model":
        from genaudio.models.score import score_model
        return score_model
    if name in ("generate_clips", "load_run"):
        import importlib
        return getattr(importlib.import_module("genaudio.models.generate"), name)
    if name == "train_distributed":
        from genaudio.models.distributed import train_distributed
        return train_distributed
    raise AttributeError(name)
