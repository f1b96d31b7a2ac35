"""The run report: `fxemu run` prints its stages live and ends with the report's path; the
page holds every section and renders in headless Chromium (images decode, audio loads).

Uses the session's tiny pipeline run (tests/conftest.py): `fxemu run` is called again on
it with the same settings, so most steps come from the cache.
"""
import dataclasses
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from pipeline import local_runner
from pipeline.cli import main as cli
from pipeline.configs import PipelineConfig
from pipeline.report import run_report as report
from tests.conftest import TINY_TRAIN


def _flags(config: PipelineConfig):
  """The `fxemu run` flags that reproduce ``config`` and TINY_TRAIN."""
  argv = []
  for field in dataclasses.fields(PipelineConfig):
    value = getattr(config, field.name)
    if value != field.default:
      argv.append(f'--{field.name.replace("_", "-")}={value}')
  for name, value in TINY_TRAIN.items():
    text = ','.join(map(str, value)) if isinstance(value, tuple) else str(value)
    argv.append(f'--{name.replace("_", "-")}={text}')
  return argv


class _TimedOutput:
  """A stdout that remembers when each line was written."""

  def __init__(self):
    self.lines, self._partial = [], ''

  def write(self, text):
    self._partial += text
    while '\n' in self._partial:
      line, self._partial = self._partial.split('\n', 1)
      self.lines.append((time.monotonic(), line))
    return len(text)

  def flush(self):
    pass

  def isatty(self):
    return False


@pytest.fixture(scope='module')
def cli_run(first_run):
  """(lines written by `fxemu run` with their times, when the DAG run returned, exit code)."""
  config, _ = first_run
  out = _TimedOutput()
  returned = []
  original_run = local_runner.run

  def timed_run(*args, **kwargs):
    try:
      return original_run(*args, **kwargs)
    finally:
      returned.append(time.monotonic())

  args = cli.build_parser().parse_args(['run'] + _flags(config))
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(local_runner, 'run', timed_run)
    patch.setattr(sys, 'stdout', out)
    try:
      code = args.func(args)
    finally:
      import tf_keras  # pylint: disable=g-import-not-at-top
      tf_keras.utils.enable_interactive_logging()   # as the other tests expect
  return out.lines, returned[0], code


@pytest.fixture(scope='module')
def page(cli_run):
  lines, _, code = cli_run
  assert code == 0, '\n'.join(text for _, text in lines)
  path = next(text.split('report: ', 1)[1] for _, text in lines if text.startswith('report: '))
  with open(path, encoding='utf-8') as f:
    return path, f.read()


def test_run_prints_each_stage_as_it_finishes_and_ends_with_the_report(cli_run):
  lines, dag_returned, code = cli_run
  assert code == 0
  stage_lines = [(t, text.split()) for t, text in lines
                 if re.match(r'^  \S+\s+(complete|cached|failed)\s+[\d.]+ s$', text)]
  names = [words[0] for _, words in stage_lines]
  for name in ('AudioExampleGen', 'StatisticsGen', 'Trainer', 'Evaluator', 'AtomicPusher'):
    assert name in names, names
  assert len(names) == len(set(names)), names        # once each
  # live: the first stage was printed while the DAG was still running
  assert stage_lines[0][0] < dag_returned
  texts = [text for _, text in lines]
  assert texts[-1].startswith('report: ') and texts[-2].startswith('done in'), texts[-3:]
  assert not any(t.startswith('Epoch ') for t in texts)      # Keras' lines are quiet


def test_training_fact_names_the_schedule_the_average_and_the_decay():
  full = {'learning_rate': 0.004, 'lr_schedule': 'constant', 'ema_momentum': 0.995,
          'weight_decay': 0.1}
  assert report._schedule(full) == '0.004, constant, weights averaged (0.995), weight decay 0.1'
  assert report._schedule(dict(full, ema_momentum=0.0, weight_decay=0.0)) == '0.004, constant'
  assert report._schedule({'learning_rate': 0.01}) == '?'      # a summary older than both


def test_page_has_every_section_and_needs_no_network(page, first_run):
  path, text = page
  config, _ = first_run
  assert os.path.dirname(path) == config.pipeline_root
  for section in ('id="run"', 'id="metrics"', 'id="training"', 'id="test-audio"', 'id="data"'):
    assert section in text
  for column in ('identity ESR (dB)', 'FIR ESR (dB)', 'last blessed ESR (dB)'):
    assert column in text
  assert 'all test files' in text and 'channel 0' in text and 'channel 1' in text
  # the rich capture signal set of `fxemu synth` (tests/conftest.py's tiny data)
  for name in ('piano', 'bursts', 'plucks', 'polysaw', 'ramps', 'repeat'):
    assert f'<td>{name}</td>' in text
  assert 'schema anomalies (ExampleValidator): none' in text
  # the FIR branch's start (--fir-init auto) and the ESR its least-squares fit left
  fir_fact = r'FIR branch start.*?(zeros|least_squares) \(least-squares fit: -?[\d.]+ dB\)'
  assert re.search(fir_fact, text, re.S)
  # the learning rate, its schedule and the weight average, as the model's defaults resolved
  assert re.search(r'learning rate</t[dh]>\s*<td>[\d.e-]+, (cosine|constant|plateau)', text)
  # the capture check: a row of figures per pair, the verdict and its findings
  check = text[text.index('<h3>Capture check</h3>'):]
  assert 'Verdict: <b>ok</b>' in check and check.count('<span class="good">ok</span>') == 6
  assert 'the floor no model can beat' in check          # the repeated segment's ESR
  assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', text)) == 3
  assert len(re.findall(r'<audio [^>]*src="data:audio/wav;base64,', text)) == 3
  assert not re.search(r'(src|href)="(https?:)?//', text)       # nothing from the network
  assert len(text) < 8e6


# Runs at the page's load event, which waits for the images and, per the HTML spec, for
# each <audio> to load its metadata (or fail): no waiting in real time, no DevTools.
CHECK_SCRIPT = """
<script>
window.addEventListener('load', () => {
  const images = [...document.images].map((img) => (
      {alt: img.alt, width: img.naturalWidth, height: img.naturalHeight}));
  const audio = [...document.querySelectorAll('audio')].map((a) => (
      {title: a.title, duration: a.duration, ready: a.readyState,
       error: a.error && a.error.code, canPlay: a.canPlayType('audio/wav')}));
  const out = document.createElement('pre');
  out.id = 'fxemu-check';
  out.textContent = JSON.stringify({images, audio});
  document.body.appendChild(out);
});
</script>
"""


def _chromium():
  for name in ('chromium', 'chromium-browser'):
    if shutil.which(name):
      return shutil.which(name)
  if os.environ.get('CI'):
    pytest.fail('chromium is missing: `scripts/setup.sh --test` (make test) installs it')
  pytest.skip('chromium is not installed (scripts/setup.sh --test installs it)')


def test_page_renders_in_headless_chromium(page, tmp_path):
  """Opens the page in headless Chromium (``--dump-dom``: the document after its load
  event) and reads what the injected check found."""
  _, text = page
  checked = tmp_path / 'report.html'
  checked.write_text(text.replace('</body>', CHECK_SCRIPT + '</body>'), encoding='utf-8')
  dom = subprocess.run(
      [_chromium(), '--headless', '--no-sandbox', '--disable-gpu', '--mute-audio',
       f'--user-data-dir={tmp_path / "profile"}', '--dump-dom', checked.as_uri()],
      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=300, check=True,
      text=True).stdout
  match = re.search(r'<pre id="fxemu-check">(.*?)</pre>', dom, re.S)
  value = html.unescape(match.group(1)) if match else ''
  assert value, 'the check did not run: the page never reached its load event'
  found = json.loads(value)
  assert len(found['images']) == 3
  for image in found['images']:
    assert image['width'] > 0 and image['height'] > 0, image
  assert [a['title'].split()[0] for a in found['audio']] == ['dry', 'wet', 'predicted']
  for audio in found['audio']:
    assert audio['canPlay'] and audio['error'] is None, audio
    assert audio['ready'] >= 1 and 2.5 < audio['duration'] <= report.CLIP_SECONDS, audio
