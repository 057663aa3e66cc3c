"""algoperf: time-to-target benchmarking of neural-network training algorithms."""

__version__ = "0.1.0"
