"""Shared test setup: quiet TensorFlow, Keras 2, paths to the seed recordings, and one tiny
real pipeline run shared by the session (tests/test_pipeline.py, tests/test_report.py)."""
import os
import warnings

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
warnings.filterwarnings('ignore', category=FutureWarning)
warnings.filterwarnings('ignore', category=DeprecationWarning)

# As fxemu's entry points do: importing trainer before TensorFlow turns on oneDNN's CPU
# kernels (trainer/__init__.py); test_trainer.py also trains without them.
import trainer  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
import pytest  # pylint: disable=g-import-not-at-top

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED_AUDIO = os.environ.get('FXEMU_SEED_AUDIO',
                            os.path.join(os.path.dirname(REPO), 'shared', 'seed-audio'))


@pytest.fixture
def seed_audio():
  """The original project's recordings (../shared/seed-audio); skips when absent."""
  if not os.path.isdir(SEED_AUDIO):
    pytest.skip(f'seed recordings not found at {SEED_AUDIO}')
  return SEED_AUDIO


TINY_TRAIN = dict(model='conv', train_seconds=0,
                  conv_stride=32, conv_kernel=64, latent_channels=8,
                  latent_dense_layers=1, latent_dilations=(1, 2), fir_taps=64,
                  fir_lookahead=8, epochs=3, batch_size=8, early_stopping_patience=3)


def tiny_config(output_dir, data_dir, **overrides):
  """A PipelineConfig for the tiny data: short windows, in-memory Beam."""
  from pipeline.configs import PipelineConfig  # pylint: disable=g-import-not-at-top
  values = dict(data_dir=data_dir, effect='lowpass', output_dir=output_dir,
                window_seconds=0.25, hop_seconds=0.125, context_seconds=0.05,
                block_seconds=0.5, beam_args='--direct_running_mode=in_memory')
  values.update(overrides)
  return PipelineConfig(**values)


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
  """2 s sweeps and a 3 s piano piece through the lowpass preset."""
  from components.datagen import synth  # pylint: disable=g-import-not-at-top
  directory = str(tmp_path_factory.mktemp('data'))
  synth.synthesize(directory, effects=('lowpass',), seconds_per_signal=2.0, piano_seconds=3.0,
                   progress=False)
  return directory


@pytest.fixture(scope='session')
def first_run(tmp_path_factory, tiny_data):
  """(config, RunResult) of one real pipeline run on the tiny data (later tests re-run it)."""
  from pipeline import local_runner  # pylint: disable=g-import-not-at-top
  from pipeline import results  # pylint: disable=g-import-not-at-top
  from trainer.config import TrainConfig  # pylint: disable=g-import-not-at-top
  output = str(tmp_path_factory.mktemp('run'))
  config = tiny_config(output, tiny_data)
  local_runner.run(config, TrainConfig(**TINY_TRAIN))
  return config, results.read_run(config.metadata_path, config.pipeline_name)
