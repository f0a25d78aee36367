"""ToolEnv-Bamboogle-v0: two-hop questions answered with a `Search` tool, scored on the answer with EM and F1.

## Description
Bamboogle's 125 questions (ToolRL's copy, qiancheng0/ToolRL `benchmarks/Bamboogle/data.json`), each a
one-turn episode: the model may call `Search(query)` (ToolRL's tool name and parameter), reads the results
in `<obs>`, and answers in `<response>`. ToolRL ran Google through Serper; here the backend is pluggable:
BM25 over a JSONL corpus you give (`corpus_path`), or any `SearchBackend` (`search=`, e.g. a
`WebSearchBackend` around a web-search API). Multi-turn mode, at most 4 steps (ToolRL's 4 model rounds).

## Rewards
ToolRL's reward on every step plus, by default, an answer component: the token F1 of the `<response>`
against the gold answer (`RewardConfig(answer="f1")`, in [0, 1]). Each step is scored against the gold step
of its kind: a step that calls tools against the gold search (`{"name": "Search", "parameters": {"query":
<the question>}}`), a step without calls against the gold answer. So a search earns format 1 and a
correctness of +1 for the right tool and parameter name (2 of ToolRL's 3 match points) or +3 when the query
is the question (equal after QA normalisation, so case and punctuation do not matter); what the search
finds is judged by the answer reward, since many good first queries are not the question. An answer earns
format 1 + F1.

## Episode End
A step without a call ends the episode (terminated); 4 steps without an answer truncate it.

## Metrics (info["metrics"] at the end)
`em` and `f1` of the final step's `<response>` against the answer (SQuAD normalisation; 0 when it gave
none), `answered`, `tool_calls` (ToolRL reports their mean per question), `tool_errors`, `format_ok`
(share of well-formed steps) and `steps`. ToolRL judged answers with GPT-4o instead; EM/F1 need no API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolrl_env.env import ToolEnv
from toolrl_env.envs.bamboogle.metrics import align_gold, bamboogle_metrics
from toolrl_env.envs.bamboogle.tasks import SOURCE, load_bamboogle
from toolrl_env.rewards import RewardConfig, resolve_config
from tools.search import DEFAULT_K, BM25Backend, SearchBackend, SearchSuite

MAX_ROUNDS = 4  # ToolRL's round limit on Bamboogle


def make_bamboogle_env(
    data_path: str | Path | None = None,
    corpus_path: str | Path | None = None,
    search: SearchBackend | None = None,
    max_turns: int = MAX_ROUNDS,
    k: int = DEFAULT_K,
    reward: str | RewardConfig = "default",
    mode: str = "multi_turn",
    **env_kwargs: Any,
) -> ToolEnv:
    """ToolEnv-Bamboogle-v0 over `data_path` with BM25 over `corpus_path` or the backend `search`.

    `k` results per search. A preset name for `reward` gets the answer component (F1) added; a RewardConfig
    is used as given (set its `answer` field; `RewardConfig()` is ToolRL's reward alone). Other kwargs are
    ToolEnv settings.
    """
    if data_path is None:
        raise ValueError(f"ToolEnv-Bamboogle-v0 needs data_path=<file>: the Bamboogle questions, {SOURCE}")
    if (corpus_path is None) == (search is None):
        raise ValueError(
            "ToolEnv-Bamboogle-v0 needs one search backend: corpus_path=<file.jsonl> (BM25 over passages, one "
            '{"id", "title", "text"} object per line) or search=<backend> (e.g. '
            "tools.search.WebSearchBackend(fetch) for a web-search API)" + ("; got both" if search is not None else "")
        )
    backend = search if search is not None else BM25Backend(str(corpus_path))
    config = resolve_config(reward).model_copy(update={"answer": "f1"}) if isinstance(reward, str) else reward
    return ToolEnv(
        load_bamboogle(data_path),
        suite=SearchSuite(backend, k=k),
        metrics=bamboogle_metrics,
        align_gold=align_gold,
        mode=mode,
        reward=config,
        max_turns=max_turns,
        **env_kwargs,
    )
