"""Neural perturbation models on torch: one trainer for every torch model and a conditional VAE.

Nothing here imports torch at module level: :mod:`vcclib.models.neural.vae` registers the VAE variants in
:data:`vcclib.models.MODELS` (``kind=NEURAL``, ``extra="torch"``) and imports torch through
:func:`vcclib.optional.require` only when a model is fitted or predicts.

Modules
-------
:mod:`~vcclib.models.neural.trainer`
    :class:`Trainer`: seeded (bit-identical on the CPU for a fixed seed), device ``auto|cpu|cuda`` with mixed
    precision on CUDA, early stopping on a validation part, progress bars, safe checkpoints and resume.
:mod:`~vcclib.models.neural.checkpoint`
    Checkpoints as safetensors (or torch weights read with ``weights_only=True`` where safetensors is missing).
:mod:`~vcclib.models.neural.likelihoods`
    Gaussian (log1p), negative binomial and zero-inflated NB (counts) log-likelihoods.
:mod:`~vcclib.models.neural.losses`
    MSE, the DEG-weighted MSE of Diversity by Design, energy distance, MMD, and the GRN-alignment regulariser.
:mod:`~vcclib.models.neural.network`
    The torch module: basal encoder, additive perturbation shift, covariate embedding, decoder.
:mod:`~vcclib.models.neural.inputs`
    Tensors from an AnnData in the project schema (cells or pseudobulk mini-bulks), target vocabularies, prior
    features and gene networks.
:mod:`~vcclib.models.neural.vae`
    :class:`~vcclib.models.neural.vae.ConditionalVAE`, the registered model.
"""
