"""Tests of the default data set: dry signals, piano, effect presets and the writer."""
import os
import sys

import hypothesis
from hypothesis import strategies as st
import numpy as np
import pytest

from components.audio import wav
from components.datagen import capture_signals
from components.datagen import effects
from components.datagen import piano
from components.datagen import signals
from components.datagen import synth

SR = 44100
SECONDS = 1.0          # per sweep signal in the small data set
PIANO_SECONDS = 2.0


def load_pcm16(path):
  """(int16 [frames, channels], WavInfo) without TensorFlow."""
  with open(path, 'rb') as f:
    data = f.read()
  info = wav.parse_header(path, data)
  pcm = np.frombuffer(data, '<i2', info.num_frames * info.channels, info.data_offset)
  return pcm.reshape(info.num_frames, info.channels), info


def frame_db(track, frame=441, power='rms'):
  """Level (dBFS) of consecutive frames of a track: RMS or peak."""
  x = np.asarray(track, np.float64)[:len(track) // frame * frame].reshape(-1, frame)
  value = np.sqrt(np.mean(x ** 2, axis=1)) if power == 'rms' else np.max(np.abs(x), axis=1)
  return 20 * np.log10(np.maximum(value, 1e-12))


def dominant_hz(track):
  spectrum = np.abs(np.fft.rfft(track * np.hanning(len(track))))
  return np.argmax(spectrum) * SR / len(track)


def spread_db(levels):
  return np.percentile(levels, 95) - np.percentile(levels, 5)


EFFECTS = ('lowpass', 'overdrive', 'compressor')


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
  out = tmp_path_factory.mktemp('synth')
  paths = synth.synthesize(str(out), effects=EFFECTS, seconds_per_signal=SECONDS,
                           piano_seconds=PIANO_SECONDS, progress=False)
  return out, paths


@pytest.fixture(scope='module')
def sine():
  return signals.stereo_sweep('sine', 4.0, SR, seed=3)


# --- The data set on disk ------------------------------------------------------------

def test_writes_every_pair_with_the_naming_convention(dataset):
  out, paths = dataset
  expected = {f'{e} - {side} - {n}.wav' for e in EFFECTS
              for side in ('pre', 'post') for n in synth.list_names()}
  assert set(os.listdir(out)) == expected
  assert sorted(os.path.basename(p) for p in paths) == sorted(expected)
  assert synth.list_names() == ('bursts', 'plucks', 'ramps', 'polysaw', 'repeat', 'piano')
  assert synth.list_names('classic') == ('sine', 'square', 'saw', 'polysaw', 'triangle',
                                         'piano')
  assert synth.effects.PRESETS is effects.PRESETS   # what `fxemu` checks --effect against
  assert synth.DEFAULT_EFFECTS == tuple(effects.PRESETS)


def test_files_are_16_bit_stereo_44k_and_pairs_align(dataset):
  out, _ = dataset
  for name in synth.list_names():
    seconds = PIANO_SECONDS if name == synth.PIANO_NAME else SECONDS
    for effect in ('lowpass', 'compressor'):
      pre, pre_info = load_pcm16(os.path.join(out, synth.file_name(effect, 'pre', name)))
      post, post_info = load_pcm16(os.path.join(out, synth.file_name(effect, 'post', name)))
      for info in (pre_info, post_info):
        assert (info.format_tag, info.bits, info.channels, info.sample_rate) == (1, 16, 2, SR)
        assert info.num_frames == round(seconds * SR)
      assert np.any(pre != 0) and np.any(post != 0)


def test_files_read_back_with_the_pipeline_reader(dataset):
  out, _ = dataset
  audio, info = wav.read_wav(os.path.join(out, 'overdrive - post - ramps.wav'))
  assert audio.shape == (round(SECONDS * SR), 2) and info.subtype == 'PCM_16'


def test_outputs_never_clip(dataset):
  _, paths = dataset
  for path in paths:
    pcm, _ = load_pcm16(path)
    assert np.max(np.abs(pcm.astype(np.int32))) < 32000, (path, np.max(np.abs(pcm)))


def test_same_seed_same_bytes_and_rerun_leaves_files_untouched(dataset, tmp_path):
  out, paths = dataset
  again = synth.synthesize(str(tmp_path / 'a'), effects=EFFECTS, seconds_per_signal=SECONDS,
                           piano_seconds=PIANO_SECONDS, progress=False)
  for first, second in zip(paths, again):
    with open(first, 'rb') as f, open(second, 'rb') as g:
      assert f.read() == g.read(), second
  before = {p: os.stat(p).st_mtime_ns for p in again}
  synth.synthesize(str(tmp_path / 'a'), effects=EFFECTS, seconds_per_signal=SECONDS,
                   piano_seconds=PIANO_SECONDS, progress=False)
  assert {p: os.stat(p).st_mtime_ns for p in again} == before
  assert sorted(os.listdir(tmp_path / 'a')) == sorted(os.listdir(out))   # no leftovers


def test_other_seed_gives_other_material():
  assert not np.array_equal(signals.stereo_sweep('saw', 0.5, SR, seed=0),
                            signals.stereo_sweep('saw', 0.5, SR, seed=1))
  assert not np.array_equal(piano.stereo_piano(3.0, SR, seed=0),
                            piano.stereo_piano(3.0, SR, seed=1))


def test_changed_content_is_rewritten(dataset, tmp_path):
  path = str(tmp_path / 'x.wav')
  audio = np.zeros([100, 2], np.float32)
  assert synth.write_if_changed(path, audio, SR)
  assert not synth.write_if_changed(path, audio, SR)
  audio[50] = 0.5
  assert synth.write_if_changed(path, audio, SR)
  assert load_pcm16(path)[0][50, 0] == 16384
  assert os.listdir(tmp_path) == ['x.wav']


def test_bad_arguments_fail_before_writing(tmp_path):
  with pytest.raises(ValueError, match='unknown effect preset .*lowpass, overdrive, compressor, '
                     'fuzz, tube_cab, comp_drive'):
    synth.synthesize(str(tmp_path), effects=('lowpass', 'reverb'), progress=False)
  with pytest.raises(effects.PluginLoadError, match='no such plugin'):
    synth.synthesize(str(tmp_path), plugin=str(tmp_path / 'Wah.vst3'), progress=False)
  with pytest.raises(ValueError, match='no effect chosen'):
    synth.synthesize(str(tmp_path), effects=(), progress=False)
  with pytest.raises(ValueError, match='without a plugin'):
    synth.synthesize(str(tmp_path), plugin_parameters={'drive': 1.0}, progress=False)
  with pytest.raises(ValueError, match="unknown signal set 'nice'; choose from rich, classic"):
    synth.synthesize(str(tmp_path), signal_set='nice', progress=False)
  assert os.listdir(tmp_path) == []


# --- Dry signals ---------------------------------------------------------------------

def test_left_and_right_differ(dataset):
  out, _ = dataset
  for name in synth.list_names():
    pcm, _ = load_pcm16(os.path.join(out, synth.file_name('lowpass', 'pre', name)))
    left, right = pcm.astype(np.float64).T
    assert abs(np.corrcoef(left, right)[0, 1]) < 0.95, name


def test_levels_span_the_intended_range_with_silences(sine):
  for track in sine.T:
    peaks = frame_db(track, power='peak')
    for level in signals.LEVELS_DB:
      assert np.sum(np.abs(peaks - level) < 0.3) >= 10, level   # >= 100 ms at each level
    assert peaks.max() <= -3.0 + 0.01
    assert np.sum(peaks < -200) >= 5                             # exact digital silence


def test_sweeps_cover_low_and_high_frequencies(sine):
  first, last = slice(0, SR), slice(-SR - int(0.2 * SR), -int(0.2 * SR))
  assert dominant_hz(sine[first, 0]) < 150 and dominant_hz(sine[last, 0]) > 5000
  assert dominant_hz(sine[first, 1]) > 5000 and dominant_hz(sine[last, 1]) < 150
  for waveform in signals.WAVEFORMS:
    x = signals.stereo_sweep(waveform, 2.0, SR, seed=0)[:, 0].astype(np.float64)
    ends = (x[:int(0.4 * SR)], x[-int(0.5 * SR):-int(0.2 * SR)])
    centroids = []
    for part in ends:
      power = np.abs(np.fft.rfft(part)) ** 2
      centroids.append(np.sum(power * np.fft.rfftfreq(len(part), 1 / SR)) / np.sum(power))
    assert centroids[0] < 1500 < 6000 < centroids[1], (waveform, centroids)


def test_sweeps_are_band_limited():
  for waveform in ('square', 'saw', 'polysaw'):
    x = signals.stereo_sweep(waveform, 2.0, SR, seed=0)[:, 0].astype(np.float64)
    power = np.abs(np.fft.rfft(x)) ** 2
    above = power[np.fft.rfftfreq(len(x), 1 / SR) > 20500].sum()
    assert above / power.sum() < 1e-7, waveform


def test_saw_and_square_are_rich_in_harmonics():
  tone = signals.oscillator('square', SR, SR, 200.0, 200.0)
  spectrum = np.abs(np.fft.rfft(tone)) / (SR / 2)   # 1 Hz bins
  assert spectrum[200] == pytest.approx(4 / np.pi, rel=1e-3)
  assert spectrum[600] == pytest.approx(4 / (3 * np.pi), rel=1e-3)
  assert spectrum[400] < 1e-6
  saw = signals.oscillator('saw', SR, SR, 200.0, 200.0)
  assert np.abs(np.fft.rfft(saw))[400] / (SR / 2) == pytest.approx(1 / np.pi, rel=1e-3)


@hypothesis.settings(max_examples=15, deadline=None)
@hypothesis.given(waveform=st.sampled_from(signals.WAVEFORMS),
                  seconds=st.floats(0.02, 0.6), seed=st.integers(0, 2 ** 31))
def test_any_length_and_seed_gives_a_clean_signal(waveform, seconds, seed):
  x = signals.stereo_sweep(waveform, seconds, SR, seed)
  assert x.shape == (round(seconds * SR), 2) and x.dtype == np.float32
  headroom = 4 / np.pi   # a band-limited square near Nyquist is its fundamental alone
  assert np.all(np.isfinite(x)) and np.max(np.abs(x)) <= 10 ** (-3 / 20) * headroom + 1e-6
  tail = min(signals.TAIL_SECONDS, seconds / 4)
  assert np.all(x[-int(tail * SR * 0.9):] == 0)   # silent tail for effect tails


# --- The rich capture signal ---------------------------------------------------------

@pytest.fixture(scope='module')
def rich():
  return {name: capture_signals.capture_signal(name, 6.0, SR, seed=2)
          for name in capture_signals.NAMES}


def test_rich_signals_are_clean_stereo_below_full_scale(rich):
  for name, x in rich.items():
    assert x.shape == (6 * SR, 2) and x.dtype == np.float32, name
    peak = 10 ** (capture_signals.PEAK_DB / 20)
    assert np.all(np.isfinite(x)) and np.max(np.abs(x)) <= peak + 1e-6
    assert abs(np.corrcoef(x[:, 0], x[:, 1])[0, 1]) < 0.95, name
  np.testing.assert_array_equal(capture_signals.capture_signal('bursts', 1.0, SR, seed=2),
                                capture_signals.capture_signal('bursts', 1.0, SR, seed=2))


def test_rich_signals_cover_levels_from_minus_60_to_0_dbfs(rich):
  """Bursts and ramps reach into the quiet levels music has and the sweeps lack."""
  for name in ('bursts', 'ramps'):
    peaks = frame_db(rich[name][:, 0], frame=SR // 20, power='peak')
    sounding = peaks[peaks > -100]
    assert sounding.min() < -50 and sounding.max() > -8, name
    assert spread_db(sounding) > 30, name
  plucks = frame_db(rich['plucks'].mean(axis=1), frame=SR // 10)
  assert spread_db(plucks[plucks > -100]) > 25                # decays and soft notes


def test_plucks_use_no_piano_and_decay():
  assert not set(capture_signals.PLUCK_PROGRAMS) & set(range(0, 8))   # GM pianos are 0-7


def test_repeat_holds_two_identical_halves(rich):
  x = rich['repeat']
  first, second = capture_signals.repeat_halves(len(x))
  np.testing.assert_array_equal(x[first], x[second])
  assert np.std(x[first]) > 1e-3


# --- Piano ---------------------------------------------------------------------------

def test_piano_has_loud_and_quiet_passages_and_decays():
  audio = piano.stereo_piano(piano.DEFAULT_SECONDS, SR, seed=0)
  assert audio.shape == (round(piano.DEFAULT_SECONDS * SR), 2)
  assert np.max(np.abs(audio)) == pytest.approx(10 ** (piano.PEAK_DB / 20), rel=1e-3)
  levels = frame_db(audio.mean(axis=1), frame=SR // 10)
  sounding = levels[levels > -90]
  assert sounding.max() > -20 and np.sum(sounding < -40) >= 5
  assert spread_db(sounding) > 20
  assert levels[-1] < -60                                    # decayed into silence
  assert abs(np.corrcoef(audio[:, 0], audio[:, 1])[0, 1]) < 0.95


def test_piano_score_is_a_grand_piano_with_varied_dynamics():
  midi = piano.compose(20.0, seed=5)
  notes = [n for i in midi.instruments for n in i.notes]
  assert {i.program for i in midi.instruments} == {0} and len(midi.instruments) == 2
  velocities = [n.velocity for n in notes]
  assert min(velocities) < 40 and max(velocities) > 105
  assert max(n.end for n in notes) <= 20.0 - piano.RELEASE_SECONDS + 0.05
  assert len({n.pitch for n in notes}) > 12


def test_missing_fluidsynth_says_how_to_install_it(monkeypatch):
  monkeypatch.setitem(sys.modules, 'fluidsynth', None)   # makes `import fluidsynth` fail
  with pytest.raises(piano.FluidSynthMissingError, match=r'apt-get install libfluidsynth3'):
    piano.stereo_piano(1.0, SR)


# --- Effects -------------------------------------------------------------------------

def tone(hz, db, seconds=0.5):
  t = np.arange(int(seconds * SR)) / SR
  return np.stack([10 ** (db / 20) * np.sin(2 * np.pi * hz * t)] * 2, axis=1)


def gain_db(board, hz):
  x = tone(hz, -6.0)
  y = effects.apply_effect(board, x, SR)
  steady = slice(SR // 4, None)
  return 20 * np.log10(np.std(y[steady, 0]) / np.std(x[steady, 0]))


def test_lowpass_is_linear_and_cuts_highs():
  a = signals.stereo_sweep('saw', 1.0, SR, seed=1)
  b = piano.stereo_piano(1.0, SR, seed=2)
  board = effects.preset('lowpass')
  both = effects.apply_effect(board, a + b, SR)
  separate = effects.apply_effect(board, a, SR) + effects.apply_effect(board, b, SR)
  assert np.max(np.abs(both - separate)) < 1e-5
  assert np.max(np.abs(effects.apply_effect(board, 0.25 * a, SR)
                       - 0.25 * effects.apply_effect(board, a, SR))) < 1e-6
  assert gain_db(board, 100) > -0.2
  assert gain_db(board, 1000) == pytest.approx(-6.0, abs=0.3)
  assert gain_db(board, 8000) < -30


def test_overdrive_is_nonlinear_and_adds_harmonics():
  a = signals.stereo_sweep('sine', 1.0, SR, seed=1)
  b = signals.stereo_sweep('triangle', 1.0, SR, seed=2)
  board = effects.preset('overdrive')
  both = effects.apply_effect(board, a + b, SR)
  separate = effects.apply_effect(board, a, SR) + effects.apply_effect(board, b, SR)
  assert np.std(both - separate) > 0.3 * np.std(both)
  y = effects.apply_effect(board, tone(500, -9.0, 1.0), SR)[SR // 2:, 0]
  spectrum = np.abs(np.fft.rfft(y))                       # 2 Hz bins
  assert spectrum[750] > 0.2 * spectrum[250]              # 3rd harmonic


def test_compressor_narrows_the_level_range(sine):
  out = effects.apply_effect(effects.preset('compressor'), sine, SR)
  for channel in range(2):
    levels_in = frame_db(sine[:, channel])
    levels_out = frame_db(out[:, channel])
    sounding = levels_in > -60
    assert spread_db(levels_in[sounding]) > 25
    assert spread_db(levels_out[sounding]) < 0.4 * spread_db(levels_in[sounding])


def test_presets_treat_channels_independently_and_keep_length():
  stereo = signals.stereo_sweep('square', 1.0, SR, seed=4)
  for name in effects.PRESETS:
    together = effects.apply_effect(effects.preset(name), stereo, SR)
    assert together.shape == stereo.shape and together.dtype == np.float32
    for channel in range(2):
      alone = effects.apply_effect(effects.preset(name), stereo[:, channel:channel + 1], SR)
      np.testing.assert_array_equal(alone[:, 0], together[:, channel])


def test_fuzz_clips_hard_and_tube_drive_is_asymmetric():
  y = effects.apply_effect(effects.preset('fuzz'), tone(500, -12.0, 1.0), SR)[SR // 2:, 0]
  spectrum = np.abs(np.fft.rfft(y))                        # 2 Hz bins
  assert spectrum[750] > 0.25 * spectrum[250]              # strong 3rd harmonic (square-like)
  assert spectrum[500] < 0.01 * spectrum[250]              # symmetric: no 2nd harmonic
  shaper = effects.AsymmetricShaper(drive_db=18.0, bias=0.4)
  x = tone(500, -12.0, 1.0).T.astype(np.float32)
  assert np.all(shaper(np.zeros([2, 100], np.float32)) == 0.0)       # silent for silence
  shaped = np.abs(np.fft.rfft(shaper(x)[0, SR // 2:]))
  assert shaped[500] > 0.05 * shaped[250]                  # even harmonics: asymmetric
  y = effects.apply_effect(effects.preset('tube_cab'), tone(500, -12.0, 1.0), SR)[SR // 2:, 0]
  assert np.abs(np.fft.rfft(y))[500] > 0.02 * np.abs(np.fft.rfft(y))[250]


def test_cabinet_ir_is_a_speaker_band_with_a_decay():
  ir = effects.cabinet_ir()
  assert ir.dtype == np.float32 and len(ir) == round(0.04 * effects.CABINET_SAMPLE_RATE)
  response = np.abs(np.fft.rfft(ir, 1 << 16))
  freqs = np.fft.rfftfreq(1 << 16, 1 / effects.CABINET_SAMPLE_RATE)
  band = lambda lo, hi: np.mean(response[(freqs > lo) & (freqs < hi)])
  assert band(1000, 3000) > 3 * band(10, 40) and band(1000, 3000) > 30 * band(10000, 20000)
  assert np.max(response) == pytest.approx(1.0, rel=0.01)
  energy = np.cumsum(ir.astype(np.float64) ** 2)
  assert energy[len(ir) // 2] > 0.95 * energy[-1]          # decays within the first half


def test_compressor_into_drive_depends_on_the_recent_level():
  """comp_drive has memory: the same burst comes out differently after a loud passage."""
  board = effects.preset('comp_drive')
  burst = tone(300, -20.0, 0.3)
  loud_first = np.concatenate([tone(300, -3.0, 0.3), burst])
  quiet_first = np.concatenate([tone(300, -40.0, 0.3), burst])
  after_loud = effects.apply_effect(board, loud_first, SR)[int(0.3 * SR):int(0.35 * SR), 0]
  after_quiet = effects.apply_effect(board, quiet_first, SR)[int(0.3 * SR):int(0.35 * SR), 0]
  assert np.std(after_quiet) > 1.5 * np.std(after_loud)


def test_effect_state_is_reset_between_files():
  board = effects.preset('compressor')
  x = signals.stereo_sweep('saw', 0.5, SR, seed=0)
  first = effects.apply_effect(board, x, SR)
  effects.apply_effect(board, signals.stereo_sweep('sine', 0.5, SR, seed=9), SR)
  np.testing.assert_array_equal(effects.apply_effect(board, x, SR), first)


def test_describe_presets_lists_every_preset():
  text = effects.describe_presets()
  assert [line.split(':')[0] for line in text.splitlines()] == list(effects.PRESETS)


def test_plugin_errors_are_clear(tmp_path):
  missing = str(tmp_path / 'Big Fuzz.vst3')
  with pytest.raises(effects.PluginLoadError, match='Big Fuzz.vst3: no such plugin'):
    effects.load_plugin_effect(missing)
  junk = tmp_path / 'junk.vst3'
  junk.write_bytes(b'not a plugin')
  with pytest.raises(effects.PluginLoadError, match='junk.vst3: cannot be loaded'):
    effects.load_plugin_effect(str(junk), {'drive': 1.0})


def test_plugin_effect_names_are_safe_file_name_parts():
  assert effects.plugin_effect_name('/p/Big Fuzz (x64).vst3') == 'big_fuzz_x64'
  assert effects.plugin_effect_name('/p/TAL-Reverb-4.vst3/') == 'tal-reverb-4'
  assert ' - ' not in effects.plugin_effect_name('/p/a - b.vst3')
  assert effects.plugin_effect_name('/p/---.vst3') == 'plugin'


def test_dry_only_writes_the_dry_material_for_re_amping(dataset, tmp_path):
  out = tmp_path / 'rec'
  paths = synth.synthesize(str(out), dry_only='tubescreamer-gain7', seconds_per_signal=SECONDS,
                           piano_seconds=PIANO_SECONDS, progress=False)
  names = sorted(os.path.basename(p) for p in paths)
  assert names == sorted(os.listdir(out))
  assert names == sorted(f'tubescreamer-gain7 - pre - {n}.wav' for n in synth.list_names())
  _, rendered = dataset
  for name in synth.list_names():   # the same dry signals as the rendered data set
    reference = [p for p in rendered if p.endswith(f'lowpass - pre - {name}.wav')][0]
    with open(reference, 'rb') as a, open(out / f'tubescreamer-gain7 - pre - {name}.wav', 'rb') as b:
      assert a.read() == b.read()
  for bad in ('', 'a - b', 'x/y'):
    with pytest.raises(ValueError, match='dry_only'):
      synth.synthesize(str(tmp_path / 'bad'), dry_only=bad, progress=False)
  assert not (tmp_path / 'bad').exists()
