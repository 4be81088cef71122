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
        ("\\boxed{7}\\boxed{3}", "7", 0.5),  # last box wrong, digit present: partial credit
        ("xx7", "7", 0.5),  # digit without a box
        ("\\boxed{3}", "7", 0.0),  # wrong box, digit absent
        ("", "7", 0.0),  # empty response
        ("\\boxed{77}", "7", 0.5),  # the box must hold exactly the digit
    ],
)
def test_reward_cases(response, gt, expected):
    assert task.compute_score(task.DATA_SOURCE, response, gt)["score"] == expected


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
    # GRPO needs reward variance within groups from step one (CPU_E2E_NOTES: a constant reward trains nothing).
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
