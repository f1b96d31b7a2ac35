"""The names fxemu's parts agree on, defined once: example features, the SavedModel's
signatures and tensors, and the files one stage writes for another.

Whoever writes or reads one of these names imports it from here (a test finds the
distinctive ones spelled out anywhere else). This module imports nothing.
"""

# --- tf.Example features (AudioExampleGen writes them; schema.pbtxt lists them) --------
DRY = 'dry'                  # float [input window]: the dry audio with context
WET = 'wet'                  # float [window]: the target (wet) audio
SOURCE = 'source'            # bytes: the pair's NAME
EFFECT = 'effect'            # bytes: the pair's EFFECT
CHANNEL = 'channel'          # int: 0 left, 1 right
OFFSET = 'offset'            # int: first sample of the window in the recording
SAMPLE_RATE = 'sample_rate'  # int: Hz
FEATURES = (DRY, WET, SOURCE, EFFECT, CHANNEL, OFFSET, SAMPLE_RATE)

# --- the exported SavedModel (trainer/export.py writes it) ------------------------------
SERVING_SIGNATURE = 'serving_default'     # audio -> wet, any length
EXAMPLES_SIGNATURE = 'serving_examples'   # serialized examples -> wet window (TFMA)
STREAM_SIGNATURE = 'stream'               # audio block + state -> wet block + state
STREAM_FIXED_SIGNATURE = 'stream_fixed'   # the same for one fixed block size (TFLite)
AUDIO_INPUT = 'audio'                     # input tensor of serving_default and stream
EXAMPLES_INPUT = 'examples'               # input tensor of serving_examples
WET_OUTPUT = WET                          # output tensor of every signature (the label)
STATE = 'state'                           # state tensor of stream, in and out
MODEL_INFO_FILE = 'fxemu.json'            # asset (assets/fxemu.json): geometry, signatures
WARMUP_FILE = 'assets.extra/tf_serving_warmup_requests'  # TF Serving warm-up requests

# --- files one stage writes for another --------------------------------------------------
EXAMPLES_SUMMARY_FILE = 'fxemu_summary.json'    # in the Examples artifact (AudioExampleGen)
TRAINING_SUMMARY_FILE = 'fxemu_training.json'   # in the model run directory (run_fn)

# --- the Tuner's settings (the pipeline adds them to the Tuner's custom_config) ----------
TUNE_TRIALS = 'tune_trials'       # int: trials of the search
TUNE_SECONDS = 'tune_seconds'     # float: wall-clock seconds of all trials together
