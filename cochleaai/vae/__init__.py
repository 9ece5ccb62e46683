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
``data`` the MNIST and phantom datasets, ``explore`` the latent-space tools of the Slicer module,
``shipped`` the model shipped with the extension.

Import from the submodules (``cochleaai.vae.models.build_model``...): the package itself
loads nothing, so that :mod:`.shipped` imports without torch.
"""
