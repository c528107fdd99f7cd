"""Independent check of an exported bundle: ``workbench verify`` loads the artifact exactly as the
bundle's run.py does (the manifest's runtime settings) and recomputes every file's bytes and sha256, the
artifact's size and accuracy on the evaluation split (exactly), and its latency ratio against the fp32
baseline (within 15 %). Exits non-zero and names the figure when one does not match.

Usage: python bench/verify_bundle.py BUNDLE_DIR [--data D] [--baseline MODEL] [--runs N]
"""

from __future__ import annotations

import sys

from workbench.cli import main

if __name__ == "__main__":
    sys.exit(main(["verify", *sys.argv[1:]]))
