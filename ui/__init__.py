"""Qt widgets of Model Workbench (installed as ``workbench.ui``); filled by the GUI work."""
