"""Shared test setup: quiet TensorFlow, Keras 2, paths to the seed recordings."""
import os
import warnings

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
warnings.filterwarnings('ignore', category=FutureWarning)
warnings.filterwarnings('ignore', category=DeprecationWarning)

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
