"""The `Search` tool and the backends behind it: local BM25 over a JSONL corpus, or a web-search API you plug in.

The tool mirrors the one ToolRL gave models on Bamboogle: one tool named `Search` with one string parameter
`query`, answered with the top results as title and snippet (ToolRL: Google through Serper, its answer box
then the top organic results, 5 in all). Here each result is `{"title": ..., "snippet": ...}` and the tool
returns a JSON list of them.

A backend is any object with `search(query, k) -> list[{"title", "snippet", ...}]` (`SearchBackend`):

* `BM25Backend(corpus_path)`: BM25 (the `bm25s` package) over passages `{"id", "title", "text"}`, one JSON
  object per line; the index is built once, when the backend is made, and a query takes about a millisecond
  on 20,000 passages. Offline, deterministic; no corpus ships with toolrl, bring your own (e.g. Wikipedia
  passages).
* `WebSearchBackend(fetch)`: wraps a function you write that calls a web-search API; `serper_hits` turns a
  Serper (google.serper.dev) reply into hits the way ToolRL read it. Nothing in toolrl calls the network.

Bad queries never crash an episode: a non-string is refused by the tool's schema, an empty or over-long
query raises a ValueError the suite turns into an error observation, control characters (NUL included)
become spaces.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import bm25s
from pydantic import BaseModel, Field

from tools.suite import ToolSuite
from tools.tool import Tool

SEARCH_TOOL_NAME = "Search"
DEFAULT_K = 5  # ToolRL's Bamboogle runs showed the model 5 results
# Web-search APIs refuse longer queries (Google: 2,048 characters); a longer one is no search anyone meant.
MAX_QUERY_CHARS = 2_000
# Web snippets run to a couple of hundred characters; a corpus passage of about 100 words fits in full.
MAX_SNIPPET_CHARS = 800
MAX_TITLE_CHARS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@runtime_checkable
class SearchBackend(Protocol):
    """What the `Search` tool needs: the top `k` hits for a query, best first.

    Each hit is a mapping with string `title` and `snippet`; other keys (`id`, `score`, `url`) may be present
    and are not shown to the model. Raising is allowed: the tool suite turns it into an error observation.
    """

    def search(self, query: str, k: int) -> list[dict[str, Any]]: ...


class Passage(BaseModel):
    """One corpus passage, as one line of the JSONL corpus."""

    id: str = Field(description="Unique id of the passage (the line number when the line gives none).")
    title: str = Field(default="", description="Title shown with the snippet, e.g. the Wikipedia article.")
    text: str = Field(description="The passage text; searched together with the title.")


def load_corpus(path: str | Path) -> list[Passage]:
    """Read a JSONL corpus: one `{"id", "title", "text"}` object per line (`text` required, blank lines skipped).

    Raises FileNotFoundError for a missing file and ValueError naming the line for a bad one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"search corpus {str(path)!r} not found: give corpus_path= a JSONL file with one "
            '{"id": ..., "title": ..., "text": ...} object per line'
        )
    passages: list[Passage] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            passage = _passage(line, number, path)
            if passage.id in seen:
                raise ValueError(f"{path} line {number}: id {passage.id!r} repeats line {seen[passage.id]}")
            seen[passage.id] = number
            passages.append(passage)
    if not passages:
        raise ValueError(f"search corpus {str(path)!r} has no passages; write one JSON object per line")
    return passages


def _passage(line: str, number: int, path: Path) -> Passage:
    where = f"{path} line {number}"
    try:
        row = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"{where}: not JSON ({exc}); each line must be one JSON object") from None
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object with 'text', got {type(row).__name__}")
    if not isinstance(row.get("text"), str):
        raise ValueError(f"{where}: 'text' must be a string; keys are {sorted(row)}")
    if not isinstance(row.get("title", ""), str):
        raise ValueError(f"{where}: 'title' must be a string, got {type(row['title']).__name__}")
    passage_id = row.get("id", str(number))
    if isinstance(passage_id, bool) or not isinstance(passage_id, (str, int)):
        raise ValueError(f"{where}: 'id' must be a string or an integer, got {passage_id!r}")
    return Passage(id=str(passage_id), title=row.get("title", ""), text=row["text"])


class BM25Backend:
    """BM25 over a passage corpus, indexed once at construction (share one instance among envs to index once).

    Text is lower-cased and split into words of two or more letters or digits, English stop words dropped
    (bm25s's tokenizer); no stemming. Hits with score 0 (no query word in the passage) are left out.
    """

    def __init__(self, corpus: str | Path | Sequence[Passage], k1: float = 1.5, b: float = 0.75) -> None:
        self.passages = load_corpus(corpus) if isinstance(corpus, (str, Path)) else list(corpus)
        if not self.passages:
            raise ValueError("BM25Backend needs at least one passage")
        self._index = bm25s.BM25(k1=k1, b=b)
        texts = [f"{p.title}\n{p.text}" for p in self.passages]
        self._index.index(_tokenize(texts), show_progress=False)

    def search(self, query: str, k: int) -> list[dict[str, Any]]:
        """The top `k` passages for `query` as `{"id", "title", "snippet", "score"}`, best first."""
        tokens = _tokenize([query])
        if not tokens[0] or k < 1:
            return []
        documents, scores = self._index.retrieve(tokens, k=min(k, len(self.passages)), show_progress=False, n_threads=1)
        hits = []
        for index, score in zip(documents[0].tolist(), scores[0].tolist(), strict=True):
            if score <= 0:
                continue
            passage = self.passages[index]
            hits.append({"id": passage.id, "title": passage.title, "snippet": passage.text, "score": score})
        return hits


def _tokenize(texts: list[str]) -> list[list[str]]:
    tokens: list[list[str]] = bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)
    return tokens


class WebSearchBackend:
    """A web-search API behind the `SearchBackend` interface: `fetch(query, k)` returns the API's hits.

    Write `fetch` for the API you have; with Serper (ToolRL's choice) and `requests`, for example::

        def fetch(query: str, k: int) -> list[dict]:
            reply = requests.post(
                "https://google.serper.dev/search",
                headers={"X-API-KEY": key, "Content-Type": "application/json"},
                json={"q": query, "num": 15},
                timeout=20,
            )
            reply.raise_for_status()
            return serper_hits(reply.json(), k)

        env = gym.make("ToolEnv-Bamboogle-v0", data_path=..., search=WebSearchBackend(fetch))

    Hits that are not mappings are dropped and titles and snippets become strings, so a sloppy API reply
    cannot break the observation; an exception in `fetch` becomes an error observation. The suite stops
    waiting after its timeout (`SearchSuite(timeout_s=...)`), so a hung request cannot hang the episode.
    `fetch` must be picklable (a module-level function) for envs that are pickled or run in subprocesses.
    """

    def __init__(self, fetch: Callable[[str, int], Sequence[Mapping[str, Any]]]) -> None:
        if not callable(fetch):
            raise TypeError(f"WebSearchBackend needs a function fetch(query, k) -> hits, got {fetch!r}")
        self.fetch = fetch

    def search(self, query: str, k: int) -> list[dict[str, Any]]:
        """The first `k` hits `fetch` returns, as `{"title", "snippet"}` strings plus any other keys."""
        hits = self.fetch(query, k)
        return [
            {**hit, "title": str(hit.get("title", "")), "snippet": str(hit.get("snippet", ""))}
            for hit in list(hits)[:k]
            if isinstance(hit, Mapping)
        ]


def serper_hits(reply: Mapping[str, Any], k: int = DEFAULT_K) -> list[dict[str, Any]]:
    """Hits from a Serper search reply, read as ToolRL read it: the answer box first (its answer, else its
    snippet), then organic results that have a title and a snippet; `k` in all."""
    hits: list[dict[str, Any]] = []
    box = reply.get("answerBox")
    if isinstance(box, Mapping) and "title" in box and ("answer" in box or "snippet" in box):
        hits.append({"title": box["title"], "snippet": box.get("answer", box.get("snippet"))})
    organic = reply.get("organic")
    for item in organic if isinstance(organic, list) else []:
        if isinstance(item, Mapping) and "title" in item and "snippet" in item:
            hits.append({"title": item["title"], "snippet": item["snippet"], "url": item.get("link")})
    return hits[:k]


def run_search(query: str, *, backend: SearchBackend, k: int = DEFAULT_K) -> list[dict[str, str]]:
    """The `Search` tool's executor: clean the query, ask the backend, and keep each hit's title and snippet.

    Raises ValueError for an empty or over-long query (the suite reports it to the model)."""
    if not isinstance(query, str):
        raise ValueError(f"query must be a string, got {type(query).__name__}")
    if len(query) > MAX_QUERY_CHARS:
        raise ValueError(f"query is {len(query):,} characters long; the limit is {MAX_QUERY_CHARS:,}")
    query = " ".join(_CONTROL.sub(" ", query).split())
    if not query:
        raise ValueError("query is empty; search for some words, e.g. the question or a part of it")
    return [
        {"title": _clip(hit.get("title", ""), MAX_TITLE_CHARS), "snippet": _clip(hit.get("snippet", ""))}
        for hit in backend.search(query, k)[:k]
    ]


def _clip(text: object, limit: int = MAX_SNIPPET_CHARS) -> str:
    text = text if isinstance(text, str) else str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def search_tool(backend: SearchBackend, k: int = DEFAULT_K) -> Tool:
    """The `Search(query)` tool over `backend`, answering with the top `k` hits."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k (results per search) must be a positive integer, got {k!r}")
    if not isinstance(backend, SearchBackend):
        raise TypeError(
            f"search backend {backend!r} has no search(query, k) method; use BM25Backend(corpus_path), "
            "WebSearchBackend(fetch) or an object with that method"
        )
    return Tool(
        name=SEARCH_TOOL_NAME,
        description=f"Search for a query and get the top {k} results, each a title and a snippet of text.",
        parameters={
            "type": "object",
            "properties": {"query": {"type": "string", "description": "What to search for: a question or keywords."}},
            "required": ["query"],
            "additionalProperties": False,
        },
        executor=functools.partial(run_search, backend=backend, k=k),
    )


class SearchSuite(ToolSuite):
    """The `Search` tool over one backend; stateless between episodes.

    Calls run on the suite's worker thread with `timeout_s`, so a slow web API becomes an error observation.
    """

    def __init__(self, backend: SearchBackend, k: int = DEFAULT_K, timeout_s: float | None = 30.0) -> None:
        super().__init__("search", [search_tool(backend, k)], timeout_s)
        self.backend = backend
