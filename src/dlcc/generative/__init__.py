"""Training and judging generative models: one idea per submodule.

- :mod:`dlcc.generative.vae`: the evidence lower bound (``elbo``), its reconstruction and KL
  terms, and the loss adapter that lets :func:`dlcc.train.fit` train a VAE.
- :mod:`dlcc.generative.gan`: the GAN losses (non-saturating generator loss, one-sided label
  smoothing), one training step ``gan_step``, the pix2pix step ``translation_step`` and the
  plain loop ``train_gan``.
- :mod:`dlcc.generative.frechet`: the Fréchet distance between two sets of features, and the
  features of a digit classifier trained on real MNIST digits, the course's sample-quality
  number.
- :mod:`dlcc.generative.diffusion`: denoising diffusion (noise schedules, ``q_sample``, the
  noise-prediction loss, samplers).

Import the submodule you need, e.g. ``from dlcc.generative.vae import elbo``.
"""
