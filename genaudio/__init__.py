"""genaudio: music generation research from raw audio.

Data flows one way: audio -> features -> store -> analysis/encoders -> models -> search -> review.
"""
from genaudio.errors import GenaudioError

__version__ = "0.1.0"
__all__ = ["GenaudioError", "__version__"]
