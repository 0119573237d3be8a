"""Recommendations from a precomputed factor file: loading/verification, watching, ranking.

Training, evaluation and the catalogue prior live in submodules that the device never imports.
"""

from device.recommend.factors import FORMAT_VERSION, FactorModel, FactorWatcher
from device.recommend.ranker import Ranker, RankerProtocol

__all__ = ["FORMAT_VERSION", "FactorModel", "FactorWatcher", "Ranker", "RankerProtocol"]
