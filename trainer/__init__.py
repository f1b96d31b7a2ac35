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

Import submodules explicitly; this file imports nothing (TFMA loads
``trainer.metrics`` on Beam workers without TensorFlow model code).
"""
