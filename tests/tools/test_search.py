"""The Search tool: the JSONL corpus loader, BM25 retrieval over the fixture corpus, the web-search interface
(with local functions standing in for an API), and hostile queries."""

from __future__ import annotations

import json
import pickle
import threading
from pathlib import Path
from typing import Any

import pytest

from tools.call import ToolCall
from tools.search import (
    MAX_QUERY_CHARS,
    MAX_SNIPPET_CHARS,
    BM25Backend,
    Passage,
    SearchSuite,
    WebSearchBackend,
    load_corpus,
    run_search,
    search_tool,
    serper_hits,
)

FIXTURES = Path(__file__).parent.parent / "fixtures"
CORPUS = FIXTURES / "bamboogle_corpus.jsonl"


@pytest.fixture(scope="module")
def bm25() -> BM25Backend:
    return BM25Backend(CORPUS)


def ids(hits: list[dict[str, Any]]) -> list[str]:
    return [hit["id"] for hit in hits]


def write_lines(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- the corpus file ------------------------------------------------------------------------------------


def test_load_corpus_reads_the_fixture() -> None:
    passages = load_corpus(CORPUS)
    assert len(passages) == 28
    assert passages[0] == Passage(
        id="citibank",
        title="Citibank",
        text="Citibank was founded in 1812 as the City Bank of New York. It later became the consumer banking "
        "division of Citigroup.",
    )
    assert len({p.id for p in passages}) == 28


def test_missing_id_and_title_default_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = write_lines(tmp_path, '{"text": "alpha beta"}', "", '{"id": 7, "title": "T", "text": "gamma"}')
    assert load_corpus(path) == [Passage(id="1", text="alpha beta"), Passage(id="7", title="T", text="gamma")]


def test_missing_corpus_file_says_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere\.jsonl.*corpus_path=.*one JSON|corpus_path="):
        load_corpus(tmp_path / "nowhere.jsonl")


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", r"line 2: not JSON"),
        ('["a list"]', r"line 2: expected a JSON object with 'text', got list"),
        ('{"title": "no text"}', r"line 2: 'text' must be a string; keys are \['title'\]"),
        ('{"text": 5}', r"line 2: 'text' must be a string"),
        ('{"text": "t", "title": 3}', r"line 2: 'title' must be a string, got int"),
        ('{"text": "t", "id": [1]}', r"line 2: 'id' must be a string or an integer"),
        ('{"text": "t", "id": "a"}', r"line 2: id 'a' repeats line 1"),
    ],
)
def test_bad_lines_are_named(tmp_path: Path, bad_line: str, message: str) -> None:
    path = write_lines(tmp_path, '{"id": "a", "text": "fine"}', bad_line)
    with pytest.raises(ValueError, match=message):
        load_corpus(path)


def test_an_empty_corpus_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no passages"):
        load_corpus(write_lines(tmp_path, "", "  "))
    with pytest.raises(ValueError, match="at least one passage"):
        BM25Backend([])


# -- BM25 -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "best"),
    [
        # The hops of the fixture questions, each asked on its own.
        ("In what year was Citibank founded?", "citibank"),
        ("president of the United States 1812", "james-madison"),
        ("first African American mayor of New York City", "david-dinkins"),
        ("fastest air-breathing manned aircraft", "sr-71"),
        ("where did yoga originate", "yoga"),
        ("capital of India", "india"),
        ("Harvard University location", "harvard"),
        ("capital of Massachusetts", "massachusetts"),
        ("rocket that launched Apollo 11", "apollo-11"),
    ],
)
def test_bm25_ranks_the_passage_with_the_fact_first(bm25: BM25Backend, query: str, best: str) -> None:
    hits = bm25.search(query, 5)
    assert ids(hits)[0] == best
    scores = [hit["score"] for hit in hits]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0


@pytest.mark.parametrize(
    ("question", "first", "within_top_5"),
    [
        ("Who was president of the United States in the year that Citibank was founded?", "citibank", []),
        (
            "Who was the first African American mayor of the most populous city in the United States?",
            "tom-bradley",  # BM25 falls for the Los Angeles distractor; the right passages are next
            ["david-dinkins", "new-york-city"],
        ),
        ("What is the fastest air-breathing manned aircraft mostly made out of?", "sr-71", []),
        ("What is the capital of the country where yoga originated?", "yoga", ["india"]),
        ("What's the capital of the state that Harvard University is in?", "harvard", ["massachusetts"]),
        ("What rocket was used for the mission that landed the first humans on the moon?", "apollo-11", []),
    ],
)
def test_bm25_on_the_fixture_questions(bm25: BM25Backend, question: str, first: str, within_top_5: list[str]) -> None:
    found = ids(bm25.search(question, 5))
    assert found[0] == first
    assert set(within_top_5) <= set(found)


def test_hits_carry_title_and_the_whole_passage(bm25: BM25Backend) -> None:
    hit = bm25.search("Saturn V rocket", 1)[0]
    assert hit["id"] == "saturn-v" and hit["title"] == "Saturn V"
    assert hit["snippet"].startswith("Saturn V was an American super heavy-lift rocket")


def test_k_bounds_the_hits_and_unknown_words_find_nothing(bm25: BM25Backend) -> None:
    assert len(bm25.search("capital", 2)) == 2
    with_word = {p.id for p in load_corpus(CORPUS) if "capital" in p.text.lower()}
    assert len(with_word) == 4
    assert set(ids(bm25.search("capital", 1000))) == with_word  # k over the corpus size: all with the word
    assert bm25.search("zyzzyva quux", 5) == []
    assert bm25.search("the of a", 5) == []  # only stop words
    assert bm25.search("capital", 0) == []


def test_a_passage_list_and_a_fresh_index_give_the_same_ranking(bm25: BM25Backend) -> None:
    other = BM25Backend(load_corpus(CORPUS))
    for query in ("capital of India", "Citibank founded", "rocket"):
        assert other.search(query, 5) == bm25.search(query, 5)


def test_bm25_backend_pickles(bm25: BM25Backend) -> None:
    copy = pickle.loads(pickle.dumps(bm25))
    assert copy.search("capital of Massachusetts", 3) == bm25.search("capital of Massachusetts", 3)


# -- the tool and hostile queries -----------------------------------------------------------------------


def test_the_tool_is_toolrls_search_with_one_query_parameter(bm25: BM25Backend) -> None:
    tool = search_tool(bm25, k=3)
    assert tool.name == "Search"
    assert list(tool.parameters["properties"]) == ["query"] and tool.parameters["required"] == ["query"]
    assert tool.validate_arguments({"query": "x"}) is None


def test_run_search_shows_title_and_snippet_only(bm25: BM25Backend) -> None:
    results = run_search("capital of India", backend=bm25, k=2)
    assert results[0] == {"title": "India", "snippet": load_corpus(CORPUS)[13].text}
    assert len(results) == 2 and all(set(r) == {"title", "snippet"} for r in results)


def test_control_characters_and_nul_bytes_become_spaces(bm25: BM25Backend) -> None:
    assert run_search("capital\x00of\x1fIndia\n", backend=bm25) == run_search("capital of India", backend=bm25)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("x" * (MAX_QUERY_CHARS + 1), "characters long; the limit is 2,000"),
        ("   \x00\n ", "query is empty"),
        ("", "query is empty"),
        (42, "query must be a string, got int"),
    ],
)
def test_run_search_refuses_bad_queries(bm25: BM25Backend, query: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_search(query, backend=bm25)


@pytest.mark.parametrize(
    ("parameters", "error"),
    [
        ({"query": "x" * 1_000_000}, "characters long"),
        ({"query": "\x00" * 10}, "query is empty"),
        ({"query": 5}, "parameter 'query' should be string, got integer"),
        ({"query": ["capital"]}, "parameter 'query' should be string, got array"),
        ({"query": None}, "parameter 'query' should be string, got null"),
        ({}, "missing required parameter: 'query'"),
        ({"query": "India", "num": 10}, "unknown parameter 'num'"),
    ],
)
def test_hostile_calls_become_error_results(bm25: BM25Backend, parameters: dict[str, Any], error: str) -> None:
    result = SearchSuite(bm25, timeout_s=None).call(ToolCall(name="Search", parameters=parameters))
    assert result.ok is False
    assert error in result.content["error"]


def test_long_snippets_are_clipped(tmp_path: Path) -> None:
    path = write_lines(tmp_path, json.dumps({"id": "long", "title": "T" * 500, "text": "word " * 1000}))
    (result,) = run_search("word", backend=BM25Backend(path))
    assert len(result["snippet"]) == MAX_SNIPPET_CHARS and result["snippet"].endswith("...")
    assert len(result["title"]) == 200


def test_the_suite_pickles_and_searches_the_same(bm25: BM25Backend) -> None:
    suite = SearchSuite(bm25)
    call = ToolCall(name="Search", parameters={"query": "capital of Massachusetts"})
    copy = pickle.loads(pickle.dumps(suite))
    assert copy.call(call) == suite.call(call)
    assert suite.call(call).content[0]["title"] == "Massachusetts"
    suite.close()
    copy.close()


def test_bad_settings_are_refused(bm25: BM25Backend) -> None:
    with pytest.raises(ValueError, match="positive integer, got 0"):
        search_tool(bm25, k=0)
    with pytest.raises(TypeError, match="has no search"):
        search_tool(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="fetch"):
        WebSearchBackend("https://example.com")  # type: ignore[arg-type]


# -- web search: the interface, with local functions standing in for the API ------------------------------


def canned(query: str, k: int) -> list[Any]:
    return [
        {"title": "A", "snippet": f"about {query}", "url": "https://a.example"},
        "not a hit",
        {"title": 3, "snippet": None},
        {"snippet": "no title"},
        {"title": "E", "snippet": "e"},
    ]


def test_web_backend_normalises_what_fetch_returns() -> None:
    hits = WebSearchBackend(canned).search("q", 3)
    assert hits == [
        {"title": "A", "snippet": "about q", "url": "https://a.example"},
        {"title": "3", "snippet": "None"},
    ]  # the first 3 items, the non-mapping dropped
    assert run_search("q", backend=WebSearchBackend(canned), k=10) == [
        {"title": "A", "snippet": "about q"},
        {"title": "3", "snippet": "None"},
        {"title": "", "snippet": "no title"},
        {"title": "E", "snippet": "e"},
    ]


def failing(query: str, k: int) -> list[Any]:
    raise ConnectionError("no network here")


def test_a_failing_or_hanging_api_becomes_an_error_result() -> None:
    call = ToolCall(name="Search", parameters={"query": "q"})
    result = SearchSuite(WebSearchBackend(failing)).call(call)
    assert result.ok is False and result.content["error"] == "ConnectionError: no network here"

    release = threading.Event()

    def hang(query: str, k: int) -> list[Any]:
        release.wait(10)
        return []

    suite = SearchSuite(WebSearchBackend(hang), timeout_s=0.2)
    try:
        result = suite.call(call)
        assert result.ok is False and "timed out after 0.2 s" in result.content["error"]
    finally:
        release.set()
        suite.close()


def test_serper_hits_reads_the_answer_box_then_organic_results() -> None:
    reply = {
        "answerBox": {"title": "Citibank / Founded", "answer": "June 16, 1812"},
        "organic": [
            {"title": "Citibank - Wikipedia", "snippet": "Citibank was founded in 1812 ...", "link": "https://w"},
            {"title": "No snippet here", "link": "https://x"},
            {"title": "History", "snippet": "The City Bank of New York ...", "link": "https://h"},
            {"title": "More", "snippet": "more", "link": "https://m"},
        ],
    }
    assert serper_hits(reply, 3) == [
        {"title": "Citibank / Founded", "snippet": "June 16, 1812"},
        {"title": "Citibank - Wikipedia", "snippet": "Citibank was founded in 1812 ...", "url": "https://w"},
        {"title": "History", "snippet": "The City Bank of New York ...", "url": "https://h"},
    ]
    snippet_box = {"answerBox": {"title": "T", "snippet": "S"}, "organic": []}
    assert serper_hits(snippet_box) == [{"title": "T", "snippet": "S"}]
    assert serper_hits({"answerBox": {"answer": "no title"}, "organic": "garbage"}) == []
