"""A `train render` run's Lightning checkpoint (``last.ckpt``, a kept ``step-*.ckpt``) read as a
render model: the weights that render, taken out of the snapshot's state dict by name.

Inference side: neither Lightning nor the training module is imported or built. The file is
read by :func:`~orchestrion.checkpoints.read_training_checkpoint` (plain data only, never
unpickled); the generator's moving average replaces its last weights when the run kept one,
as the run's own export does.
"""

from __future__ import annotations

from pathlib import Path

from orchestrion.checkpoints import Checkpoint, CheckpointError, read_training_checkpoint
from orchestrion.errors import ConfigError
from orchestrion.nn.weight_average import saved_average
from orchestrion.symbolic.instruments import InstrumentVocabulary
from orchestrion.systems.organ.model import GENERATOR_STATE
from orchestrion.systems.organ.presets import OrganConfig
from orchestrion.systems.organ.tracks import trained_slot_names

SYSTEM = "render"
NETWORK_PREFIX = "model."
"""Where the training module keeps the network in its state dict."""
AVERAGE_PREFIX = "generator_average."
"""Where the training module keeps the generator's moving average in its state dict."""


def read_run_snapshot(path: str | Path) -> Checkpoint:
    """A render run's snapshot as a model checkpoint holding only the weights that render.

    Raises
    ------
    CheckpointError
        Not a training checkpoint, one holding Python objects, or not a render run's.
    """
    path = Path(path)
    saved = read_training_checkpoint(path)
    settings, state = saved["hyper_parameters"], saved["state_dict"]
    try:
        config = OrganConfig.from_dict(settings["config"])
    except (ConfigError, KeyError, TypeError) as exc:
        problem = exc.problem if isinstance(exc, ConfigError) else f"missing {exc}"
        raise CheckpointError(f"not a training checkpoint of a render model ({problem})", path) from None
    weights = {key[len(NETWORK_PREFIX):]: value for key, value in state.items()
               if key.startswith(NETWORK_PREFIX) and key[len(NETWORK_PREFIX):].startswith(GENERATOR_STATE)}
    if not weights:
        raise CheckpointError("not a training checkpoint of a render model (no generator weights)", path)
    weights.update(saved_average(state, AVERAGE_PREFIX))
    per_batch = config.optimizer_steps_per_batch(bool(settings.get("classifier_only", False)))
    steps = int(saved.get("global_step", 0)) // per_batch
    slots = trained_slot_names(settings.get("label_counts"), InstrumentVocabulary.default())
    card = "\n".join([
        "# render model (orGAN), a training snapshot",
        "",
        f"- snapshot: `{path}` after {steps:,} steps",
        f"- trained slots: {', '.join(slots)}",
        "",
    ])
    return Checkpoint(path, SYSTEM, config.to_dict(), weights, card)
