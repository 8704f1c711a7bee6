"""Diagnostics for p-bit samplers: autocorrelation, the gradient SNR Q, exact spectra, parallel
tempering, comparison of sample sets. The same code reads simulated and hardware
:class:`~pbitsim.samples.Samples`.

Conventions: ``shared/reference/diagnostics-definitions.md``; the math: ``docs/diagnostics.md``.
Submodules are imported lazily by name (``pbitsim.diagnostics.spectra`` etc.); the most used names
are re-exported here.
"""

from pbitsim.diagnostics.autocorr import (
    AutocorrError,
    AutocorrWarning,
    IntegratedTime,
    autocorrelation,
    autocovariance,
    effective_sample_size,
    estimate_tau,
    integrated_time,
    tau_from_acov,
    time_average_variance,
)

# not the function compare(): that name is the submodule (pbitsim.diagnostics.compare.compare)
from pbitsim.diagnostics.compare import CompareMismatchError, Comparison
from pbitsim.diagnostics.kernels import (
    KERNELS,
    color_class_update_matrix,
    site_update_matrix,
    transition_matrix,
    transition_operator,
)
from pbitsim.diagnostics.pt import PTProfile, adapt_ladder, pt_profile
from pbitsim.diagnostics.q import QEstimate, exact_q, q_from_estimates, q_from_samples
from pbitsim.diagnostics.spectra import (
    DegenerateEigenvalueWarning,
    ExactChain,
    ModeCluster,
    ModeExpansion,
    stationarity_residual,
)
from pbitsim.diagnostics.streaming import diagnose_streaming, estimate_tau_stream, stream_taus

__all__ = [
    "AutocorrError",
    "AutocorrWarning",
    "IntegratedTime",
    "autocorrelation",
    "autocovariance",
    "effective_sample_size",
    "estimate_tau",
    "integrated_time",
    "tau_from_acov",
    "time_average_variance",
    "diagnose_streaming",
    "estimate_tau_stream",
    "stream_taus",
    "CompareMismatchError",
    "Comparison",
    "KERNELS",
    "color_class_update_matrix",
    "site_update_matrix",
    "transition_matrix",
    "transition_operator",
    "PTProfile",
    "adapt_ladder",
    "pt_profile",
    "QEstimate",
    "exact_q",
    "q_from_estimates",
    "q_from_samples",
    "DegenerateEigenvalueWarning",
    "ExactChain",
    "ModeCluster",
    "ModeExpansion",
    "stationarity_residual",
]
