# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""The copy-digit task: tokenizer, parquet rows that verl's dataset loads, reward cases, base success rate."""

import pytest
import torch
from trustrl.recipes.cpu import task


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return task.build_task(tmp_path_factory.mktemp("task"), n_train=20, n_val=10)


def test_tokenizer_round_trip_and_chat_template(built):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(built["model"])
    text = "\\boxed{7} ab=x"
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text
    assert tok.convert_ids_to_tokens(ids)[0] == "\\boxed{"  # the answer marker is one token
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "copy:3"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt.endswith("<|im_start|>assistant\n")
    assert tok.eos_token == "<|im_end|>"


@pytest.mark.parametrize(
    "response, gt, expected",
    [
        ("\\boxed{7}", "7", 1.0),  # exact answer format
        ("a7b\\boxed{7}", "7", 1.0),  # the last box decides
        ("\\boxed{7}\\boxed{3}", "7", 0.5),  # last box a wrong single digit: the format, not the answer
        ("\\boxed{3}", "7", 0.5),  # well-formed wrong answer
        ("xx7", "7", 0.2),  # digit without a box
        ("\\boxed{77}", "7", 0.2),  # the box must hold exactly one digit; d appears
        ("\\boxed{x}", "7", 0.0),  # a box without a digit, d absent
        ("\\boxed{3", "7", 0.0),  # an unclosed box is no box
        ("", "7", 0.0),  # empty response
    ],
)
def test_reward_cases(response, gt, expected):
    assert task.compute_score(task.DATA_SOURCE, response, gt)["score"] == expected


def test_digit_filled_responses_score_below_a_well_formed_answer():
    # writing many digits (every digit appears) must not beat answering in the format with a wrong digit
    spray = task.compute_score(task.DATA_SOURCE, "0123456789 0123", "7")
    assert spray["contains"] and spray["score"] < task.compute_score(task.DATA_SOURCE, "\\boxed{3}", "7")["score"]


def test_expert_traces_score_full_and_fit_the_budget(built):
    from transformers import AutoTokenizer
    from trustrl.recipes.trapo.prefix import expert_trace_ids, paragraph_breaks, prefix_cut

    tok = AutoTokenizer.from_pretrained(built["model"])
    for digit in task.DIGITS:
        traces = task.expert_solutions(digit)
        assert [task.compute_score(task.DATA_SOURCE, t, digit)["score"] for t in traces] == [1.0, 1.0]
    ids = [expert_trace_ids(tok, t, 16) for t in task.expert_solutions("3")]
    assert [len(i) for i in ids] == [7, 4]  # with EOS; room to spare in the 16-token responses
    assert all(i[-1] == tok.eos_token_id for i in ids)
    breaks = paragraph_breaks([tok.decode([t]) for t in ids[0]])
    # the official_code preset's 25% and 50% prefixes of trace 0: both cut after its paragraph break
    assert [prefix_cut(breaks, r, 0.3) for r in (0.25, 0.5, 1.0)] == [3, 3, 7]


def test_rows_load_through_verls_dataset(built):
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset

    tok = AutoTokenizer.from_pretrained(built["model"])
    cfg = OmegaConf.create({"max_prompt_length": 16, "filter_overlong_prompts": True, "truncation": "error"})
    ds = RLHFDataset(data_files=[str(built["train"])], tokenizer=tok, config=cfg)
    assert len(ds) == 20
    row = ds[0]
    assert row["reward_model"]["ground_truth"] in task.DIGITS


def test_random_model_reward_is_well_above_zero_and_varies(built):
    # GRPO needs reward variance within groups from step one (a constant reward gives zero advantages).
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(built["model"])
    model = AutoModelForCausalLM.from_pretrained(built["model"])
    torch.manual_seed(0)
    prompt = tok.apply_chat_template([{"role": "user", "content": "copy:4"}], add_generation_prompt=True)["input_ids"]
    out = model.generate(
        torch.tensor([prompt] * 64),
        do_sample=True,
        max_new_tokens=16,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    scores = [task.compute_score("", tok.decode(o[len(prompt) :], skip_special_tokens=True), "4")["score"] for o in out]
    mean = sum(scores) / len(scores)
    assert 0.05 < mean < 0.9
    assert len(set(scores)) > 1
