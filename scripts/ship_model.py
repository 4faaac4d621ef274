"""Copy a trained model folder into the package's shipped models (float16 weights) and
append an evaluation report to its model card.

usage: python scripts/ship_model.py RUN/model NAME SYSTEM [EVALUATION.md ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

from orchestrion.checkpoints import ASSETS_DIR, load_checkpoint, save_checkpoint


def main() -> None:
    source, name, system, *reports = sys.argv[1:]
    checkpoint = load_checkpoint(source, system)
    card = checkpoint.card.rstrip() + "\n"
    for report in reports:
        card += "\n" + Path(report).read_text().rstrip() + "\n"
    folder = save_checkpoint(ASSETS_DIR / name, system, checkpoint.config, checkpoint.state_dict, card, half=True)
    size_mb = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
    print(f"shipped {folder} ({size_mb:.1f} MB)")


if __name__ == "__main__":
    main()
