"""``fxemu run --tune``: the Tuner's search (trainer/tuning.py) through TFX's own executor
functions, its best values reaching the Trainer's run_fn, and the DAG that wires them."""
import itertools
import json
import os

import pytest
import tensorflow as tf
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.components.tuner import executor as tuner_executor
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs

from components.audio import dsp
from kubeflow import runner
from kubeflow.settings import KubeflowSettings
from pipeline.configs import PipelineConfig
from pipeline.pipeline import create_pipeline
from schema import contract
from tests.test_trainer import SMALL, dataset, fn_args, serve_audio  # noqa: F401  (fixture)
from trainer import export
from trainer import model as model_lib
from trainer import tuning
from trainer.config import TrainConfig


def test_with_tuned_puts_a_tuners_values_over_the_config():
  config = TrainConfig()
  tuned = config.with_tuned({'space': [], 'values': {'model': 'wavenet',
                                                     'wavenet_channels': '12,6',
                                                     'learning_rate': 0.002}})
  assert (tuned.model, tuned.wavenet_channels, tuned.learning_rate) == ('wavenet', (12, 6), 0.002)
  assert tuned.train_seconds == config.train_seconds        # the rest is untouched
  assert config.with_tuned({'learning_rate': 0.008}).learning_rate == 0.008
  with pytest.raises(ValueError, match='unknown options.*colour'):
    config.with_tuned({'values': {'colour': 'red'}})
  with pytest.raises(ValueError, match='wavenet_channels'):
    config.with_tuned({'wavenet_channels': '0,4'})


def test_every_point_of_the_search_space_is_a_valid_config():
  hp = tuning.search_space()
  assert {p.name for p in hp.space} == set(tuning.SEARCH_SPACE)
  base = TrainConfig()
  names = sorted(tuning.SEARCH_SPACE)
  for point in itertools.product(*(tuning.SEARCH_SPACE[n] for n in names)):
    config = base.with_tuned(dict(zip(names, point)))
    assert TrainConfig.from_custom_config(config.to_custom_config()) == config
    assert config.model in tuning.SEARCH_SPACE['model'] and len(config.wavenet_channels) == 2


def test_custom_config_needs_a_budget():
  values = {**TrainConfig().to_custom_config(), contract.TUNE_TRIALS: 3,
            contract.TUNE_SECONDS: 90.0}
  config, trials, seconds = tuning.split_custom_config(values)
  assert (trials, seconds) == (3, 30.0) and config == TrainConfig()
  with pytest.raises(ValueError, match='tune_seconds'):
    tuning.split_custom_config({contract.TUNE_TRIALS: 3})


def test_search_writes_the_best_trial_and_the_trainer_takes_it(dataset, tmp_path):  # noqa: F811
  """Two trials of a few seconds each, run as TFX's Tuner executor runs them (its
  ``search`` steps and its writer of ``best_hyperparameters``); run_fn then trains with
  the written values."""
  small = {**SMALL, 'wavenet_dilations': (1, 2, 4, 8), 'condition_dilations': (1, 2),
           'epochs': 100}
  base = TrainConfig(**small)
  args = FnArgs(train_files=[dataset['train']], eval_files=[dataset['eval']],
                working_dir=str(tmp_path / 'tuner'),
                custom_config={**base.to_custom_config(), contract.TUNE_TRIALS: 2,
                               contract.TUNE_SECONDS: 3.0})
  result = tuning.tuner_fn(args)
  result.tuner.search(**result.fit_kwargs)
  trials = [t for t in result.tuner.oracle.trials.values() if t.score is not None]
  assert len(trials) == 2
  assert all(t.score == t.score and t.score < 0 for t in trials)   # ESR dB, below identity
  outputs = {}
  for key, kind in ((standard_component_specs.BEST_HYPERPARAMETERS_KEY,
                     standard_artifacts.HyperParameters),
                    (standard_component_specs.TUNER_RESULTS_KEY, standard_artifacts.TunerResults)):
    artifact = kind()
    artifact.uri = str(tmp_path / key)
    os.makedirs(artifact.uri)
    outputs[key] = [artifact]
  tuner_executor.write_best_hyperparameters(result.tuner, outputs)
  with open(tmp_path / standard_component_specs.BEST_HYPERPARAMETERS_KEY /
            'best_hyperparameters.txt') as f:
    best = json.load(f)
  winner = min(trials, key=lambda t: t.score)
  assert best['values'] == winner.hyperparameters.values

  # The Trainer: run_fn with the Tuner's best values (TFX passes the file's JSON).
  train_args = fn_args(tmp_path, dataset, TrainConfig(**{**small, 'epochs': 1}),
                       train_steps=3, hyperparameters=best)
  model_lib.run_fn(train_args)
  meta = export.read_metadata(train_args.serving_model_dir)
  assert meta['model'] == best['values']['model']
  trained = TrainConfig.from_custom_config(meta['train_config'])
  assert trained.learning_rate == best['values']['learning_rate']
  assert ','.join(map(str, trained.wavenet_channels)) == best['values']['wavenet_channels']
  loaded = tf.saved_model.load(train_args.serving_model_dir)
  dry, wet = dataset['tracks']['test']['noise_test']
  assert dsp.esr_db(wet, serve_audio(loaded, dry[None])[0]) < dsp.esr_db(wet, dry)


def test_tune_adds_the_tuner_and_feeds_the_trainer():
  plain = create_pipeline(PipelineConfig(), TrainConfig(), check_inputs=False)
  assert 'Tuner' not in {c.id for c in plain.components}
  tuned = create_pipeline(PipelineConfig(tune=True, tune_trials=3, tune_seconds=60),
                          TrainConfig(), check_inputs=False)
  components = {c.id: c for c in tuned.components}
  tuner, trainer = components['Tuner'], components['Trainer']
  assert trainer.inputs['hyperparameters'].producer_component_id == 'Tuner'
  config = json.loads(tuner.exec_properties['custom_config'])
  assert (config[contract.TUNE_TRIALS], config[contract.TUNE_SECONDS]) == (3, 60)
  assert tuner.exec_properties['tuner_fn'] == 'trainer.tuning.tuner_fn'


def test_tune_compiles_for_kubeflow(tmp_path):
  settings = KubeflowSettings(image='registry.example/fxemu:1.2',
                              pipeline_root='gs://bucket/fxemu/pipelines',
                              output_file=str(tmp_path / 'spec.json'))
  with open(runner.compile_pipeline(PipelineConfig(tune=True), TrainConfig(), settings)) as f:
    tasks = json.load(f)['pipelineSpec']['root']['dag']['tasks']
  assert 'Tuner' in tasks
  hyperparameters = tasks['Trainer']['inputs']['artifacts']['hyperparameters']
  assert hyperparameters['taskOutputArtifact']['producerTask'] == 'Tuner'
