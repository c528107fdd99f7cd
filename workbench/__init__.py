"""Model Workbench core: import, analysis, plugins, measurement, variants and recipes.

The core imports no Qt; heavy libraries (torch, onnxruntime) load inside the functions that need them.
"""

__version__ = "0.1.0"
