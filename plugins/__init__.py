"""Built-in compression plugins (installed as ``workbench.plugins``), one file each."""
