"""9x9 Sudoku with a unique solution, made by a bundled generator and solver.

The prompt is the 81 cells row by row, `0` for an empty one, then `=`; the answer is the 81 digits of the solution:

    prompt:   "530070000600195000...=",  response: "534678912672195348..."

Many cells are determined at once by the givens, so a model that commits every determined cell in one step needs far
fewer steps than cells.
"""

import random
from typing import List, Optional

_UNITS = (
    [[r * 9 + c for c in range(9)] for r in range(9)]
    + [[r * 9 + c for r in range(9)] for c in range(9)]
    + [[(br + r) * 9 + bc + c for r in range(3) for c in range(3)] for br in (0, 3, 6) for bc in (0, 3, 6)]
)
_PEERS = [sorted({p for unit in _UNITS if cell in unit for p in unit} - {cell}) for cell in range(81)]


def count_solutions(grid: List[int], limit: int = 2, rng: Optional[random.Random] = None) -> tuple:
    """`(count, first solution)`, counting up to `limit`; depth-first with the most constrained cell first."""
    grid = list(grid)
    found = []

    def candidates(cell):
        used = {grid[p] for p in _PEERS[cell]}
        return [d for d in range(1, 10) if d not in used]

    def search():
        empty = [cell for cell in range(81) if grid[cell] == 0]
        if not empty:
            found.append(list(grid))
            return len(found) >= limit
        cell = min(empty, key=lambda c: len(candidates(c)))
        options = candidates(cell)
        if rng is not None:
            rng.shuffle(options)
        for digit in options:
            grid[cell] = digit
            if search():
                return True
        grid[cell] = 0
        return False

    search()
    return len(found), (found[0] if found else None)


def make_puzzle(rng: random.Random, min_givens: int = 30) -> dict:
    """A full grid drawn at random, then cells emptied in random order while the solution stays unique (down to
    `min_givens` givens)."""
    if not isinstance(min_givens, int) or not 17 <= min_givens <= 81:
        raise ValueError(f"sudoku: `min_givens` must be an integer in [17, 81], got {min_givens!r}.")
    _, solution = count_solutions([0] * 81, limit=1, rng=rng)
    puzzle = list(solution)
    for cell in rng.sample(range(81), 81):
        if sum(1 for v in puzzle if v) <= min_givens:
            break
        digit, puzzle[cell] = puzzle[cell], 0
        if count_solutions(puzzle)[0] != 1:
            puzzle[cell] = digit
    return {"prompt": "".join(map(str, puzzle)) + "=", "response": "".join(map(str, solution))}


def check(prompt: str, answer: str) -> bool:
    """Whether `answer` is a complete valid grid that keeps the prompt's givens."""
    givens, answer = prompt.rstrip("="), answer.strip()
    if len(answer) != 81 or not answer.isdigit() or "0" in answer:
        return False
    if any(g != "0" and g != a for g, a in zip(givens, answer)):
        return False
    return all(len({answer[c] for c in unit}) == 9 for unit in _UNITS)


def solve(prompt: str) -> Optional[str]:
    count, solution = count_solutions([int(c) for c in prompt.rstrip("=")], limit=1)
    return "".join(map(str, solution)) if count else None
