"""pbitsim: simulate, build and diagnose p-bit (probabilistic-bit) Boltzmann samplers.

The coupling format (:class:`Couplings`, :func:`load`) is the spine every part reads; see
``docs/architecture.md``.
"""

__version__ = "0.1.0"

from pbitsim.couplings import Couplings, CouplingsError, greedy_coloring  # noqa: E402
from pbitsim.fileformat import CouplingFileError, load  # noqa: E402
from pbitsim.fixedpoint import (  # noqa: E402
    FixedPointOverflowError,
    FixedPointSpec,
    QuantizedCouplings,
)
from pbitsim.samples import (  # noqa: E402
    FingerprintMismatchError,
    Samples,
    check_fingerprint,
    load_samples,
)
from pbitsim.sampling import Runner, methods, open_runner, sample  # noqa: E402

__all__ = [
    "__version__",
    "Couplings",
    "CouplingsError",
    "CouplingFileError",
    "FixedPointOverflowError",
    "FixedPointSpec",
    "FingerprintMismatchError",
    "QuantizedCouplings",
    "Runner",
    "Samples",
    "check_fingerprint",
    "greedy_coloring",
    "load",
    "load_samples",
    "methods",
    "open_runner",
    "sample",
]
