# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Benchmark TRAPO's micro-group rollout against one plain n-rollout batch, on a simulated or a real vLLM server.

The server is a continuous batcher (vLLM-like): every decode step all active sequences gain one token and the step
takes ``step_ms + token_ms · active`` milliseconds, so a request's latency grows with the tokens it generates and with
the load. Requests join at the next step; a cancelled request leaves (verl aborts discarded samples the same way).
Prefill is not modelled.

Workload: ``--prompts`` prompts, ``n = 8``; a share ``--guided-share`` of them is hard (every unguided sample fails,
reward 0, so g_2, g_3, g_4 are guided), the rest easy (every sample correct: never guided). Sample lengths are drawn
per (prompt, session, prefix ratio), identically for both runs: unguided ``U(0.25, 1) · response_length``, a
continuation after a prefix of ratio L ``(1 - L) ·`` that, capped at ``response_length - len(prefix)``; the full
trace (L = 1) calls no server. Rewards arrive ``--reward-ms`` after the sample.

Runs, each on a fresh server, prompts concurrently (one asyncio task per prompt, as the worker's ``_run_prompt``):

* ``plain``: verl's path, the n samples of every prompt at once.
* ``guided``: :class:`trustrl.recipes.trapo.rollout.MicroGroupScheduler` with the recipe defaults
  (``prefetch_unguided=True``, ``reward_bounds=[0, 1]``).
* ``guided_strict``: the same without the two shortcuts (each micro-group waits for the previous rewards).
* ``lower_bound``: the guided run's kept requests (the tokens the batch needs) all submitted at t = 0.

Target: guided / plain <= 1.5 at 30% guided prompts (goal 1.3).

``--server vllm`` runs the same workload through a real vLLM engine (vLLM's CPU build on a CPU machine; the CPU
tier's tiny model by default, ``--model`` for another): every request is the prompt's real token ids plus the
prefix, sampled with ``ignore_eos`` and ``max_tokens`` = the drawn length, so each request generates exactly the
tokens the simulated one would. One engine serves every run in turn (after a warm-up request), on the same prompts;
``lower_bound`` submits the guided run's kept requests all at once.

    python scripts/bench/bench_trapo_rollout.py --out bench_trapo_rollout.json
    python scripts/bench/bench_trapo_rollout.py --server vllm --repeats 1 --out bench_trapo_rollout_vllm.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from trustrl.recipes.trapo.config import MICRO_GROUP_PRESETS
from trustrl.recipes.trapo.rollout import MicroGroupScheduler, TrajectoryPlan


@dataclass
class _Request:
    tokens: int
    done: int = 0
    future: asyncio.Future | None = None


@dataclass
class SimServer:
    """Continuous-batching server simulated in real time (see the module docstring)."""

    step_ms: float
    token_ms: float
    active: list[_Request] = field(default_factory=list)
    generated: int = 0
    requests: int = 0
    cancelled_tokens: int = 0
    _loop_task: asyncio.Task | None = None

    async def generate(self, tokens: int, prompt: int = 0, prefix_len: int = 0) -> int:
        request = _Request(tokens, future=asyncio.get_running_loop().create_future())
        self.requests += 1
        self.active.append(request)
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.create_task(self._run())
        try:
            return await request.future
        except asyncio.CancelledError:
            if request in self.active:  # an aborted request frees its slot at the next step
                self.active.remove(request)
                self.cancelled_tokens += request.done
            raise

    async def _run(self) -> None:
        while self.active:
            await asyncio.sleep((self.step_ms + self.token_ms * len(self.active)) / 1000)
            finished = []
            for request in self.active:
                request.done += 1
                self.generated += 1
                if request.done >= request.tokens:
                    finished.append(request)
            for request in finished:
                self.active.remove(request)
                request.future.set_result(request.tokens)


class VLLMServer:
    """The same ``generate`` contract on a real vLLM ``AsyncLLM`` engine (continuous batching, real decode steps).

    A request for prompt p with a prefix of k tokens sends p's chat-templated prompt ids plus the first k ids of a
    fixed trace and asks for exactly ``tokens`` new tokens (``ignore_eos``). A cancelled request is aborted by
    vLLM when its output stream is closed, as verl aborts discarded samples.
    """

    def __init__(self, engine, prompt_ids: list[list[int]], trace_ids: list[int]):
        self.engine, self.prompt_ids, self.trace_ids = engine, prompt_ids, trace_ids
        self.generated = self.requests = self.cancelled_tokens = 0

    async def generate(self, tokens: int, prompt: int = 0, prefix_len: int = 0) -> int:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        self.requests += 1
        params = SamplingParams(
            max_tokens=tokens, ignore_eos=True, temperature=1.0, output_kind=RequestOutputKind.FINAL_ONLY
        )
        ids = self.prompt_ids[prompt % len(self.prompt_ids)] + self.trace_ids[:prefix_len]
        final = None
        async for output in self.engine.generate(TokensPrompt(prompt_token_ids=ids), params, uuid.uuid4().hex):
            final = output  # FINAL_ONLY: one output, when the request finishes
        produced = len(final.outputs[0].token_ids)
        if produced != tokens:
            raise RuntimeError(f"vLLM generated {produced} tokens for max_tokens={tokens} with ignore_eos")
        self.generated += produced
        return produced


def start_vllm(args):
    """A vLLM engine on the CPU tier's tiny model (or ``--model``) with the CPU tier's settings; returns it and the
    prompts' token ids (one chat-templated copy-digit prompt per benchmark prompt)."""
    for key, value in {
        "VLLM_TARGET_DEVICE": "cpu",
        "VLLM_CPU_KVCACHE_SPACE": "2",
        "VLLM_CPU_OMP_THREADS_BIND": "nobind",
    }.items():
        os.environ.setdefault(key, value)
    from transformers import AutoTokenizer
    from trustrl.recipes.cpu import task
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    model = args.model or str(task.build_model(Path(tempfile.mkdtemp(prefix="bench_trapo_vllm_")) / "model"))
    tok = AutoTokenizer.from_pretrained(model)
    rows = task.make_rows(args.prompts, "train", args.seed)
    texts = [tok.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=False) for r in rows]
    prompt_ids = [tok.encode(t, add_special_tokens=False) for t in texts]
    # the prefix tokens: a fixed pseudo-trace over the vocabulary (its content does not change the cost)
    trace_ids = [i % len(tok) for i in range(7, 7 + args.response_length)]
    max_len = max(map(len, prompt_ids)) + args.response_length
    engine = AsyncLLM.from_engine_args(
        AsyncEngineArgs(
            model=model,
            dtype="float32",
            enforce_eager=True,
            max_model_len=max_len,
            max_num_seqs=args.max_num_seqs,
            max_num_batched_tokens=max(2048, max_len),
            enable_prefix_caching=False,
            seed=args.seed,
        )
    )
    return engine, prompt_ids, trace_ids


class Workload:
    def __init__(self, args):
        self.args = args
        n_hard = round(args.prompts * args.guided_share)
        self.hard = set(random.Random(args.seed).sample(range(args.prompts), n_hard))
        self.schedule = MICRO_GROUP_PRESETS[args.preset]
        # expert trace length in tokens (EOS included); the prefix of ratio L is int(len · L) (no paragraph snap)
        self.trace_len = args.response_length

    def length(self, prompt: int, session: int, ratio: float) -> int:
        rng = random.Random(f"{self.args.seed}:{prompt}:{session}:{ratio}")
        return max(1, round(rng.uniform(0.25, 1.0) * self.args.response_length * (1.0 - ratio)))

    def reward(self, prompt: int, guided: bool) -> float:
        return 1.0 if guided or prompt not in self.hard else 0.0


async def _reward_delay(args) -> None:
    await asyncio.sleep(args.reward_ms / 1000)


async def run_plain(work: Workload, server: SimServer) -> None:
    n = sum(work.schedule.sizes)

    async def sample(prompt, session):
        await server.generate(work.length(prompt, session, 0.0), prompt)
        await _reward_delay(work.args)

    async def prompt_task(prompt):
        await asyncio.gather(*(sample(prompt, s) for s in range(n)))

    await asyncio.gather(*(prompt_task(p) for p in range(work.args.prompts)))


async def run_guided(work: Workload, server, prefetch: bool, bounds) -> tuple[list[tuple[int, int, int]], list[int]]:
    """Returns ((prompt, prefix length, tokens) of each kept generated sample, generation rounds of each prompt)."""
    kept: list[tuple[int, int, int]] = []
    rounds: list[int] = []
    budget = work.args.response_length

    async def prompt_task(prompt):
        async def plan_group(group, guided):
            ratio = work.schedule.prefix_ratios[group] if guided else 0.0
            cut = int(work.trace_len * ratio)
            return [
                TrajectoryPlan(group=group, guided=guided, prefix_ids=(0,) * cut, generate=ratio < 1.0)
            ] * work.schedule.sizes[group]

        async def run_sample(plan, session):
            tokens = 0
            if plan.generate:
                ratio = len(plan.prefix_ids) / work.trace_len
                tokens = min(work.length(prompt, session, ratio), budget - len(plan.prefix_ids))
                await server.generate(tokens, prompt, len(plan.prefix_ids))
            await _reward_delay(work.args)
            return work.reward(prompt, plan.guided), (prompt, len(plan.prefix_ids), tokens)

        scheduler = MicroGroupScheduler(
            work.schedule, plan_group=plan_group, run_sample=run_sample, prefetch=prefetch, reward_bounds=bounds
        )
        result = await scheduler.run()
        kept.extend(s.task.result()[1] for s in result.samples if s.plan.generate)
        rounds.append(result.rounds)

    await asyncio.gather(*(prompt_task(p) for p in range(work.args.prompts)))
    return kept, rounds


async def run_all_at_once(requests: list[tuple[int, int, int]], server) -> None:
    await asyncio.gather(*(server.generate(t, p, k) for p, k, t in requests))


async def _timed(coro_fn, *args):
    start = time.perf_counter()
    out = await coro_fn(*args)
    return time.perf_counter() - start, out


async def _bench_runs(args, work: Workload, new_server) -> dict[str, dict]:
    """Every repeat's four runs, one after another in one event loop (a vLLM engine is bound to its loop)."""
    results: dict[str, dict] = {}
    for rep in range(args.repeats):
        runs = {}
        server = new_server()
        wall, _ = await _timed(run_plain, work, server)
        runs["plain"] = (wall, server)
        server = new_server()
        wall, (kept, rounds) = await _timed(run_guided, work, server, True, (0.0, 1.0))
        runs["guided"] = (wall, server)
        guided_rounds = rounds
        server = new_server()
        wall, (_, strict_rounds) = await _timed(run_guided, work, server, False, None)
        runs["guided_strict"] = (wall, server)
        server = new_server()
        wall, _ = await _timed(run_all_at_once, kept, server)
        runs["lower_bound"] = (wall, server)
        kept_tokens = sum(t for _, _, t in kept)
        for name, (wall, server) in runs.items():
            entry = results.setdefault(name, {"wall_s": []})
            entry["wall_s"].append(wall)
            entry.update(generated_tokens=server.generated, requests=server.requests)
            entry["kept_tokens"] = kept_tokens if name in ("guided", "lower_bound") else server.generated
        results["guided"]["rounds_mean"] = sum(guided_rounds) / len(guided_rounds)
        results["guided_strict"]["rounds_mean"] = sum(strict_rounds) / len(strict_rounds)
        print(f"  repeat {rep + 1}: " + "  ".join(f"{k}={v[0]:.2f}s" for k, v in runs.items()), flush=True)
    return results


async def _bench_vllm(args, work: Workload) -> dict[str, dict]:
    engine, prompt_ids, trace_ids = start_vllm(args)
    try:
        # warm-up: the first requests of a fresh engine pay one-time costs that no run below should carry
        warm = VLLMServer(engine, prompt_ids, trace_ids)
        await asyncio.gather(*(warm.generate(args.response_length, p) for p in range(min(8, args.prompts))))
        return await _bench_runs(args, work, lambda: VLLMServer(engine, prompt_ids, trace_ids))
    finally:
        engine.shutdown()


def bench(args) -> dict:
    work = Workload(args)
    if args.server == "vllm":
        results = asyncio.run(_bench_vllm(args, work))
    else:
        results = asyncio.run(_bench_runs(args, work, lambda: SimServer(args.step_ms, args.token_ms)))
    for entry in results.values():
        entry["wall_s_median"] = sorted(entry["wall_s"])[len(entry["wall_s"]) // 2]
    plain = results["plain"]["wall_s_median"]
    return {
        "config": vars(args),
        "hard_prompts": len(work.hard),
        "python": platform.python_version(),
        "results": results,
        "ratio_guided_over_plain": results["guided"]["wall_s_median"] / plain,
        "ratio_strict_over_plain": results["guided_strict"]["wall_s_median"] / plain,
        "ratio_lower_bound_over_plain": results["lower_bound"]["wall_s_median"] / plain,
        "ratio_guided_over_lower_bound": results["guided"]["wall_s_median"] / results["lower_bound"]["wall_s_median"],
        "target": "guided / plain <= 1.5 (goal 1.3)",
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--guided-share", type=float, default=0.3, help="share of hard (guided) prompts")
    parser.add_argument("--preset", default="official_code", choices=tuple(MICRO_GROUP_PRESETS))
    parser.add_argument("--server", choices=("sim", "vllm"), default="sim", help="simulated server or a vLLM engine")
    parser.add_argument("--model", default=None, help="vllm: model path (default: the CPU tier's tiny model)")
    parser.add_argument("--max-num-seqs", type=int, default=256, help="vllm: concurrent sequences (verl's default)")
    parser.add_argument("--response-length", type=int, default=256, help="tokens per response at most")
    parser.add_argument("--step-ms", type=float, default=2.0, help="fixed cost of one decode step")
    parser.add_argument("--token-ms", type=float, default=0.01, help="cost per active sequence per decode step")
    parser.add_argument("--reward-ms", type=float, default=20.0, help="reward round trip after each sample")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)
    if sum(MICRO_GROUP_PRESETS[args.preset].sizes) != 8:
        raise ValueError("the presets sample n = 8")
    report = bench(args)
    r = report["results"]
    print(
        f"plain {r['plain']['wall_s_median']:.2f}s ({r['plain']['generated_tokens']} tokens) | "
        f"guided {r['guided']['wall_s_median']:.2f}s ({r['guided']['kept_tokens']} kept / "
        f"{r['guided']['generated_tokens']} generated tokens, {r['guided']['rounds_mean']:.2f} rounds) | "
        f"strict {r['guided_strict']['wall_s_median']:.2f}s ({r['guided_strict']['rounds_mean']:.2f} rounds) | "
        f"lower bound {r['lower_bound']['wall_s_median']:.2f}s\n"
        f"guided / plain = {report['ratio_guided_over_plain']:.2f} (target <= 1.5), "
        f"strict / plain = {report['ratio_strict_over_plain']:.2f}, "
        f"lower bound / plain = {report['ratio_lower_bound_over_plain']:.2f}, "
        f"guided / lower bound = {report['ratio_guided_over_lower_bound']:.2f}"
    )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
