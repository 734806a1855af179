"""A loop with fan-in: square every number in parallel, then add the squares.

The list comes from a step (``withParam``); at most two iterations run at once
(``parallelism=2``); ``Collected`` gathers every iteration's output into one list.
"""

from chute.dsl import Collected, ParallelFor, component, pipeline


@component
def numbers(n: int) -> list[int]:
    """The numbers 1..n."""
    return list(range(1, n + 1))


@component
def square(x: int) -> int:
    """x squared."""
    return x * x


@component
def total(values: list[int]) -> int:
    """The sum of the values."""
    result = sum(values)
    print(f"sum of squares: {result}")
    return result


@pipeline(name="loop-fan-in", description="Square numbers in parallel and add them up.")
def loop_fan_in(n: int = 4):
    nums = numbers(n=n)
    with ParallelFor(nums.output, parallelism=2) as x:
        sq = square(x=x)
    total(values=Collected(sq.output))
