"""The trading agent's models: the registry of encoder, actor and critic builders by name
(:mod:`.registry`), the baseline MLPs (:mod:`.baseline`), the seed's TPM models (:mod:`.tpm`)
and the recurrent autoencoder of seed 002 (:mod:`.autoencoder`).

Importing this package registers every builder and layer, so model files that use them load.
"""

from . import autoencoder, baseline, skip, tpm  # noqa: F401  (they register on import)
from .registry import AUTO, DEFAULT_MODELS, build, describe, names, register, resolve

__all__ = ["AUTO", "DEFAULT_MODELS", "build", "describe", "names", "register", "resolve"]
