"""Variational autoencoders for images and CT volumes (thesis chapter 4).

Three models share one encoder/decoder pair so that they compare fairly:

* :class:`~cochleaai.vae.models.VAE` - the classic Gaussian-posterior autoencoder;
* :class:`~cochleaai.vae.models.HVAE` - Hamiltonian VAE (Caterini et al. 2018): tempered
  leapfrog flow with a unit Jacobian;
* :class:`~cochleaai.vae.models.LangevinVAE` - quasi-symplectic Langevin VAE (thesis eq. 4.5):
  damped position-Verlet steps with injected noise, Jacobian ``exp(-nu t d)`` per step.

``estimate`` gives the ELBO and the importance-sampled negative log-likelihood (IWAE
estimator), ``train`` the seeded training loop, ``configs`` the image and volume model
configurations, ``model_io`` saving/loading with model cards,
``data`` the MNIST and phantom datasets, ``explore`` the latent-space tools of the Slicer module.
"""

from cochleaai.vae import models

__all__ = ["VAE", "HVAE", "LangevinVAE", "build_model", "MODEL_KINDS"]


def __getattr__(name):
    # torch is imported only when a model is asked for, so that ``python -m cochleaai --help``
    # (which finds ``cochleaai.vae.cli``) stays fast
    if name in __all__:
        return getattr(models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
