"""Star-graph path-finding (Bachmann & Nagarajan, "The pitfalls of next-token prediction", ICML 2024).

A star graph has a centre with `degree` arms of `path_length - 1` nodes each. The prompt lists the directed edges
(parent to child, away from the centre) in random order, then the source (the centre) and the target (the leaf of one
arm); the answer is the path from source to target, one character a node:

    prompt:   "kB Bz eq Ai ... /kq="
    response: "kBzeq"

Walking forward, the first step is a choice among `degree` arms that only the end of the path decides; a model that
must write the path left to right guesses it (about 1 / degree). Walking backward from the target is a chain of
determined look-ups (every node has one parent), which a model that may fill any position first can follow.
"""

import random
import string
from typing import Optional

NODE_NAMES = string.ascii_letters + string.digits  # one character per node: one token per node with a byte tokenizer


def make_puzzle(rng: random.Random, degree: int = 3, path_length: int = 5) -> dict:
    """One star graph as `{"prompt", "response"}`; node names are drawn afresh for every graph."""
    check_options(degree, path_length)
    nodes = rng.sample(NODE_NAMES, 1 + degree * (path_length - 1))
    source, rest = nodes[0], nodes[1:]
    arms = [[source] + rest[arm * (path_length - 1) : (arm + 1) * (path_length - 1)] for arm in range(degree)]
    edges = [parent + child for arm in arms for parent, child in zip(arm, arm[1:])]
    rng.shuffle(edges)
    path = rng.choice(arms)
    return {"prompt": f"{' '.join(edges)} /{source}{path[-1]}=", "response": "".join(path)}


def check_options(degree: int, path_length: int) -> None:
    if not isinstance(degree, int) or degree < 2:
        raise ValueError(f"stargraph: `degree` must be an integer >= 2, got {degree!r}.")
    if not isinstance(path_length, int) or path_length < 2:
        raise ValueError(f"stargraph: `path_length` must be an integer >= 2, got {path_length!r}.")
    if 1 + degree * (path_length - 1) > len(NODE_NAMES):
        raise ValueError(
            f"stargraph: a graph of degree {degree} and path length {path_length} has "
            f"{1 + degree * (path_length - 1)} nodes, more than the {len(NODE_NAMES)} node names."
        )


def parse_prompt(prompt: str) -> tuple:
    """`(edges, source, target)` of a prompt; edges as a set of (parent, child)."""
    edge_text, _, query = prompt.rpartition("/")
    edges = {(edge[0], edge[1]) for edge in edge_text.split()}
    return edges, query[0], query[1]


def check(prompt: str, answer: str) -> bool:
    """Whether `answer` is a path from the prompt's source to its target along its edges."""
    edges, source, target = parse_prompt(prompt)
    answer = answer.strip()
    if len(answer) < 2 or answer[0] != source or answer[-1] != target:
        return False
    return all((parent, child) in edges for parent, child in zip(answer, answer[1:]))


def solve(prompt: str) -> Optional[str]:
    """The path, walked back from the target (each node has one parent)."""
    edges, source, target = parse_prompt(prompt)
    parent = {child: parent for parent, child in edges}
    path = [target]
    while path[-1] != source and path[-1] in parent and len(path) <= len(edges):
        path.append(parent[path[-1]])
    return "".join(reversed(path)) if path[-1] == source else None
