"""Evaluation metrics: render quality against a reference, the seed's Table 6.3 figures.

* :mod:`~orchestrion.metrics.audio` -- the render quality protocol on audio: MS-SSIM of
  dB images, multi-resolution STFT distance, log-spectral distance (:func:`compare_audio`,
  :func:`compare_files`).
* :mod:`~orchestrion.metrics.budget` -- where a render's MS-SSIM is lost: the score with
  one region of its dB image (a level, a band, the partials, the onsets) restored.
* :mod:`~orchestrion.metrics.swd` -- ProGAN's sliced Wasserstein distance over a
  Laplacian pyramid.
* :mod:`~orchestrion.metrics.classifier` -- AUC, micro and macro accuracy of the
  multi-hot instrument classifier.
* :mod:`~orchestrion.metrics.spectrogram` -- MS-SSIM and L1 of spectrogram images and the
  Table 6.3 row.
"""

from orchestrion.lazy import lazy_exports

# Exported names by module, imported on first use: the CLI imports this package for its
# commands and must not import torch to print its help.
__getattr__, __all__ = lazy_exports(__name__, {
    "audio": ("AudioComparison", "compare_audio", "compare_files", "db_image", "log_spectral_distance",
              "mr_stft_distance", "power_spectrogram"),
    "budget": ("ErrorBudget", "error_budget"),
    "classifier": ("ClassifierScores", "binary_auc", "instrument_classifier_scores"),
    "spectrogram": ("Table63Row", "crop_to_scale_grid", "spectrogram_l1", "spectrogram_ms_ssim", "table63_row"),
    "swd": ("SwdResult", "laplacian_pyramid", "sliced_wasserstein", "sliced_wasserstein_distance"),
})
