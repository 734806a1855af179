"""Hello world: one Python step that prints a greeting and returns it.

    chute compile examples/hello_world.py -o hello.yaml
    chute run examples/hello_world.py -p name=chute
"""

from chute.dsl import component, pipeline


@component
def say_hello(name: str) -> str:
    """Print and return a greeting."""
    greeting = f"Hello, {name}!"
    print(greeting)
    return greeting


@pipeline(name="hello-world", description="Say hello from a Python step.")
def hello_world(name: str = "world"):
    say_hello(name=name)
