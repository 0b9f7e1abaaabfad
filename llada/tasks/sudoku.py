"""9x9 Sudoku with a unique solution, made by a bundled generator and solver.

The prompt is the 81 cells row by row, `0` for an empty one, then `=`; the answer is the 81 digits of the solution:

    prompt:   "530070000600195000...=",  response: "534678912672195348..."

Many cells are determined at once by the givens, so a model that commits every determined cell in one step needs far
fewer steps than cells.
"""

import bisect
import random
from typing import List, Optional

_UNITS = (
    [[r * 9 + c for c in range(9)] for r in range(9)]
    + [[r * 9 + c for r in range(9)] for c in range(9)]
    + [[(br + r) * 9 + bc + c for r in range(3) for c in range(3)] for br in (0, 3, 6) for bc in (0, 3, 6)]
)
_ROW, _COL, _BOX = (
    [c // 9 for c in range(81)],
    [c % 9 for c in range(81)],
    [(c // 27) * 3 + (c % 9) // 3 for c in range(81)],
)
_DIGITS = [[d for d in range(1, 10) if used >> d & 1 == 0] for used in range(1 << 10)]  # free digits of a mask


def count_solutions(grid: List[int], limit: int = 2, rng: Optional[random.Random] = None) -> tuple:
    """`(count, first solution)`, counting up to `limit`; depth-first with the most constrained cell first (the
    first such cell in row order), each cell's digits tried in increasing order, or shuffled by `rng`. The digits a
    row, column and box hold are kept as bit masks."""
    grid = list(grid)
    rows, cols, boxes = [0] * 9, [0] * 9, [0] * 9
    for cell, digit in enumerate(grid):
        if digit:
            rows[_ROW[cell]] |= 1 << digit
            cols[_COL[cell]] |= 1 << digit
            boxes[_BOX[cell]] |= 1 << digit
    empty = [cell for cell in range(81) if grid[cell] == 0]
    found = []

    def search():
        if not empty:
            found.append(list(grid))
            return len(found) >= limit
        best, options = None, None
        for cell in empty:
            free = _DIGITS[rows[_ROW[cell]] | cols[_COL[cell]] | boxes[_BOX[cell]]]
            if options is None or len(free) < len(options):
                best, options = cell, free
                if len(free) <= 1:
                    break  # one digit or none (a dead end): no cell can be more constrained
        options = list(options)
        if rng is not None:
            rng.shuffle(options)
        empty.remove(best)
        row, col, box = _ROW[best], _COL[best], _BOX[best]
        for digit in options:
            bit = 1 << digit
            grid[best] = digit
            rows[row], cols[col], boxes[box] = rows[row] | bit, cols[col] | bit, boxes[box] | bit
            stop = search()
            rows[row], cols[col], boxes[box] = rows[row] ^ bit, cols[col] ^ bit, boxes[box] ^ bit
            if stop:
                return True
        grid[best] = 0
        bisect.insort(empty, best)  # back in row order
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
