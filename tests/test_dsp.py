"""Property tests of the pure signal functions (components.audio.dsp, split_plan, tfexample)."""
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import example, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from components.audio import dsp
from components.audio import split_plan
from components.audio.tfexample import encode_example

SETTINGS = settings(max_examples=60, deadline=None)
finite = st.floats(-1.0, 1.0, allow_nan=False, width=32)


@SETTINGS
@given(num_samples=st.integers(1, 3000), window=st.integers(1, 500), hop=st.integers(1, 500))
def test_padded_windows_cover_every_sample(num_samples, window, hop):
  hop = min(hop, window)  # a hop longer than the window leaves gaps by design
  starts = dsp.window_starts(num_samples, window, hop, pad_end=True)
  covered = np.zeros(num_samples, bool)
  for s in starts:
    covered[s:s + window] = True
  assert covered.all()
  assert starts[-1] < num_samples  # no window wholly past the end


@SETTINGS
@given(num_samples=st.integers(0, 3000), window=st.integers(1, 500), hop=st.integers(1, 500))
def test_unpadded_windows_stay_inside(num_samples, window, hop):
  starts = dsp.window_starts(num_samples, window, hop)
  assert all(s + window <= num_samples for s in starts)
  if num_samples >= window:  # and the next window would not fit
    assert starts[-1] + hop + window > num_samples


@SETTINGS
@given(signal=hnp.arrays(np.float32, st.integers(1, 2000), elements=finite),
       window=st.integers(1, 300), hop_fraction=st.floats(0.1, 1.0))
def test_overlap_add_reconstructs_input_exactly(signal, window, hop_fraction):
  hop = max(1, int(window * hop_fraction))
  starts = dsp.window_starts(len(signal), window, hop, pad_end=True)
  frames = dsp.frame(signal, starts, window)
  np.testing.assert_allclose(dsp.overlap_add(frames, starts, len(signal)), signal,
                             rtol=0, atol=1e-6)


@SETTINGS
@given(signal=hnp.arrays(np.float32, st.integers(1, 500), elements=finite),
       context=st.integers(0, 50), window=st.integers(1, 60))
def test_frame_context_is_the_signal_around_the_window(signal, context, window):
  starts = dsp.window_starts(len(signal), window, max(1, window // 2), pad_end=True)
  frames = dsp.frame(signal, starts, window, context)
  padded = np.concatenate([np.zeros(context + window), signal, np.zeros(context + 2 * window)])
  for s, row in zip(starts, frames):
    np.testing.assert_array_equal(row, padded[s + window:s + window + window + 2 * context])


@SETTINGS
@given(bits=st.sampled_from([8, 16, 24, 32]), data=st.data())
def test_pcm_float_round_trip(bits, data):
  lo, hi = (0, 255) if bits == 8 else (-2 ** (bits - 1), 2 ** (bits - 1) - 1)
  dtype = np.uint8 if bits == 8 else (np.int16 if bits == 16 else np.int32)
  pcm = data.draw(hnp.arrays(dtype, st.integers(1, 200), elements=st.integers(lo, hi)))
  audio = dsp.pcm_to_float(pcm, bits)
  assert audio.dtype == np.float32 and np.all(np.abs(audio) <= 1.0)
  back = dsp.float_to_pcm(audio, bits)
  if bits <= 24:  # float32's 24-bit mantissa holds these exactly
    np.testing.assert_array_equal(back, pcm)
  else:  # 32-bit PCM: exact to float32 precision (2**-24 of full scale = 128 steps)
    assert np.max(np.abs(back.astype(np.int64) - pcm.astype(np.int64))) <= 128


@SETTINGS
@given(target=hnp.arrays(np.float32, st.integers(2, 300), elements=finite),
       noise=hnp.arrays(np.float32, 300, elements=finite),
       scale=st.floats(1e-3, 1e3))
def test_esr_is_scale_invariant_and_zero_only_for_identical(target, noise, scale):
  target = target.astype(np.float64)
  if np.sum(target ** 2) < 1e-6:
    return
  prediction = target + noise[:len(target)]
  assert dsp.esr(target, target) == 0.0
  if np.any(prediction != target):
    assert dsp.esr(target, prediction) > 0.0
  # Relative to the error's own rounding: an error of ~1e-16 per sample rounds differently
  # once scaled, so ESRs below 1e-12 (-120 dB) are only equal to within atol.
  np.testing.assert_allclose(dsp.esr(scale * target, scale * prediction),
                             dsp.esr(target, prediction), rtol=1e-6, atol=1e-12)


def test_esr_db_of_known_ratio():
  y = np.ones(100)
  assert dsp.esr_db(y, 0.9 * y) == pytest.approx(-20.0)
  assert dsp.esr_db(y, np.zeros(100)) == pytest.approx(0.0)


@SETTINGS
@given(signal=hnp.arrays(np.float64, st.integers(1, 700), elements=finite),
       edges=st.lists(st.floats(1.0, 20000.0), min_size=0, max_size=5, unique=True))
def test_band_energies_add_up_to_the_signal_energy(signal, edges):
  edges = (0.0,) + tuple(sorted(edges))
  bands = dsp.band_energies(signal, 44100, edges)
  assert bands.shape == (len(edges),)
  assert np.all(bands >= -1e-9)
  np.testing.assert_allclose(bands.sum(), np.sum(signal ** 2), rtol=1e-9, atol=1e-9)


def test_level_band_energies_put_each_block_by_the_other_tracks_level():
  """An error made only in the quiet half of a tone lands in the quiet level band, at its
  energy; a silent block is -inf dBFS (band 0); a partial tail block is left out."""
  block, edges = 1024, (-np.inf, -60.0, -30.0)
  t = np.arange(6 * block + 100) / 44100
  tone = np.sin(2 * np.pi * 1000.0 * t)
  gain = np.repeat([0.0, 0.005, 0.005, 0.1, 0.1, 0.1, 0.005], block)[:len(t)]
  error = 0.01 * (gain < 0.05)                                     # the quiet blocks only
  bands = dsp.level_band_energies(error, gain * tone, block, edges)  # -inf, -49, -23 dBFS
  np.testing.assert_allclose(bands, [0.01 ** 2 * block, 0.01 ** 2 * 2 * block, 0.0])
  np.testing.assert_allclose(dsp.level_band_energies(tone, tone, block, (0.0, 10.0)),
                             [np.sum(tone[:6 * block] ** 2), 0.0])   # below edges[0]: band 0
  with pytest.raises(ValueError, match='shorter than one block'):
    dsp.level_band_energies(error[:100], tone[:100], block, edges)


def test_esr_by_band_puts_the_error_where_it_is():
  sr, t = 44100, np.arange(44100) / 44100
  low, high = np.sin(2 * np.pi * 50 * t), 0.5 * np.sin(2 * np.pi * 5000 * t)
  esr_db, share = dsp.esr_by_band(low + high, low + 0.9 * high, sr)   # error only at 5 kHz
  np.testing.assert_allclose(share.sum(), 1.0)
  assert share[4] > 0.999                                             # the 3-10 kHz band
  assert esr_db[4] == pytest.approx(-20.0, abs=0.1)                   # 10 % amplitude error
  assert esr_db[0] < -100                                             # nothing wrong at 50 Hz


@SETTINGS
@given(target=hnp.arrays(np.float64, st.integers(1, 500), elements=finite),
       noise=hnp.arrays(np.float64, 500, elements=finite),
       segment=st.integers(1, 200))
def test_esr_by_segment_shares_add_up_and_cover_the_track(target, noise, segment):
  prediction = target + noise[:len(target)]
  starts, esr_db, share, level_db = dsp.esr_by_segment(target, prediction, segment)
  assert len(starts) == len(esr_db) == len(share) == len(level_db) == -(-len(target) // segment)
  assert starts[0] == 0 and np.all(np.diff(starts) == segment)
  if np.sum((target - prediction) ** 2) > 0:
    np.testing.assert_allclose(share.sum(), 1.0)


@SETTINGS
@given(lag=st.integers(-40, 40))
def test_estimate_latency_finds_a_pure_delay(lag):
  rng = np.random.default_rng(abs(lag))
  dry = rng.standard_normal(4000)
  wet = np.roll(dry, lag) * 0.5
  estimate = dsp.estimate_latency(dry, wet, 64)
  assert estimate.samples == lag and estimate.confidence > 0.9 and not estimate.beyond_range


RATE = 8000


def _excitation(rng, seconds: float, sweeps: bool = True) -> np.ndarray:
  """Noise bursts and sine sweeps at random levels with silences: like a capture signal."""
  n = int(seconds * RATE)
  out = np.zeros(n)
  t = 0
  while t < n:
    length = int(rng.uniform(0.1, 0.4) * RATE)
    level = 10 ** (rng.uniform(-40, -3) / 20)
    if rng.random() < 0.5 or not sweeps:
      piece = rng.standard_normal(length)
    else:
      f = np.cumsum(np.geomspace(50, 3000, length)) / RATE
      piece = np.sin(2 * np.pi * f)
    out[t:t + length] = level * piece[:n - t] / np.max(np.abs(piece))
    t += length + int(rng.uniform(0.0, 0.15) * RATE)
  return out


def _nonlinear_chain(rng, dry: np.ndarray) -> np.ndarray:
  """A random effect: a filter, a tanh or hard clip driven 6-40 dB, another filter."""
  import scipy.signal
  x = dry
  for _ in range(2):
    cutoff = rng.uniform(200, 3000)
    kind = 'lowpass' if rng.random() < 0.5 else 'highpass'
    sos = scipy.signal.butter(2, cutoff, kind, fs=RATE, output='sos')
    x = scipy.signal.sosfilt(sos, x)
    drive = 10 ** (rng.uniform(6, 40) / 20)
    x = np.tanh(drive * x) if rng.random() < 0.5 else np.clip(drive * x, -0.5, 0.5)
  return x


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10 ** 6), offset=st.integers(-int(0.3 * RATE), int(0.3 * RATE)),
       noise_db=st.floats(-70, -30))
@example(seed=4463, offset=535, noise_db=-50.0)   # found by hypothesis: 4 samples off
def test_estimate_latency_finds_an_offset_through_a_random_nonlinear_chain(
    seed, offset, noise_db):
  """Either sign, up to 0.3 s, through filters and tanh/hard clipping, with noise."""
  rng = np.random.default_rng(seed)
  dry = _excitation(rng, 3.0)
  wet = _nonlinear_chain(rng, dry)
  wet = wet / max(np.max(np.abs(wet)), 1e-9) * 0.5
  wet = wet + 10 ** (noise_db / 20) * rng.standard_normal(len(wet))
  # The chain's filters delay it a little by themselves (group delay): the reference, on
  # the same material that overlaps once the offset is applied (the group delay of a
  # nonlinear chain depends on the material by a few samples).
  overlap = len(dry) - abs(offset)
  own = dsp.estimate_latency(dry[:overlap], wet[:overlap], RATE)
  assert abs(own.samples) <= 40 and own.confidence > 0.2, own
  # The wet recording starts `offset` samples later (offset > 0: latency) or earlier.
  if offset >= 0:
    wet = np.concatenate([np.zeros(offset), wet])[:len(dry)]
  else:
    wet, dry = wet[-offset:], dry[:len(dry) + offset]
  estimate = dsp.estimate_latency(dry, wet, RATE)         # +-1 s
  # Within 4 samples (0.5 ms at 8 kHz): with a latency, the start of the dry and the end of
  # the wet have no partner, which moves the PHAT peak of a chain whose group delay spreads
  # over several samples (seen: 4 samples); well inside the FIR's 64-sample look-ahead.
  assert abs(estimate.samples - own.samples - offset) <= 4, (own, estimate)
  assert estimate.confidence > 0.2 and not estimate.beyond_range, estimate


def test_estimate_latency_beyond_the_range_says_so():
  rng = np.random.default_rng(3)
  dry = _excitation(rng, 4.0)
  wet = np.concatenate([np.zeros(int(1.2 * RATE)), np.tanh(8 * dry)])[:len(dry)]
  estimate = dsp.estimate_latency(dry, wet, RATE)
  assert estimate.beyond_range and estimate.strongest_samples == int(1.2 * RATE)
  inside = dsp.estimate_latency(dry, wet, int(1.5 * RATE))
  assert inside.samples == int(1.2 * RATE) and not inside.beyond_range


@pytest.mark.parametrize('seed', range(5))
def test_estimate_latency_of_unrelated_signals_is_not_confident(seed):
  rng = np.random.default_rng(seed)         # two takes of different noise bursts
  dry, other = _excitation(rng, 3.0, sweeps=False), _excitation(rng, 3.0, sweeps=False)
  estimate = dsp.estimate_latency(dry, np.tanh(4 * other), RATE)
  assert estimate.confidence < 0.2 and not estimate.beyond_range     # no clear peak anywhere


def test_trim_latency_keeps_the_common_part():
  dry, wet = np.arange(10), np.arange(100, 110)
  d, w = dsp.trim_latency(dry, wet, 3)
  assert list(d) == list(range(7)) and list(w) == list(range(103, 110))
  d, w = dsp.trim_latency(dry, wet, -2)
  assert list(d) == list(range(2, 10)) and list(w) == list(range(100, 108))


def test_least_squares_fir_recovers_a_filter():
  rng = np.random.default_rng(0)
  dry = rng.standard_normal(20000)
  h = rng.standard_normal(32) * np.exp(-np.arange(32) / 6)
  wet = np.convolve(dry, h)[:len(dry)]
  fir = dsp.fit_fir([dry], [wet], 48)
  assert dsp.esr_db(wet, dsp.apply_fir(dry, fir)) < -60


# --- split planning -------------------------------------------------------------------

@SETTINGS
@given(num_samples=st.integers(0, 20000), window=st.integers(50, 800),
       hop_fraction=st.floats(0.2, 1.0), block_windows=st.floats(1.0, 6.0),
       period=st.integers(2, 6), test_tail=st.floats(0.1, 1.0), is_test=st.booleans())
def test_split_plan_keeps_splits_disjoint(num_samples, window, hop_fraction, block_windows,
                                          period, test_tail, is_test):
  spec = split_plan.WindowSpec(window=window, hop=max(1, int(window * hop_fraction)),
                               context=window // 4, block=int(window * block_windows),
                               eval_period=period, test_tail=test_tail)
  plan = split_plan.plan_track(num_samples, is_test, spec)
  owner = np.full(num_samples + window, -1)
  for index, split in enumerate(split_plan.SPLITS):
    for s in plan[split]:
      region = owner[s:s + window]
      assert np.all((region == -1) | (region == index)), f'{split} overlaps another split'
      owner[s:s + window] = index
  for split in (split_plan.TRAIN, split_plan.EVAL):
    assert all(s + window <= num_samples for s in plan[split])
  if is_test and num_samples:
    test_start = int(round(num_samples * (1 - test_tail)))
    if test_start < num_samples:
      assert np.all(owner[test_start:num_samples] == 2), 'test tail must be fully tiled'
      if num_samples - test_start >= window:  # no test window runs past the recording
        assert max(plan[split_plan.TEST]) + window == num_samples
  else:
    assert len(plan[split_plan.TEST]) == 0


def test_eval_blocks_are_spread_through_the_track():
  spec = split_plan.WindowSpec(window=100, hop=50, context=0, block=400, eval_period=5)
  labels = split_plan.block_splits(4000, spec)
  assert list(np.flatnonzero(labels)) == [2, 7]


# --- Example codec ----------------------------------------------------------------------

@SETTINGS
@given(values=hnp.arrays(np.float32, st.integers(0, 300), elements=finite),
       offset=st.integers(-2 ** 63, 2 ** 63 - 1), name=st.text(max_size=20))
def test_example_codec_matches_tensorflow(values, offset, name):
  serialized = encode_example(floats={'dry': values}, ints={'offset': offset},
                              strings={'source': name})
  reference = tf.train.Example(features=tf.train.Features(feature={
      'dry': tf.train.Feature(float_list=tf.train.FloatList(value=values)),
      'offset': tf.train.Feature(int64_list=tf.train.Int64List(value=[offset])),
      'source': tf.train.Feature(bytes_list=tf.train.BytesList(value=[name.encode()])),
  }))
  assert tf.train.Example.FromString(serialized) == reference


# --- Multi-resolution STFT distance --------------------------------------------------

def test_stft_magnitudes_match_scipy():
  import scipy.signal
  rng = np.random.default_rng(0)
  x = rng.normal(0, 0.3, 5000)
  for size in (2048, 128):
    ours = dsp.stft_magnitudes(x, size)
    _, _, spectrum = scipy.signal.stft(x, window='hann', nperseg=size, noverlap=size - size // 4,
                                       boundary=None, padded=False)
    theirs = np.abs(spectrum).T * np.sum(scipy.signal.get_window('hann', size))  # undo scaling
    floor = size / 4 * 10 ** (dsp.MRSTFT_FLOOR_DB / 20)
    np.testing.assert_allclose(ours, np.maximum(theirs, floor), rtol=1e-9, atol=1e-12)


def test_mrstft_is_zero_for_equal_magnitudes_and_forgives_what_esr_punishes():
  rng = np.random.default_rng(1)
  t = np.arange(44100) / 44100
  tone = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1320 * t)
  assert dsp.mrstft_distance(tone, tone) == 0.0
  # A quarter-period phase shift: ESR calls it a total failure, MRSTFT barely notices.
  shifted = 0.5 * np.sin(2 * np.pi * 440 * t + np.pi / 2) + 0.2 * np.sin(2 * np.pi * 1320 * t)
  assert dsp.esr_db(tone, shifted) > -6.0
  noisy = tone + rng.normal(0, 0.05, len(t))
  assert dsp.mrstft_distance(tone, shifted) < 0.2 * dsp.mrstft_distance(tone, noisy)
  # Silence below the floor in both: no charge for 16-bit-level differences.
  assert dsp.mrstft_distance(np.zeros(4096), 1e-6 * rng.normal(size=4096)) == 0.0


@SETTINGS
@given(lengths=st.lists(st.integers(0, 3000), min_size=1, max_size=4), seed=st.integers(0, 99))
def test_mrstft_sums_of_tracks_combine_exactly(lengths, seed):
  rng = np.random.default_rng(seed)
  tracks = [(rng.normal(0, 0.3, n), rng.normal(0, 0.3, n)) for n in lengths]
  combined = sum(dsp.mrstft_sums(a, b, (256, 64)) for a, b in tracks)
  sizes = (256, 64)
  expected = []
  for i, size in enumerate(sizes):
    mags = [(dsp.stft_magnitudes(a, size), dsp.stft_magnitudes(b, size)) for a, b in tracks]
    true = np.concatenate([m[0] for m in mags]) if mags else np.zeros([0, size // 2 + 1])
    pred = np.concatenate([m[1] for m in mags])
    if true.size:
      expected.append(np.sqrt(np.sum((true - pred) ** 2) / np.sum(true ** 2))
                      + np.mean(np.abs(np.log(true) - np.log(pred))))
  value = dsp.mrstft_from_sums(combined)
  if expected:
    assert value == pytest.approx(np.mean(expected), rel=1e-9)
  else:
    assert np.isnan(value)
