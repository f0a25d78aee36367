"""The soak benchmark (benchmarks/soak.py) on a few episodes: every env id through gymnasium's vector envs,
episodes ending both ways, tools running and failing, resources sampled and judged."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def soak() -> ModuleType:
    import soak

    return soak


def test_every_env_soaks_through_a_sync_vector_env_and_episodes_end_both_ways(soak: ModuleType) -> None:
    report = soak.run_soak(soak.SoakConfig(total_episodes=48, num_envs=2, checkpoints=2))

    assert [r.env_id for r in report.envs] == list(soak.ENV_IDS)
    assert report.episodes == sum(r.episodes for r in report.envs) >= 48
    by_id = {r.env_id: r for r in report.envs}
    for r in report.envs:
        labels = [s.label for s in r.samples]
        assert labels[:3] == ["start", "made", "warm-up"] and labels[-2:] == ["end", "closed"]
        assert r.episodes >= 12 and r.steps >= r.episodes and r.terminated + r.truncated == r.episodes
        assert r.episodes_per_s > 0 and r.steps_per_s >= r.episodes_per_s
        assert all(s.rss_mib > 0 and s.hwm_mib >= s.rss_mib and s.threads >= 1 and s.open_fds >= 3 for s in r.samples)
        assert r.verdict.startswith("no growth beyond noise" if not r.growth else "GROWTH")
        start, closed = r.samples[0], r.samples[-1]
        assert all(getattr(closed, f) <= getattr(start, f) for f in ("threads", "open_fds", "children"))
    assert by_id["ToolEnv-BFCL-v0"].truncated == 0  # single-turn: every episode terminates after one step
    for env_id in ("ToolEnv-Calc-v0", "ToolEnv-BFCLMultiTurn-v0", "ToolEnv-APIBank-v0"):
        r = by_id[env_id]
        assert r.terminated > 0 and r.truncated > 0, env_id
        assert r.tool_results > 0 and r.call_errors > 0, env_id  # tools ran, and some calls failed
    actions: Counter[str] = Counter()
    for r in report.envs:
        actions.update(r.actions)
    assert all(actions[kind] > 0 for kind in ("gold", "hostile", "random"))
    # BFCL's backends run on tool worker threads (and processes): the samples see them, and see them go.
    multi_turn = {s.label: s for s in by_id["ToolEnv-BFCLMultiTurn-v0"].samples}
    start, warm, closed = multi_turn["start"], multi_turn["warm-up"], multi_turn["closed"]
    assert warm.threads + warm.children > start.threads + start.children
    assert (closed.threads, closed.children) == (start.threads, start.children)


def test_async_vector_envs_run_in_worker_processes_that_are_measured_and_reaped(soak: ModuleType) -> None:
    config = soak.SoakConfig(
        total_episodes=16,
        num_envs=2,
        vectorization="async",
        env_ids=["ToolEnv-Calc-v0", "ToolEnv-BFCLMultiTurn-v0"],
        checkpoints=2,
    )
    report = soak.run_soak(config)

    for r in report.envs:
        samples = {s.label: s for s in r.samples}
        assert r.episodes >= 8 and r.tool_results > 0
        start = samples["start"].children  # not always 0: an earlier test may have left multiprocessing's tracker
        assert samples["warm-up"].children == samples["end"].children == start + 2
        assert samples["warm-up"].children_rss_mib > 10
        assert samples["closed"].children == start and samples["closed"].open_fds <= samples["start"].open_fds
        assert "children's RSS" in r.verdict


def test_the_same_seed_plays_the_same_soak(soak: ModuleType) -> None:
    config = soak.SoakConfig(total_episodes=12, num_envs=2, env_ids=["ToolEnv-Calc-v0"], seed=3, checkpoints=1)
    first, second = soak.run_soak(config).envs[0], soak.run_soak(config).envs[0]
    fields = ("episodes", "steps", "terminated", "truncated", "actions", "tool_results", "call_errors")
    assert [getattr(first, f) for f in fields] == [getattr(second, f) for f in fields]
    other = soak.run_soak(config.model_copy(update={"seed": 4})).envs[0]
    assert [getattr(first, f) for f in fields] != [getattr(other, f) for f in fields]


def _samples(soak: ModuleType, warm_rss: float, end_rss: float, **end_counts: int) -> list[object]:
    base = {"seconds": 0.0, "hwm_mib": 2000.0, "threads": 3, "open_fds": 10, "children": 0, "children_rss_mib": 0.0}
    make = soak.ResourceSample
    return [
        make(label="start", episodes=0, rss_mib=warm_rss, **base),
        make(label="warm-up", episodes=10, rss_mib=warm_rss, **base),
        make(label="end", episodes=100, rss_mib=end_rss, **{**base, **end_counts}),
        make(label="closed", episodes=100, rss_mib=end_rss, **base),
    ]


def test_growth_beyond_noise_is_told_from_noise(soak: ModuleType) -> None:
    config = soak.SoakConfig()  # noise: max(8 MiB, 2 % of the RSS after the warm-up)
    grew, verdict, growth, limit, _ = soak.growth_verdict(_samples(soak, 100.0, 107.0), config)
    assert not grew and growth == pytest.approx(7.0) and limit == 8.0 and verdict.startswith("no growth")
    assert soak.growth_verdict(_samples(soak, 100.0, 109.0), config)[0]
    assert not soak.growth_verdict(_samples(soak, 1000.0, 1019.0), config)[0]  # 2 % of 1000 MiB
    grew, verdict, *_ = soak.growth_verdict(_samples(soak, 100.0, 100.0, threads=4), config)
    assert grew and "threads +1" in verdict
    assert soak.growth_verdict(_samples(soak, 100.0, 100.0, open_fds=11), config)[0]


def test_the_script_prints_tables_and_writes_the_json_report(
    soak: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "soak.json"
    argv = ["--total-episodes", "6", "--env", "ToolEnv-Calc-v0", "--num-envs", "2", "--checkpoints", "1"]
    argv += ["--tracemalloc", "--no-progress"]
    soak.main([*argv, "--json", str(out)])

    printed = capsys.readouterr().out
    assert "| ToolEnv-Calc-v0 | " in printed and "traced Python allocations" in printed
    report = soak.SoakReport.model_validate(json.loads(out.read_text()))
    assert report.episodes >= 6 and report.config.tracemalloc
    (env,) = report.envs
    assert env.traced_growth_mib is not None and all(s.traced_mib is not None for s in env.samples)


def test_an_id_the_soak_does_not_know_is_a_usage_error(soak: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        soak.parse_args(["--env", "ToolEnv-Nope-v0"])
    assert exit_info.value.code == 2 and "invalid choice: 'ToolEnv-Nope-v0'" in capsys.readouterr().err
    config, _, _ = soak.parse_args(["--env", "ToolEnv-Calc-v0", "--env-kwargs", '{"num_tasks": 5}'])
    assert config.env_ids == ["ToolEnv-Calc-v0"] and config.env_kwargs("ToolEnv-Calc-v0") == {"num_tasks": 5}
