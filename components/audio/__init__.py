"""The audio library: WAV files, signal processing, dry/wet pairs, the split plan, the
capture check and tf.Example records. Imports no TFX and nothing of fxemu but
:mod:`schema`."""
