"""Chinese-aware text handling: tokens for keyword search, sentences, passages."""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Callable
from importlib import resources

_ASCII_TERM = re.compile(r"[a-z0-9][a-z0-9\-\.\+/%]*[a-z0-9%+]|[a-z0-9]")
_CJK_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
_SPLIT = re.compile(r"(?<=[。！？!?；;\n])|(?<=[.])\s+(?=[A-Z\u4e00-\u9fff])")
_TOKEN_SPLIT = re.compile(r"([a-z0-9][a-z0-9\-\.\+/%]*[a-z0-9%+]|[a-z0-9]|[\u3400-\u9fff\uf900-\ufaff]+)")

_lock = threading.Lock()
_tokenizer = None


def _data(name: str) -> str:
    return resources.files("matcher").joinpath("data", name).read_text(encoding="utf-8")


STOPWORDS = frozenset(
    w.strip() for w in _data("stopwords.txt").splitlines() if w.strip() and not w.startswith("#")
)
TERMS = tuple(
    w.strip() for w in _data("terms.txt").splitlines() if w.strip() and not w.startswith("#")
)


def _jieba():
    """A private jieba tokenizer with the project's technical terms kept whole."""
    global _tokenizer
    if _tokenizer is None:
        with _lock:
            if _tokenizer is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                tok = jieba.Tokenizer()
                tok.initialize()
                for term in TERMS:
                    tok.add_word(term, freq=50_000)
                _tokenizer = tok
    return _tokenizer


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").lower()


def tokenize(text: str) -> list[str]:
    """Keyword tokens: jieba search-mode words for Chinese, whole ASCII terms.

    Model numbers, grades and units (``c19400``, ``lifepo4``, ``5g``) stay
    whole; stop words and punctuation are dropped.  Search mode emits long
    compounds and their parts, so both precise and partial matches score.
    """
    tokens: list[str] = []
    tok = None
    for piece in _TOKEN_SPLIT.findall(normalise(text)):
        if _CJK_RUN.fullmatch(piece):
            tok = tok or _jieba()
            tokens.extend(w for w in tok.cut_for_search(piece) if w not in STOPWORDS)
        elif piece not in STOPWORDS and not (len(piece) == 1 and piece.isalpha()):
            tokens.append(piece)
    return tokens


def is_chinese(text: str) -> bool:
    """Mostly Chinese (at least a fifth of the letters are CJK)?"""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return False
    return sum(1 for c in letters if _CJK_RUN.match(c)) >= 0.2 * len(letters)


def sentences(text: str) -> list[str]:
    """Split into sentences on Chinese and Western sentence ends; drops blanks."""
    return [s.strip() for s in _SPLIT.split(text or "") if s and s.strip()]


def passages(
    title: str, body: str, count_tokens: Callable[[str], int], max_tokens: int
) -> list[str]:
    """Cut a record into passages the model can read whole.

    A record that fits is one passage (title and body).  A longer one is cut
    at sentence ends into passages of at most ``max_tokens`` tokens, each led
    by the title so it keeps its context; a sentence longer than that is cut
    by characters.  Nothing past the model's limit is lost.
    """
    whole = f"{title}\n{body}".strip()
    if count_tokens(whole) <= max_tokens:
        return [whole]
    budget = max(16, max_tokens - count_tokens(title) - 2)
    pieces: list[str] = []
    for sentence in sentences(body):
        if count_tokens(sentence) <= budget:
            pieces.append(sentence)
            continue
        step = max(8, len(sentence) * budget // max(1, count_tokens(sentence)))
        pieces.extend(sentence[i : i + step] for i in range(0, len(sentence), step))
    out: list[str] = []
    current = ""
    for piece in pieces:
        joined = f"{current}{' ' if current and piece[:1].isascii() else ''}{piece}"
        if current and count_tokens(joined) > budget:
            out.append(current)
            current = piece
        else:
            current = joined
    if current:
        out.append(current)
    return [f"{title}\n{p}" for p in out]
