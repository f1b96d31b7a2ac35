"""fxemu trainer package: learns an audio effect from dry/wet examples (TFX Trainer).

Modules (one concept each):

* :mod:`trainer.config` -- ``TrainConfig``, every option with default and help text.
* :mod:`trainer.architectures` -- the model builders (conv, dense, tcn, wavenet, hybrid).
* :mod:`trainer.layers` -- their custom Keras layers.
* :mod:`trainer.receptive_field` -- how far each model sees; the block multiple.
* :mod:`trainer.losses` -- ESR, pre-emphasised ESR, DC, MSE, multi-resolution STFT.
* :mod:`trainer.train_metrics` -- streaming Keras ESR / ESR dB for training logs.
* :mod:`trainer.data` -- tf.data input from the ExampleGen's GZIP TFRecords.
* :mod:`trainer.fir_init` -- least-squares FIR start for the linear branch.
* :mod:`trainer.callbacks` -- step budget, best-weights restoration.
* :mod:`trainer.distribute` -- tf.distribute strategy choice, chief/worker outputs.
* :mod:`trainer.export` -- SavedModel signatures and the ``fxemu.json`` asset.
* :mod:`trainer.model` -- ``run_fn``, the TFX entry point (``trainer.model.run_fn``).
* :mod:`trainer.metrics` -- custom TFMA metrics (``AudioErrorMetrics`` and single keys).
* :mod:`trainer.testing` -- tiny synthetic datasets for tests and smoke runs.

Import submodules explicitly; this file imports nothing but ``os`` (TFMA loads
``trainer.metrics`` on Beam workers without TensorFlow model code).

It turns on TensorFlow's oneDNN CPU kernels (``TF_ENABLE_ONEDNN_OPTS=1``) unless the
environment says otherwise. TensorFlow enables them by itself only on CPUs with AVX-512
VNNI or newer; on a 2-core AVX2 CPU (AMD EPYC) they made one training epoch of the default
model 4.5x faster (18.1 s against 81.9 s) and ``fxemu apply`` on a stereo file 1.7x
(18.7x against 11.2x real time): docs/performance.md, with the commands. It takes effect
only if TensorFlow is not imported yet, which holds for the CLI, the benchmarks and the
tests (they import :mod:`trainer` first); the Kubeflow image sets it in its Dockerfile. Set
``TF_ENABLE_ONEDNN_OPTS=0`` to keep TensorFlow's own kernels;
:func:`trainer.layers.dilated_conv1d` trains either way.
"""
import os

os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')
