"""Countdown: reach a target from a few numbers with + - * /, each number used once.

The prompt lists the numbers and the target; the answer is the equations, each combining two available numbers
(given or already computed) into a new one, the last result being the target:

    prompt:   "7,3,25>46:"
    response: "7*3=21,21+25=46"

With `width=2` every number is written with two digits ("07,03,25>46:" and "07*03=21,21+25=46"), so each digit of
each equation sits at the same position in every answer; the task registry's `countdown3` and `countdown4` use it.
Every intermediate result must be a positive integer no larger than `max_result` (so division must be exact).
A puzzle often has several solutions: [`check`] verifies the arithmetic rather than comparing strings.
"""

import random
import re

OPERATIONS = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a // b if b and a % b == 0 else None,
}
_EQUATION = re.compile(r"^(\d+)([-+*/])(\d+)=(\d+)$")


def make_puzzle(
    rng: random.Random, num_numbers: int = 3, max_number: int = 25, max_result: int = 99, width: int = 0
) -> dict:
    """One puzzle as `{"prompt", "response"}`: random numbers combined by random operations until every
    intermediate result is valid; the target is the last result. `width`: digits every number is zero-padded to
    (0: as many as it needs)."""
    check_options(num_numbers, max_number, max_result)
    if not isinstance(width, int) or width < 0:
        raise ValueError(f"countdown: `width` must be an integer >= 0, got {width!r}.")
    if width and len(str(max(max_number, max_result))) > width:
        raise ValueError(
            f"countdown: `width` {width} is too narrow for numbers up to {max(max_number, max_result)}; "
            f"use width >= {len(str(max(max_number, max_result)))} or 0."
        )

    def text(n: int) -> str:
        return f"{n:0{width}d}" if width else str(n)

    while True:
        numbers = [rng.randint(1, max_number) for _ in range(num_numbers)]
        pool, equations = list(numbers), []
        while len(pool) > 1:
            a, b = rng.sample(pool, 2)
            op = rng.choice("+-*/")
            result = OPERATIONS[op](a, b)
            if result is None or not 0 < result <= max_result:
                break
            pool.remove(a)
            pool.remove(b)
            pool.append(result)
            equations.append(f"{text(a)}{op}{text(b)}={text(result)}")
        if len(pool) == 1:
            return {"prompt": f"{','.join(map(text, numbers))}>{text(pool[0])}:", "response": ",".join(equations)}


def check_options(num_numbers: int, max_number: int, max_result: int) -> None:
    for name, value, least in (
        ("num_numbers", num_numbers, 2),
        ("max_number", max_number, 1),
        ("max_result", max_result, 1),
    ):
        if not isinstance(value, int) or value < least:
            raise ValueError(f"countdown: `{name}` must be an integer >= {least}, got {value!r}.")


def parse_prompt(prompt: str) -> tuple:
    """`(numbers, target)` of a prompt."""
    numbers, _, target = prompt.rstrip(":").partition(">")
    return [int(n) for n in numbers.split(",")], int(target)


def check(prompt: str, answer: str, max_result: int = 10**9) -> bool:
    """Whether `answer`'s equations are correct, use each available number once, and end at the target."""
    pool, target = parse_prompt(prompt)
    equations = answer.strip().split(",")
    if len(equations) != len(pool) - 1:
        return False
    for equation in equations:
        match = _EQUATION.match(equation.strip())
        if match is None:
            return False
        a, op, b, result = int(match[1]), match[2], int(match[3]), int(match[4])
        if a not in pool:
            return False
        pool.remove(a)
        if b not in pool or OPERATIONS[op](a, b) != result or not 0 < result <= max_result:
            return False
        pool.remove(b)
        pool.append(result)
    return pool == [target]


def solve(prompt: str):
    """One solution by exhaustive search, or None when there is none."""
    numbers, target = parse_prompt(prompt)

    def search(pool, equations):
        if len(pool) == 1:
            return equations if pool[0] == target else None
        for i, a in enumerate(pool):
            for j, b in enumerate(pool):
                if i == j:
                    continue
                for op, apply in OPERATIONS.items():
                    result = apply(a, b)
                    if result is None or result <= 0:
                        continue
                    rest = [n for k, n in enumerate(pool) if k not in (i, j)] + [result]
                    found = search(rest, equations + [f"{a}{op}{b}={result}"])
                    if found:
                        return found
        return None

    found = search(numbers, [])
    return ",".join(found) if found else None
