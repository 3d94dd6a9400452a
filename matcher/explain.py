"""Why a match was made: shared key terms, the best-matching sentence pair, the checks.

Built for the shown results only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from matcher import ranking
from matcher.keyword import KeywordIndex
from matcher.text import is_chinese, sentences, tokenize


def explain(title: str, body: str, record: Any, keywords: KeywordIndex, x: ranking.Scored, *,
            encoder=None) -> dict[str, Any]:
    """Shared key terms (rarest first), the best-matching sentence pair, and the checks."""
    q_tokens = set(tokenize(f"{title} {body}"))
    r_tokens = set(tokenize(f"{record.title} {record.description}"))
    shared = sorted(
        (t for t in q_tokens & r_tokens if not t.replace(".", "").isdigit() and len(t) > 1),
        key=lambda t: (-keywords.idf(t), t),
    )
    shared = [t for t in shared if not any(t != o and t in o for o in shared)][:10]
    pair = best_pair(f"{title}。{body}" if title else body, f"{record.title}。{record.description}",
                     keywords, encoder=encoder)
    return {
        "shared_terms": shared,
        "best_pair": pair,
        "checks": [c.as_dict() for c in x.checks],
        "passed": [c.name for c in x.checks if c.passed],
        "failed": [c.name for c in x.checks if c.passed is False],
    }


def best_pair(left: str, right: str, keywords: KeywordIndex, *, encoder=None) -> dict[str, Any] | None:
    """The sentence of each text that share the rarest words; without shared words, the
    pair closest in meaning."""
    ls, rs = sentences(left)[:40], sentences(right)[:40]
    if not ls or not rs:
        return None
    lt = [set(tokenize(s)) for s in ls]
    rt = [set(tokenize(s)) for s in rs]
    best, best_score = None, 0.0
    if is_chinese(left) != is_chinese(right):
        lt = []  # other languages: shared words are incidental (model numbers, units)
    for i, a in enumerate(lt):
        for j, b in enumerate(rt):
            score = sum(keywords.idf(t) for t in a & b)
            if score > best_score:
                best, best_score = (i, j), score
    if best is not None:
        return {"query": ls[best[0]], "record": rs[best[1]], "method": "keywords",
                "score": round(best_score, 3)}
    if encoder is None:
        return None
    lv = encoder.encode(ls[:12], "query")
    rv = encoder.encode(rs[:12], "passage")
    sims = lv @ rv.T
    i, j = np.unravel_index(int(np.argmax(sims)), sims.shape)
    return {"query": ls[i], "record": rs[j], "method": "semantic", "score": round(float(sims[i, j]), 4)}


def explain_stored(record: Any, other: Any, keywords: KeywordIndex, checks: list[ranking.Check],
                   record_vecs: np.ndarray | None, other_vecs: np.ndarray | None) -> dict[str, Any]:
    """The explanation of a stored match, from the two records' texts, their stored passage
    vectors and the keyword statistics alone: no encoder call at read time.

    Without shared words (usually two languages), the best pair is the two records'
    passages closest in meaning, by their stored vectors, each shown by its first
    sentence.
    """
    q_tokens = set(tokenize(f"{record.title} {record.description}"))
    r_tokens = set(tokenize(f"{other.title} {other.description}"))
    shared = sorted(
        (t for t in q_tokens & r_tokens if not t.replace(".", "").isdigit() and len(t) > 1),
        key=lambda t: (-keywords.idf(t), t),
    )
    shared = [t for t in shared if not any(t != o and t in o for o in shared)][:10]
    left, right = f"{record.title}。{record.description}", f"{other.title}。{other.description}"
    pair = best_pair(left, right, keywords)
    if pair is None and record_vecs is not None and other_vecs is not None and len(record_vecs) and len(other_vecs):
        sims = record_vecs @ other_vecs.T
        i, j = np.unravel_index(int(np.argmax(sims)), sims.shape)
        lp, rp = _passage_sentences(left, len(record_vecs), int(i)), _passage_sentences(right, len(other_vecs), int(j))
        if lp and rp:
            pair = {"query": lp, "record": rp, "method": "semantic", "score": round(float(sims[i, j]), 4)}
    return {
        "shared_terms": shared,
        "best_pair": pair,
        "checks": [c.as_dict() for c in checks],
        "passed": [c.name for c in checks if c.passed],
        "failed": [c.name for c in checks if c.passed is False],
    }


def _passage_sentences(text: str, n_passages: int, i: int) -> str | None:
    """A sentence of roughly the ``i``-th of ``n_passages`` equal parts of ``text`` (after the title)."""
    parts = sentences(text)
    if not parts:
        return None
    body = parts[1:] or parts
    at = min(len(body) - 1, (i * len(body)) // max(n_passages, 1))
    return body[at]
