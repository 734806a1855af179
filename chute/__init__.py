"""chute: ML pipelines as Argo Workflows, run on one machine with nothing but pip.

The public surface is small on purpose; ``__all__`` is pinned by a test.
"""

from chute.errors import ChuteError, ExecutionError, SpecError, UserError

__version__ = "0.1.0"

__all__ = ["ChuteError", "ExecutionError", "SpecError", "UserError", "__version__"]
