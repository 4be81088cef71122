# Copyright 2026 The trustrl Authors. Licensed under the Apache License, Version 2.0.
"""Experiment 2's toy problem: the enumerable response space, the prompts' rewards and the shared policy.

A response is L tokens over V symbols (V^L responses, all enumerated); prompt q rewards a response iff at least k
of its tokens lie in the prompt's m-subset of symbols. The policy is one small autoregressive network shared by
all prompts, evaluated on every prefix so that every probability is exact (:mod:`trustrl.recipes.lab.staleness`).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DIFFICULTY", "POPULATION_PROMPTS", "TASK_SEED", "SequenceSpace", "TinyPolicy", "make_rewards"]

# (m, k): |S_q| and the number of tokens that must fall in S_q; cycled over the prompts
DIFFICULTY = ((3, 4), (1, 2), (2, 3), (4, 4), (3, 3), (2, 2), (1, 1), (5, 4), (3, 2), (4, 3), (2, 1), (4, 2))
# population check: (m, k) giving success rates 0.13, 0.41, 0.89 under the uniform policy with V = 6, L = 4
POPULATION_PROMPTS = ((1, 2), (2, 2), (4, 2))
TASK_SEED = 1234


# --------------------------------------------------------------------------------------- task and policy


class SequenceSpace:
    """All V^L responses and all prefixes ("nodes") of length 0..L−1.

    Attributes:
        tokens: (N, L) int64, response n = digits of n in base V, most significant first.
        node_of: (N, L) int64, node (prefix) at which position t of response n is generated.
        flat_index: (N, L) int64, index of (node of position t, token t) in a flattened (nodes, V) table.
        node_history: (nodes, L−1) int64, earlier tokens of each node, padded with V.
        node_position: (nodes,) int64, prefix length of each node.
    """

    def __init__(self, vocab: int, length: int):
        self.vocab, self.length = vocab, length
        self.num_responses = vocab**length
        n = torch.arange(self.num_responses)
        powers = vocab ** torch.arange(length - 1, -1, -1)
        self.tokens = (n.unsqueeze(-1) // powers) % vocab
        offsets = [sum(vocab**s for s in range(t)) for t in range(length)]
        self.num_nodes = offsets[-1] + vocab ** (length - 1)
        node_of = torch.stack([offsets[t] + n // vocab ** (length - t) for t in range(length)], dim=-1)
        self.node_of = node_of
        self.flat_index = node_of * vocab + self.tokens
        history = torch.full((self.num_nodes, length - 1), vocab, dtype=torch.int64)
        position = torch.zeros(self.num_nodes, dtype=torch.int64)
        for t in range(length):
            prefixes = torch.arange(vocab**t)
            position[offsets[t] + prefixes] = t
            for j in range(t):
                history[offsets[t] + prefixes, j] = (prefixes // vocab ** (t - 1 - j)) % vocab
        self.node_history, self.node_position = history, position

    def sequence_log_probs(self, node_log_probs: torch.Tensor) -> torch.Tensor:
        """(P, nodes, V) conditional log-probs → (P, N) log-probability of every response."""
        return node_log_probs.flatten(1)[:, self.flat_index].sum(-1)

    def token_log_probs(self, node_log_probs: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
        """(P, nodes, V) and (P, G) response ids → (P·G, L) per-token log-probs of those responses."""
        num_prompts, group = responses.shape
        index = self.flat_index[responses].reshape(num_prompts, group * self.length)
        return node_log_probs.flatten(1).gather(1, index).reshape(num_prompts * group, self.length)


def make_rewards(space: SequenceSpace, difficulties, seed: int) -> torch.Tensor:
    """(P, N) binary rewards: 1 iff at least k of the L tokens lie in the prompt's random m-subset."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for m, k in difficulties:
        # m ≤ V−1: a set holding every symbol would make the prompt trivially solved
        subset = torch.randperm(space.vocab, generator=generator)[: min(m, space.vocab - 1)]
        hits = torch.isin(space.tokens, subset).sum(-1)
        rows.append((hits >= min(k, space.length)).double())
    return torch.stack(rows)


class TinyPolicy(nn.Module):
    """Autoregressive policy shared by all prompts: [prompt, earlier tokens, position] → Linear → tanh → Linear."""

    def __init__(self, space: SequenceSpace, num_prompts: int, hidden: int = 48):
        super().__init__()
        self.space = space
        self.prompt = nn.Embedding(num_prompts, 12)
        self.token = nn.Embedding(space.vocab + 1, 8)
        self.position = nn.Embedding(space.length, 4)
        self.hidden = nn.Linear(12 + 8 * (space.length - 1) + 4, hidden)
        self.out = nn.Linear(hidden, space.vocab)
        with torch.no_grad():
            # a near-uniform start (entropy close to L·log V)
            self.out.weight.mul_(0.3)

    def _first_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The first layer split into its prompt part (P, H) and its prefix part (nodes, H), bias included."""
        node_features = torch.cat(
            [self.token(self.space.node_history).flatten(1), self.position(self.space.node_position)], dim=-1
        )
        w_prompt, w_node = self.hidden.weight.split([12, node_features.shape[-1]], dim=1)
        return self.prompt.weight @ w_prompt.T, node_features @ w_node.T + self.hidden.bias

    def node_log_probs(self) -> torch.Tensor:
        """(P, nodes, V) log π(token | prompt, prefix) for every prompt and prefix (exact evaluation)."""
        prompt_part, node_part = self._first_layer()
        return torch.log_softmax(self.out(torch.tanh(prompt_part.unsqueeze(1) + node_part)), dim=-1)

    def token_log_probs(self, responses: torch.Tensor) -> torch.Tensor:
        """(P, G) response ids → (P·G, L) per-token log-probs, evaluating only the prefixes those responses visit
        (training: about 8x fewer rows than :meth:`node_log_probs` at the default sizes)."""
        prompt_part, node_part = self._first_layer()
        pre = prompt_part[:, None, None, :] + node_part[self.space.node_of[responses]]
        log_probs = torch.log_softmax(self.out(torch.tanh(pre)), dim=-1)
        tokens = self.space.tokens[responses].unsqueeze(-1)
        return log_probs.gather(-1, tokens).reshape(-1, self.space.length)
