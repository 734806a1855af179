"""A diamond DAG with artifacts: make a dataset, split it two ways, join, log metrics.

    load -> (summarize, scale) -> report

``load`` writes a ``Dataset``; ``summarize`` and ``scale`` read it in parallel;
``report`` joins their outputs and logs ``Metrics``.
"""

from chute.dsl import Dataset, Input, Metrics, Output, component, pipeline


@component
def load(rows: int, data: Output[Dataset]):
    """Write ``rows`` numbers, one per line."""
    with open(data.path, "w") as fh:
        fh.writelines(f"{i}\n" for i in range(rows))
    data.metadata["rows"] = rows


@component
def summarize(data: Input[Dataset]) -> float:
    """Return the mean of the numbers."""
    with open(data.path) as fh:
        values = [float(line) for line in fh if line.strip()]
    return sum(values) / len(values)


@component
def scale(data: Input[Dataset], factor: float, scaled: Output[Dataset]) -> int:
    """Multiply every number by ``factor``; return how many there were."""
    with open(data.path) as fh:
        values = [float(line) for line in fh if line.strip()]
    with open(scaled.path, "w") as fh:
        fh.writelines(f"{v * factor}\n" for v in values)
    return len(values)


@component
def report(mean: float, count: int, scaled: Input[Dataset], metrics: Output[Metrics]):
    """Log the mean, the count and the largest scaled value as metrics."""
    with open(scaled.path) as fh:
        largest = max(float(line) for line in fh if line.strip())
    metrics.log_metric("mean", mean)
    metrics.log_metric("count", count)
    metrics.log_metric("largest_scaled", largest)
    print(f"mean={mean} count={count} largest={largest}")


@pipeline(name="diamond", description="A diamond DAG passing a dataset and logging metrics.")
def diamond(rows: int = 10, factor: float = 2.0):
    data = load(rows=rows)
    mean = summarize(data=data.outputs["data"])
    scaled = scale(data=data.outputs["data"], factor=factor)
    report(mean=mean.output, count=scaled.outputs["Output"],
           scaled=scaled.outputs["scaled"])
