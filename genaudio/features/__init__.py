"""Feature catalog, one shared analysis per clip, summary functionals, plots of one file.

>>> from genaudio.features import compute, summarize, CATALOG, default_features
>>> feats = compute(y, sr, config=FeatureConfig())        # {name: (dims, time) or (dims,)}
>>> row = summarize(feats)                                # {"mfcc_03_mean": ..., ...}

See ``docs/features.md`` and ``genaudio features list``.
"""
from genaudio.features.analysis import Analysis, compute
from genaudio.features.catalog import (CATALOG, GROUPS, INTERMEDIATES, LIBROSA_COVERAGE, LIBROSA_EXCLUDED,
                                       FeatureSpec, default_features, feature_table, resolve)
from genaudio.features.summary import frame_stats, summarize, summary_columns, summary_vector

__all__ = [
    "Analysis", "CATALOG", "FeatureSpec", "GROUPS", "INTERMEDIATES", "LIBROSA_COVERAGE", "LIBROSA_EXCLUDED",
    "compute", "default_features", "feature_table", "frame_stats", "resolve", "summarize",
    "summary_columns", "summary_vector",
]
