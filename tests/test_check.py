"""The capture check (components/audio/capture_check.py, `fxemu check`, the gate before training).

Real pairs, no mocks: the dry side is the rich capture signal's noise bursts and ramps
(components/datagen/capture_signals.py), the wet side a preset of
components/datagen/effects.py (pedalboard), broken on purpose the way real captures go wrong. Each failure must get its own message
naming the file; a good pair of every preset must pass.
"""
import dataclasses
import json
import os
import re
import subprocess
import sys

import numpy as np
import pedalboard
import pytest

from components import anomalies_gate
from components.audio import capture_check
from components.audio import pairs as pairs_lib
from components.audio import split_plan
from components.audio import wav
from components.datagen import capture_signals
from components.datagen import effects
from pipeline import results
from tests.conftest import REPO
from tests.conftest import tiny_config

RATE = 44100
SECONDS = 4.0
SETTINGS = capture_check.CheckSettings(max_latency_samples=RATE, context_samples=RATE // 4,
                                       sample_rate=RATE)
ALIGNED = dataclasses.replace(SETTINGS, align=True)


@pytest.fixture(scope='module')
def dry():
  """4 s of stereo noise bursts and sweeps from -63 to -3 dBFS with silences between,
  and half a second of silence on both channels in the middle (where the noise floor is)."""
  audio = capture_signals.capture_signal('bursts', SECONDS, RATE, seed=3)
  middle = len(audio) // 2
  audio[middle:middle + RATE // 2] = 0.0
  return audio


@pytest.fixture(scope='module')
def lowpass_wet(dry):
  return effects.apply_effect(effects.preset('lowpass'), dry, RATE)


def _write(directory, name, dry, wet, effect='fx', rate=RATE):
  pre = os.path.join(directory, f'{effect} - pre - {name}.wav')
  post = os.path.join(directory, f'{effect} - post - {name}.wav')
  wav.write_wav(pre, dry, rate, 'FLOAT')
  wav.write_wav(post, wet, RATE, 'FLOAT')
  return pairs_lib.Pair(effect, name, pre, post)


def _check(tmp_path, name, dry, wet, settings=SETTINGS, **kwargs):
  return capture_check.check_pair(_write(str(tmp_path), name, dry, wet, **kwargs), settings)


def _pair_of(check):
  return pairs_lib.Pair(check.effect, check.name, check.pre_path, check.post_path)


def _findings(check, severity, kind):
  return [f.message for f in check.findings if f.severity == severity and f.check == kind]


def _shift(audio, samples):
  """The recording ``samples`` later (> 0: it starts with silence) or earlier, same length."""
  out = np.zeros_like(audio)
  if samples >= 0:
    out[samples:] = audio[:len(audio) - samples]
  else:
    out[:samples] = audio[-samples:]
  return out


@pytest.mark.parametrize('preset', sorted(effects.PRESETS))
def test_a_good_pair_of_every_preset_passes(tmp_path, dry, preset):
  wet = effects.apply_effect(effects.preset(preset), dry, RATE)
  check = _check(tmp_path, preset, dry, wet)
  assert check.verdict == 'ok', [f.message for f in check.findings]
  assert abs(check.latency_samples) <= 30 and check.latency_confidence > 0.3
  assert check.coherence > 0.3
  assert check.best_esr_db < -3.0                       # something predicts the wet
  assert check.linear_esr_db < check.identity_esr_db or preset in ('compressor', 'fuzz',
                                                                    'comp_drive')
  assert check.gain_swing_db is not None and check.phase_swing_degrees is not None


def test_the_figures_of_a_linear_effect(tmp_path, dry, lowpass_wet):
  check = _check(tmp_path, 'lowpass', dry, lowpass_wet)
  assert check.coherence > 0.99 and min(check.band_coherence.values()) > 0.9
  assert check.linear_esr_db < -30 and check.nonlinear_esr_db < -30
  assert check.gain_swing_db < 0.5 and check.phase_swing_degrees < 2
  assert abs(check.lag_drift_samples) < 1 and check.lag_swing_samples < 1
  assert check.dry.clipped_fraction == 0 and check.wet.peak_db < 0
  assert check.noise_floor_db < -100                    # digital silence between bursts


def test_wet_leading_by_a_quarter_second_is_an_error_naming_the_file(tmp_path, dry,
                                                                     lowpass_wet):
  # Trimmed differently: the wet file starts 0.25 s later in the performance.
  lead = RATE // 4
  check = _check(tmp_path, 'trimmed', dry[:len(dry) - lead], lowpass_wet[lead:])
  assert abs(check.latency_samples + lead) <= 20 and check.latency_confidence > 0.5
  [message] = _findings(check, 'error', 'latency')
  assert 'fx - post - trimmed.wav: the wet side leads the dry by' in message
  assert 'fx - pre - trimmed.wav' in message and '--align' in message
  assert check.verdict == 'error'
  # With --align the dry side's start is trimmed: a warning, no error.
  aligned = capture_check.check_pair(_pair_of(check), ALIGNED)
  assert aligned.verdict == 'warning' and _findings(aligned, 'warning', 'latency')
  assert aligned.linear_esr_db < -25                     # aligned, it is the lowpass again


def test_latency_past_the_search_range_is_an_error_naming_the_option(tmp_path, dry,
                                                                     lowpass_wet):
  late = int(1.2 * RATE)                                # 0.2 s past the default +-1 s
  long_dry = np.concatenate([dry, dry[::-1]])           # 8 s, so that 1.2 s leaves overlap
  long_wet = effects.apply_effect(effects.preset('lowpass'), long_dry, RATE)
  check = _check(tmp_path, 'late', long_dry, _shift(long_wet, late))
  [message] = _findings(check, 'error', 'latency')
  assert 'fx - post - late.wav: latency beyond the search range' in message
  assert '--max-latency-seconds' in message and f'{late:+d} samples' in message
  assert not _findings(check, 'error', 'coherence')     # no follow-on noise
  wider = capture_check.CheckSettings(max_latency_samples=int(1.5 * RATE), align=True,
                                      sample_rate=RATE)
  assert capture_check.check_pair(_pair_of(check), wider).verdict != 'error'


def test_a_late_wet_side_beyond_the_context_needs_align(tmp_path, dry, lowpass_wet):
  check = _check(tmp_path, 'slow', dry, _shift(lowpass_wet, RATE // 2))   # 0.5 s late
  [message] = _findings(check, 'error', 'latency')
  assert 'fx - post - slow.wav: the wet side is' in message and '--align' in message
  aligned = capture_check.check_pair(_pair_of(check), ALIGNED)
  assert aligned.verdict == 'ok', [f.message for f in aligned.findings]


def test_different_takes_have_no_coherence(tmp_path, dry):
  other = capture_signals.capture_signal('ramps', SECONDS, RATE, seed=9)
  check = _check(tmp_path, 'takes', dry, effects.apply_effect(effects.preset('overdrive'),
                                                              other, RATE))
  assert check.coherence < 0.1 and check.latency_confidence < 0.3
  [message] = _findings(check, 'error', 'coherence')
  assert 'fx - pre - takes.wav / ' in message and 'fx - post - takes.wav' in message
  assert 'different takes' in message
  assert check.verdict == 'error'
  # the one error: no latency error, no weak-latency warning, no swings measured at random
  assert [f.check for f in check.findings] == ['coherence'] and check.gain_swing_db is None


def test_a_phaser_is_named_as_a_modulated_effect(tmp_path, dry, lowpass_wet):
  phaser = pedalboard.Pedalboard([pedalboard.Phaser(rate_hz=0.5, depth=0.8, mix=0.5)])
  check = _check(tmp_path, 'phaser', dry,
                 phaser.process(lowpass_wet.T.copy(), RATE).T.copy())
  [message] = _findings(check, 'warning', 'time_variance')
  assert 'fx - post - phaser.wav: the wet\'s' in message and 'swing from frame to frame' in message
  assert 'modulated effect (tremolo, phaser' in message
  assert check.phase_swing_degrees > 10 and check.gain_swing_db > 2


def test_a_tremolo_is_named_with_its_rate(tmp_path, dry, lowpass_wet):
  t = np.arange(len(lowpass_wet))[:, None] / RATE
  tremolo = lowpass_wet * (1 - 0.25 * (1 + np.sin(2 * np.pi * 3.0 * t)))  # 3 Hz, -6..0 dB
  check = _check(tmp_path, 'tremolo', dry, tremolo.astype(np.float32))
  [message] = _findings(check, 'warning', 'time_variance')
  assert 'fx - post - tremolo.wav' in message and 'gain by' in message and 'tremolo' in message
  rate = float(re.search(r'periodically at ([\d.]+) Hz \(an LFO\)', message).group(1))
  assert rate == pytest.approx(3.0, abs=0.3)


def test_drifting_clocks_are_named(tmp_path, dry, lowpass_wet):
  stretch = 1 + 5e-5                                     # 50 ppm: 8.8 samples over 4 s
  index = np.arange(len(lowpass_wet)) * stretch
  drifted = np.stack([np.interp(index, np.arange(len(lowpass_wet)), lowpass_wet[:, c])
                      for c in range(2)], axis=1).astype(np.float32)
  check = _check(tmp_path, 'drift', dry, drifted)
  [message] = _findings(check, 'warning', 'time_variance')
  assert 'fx - post - drift.wav: the wet drifts' in message and 'clocks' in message
  assert check.lag_drift_samples == pytest.approx(-SECONDS * RATE * 5e-5, abs=2.5)


def test_clipping_is_a_warning_naming_the_file(tmp_path, dry, lowpass_wet):
  check = _check(tmp_path, 'hot', dry, np.clip(lowpass_wet * 20, -1, 1))
  [message] = _findings(check, 'warning', 'clipping')
  assert 'fx - post - hot.wav: clipped' in message and 'lower the level' in message
  assert check.wet.clipped_fraction > capture_check.CLIPPED_FRACTION
  assert not _findings(check, 'warning', 'dc_offset')


def test_a_dc_offset_is_a_warning_naming_the_file(tmp_path, dry, lowpass_wet):
  check = _check(tmp_path, 'offset', dry, lowpass_wet + 0.02)
  [message] = _findings(check, 'warning', 'dc_offset')
  assert 'fx - post - offset.wav: DC offset at -3' in message and 'high-pass' in message
  assert check.wet.dc_offset_db == pytest.approx(-34, abs=1)   # 0.02 of full scale
  assert check.verdict == 'warning'                      # nothing else is wrong with it


def test_a_noisy_recording_is_a_warning(tmp_path, dry, lowpass_wet):
  hiss = 0.003 * np.random.default_rng(0).standard_normal(lowpass_wet.shape)   # -50 dBFS
  check = _check(tmp_path, 'hiss', dry, (lowpass_wet + hiss).astype(np.float32))
  [message] = _findings(check, 'warning', 'noise_floor')
  assert 'fx - post - hiss.wav: noisy: -50' in message
  assert check.noise_floor_db == pytest.approx(-50.5, abs=1)


def test_a_sample_rate_mismatch_is_an_error(tmp_path, dry, lowpass_wet):
  check = _check(tmp_path, 'rate', dry, lowpass_wet, rate=48000)
  messages = _findings(check, 'error', 'sample_rate')
  assert any('fx - pre - rate.wav: sample rate 48000 Hz' in m and '--sample-rate' in m
             for m in messages), messages
  assert check.verdict == 'error' and check.coherence is None     # not analysed further


def test_repeatability_of_a_repeated_segment(tmp_path, dry):
  twice = np.concatenate([dry, dry])                     # the repeat signal's layout
  clean = _check(tmp_path, 'repeat', twice,
                 effects.apply_effect(effects.preset('overdrive'), twice, RATE))
  assert clean.repeat_esr_db < -60
  [note] = _findings(clean, 'info', 'repeatability')
  assert 'fx - post - repeat.wav' in note and 'the floor no model can beat' in note
  # A tremolo whose phase differs between the passes: the capture does not repeat itself.
  wet = effects.apply_effect(effects.preset('overdrive'), twice, RATE)
  t = np.arange(len(wet))[:, None] / RATE
  moving = _check(tmp_path, 'moving', twice,
                  (wet * (0.75 + 0.25 * np.sin(2 * np.pi * 0.3 * t))).astype(np.float32))
  assert moving.repeat_esr_db > capture_check.REPEAT_WARNING_DB
  assert _findings(moving, 'warning', 'repeatability')
  # No repeated segment, no figure.
  assert _check(tmp_path, 'once', dry, dry).repeat_esr_db is None


@pytest.mark.parametrize('linear,nonlinear,identity,expected', [
    (-3.0, -4.0, -6.0, ('warning', 'no fit predicts the wet better than output = input')),
    (-7.0, -4.0, -6.0, None),                       # the FIR beats output = input
    (-5.5, -5.2, -6.0, None),                       # within 1 dB of it
    (+0.3, -0.5, +2.0, ('error', 'nothing predicts the wet')),
])
def test_learnability_findings(linear, nonlinear, identity, expected):
  check = capture_check.PairCheck('fx', 'x', 'pre.wav', 'post.wav', coherence=0.8,
                                  identity_esr_db=identity, linear_esr_db=linear,
                                  nonlinear_esr_db=nonlinear)
  found = [(f.severity, f.message) for f in capture_check.analysis_findings(check)
           if f.check == 'learnability']
  if expected is None:
    assert not found
  else:
    [(severity, message)] = found
    assert severity == expected[0] and expected[1] in message
    assert message.startswith('pre.wav / post.wav: ') and 'different takes' in message


def test_summary_and_table_carry_every_pair(tmp_path, dry, lowpass_wet):
  checks = [_check(tmp_path, 'good', dry, lowpass_wet),
            _check(tmp_path, 'offset', dry, lowpass_wet + 0.02)]
  summary = capture_check.summarize(checks)
  assert summary['verdict'] == 'warning' and not summary['errors']
  assert len(summary['warnings']) == 1 and 'offset.wav' in summary['warnings'][0]
  again = capture_check.PairCheck.from_dict(json.loads(json.dumps(summary['pairs']['fx - good'])))
  assert again.to_dict() == checks[0].to_dict()
  table = capture_check.format_table(checks)
  assert len(table) == 3 and table[1].split()[:3] == ['fx', '-', 'good']


def test_the_level_spread_against_numpy():
  """Percentiles 10/50/90 of the frame RMS of every channel, silent frames left out."""
  frame = capture_check.FRAME
  rng = np.random.default_rng(0)
  levels_db = np.array([-50.0, -40.0, -30.0, -20.0, -10.0, -300.0])   # the last: silence
  channels = [np.concatenate([10 ** (db / 20) * np.sign(rng.standard_normal(frame))
                              for db in levels_db[::step]]) for step in (1, -1)]
  audio = np.stack(channels, 1).astype(np.float32)                   # [6 frames, 2]
  spread = capture_check.level_spread_db(audio)
  expected = np.percentile(np.tile(levels_db[:-1], 2), [10, 50, 90])
  np.testing.assert_allclose([spread['quiet_db'], spread['median_db'], spread['loud_db']],
                             expected, atol=0.05)
  assert capture_check.side_levels(audio).median_db == spread['median_db']
  assert capture_check.level_spread_db(np.zeros([3 * frame, 2], np.float32)) == dict(
      quiet_db=None, median_db=None, loud_db=None)


def _capture_and_music_checks(tmp_path, preset):
  """Checks of a capture at one narrow level, music 20 dB under it and music as loud."""
  rng = np.random.default_rng(1)
  capture = (0.1 * np.clip(rng.standard_normal([3 * RATE, 2]), -3, 3)).astype(np.float32)
  board = effects.preset(preset)
  return [_check(tmp_path, name, dry, effects.apply_effect(board, dry, RATE))
          for name, dry in (('capture', capture), ('music', 0.1 * capture[::-1]),
                            ('music as loud', capture[::-1].copy()))]


def _level_findings(checks):
  return {c.name: [f for f in c.findings if f.check == 'level_coverage'] for c in checks}


@pytest.mark.parametrize('preset,severity', [('overdrive', 'warning'), ('lowpass', 'info')])
def test_a_test_recording_quieter_than_the_capture_is_named(tmp_path, preset, severity):
  """The capture at one narrow level, the music 20 dB under it: a nonlinear effect's
  response there was never recorded (a warning naming the test file), a linear one's is
  the same (a note); music at the capture's level is no finding."""
  checks = _capture_and_music_checks(tmp_path, preset)
  capture_check.add_level_coverage_findings(checks, lambda c: c.name.startswith('music'))
  found = _level_findings(checks)
  assert not found['capture'] and not found['music as loud']
  [finding] = found['music']
  assert finding.severity == severity
  assert finding.message.startswith(checks[1].pre_path + ': half of this test recording')
  assert '20 dB below the quietest tenth of the training recordings' in finding.message
  assert 'fxemu synth --dry-only' in finding.message


def test_a_test_recording_whose_head_trains_covers_its_own_levels(tmp_path):
  """With a test tail below 1 (protocol B) the head of the quiet music trains the model,
  at the music's levels: no finding, where the whole music as test had a warning."""
  checks = _capture_and_music_checks(tmp_path, 'overdrive')
  capture_check.add_level_coverage_findings(checks, lambda c: c.name.startswith('music'),
                                            test_tail=0.4)
  assert not any(_level_findings(checks).values())


@pytest.mark.parametrize('tail', [0.0, -0.5, 1.5])
def test_a_test_tail_outside_zero_to_one_is_refused(tail):
  with pytest.raises(ValueError, match=f'test tail must be in \\(0, 1\\].*got {tail}'):
    split_plan.WindowSpec(window=8, hop=8, context=0, block=8, test_tail=tail)


def test_fxemu_run_lists_the_warnings_and_the_errors_it_let_through():
  from pipeline.cli import check
  summary = {'check': {'errors': ['a.wav: leads'], 'warnings': ['b.wav: clipped']}}
  assert check.summary_lines(summary) == ['capture check:', '  b.wav: clipped']
  assert check.summary_lines(summary, allowed=True) == [
      'capture check:', '  a.wav: leads', '  b.wav: clipped']
  assert check.summary_lines({'check': {'errors': [], 'warnings': []}}) == []


def test_the_gate_stops_on_errors_unless_allowed(tmp_path):
  examples = tmp_path / 'examples'
  examples.mkdir()
  message = '/data/fx - post - x.wav: the wet side leads the dry by 11025 samples'
  (examples / 'fxemu_summary.json').write_text(json.dumps(
      {'check': {'errors': [message], 'warnings': [], 'verdict': 'error'}}))
  with pytest.raises(anomalies_gate.DataAnomaliesError) as error:
    anomalies_gate.gate(str(tmp_path / 'anomalies'), [], str(examples), False)
  assert message in str(error.value) and '--allow-unlearnable' in str(error.value)
  assert anomalies_gate.gate(str(tmp_path / 'anomalies'), [], str(examples), True) == [message]


# --- The command line and the pipeline ------------------------------------------------------

def _fxemu(*argv, env=None):
  """`fxemu ARGS` from this checkout in a fresh process: (exit code, stdout, stderr)."""
  process = subprocess.run([sys.executable, '-m', 'pipeline.cli.main', *argv], cwd=REPO,
                           env=dict(os.environ, PYTHONPATH=REPO, **(env or {})),
                           capture_output=True, text=True, timeout=600)
  return process.returncode, process.stdout, process.stderr


def _check_command(capsys, *argv):
  """`fxemu check ARGS` in this process: (exit code, stdout)."""
  from pipeline.cli import main as cli
  args = cli.build_parser().parse_args(['check', *argv])
  code = args.func(args)
  return code, capsys.readouterr().out


def test_fxemu_check_prints_the_figures_and_exits_1_on_errors(tmp_path, dry, lowpass_wet,
                                                              capsys):
  _write(str(tmp_path), 'good', dry, lowpass_wet)
  lead = RATE // 4
  _write(str(tmp_path), 'trimmed', dry[:len(dry) - lead], lowpass_wet[lead:])
  code, out = _check_command(capsys, str(tmp_path), '--effect', 'fx')
  assert code == 1, out
  rows = {tuple(line.split()[:3]): line for line in out.splitlines()}
  assert rows[('fx', '-', 'good')].endswith(' ok') and rows[('fx', '-', 'trimmed')].endswith(
      ' error')
  assert 'errors (the run stops before training):' in out
  assert 'fx - post - trimmed.wav: the wet side leads the dry by' in out
  assert '2 pairs: 1 ok, 0 with warnings, 1 with errors' in out
  code, out = _check_command(capsys, str(tmp_path), '--align', '--json')
  pairs = json.loads(out)['pairs']
  assert code == 0 and pairs['fx - trimmed']['verdict'] == 'warning'   # --align trims it
  assert pairs['fx - good']['verdict'] == 'ok'
  code, out = _check_command(capsys, str(tmp_path / 'nowhere'))
  assert code == 2


def test_fxemu_check_compares_the_test_pairs_levels_with_the_training_pairs(tmp_path,
                                                                             capsys):
  """`--test-pattern` says which pairs are the music; a quiet one is named."""
  rng = np.random.default_rng(2)
  board = effects.preset('lowpass')
  for name, gain in (('sweeps', 0.1), ('song', 0.01)):
    dry = (gain * np.clip(rng.standard_normal([2 * RATE, 2]), -3, 3)).astype(np.float32)
    _write(str(tmp_path), name, dry, effects.apply_effect(board, dry, RATE))
  code, out = _check_command(capsys, str(tmp_path), '--test-pattern', 'song')
  assert code == 0
  assert 'fx - pre - song.wav: half of this test recording is at or below' in out, out
  code, out = _check_command(capsys, str(tmp_path), '--test-pattern', 'sweeps')
  assert 'fx - pre - sweeps.wav: half of this test recording is at or above' in out, out
  assert '20 dB above the loudest tenth of the training recordings' in out


def test_run_help_states_each_default_once(capsys):
  from pipeline.cli import main as cli
  with pytest.raises(SystemExit):
    cli.build_parser().parse_args(['run', '--help'])
  out = capsys.readouterr().out
  entries = re.split(r'\n  (?=-)', out)                 # one per option
  report = ' '.join(next(e for e in entries if e.startswith('--report')).split())
  assert report.count('(default: True)') == 1, report
  allow = ' '.join(next(e for e in entries if e.startswith('--allow-unlearnable')).split())
  assert allow.endswith('(default: False)') and 'capture check' in allow


def test_a_bad_capture_stops_the_run_before_the_trainer(tmp_path, tiny_data):
  """`fxemu run` on the tiny data plus a pair whose wet leads by 0.25 s: the gate stops it
  after the ExampleValidator with the file and the fix; no raw library log by default."""
  data = tmp_path / 'data'
  data.mkdir()
  for name in os.listdir(tiny_data):
    os.symlink(os.path.join(tiny_data, name), data / name)
  dry_audio, _ = wav.read_wav(os.path.join(tiny_data, 'lowpass - pre - bursts.wav'))
  wet_audio, _ = wav.read_wav(os.path.join(tiny_data, 'lowpass - post - bursts.wav'))
  lead = RATE // 4
  wav.write_wav(str(data / 'lowpass - pre - trimmed.wav'), dry_audio[:len(dry_audio) - lead],
                RATE)
  wav.write_wav(str(data / 'lowpass - post - trimmed.wav'), wet_audio[lead:], RATE)
  config = tiny_config(str(tmp_path / 'out'), str(data))
  argv = ['run'] + [f'--{k.replace("_", "-")}={v}' for k, v in (
      ('data_dir', config.data_dir), ('effect', config.effect),
      ('output_dir', config.output_dir), ('window_seconds', config.window_seconds),
      ('hop_seconds', config.hop_seconds), ('context_seconds', config.context_seconds),
      ('block_seconds', config.block_seconds), ('beam_args', config.beam_args))]
  code, out, err = _fxemu(*argv)
  assert code == 1, out + err
  assert 'fxemu: the pipeline failed: the capture check found recordings' in err
  assert 'lowpass - post - trimmed.wav: the wet side leads the dry by' in err
  assert '--allow-unlearnable' in err
  assert 'ERROR:absl' not in err and 'Execution' not in err, err    # no raw library log
  result = results.read_run(config.metadata_path, config.pipeline_name)
  states = {s.name: s.state for s in result.stages}
  assert states['AnomaliesGate'] == 'failed' and 'Trainer' not in states, states
  summary = json.loads(open(os.path.join(result.examples_uri, 'fxemu_summary.json')).read())
  assert summary['check']['pairs']['lowpass - trimmed']['verdict'] == 'error'
  assert summary['check']['pairs']['lowpass - bursts']['verdict'] == 'ok'
  # -v shows the library's logs (the same run again: the steps before the gate are cached).
  code, _, err = _fxemu('-v', *argv)
  assert code == 1 and 'Execution' in err and 'failed' in err
