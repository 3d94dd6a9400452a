"""Sentence embeddings: model resolution, bundled-model conversion, encoding.

Knows nothing of demands or achievements: it turns texts into L2-normalised
float32 vectors.  Heavy libraries (torch, sentence-transformers) are imported
only when a model is first used.
"""

from embeddings.encoder import (
    DEFAULT_BACKEND,
    DEFAULT_MODEL,
    Encoder,
    EncoderError,
    SentenceTransformerEncoder,
    default_cache_dir,
    get_encoder,
    model_id_for,
)

__all__ = [
    "DEFAULT_BACKEND",
    "DEFAULT_MODEL",
    "Encoder",
    "EncoderError",
    "SentenceTransformerEncoder",
    "default_cache_dir",
    "get_encoder",
    "model_id_for",
]
