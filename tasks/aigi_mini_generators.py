"""Simulated generator pipelines for aigi-mini: real patch in, "generated" patch out.

Each pipeline reproduces the *artifact* a family of generators leaves, after
published simulations; none produces new content. They make a smoke benchmark
with known, learnable traces, not a measure of real-world detection.

- ``gan-upsample``: a generator's last stage upsamples with a strided transposed
  convolution whose learned kernel overlaps unevenly, leaving a checkerboard and
  periodic spectral peaks (Odena et al., "Deconvolution and Checkerboard
  Artifacts", Distill 2016; the AutoGAN up-sampling simulator of Zhang et al.,
  WIFS 2019). Simulation: 2x area down-sampling, zero insertion, a 3x3
  interpolation kernel perturbed per channel.
- ``latent-decoder``: latent diffusion images are decoded from a latent grid by
  an autoencoder, whose reconstruction blurs detail and leaves a periodic trace
  at the latent stride (Ricker et al., AEROBLADE, CVPR 2024; Corvi et al.,
  ICASSP 2023, spectral peaks of LDM outputs). Simulation: 4x down-sampling to a
  quantised latent, bicubic decoding, a faint stride-4 modulation.
- ``diffusion-resynth``: diffusion sampling re-synthesises an image from noise,
  which removes sensor noise and flattens fine texture (Wang et al., DIRE, ICCV
  2023). Simulation: add Gaussian noise, total-variation denoise, re-add a
  faint, spatially correlated synthetic texture.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage


def _area_down(x: np.ndarray, factor: int) -> np.ndarray:
    h, w, c = x.shape
    return x[: h - h % factor, : w - w % factor].reshape(h // factor, factor, w // factor, factor, c).mean(axis=(1, 3))


def gan_upsample(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Checkerboard artifacts of a strided transposed convolution (Odena et al. 2016)."""
    low = _area_down(patch, 2)
    h, w, c = low.shape
    up = np.zeros((h * 2, w * 2, c))
    up[::2, ::2] = low
    base = np.outer([0.5, 1.0, 0.5], [0.5, 1.0, 0.5])  # exact bilinear interpolation for stride 2
    out = np.empty_like(up)
    for ch in range(c):
        kernel = base * (1.0 + rng.normal(0.0, 0.18, size=(3, 3)))  # an imperfectly learned kernel
        out[..., ch] = ndimage.convolve(up[..., ch], kernel, mode="reflect")
    return out


def latent_decoder(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Autoencoder reconstruction from a coarse, quantised latent grid (stride 4)."""
    latent = _area_down(patch, 4)
    levels = 48.0
    latent = np.round(latent * levels) / levels
    decoded = ndimage.zoom(latent, (4, 4, 1), order=3, mode="reflect", grid_mode=True)
    h, w, _ = decoded.shape
    yy, xx = np.mgrid[0:h, 0:w]
    phase = rng.uniform(0, 2 * np.pi)
    grid = 1.0 + 0.015 * np.cos(2 * np.pi * yy / 4 + phase) * np.cos(2 * np.pi * xx / 4 + phase)
    return decoded * grid[..., None]


def diffusion_resynth(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise, denoise, re-synthesise: the flattened texture of diffusion outputs (DIRE)."""
    from skimage.restoration import denoise_tv_chambolle

    noisy = patch + rng.normal(0.0, 0.06, size=patch.shape)
    clean = denoise_tv_chambolle(noisy, weight=0.06, channel_axis=-1)
    texture = ndimage.gaussian_filter(rng.normal(0.0, 1.0, size=patch.shape[:2]), sigma=1.2)
    return clean + 0.012 * texture[..., None] / (texture.std() + 1e-8)


GENERATORS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "gan-upsample": gan_upsample,
    "latent-decoder": latent_decoder,
    "diffusion-resynth": diffusion_resynth,
}
"""Generator name (the sample's subset) -> pipeline on a float RGB patch in [0, 1]."""
