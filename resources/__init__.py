"""Packaged data (installed as ``workbench.resources``): device profiles in ``devices/*.yaml``."""
