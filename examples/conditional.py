"""A conditional: flip a coin, then run one of three branches (If / Elif / Else).

The coin is seeded by a pipeline parameter, so a run is reproducible.
"""

from typing import Literal

from chute.dsl import Elif, Else, If, component, pipeline


@component
def flip(seed: int) -> str:
    """Return heads, tails or edge."""
    import random

    return random.Random(seed).choice(["heads", "tails", "edge"])


@component
def announce(message: str) -> str:
    """Print and return the message."""
    print(message)
    return message


@pipeline(name="conditional", description="Flip a coin and branch on the outcome.")
def conditional(seed: int = 1, mode: Literal["fair", "loud"] = "fair"):
    coin = flip(seed=seed)
    with If(coin.output == "heads"):
        announce(message="it was heads")
    with Elif(coin.output == "tails"):
        announce(message="it was tails")
    with Else():
        announce(message="it landed on its edge")
    with If(mode == "loud"):
        announce(message="LOUD MODE")
