# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The hf_cpu server: batched generation is exact per request, budgets, EOS, log-probs, weight updates."""

import asyncio

import pytest
import torch
from trustrl.recipes.cpu import task
from trustrl.recipes.cpu.hf_cpu_rollout import HFCPUServer


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return task.build_model(tmp_path_factory.mktemp("model"), seed=1)


@pytest.fixture
def server(model_dir):
    return HFCPUServer(str(model_dir), prompt_length=16, response_length=12, seed=0)


def _prompts(server):
    # Different lengths, so the batch is left-padded.
    return [[1, 3, 6, 5, 7, 8 + d, 2, 6, 1, 4, 6][-(5 + d) :] for d in range(4)]


def _generate_all(server, prompts, params):
    async def go():
        return await asyncio.gather(*[server.generate(prompt_ids=p, sampling_params=dict(params)) for p in prompts])

    return asyncio.run(go())


def test_batched_logprobs_match_unpadded_forward(server):
    outs = _generate_all(server, _prompts(server), {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "logprobs": True})
    for prompt, out in zip(_prompts(server), outs):
        seq = torch.tensor([prompt + out.token_ids])
        with torch.no_grad():
            logits = server.model(seq).logits[0, len(prompt) - 1 : -1]
        ref = torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(out.token_ids)[:, None]).squeeze(-1)
        torch.testing.assert_close(torch.tensor(out.log_probs), ref, rtol=1e-4, atol=1e-4)


def test_budget_and_eos(server):
    outs = _generate_all(server, _prompts(server), {"temperature": 1.0, "max_tokens": 3, "logprobs": False})
    assert all(1 <= len(o.token_ids) <= 3 and o.log_probs is None for o in outs)
    outs = _generate_all(server, _prompts(server) * 4, {"temperature": 1.0})
    for o in outs:
        # Default budget: response_length; anything after EOS is cut, EOS itself is kept (as vLLM does).
        assert len(o.token_ids) <= 12
        if server.eos_token_id in o.token_ids:
            assert o.token_ids.index(server.eos_token_id) == len(o.token_ids) - 1


def test_greedy_is_deterministic(server):
    params = {"temperature": 0.0, "logprobs": True}
    a = _generate_all(server, _prompts(server), params)
    b = _generate_all(server, _prompts(server), params)
    assert [o.token_ids for o in a] == [o.token_ids for o in b]


def test_update_weights_changes_the_served_model(server):
    before = asyncio.run(server.param_checksum())
    state = {name: torch.zeros_like(t) for name, t in server.model.state_dict().items() if "norm" not in name}
    asyncio.run(server.update_weights(state))
    assert asyncio.run(server.param_checksum()) != before
    # All-zero weights: every next-token distribution is uniform.
    out = _generate_all(server, _prompts(server)[:1], {"temperature": 1.0, "logprobs": True})[0]
    vocab = server.model.config.vocab_size
    torch.testing.assert_close(
        torch.tensor(out.log_probs),
        torch.full((len(out.token_ids),), -torch.log(torch.tensor(float(vocab)))),
        rtol=0,
        atol=1e-5,
    )


def test_unknown_weight_name_is_an_error(server):
    with pytest.raises(KeyError, match="not in the rollout model"):
        asyncio.run(server.update_weights({"model.nonexistent.weight": torch.zeros(1)}))


def test_abort_rejects_until_resume(server):
    async def go():
        await server.abort_all_requests(reject_request=True)
        aborted = await server.generate(prompt_ids=[1, 3], sampling_params={})
        await server.resume_generation()
        ok = await server.generate(prompt_ids=[1, 3], sampling_params={"max_tokens": 2})
        return aborted, ok

    aborted, ok = asyncio.run(go())
    assert aborted.stop_reason == "aborted" and aborted.token_ids == []
    assert ok.stop_reason == "completed" and 1 <= len(ok.token_ids) <= 2
