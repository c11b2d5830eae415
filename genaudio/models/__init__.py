"""Generative models on encoded audio: an autoregressive LSTM and GANs, one training loop,
data-parallel training with Ray Train, and the judge applied to models.

Layers, each importing only those above it (no import cycle; ``tests/models/test_layers.py``):

- :mod:`~genaudio.models.config`, :mod:`~genaudio.models.metrics` (pure numpy: ``code_fd``),
  :mod:`~genaudio.models.data` (windows, split by file), :mod:`~genaudio.models.parallel`;
- :mod:`~genaudio.models.lstm`, :mod:`~genaudio.models.gan` (the networks) and
  :mod:`~genaudio.models.families` (the family interface the loop uses: build, optimisers,
  train step, validate, sample);
- :mod:`~genaudio.models.run`: the run folder (config, checkpoints, metrics), ``load_run``;
- :mod:`~genaudio.models.train` (the loop), :mod:`~genaudio.models.distributed` (Ray Train),
  :mod:`~genaudio.models.generate` (sampling), :mod:`~genaudio.models.score` (judging).

Public API::

    from genaudio.models import TrainConfig, LSTMConfig, GANConfig, ScoreConfig, train, TrainResult
    from genaudio.models import score_model, score_at_end, generate_clips, load_run, train_distributed

Ray is imported only when training is distributed.
"""
from genaudio.models.config import GANConfig, LSTMConfig, ScoreConfig, TrainConfig
from genaudio.models.data import SequenceData, as_sequence_data, split_by_file
from genaudio.models.distributed import train_distributed
from genaudio.models.generate import generate_clips
from genaudio.models.run import TrainedModel, TrainResult, load_checkpoint, load_run
from genaudio.models.score import score_at_end, score_model
from genaudio.models.train import StopTraining, train

__all__ = ["TrainConfig", "LSTMConfig", "GANConfig", "ScoreConfig", "SequenceData", "as_sequence_data",
           "split_by_file", "train", "TrainResult", "StopTraining", "load_checkpoint", "score_model",
           "score_at_end", "generate_clips", "load_run", "TrainedModel", "train_distributed"]
