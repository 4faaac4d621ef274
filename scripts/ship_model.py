"""Copy a trained model folder into the package's shipped models (float16 weights) and
append an evaluation report to its model card. Weights a system never uses to generate
(SING's stage-1 encoder, orGAN's discriminator and classifiers) are left out.

usage: python scripts/ship_model.py RUN/model NAME SYSTEM [EVALUATION.md ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

from orchestrion.checkpoints import ASSETS_DIR, load_checkpoint, save_checkpoint
from orchestrion.systems.organ.model import DISCRIMINATOR_STATE
from orchestrion.systems.organ.presets import TRAINING_ONLY_FIELDS as RENDER_TRAINING_ONLY
from orchestrion.systems.sing.model import GENERATION_UNUSED as NOTE_GENERATION_UNUSED

UNUSED_BY_SYSTEM: dict[str, tuple[str, ...]] = {"note": NOTE_GENERATION_UNUSED, "render": (DISCRIMINATOR_STATE,)}
"""Weight-name prefixes left out of a shipped model, by system."""
TRAINING_FIELDS_BY_SYSTEM: dict[str, tuple[str, ...]] = {"render": RENDER_TRAINING_ONLY}
"""Config fields kept under config.json's "training", apart from what inference reads."""


def main() -> None:
    source, name, system, *reports = sys.argv[1:]
    checkpoint = load_checkpoint(source, system)
    unused = UNUSED_BY_SYSTEM.get(system, ())
    state = {k: v for k, v in checkpoint.state_dict.items() if not k.startswith(unused)}
    card = checkpoint.card.rstrip() + "\n"
    if len(state) < len(checkpoint.state_dict):
        card += (f"\nShipped without the weights under {', '.join(unused)} "
                 "(used in training only), as float16.\n")
    for report in reports:
        card += "\n" + Path(report).read_text().rstrip() + "\n"
    folder = save_checkpoint(ASSETS_DIR / name, system, checkpoint.config, state, card, half=True,
                             training_fields=TRAINING_FIELDS_BY_SYSTEM.get(system, ()))
    size_mb = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
    print(f"shipped {folder} ({size_mb:.1f} MB)")


if __name__ == "__main__":
    main()
