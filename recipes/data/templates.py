# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
r"""Prompt templates: how a raw problem becomes verl's ``prompt`` chat list.

The default, ``qwen_boxed``, is the template TRAPO trains with and the "simplerl" template LUFFY/TRAPO evaluate
with (https://github.com/ElliottYan/LUFFY, ``eval_scripts/generate_vllm.py``): system ``You are a helpful
assistant.``, user
``{problem}\nPlease reason step by step, and put your final answer within \boxed{}.``

The problem is substituted with ``str.replace("{problem}", ...)``, never ``str.format``: problems and
templates are full of LaTeX braces (``\boxed{}``, ``\frac{a}{b}``).
"""

from __future__ import annotations

from dataclasses import dataclass

PLACEHOLDER = "{problem}"


@dataclass(frozen=True)
class PromptTemplate:
    """A chat prompt: an optional system turn and a user turn that contains ``{problem}`` exactly once."""

    name: str
    user: str
    system: str | None = None
    source: str = ""

    def __post_init__(self):
        if self.user.count(PLACEHOLDER) != 1:
            raise ValueError(
                f"prompt template {self.name!r}: the user turn must contain {PLACEHOLDER!r} exactly once, "
                f"found {self.user.count(PLACEHOLDER)} in {self.user!r}"
            )

    def render(self, problem: str) -> list[dict[str, str]]:
        """verl's ``prompt`` column: ``[{"role": "system", ...}?, {"role": "user", "content": ...}]``."""
        messages = [] if self.system is None else [{"role": "system", "content": self.system}]
        messages.append({"role": "user", "content": self.user.replace(PLACEHOLDER, problem)})
        return messages


TEMPLATES: dict[str, PromptTemplate] = {
    t.name: t
    for t in (
        PromptTemplate(
            name="qwen_boxed",
            system="You are a helpful assistant.",
            user=PLACEHOLDER + "\nPlease reason step by step, and put your final answer within \\boxed{}.",
            source="TRAPO training template (rl_dataset_with_target.py); LUFFY/TRAPO 'simplerl' eval template",
        ),
        PromptTemplate(
            name="qwen_math_cot",
            system="Please reason step by step, and put your final answer within \\boxed{}.",
            user=PLACEHOLDER,
            source="Qwen2.5-Math 'qwen25-math-cot' (evaluation/utils.py); OAT 'qwen_math'",
        ),
        PromptTemplate(
            name="verl_math",
            user=PLACEHOLDER + " Let's think step by step and output the final answer within \\boxed{}.",
            source="verl examples/data_preprocess/math_dataset.py; DeepScaleR",
        ),
        PromptTemplate(
            name="dapo",
            user=(
                "Solve the following math problem step by step. The last line of your response should be of the "
                "form Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n"
                + PLACEHOLDER
                + '\n\nRemember to put your answer on its own line after "Answer:".'
            ),
            source="DAPO README / DAPO-Math-17k prompts (pair with an 'Answer:' reward, not a \\boxed one)",
        ),
        PromptTemplate(name="plain", user=PLACEHOLDER, source="the bare problem as the only user turn"),
    )
}
DEFAULT_TEMPLATE = "qwen_boxed"


def get_template(name: str = DEFAULT_TEMPLATE, *, system: str | None = None, user: str | None = None):
    """A registered template, or a custom one when ``user`` is given (``system`` alone overrides the system turn)."""
    if user is not None:
        return PromptTemplate(name="custom", user=user, system=system)
    if name not in TEMPLATES:
        raise KeyError(f"unknown prompt template {name!r}; choose one of {sorted(TEMPLATES)} or pass a user template")
    template = TEMPLATES[name]
    if system is not None:
        template = PromptTemplate(name=f"{name}+system", user=template.user, system=system, source=template.source)
    return template
