"""gpu-autoscaler: scheduler extender, MIG webhook and saturation autoscaler in one process."""

__version__ = "0.1.0"
